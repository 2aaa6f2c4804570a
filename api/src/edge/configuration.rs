//! `device-configuration-message` and `device-configuration`: what `GET data/{id}/in`
//! returns to a device (`flotta-inventory.md` §3.4–§3.5).
//!
//! `workloads`, `secrets` and `mounts` are always written (empty lists rather than absent),
//! which Go devices treat the same as Flotta's output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::null_as_default;
use super::workload::{Secret, Workload};

/// The full configuration of one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceConfigurationMessage {
    /// Device name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Configuration version (the EdgeDevice `resourceVersion`); the device echoes it in
    /// heartbeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Device-level configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<DeviceConfiguration>,
    /// Workloads to run.
    #[serde(default, deserialize_with = "null_as_default")]
    pub workloads: Vec<Workload>,
    /// Workload monitoring interval in seconds (the device defaults to 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads_monitoring_interval: Option<i64>,
    /// Secrets referenced by the workloads.
    #[serde(default, deserialize_with = "null_as_default")]
    pub secrets: Vec<Secret>,
}

/// Device-level configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceConfiguration {
    /// Ansible manager settings.
    #[serde(
        rename = "ansible-manager",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ansible_manager: Option<AnsibleManagerConfiguration>,
    /// Heartbeat settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatConfiguration>,
    /// Data upload storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageConfiguration>,
    /// Metrics collection and upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfiguration>,
    /// Desired OS image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsInformation>,
    /// Log collection targets by name.
    #[serde(
        rename = "log-collection",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub log_collection: BTreeMap<String, LogsCollectionInformation>,
    /// Block devices to mount.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mounts: Vec<Mount>,
}

/// Ansible manager settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsibleManagerConfiguration {
    /// Polling period in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i64>,
}

/// Heartbeat settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatConfiguration {
    /// Heartbeat period in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i64>,
    /// Hardware reporting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_profile: Option<HardwareProfileConfiguration>,
}

/// Which hardware information heartbeats carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareProfileConfiguration {
    /// Whether to include hardware at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<bool>,
    /// `full` or `delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Data upload storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageConfiguration {
    /// S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3StorageConfiguration>,
}

/// An S3 bucket. The key id, secret key and CA bundle are base64-encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3StorageConfiguration {
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_host: Option<String>,
    /// Port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_port: Option<i32>,
    /// Bucket name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_region: Option<String>,
    /// Access key id, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_access_key_id: Option<String>,
    /// Secret access key, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<String>,
    /// CA bundle (PEM), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ca_bundle: Option<String>,
}

/// Metrics collection and upload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsConfiguration {
    /// Local retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<MetricsRetention>,
    /// System (node_exporter) metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<ComponentMetricsConfiguration>,
    /// Data-transfer metrics.
    #[serde(
        rename = "data-transfer",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_transfer: Option<ComponentMetricsConfiguration>,
    /// Remote-write receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<MetricsReceiverConfiguration>,
}

/// Local metrics retention.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsRetention {
    /// Maximum size in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mib: Option<i32>,
    /// Maximum age in hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hours: Option<i32>,
}

/// Settings of one metrics component (system, data transfer).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentMetricsConfiguration {
    /// Scrape interval in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i32>,
    /// Metric names to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_list: Option<AllowList>,
    /// Whether collection is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A list of metric names to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowList {
    /// Metric names.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names: Vec<String>,
}

/// Prometheus remote-write receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsReceiverConfiguration {
    /// Receiver URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Request timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Samples per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_num_samples: Option<i64>,
    /// CA certificate (PEM) for an https receiver.
    #[serde(rename = "caCert", default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

/// Desired OS image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInformation {
    /// Commit to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
    /// Where the ostree objects are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_objects_url: Option<String>,
    /// Whether to upgrade automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatically_upgrade: Option<bool>,
}

/// A log collection target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsCollectionInformation {
    /// Kind of target (`syslog`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Buffer size in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_size: Option<i32>,
    /// Syslog server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog_config: Option<SyslogConfig>,
}

/// A syslog server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyslogConfig {
    /// `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `tcp` or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A block device to mount; the API objects call `directory` `folder`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Block device path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Mount point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// File system type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Mount options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}
