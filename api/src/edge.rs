//! The device wire format: the JSON that Flotta devices (yggd and the device worker) exchange
//! with the Edge API under `/api/flotta-management/v1`, field for field as Flotta's
//! `swagger.yaml` models (`flotta-inventory.md` §3.3–§3.4).
//!
//! Conventions, mirroring the Go models so an unmodified device understands us:
//! - optional scalars and objects are `Option` and are left out when `None` (Go `omitempty`);
//! - lists and maps default to empty, are left out when empty, and accept JSON `null` (a Go
//!   client serialises a nil slice as `null`), except the lists Flotta declares without
//!   `omitempty` (`workloads`, `playbook-executions`, `events`, `disks`, `gpus`,
//!   `interfaces`, `host_devices`, `mounts`, `ingress`, `egress`), which are always written;
//! - date-times are kept as the strings the device sent (RFC 3339 in practice), so an odd
//!   clock format never turns a heartbeat into an error;
//! - enums whose values Flotta does not validate on input (workload phases, heartbeat
//!   status, event type, …) are plain strings, with the documented values as constants.
//!
//! These types do no I/O and carry no validation beyond what deserialisation checks.

mod configuration;
mod hardware;
mod heartbeat;
mod message;
mod playbook;
mod registration;
mod workload;

pub use configuration::{
    AllowList, AnsibleManagerConfiguration, ComponentMetricsConfiguration, DeviceConfiguration,
    DeviceConfigurationMessage, HardwareProfileConfiguration, HeartbeatConfiguration,
    LogsCollectionInformation, MetricsConfiguration, MetricsReceiverConfiguration,
    MetricsRetention, Mount, OsInformation, S3StorageConfiguration, StorageConfiguration,
    SyslogConfig,
};
pub use hardware::{
    Boot, Cpu, Disk, Gpu, HardwareInfo, HostDevice, Interface, IoPerf, Memory, SystemVendor,
};
pub use heartbeat::{
    EVENT_TYPE_INFO, EVENT_TYPE_WARN, EventInfo, HEARTBEAT_STATUS_DEGRADED, HEARTBEAT_STATUS_UP,
    Heartbeat, PlaybookExecutionStatus, UpgradeStatus, WorkloadStatus,
};
pub use message::{Command, Message, MessageResponse, MessageType};
pub use playbook::PlaybookExecution;
pub use registration::{EnrolmentFeatures, EnrolmentInfo, RegistrationInfo, RegistrationResponse};
pub use workload::{
    ContainerMetrics, DataConfiguration, DataPath, ImageRegistries, Secret, Workload,
    WorkloadMetrics,
};

/// Base path of the device API.
pub const BASE_PATH: &str = "/api/flotta-management/v1";
/// Directive of a configuration message sent to the device (`GET data/{id}/in`).
pub const DIRECTIVE_DEVICE: &str = "device";
/// Directive of an enrolment request.
pub const DIRECTIVE_ENROLMENT: &str = "enrolment";
/// Directive of a registration (or certificate renewal) request.
pub const DIRECTIVE_REGISTRATION: &str = "registration";
/// Directive of a heartbeat.
pub const DIRECTIVE_HEARTBEAT: &str = "heartbeat";
/// Directive of a request for the device's playbook executions.
pub const DIRECTIVE_ANSIBLE: &str = "ansible";
/// The command telling a device to wipe its state and stop (`GET control/{id}/in`).
pub const COMMAND_DISCONNECT: &str = "disconnect";
/// Namespace used when neither the certificate nor the enrolment names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Deserialises a list or map that a Go client may send as `null` into its empty value.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    let value = <Option<T> as serde::Deserialize>::deserialize(deserializer)?;
    Ok(value.unwrap_or_default())
}

#[cfg(test)]
mod tests;
