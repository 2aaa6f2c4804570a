//! Command-line flags of `flotta-apiserver` and their environment equivalents.
//!
//! Every flag can also be set through the environment variable named in its help text
//! (a flag given on the command line wins). Port numbers of `0` for the secure port mean
//! "pick a free port"; the ports actually bound are written to `<data-dir>/ports.json`.
//! The metrics port is the exception: `0` (or `off`) disables it and `auto` picks a free
//! port.
//!
//! Limits: only standalone mode exists so far; the aggregated-mode flags (front-proxy CA,
//! delegated authentication and authorization) arrive with that mode.

use std::fmt;
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::store::StoreKind;

/// The flags of `flotta-apiserver`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "flotta-apiserver",
    version,
    about = "Flotta's Kubernetes-style API server for edge-device fleets (standalone mode)."
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

    /// Port of the device-facing Edge API (mutual TLS). Accepted but not served yet: the
    /// device API arrives in a later release.
    #[arg(long, env = "FLOTTA_DEVICE_PORT", default_value_t = 8043)]
    pub device_port: u16,

    /// Port of the plain-HTTP health and Prometheus metrics listener: a number, `auto`
    /// (pick a free port) or `0`/`off` (disabled).
    #[arg(long, env = "FLOTTA_METRICS_PORT", default_value = "8080")]
    pub metrics_port: MetricsPort,

    /// Store backend.
    #[arg(long = "store", env = "FLOTTA_STORE", value_enum, default_value_t = StoreBackend::Embedded)]
    pub store: StoreBackend,

    /// How many change events the store keeps so that watches can resume; older
    /// resourceVersions answer 410 Gone.
    #[arg(long, env = "FLOTTA_STORE_HISTORY", default_value_t = 100_000)]
    pub store_history: u64,

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
}

impl Options {
    /// The drain timeout of graceful shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }

    /// Path of the admin kubeconfig this server writes.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// Path of the file naming the bound ports.
    pub fn ports_path(&self) -> PathBuf {
        self.data_dir.join("ports.json")
    }

    /// Directory of the serving CA, serving certificate and admin certificate.
    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }
}

/// The `--store` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreBackend {
    /// The redb file in the data directory (durable; the default).
    Embedded,
    /// In memory; everything is lost on exit.
    Memory,
}

impl From<StoreBackend> for StoreKind {
    fn from(backend: StoreBackend) -> Self {
        match backend {
            StoreBackend::Embedded => StoreKind::Embedded,
            StoreBackend::Memory => StoreKind::Memory,
        }
    }
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
        assert_eq!(StoreKind::from(opts.store), StoreKind::Memory);
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
    fn rejects_unknown_store() {
        assert!(Options::try_parse_from(["flotta-apiserver", "--store", "etcd3"]).is_err());
    }
}
