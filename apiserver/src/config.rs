//! Command-line flags of `flotta-apiserver` and their environment equivalents.
//!
//! Every flag can also be set through the environment variable named in its help text
//! (a flag given on the command line wins). Port numbers of `0` for the secure port mean
//! "pick a free port"; the ports actually bound are written to `<data-dir>/ports.json`.
//! The metrics port is the exception: `0` (or `off`) disables it and `auto` picks a free
//! port.
//!
//! The flags of running in a cluster (`--mode`, `--kubeconfig`, `--tls-cert-file`,
//! delegated authentication and authorization) are [`crate::cluster::ClusterOptions`],
//! flattened into [`Options::cluster`].

use std::fmt;
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::store::etcd::{ClientOptions, EtcdOptions};
use crate::store::{StoreKind, StoreOptions};

/// The flags of `flotta-apiserver`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "flotta-apiserver",
    version,
    about = "Flotta's Kubernetes-style API server for edge-device fleets."
)]
pub struct Options {
    /// Directory for the store, the PKI, the admin kubeconfig and `ports.json`.
    #[arg(long, env = "FLOTTA_DATA_DIR", default_value = "./flotta-data")]
    pub data_dir: PathBuf,

    /// Address (IP or host name) the secure and metrics listeners bind to.
    #[arg(long, env = "FLOTTA_BIND_ADDRESS", default_value = "127.0.0.1")]
    pub bind_address: String,

    /// Port of the Kubernetes API (HTTPS). 0 picks a free port.
    #[arg(long, env = "FLOTTA_SECURE_PORT", default_value_t = 8443)]
    pub secure_port: u16,

    /// Port of the device-facing Edge API (mutual TLS): a number (0 picks a free port,
    /// reported as `device` in `ports.json`) or `off`.
    #[arg(long, env = "FLOTTA_DEVICE_PORT", default_value = "8043")]
    pub device_port: DevicePort,

    /// Extra DNS names or IP addresses of the device API's server certificate, comma
    /// separated (`localhost`, `127.0.0.1`, `::1` and the bind address are always
    /// included): the names devices use to reach this server.
    #[arg(long, env = "FLOTTA_DEVICE_SERVER_NAMES", value_delimiter = ',')]
    pub device_server_names: Vec<String>,

