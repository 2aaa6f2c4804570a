//! The device API's HTTP handlers at [`BASE_PATH`] (`flotta-inventory.md` §3.2–§3.3):
//! `GET data/{id}/in`, `POST data/{id}/out` (directives `enrolment`, `registration`,
//! `heartbeat`, `ansible`), `GET control/{id}/in`, `POST control/{id}/out`.
//!
//! Each handler authorizes with [`authz::authorize`] from the connection's
//! [`DeviceIdentity`], then calls the [`DeviceBackend`]. Differences from Flotta, all
//! additive or bug fixes (§8.3):
//! - `data/in` sends an `ETag`; `If-None-Match` with the current tag answers 304 with no
//!   body;
//! - `ansible` with zero executions answers an empty list, not 500;
//! - device input never causes a 500: bodies over [`MAX_BODY_BYTES`] get 413, malformed
//!   JSON or content 400, an invalid device id or namespace 400;
//! - the device id `register` is reserved (it would be the bootstrap certificate's name).
//!
//! The request namespace is the certificate's `OU` (`default` without one); enrolment uses
//! the enrolment's `target_namespace` (default `default`), as in Flotta.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flotta_api::edge::{
    BASE_PATH, COMMAND_DISCONNECT, Command, DEFAULT_NAMESPACE, DIRECTIVE_ANSIBLE,
    DIRECTIVE_REGISTRATION, EnrolmentInfo, Heartbeat, Message, MessageResponse, MessageType,
    RegistrationInfo, RegistrationResponse,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::authz::{self, CallerKind, Decision, Operation};
use super::backend::{BackendError, DeviceBackend, RegistrationStatus};
use super::ca::{BOOTSTRAP_COMMON_NAME, CsrError, DeviceCa};
use super::listener::DeviceIdentity;
use super::metrics::{self, EdgeMetrics};

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Something the device API reports for metrics (Flotta's `flotta_api_*` counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeEvent {
    /// A request was refused with 401.
    AuthenticationFailed,
    /// A device certificate was used for another device id (403).
    InvalidOwner,
    /// A certificate was issued.
    RegistrationSucceeded,
    /// A registration failed (not counting "not approved yet").
    RegistrationFailed,
    /// A `disconnect` command was sent.
    Disconnect,
}

/// Receives what the device API observes, for metrics. Both methods default to doing
/// nothing; they are called on the request path and must be cheap.
pub trait EdgeObserver: Send + Sync + 'static {
    /// One request finished: what it was (`None` when it never got as far as knowing),
    /// its status and how long it took.
    fn request(&self, operation: Option<Operation>, status: StatusCode, elapsed: Duration) {
        let _ = (operation, status, elapsed);
    }

    /// A countable event happened.
    fn event(&self, event: EdgeEvent) {
        let _ = event;
    }
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl EdgeObserver for NoopObserver {}

/// The Edge API's metrics: Flotta's `flotta_api_edge_devices_*` counters are counted here
/// (and only here), and every request with a known operation is timed.
impl EdgeObserver for EdgeMetrics {
    fn request(&self, operation: Option<Operation>, status: StatusCode, elapsed: Duration) {
        let Some(operation) = operation else {
            return;
        };
        let metric = match operation {
            Operation::DataIn => metrics::Operation::Configuration,
            Operation::ControlIn | Operation::ControlOut => metrics::Operation::Control,
            Operation::Enrolment => metrics::Operation::Enrolment,
            Operation::Registration => metrics::Operation::Registration,
            Operation::Heartbeat => metrics::Operation::Heartbeat,
            Operation::Ansible => metrics::Operation::Ansible,
            Operation::OtherDirective => return,
        };
        if metric == metrics::Operation::Heartbeat && status.is_success() {
            self.heartbeat.inc();
        }
        self.observe_request(metric, status.as_u16(), elapsed);
    }

