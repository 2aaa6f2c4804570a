//! `EdgeDeviceSet`: configuration shared by a group of devices. A device joins a set with the
//! label [`MEMBER_OF_LABEL`]; each configuration section of a member then comes entirely from
//! the set. Sets do not affect workload placement. The status (Flotta's was empty) reports the
//! member count, `observedGeneration` and a `Ready` condition, kept by the controllers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::device_config::{
    DeviceConfigSections, HeartbeatConfiguration, LogCollectionConfig, MetricsConfiguration, Mount,
    OsInformation, Storage,
};
use super::field_path::FieldPath;
use crate::validation::FieldError;

/// The EdgeDevice label that names the device's `EdgeDeviceSet`.
pub const MEMBER_OF_LABEL: &str = "flotta/member-of";

/// Configuration applied to every member device of the set.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "management.project-flotta.io",
    version = "v1alpha1",
    kind = "EdgeDeviceSet",
    plural = "edgedevicesets",
    namespaced,
    status = "EdgeDeviceSetStatus",
    category = "flotta",
    derive = "PartialEq",
    derive = "Default",
    doc = "Configuration shared by the edge devices labelled flotta/member-of=<name>."
)]
#[serde(rename_all = "camelCase")]
pub struct EdgeDeviceSetSpec {
    /// Heartbeat settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatConfiguration>,
    /// Data upload storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Metrics collection and upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfiguration>,
    /// Log collection targets, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_collection: Option<BTreeMap<String, LogCollectionConfig>>,
    /// Desired OS image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_information: Option<OsInformation>,
    /// Block devices to mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
}

/// Status of an `EdgeDeviceSet`. Flotta's was empty; these fields are additive and written by
/// the device-set controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeDeviceSetStatus {
    /// The `metadata.generation` the device-set controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How many live EdgeDevices of the namespace carry `flotta/member-of=<this set>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<i64>,
    /// Standard conditions; `Ready` is true once the controller has counted the members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// Every validation error of an `EdgeDeviceSet` (the CRD constraints of its sections).
pub fn validate_edge_device_set(set: &EdgeDeviceSet) -> Vec<FieldError> {
    let mut errors = Vec::new();
    DeviceConfigSections {
        heartbeat: set.spec.heartbeat.as_ref(),
        metrics: set.spec.metrics.as_ref(),
        log_collection: set.spec.log_collection.as_ref(),
    }
    .validate(&FieldPath::root("spec"), &mut errors);
    errors
}