    /// PEM certificate of an operator-supplied device CA (with `--device-ca-key`). Without
    /// it a device CA is created on first start and kept in the store.
    #[arg(long, env = "FLOTTA_DEVICE_CA_CERT", requires = "device_ca_key")]
    pub device_ca_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, or SEC1 P-256) of the device CA given by `--device-ca-cert`.
    #[arg(long, env = "FLOTTA_DEVICE_CA_KEY", requires = "device_ca_cert")]
    pub device_ca_key: Option<PathBuf>,

    /// Validity of device certificates signed at registration: a number with a unit `s`,
    /// `m`, `h` or `d` (e.g. `30d`, `12h`).
    #[arg(long, env = "FLOTTA_DEVICE_CERT_VALIDITY", default_value = "30d")]
    pub device_cert_validity: CertValidity,

    /// A device is shown offline after this many of its heartbeat periods pass without a
    /// heartbeat.
    #[arg(long, env = "FLOTTA_DEVICE_OFFLINE_AFTER_MISSED", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub device_offline_after_missed: u32,

    /// Seconds between writes of a device's `status.lastSeen` to the store (the live value
    /// is always served from memory; this only bounds what a restart loses).
    #[arg(long, env = "FLOTTA_DEVICE_LAST_SEEN_CHECKPOINT", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub device_last_seen_checkpoint: u64,

    /// Port of the plain-HTTP health and Prometheus metrics listener: a number, `auto`
    /// (pick a free port) or `0`/`off` (disabled).
    #[arg(long, env = "FLOTTA_METRICS_PORT", default_value = "8080")]
    pub metrics_port: MetricsPort,

    /// Store backend.
    #[arg(long = "store", env = "FLOTTA_STORE", value_enum, default_value_t = StoreBackend::Embedded)]
    pub store: StoreBackend,

    /// How many change events the store keeps so that watches can resume; older
    /// resourceVersions answer 410 Gone. With `--store etcd`, how many etcd revisions the
    /// periodic compaction keeps.
    #[arg(long, env = "FLOTTA_STORE_HISTORY", default_value_t = 100_000)]
    pub store_history: u64,

    /// etcd client URLs for `--store etcd`, comma separated (`http://host:2379` or
    /// `https://host:2379`).
    #[arg(
        long,
        env = "FLOTTA_ETCD_SERVERS",
        value_delimiter = ',',
        value_name = "URLS"
    )]
    pub etcd_servers: Vec<String>,

    /// Prepended to every etcd key: `/registry/...` is stored as `<prefix>/registry/...`.
    #[arg(long, env = "FLOTTA_ETCD_PREFIX", default_value = crate::store::etcd::DEFAULT_PREFIX)]
    pub etcd_prefix: String,

    /// PEM CA bundle that verifies the etcd members' certificates (https endpoints).
    #[arg(long, env = "FLOTTA_ETCD_CAFILE")]
    pub etcd_cafile: Option<PathBuf>,

    /// PEM client certificate presented to etcd (with `--etcd-keyfile`).
    #[arg(long, env = "FLOTTA_ETCD_CERTFILE", requires = "etcd_keyfile")]
    pub etcd_certfile: Option<PathBuf>,

    /// PEM private key of `--etcd-certfile`.
    #[arg(long, env = "FLOTTA_ETCD_KEYFILE", requires = "etcd_certfile")]
    pub etcd_keyfile: Option<PathBuf>,

    /// Seconds between compactions of etcd's history down to `--store-history` revisions
    /// (coordinated between replicas); 0 never compacts.
    #[arg(
        long,
        env = "FLOTTA_ETCD_COMPACTION_INTERVAL",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub etcd_compaction_interval: u64,

    /// With a store shared by several replicas (`--store etcd`): seconds a controller
    /// lease lasts. The controllers run on the replica holding the lease; a standby takes
    /// over within about this long after the holder stops renewing.
    #[arg(long, env = "FLOTTA_LEADER_ELECT_LEASE_DURATION", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub leader_elect_lease_duration: u64,

    /// Log line format.
    #[arg(long, env = "FLOTTA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, in `tracing-subscriber` EnvFilter syntax (e.g. `info`,
    /// `flotta_apiserver=debug,info`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,

    /// Seconds that in-flight requests (including open watches) get to finish after
    /// SIGTERM/SIGINT before their connections are closed.
    #[arg(long, env = "FLOTTA_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Approve devices' enrolment requests (EdgeDeviceSignedRequests) automatically. With
    /// `--auto-approve=false` an operator approves each one:
    /// `kubectl patch edsr <id> --type merge -p '{"spec":{"approved":true}}'`.
    #[arg(
        long,
        env = "FLOTTA_AUTO_APPROVE",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub auto_approve: bool,

    /// Mode (`--mode standalone|aggregated|auto`) and the flags of running in a cluster.
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterOptions,
}

impl Options {
    /// The drain timeout of graceful shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }

    /// The `--store` backend with its settings (`--etcd-*` for etcd).
    pub fn store_kind(&self) -> StoreKind {
        match self.store {
            StoreBackend::Embedded => StoreKind::Embedded,
            StoreBackend::Memory => StoreKind::Memory,
            StoreBackend::Etcd => StoreKind::Etcd(EtcdOptions {
                client: ClientOptions {
                    servers: self.etcd_servers.clone(),
                    ca_file: self.etcd_cafile.clone(),
                    cert_file: self.etcd_certfile.clone(),
                    key_file: self.etcd_keyfile.clone(),
                },
                prefix: self.etcd_prefix.clone(),
                compaction_interval: Duration::from_secs(self.etcd_compaction_interval),
                ..EtcdOptions::default()
            }),
        }
    }

    /// Whether other replicas may share the store (then the controllers are leader-elected
    /// and device liveness is judged per replica).
    pub fn store_is_shared(&self) -> bool {
        self.store == StoreBackend::Etcd
    }

