//! `EdgeConfig`: ansible playbooks to run on the devices labelled
//! `config/device-by-config=<name>`, and the [`Playbook`] type that `PlaybookExecution` shares.
//!
//! Only a playbook's `content` reaches the device; the user, timeout, capabilities, become
//! options and execution strategy are stored as Flotta stores them. Capabilities are integers on
//! the wire (Flotta's `CapType` is an `int8` in Linux capability order).

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_path::FieldPath;
use super::playbook_execution::PlaybookExecutionCondition;
use crate::validation::FieldError;

/// Condition type of an EdgeConfig's playbook: being deployed.
pub const EDGE_PLAYBOOK_DEPLOYING: &str = "Deploying";
/// Condition type of an EdgeConfig's playbook: completed.
pub const EDGE_PLAYBOOK_COMPLETED: &str = "Completed";
/// Execution strategy: stop at the first failure.
pub const EXECUTION_STRATEGY_STOP_ON_FAILURE: &str = "StopOnFailure";
/// Execution strategy: retry after a failure.
pub const EXECUTION_STRATEGY_RETRY_ON_FAILURE: &str = "RetryOnFailure";
/// Execution strategy: run once.
pub const EXECUTION_STRATEGY_EXECUTE_ONCE: &str = "ExecuteOnce";
/// The privilege escalation methods Flotta accepts.
pub const BECOME_METHODS: [&str; 2] = ["sudo", "su"];

/// Linux capability names in Flotta's `CapType` order: the wire value is the index.
pub const CAPABILITY_NAMES: [&str; 38] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
];

/// Playbooks for the targeted devices.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "management.project-flotta.io",
    version = "v1alpha1",
    kind = "EdgeConfig",
    plural = "edgeconfigs",
    namespaced,
    status = "EdgeConfigStatus",
    category = "flotta",
    derive = "PartialEq",
    derive = "Default",
    doc = "Ansible playbooks for the edge devices labelled config/device-by-config=<name>."
)]
#[serde(rename_all = "camelCase")]
pub struct EdgeConfigSpec {
    /// The playbooks to execute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_playbook: Option<EdgePlaybookSpec>,
}

/// Observed state of an `EdgeConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeConfigStatus {
    /// Playbook conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_playbook_status: Option<EdgePlaybookStatus>,
    /// The `metadata.generation` the EdgeConfig controller last acted on (additive to
    /// Flotta's status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions (additive to Flotta's status); `Ready` is true once every
    /// targeted device has its PlaybookExecutions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// Who runs which playbooks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgePlaybookSpec {
    /// The user who executes the playbooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The playbooks, highest priority first; at least one when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub playbooks: Option<Vec<Playbook>>,
}

/// Conditions of an `EdgeConfig`'s playbooks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgePlaybookStatus {
    /// Conditions (`Deploying`, `Completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<EdgePlaybookCondition>>,
}

/// A condition of an `EdgeConfig`'s playbooks; the same shape as a playbook execution's.
pub type EdgePlaybookCondition = PlaybookExecutionCondition;

/// An ansible playbook and how to run it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["content"]))]
pub struct Playbook {
    /// The playbook YAML (base64 in JSON). Required.
    #[serde(default)]
    #[schemars(with = "String", extend("format" = "byte"), transform = super::schema::drop_default)]
    pub content: ByteString,
    /// Connection timeout of ansible-playbook, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Capabilities the playbook needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_privilege_level: Option<RequiredPrivilegeLevel>,
    /// ansible-playbook options.
    #[serde(
        rename = "ansibleOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub options: Option<AnsibleOptions>,
    /// Privilege escalation options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privilege_escalation_options: Option<PrivilegeEscalationOptions>,
    /// `StopOnFailure`, `RetryOnFailure` or `ExecuteOnce` (not enforced, as in Flotta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_strategy: Option<String>,
}

/// Linux capabilities to add and drop, by [`CAPABILITY_NAMES`] index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequiredPrivilegeLevel {
    /// Capabilities to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_add: Option<Vec<i8>>,
    /// Capabilities to drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_drop: Option<Vec<i8>>,
}

/// ansible-playbook options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnsibleOptions {
    /// Dry run: predict changes instead of making them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<bool>,
}

/// ansible privilege escalation (`become`) options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivilegeEscalationOptions {
    /// Escalate privileges.
    #[serde(rename = "become", default, skip_serializing_if = "Option::is_none")]
    pub become_: Option<bool>,
    /// `sudo` or `su`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["sudo", "su"]))]
    pub become_method: Option<String>,
    /// The user to become.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
}

impl Playbook {
    pub(crate) fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        if self.content.0.is_empty() {
            errors.push(path.child("content").required());
        }
        if let Some(method) = self
            .privilege_escalation_options
            .as_ref()
            .and_then(|o| o.become_method.as_deref())
            && !BECOME_METHODS.contains(&method)
        {
            errors.push(
                path.child("privilegeEscalationOptions")
                    .child("becomeMethod")
                    .not_supported(method, &BECOME_METHODS),
            );
        }
    }
}

/// Every validation error of an `EdgeConfig`: at least one playbook when `playbooks` is given,
/// each with content and a supported `becomeMethod`, and the required condition fields.
pub fn validate_edge_config(config: &EdgeConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(edge_playbook) = &config.spec.edge_playbook {
        let path = FieldPath::root("spec")
            .child("edgePlaybook")
            .child("playbooks");
        if let Some(playbooks) = &edge_playbook.playbooks {
            if playbooks.is_empty() {
                errors.push(path.invalid("[]", "must have at least 1 items"));
            }
            for (i, playbook) in playbooks.iter().enumerate() {
                playbook.validate(&path.index(i), &mut errors);
            }
        }
    }
    if let Some(status) = config
        .status
        .as_ref()
        .and_then(|s| s.edge_playbook_status.as_ref())
    {
        let path = FieldPath::root("status")
            .child("edgePlaybookStatus")
            .child("conditions");
        for (i, condition) in status.conditions.iter().flatten().enumerate() {
            condition.validate(&path.index(i), &mut errors);
        }
    }
    errors
}
