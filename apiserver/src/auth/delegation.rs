//! Delegated authentication and authorization: bearer tokens are checked with a
//! `TokenReview` (authentication.k8s.io/v1) and requests are authorized with a
//! `SubjectAccessReview` (authorization.k8s.io/v1), both answered by the cluster's API
//! server (`kube-api-contract.md` §2.5, §3.2, §3.3).
//!
//! Answers are cached ([`TtlCache`]): token answers (authenticated or not) for the token
//! TTL, keyed on the SHA-256 of the token; access answers for the allowed or denied TTL,
//! keyed on the JSON of the review spec (Go's key). Failed calls are not cached. A failed
//! access review denies (fails closed); a failed token review fails authentication.
//!
//! The cluster is reached through the [`Reviewer`] trait; [`KubeReviewer`] is the real one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use sha2::{Digest as _, Sha256};

use super::User;
use super::attributes::RequestAttributes;
use super::ttl_cache::TtlCache;

/// How many answers each cache keeps at most.
const CACHE_CAPACITY: usize = 10_000;
/// Review specs longer than this (in JSON) are not cached, as in Go.
const MAX_CACHED_KEY_BYTES: usize = 10_000;

/// A review call that did not produce an answer.
#[derive(Debug, thiserror::Error)]
#[error("{review} failed: {message}")]
pub struct ReviewError {
    /// `TokenReview` or `SubjectAccessReview`.
    pub review: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Something that answers TokenReviews and SubjectAccessReviews.
#[async_trait]
pub trait Reviewer: Send + Sync {
    /// Creates a TokenReview and returns it with its status.
    async fn token_review(&self, review: TokenReview) -> Result<TokenReview, ReviewError>;
    /// Creates a SubjectAccessReview and returns it with its status.
    async fn subject_access_review(
        &self,
        review: SubjectAccessReview,
    ) -> Result<SubjectAccessReview, ReviewError>;
}

/// The [`Reviewer`] that asks a Kubernetes API server, with one client for authentication
/// (`--authentication-kubeconfig`) and one for authorization (`--authorization-kubeconfig`).
#[derive(Clone)]
pub struct KubeReviewer {
    authentication: kube::Client,
    authorization: kube::Client,
}

impl KubeReviewer {
    /// A reviewer using these clients.
    pub fn new(authentication: kube::Client, authorization: kube::Client) -> Self {
        KubeReviewer {
            authentication,
            authorization,
        }
    }
}

#[async_trait]
impl Reviewer for KubeReviewer {
    async fn token_review(&self, review: TokenReview) -> Result<TokenReview, ReviewError> {
        Api::<TokenReview>::all(self.authentication.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewError {
                review: "TokenReview",
                message: e.to_string(),
            })
    }

    async fn subject_access_review(
        &self,
        review: SubjectAccessReview,
    ) -> Result<SubjectAccessReview, ReviewError> {
        Api::<SubjectAccessReview>::all(self.authorization.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewError {
                review: "SubjectAccessReview",
                message: e.to_string(),
            })
    }
}

/// What a token review decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVerdict {
    /// The token belongs to this user (groups as the cluster said; `system:authenticated`
    /// is added by the caller).
    Authenticated(User),
    /// The cluster does not accept the token; the text is its error, if any.
    Rejected(String),
}

/// Bearer-token authentication through cached TokenReviews.
pub struct TokenAuthenticator {
    reviewer: Arc<dyn Reviewer>,
    cache: TtlCache<[u8; 32], TokenVerdict>,
    ttl: Duration,
}

impl TokenAuthenticator {
    /// An authenticator caching answers for `ttl`.
    pub fn new(reviewer: Arc<dyn Reviewer>, ttl: Duration) -> Self {
        TokenAuthenticator {
            reviewer,
            cache: TtlCache::new(CACHE_CAPACITY),
            ttl,
        }
    }

    /// Who the token belongs to, if anyone.
    pub async fn authenticate(&self, token: &str) -> Result<TokenVerdict, ReviewError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verdict) = self.cache.get(&key) {
            return Ok(verdict);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = self.reviewer.token_review(review).await?;
        let status = answer.status.unwrap_or_default();
        let verdict = match status.user {
            Some(user) if status.authenticated == Some(true) => TokenVerdict::Authenticated(User {
                name: user.username.unwrap_or_default(),
                uid: user.uid.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default(),
            }),
            _ => TokenVerdict::Rejected(status.error.unwrap_or_default()),
        };
        self.cache.insert(key, verdict.clone(), self.ttl);
        Ok(verdict)
    }
}