    /// How to open the store (`--store`, `--store-history`, `--etcd-*`, `--data-dir`).
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            kind: self.store_kind(),
            data_dir: self.data_dir.clone(),
            history: self.store_history,
        }
    }

    /// Path of the admin kubeconfig this server writes.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// Path of the file naming the bound ports.
    pub fn ports_path(&self) -> PathBuf {
        self.data_dir.join("ports.json")
    }

    /// Settings of the in-process controllers.
    pub fn controllers(&self) -> flotta_controllers::Config {
        flotta_controllers::Config {
            auto_approve: self.auto_approve,
            ..flotta_controllers::Config::default()
        }
    }

    /// Directory of the serving CA, serving certificate and admin certificate.
    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }

    /// Directory of the device bootstrap material (`ca.pem`, `cert.pem`, `key.pem`).
    pub fn device_bootstrap_dir(&self) -> PathBuf {
        self.data_dir.join(crate::edge::ca::BOOTSTRAP_DIR)
    }
}

/// The `--device-port` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePort {
    /// No device listener (`off`).
    Disabled,
    /// Bind this port (0: a free one).
    Port(u16),
}

impl DevicePort {
    /// The port to bind, if the listener is enabled.
    pub fn bind_port(self) -> Option<u16> {
        match self {
            DevicePort::Disabled => None,
            DevicePort::Port(port) => Some(port),
        }
    }
}

/// A `--device-port` value that is neither a port number nor `off`.
#[derive(Debug, thiserror::Error)]
#[error("invalid device port {0:?}: expected a port number (0 for a free port) or `off`")]
pub struct InvalidDevicePort(String);

impl FromStr for DevicePort {
    type Err = InvalidDevicePort;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" => Ok(DevicePort::Disabled),
            other => other
                .parse::<u16>()
                .map(DevicePort::Port)
                .map_err(|_| InvalidDevicePort(s.to_owned())),
        }
    }
}

impl fmt::Display for DevicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevicePort::Disabled => f.write_str("off"),
            DevicePort::Port(port) => write!(f, "{port}"),
        }
    }
}

/// The `--device-cert-validity` value: a positive duration of whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertValidity(pub Duration);

/// A `--device-cert-validity` value that is not `<number><s|m|h|d>` or is zero.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid certificate validity {0:?}: expected a positive number with a unit s, m, h or d (e.g. 30d)"
)]
pub struct InvalidCertValidity(String);

impl FromStr for CertValidity {
    type Err = InvalidCertValidity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidCertValidity(s.to_owned());
        let text = s.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let unit_seconds = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(invalid()),
        };
        match number.checked_mul(unit_seconds) {
            Some(seconds) if seconds > 0 => Ok(CertValidity(Duration::from_secs(seconds))),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for CertValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        if seconds.is_multiple_of(86_400) {
            write!(f, "{}d", seconds / 86_400)
        } else {
            write!(f, "{seconds}s")
        }
    }
}

/// The `--store` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreBackend {
    /// The redb file in the data directory (durable; the default).
    Embedded,
    /// In memory; everything is lost on exit.
    Memory,
    /// An etcd v3 cluster (`--etcd-servers`), shared by several replicas.
    #[value(alias = "etcd3")]
    Etcd,
}

/// The `--log-format` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The `--metrics-port` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsPort {
    /// No metrics listener (`0` or `off`).
    Disabled,
    /// Bind a free port (`auto`); it is reported in `ports.json`.
    Auto,
    /// Bind this port.
    Fixed(NonZeroU16),
}

impl MetricsPort {
    /// The port to bind, if the listener is enabled (`Some(0)` for [`MetricsPort::Auto`]).
    pub fn bind_port(self) -> Option<u16> {
        match self {
            MetricsPort::Disabled => None,
            MetricsPort::Auto => Some(0),
            MetricsPort::Fixed(port) => Some(port.get()),
        }
    }
}

