//! `workload` and `secret`: the workload entries of a device configuration
//! (`flotta-inventory.md` §3.4–§3.5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::null_as_default;

/// One workload for the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// EdgeWorkload name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// EdgeWorkload namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// EdgeWorkload labels with the `podman/` prefix, prefix stripped.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// EdgeWorkload annotations with the `podman/` prefix, prefix stripped.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The PodSpec as YAML text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specification: Option<String>,
    /// Data synchronisation paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfiguration>,
    /// Image registry credentials.
    #[serde(
        rename = "imageRegistries",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub image_registries: Option<ImageRegistries>,
    /// Workload metrics scraping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<WorkloadMetrics>,
    /// ConfigMaps, each a full `v1` ConfigMap as YAML text.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub configmaps: Vec<String>,
    /// Name of the log collection target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_collection: Option<String>,
}

/// Data synchronisation paths of a workload; both lists are always written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataConfiguration {
    /// Paths to download to the device.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ingress: Vec<DataPath>,
    /// Paths to upload from the device.
    #[serde(default, deserialize_with = "null_as_default")]
    pub egress: Vec<DataPath>,
}

/// One synchronised path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPath {
    /// Source path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Target path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Image registry credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRegistries {
    /// Raw `.dockerconfigjson` content.
    #[serde(rename = "authFile", default, skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<String>,
}

/// Workload metrics scraping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadMetrics {
    /// Scrape path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Scrape port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Scrape interval in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i32>,
    /// Metric names to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_list: Option<super::configuration::AllowList>,
    /// Per-container overrides.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub containers: BTreeMap<String, ContainerMetrics>,
}

/// Metrics override of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    /// Whether scraping this container is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Scrape path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Scrape port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// A secret for the device's workloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON text of `{key: base64(value)}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}
