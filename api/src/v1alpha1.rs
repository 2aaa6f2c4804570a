//! The `management.project-flotta.io/v1alpha1` resource types: `EdgeDevice`, `EdgeDeviceSet`,
//! `EdgeWorkload`, `EdgeDeviceSignedRequest`, `EdgeConfig` and `PlaybookExecution`, with
//! Flotta's JSON, their OpenAPI v3 schemas, and their validation.
//!
//! The kinds are derived with kube's `CustomResource`: `EdgeDevice::crd()` gives the CRD-shaped
//! description (names, scope, status subresource, printer columns, schema) that the API server
//! publishes in discovery and OpenAPI. Optional fields are `Option`s that are skipped when
//! absent, so a manifest round-trips unchanged. Fields the original CRDs require deserialise to
//! an empty value when absent and are then reported by the kind's `validate_*` function as
//! `Required`, so the client gets a 422 with a field path rather than a decoding error.
//! Defaults the original CRDs declare appear in the schema and as constants; they are not
//! applied on deserialisation (except an EDSR condition's `type`, see there).

mod device_config;
mod edge_config;
mod edge_device;
mod edge_device_set;
mod edge_device_signed_request;
mod edge_workload;
mod field_path;
mod hardware;
mod name_ref;
mod playbook_execution;
mod schema;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use device_config::{
    ComponentMetricsConfiguration, DEFAULT_LOG_BUFFER_SIZE_KIB, DEFAULT_METRICS_INTERVAL_SECONDS,
    HARDWARE_PROFILE_SCOPE_DELTA, HARDWARE_PROFILE_SCOPE_FULL, HardwareProfileConfiguration,
    HeartbeatConfiguration, LOG_COLLECTION_KIND_SYSLOG, LogCollectionConfig, MetricsConfiguration,
    MetricsReceiverConfiguration, Mount, OsInformation, Retention, S3Storage, Storage,
};
pub use edge_config::{
    AnsibleOptions, BECOME_METHODS, CAPABILITY_NAMES, EDGE_PLAYBOOK_COMPLETED,
    EDGE_PLAYBOOK_DEPLOYING, EXECUTION_STRATEGY_EXECUTE_ONCE, EXECUTION_STRATEGY_RETRY_ON_FAILURE,
    EXECUTION_STRATEGY_STOP_ON_FAILURE, EdgeConfig, EdgeConfigSpec, EdgeConfigStatus,
    EdgePlaybookCondition, EdgePlaybookSpec, EdgePlaybookStatus, Playbook,
    PrivilegeEscalationOptions, RequiredPrivilegeLevel, validate_edge_config,
};
pub use edge_device::{
    DeviceWorkload, EdgeDevice, EdgeDeviceSpec, EdgeDeviceStatus, PlaybookExec, UpgradeInformation,
    WORKLOAD_PHASE_DEPLOYING, WORKLOAD_PHASE_EXITED, WORKLOAD_PHASE_RUNNING, validate_edge_device,
};
pub use edge_device_set::{
    EdgeDeviceSet, EdgeDeviceSetSpec, EdgeDeviceSetStatus, MEMBER_OF_LABEL,
    validate_edge_device_set,
};
pub use edge_device_signed_request::{
    EDSR_CONDITION_APPROVED, EDSR_CONDITION_DECLINED, EDSR_CONDITION_PENDING, EDSR_CONDITION_TYPES,
    EDSR_LABEL_NAME, EDSR_LABEL_VALUE, EdgeDeviceSignedRequest, EdgeDeviceSignedRequestCondition,
    EdgeDeviceSignedRequestSpec, EdgeDeviceSignedRequestStatus, Features,
    validate_edge_device_signed_request,
};
pub use edge_workload::{
    ContainerMetricsConfiguration, DEFAULT_METRICS_PATH, DataConfiguration, DataPath, EdgeWorkload,
    EdgeWorkloadSpec, EdgeWorkloadStatus, ImageRegistriesConfiguration, MetricsConfigEntity, Pod,
    RESERVED_HOST_PORT, WORKLOAD_TYPE_POD, validate_edge_workload,
};
pub use hardware::{
    Boot, Cpu, Disk, Gpu, Hardware, HostDevice, Interface, IoPerf, Memory, SystemVendor,
};
pub use name_ref::NameRef;
pub use playbook_execution::{
    PLAYBOOK_EXECUTION_COMPLETED_WITH_ERROR, PLAYBOOK_EXECUTION_DEPLOYING,
    PLAYBOOK_EXECUTION_RUNNING, PLAYBOOK_EXECUTION_SUCCESSFULLY_COMPLETED,
    PLAYBOOK_EXECUTION_TARGET_VERIFICATION, PlaybookExecution, PlaybookExecutionCondition,
    PlaybookExecutionSpec, PlaybookExecutionStatus, validate_playbook_execution,
};
pub use schema::object_schema;

/// The API group of every kind here.
pub const GROUP: &str = "management.project-flotta.io";
/// The API version of every kind here.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every kind here.
pub const API_VERSION: &str = "management.project-flotta.io/v1alpha1";

/// The CRD-shaped descriptions of all six kinds, in a fixed order: EdgeDevice, EdgeDeviceSet,
/// EdgeWorkload, EdgeDeviceSignedRequest, EdgeConfig, PlaybookExecution.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        EdgeDevice::crd(),
        EdgeDeviceSet::crd(),
        EdgeWorkload::crd(),
        EdgeDeviceSignedRequest::crd(),
        EdgeConfig::crd(),
        PlaybookExecution::crd(),
    ]
}
