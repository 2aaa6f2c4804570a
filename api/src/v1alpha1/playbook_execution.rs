//! `PlaybookExecution`: one run of an ansible playbook on one device, created by the EdgeConfig
//! controller as `<device>-<edgeconfig>` and owned by the `EdgeConfig`. Its status conditions are
//! also what `EdgeDevice.status.PlaybookExec[].PlaybookExecutionStatus` carries.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::edge_config::Playbook;
use super::field_path::{FieldPath, require_non_empty};
use crate::validation::FieldError;

/// Condition type: the execution is being sent to the device.
pub const PLAYBOOK_EXECUTION_DEPLOYING: &str = "Deploying";
/// Condition type: the device is checking that it is the right target.
pub const PLAYBOOK_EXECUTION_TARGET_VERIFICATION: &str = "TargetVerification";
/// Condition type: the playbook is running.
pub const PLAYBOOK_EXECUTION_RUNNING: &str = "Running";
/// Condition type: the playbook finished without errors.
pub const PLAYBOOK_EXECUTION_SUCCESSFULLY_COMPLETED: &str = "SuccessfullyCompleted";
/// Condition type: the playbook finished with errors.
pub const PLAYBOOK_EXECUTION_COMPLETED_WITH_ERROR: &str = "CompletedWithError";

/// A playbook to run on one device.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "management.project-flotta.io",
    version = "v1alpha1",
    kind = "PlaybookExecution",
    plural = "playbookexecutions",
    namespaced,
    status = "PlaybookExecutionStatus",
    category = "flotta",
    derive = "PartialEq",
    derive = "Default",
    doc = "One execution of an ansible playbook on one edge device.",
    printcolumn = r#"{"name":"Attempt","type":"integer","jsonPath":".spec.executionAttempt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookExecutionSpec {
    /// The playbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<Playbook>,
    /// How many times the playbook has been executed; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 0))]
    pub execution_attempt: Option<u8>,
}

/// Observed state of a playbook execution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookExecutionStatus {
    /// Conditions, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<PlaybookExecutionCondition>>,
}

/// A condition of a playbook (execution): `{type, status, reason, message, lastTransitionTime}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["type", "status"]))]
pub struct PlaybookExecutionCondition {
    /// Condition type, e.g. `Running`. Required.
    #[serde(rename = "type", default)]
    #[schemars(transform = super::schema::drop_default)]
    pub type_: String,
    /// `True`, `False` or `Unknown`. Required.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub status: String,
    /// One-word CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the condition last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl PlaybookExecutionCondition {
    pub(crate) fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        require_non_empty(&self.type_, &path.child("type"), errors);
        require_non_empty(&self.status, &path.child("status"), errors);
    }
}

impl PlaybookExecutionStatus {
    pub(crate) fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        for (i, condition) in self.conditions.iter().flatten().enumerate() {
            condition.validate(&path.child("conditions").index(i), errors);
        }
    }
}

/// Every validation error of a `PlaybookExecution`: its playbook's CRD constraints and the
/// required condition fields.
pub fn validate_playbook_execution(execution: &PlaybookExecution) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(playbook) = &execution.spec.playbook {
        playbook.validate(&FieldPath::root("spec").child("playbook"), &mut errors);
    }
    if let Some(status) = &execution.status {
        status.validate(&FieldPath::root("status"), &mut errors);
    }
    errors
}
