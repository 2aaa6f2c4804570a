//! The aggregated-mode middleware: authenticates every request the way kube-apiserver's
//! delegating authenticator does, then authorizes it with a SubjectAccessReview
//! (`kube-api-contract.md` §2.2, §3.4).
//!
//! Authenticators, in order; the first that recognises the request wins:
//! 1. **front proxy**: the client certificate chains to the request-header CA (with
//!    `clientAuth` usage) and its `CN` is allowed → the user the `X-Remote-*` headers name
//!    (a chaining certificate with a `CN` not allowed is an error; no username header means
//!    "not mine");
//! 2. **x509**: the client certificate chains to the client CA → user `CN`, groups `O`,
//!    extra `authentication.kubernetes.io/credential-id`;
//! 3. **bearer token**: `Authorization: Bearer …` → TokenReview (an unknown token is an
//!    error).
//!
//! A recognised user gets `system:authenticated` added. If nothing recognised the
//! request and some authenticator failed, the answer is 401; if none applied, the request
//! is anonymous (`system:anonymous`, `system:unauthenticated`). The request-header
//! identity headers are removed from every request before it goes on, trusted or not,
//! and the `Authorization` header once a token was accepted.
//!
//! Authorization: members of `system:masters` and the health paths (`/healthz`,
//! `/livez`, `/readyz`) are always allowed; everything else is asked with a cached
//! SubjectAccessReview and denied (403 `Status` in kube-apiserver's words) unless the
//! answer is "allowed" — including when the review fails. Until the cluster's
//! authentication settings are loaded, everything but the health paths gets 503.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use tokio::sync::watch;

use super::attributes::{RequestAttributes, forbidden_status};
use super::authentication_config::AuthenticationConfig;
use super::client_certificate::PeerCertificates;
use super::delegation::{
    AccessReviewAuthorizer, Decision, Reviewer, TokenAuthenticator, TokenVerdict,
};
use super::{MASTERS_GROUP, User, is_health_path, status_response, unauthorized};

/// The extra key Kubernetes records the credential of x509 users under.
pub const CREDENTIAL_ID_EXTRA: &str = "authentication.kubernetes.io/credential-id";

/// Cache lifetimes of delegated answers (Go's defaults: 10 s each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtls {
    /// TokenReview answers (`--authentication-token-webhook-cache-ttl`).
    pub token: Duration,
    /// Allowed SubjectAccessReview answers (`--authorization-webhook-cache-authorized-ttl`).
    pub authorized: Duration,
    /// Denied SubjectAccessReview answers
    /// (`--authorization-webhook-cache-unauthorized-ttl`).
    pub unauthorized: Duration,
}

impl Default for CacheTtls {
    fn default() -> Self {
        CacheTtls {
            token: Duration::from_secs(10),
            authorized: Duration::from_secs(10),
            unauthorized: Duration::from_secs(10),
        }
    }
}

/// The current authentication settings: `None` until first loaded.
pub type ConfigReceiver = watch::Receiver<Option<Arc<AuthenticationConfig>>>;

/// State of the aggregated-mode middleware; cheap to clone.
#[derive(Clone)]
pub struct DelegatedAuth(Arc<Inner>);

struct Inner {
    config: ConfigReceiver,
    tokens: TokenAuthenticator,
    authorizer: AccessReviewAuthorizer,
}

/// What authentication concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// A recognised user (with `system:authenticated` added).
    User(User),
    /// No credentials that any authenticator applies to.
    Anonymous,
    /// Credentials were presented and failed; the reasons are for the log.
    Failed(Vec<String>),
}

impl DelegatedAuth {
    /// Middleware state over the settings in `config`, asking `reviewer` for tokens and
    /// access decisions.
    pub fn new(config: ConfigReceiver, reviewer: Arc<dyn Reviewer>, ttls: CacheTtls) -> Self {
        DelegatedAuth(Arc::new(Inner {
            config,
            tokens: TokenAuthenticator::new(reviewer.clone(), ttls.token),
            authorizer: AccessReviewAuthorizer::new(reviewer, ttls.authorized, ttls.unauthorized),
        }))
    }

    /// Whether the authentication settings have been loaded.
    pub fn is_configured(&self) -> bool {
        self.0.config.borrow().is_some()
    }