    fn event(&self, event: EdgeEvent) {
        let counter = match event {
            EdgeEvent::AuthenticationFailed => &self.failed_authentication,
            EdgeEvent::InvalidOwner => &self.invalid_owner,
            EdgeEvent::RegistrationSucceeded => &self.successful_registration,
            EdgeEvent::RegistrationFailed => &self.failed_registration,
            EdgeEvent::Disconnect => &self.unregistration,
        };
        counter.inc();
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct EdgeState {
    /// Device state.
    pub backend: Arc<dyn DeviceBackend>,
    /// Signs device certificates.
    pub ca: Arc<DeviceCa>,
    /// Validity of issued device certificates.
    pub device_cert_validity: Duration,
    /// Metrics sink.
    pub observer: Arc<dyn EdgeObserver>,
}

/// The device API router (see the module documentation). Requests must carry an
/// `Extension<Arc<DeviceIdentity>>` (the device listener attaches it); without one they
/// get 401.
pub fn router(state: EdgeState) -> Router {
    Router::new()
        .route(&format!("{BASE_PATH}/data/{{id}}/in"), get(data_in))
        .route(&format!("{BASE_PATH}/data/{{id}}/out"), post(data_out))
        .route(&format!("{BASE_PATH}/control/{{id}}/in"), get(control_in))
        .route(
            &format!("{BASE_PATH}/control/{{id}}/out"),
            post(control_out),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Why a request failed; [`EdgeError::status`] is the one place mapping to HTTP.
#[derive(Debug, thiserror::Error)]
enum EdgeError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("request body larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl EdgeError {
    fn status(&self) -> StatusCode {
        match self {
            EdgeError::Unauthorized => StatusCode::UNAUTHORIZED,
            EdgeError::Forbidden(_) => StatusCode::FORBIDDEN,
            EdgeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EdgeError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            EdgeError::Backend(error) => error.status(),
            EdgeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "device API request failed");
            status
                .canonical_reason()
                .unwrap_or("server error")
                .to_owned()
        } else {
            tracing::debug!(error = %self, "device API request refused");
            self.to_string()
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "message": message }).to_string(),
        )
            .into_response()
    }
}

type Identity = Option<Extension<Arc<DeviceIdentity>>>;

/// Runs `handle` for `operation`, reporting the outcome to the observer.
async fn observed(
    state: &EdgeState,
    operation: Option<Operation>,
    handle: impl Future<Output = Result<Response, EdgeError>>,
) -> Response {
    let started = Instant::now();
    let response = match handle.await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    state
        .observer
        .request(operation, response.status(), started.elapsed());
    response
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Authorizes `operation` on `device_id`, reporting refusals to the observer.
fn authorize(
    state: &EdgeState,
    identity: Option<&DeviceIdentity>,
    operation: Operation,
    device_id: &str,
) -> Result<Decision, EdgeError> {
    let caller = identity.map(|identity| identity.caller(now_unix()));
    match authz::authorize(caller, operation, device_id) {
        decision @ (Decision::Allow | Decision::AllowIfAwaitingFirstRegistration) => Ok(decision),
        Decision::Unauthorized => {
            state.observer.event(EdgeEvent::AuthenticationFailed);
            Err(EdgeError::Unauthorized)
        }
        Decision::Forbidden => {
            let wrong_owner = caller.is_some_and(|c| matches!(c.kind, CallerKind::Device { .. }));
            if wrong_owner {
                state.observer.event(EdgeEvent::InvalidOwner);
                Err(EdgeError::Forbidden(
                    "the certificate belongs to another device",
                ))
            } else {
                Err(EdgeError::Forbidden(
                    "the bootstrap certificate cannot do this",
                ))
            }
        }
    }
}

/// Checks that `id` can name a device: a DNS-1123 subdomain (Kubernetes object names),
/// other than the bootstrap certificate's name.
fn check_device_id(id: &str) -> Result<(), EdgeError> {
    if id == BOOTSTRAP_COMMON_NAME {
        return Err(EdgeError::BadRequest(format!(
            "device id {id:?} is reserved"
        )));
    }
    if is_dns_subdomain(id) {
        Ok(())
    } else {
        Err(EdgeError::BadRequest(format!(
            "device id {id:?} is not a valid name (lowercase letters, digits, '-' and '.')"
        )))
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

/// The buffered body, or 413/400.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, EdgeError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            EdgeError::PayloadTooLarge
        } else {
            EdgeError::BadRequest(rejection.body_text())
        }
    })
}

fn parse_message(bytes: &[u8]) -> Result<Message, EdgeError> {
    serde_json::from_slice(bytes).map_err(|e| EdgeError::BadRequest(format!("not a message: {e}")))
}