/// What an access review decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, or no opinion (which ends as a denial); the cluster's reason, if any.
    Deny(String),
}

/// Authorization through cached SubjectAccessReviews.
pub struct AccessReviewAuthorizer {
    reviewer: Arc<dyn Reviewer>,
    cache: TtlCache<String, Decision>,
    allowed_ttl: Duration,
    denied_ttl: Duration,
}

impl AccessReviewAuthorizer {
    /// An authorizer caching allowed answers for `allowed_ttl` and denials for
    /// `denied_ttl`.
    pub fn new(reviewer: Arc<dyn Reviewer>, allowed_ttl: Duration, denied_ttl: Duration) -> Self {
        AccessReviewAuthorizer {
            reviewer,
            cache: TtlCache::new(CACHE_CAPACITY),
            allowed_ttl,
            denied_ttl,
        }
    }

    /// Whether `user` may make a request with these attributes.
    pub async fn authorize(
        &self,
        user: &User,
        attributes: &RequestAttributes,
    ) -> Result<Decision, ReviewError> {
        let spec = review_spec(user, attributes);
        let key = serde_json::to_string(&spec).ok();
        if let Some(decision) = key.as_ref().and_then(|key| self.cache.get(key)) {
            return Ok(decision);
        }
        let review = SubjectAccessReview {
            spec,
            ..SubjectAccessReview::default()
        };
        let answer = self.reviewer.subject_access_review(review).await?;
        let status = answer.status.unwrap_or_default();
        let (decision, ttl) = if status.allowed && status.denied != Some(true) {
            (Decision::Allow, self.allowed_ttl)
        } else {
            (
                Decision::Deny(status.reason.unwrap_or_default()),
                self.denied_ttl,
            )
        };
        if let Some(key) = key.filter(|k| k.len() <= MAX_CACHED_KEY_BYTES) {
            self.cache.insert(key, decision.clone(), ttl);
        }
        Ok(decision)
    }
}

