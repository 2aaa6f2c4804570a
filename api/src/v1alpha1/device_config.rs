//! The device configuration sections that `EdgeDevice` and `EdgeDeviceSet` share: OS image,
//! heartbeat, storage, metrics, log collection and mounts (Flotta's `edgedevice_types.go`).
//!
//! Every field is optional on the wire; defaults that the original CRDs declare (for example a
//! metrics interval of 60 s) appear in the schema and as constants here, but are not filled in
//! on deserialisation, so that a manifest round-trips unchanged. Whoever renders the device
//! configuration applies them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_path::{FieldPath, check_minimum};
use super::name_ref::NameRef;
use crate::validation::FieldError;

/// The metrics scrape interval, in seconds, when `interval` is not set.
pub const DEFAULT_METRICS_INTERVAL_SECONDS: i32 = 60;
/// The log-collection buffer size, in KiB, when `bufferSize` is not set.
pub const DEFAULT_LOG_BUFFER_SIZE_KIB: i32 = 12;
/// The only log collection `kind` Flotta supports.
pub const LOG_COLLECTION_KIND_SYSLOG: &str = "syslog";
/// Hardware profile scope: report the whole hardware inventory in every heartbeat.
pub const HARDWARE_PROFILE_SCOPE_FULL: &str = "full";
/// Hardware profile scope: report only what changed since the last heartbeat.
pub const HARDWARE_PROFILE_SCOPE_DELTA: &str = "delta";

/// The desired OS image of a device (rpm-ostree).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsInformation {
    /// Upgrade the OS image automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatically_upgrade: Option<bool>,
    /// The ostree commit of the desired OS image.
    #[serde(rename = "commitID", default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
    /// URL of the web server that hosts the ostree repository.
    #[serde(
        rename = "hostedObjectsURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub hosted_objects_url: Option<String>,
}

/// How often the device reports a heartbeat, and what it includes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatConfiguration {
    /// What hardware information the heartbeat carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_profile: Option<HardwareProfileConfiguration>,
    /// Seconds between heartbeats; at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub period_seconds: Option<i64>,
}

/// Whether, and how much, hardware information goes into heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfileConfiguration {
    /// Include hardware information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<bool>,
    /// `full` or `delta` (not enforced, as in Flotta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Where the device uploads workload data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// S3-compatible object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// S3 storage: either an ObjectBucketClaim created for the device, or an external bucket given
/// by a ConfigMap and a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Secret with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally `tls.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// ConfigMap with `BUCKET_NAME`, `BUCKET_HOST`, `BUCKET_PORT` and `BUCKET_REGION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// Create an ObjectBucketClaim for the device. Not allowed together with `secretName` or
    /// `configMapName`.
    #[serde(rename = "createOBC", default, skip_serializing_if = "Option::is_none")]
    pub create_obc: Option<bool>,
}

/// Metrics collection on the device and remote write to a receiver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsConfiguration {
    /// How long and how much the device keeps metrics locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// System (node_exporter) metrics.
    #[serde(rename = "system", default, skip_serializing_if = "Option::is_none")]
    pub system_metrics: Option<ComponentMetricsConfiguration>,
    /// Data-transfer metrics.
    #[serde(
        rename = "dataTransfer",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub data_transfer_metrics: Option<ComponentMetricsConfiguration>,
    /// The Prometheus remote-write receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_configuration: Option<MetricsReceiverConfiguration>,
}

/// Local retention of metrics on the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Disk space for persisted metrics, in MiB; at least 0.
    #[serde(rename = "maxMiB", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_mib: Option<i32>,
    /// How long persisted metrics are kept, in hours; at least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_hours: Option<i32>,
}

/// Collection settings for one kind of device metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentMetricsConfiguration {
    /// Scrape interval in seconds; at least 0, default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0), extend("default" = 60))]
    pub interval: Option<i32>,
    /// ConfigMap whose `metrics_list.yaml` lists the metrics to collect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_list: Option<NameRef>,
    /// Turn this collection off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// Where and how the device sends its metrics (Prometheus remote write).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsReceiverConfiguration {
    /// Samples per remote-write request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_num_samples: Option<i64>,
    /// Remote-write request timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Remote-write URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret whose `ca.crt` verifies an https receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_name: Option<String>,
}

/// One log-collection target of a device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogCollectionConfig {
    /// The kind of log collection; only `syslog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["syslog"]))]
    pub kind: Option<String>,
    /// Buffer size on the device in KiB; at least 1, default 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 12))]
    pub buffer_size: Option<i32>,
    /// ConfigMap with the syslog `Address` and `Protocol`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog_config: Option<NameRef>,
}

/// A block device to mount on the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Device path to mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Directory to mount it on.
    #[serde(rename = "folder", default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// File-system type, e.g. `ext4`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Mount options, e.g. `rw,suid,dev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// The configuration sections that both `EdgeDevice` and `EdgeDeviceSet` specs carry, borrowed
/// so that one validator serves both.
pub(crate) struct DeviceConfigSections<'a> {
    pub(crate) heartbeat: Option<&'a HeartbeatConfiguration>,
    pub(crate) metrics: Option<&'a MetricsConfiguration>,
    pub(crate) log_collection: Option<&'a BTreeMap<String, LogCollectionConfig>>,
}

impl DeviceConfigSections<'_> {
    /// The CRD constraints of these sections, under `spec`.
    pub(crate) fn validate(&self, spec: &FieldPath, errors: &mut Vec<FieldError>) {
        if let Some(heartbeat) = self.heartbeat {
            let path = spec.child("heartbeat");
            check_minimum(
                heartbeat.period_seconds,
                1,
                &path.child("periodSeconds"),
                errors,
            );
        }
        if let Some(metrics) = self.metrics {
            let path = spec.child("metrics");
            if let Some(retention) = &metrics.retention {
                let path = path.child("retention");
                check_minimum(retention.max_mib, 0, &path.child("maxMiB"), errors);
                check_minimum(retention.max_hours, 0, &path.child("maxHours"), errors);
            }
            let components = [
                ("system", &metrics.system_metrics),
                ("dataTransfer", &metrics.data_transfer_metrics),
            ];
            for (name, component) in components {
                if let Some(component) = component {
                    let path = path.child(name);
                    check_minimum(component.interval, 0, &path.child("interval"), errors);
                    if let Some(allow_list) = &component.allow_list {
                        allow_list.validate(&path.child("allowList"), errors);
                    }
                }
            }
        }
        if let Some(targets) = self.log_collection {
            let path = spec.child("logCollection");
            for (name, target) in targets {
                let path = path.key(name);
                if let Some(kind) = &target.kind
                    && kind != LOG_COLLECTION_KIND_SYSLOG
                {
                    errors.push(
                        path.child("kind")
                            .not_supported(kind, &[LOG_COLLECTION_KIND_SYSLOG]),
                    );
                }
                check_minimum(target.buffer_size, 1, &path.child("bufferSize"), errors);
                if let Some(syslog) = &target.syslog_config {
                    syslog.validate(&path.child("syslogConfig"), errors);
                }
            }
        }
    }
}
