//! The agent's settings: a TOML file (`--config`) overridden by command-line flags.
//!
//! Every key of the file is optional and spelled like its flag (`server`, `device-id`,
//! `ca-cert`, `cert`, `key`, `data-dir`, `namespace`, `log-level`, `poll-seconds`,
//! `podman`, `systemd-units`, `nftables`, `unit-dir`). Limits: no environment-variable layer beyond what clap offers the binary;
//! the files named here are only checked for readability later, by the identity module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the device id comes from when neither the file nor a flag gives one.
pub const MACHINE_ID_FILE: &str = "/etc/machine-id";
/// Default poll period of `data/in` and `control/in` (yggd polled every 5 s).
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// Why the settings could not be built. Each message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for the agent.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, on one line.
        message: String,
    },
    /// A required setting is absent from both the file and the flags.
    #[error("missing setting {0} (set it in the configuration file or with --{0})")]
    Missing(&'static str),
    /// A setting has an unusable value.
    #[error("invalid setting {name}: {message}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        message: String,
    },
}

/// The optional settings, as read from the TOML file or given as flags.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PartialSettings {
    /// Base URL of the device API, e.g. `https://edge.example:8043`.
    pub server: Option<String>,
    /// The device id.
    pub device_id: Option<String>,
    /// CA certificate(s) the server's certificate chains to (PEM).
    pub ca_cert: Option<PathBuf>,
    /// Bootstrap client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Bootstrap client key (PEM).
    pub key: Option<PathBuf>,
    /// State directory.
    pub data_dir: Option<PathBuf>,
    /// Namespace the device asks to join at enrolment.
    pub namespace: Option<String>,
    /// `tracing` filter, e.g. `info` or `flotta_agent=debug`.
    pub log_level: Option<String>,
    /// Poll period of `data/in` and `control/in`, seconds.
    pub poll_seconds: Option<u64>,
    /// The podman executable.
    pub podman: Option<PathBuf>,
    /// systemd units for workloads: absent = when systemd is detected, `false` = never,
    /// `true` = always.
    pub systemd_units: Option<bool>,
    /// nftables rules for host ports: absent = when `nft` is detected, `false` = never,
    /// `true` = always.
    pub nftables: Option<bool>,
    /// Directory of the workload units.
    pub unit_dir: Option<PathBuf>,
}

impl PartialSettings {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.to_string().replace('\n', " "),
        })
    }

    /// `self` with every value set in `overrides` replaced.
    pub fn merge(self, overrides: Self) -> Self {
        Self {
            server: overrides.server.or(self.server),
            device_id: overrides.device_id.or(self.device_id),
            ca_cert: overrides.ca_cert.or(self.ca_cert),
            cert: overrides.cert.or(self.cert),
            key: overrides.key.or(self.key),
            data_dir: overrides.data_dir.or(self.data_dir),
            namespace: overrides.namespace.or(self.namespace),
            log_level: overrides.log_level.or(self.log_level),
            poll_seconds: overrides.poll_seconds.or(self.poll_seconds),
            podman: overrides.podman.or(self.podman),
            systemd_units: overrides.systemd_units.or(self.systemd_units),
            nftables: overrides.nftables.or(self.nftables),
            unit_dir: overrides.unit_dir.or(self.unit_dir),
        }
    }

    /// The complete settings; the device id defaults to the content of `machine_id_file`.
    pub fn resolve(self, machine_id_file: &Path) -> Result<Settings, ConfigError> {
        let server = self.server.ok_or(ConfigError::Missing("server"))?;
        let server = server.trim_end_matches('/').to_owned();
        if !server.starts_with("https://") {
            return Err(ConfigError::Invalid {
                name: "server",
                message: format!("{server:?} is not an https:// URL"),
            });
        }
        let device_id = match self.device_id {
            Some(id) => id,
            None => std::fs::read_to_string(machine_id_file)
                .map_err(|source| ConfigError::Read {
                    path: machine_id_file.to_owned(),
                    source,
                })?
                .trim()
                .to_owned(),
        };
        if device_id.is_empty()
            || !device_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ConfigError::Invalid {
                name: "device-id",
                message: format!("{device_id:?} is not a DNS-style name"),
            });
        }
        let poll = match self.poll_seconds {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    name: "poll-seconds",
                    message: "must be at least 1".into(),
                });
            }
            Some(seconds) => Duration::from_secs(seconds),
            None => DEFAULT_POLL,
        };
        Ok(Settings {
            server,
            device_id,
            ca_cert: self.ca_cert.ok_or(ConfigError::Missing("ca-cert"))?,
            cert: self.cert.ok_or(ConfigError::Missing("cert"))?,
            key: self.key.ok_or(ConfigError::Missing("key"))?,
            data_dir: self.data_dir.ok_or(ConfigError::Missing("data-dir"))?,
            namespace: self
                .namespace
                .unwrap_or_else(|| flotta_api::edge::DEFAULT_NAMESPACE.to_owned()),
            log_level: self.log_level.unwrap_or_else(|| "info".to_owned()),
            poll,
            podman: self.podman.unwrap_or_else(|| PathBuf::from("podman")),
            systemd_units: self.systemd_units,
            nftables: self.nftables,
            unit_dir: self
                .unit_dir
                .unwrap_or_else(|| PathBuf::from(crate::runtime::systemd::DEFAULT_UNIT_DIR)),
        })
    }
}

