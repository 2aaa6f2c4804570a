//! Shared pieces of the aggregated-mode tests: certificates, a test double of the
//! Kubernetes API server, and a `flotta-apiserver` started in-process in aggregated mode.
//!
//! **What the double stands in for.** No kube-apiserver can run on this platform, so
//! [`KubeDouble`] plays the parts of it that an aggregated API server talks to, following
//! the documented contracts (`kube-api-contract.md` §1.3, §2.1, §2.5, §3.2):
//! - `GET /api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name=extension-apiserver-authentication`
//!   as a list (`ConfigMapList` with a `resourceVersion`) and as a watch (`watch=true`,
//!   newline-delimited `ADDED`/`MODIFIED`/`DELETED` events after the given
//!   `resourceVersion`). Like RBAC's `extension-apiserver-authentication-reader` role,
//!   which names that one object, it answers 403 without the field selector.
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews` (TokenReview, authentication.k8s.io/v1):
//!   `status.authenticated` + `status.user` for the tokens it knows, else
//!   `authenticated: false` with an `error`.
//! - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` (SubjectAccessReview,
//!   authorization.k8s.io/v1): `status.allowed`/`status.denied`/`status.reason` from a
//!   policy the test sets.
//! - `GET /api/v1/namespaces/{ns}/secrets/{name}` and `POST /api/v1/namespaces/{ns}/secrets`
//!   (core/v1 Secret get and create, 404 NotFound / 409 AlreadyExists `Status` as usual),
//!   enough for the device CA Secret.
//! - `GET /api/v1/configmaps` and `GET /api/v1/secrets` (all namespaces) as lists and as
//!   watches, over objects the test puts and deletes, for the referenced-object cache.
//! - Every call must carry the server's bearer token (as the service account token would
//!   be), else 401. Every request and every review spec is recorded for the test to assert.
//!
//! The aggregator's side (front-proxy client certificate plus `X-Remote-*` headers, TLS
//! verified against the serving CA with ServerName `flotta-apiserver.flotta.svc`) is played
//! by the tests' own HTTP clients ([`Client`]).

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Json, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

/// The bearer token the server uses towards the double.
pub const SERVER_TOKEN: &str = "flotta-server-token";
/// A ServiceAccount token the double's TokenReview accepts.
pub const SA_TOKEN: &str = "reader-sa-token";
/// The user that token belongs to.
pub const SA_USER: &str = "system:serviceaccount:flotta:reader";
/// The DNS name the aggregator verifies the serving certificate against.
pub const SERVICE_DNS: &str = "flotta-apiserver.flotta.svc";
/// The API group served.
pub const GROUP: &str = "management.project-flotta.io";

/// Installs the process crypto provider (kube-client's TLS setup uses the default one)
/// and test logging. Idempotent.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "flotta_apiserver=info".to_owned()),
        )
        .try_init();
}

