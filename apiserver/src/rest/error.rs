//! API errors and their one mapping to HTTP: every failure leaves the server as a
//! `kind: Status` body whose `code` equals the HTTP status (kube-api-contract §5.15).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotta_api::store::StoreError;
use flotta_api::validation::FieldError;
use serde_json::{Value, json};

/// The object an error is about, for `details` and messages.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// API group (empty for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Object name (may be empty).
    pub name: String,
}

impl Target {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        json!({"name": self.name, "group": self.group, "kind": self.resource})
    }
}

/// Everything that can go wrong serving a Kubernetes API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad selector, bad body, namespace mismatch, strict decoding.
    #[error("{0}")]
    BadRequest(String),
    /// No valid client credentials.
    #[error("Unauthorized")]
    Unauthorized,
    /// The object or path does not exist.
    #[error("{} \"{}\" not found", .0.qualified(), .0.name)]
    NotFound(Target),
    /// The path exists but not for this method.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// No acceptable response media type.
    #[error("only the following media types are accepted: {0}")]
    NotAcceptable(String),
    /// Create of an object that exists.
    #[error("{} \"{}\" already exists", .0.qualified(), .0.name)]
    AlreadyExists(Target),
    /// A resourceVersion or uid precondition failed.
    #[error("Operation cannot be fulfilled on {} \"{}\": {message}", .target.qualified(), .target.name)]
    Conflict {
        /// The object.
        target: Target,
        /// What did not match.
        message: String,
    },
    /// A revision is older than the retained history.
    #[error("{0}")]
    Expired(String),
    /// A list continue token is older than the retained history.
    #[error(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
    )]
    ContinueExpired {
        /// A token that continues at the latest revision.
        fresh_token: String,
    },
    /// The request body is too large.
    #[error("{0}")]
    TooLarge(String),
    /// The request body's media type is not supported.
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// Validation failed (422), with one cause per field.
    #[error("{} \"{}\" is invalid: {}", .qualified_kind, .name, join_causes(.causes))]
    Invalid {
        /// `Kind.group`, e.g. `EdgeWorkload.management.project-flotta.io`.
        qualified_kind: String,
        /// Group for `details`.
        group: String,
        /// Kind for `details`.
        kind: String,
        /// Object name.
        name: String,
        /// The invalid fields.
        causes: Vec<FieldError>,
    },
    /// A resourceVersion newer than the store has seen.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// What was asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
    },
    /// The store is unreachable or failed.
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

fn join_causes(causes: &[FieldError]) -> String {
    let parts: Vec<String> = causes.iter().map(ToString::to_string).collect();
    if parts.len() == 1 {
        parts.concat()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    /// A 422 about query options such as `ListOptions` or `PatchOptions`.
    pub fn invalid_options(options_kind: &str, causes: Vec<FieldError>) -> Self {
        ApiError::Invalid {
            qualified_kind: format!("{options_kind}.meta.k8s.io"),
            group: "meta.k8s.io".into(),
            kind: options_kind.into(),
            name: String::new(),
            causes,
        }
    }

    /// The HTTP status and Status `reason`.
    pub fn code_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "NotAcceptable"),
            ApiError::AlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExists"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Expired(_) | ApiError::ContinueExpired { .. } => {
                (StatusCode::GONE, "Expired")
            }
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            ApiError::TooLargeResourceVersion { .. } => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// The `kind: Status` body.
    pub fn to_status(&self) -> Value {
        let (code, reason) = self.code_and_reason();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        let details = match self {
            ApiError::NotFound(t)
            | ApiError::AlreadyExists(t)
            | ApiError::Conflict { target: t, .. } => Some(t.details()),
            ApiError::Invalid {
                group,
                kind,
                name,
                causes,
                ..
            } => Some(json!({
                "name": name,
                "group": group,
                "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.kind.reason(),
                    "message": c.message,
                    "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            ApiError::TooLargeResourceVersion { .. } => Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        if let ApiError::ContinueExpired { fresh_token } = self {
            status["metadata"] = json!({"continue": fresh_token});
        }
        status
    }

    /// The conflict answered when the object changed under a write: a stale
    /// `resourceVersion`, or more concurrent writers than the write retries outlast.
    pub fn optimistic_lock(target: Target) -> Self {
        ApiError::Conflict {
            target,
            message: OPTIMISTIC_LOCK.into(),
        }
    }

    /// Maps a store failure about `target`.
    pub fn from_store(err: StoreError, target: &Target) -> Self {
        match err {
            StoreError::NotFound(_) => ApiError::NotFound(target.clone()),
            StoreError::AlreadyExists(_) => ApiError::AlreadyExists(target.clone()),
            StoreError::Conflict { .. } => ApiError::optimistic_lock(target.clone()),
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::Expired(format!(
                "too old resource version: {requested} ({})",
                compacted + 1
            )),
            StoreError::FutureRevision { requested, current } => {
                ApiError::TooLargeResourceVersion { requested, current }
            }
            StoreError::WatcherLagged => ApiError::Internal("watcher fell behind".into()),
            StoreError::TooLarge(msg) => {
                ApiError::TooLarge(format!("Request entity too large: {msg}"))
            }
            StoreError::Backend(msg) => ApiError::Internal(msg),
        }
    }
}

/// The message of a failed resourceVersion precondition, as Kubernetes words it.
const OPTIMISTIC_LOCK: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, _) = self.code_and_reason();
        if code.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.to_status().to_string(),
        )
            .into_response()
    }
}