/// The complete settings of a running agent.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URL of the device API, without a trailing `/`.
    pub server: String,
    /// The device id.
    pub device_id: String,
    /// CA certificate file.
    pub ca_cert: PathBuf,
    /// Bootstrap certificate file.
    pub cert: PathBuf,
    /// Bootstrap key file.
    pub key: PathBuf,
    /// State directory.
    pub data_dir: PathBuf,
    /// Target namespace for enrolment.
    pub namespace: String,
    /// `tracing` filter.
    pub log_level: String,
    /// Poll period.
    pub poll: Duration,
    /// The podman executable.
    pub podman: PathBuf,
    /// systemd units: `None` = when detected, else forced on or off.
    pub systemd_units: Option<bool>,
    /// nftables rules: `None` = when detected, else forced on or off.
    pub nftables: Option<bool>,
    /// Directory of the workload units.
    pub unit_dir: PathBuf,
}

impl Settings {
    /// Which host integrations to use on a host offering `detected`: each as detected
    /// unless forced by the settings.
    pub fn host_features(
        &self,
        detected: crate::runtime::host::HostFeatures,
    ) -> crate::runtime::host::HostFeatures {
        crate::runtime::host::HostFeatures {
            systemd: self.systemd_units.unwrap_or(detected.systemd),
            nftables: self.nftables.unwrap_or(detected.nftables),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "server = \"https://a:1/\"\nca-cert = \"/c\"\ncert = \"/x\"\nkey = \"/k\"\n\
             data-dir = \"/d\"\nnamespace = \"lab\"\n",
        )
        .unwrap();
        let machine_id = dir.path().join("machine-id");
        std::fs::write(&machine_id, "abc123\n").unwrap();
        let flags = PartialSettings {
            namespace: Some("plant".into()),
            ..PartialSettings::default()
        };
        let settings = PartialSettings::from_file(&file)
            .unwrap()
            .merge(flags)
            .resolve(&machine_id)
            .unwrap();
        assert_eq!(settings.server, "https://a:1");
        assert_eq!(settings.namespace, "plant");
        assert_eq!(settings.device_id, "abc123");
        assert_eq!(settings.poll, DEFAULT_POLL);
        assert_eq!(
            settings.unit_dir,
            Path::new(crate::runtime::systemd::DEFAULT_UNIT_DIR)
        );
    }

    #[test]
    fn host_integrations_follow_detection_unless_forced() {
        use crate::runtime::host::HostFeatures;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            "server = \"https://a\"\ndevice-id = \"d\"\nca-cert = \"/c\"\ncert = \"/x\"\n\
             key = \"/k\"\ndata-dir = \"/d\"\nnftables = false\nunit-dir = \"/u\"\n",
        )
        .unwrap();
        let settings = PartialSettings::from_file(&file)
            .unwrap()
            .resolve(Path::new("/nonexistent"))
            .unwrap();
        let both = HostFeatures {
            systemd: true,
            nftables: true,
        };
        assert_eq!(
            settings.host_features(both),
            HostFeatures {
                systemd: true,
                nftables: false
            }
        );
        assert_eq!(
            settings.host_features(HostFeatures::default()),
            HostFeatures::default()
        );
        let forced = PartialSettings::from_file(&file)
            .unwrap()
            .merge(PartialSettings {
                systemd_units: Some(false),
                ..PartialSettings::default()
            })
            .resolve(Path::new("/nonexistent"))
            .unwrap();
        assert!(!forced.host_features(both).systemd);
        assert_eq!(forced.unit_dir, Path::new("/u"));
    }

    #[test]
    fn missing_files_are_named_on_one_line() {
        let error = PartialSettings::from_file(Path::new("/nonexistent/agent.toml")).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("/nonexistent/agent.toml"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        let error = PartialSettings {
            server: Some("https://a".into()),
            ..PartialSettings::default()
        }
        .resolve(Path::new("/nonexistent/machine-id"))
        .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/machine-id"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "sever = \"https://a\"\n").unwrap();
        let error = PartialSettings::from_file(&file).unwrap_err().to_string();
        assert!(
            error.contains("agent.toml") && !error.contains('\n'),
            "{error}"
        );
    }
}