/// A test certificate authority.
pub struct TestCa {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("self-signed");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate (`clientAuth`) with this CN and these O values.
    pub fn client(&self, cn: &str, orgs: &[&str]) -> Issued {
        self.issue(cn, orgs, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A server certificate (`serverAuth`) for these DNS names / IP addresses.
    pub fn server(&self, names: &[&str]) -> Issued {
        self.issue("server", &[], names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn issue(
        &self,
        cn: &str,
        orgs: &[&str],
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Issued {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        for org in orgs {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *org);
        }
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The `data` of an `extension-apiserver-authentication` ConfigMap as kubeadm writes it.
pub fn authentication_data(client_ca: &str, requestheader_ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("client-ca-file".to_owned(), client_ca.to_owned()),
        (
            "requestheader-client-ca-file".to_owned(),
            requestheader_ca.to_owned(),
        ),
        (
            "requestheader-allowed-names".to_owned(),
            r#"["front-proxy-client"]"#.to_owned(),
        ),
        (
            "requestheader-username-headers".to_owned(),
            r#"["X-Remote-User"]"#.to_owned(),
        ),
        (
            "requestheader-group-headers".to_owned(),
            r#"["X-Remote-Group"]"#.to_owned(),
        ),
        (
            "requestheader-extra-headers-prefix".to_owned(),
            r#"["X-Remote-Extra-"]"#.to_owned(),
        ),
    ])
}

/// One recorded call to the double.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
}

/// What a SubjectAccessReview policy answers.
pub struct Answer {
    pub allowed: bool,
    pub denied: bool,
    pub reason: String,
}

type Policy = Box<dyn Fn(&Value) -> Result<Answer, StatusCode> + Send + Sync>;

struct DoubleState {
    /// Events of the authentication ConfigMap: (resourceVersion, type, object).
    config_map_events: Mutex<Vec<(u64, &'static str, Value)>>,
    revision: watch::Sender<u64>,
    requests: Mutex<Vec<Recorded>>,
    token_reviews: Mutex<Vec<Value>>,
    access_reviews: Mutex<Vec<Value>>,
    policy: Mutex<Policy>,
    /// Secrets by (namespace, name).
    secrets: Mutex<BTreeMap<(String, String), Value>>,
    /// Events of cluster-wide ConfigMaps and Secrets: (resourceVersion, plural, type, object).
    objects: Mutex<Vec<(u64, String, &'static str, Value)>>,
}

/// The Kubernetes API test double (see the module docs).
pub struct KubeDouble {
    pub addr: SocketAddr,
    pub ca: TestCa,
    state: Arc<DoubleState>,
    stop: Option<oneshot::Sender<()>>,
    _task: tokio::task::JoinHandle<()>,
}

impl KubeDouble {
    /// Starts the double on 127.0.0.1, with the authentication ConfigMap holding `data`
    /// (absent when `None`) and a policy that allows nothing.
    pub async fn start(data: Option<BTreeMap<String, String>>) -> Self {
        let ca = TestCa::new("kube-double-ca");
        let serving = ca.server(&["127.0.0.1"]);
        let (revision, _) = watch::channel(1);
        let state = Arc::new(DoubleState {
            config_map_events: Mutex::new(Vec::new()),
            revision,
            requests: Mutex::new(Vec::new()),
            token_reviews: Mutex::new(Vec::new()),
            access_reviews: Mutex::new(Vec::new()),
            secrets: Mutex::new(BTreeMap::new()),
            objects: Mutex::new(Vec::new()),
            policy: Mutex::new(Box::new(|_| {
                Ok(Answer {
                    allowed: false,
                    denied: false,
                    reason: String::new(),
                })
            })),
        });
        if let Some(data) = data {
            set_authentication_data(&state, data);
        }
        let app = Router::new()
            .route(
                "/api/v1/namespaces/kube-system/configmaps",
                get(config_maps),
            )
            .route("/api/v1/{plural}", get(all_objects))
            .route(
                "/api/v1/namespaces/{namespace}/secrets",
                post(create_secret),
            )
            .route(
                "/api/v1/namespaces/{namespace}/secrets/{name}",
                get(get_secret),
            )
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(access_review),
            )
            .fallback(|| async {
                status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "not served by the double",
                )
            })
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                check_token,
            ))
            .with_state(state.clone());
        let chain =
            vec![CertificateDer::from_pem_slice(serving.cert_pem.as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).expect("key");
        let own_ca = CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("ca");
        let config = flotta_apiserver::tls::server_config(&[own_ca], chain, key).expect("tls");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            flotta_apiserver::tls::TlsServer::new(config)
                .with_drain_timeout(Duration::from_millis(100))
                .serve(listener, app, async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        KubeDouble {
            addr,
            ca,
            state,
            stop: Some(stop_tx),
            _task: task,
        }
    }

    /// Creates or replaces the authentication ConfigMap (an ADDED or MODIFIED event).
    pub fn set_authentication_data(&self, data: BTreeMap<String, String>) {
        set_authentication_data(&self.state, data);
    }
}

fn set_authentication_data(state: &DoubleState, data: BTreeMap<String, String>) {
    let mut events = state.config_map_events.lock().expect("lock");
    let rv = *state.revision.borrow() + 1;

    let kind = match events.last() {
        Some((_, kind, _)) if *kind != "DELETED" => "MODIFIED",
        _ => "ADDED",
    };
    let object = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "extension-apiserver-authentication",
            "namespace": "kube-system",
            "uid": "3b4c3c2e-0000-4000-8000-000000000001",
            "resourceVersion": rv.to_string(),
        },
        "data": data,
    });
    events.push((rv, kind, object));
    state.revision.send_replace(rv);
}

impl KubeDouble {
    /// Sets the SubjectAccessReview policy (`Err(code)` makes the review call fail).
    pub fn set_policy(
        &self,
        policy: impl Fn(&Value) -> Result<Answer, StatusCode> + Send + Sync + 'static,
    ) {
        *self.state.policy.lock().expect("lock") = Box::new(policy);
    }

    /// The specs of every SubjectAccessReview received so far.
    pub fn access_reviews(&self) -> Vec<Value> {
        self.state.access_reviews.lock().expect("lock").clone()
    }

