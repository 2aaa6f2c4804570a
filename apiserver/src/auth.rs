//! Authentication and authorization of requests on the secure port.
//!
//! **Standalone mode** ([`authenticate`]): a request is authenticated by the client
//! certificate verified during the TLS handshake ([`crate::tls::ClientIdentity`]): the user
//! name is the subject's `CN` and the groups are its `O` values plus `system:authenticated`,
//! as in Kubernetes' x509 authenticator. A certificate without a `CN` does not
//! authenticate. Health probes (`/healthz`, `/livez`, `/readyz` and their subpaths) and
//! `/version` are open to anonymous clients, who are recorded as `system:anonymous` in
//! `system:unauthenticated`; everything else without a certificate gets a 401 `Status`.
//! Every authenticated user is allowed everything: only this server's own CA can issue
//! client certificates (see [`crate::pki`]), so holding one is treated as being an
//! administrator. There is no RBAC in this mode.
//!
//! **Aggregated mode** ([`delegated`]): authentication and authorization are delegated to
//! the cluster, as kube-apiserver's aggregation layer expects (`kube-api-contract.md`
//! §2–§3): front-proxy request headers ([`requestheader`]), x509 client certificates,
//! bearer tokens through TokenReview and authorization through SubjectAccessReview
//! ([`delegation`]), with the request attributes of [`attributes`].

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::tls::ClientIdentity;

pub mod attributes;
pub mod authentication_config;
pub mod client_certificate;
pub mod delegated;
pub mod delegation;
pub mod requestheader;
pub mod ttl_cache;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user name of anonymous requests.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of anonymous requests.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// The group whose members are allowed everything, without asking the cluster.
pub const MASTERS_GROUP: &str = "system:masters";

/// The authenticated user of a request, inserted as an `Extension<User>` by
/// [`authenticate`] and [`delegated::delegated`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// The user name (e.g. the `CN` of a client certificate).
    pub name: String,
    /// The user's uid, when the authenticator knows one; else empty.
    pub uid: String,
    /// The groups (e.g. the `O` values of a client certificate, then
    /// `system:authenticated`).
    pub groups: Vec<String>,
    /// Extra attributes (e.g. `authentication.kubernetes.io/credential-id`).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// The user of a request that presented no credentials.
    pub fn anonymous() -> Self {
        User {
            name: ANONYMOUS_USER.to_owned(),
            groups: vec![UNAUTHENTICATED_GROUP.to_owned()],
            ..User::default()
        }
    }

    /// The user a verified client certificate stands for; `None` when it has no `CN`.
    pub fn from_identity(identity: &ClientIdentity) -> Option<Self> {
        let name = identity
            .common_name
            .as_deref()
            .filter(|cn| !cn.is_empty())?;
        let mut groups = identity.organizations.clone();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        Some(User {
            name: name.to_owned(),
            groups,
            ..User::default()
        })
    }

    /// Adds `system:authenticated`, as Kubernetes' `AuthenticatedGroupAdder` does: unless
    /// this is the anonymous user or the groups already say authenticated or
    /// unauthenticated.
    pub fn add_authenticated_group(&mut self) {
        let marked = self
            .groups
            .iter()
            .any(|g| g == AUTHENTICATED_GROUP || g == UNAUTHENTICATED_GROUP);
        if self.name != ANONYMOUS_USER && !marked {
            self.groups.push(AUTHENTICATED_GROUP.to_owned());
        }
    }

    /// True unless this is the anonymous user.
    pub fn is_authenticated(&self) -> bool {
        self.groups.iter().any(|g| g == AUTHENTICATED_GROUP)
    }
}

/// True for the health probes `/healthz`, `/livez`, `/readyz` and their subpaths.
pub fn is_health_path(path: &str) -> bool {
    const PROBES: [&str; 3] = ["/healthz", "/livez", "/readyz"];
    PROBES.iter().any(|probe| {
        path.strip_prefix(probe)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// True for the paths anonymous clients may reach in standalone mode: health probes and
/// `/version`.
pub fn is_public_path(path: &str) -> bool {
    is_health_path(path) || path == "/version" || path == "/version/"
}

/// axum middleware (use with `axum::middleware::from_fn`) that authenticates every request
/// (see the module documentation) and inserts its [`User`].
pub async fn authenticate(mut request: Request, next: Next) -> Response {
    let user = request
        .extensions()
        .get::<ClientIdentity>()
        .and_then(User::from_identity);
    match user {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None if is_public_path(request.uri().path()) => {
            request.extensions_mut().insert(User::anonymous());
            next.run(request).await
        }
        None => unauthorized(),
    }
}

/// The 401 `Status` answer to an unauthenticated request.
pub fn unauthorized() -> Response {
    const BODY: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    status_response(StatusCode::UNAUTHORIZED, BODY.to_owned())
}

/// A `Status` JSON body with its HTTP status.
fn status_response(code: StatusCode, body: String) -> Response {
    (
        code,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::Extension;
    use axum::routing::get;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    #[test]
    fn public_paths() {
        for path in [
            "/healthz",
            "/livez/ping",
            "/readyz/",
            "/version",
            "/version/",
        ] {
            assert!(is_public_path(path), "{path}");
        }
        for path in [
            "/healthzz",
            "/api",
            "/apis/x",
            "/versions",
            "/",
            "/readyzx/y",
        ] {
            assert!(!is_public_path(path), "{path}");
        }
    }

    #[test]
    fn user_from_identity() {
        let user = User::from_identity(&ClientIdentity {
            common_name: Some("admin".into()),
            organizations: vec!["system:masters".into()],
        })
        .expect("user");
        assert_eq!(user.name, "admin");
        assert_eq!(user.groups, ["system:masters", AUTHENTICATED_GROUP]);
        assert!(user.uid.is_empty() && user.extra.is_empty());
        assert!(user.is_authenticated());
        assert!(!User::anonymous().is_authenticated());
        assert_eq!(User::from_identity(&ClientIdentity::default()), None);
    }

    async fn call(identity: Option<ClientIdentity>, path: &str) -> (StatusCode, String) {
        let app = Router::new()
            .route(
                "/healthz",
                get(|Extension(user): Extension<User>| async move { user.name }),
            )
            .route(
                "/api",
                get(|Extension(user): Extension<User>| async move { user.name }),
            )
            .layer(axum::middleware::from_fn(authenticate));
        let mut request = http::Request::get(path)
            .body(Body::empty())
            .expect("request");
        if let Some(identity) = identity {
            request.extensions_mut().insert(identity);
        }
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn middleware_decides_by_identity_and_path() {
        let (status, body) = call(None, "/api").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let status_json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(status_json["reason"], "Unauthorized");
        assert_eq!(status_json["code"], 401);

        assert_eq!(
            call(None, "/healthz").await,
            (StatusCode::OK, ANONYMOUS_USER.to_owned())
        );
        let admin = ClientIdentity {
            common_name: Some("admin".into()),
            organizations: vec![],
        };
        assert_eq!(
            call(Some(admin), "/api").await,
            (StatusCode::OK, "admin".to_owned())
        );
        let nameless = ClientIdentity {
            common_name: None,
            organizations: vec!["system:masters".into()],
        };
        assert_eq!(
            call(Some(nameless), "/api").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}