/// A `--metrics-port` value that is neither a port number, `auto` nor `off`.
#[derive(Debug, thiserror::Error)]
#[error("invalid metrics port {0:?}: expected a port number, `auto`, or `0`/`off`")]
pub struct InvalidMetricsPort(String);

impl FromStr for MetricsPort {
    type Err = InvalidMetricsPort;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" => Ok(MetricsPort::Disabled),
            "auto" => Ok(MetricsPort::Auto),
            other => match other.parse::<u16>() {
                Ok(0) => Ok(MetricsPort::Disabled),
                Ok(port) => NonZeroU16::new(port)
                    .map(MetricsPort::Fixed)
                    .ok_or_else(|| InvalidMetricsPort(s.to_owned())),
                Err(_) => Err(InvalidMetricsPort(s.to_owned())),
            },
        }
    }
}

impl fmt::Display for MetricsPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsPort::Disabled => f.write_str("off"),
            MetricsPort::Auto => f.write_str("auto"),
            MetricsPort::Fixed(port) => write!(f, "{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        let mut argv = vec!["flotta-apiserver"];
        argv.extend_from_slice(args);
        Options::try_parse_from(argv).expect("flags parse")
    }

    #[test]
    fn flags_override_defaults() {
        let opts = parse(&[
            "--data-dir",
            "/tmp/x",
            "--secure-port",
            "0",
            "--metrics-port",
            "auto",
            "--store",
            "memory",
            "--log-format",
            "json",
            "--store-history",
            "7",
        ]);
        assert_eq!(opts.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(opts.secure_port, 0);
        assert_eq!(opts.metrics_port, MetricsPort::Auto);
        assert_eq!(opts.store, StoreBackend::Memory);
        assert_eq!(opts.store_kind(), StoreKind::Memory);
        assert_eq!(opts.log_format, LogFormat::Json);
        assert_eq!(opts.store_history, 7);
        assert_eq!(opts.kubeconfig_path(), PathBuf::from("/tmp/x/kubeconfig"));
    }

    #[test]
    fn metrics_port_values() {
        assert_eq!("0".parse::<MetricsPort>().ok(), Some(MetricsPort::Disabled));
        assert_eq!(
            "off".parse::<MetricsPort>().ok(),
            Some(MetricsPort::Disabled)
        );
        assert_eq!("auto".parse::<MetricsPort>().ok(), Some(MetricsPort::Auto));
        assert_eq!(
            "9090"
                .parse::<MetricsPort>()
                .ok()
                .and_then(|p| p.bind_port()),
            Some(9090)
        );
        assert!("http".parse::<MetricsPort>().is_err());
        assert!("70000".parse::<MetricsPort>().is_err());
    }

    #[test]
    fn auto_approve_defaults_on_and_can_be_turned_off() {
        assert!(parse(&[]).controllers().auto_approve);
        assert!(!parse(&["--auto-approve=false"]).controllers().auto_approve);
        assert!(!parse(&["--auto-approve", "false"]).auto_approve);
        assert!(parse(&["--auto-approve"]).auto_approve);
    }

    #[test]
    fn device_flags() {
        let defaults = parse(&[]);
        assert_eq!(defaults.device_port, DevicePort::Port(8043));
        assert!(defaults.device_server_names.is_empty());
        assert_eq!(defaults.device_ca_cert, None);
        assert_eq!(
            defaults.device_cert_validity,
            CertValidity(Duration::from_secs(30 * 86_400))
        );
        let opts = parse(&[
            "--device-port",
            "off",
            "--device-server-names",
            "edge.example.com,10.0.0.5",
            "--device-ca-cert",
            "/ca.pem",
            "--device-ca-key",
            "/ca.key",
            "--device-cert-validity",
            "12h",
        ]);
        assert_eq!(opts.device_port, DevicePort::Disabled);
        assert_eq!(opts.device_port.bind_port(), None);
        assert_eq!(
            opts.device_server_names,
            vec!["edge.example.com".to_owned(), "10.0.0.5".to_owned()]
        );
        assert_eq!(opts.device_ca_key, Some(PathBuf::from("/ca.key")));
        assert_eq!(opts.device_cert_validity.0, Duration::from_secs(12 * 3600));
        assert_eq!(
            parse(&["--device-port", "0"]).device_port.bind_port(),
            Some(0)
        );
        assert_eq!(
            opts.device_bootstrap_dir(),
            PathBuf::from("./flotta-data/device-bootstrap")
        );
    }

    #[test]
    fn device_flag_errors() {
        let fails = |args: &[&str]| {
            let mut argv = vec!["flotta-apiserver"];
            argv.extend_from_slice(args);
            Options::try_parse_from(argv).is_err()
        };
        assert!(fails(&["--device-port", "auto"]));
        assert!(fails(&["--device-port", "70000"]));
        assert!(fails(&["--device-ca-cert", "/ca.pem"]));
        assert!(fails(&["--device-cert-validity", "0d"]));
        assert!(fails(&["--device-cert-validity", "30"]));
        assert!(fails(&["--device-cert-validity", "1w"]));
        assert_eq!(
            "90m".parse::<CertValidity>().ok(),
            Some(CertValidity(Duration::from_secs(5400)))
        );
        assert_eq!(CertValidity(Duration::from_secs(86_400)).to_string(), "1d");
    }

    #[test]
    fn rejects_unknown_store() {
        assert!(Options::try_parse_from(["flotta-apiserver", "--store", "etcd2"]).is_err());
        assert!(Options::try_parse_from(["flotta-apiserver", "--store", "postgres"]).is_err());
    }

    #[test]
    fn etcd_flags() {
        let opts = parse(&[
            "--store",
            "etcd",
            "--etcd-servers",
            "https://10.0.0.1:2379,https://10.0.0.2:2379",
            "--etcd-prefix",
            "/fleet-a",
            "--etcd-cafile",
            "/pki/etcd-ca.pem",
            "--etcd-certfile",
            "/pki/client.pem",
            "--etcd-keyfile",
            "/pki/client-key.pem",
            "--etcd-compaction-interval",
            "300",
            "--store-history",
            "5000",
        ]);
        assert_eq!(opts.store, StoreBackend::Etcd);
        let store = opts.store_options();
        assert_eq!(store.history, 5000);
        let StoreKind::Etcd(etcd) = store.kind else {
            panic!("not etcd: {:?}", store.kind);
        };
        assert_eq!(
            etcd.client.servers,
            ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
        assert_eq!(etcd.prefix, "/fleet-a");
        assert_eq!(etcd.client.ca_file, Some(PathBuf::from("/pki/etcd-ca.pem")));
        assert_eq!(
            etcd.client.cert_file,
            Some(PathBuf::from("/pki/client.pem"))
        );
        assert_eq!(
            etcd.client.key_file,
            Some(PathBuf::from("/pki/client-key.pem"))
        );
        assert_eq!(etcd.compaction_interval, Duration::from_secs(300));
    }

    #[test]
    fn etcd_defaults() {
        let opts = parse(&[
            "--store",
            "etcd3",
            "--etcd-servers",
            "http://127.0.0.1:2379",
        ]);
        let StoreKind::Etcd(etcd) = opts.store_kind() else {
            panic!("etcd3 is an alias of etcd");
        };
        assert_eq!(etcd.client.servers, ["http://127.0.0.1:2379"]);
        assert_eq!(etcd.prefix, "/flotta");
        assert_eq!(etcd.client.ca_file, None);
        assert_eq!(etcd.compaction_interval, Duration::from_secs(60));
        assert_eq!(
            parse(&["--etcd-compaction-interval", "0"]).etcd_compaction_interval,
            0
        );
        // A client certificate needs its key.
        assert!(
            Options::try_parse_from(["flotta-apiserver", "--etcd-certfile", "/c.pem"]).is_err()
        );
    }

    #[tokio::test]
    async fn etcd_without_servers_fails_to_open_with_one_line() {
        let opts = parse(&["--store", "etcd"]);
        let err = crate::store::open(&opts.store_options())
            .await
            .err()
            .expect("no etcd servers");
        let message = err.to_string();
        assert!(message.contains("--etcd-servers"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}