    /// The specs of every TokenReview received so far.
    pub fn token_reviews(&self) -> Vec<Value> {
        self.state.token_reviews.lock().expect("lock").clone()
    }

    /// Creates or replaces a ConfigMap or Secret (`plural` `configmaps` or `secrets`) in
    /// the cluster-wide collections.
    pub fn put_object(&self, plural: &str, mut object: Value) {
        let mut objects = self.state.objects.lock().expect("lock");
        let rv = *self.state.revision.borrow() + 1;
        let same = |o: &Value| {
            o["metadata"]["namespace"] == object["metadata"]["namespace"]
                && o["metadata"]["name"] == object["metadata"]["name"]
        };
        let kind = match objects
            .iter()
            .rev()
            .find(|(_, p, _, o)| p == plural && same(o))
        {
            Some((_, _, kind, _)) if *kind != "DELETED" => "MODIFIED",
            _ => "ADDED",
        };
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        objects.push((rv, plural.to_owned(), kind, object));
        self.state.revision.send_replace(rv);
    }

    /// Deletes a ConfigMap or Secret put with [`KubeDouble::put_object`].
    pub fn delete_object(&self, plural: &str, namespace: &str, name: &str) {
        let mut objects = self.state.objects.lock().expect("lock");
        let rv = *self.state.revision.borrow() + 1;
        let last = objects
            .iter()
            .rev()
            .find(|(_, p, _, o)| {
                p == plural
                    && o["metadata"]["namespace"] == namespace
                    && o["metadata"]["name"] == name
            })
            .map(|(_, _, _, o)| o.clone())
            .expect("the object exists");
        objects.push((rv, plural.to_owned(), "DELETED", last));
        self.state.revision.send_replace(rv);
    }

    /// The Secret `namespace/name`, if it exists.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .secrets
            .lock()
            .expect("lock")
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// A kubeconfig reaching the double with [`SERVER_TOKEN`], written into `dir`.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca.pem);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca}\nusers:\n- name: server\n  user:\n    token: {SERVER_TOKEN}\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: server\n    namespace: flotta\ncurrent-context: double\n",
            addr = self.addr
        );
        let path = dir.join("cluster.kubeconfig");
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }
}

impl Drop for KubeDouble {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        })),
    )
        .into_response()
}

