//! Enrolment and registration payloads: `enrolment-info`, `registration-info` and
//! `registration-response` (`flotta-inventory.md` §3.4, §3.7).

use serde::{Deserialize, Serialize};

use super::hardware::HardwareInfo;

/// Content of an `enrolment` message: the device asks to join the fleet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnrolmentInfo {
    /// What the device is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<EnrolmentFeatures>,
    /// Namespace the device wants to live in; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
}

/// The `features` of an [`EnrolmentInfo`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnrolmentFeatures {
    /// Device model name (camelCase on the wire, as in Flotta).
    #[serde(rename = "modelName", default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// Hardware inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareInfo>,
}

/// Content of a `registration` message: a CSR for the device certificate (first
/// registration or renewal).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistrationInfo {
    /// Hardware inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareInfo>,
    /// PEM-encoded PKCS#10 certificate signing request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_request: Option<String>,
}

/// Content of the `message-response` to a registration: the signed certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationResponse {
    /// PEM-encoded device certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}
