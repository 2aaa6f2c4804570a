//! [`DeviceBackend`]: what the device-facing Edge API needs from wherever device state lives
//! (Flotta's `EdgeDeviceBackend`, `flotta-inventory.md` §4.1), with typed wire models from
//! [`flotta_api::edge`].
//!
//! The Edge API layer (`crate::edge::handlers`) does authentication, authorization, CSR
//! signing and HTTP; a backend only answers questions about devices and records what they
//! report. Every error is a [`BackendError`], mapped to an HTTP status in exactly one place
//! ([`BackendError::status`]). Implementations: [`store`] (over the shared `Store`, the
//! default); a remote implementation (Flotta's Edge Configuration API) comes later.

pub mod store;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use flotta_api::edge::{
    DeviceConfigurationMessage, EnrolmentInfo, Heartbeat, PlaybookExecution, RegistrationInfo,
};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Registration state of a device, as `GET control/{id}/in` needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationStatus {
    /// The device exists and is not being deleted.
    Registered,
    /// The device is gone or being deleted: it gets a `disconnect` command.
    Unregistered,
    /// The backend cannot tell.
    Unknown,
}

/// Why a backend call failed. Each variant has one HTTP status ([`BackendError::status`]).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The device (or what the call needs) does not exist. → 404
    #[error("not found")]
    NotFound,
    /// The device has enrolled but is not approved yet. → 404, not counted as a failure.
    #[error("not approved")]
    NotApproved,
    /// The caller may not do this (e.g. re-registering a registered device with the
    /// bootstrap certificate). → 403
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The device sent something unusable. → 400
    #[error("invalid: {0}")]
    Invalid(String),
    /// The backend is temporarily unable to answer (store not ready, remote down). → 503
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure. → 500
    #[error("internal error: {0}")]
    Internal(String),
}

impl BackendError {
    /// The HTTP status the device gets for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            BackendError::NotFound | BackendError::NotApproved => StatusCode::NOT_FOUND,
            BackendError::Forbidden(_) => StatusCode::FORBIDDEN,
            BackendError::Invalid(_) => StatusCode::BAD_REQUEST,
            BackendError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            BackendError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A device's rendered configuration, serialised once so that polls cost no rendering and
/// no serialisation: `json` is the `content` of the `data/in` message and `etag` a strong
/// entity tag of it (already quoted, as sent in the `ETag` header).
#[derive(Clone, Debug)]
pub struct RenderedConfiguration {
    /// The configuration.
    pub message: Arc<DeviceConfigurationMessage>,
    /// `message` as JSON.
    pub json: Bytes,
    /// `"<hex sha-256 of json>"`.
    pub etag: String,
}

impl RenderedConfiguration {
    /// Serialises `message` and computes its entity tag.
    pub fn new(message: DeviceConfigurationMessage) -> Result<Self, BackendError> {
        let json = serde_json::to_vec(&message)
            .map_err(|e| BackendError::Internal(format!("serialising a configuration: {e}")))?;
        let digest = Sha256::digest(&json);
        let mut etag = String::with_capacity(2 + 2 * digest.len());
        etag.push('"');
        for byte in digest {
            etag.push_str(&format!("{byte:02x}"));
        }
        etag.push('"');
        Ok(Self {
            message: Arc::new(message),
            json: Bytes::from(json),
            etag,
        })
    }
}

/// Device state behind the Edge API. `name` is the device id from the URL; `namespace` is
/// the namespace the Edge API derived (certificate OU, the enrolment's `target_namespace`,
/// or `default`). Implementations must be cheap on the hot paths (`configuration`,
/// `heartbeat` with unchanged status): no store write, no full rendering per call.
#[async_trait]
pub trait DeviceBackend: Send + Sync + 'static {
    /// Whether the device is registered; `Unregistered` (deleted or being deleted) makes its
    /// next control poll answer `disconnect`.
    async fn registration_status(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<RegistrationStatus, BackendError>;

    /// The device's current configuration. A device being deleted gets one without
    /// workloads or secrets.
    async fn configuration(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<RenderedConfiguration, BackendError>;

    /// Records an enrolment request (an EdgeDeviceSignedRequest). Returns `true` when the
    /// device already exists (→ 208 Already Reported), `false` for a new or still pending
    /// request (→ 200).
    async fn enrol(
        &self,
        name: &str,
        namespace: &str,
        info: &EnrolmentInfo,
    ) -> Result<bool, BackendError>;

    /// The namespace a registering device belongs to. `identity_namespace` is the OU of the
    /// presented certificate (or `default`); `matches_certificate` is true when the
    /// certificate is the device's own (renewal). `NotApproved` while the request waits for
    /// approval.
    async fn target_namespace(
        &self,
        name: &str,
        identity_namespace: &str,
        matches_certificate: bool,
    ) -> Result<String, BackendError>;

    /// Completes a registration after the Edge API signed the CSR: hardware labels and
    /// status, and the end of the "awaiting first registration" state.
    async fn register(
        &self,
        name: &str,
        namespace: &str,
        info: &RegistrationInfo,
    ) -> Result<(), BackendError>;

    /// Records a heartbeat: liveness in memory, and a store write only when the reported
    /// status changed.
    async fn heartbeat(
        &self,
        name: &str,
        namespace: &str,
        heartbeat: &Heartbeat,
    ) -> Result<(), BackendError>;

    /// The playbook executions for the device (possibly none).
    async fn playbook_executions(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<PlaybookExecution>, BackendError>;

    /// Whether the device was approved and has not registered yet (Flotta: it carries the
    /// `edgedeviceSignedRequest=true` label). Only then may the bootstrap certificate
    /// register it. A device that does not exist is not awaiting registration (`Ok(false)`).
    async fn is_awaiting_first_registration(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<bool, BackendError>;
}