async fn check_token(
    State(state): State<Arc<DoubleState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    state.requests.lock().expect("lock").push(Recorded {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or("").to_owned(),
    });
    let expected = format!("Bearer {SERVER_TOKEN}");
    match request.headers().get(header::AUTHORIZATION) {
        Some(value) if value.as_bytes() == expected.as_bytes() => next.run(request).await,
        _ => status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn config_maps(State(state): State<Arc<DoubleState>>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let param = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    if param("fieldSelector").as_deref() != Some("metadata.name=extension-apiserver-authentication")
    {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "configmaps is forbidden: the reader role names one object; select it by name",
        );
    }
    let watching = param("watch").is_some_and(|w| w == "true" || w == "1");
    if !watching {
        let events = state.config_map_events.lock().expect("lock");
        let rv = *state.revision.borrow();
        let items: Vec<Value> = match events.last() {
            Some((_, kind, object)) if *kind != "DELETED" => vec![object.clone()],
            _ => Vec::new(),
        };
        return Json(json!({
            "kind": "ConfigMapList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }))
        .into_response();
    }
    let from: u64 = param("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0);
    let revisions = state.revision.subscribe();
    let stream = futures::stream::unfold((from, revisions), move |(seen, mut revisions)| {
        let state = state.clone();
        async move {
            loop {
                let next = state
                    .config_map_events
                    .lock()
                    .expect("lock")
                    .iter()
                    .find(|(rv, _, _)| *rv > seen)
                    .cloned();
                if let Some((rv, kind, object)) = next {
                    let line = format!("{}\n", json!({"type": kind, "object": object}));
                    return Some((Ok::<_, std::io::Error>(line), (rv, revisions)));
                }
                if revisions.changed().await.is_err() {
                    return None;
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("response")
}

/// The current objects of one plural (last event per object, deletions dropped).
fn current_objects(state: &DoubleState, plural: &str) -> Vec<Value> {
    let mut current: BTreeMap<(String, String), Value> = BTreeMap::new();
    for (_, p, kind, object) in state.objects.lock().expect("lock").iter() {
        if p != plural {
            continue;
        }
        let key = (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        );
        if *kind == "DELETED" {
            current.remove(&key);
        } else {
            current.insert(key, object.clone());
        }
    }
    current.into_values().collect()
}

async fn all_objects(
    State(state): State<Arc<DoubleState>>,
    axum::extract::Path(plural): axum::extract::Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let list_kind = match plural.as_str() {
        "configmaps" => "ConfigMapList",
        "secrets" => "SecretList",
        _ => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "not served by the double",
            );
        }
    };
    let pairs = query_pairs(query.as_deref());
    let param = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    if !param("watch").is_some_and(|w| w == "true" || w == "1") {
        let rv = *state.revision.borrow();
        return Json(json!({
            "kind": list_kind,
            "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": current_objects(&state, &plural),
        }))
        .into_response();
    }
    let from: u64 = param("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0);
    let revisions = state.revision.subscribe();
    let stream = futures::stream::unfold((from, revisions), move |(seen, mut revisions)| {
        let state = state.clone();
        let plural = plural.clone();
        async move {
            loop {
                let next = state
                    .objects
                    .lock()
                    .expect("lock")
                    .iter()
                    .find(|(rv, p, _, _)| *rv > seen && *p == plural)
                    .cloned();
                if let Some((rv, _, kind, object)) = next {
                    let line = format!("{}\n", json!({"type": kind, "object": object}));
                    return Some((Ok::<_, std::io::Error>(line), (rv, revisions)));
                }
                if revisions.changed().await.is_err() {
                    return None;
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("response")
}

async fn get_secret(
    State(state): State<Arc<DoubleState>>,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
) -> Response {
    match state
        .secrets
        .lock()
        .expect("lock")
        .get(&(namespace, name.clone()))
    {
        Some(secret) => Json(secret.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("secrets \"{name}\" not found"),
        ),
    }
}

async fn create_secret(
    State(state): State<Arc<DoubleState>>,
    axum::extract::Path(namespace): axum::extract::Path<String>,
    Json(mut body): Json<Value>,
) -> Response {
    if let Some(response) = type_error(&body, "v1", "Secret") {
        return response;
    }
    let Some(name) = body["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name is required",
        );
    };
    let mut secrets = state.secrets.lock().expect("lock");
    let key = (namespace.clone(), name.clone());
    if secrets.contains_key(&key) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("secrets \"{name}\" already exists"),
        );
    }
    body["metadata"]["namespace"] = json!(namespace);
    body["metadata"]["uid"] = json!("8d1e7a52-0000-4000-8000-000000000003");
    body["metadata"]["resourceVersion"] = json!("7");
    secrets.insert(key, body.clone());
    (StatusCode::CREATED, Json(body)).into_response()
}

/// A 400 answer when `body` is not of this type.
fn type_error(body: &Value, api_version: &str, kind: &str) -> Option<Response> {
    if body["apiVersion"] == api_version && body["kind"] == kind {
        None
    } else {
        Some(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "expected {api_version} {kind}, got {} {}",
                body["apiVersion"], body["kind"]
            ),
        ))
    }
}

async fn token_review(
    State(state): State<Arc<DoubleState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let _ = headers;
    if let Some(response) = type_error(&body, "authentication.k8s.io/v1", "TokenReview") {
        return response;
    }
    let spec = body["spec"].clone();
    state.token_reviews.lock().expect("lock").push(spec.clone());
    let status_field = if spec["token"] == SA_TOKEN {
        json!({
            "authenticated": true,
            "user": {
                "username": SA_USER,
                "uid": "6f0c1b8e-0000-4000-8000-000000000002",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:flotta", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/pod-name": ["reader-0"]},
            },
            "audiences": ["https://kubernetes.default.svc"],
        })
    } else {
        json!({"authenticated": false, "error": "invalid bearer token"})
    };
    (
        StatusCode::CREATED,
        Json(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status_field,
        })),
    )
        .into_response()
}

async fn access_review(State(state): State<Arc<DoubleState>>, Json(body): Json<Value>) -> Response {
    if let Some(response) = type_error(&body, "authorization.k8s.io/v1", "SubjectAccessReview") {
        return response;
    }
    let spec = body["spec"].clone();
    state
        .access_reviews
        .lock()
        .expect("lock")
        .push(spec.clone());
    let answer = (state.policy.lock().expect("lock"))(&spec);
    let answer = match answer {
        Ok(answer) => answer,
        Err(code) => return status(code, "InternalError", "the double was told to fail"),
    };
    let mut status_field = json!({"allowed": answer.allowed});
    if answer.denied {
        status_field["denied"] = json!(true);
    }
    if !answer.reason.is_empty() {
        status_field["reason"] = json!(answer.reason);
    }
    (
        StatusCode::CREATED,
        Json(json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status_field,
        })),
    )
        .into_response()
}

/// `flotta-apiserver` running in-process in aggregated mode against a [`KubeDouble`].
pub struct Server {
    pub secure: SocketAddr,
    pub metrics: SocketAddr,
    pub serving_ca: TestCa,
    pub data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), flotta_apiserver::server::ServerError>>,
}

impl Server {
    /// Starts the server with `--mode aggregated` and waits until it listens (not until
    /// it is ready: see [`Server::wait_ready`]).
    pub async fn start(double: &KubeDouble, extra_args: &[&str]) -> Self {
        use clap::Parser as _;
        let data_dir = tempfile::tempdir().expect("tempdir");
        let serving_ca = TestCa::new("flotta-serving-ca");
        let serving = serving_ca.server(&[SERVICE_DNS, "127.0.0.1"]);
        let cert = data_dir.path().join("tls.crt");
        let key = data_dir.path().join("tls.key");
        std::fs::write(&cert, &serving.cert_pem).expect("cert");
        std::fs::write(&key, &serving.key_pem).expect("key");
        let kubeconfig = double.write_kubeconfig(data_dir.path());
        let data = data_dir.path().join("data");
        let mut args: Vec<String> = [
            "flotta-apiserver",
            "--mode",
            "aggregated",
            "--store",
            "memory",
            "--secure-port",
            "0",
            "--metrics-port",
            "auto",
            "--device-port",
            "0",
            "--shutdown-timeout",
            "5",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for (flag, value) in [
            ("--data-dir", &data),
            ("--kubeconfig", &kubeconfig),
            ("--tls-cert-file", &cert),
            ("--tls-private-key-file", &key),
        ] {
            args.push(flag.to_owned());
            args.push(value.display().to_string());
        }
        args.extend(extra_args.iter().map(|s| (*s).to_owned()));
        let opts = flotta_apiserver::config::Options::try_parse_from(args).expect("flags");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(flotta_apiserver::server::run_until(opts, async {
            let _ = stop_rx.await;
        }));
        let ports_path = data.join("ports.json");
        let ports: Value = wait_for(Duration::from_secs(30), || {
            std::fs::read(&ports_path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        })
        .await
        .expect("the server wrote ports.json");
        let port = |name: &str| {
            ports[name]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .expect("port")
        };
        Server {
            secure: SocketAddr::from(([127, 0, 0, 1], port("secure"))),
            metrics: SocketAddr::from(([127, 0, 0, 1], port("metrics"))),
            serving_ca,
            data_dir,
            stop: Some(stop_tx),
            task,
        }
    }

    /// Plain-HTTP GET on the metrics port: (status, body).
    pub async fn metrics_get(&self, path: &str) -> (u16, String) {
        let response = reqwest::Client::builder()
            .build()
            .expect("client")
            .get(format!("http://{}{path}", self.metrics))
            .send()
            .await
            .expect("metrics port answers");
        let code = response.status().as_u16();
        (code, response.text().await.unwrap_or_default())
    }

    /// Waits until `/readyz` on the metrics port answers 200.
    pub async fn wait_ready(&self) {
        let ready = wait_for_async(Duration::from_secs(30), || async {
            (self.metrics_get("/readyz").await.0 == 200).then_some(())
        })
        .await;
        assert!(ready.is_some(), "the server did not become ready");
    }

    /// Starts graceful shutdown (as SIGTERM does).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// An HTTPS client to the secure port, verifying the serving certificate for
    /// [`SERVICE_DNS`] as the aggregator does, presenting `cert` if given.
    pub fn client(&self, cert: Option<&Issued>) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.serving_ca.pem.as_bytes()).expect("ca"))
            .expect("root");
        let builder =
            rustls::ClientConfig::builder_with_provider(flotta_apiserver::tls::crypto_provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots);
        let mut config = match cert {
            None => builder.with_no_client_auth(),
            Some(issued) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("cert")],
                    PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key"),
                )
                .expect("client cert"),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .resolve(SERVICE_DNS, self.secure)
            .build()
            .expect("client");
        Client {
            http,
            base: format!("https://{SERVICE_DNS}:{}", self.secure.port()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An HTTPS client of the secure port.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    /// A request to `path` with these extra headers (repeated names are sent repeatedly).
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut builder = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder
    }

    /// Sends a request and returns (status, body as JSON or a string).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut builder = self.request(method, path, headers);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = builder.send().await.expect("request sent");
        let code = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// Polls `probe` every 20 ms until it returns `Some` or `timeout` passes.
pub async fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_for`] with an async probe.
pub async fn wait_for_async<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
