//! `EdgeDeviceSignedRequest` (short name `edsr`): a device's enrolment request, named after the
//! device ID. Approving it creates the `EdgeDevice` in `spec.targetNamespace`.
//!
//! The plural is `edgedevicesignedrequests` (Flotta's CRD used the singular as plural; §8.3).
//! Flotta's condition `status` values are lowercase (`"true"`); they are kept as strings.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_path::{FieldPath, require_non_empty};
use super::hardware::Hardware;
use crate::validation::FieldError;

/// Label put on devices created from an approved request.
pub const EDSR_LABEL_NAME: &str = "edgedeviceSignedRequest";
/// Value of [`EDSR_LABEL_NAME`].
pub const EDSR_LABEL_VALUE: &str = "true";
/// Condition type: the request was approved.
pub const EDSR_CONDITION_APPROVED: &str = "approved";
/// Condition type: the request waits for approval.
pub const EDSR_CONDITION_PENDING: &str = "pending";
/// Condition type: the request was declined.
pub const EDSR_CONDITION_DECLINED: &str = "declined";
/// Every valid condition type.
pub const EDSR_CONDITION_TYPES: [&str; 3] = [
    EDSR_CONDITION_DECLINED,
    EDSR_CONDITION_APPROVED,
    EDSR_CONDITION_PENDING,
];

/// A device's request to enrol.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "management.project-flotta.io",
    version = "v1alpha1",
    kind = "EdgeDeviceSignedRequest",
    plural = "edgedevicesignedrequests",
    shortname = "edsr",
    namespaced,
    status = "EdgeDeviceSignedRequestStatus",
    category = "flotta",
    derive = "PartialEq",
    derive = "Default",
    doc = "An edge device's enrolment request; approving it creates the EdgeDevice.",
    printcolumn = r#"{"name":"TargetNamespace","type":"string","jsonPath":".spec.targetNamespace"}"#,
    printcolumn = r#"{"name":"Approved","type":"boolean","jsonPath":".spec.approved"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["targetNamespace"]))]
pub struct EdgeDeviceSignedRequestSpec {
    /// Namespace where the EdgeDevice will be created. Required.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub target_namespace: String,
    /// EdgeDeviceSet the device will join (`flotta/member-of` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_set: Option<String>,
    /// Whether the device may register; default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub approved: Option<bool>,
    /// What the enrolling device reported about itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
}

impl EdgeDeviceSignedRequestSpec {
    /// Whether the request is approved (`approved` absent means no).
    pub fn is_approved(&self) -> bool {
        self.approved == Some(true)
    }
}

/// Features of the enrolling device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Model name (`/sys/firmware/devicetree/base/model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Hardware inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Hardware>,
}

/// Observed state of an enrolment request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["conditions"]))]
pub struct EdgeDeviceSignedRequestStatus {
    /// Conditions (`pending`, `approved`, `declined`). Required; always serialised.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub conditions: Vec<EdgeDeviceSignedRequestCondition>,
    /// The `metadata.generation` the approval controller last acted on (additive to
    /// Flotta's status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A condition of an enrolment request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["type", "status"]))]
pub struct EdgeDeviceSignedRequestCondition {
    /// `declined`, `approved` or `pending`; `pending` when absent.
    #[serde(rename = "type", default = "pending")]
    #[schemars(extend("enum" = ["declined", "approved", "pending"], "default" = "pending"))]
    pub type_: String,
    /// Condition status (Flotta writes lowercase `true`). Required.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub status: String,
    /// Human-readable details of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the condition last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl Default for EdgeDeviceSignedRequestCondition {
    fn default() -> Self {
        EdgeDeviceSignedRequestCondition {
            type_: pending(),
            status: String::new(),
            message: None,
            last_transition_time: None,
        }
    }
}

// The CRD defaults the condition type to `pending`; applying it on read keeps that behaviour.
fn pending() -> String {
    EDSR_CONDITION_PENDING.to_owned()
}

/// Every validation error of an `EdgeDeviceSignedRequest`: `spec.targetNamespace` is required,
/// and each condition needs a known `type` and a `status`.
pub fn validate_edge_device_signed_request(request: &EdgeDeviceSignedRequest) -> Vec<FieldError> {
    let mut errors = Vec::new();
    require_non_empty(
        &request.spec.target_namespace,
        &FieldPath::root("spec").child("targetNamespace"),
        &mut errors,
    );
    if let Some(status) = &request.status {
        let path = FieldPath::root("status").child("conditions");
        for (i, condition) in status.conditions.iter().enumerate() {
            let path = path.index(i);
            if !EDSR_CONDITION_TYPES.contains(&condition.type_.as_str()) {
                errors.push(
                    path.child("type")
                        .not_supported(&condition.type_, &EDSR_CONDITION_TYPES),
                );
            }
            require_non_empty(&condition.status, &path.child("status"), &mut errors);
        }
    }
    errors
}
