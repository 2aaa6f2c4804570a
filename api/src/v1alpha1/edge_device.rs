//! `EdgeDevice`: one enrolled device, its desired configuration (`spec`) and what it reports
//! (`status`), with Flotta's JSON including the capitalised `PlaybookExec` and
//! `PlaybookExecutionStatus` status keys, which are the wire format of existing objects.
//!
//! Validation covers the original CRD constraints and Flotta's EdgeDevice webhook rule
//! (`createOBC` together with an external bucket). Flotta never served that webhook; we do.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::device_config::{
    DeviceConfigSections, HeartbeatConfiguration, LogCollectionConfig, MetricsConfiguration, Mount,
    OsInformation, Storage,
};
use super::field_path::{FieldPath, require_non_empty};
use super::hardware::Hardware;
use super::playbook_execution::PlaybookExecutionStatus;
use crate::validation::FieldError;

/// Workload phase the controller records when it assigns a workload to a device.
pub const WORKLOAD_PHASE_DEPLOYING: &str = "Deploying";
/// Workload phase of a running workload.
pub const WORKLOAD_PHASE_RUNNING: &str = "Running";
/// Workload phase of a workload whose containers exited.
pub const WORKLOAD_PHASE_EXITED: &str = "Exited";

/// Desired state of an edge device.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "management.project-flotta.io",
    version = "v1alpha1",
    kind = "EdgeDevice",
    plural = "edgedevices",
    namespaced,
    status = "EdgeDeviceStatus",
    category = "flotta",
    derive = "PartialEq",
    derive = "Default",
    doc = "An edge device managed by Flotta.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Commit","type":"string","priority":1,"jsonPath":".status.upgradeInformation.currentCommitID"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","priority":1,"jsonPath":".status.lastSyncedResourceVersion"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EdgeDeviceSpec {
    /// Desired OS image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_information: Option<OsInformation>,
    /// Time of the device's registration request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_time: Option<Time>,
    /// Heartbeat settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatConfiguration>,
    /// Data upload storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// Metrics collection and upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfiguration>,
    /// Log collection targets, by name; workloads refer to them by this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_collection: Option<BTreeMap<String, LogCollectionConfig>>,
    /// Block devices to mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
}

/// Observed state of an edge device, as reported by its heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeDeviceStatus {
    /// Device status from the last heartbeat (`up`, `degraded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The configuration version the device last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_resource_version: Option<String>,
    /// Hardware inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Hardware>,
    /// Workloads assigned to the device, with their state on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<Vec<DeviceWorkload>>,
    /// Playbook executions of the device (capitalised JSON key, as in Flotta).
    #[serde(
        rename = "PlaybookExec",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub playbook_executions: Option<Vec<PlaybookExec>>,
    /// Name of the ObjectBucketClaim created for the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_obc: Option<String>,
    /// OS upgrade state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_information: Option<UpgradeInformation>,
    /// When the device's last heartbeat arrived (an addition of Flotta in Rust, not in
    /// Flotta's CRD). Served from the server's memory when the object is read or watched;
    /// written to the store only by a low-rate checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
    /// Whether the device is online: its last heartbeat is at most the configured number of
    /// heartbeat periods old (an addition of Flotta in Rust). Written to the store only when
    /// it changes, so a device going offline or coming back is a watch event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
}

/// A workload on a device (`status.workloads[]`; Flotta's `Workload`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["name"]))]
pub struct DeviceWorkload {
    /// Name of the `EdgeWorkload`. Required.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub name: String,
    /// Phase; the device reports podman's pod status (`Running`, `Created`, `Exited`, ...), the
    /// controller sets `Deploying`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// When the device last uploaded the workload's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_data_upload: Option<Time>,
}

/// A playbook execution recorded on a device (`status.PlaybookExec[]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["name"]))]
pub struct PlaybookExec {
    /// Name of the `PlaybookExecution`. Required.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub name: String,
    /// Its conditions (capitalised JSON key, as in Flotta).
    #[serde(
        rename = "PlaybookExecutionStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub playbook_execution_status: Option<PlaybookExecutionStatus>,
}

/// OS upgrade state reported by the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["currentCommitID"]))]
pub struct UpgradeInformation {
    /// The ostree commit the device runs (may be empty on non-ostree hosts).
    #[serde(rename = "currentCommitID", default)]
    #[schemars(transform = super::schema::drop_default)]
    pub current_commit_id: String,
    /// Result of the last upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upgrade_status: Option<String>,
    /// Time of the last upgrade, as the device reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upgrade_time: Option<String>,
}

/// Every validation error of an `EdgeDevice`: the CRD constraints of spec and status, and
/// Flotta's webhook rule that `spec.storage.s3.createOBC=true` excludes `secretName` and
/// `configMapName`.
pub fn validate_edge_device(device: &EdgeDevice) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = FieldPath::root("spec");
    DeviceConfigSections {
        heartbeat: device.spec.heartbeat.as_ref(),
        metrics: device.spec.metrics.as_ref(),
        log_collection: device.spec.log_collection.as_ref(),
    }
    .validate(&spec, &mut errors);

    if let Some(s3) = device.spec.storage.as_ref().and_then(|s| s.s3.as_ref())
        && s3.create_obc == Some(true)
    {
        let has_secret = s3.secret_name.as_deref().is_some_and(|s| !s.is_empty());
        let has_config_map = s3.config_map_name.as_deref().is_some_and(|s| !s.is_empty());
        if has_secret || has_config_map {
            errors.push(
                spec.child("storage")
                    .child("s3")
                    .child("createOBC")
                    .invalid(
                        true,
                        "createOBC=true is invalid when spec.storage.s3.secretName or \
                 spec.storage.s3.configMapName is set; either set createOBC=false or remove \
                 secretName and configMapName",
                    ),
            );
        }
    }

    if let Some(status) = &device.status {
        validate_status(status, &FieldPath::root("status"), &mut errors);
    }
    errors
}

fn validate_status(status: &EdgeDeviceStatus, path: &FieldPath, errors: &mut Vec<FieldError>) {
    for (i, workload) in status.workloads.iter().flatten().enumerate() {
        require_non_empty(
            &workload.name,
            &path.child("workloads").index(i).child("name"),
            errors,
        );
    }
    for (i, exec) in status.playbook_executions.iter().flatten().enumerate() {
        let path = path.child("PlaybookExec").index(i);
        require_non_empty(&exec.name, &path.child("name"), errors);
        if let Some(exec_status) = &exec.playbook_execution_status {
            exec_status.validate(&path.child("PlaybookExecutionStatus"), errors);
        }
    }
}
