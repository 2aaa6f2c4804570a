//! `heartbeat`: the periodic status report of a device (`flotta-inventory.md` §3.4, §3.8).
//!
//! `workloads`, `playbook-executions` and `events` are always written, as in Flotta. Status
//! strings are kept as sent: devices report podman states (`Running`, `Created`, …) rather
//! than the swagger enum, and Flotta never validated them.

use serde::{Deserialize, Serialize};

use super::hardware::HardwareInfo;
use super::null_as_default;

/// Heartbeat `status` of a healthy device.
pub const HEARTBEAT_STATUS_UP: &str = "up";
/// Heartbeat `status` of a degraded device.
pub const HEARTBEAT_STATUS_DEGRADED: &str = "degraded";
/// Event type of an informational device event.
pub const EVENT_TYPE_INFO: &str = "info";
/// Event type of a warning device event.
pub const EVENT_TYPE_WARN: &str = "warn";

/// A device heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `up` or `degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The configuration version the device applied (the EdgeDevice `resourceVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Workload states.
    #[serde(default, deserialize_with = "null_as_default")]
    pub workloads: Vec<WorkloadStatus>,
    /// Playbook execution states.
    #[serde(
        rename = "playbook-executions",
        default,
        deserialize_with = "null_as_default"
    )]
    pub playbook_executions: Vec<PlaybookExecutionStatus>,
    /// OS upgrade state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeStatus>,
    /// Hardware inventory (full or delta, per the heartbeat configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareInfo>,
    /// Events the device reports.
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<EventInfo>,
}

/// State of one workload on the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    /// Workload name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Last data upload (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_data_upload: Option<String>,
    /// Phase as the device reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// State of one playbook execution on the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookExecutionStatus {
    /// PlaybookExecution name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Last data upload (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_data_upload: Option<String>,
    /// `Deploying`, `TargetVerification`, `Running`, `SuccessfullyCompleted` or
    /// `CompletedWithError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// OS upgrade state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeStatus {
    /// Booted commit (note the wire name's capitals).
    #[serde(
        rename = "current_commit_ID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_commit_id: Option<String>,
    /// `succeeded` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upgrade_status: Option<String>,
    /// Time of the last upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upgrade_time: Option<String>,
}

/// An event the device reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// Short reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `info` or `warn`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
}
