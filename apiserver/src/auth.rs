//! Authentication of requests on the secure port in standalone mode, and the authorization
//! rule that goes with it.
//!
//! Authentication: a request is authenticated by the client certificate verified during
//! the TLS handshake ([`crate::tls::ClientIdentity`]): the user name is the subject's `CN`
//! and the groups are its `O` values plus `system:authenticated`, as in Kubernetes' x509
//! authenticator. A certificate without a `CN` does not authenticate. Health probes
//! (`/healthz`, `/livez`, `/readyz` and their subpaths) and `/version` are open to
//! anonymous clients, who are recorded as `system:anonymous` in `system:unauthenticated`;
//! everything else without a certificate gets a 401 `Status`.
//!
//! Authorization: **in standalone mode every authenticated user is allowed everything.**
//! Only this server's own CA can issue client certificates (see [`crate::pki`]), so
//! holding one is treated as being an administrator. There is no RBAC here; delegated
//! authorization (SubjectAccessReview against the cluster) arrives with aggregated mode.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::tls::ClientIdentity;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user name of anonymous requests.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of anonymous requests.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// The authenticated user of a request, inserted as an `Extension<User>` by
/// [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name (`CN` of the client certificate).
    pub name: String,
    /// The groups (`O` values of the client certificate, then `system:authenticated`).
    pub groups: Vec<String>,
}

impl User {
    /// The user of a request that presented no credentials.
    pub fn anonymous() -> Self {
        User {
            name: ANONYMOUS_USER.to_owned(),
            groups: vec![UNAUTHENTICATED_GROUP.to_owned()],
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
        })
    }

    /// True unless this is the anonymous user.
    pub fn is_authenticated(&self) -> bool {
        self.groups.iter().any(|g| g == AUTHENTICATED_GROUP)
    }
}

/// True for the paths anonymous clients may reach: health probes and `/version`.
pub fn is_public_path(path: &str) -> bool {
    const PROBES: [&str; 3] = ["/healthz", "/livez", "/readyz"];
    let probe = PROBES.iter().any(|probe| {
        path.strip_prefix(probe)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    probe || path == "/version" || path == "/version/"
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
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        BODY,
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