/// The SubjectAccessReview spec for a request, empty fields left out as Go's webhook does.
pub fn review_spec(user: &User, attributes: &RequestAttributes) -> SubjectAccessReviewSpec {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let (resource_attributes, non_resource_attributes) = match attributes {
        RequestAttributes::Resource(attrs) => (
            Some(ResourceAttributes {
                namespace: some(&attrs.namespace),
                verb: some(&attrs.verb),
                group: some(&attrs.group),
                version: some(&attrs.version),
                resource: some(&attrs.resource),
                subresource: some(&attrs.subresource),
                name: some(&attrs.name),
                ..ResourceAttributes::default()
            }),
            None,
        ),
        RequestAttributes::NonResource { path, verb } => (
            None,
            Some(NonResourceAttributes {
                path: some(path),
                verb: some(verb),
            }),
        ),
    };
    SubjectAccessReviewSpec {
        user: some(&user.name),
        uid: some(&user.uid),
        groups: (!user.groups.is_empty()).then(|| user.groups.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
        resource_attributes,
        non_resource_attributes,
    }
}

/// Extra attributes as a map, for building [`User`]s.
pub type Extra = BTreeMap<String, Vec<String>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::attributes::ResourceAttributes as Attrs;
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
    use k8s_openapi::api::authorization::v1::SubjectAccessReviewStatus;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A [`Reviewer`] answering from closures.
    struct FnReviewer<T, S> {
        token: T,
        access: S,
    }

    impl<T, S> FnReviewer<T, S>
    where
        T: Fn(&TokenReviewSpec) -> Result<TokenReview, ReviewError> + Send + Sync,
        S: Fn(&SubjectAccessReviewSpec) -> Result<SubjectAccessReview, ReviewError> + Send + Sync,
    {
        fn new(token: T, access: S) -> Self {
            FnReviewer { token, access }
        }
    }

    #[async_trait]
    impl<T, S> Reviewer for FnReviewer<T, S>
    where
        T: Fn(&TokenReviewSpec) -> Result<TokenReview, ReviewError> + Send + Sync,
        S: Fn(&SubjectAccessReviewSpec) -> Result<SubjectAccessReview, ReviewError> + Send + Sync,
    {
        async fn token_review(&self, review: TokenReview) -> Result<TokenReview, ReviewError> {
            (self.token)(&review.spec)
        }

        async fn subject_access_review(
            &self,
            review: SubjectAccessReview,
        ) -> Result<SubjectAccessReview, ReviewError> {
            (self.access)(&review.spec)
        }
    }

    fn alice() -> User {
        User {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["devs".into(), "system:authenticated".into()],
            extra: Extra::new(),
        }
    }

    fn get_device() -> RequestAttributes {
        RequestAttributes::Resource(Attrs {
            verb: "get".into(),
            group: "management.project-flotta.io".into(),
            version: "v1alpha1".into(),
            namespace: "default".into(),
            resource: "edgedevices".into(),
            subresource: String::new(),
            name: "dev1".into(),
        })
    }

    #[test]
    fn spec_json_matches_the_webhook_shape() {
        let spec = review_spec(&alice(), &get_device());
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({
                "user": "alice",
                "groups": ["devs", "system:authenticated"],
                "resourceAttributes": {
                    "namespace": "default", "verb": "get",
                    "group": "management.project-flotta.io", "version": "v1alpha1",
                    "resource": "edgedevices", "name": "dev1"
                }
            })
        );
        let spec = review_spec(
            &alice(),
            &RequestAttributes::NonResource {
                path: "/apis".into(),
                verb: "get".into(),
            },
        );
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["nonResourceAttributes"],
            serde_json::json!({"path": "/apis", "verb": "get"})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn access_answers_are_cached_per_spec() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let reviewer = FnReviewer::new(
            |_: &TokenReviewSpec| unreachable!(),
            move |spec: &SubjectAccessReviewSpec| {
                counted.fetch_add(1, Ordering::SeqCst);
                let allowed = spec
                    .resource_attributes
                    .as_ref()
                    .and_then(|r| r.verb.as_deref())
                    == Some("get");
                Ok(SubjectAccessReview {
                    status: Some(SubjectAccessReviewStatus {
                        allowed,
                        reason: (!allowed).then(|| "no rule".to_owned()),
                        ..SubjectAccessReviewStatus::default()
                    }),
                    ..SubjectAccessReview::default()
                })
            },
        );
        let authorizer = AccessReviewAuthorizer::new(
            Arc::new(reviewer),
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        let user = alice();
        assert_eq!(
            authorizer.authorize(&user, &get_device()).await.unwrap(),
            Decision::Allow
        );
        assert_eq!(
            authorizer.authorize(&user, &get_device()).await.unwrap(),
            Decision::Allow
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let RequestAttributes::Resource(mut delete) = get_device() else {
            unreachable!()
        };
        delete.verb = "delete".into();
        let delete = RequestAttributes::Resource(delete);
        assert_eq!(
            authorizer.authorize(&user, &delete).await.unwrap(),
            Decision::Deny("no rule".into())
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Denials expire sooner than allowances.
        tokio::time::advance(Duration::from_secs(6)).await;
        authorizer.authorize(&user, &delete).await.unwrap();
        authorizer.authorize(&user, &get_device()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        tokio::time::advance(Duration::from_secs(5)).await;
        authorizer.authorize(&user, &get_device()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn token_answers_are_cached_and_errors_are_not() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let reviewer = FnReviewer::new(
            move |spec: &TokenReviewSpec| {
                counted.fetch_add(1, Ordering::SeqCst);
                match spec.token.as_str() {
                    "good" => Ok(TokenReview {
                        status: Some(TokenReviewStatus {
                            authenticated: Some(true),
                            user: Some(UserInfo {
                                username: Some("system:serviceaccount:ns:sa".into()),
                                groups: Some(vec!["system:serviceaccounts".into()]),
                                ..UserInfo::default()
                            }),
                            ..TokenReviewStatus::default()
                        }),
                        ..TokenReview::default()
                    }),
                    "bad" => Ok(TokenReview {
                        status: Some(TokenReviewStatus {
                            authenticated: Some(false),
                            error: Some("token expired".into()),
                            ..TokenReviewStatus::default()
                        }),
                        ..TokenReview::default()
                    }),
                    _ => Err(ReviewError {
                        review: "TokenReview",
                        message: "connection refused".into(),
                    }),
                }
            },
            |_: &SubjectAccessReviewSpec| unreachable!(),
        );
        let tokens = TokenAuthenticator::new(Arc::new(reviewer), Duration::from_secs(10));
        let TokenVerdict::Authenticated(user) = tokens.authenticate("good").await.unwrap() else {
            panic!("expected a user")
        };
        assert_eq!(user.name, "system:serviceaccount:ns:sa");
        assert_eq!(user.groups, ["system:serviceaccounts"]);
        assert_eq!(
            tokens.authenticate("bad").await.unwrap(),
            TokenVerdict::Rejected("token expired".into())
        );
        tokens.authenticate("good").await.unwrap();
        tokens.authenticate("bad").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(tokens.authenticate("down").await.is_err());
        assert!(tokens.authenticate("down").await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        tokio::time::advance(Duration::from_secs(11)).await;
        tokens.authenticate("good").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