fn parse_content<T: DeserializeOwned>(message: &Message, what: &str) -> Result<T, EdgeError> {
    T::deserialize(&message.content)
        .map_err(|e| EdgeError::BadRequest(format!("invalid {what} content: {e}")))
}

/// RFC 3339 in UTC with milliseconds, the form Go's `strfmt.DateTime` writes.
fn sent_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, EdgeError> {
    serde_json::to_vec(value).map_err(|e| EdgeError::Internal(format!("serialising: {e}")))
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison, `*` matches).
fn etag_matches(if_none_match: &HeaderValue, etag: &str) -> bool {
    let Ok(value) = if_none_match.to_str() else {
        return false;
    };
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

async fn data_in(
    State(state): State<EdgeState>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let operation = Operation::DataIn;
    observed(&state, Some(operation), async {
        let identity = identity.as_ref().map(|Extension(i)| i.as_ref());
        authorize(&state, identity, operation, &id)?;
        let namespace = identity.map_or(DEFAULT_NAMESPACE, DeviceIdentity::namespace);
        let config = state.backend.configuration(&id, namespace).await?;
        let etag = HeaderValue::from_str(&config.etag)
            .map_err(|_| EdgeError::Internal("unusable entity tag".into()))?;
        if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|value| etag_matches(value, &config.etag))
        {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        // The envelope is written around the configuration's cached JSON so that a poll
        // costs no serialisation of the configuration itself.
        let head = format!(
            r#"{{"type":"data","directive":"device","message_id":"{}","version":1,"sent":"{}","content":"#,
            uuid::Uuid::new_v4(),
            sent_now(),
        );
        let mut body = Vec::with_capacity(head.len() + config.json.len() + 1);
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(&config.json);
        body.push(b'}');
        let mut response = json_response(StatusCode::OK, body);
        response.headers_mut().insert(header::ETAG, etag);
        Ok(response)
    })
    .await
}

async fn data_out(
    State(state): State<EdgeState>,
    identity: Identity,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let identity = identity.as_ref().map(|Extension(i)| i.as_ref());
    if identity.is_none() {
        state.observer.event(EdgeEvent::AuthenticationFailed);
        return observed(&state, None, async { Err(EdgeError::Unauthorized) }).await;
    }
    let message = match body_bytes(body).and_then(|bytes| parse_message(&bytes)) {
        Ok(message) => message,
        Err(error) => return observed(&state, None, async { Err(error) }).await,
    };
    let operation = Operation::of_directive(message.directive());
    observed(&state, Some(operation), async {
        let decision = authorize(&state, identity, operation, &id)?;
        match operation {
            Operation::Enrolment => enrol(&state, &id, &message).await,
            Operation::Registration => register(&state, identity, &id, &message, decision).await,
            Operation::Heartbeat => heartbeat(&state, identity, &id, &message).await,
            Operation::Ansible => ansible(&state, identity, &id, &message).await,
            Operation::OtherDirective => Err(EdgeError::BadRequest(format!(
                "unknown directive {:?}",
                message.directive()
            ))),
            Operation::DataIn | Operation::ControlIn | Operation::ControlOut => {
                Err(EdgeError::Internal("not a data/out operation".into()))
            }
        }
    })
    .await
}

async fn enrol(state: &EdgeState, id: &str, message: &Message) -> Result<Response, EdgeError> {
    check_device_id(id)?;
    let info: EnrolmentInfo = parse_content(message, "enrolment")?;
    let namespace = match info.target_namespace.as_deref() {
        None | Some("") => DEFAULT_NAMESPACE,
        Some(namespace) if is_dns_label(namespace) => namespace,
        Some(namespace) => {
            return Err(EdgeError::BadRequest(format!(
                "target_namespace {namespace:?} is not a valid namespace"
            )));
        }
    };
    let exists = state.backend.enrol(id, namespace, &info).await?;
    let status = if exists {
        StatusCode::ALREADY_REPORTED
    } else {
        StatusCode::OK
    };
    Ok(status.into_response())
}

async fn register(
    state: &EdgeState,
    identity: Option<&DeviceIdentity>,
    id: &str,
    message: &Message,
    decision: Decision,
) -> Result<Response, EdgeError> {
    let result = register_inner(state, identity, id, message, decision).await;
    match &result {
        Ok(_) => state.observer.event(EdgeEvent::RegistrationSucceeded),
        Err(EdgeError::Backend(BackendError::NotApproved)) => {}
        Err(_) => state.observer.event(EdgeEvent::RegistrationFailed),
    }
    result
}

async fn register_inner(
    state: &EdgeState,
    identity: Option<&DeviceIdentity>,
    id: &str,
    message: &Message,
    decision: Decision,
) -> Result<Response, EdgeError> {
    check_device_id(id)?;
    let info: RegistrationInfo = parse_content(message, "registration")?;
    let csr = info
        .certificate_request
        .as_deref()
        .filter(|csr| !csr.trim().is_empty())
        .ok_or_else(|| EdgeError::BadRequest("certificate_request is missing".into()))?;
    // The matrix lets a device certificate reach its own id only, so a device certificate
    // here is the device's own: a renewal.
    let matches_certificate = identity.is_some_and(|identity| !identity.is_bootstrap());
    let identity_namespace = identity.map_or(DEFAULT_NAMESPACE, DeviceIdentity::namespace);
    let namespace = state
        .backend
        .target_namespace(id, identity_namespace, matches_certificate)
        .await?;
    if !is_dns_label(&namespace) {
        return Err(EdgeError::Internal(format!(
            "the backend named an invalid namespace {namespace:?}"
        )));
    }
    if decision == Decision::AllowIfAwaitingFirstRegistration
        && !state
            .backend
            .is_awaiting_first_registration(id, &namespace)
            .await?
    {
        return Err(EdgeError::Forbidden(
            "the device is already registered; renew with its own certificate",
        ));
    }
    let certificate = state
        .ca
        .sign_csr(csr, id, &namespace, state.device_cert_validity)
        .map_err(|error| match error {
            CsrError::Invalid(_) => EdgeError::BadRequest(error.to_string()),
            CsrError::Sign(_) => EdgeError::Internal(error.to_string()),
        })?;
    state.backend.register(id, &namespace, &info).await?;
    let response = MessageResponse {
        message_id: message.message_id.clone(),
        directive: Some(DIRECTIVE_REGISTRATION.to_owned()),
        content: serde_json::to_value(RegistrationResponse {
            certificate: Some(certificate),
        })
        .map_err(|e| EdgeError::Internal(e.to_string()))?,
        metadata: None,
    };
    Ok(json_response(StatusCode::OK, to_json(&response)?))
}

async fn heartbeat(
    state: &EdgeState,
    identity: Option<&DeviceIdentity>,
    id: &str,
    message: &Message,
) -> Result<Response, EdgeError> {
    let heartbeat: Heartbeat = parse_content(message, "heartbeat")?;
    let namespace = identity.map_or(DEFAULT_NAMESPACE, DeviceIdentity::namespace);
    state.backend.heartbeat(id, namespace, &heartbeat).await?;
    Ok(StatusCode::OK.into_response())
}

async fn ansible(
    state: &EdgeState,
    identity: Option<&DeviceIdentity>,
    id: &str,
    message: &Message,
) -> Result<Response, EdgeError> {
    let namespace = identity.map_or(DEFAULT_NAMESPACE, DeviceIdentity::namespace);
    let executions = state.backend.playbook_executions(id, namespace).await?;
    // Flotta sends the list as a JSON string inside `content`, with this metadata.
    let listed =
        String::from_utf8(to_json(&executions)?).map_err(|e| EdgeError::Internal(e.to_string()))?;
    let response = MessageResponse {
        message_id: message.message_id.clone(),
        directive: Some(DIRECTIVE_ANSIBLE.to_owned()),
        content: Value::String(listed),
        metadata: Some(serde_json::json!({
            "message-id": uuid::Uuid::new_v4().to_string(),
            "crc_dispatcher_correlation_id": "fake-crc-id",
            "return_url": "return_url",
        })),
    };
    Ok(json_response(StatusCode::OK, to_json(&response)?))
}

async fn control_in(
    State(state): State<EdgeState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Response {
    let operation = Operation::ControlIn;
    observed(&state, Some(operation), async {
        let identity = identity.as_ref().map(|Extension(i)| i.as_ref());
        authorize(&state, identity, operation, &id)?;
        let namespace = identity.map_or(DEFAULT_NAMESPACE, DeviceIdentity::namespace);
        match state.backend.registration_status(&id, namespace).await? {
            RegistrationStatus::Unregistered => {
                state.observer.event(EdgeEvent::Disconnect);
                let command = Message {
                    message_type: Some(MessageType::Command),
                    message_id: Some(uuid::Uuid::new_v4().to_string()),
                    version: Some(1),
                    sent: Some(sent_now()),
                    content: serde_json::to_value(Command {
                        command: COMMAND_DISCONNECT.to_owned(),
                        arguments: Value::Null,
                    })
                    .map_err(|e| EdgeError::Internal(e.to_string()))?,
                    ..Message::default()
                };
                Ok(json_response(StatusCode::OK, to_json(&command)?))
            }
            RegistrationStatus::Registered | RegistrationStatus::Unknown => {
                Ok(StatusCode::OK.into_response())
            }
        }
    })
    .await
}

async fn control_out(
    State(state): State<EdgeState>,
    identity: Identity,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let operation = Operation::ControlOut;
    observed(&state, Some(operation), async {
        let identity = identity.as_ref().map(|Extension(i)| i.as_ref());
        authorize(&state, identity, operation, &id)?;
        // yggd's own messages (connection status, events): checked, then ignored.
        parse_message(&body_bytes(body)?)?;
        Ok(StatusCode::OK.into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_flotta_counters_once() {
        let metrics = EdgeMetrics::new();
        let observer: &dyn EdgeObserver = &metrics;
        let ms = Duration::from_millis(1);
        observer.request(Some(Operation::Heartbeat), StatusCode::OK, ms);
        observer.request(Some(Operation::Heartbeat), StatusCode::NOT_FOUND, ms);
        observer.request(Some(Operation::DataIn), StatusCode::NOT_MODIFIED, ms);
        observer.request(Some(Operation::ControlOut), StatusCode::OK, ms);
        observer.request(Some(Operation::OtherDirective), StatusCode::BAD_REQUEST, ms);
        observer.request(None, StatusCode::PAYLOAD_TOO_LARGE, ms);
        assert_eq!(metrics.heartbeat.get(), 1);
        assert_eq!(metrics.requests(metrics::Operation::Heartbeat), 2);
        assert_eq!(metrics.requests(metrics::Operation::Configuration), 1);
        assert_eq!(metrics.requests(metrics::Operation::Control), 1);
        for event in [
            EdgeEvent::AuthenticationFailed,
            EdgeEvent::InvalidOwner,
            EdgeEvent::RegistrationSucceeded,
            EdgeEvent::RegistrationFailed,
            EdgeEvent::Disconnect,
            EdgeEvent::Disconnect,
        ] {
            observer.event(event);
        }
        assert_eq!(metrics.failed_authentication.get(), 1);
        assert_eq!(metrics.invalid_owner.get(), 1);
        assert_eq!(metrics.successful_registration.get(), 1);
        assert_eq!(metrics.failed_registration.get(), 1);
        assert_eq!(metrics.unregistration.get(), 2);
    }

    #[test]
    fn device_ids() {
        assert!(check_device_id("dev-1").is_ok());
        assert!(check_device_id("a.b-c.d0").is_ok());
        assert!(check_device_id("register").is_err());
        assert!(check_device_id("").is_err());
        assert!(check_device_id("Dev1").is_err());
        assert!(check_device_id("-dev").is_err());
        assert!(check_device_id("dev..1").is_err());
        assert!(check_device_id("dev/1").is_err());
        assert!(check_device_id(&"a".repeat(254)).is_err());
    }

    #[test]
    fn namespaces() {
        assert!(is_dns_label("default"));
        assert!(is_dns_label("team-a"));
        assert!(!is_dns_label("team.a"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn if_none_match_forms() {
        let etag = "\"abc\"";
        let matches = |value: &'static str| etag_matches(&HeaderValue::from_static(value), etag);
        assert!(matches("\"abc\""));
        assert!(matches("W/\"abc\""));
        assert!(matches("\"x\", \"abc\""));
        assert!(matches("*"));
        assert!(!matches("\"abd\""));
        assert!(!matches("abc"));
    }

    #[test]
    fn sent_is_rfc3339_millis_utc() {
        let sent = sent_now();
        assert_eq!(sent.len(), "2024-01-01T00:00:00.000Z".len(), "{sent}");
        assert!(sent.ends_with('Z'));
        assert!(sent.parse::<jiff::Timestamp>().is_ok());
    }
}