    /// Authenticates a request from its peer certificates and headers, removing the
    /// identity headers (see the module docs).
    pub async fn authenticate(
        &self,
        peer: Option<&PeerCertificates>,
        headers: &mut HeaderMap,
    ) -> Authentication {
        let config = self.0.config.borrow().clone();
        let mut errors = Vec::new();
        let mut user = None;

        if let Some(config) = &config {
            if let (Some(chain), Some(rh)) = (peer, &config.request_header) {
                match rh.ca.verify(chain) {
                    Ok(()) => {
                        let cn = chain.subject().and_then(|s| s.common_name);
                        if !rh.allows_common_name(cn.as_deref()) {
                            errors.push(format!(
                                "front-proxy certificate CN {cn:?} is not in requestheader-allowed-names {:?}",
                                rh.allowed_names
                            ));
                        } else if let Some(asserted) = rh.asserted_user(headers) {
                            user = Some(User {
                                name: asserted.name,
                                uid: asserted.uid,
                                groups: asserted.groups,
                                extra: asserted.extra,
                            });
                        }
                    }
                    Err(error) => errors.push(format!("request-header certificate: {error}")),
                }
            }
            if let Some(rh) = &config.request_header {
                rh.strip(headers);
            }
            if user.is_none()
                && let (Some(chain), Some(client_ca)) = (peer, &config.client_ca)
            {
                match client_ca.verify(chain) {
                    Ok(()) => user = x509_user(chain),
                    Err(error) => errors.push(format!("x509 client certificate: {error}")),
                }
            }
        }

        if user.is_none()
            && let Some(token) = bearer_token(headers)
        {
            match self.0.tokens.authenticate(&token).await {
                Ok(TokenVerdict::Authenticated(token_user)) => {
                    headers.remove(header::AUTHORIZATION);
                    user = Some(token_user);
                }
                Ok(TokenVerdict::Rejected(reason)) if reason.is_empty() => {
                    errors.push("invalid bearer token".to_owned());
                }
                Ok(TokenVerdict::Rejected(reason)) => {
                    errors.push(format!("invalid bearer token: {reason}"));
                }
                Err(error) => errors.push(error.to_string()),
            }
        }

        match user {
            Some(mut user) => {
                user.add_authenticated_group();
                Authentication::User(user)
            }
            None if errors.is_empty() => Authentication::Anonymous,
            None => Authentication::Failed(errors),
        }
    }
}

/// The user of a verified end-user certificate; `None` without a `CN`.
fn x509_user(chain: &PeerCertificates) -> Option<User> {
    let subject = chain.subject()?;
    let name = subject.common_name.filter(|cn| !cn.is_empty())?;
    let mut user = User {
        name,
        groups: subject.organizations,
        ..User::default()
    };
    if let Some(id) = chain.credential_id() {
        user.extra.insert(CREDENTIAL_ID_EXTRA.to_owned(), vec![id]);
    }
    Some(user)
}

/// The token of an `Authorization: Bearer <token>` header, parsed as Go does.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// axum middleware (use with `axum::middleware::from_fn_with_state`) that authenticates
/// and authorizes every request and inserts its [`User`] (see the module docs).
pub async fn delegated(
    State(auth): State<DelegatedAuth>,
    mut request: Request,
    next: Next,
) -> Response {
    let health = is_health_path(request.uri().path());
    if !health && !auth.is_configured() {
        return service_unavailable("the authentication configuration is not loaded yet");
    }
    let peer = request.extensions().get::<PeerCertificates>().cloned();
    let user = match auth
        .authenticate(peer.as_ref(), request.headers_mut())
        .await
    {
        Authentication::User(user) => user,
        Authentication::Anonymous => User::anonymous(),
        Authentication::Failed(reasons) => {
            tracing::debug!(path = %request.uri().path(), ?reasons, "authentication failed");
            return unauthorized();
        }
    };
    if health || user.groups.iter().any(|g| g == MASTERS_GROUP) {
        request.extensions_mut().insert(user);
        return next.run(request).await;
    }

    let attributes = match RequestAttributes::from_request(
        request.method().as_str(),
        request.uri().path(),
        request.uri().query(),
    ) {
        Ok(attributes) => attributes,
        Err(error) => return not_found(&error.to_string()),
    };
    match auth.0.authorizer.authorize(&user, &attributes).await {
        Ok(Decision::Allow) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Ok(Decision::Deny(reason)) => {
            tracing::debug!(user = %user.name, ?attributes, %reason, "forbidden");
            forbidden(&user, &attributes, &reason)
        }
        Err(error) => {
            // Fail closed: an unanswered review is a denial.
            tracing::warn!(user = %user.name, ?attributes, %error, "authorization failed; denying");
            forbidden(&user, &attributes, "")
        }
    }
}

fn forbidden(user: &User, attributes: &RequestAttributes, reason: &str) -> Response {
    status_response(
        StatusCode::FORBIDDEN,
        forbidden_status(&user.name, attributes, reason).to_string(),
    )
}

fn service_unavailable(message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "ServiceUnavailable", "code": 503,
    });
    status_response(StatusCode::SERVICE_UNAVAILABLE, body.to_string())
}

fn not_found(message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "NotFound", "code": 404,
    });
    status_response(StatusCode::NOT_FOUND, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn bearer_tokens_parse_like_go() {
        let parse = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            bearer_token(&headers)
        };
        assert_eq!(parse("Bearer abc"), Some("abc".into()));
        assert_eq!(parse("bearer abc extra"), Some("abc".into()));
        assert_eq!(parse("  BEARER abc  "), Some("abc".into()));
        assert_eq!(parse("Bearer"), None);
        assert_eq!(parse("Bearer  abc"), None);
        assert_eq!(parse("Basic abc"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
