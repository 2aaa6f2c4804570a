//! The device API served for real: the device listener on 127.0.0.1 with the device CA,
//! called through reqwest with real client certificates — the bootstrap certificate, a
//! device certificate obtained by registering, expired certificates made with rcgen, a
//! certificate of a foreign CA, and none — checking the TLS outcome and every status code
//! of the authorization matrix and the directives.
//!
//! The device backend here is [`TestBackend`], a small in-memory double of the
//! `DeviceBackend` contract (enrol, approval, registration, deletion) so that these tests
//! exercise the Edge API layer alone; the store backend has its own tests and the
//! end-to-end tests run both together.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flotta_api::edge::{
    DeviceConfigurationMessage, EnrolmentInfo, Heartbeat, PlaybookExecution, RegistrationInfo,
};
use flotta_api::store::memory::MemoryStore;
use flotta_apiserver::edge::backend::{
    BackendError, DeviceBackend, RegistrationStatus, RenderedConfiguration,
};
use flotta_apiserver::edge::ca::DeviceCa;
use flotta_apiserver::edge::handlers::{self, EdgeState, NoopObserver};
use flotta_apiserver::edge::listener::{self, DeviceListener};
use flotta_apiserver::tls;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const BASE: &str = "/api/flotta-management/v1";

#[derive(Debug, Clone)]
struct Device {
    namespace: String,
    awaiting_registration: bool,
    deleted: bool,
}

/// An in-memory stand-in for the device backend (see the module documentation).
#[derive(Default)]
struct TestBackend {
    enrolled: Mutex<HashMap<String, String>>,
    devices: Mutex<HashMap<String, Device>>,
    heartbeats: Mutex<Vec<(String, String, Heartbeat)>>,
}

impl TestBackend {
    fn approve(&self, name: &str) {
        let namespace = self
            .enrolled
            .lock()
            .expect("lock")
            .get(name)
            .cloned()
            .unwrap_or_else(|| "default".into());
        self.devices.lock().expect("lock").insert(
            name.into(),
            Device {
                namespace,
                awaiting_registration: true,
                deleted: false,
            },
        );
    }

    fn delete(&self, name: &str) {
        if let Some(device) = self.devices.lock().expect("lock").get_mut(name) {
            device.deleted = true;
        }
    }

    fn device(&self, name: &str) -> Option<Device> {
        self.devices.lock().expect("lock").get(name).cloned()
    }
}

#[async_trait]
impl DeviceBackend for TestBackend {
    async fn registration_status(
        &self,
        name: &str,
        _namespace: &str,
    ) -> Result<RegistrationStatus, BackendError> {
        Ok(match self.device(name) {
            Some(device) if !device.deleted => RegistrationStatus::Registered,
            _ => RegistrationStatus::Unregistered,
        })
    }

    async fn configuration(
        &self,
        name: &str,
        _namespace: &str,
    ) -> Result<RenderedConfiguration, BackendError> {
        self.device(name).ok_or(BackendError::NotFound)?;
        RenderedConfiguration::new(DeviceConfigurationMessage {
            device_id: Some(name.into()),
            version: Some("1".into()),
            ..DeviceConfigurationMessage::default()
        })
    }

    async fn enrol(
        &self,
        name: &str,
        namespace: &str,
        _info: &EnrolmentInfo,
    ) -> Result<bool, BackendError> {
        if self.device(name).is_some() {
            return Ok(true);
        }
        self.enrolled
            .lock()
            .expect("lock")
            .insert(name.into(), namespace.into());
        Ok(false)
    }

    async fn target_namespace(
        &self,
        name: &str,
        identity_namespace: &str,
        matches_certificate: bool,
    ) -> Result<String, BackendError> {
        match self.device(name) {
            Some(_) if matches_certificate => Ok(identity_namespace.into()),
            Some(device) => Ok(device.namespace),
            None if self.enrolled.lock().expect("lock").contains_key(name) => {
                Err(BackendError::NotApproved)
            }
            None => Err(BackendError::NotFound),
        }
    }

    async fn register(
        &self,
        name: &str,
        _namespace: &str,
        _info: &RegistrationInfo,
    ) -> Result<(), BackendError> {
        let mut devices = self.devices.lock().expect("lock");
        let device = devices.get_mut(name).ok_or(BackendError::NotFound)?;
        device.awaiting_registration = false;
        Ok(())
    }

    async fn heartbeat(
        &self,
        name: &str,
        namespace: &str,
        heartbeat: &Heartbeat,
    ) -> Result<(), BackendError> {
        self.device(name).ok_or(BackendError::NotFound)?;
        self.heartbeats.lock().expect("lock").push((
            name.into(),
            namespace.into(),
            heartbeat.clone(),
        ));
        Ok(())
    }

    async fn playbook_executions(
        &self,
        name: &str,
        _namespace: &str,
    ) -> Result<Vec<PlaybookExecution>, BackendError> {
        self.device(name).ok_or(BackendError::NotFound)?;
        Ok(Vec::new())
    }

    async fn is_awaiting_first_registration(
        &self,
        name: &str,
        _namespace: &str,
    ) -> Result<bool, BackendError> {
        Ok(self
            .device(name)
            .is_some_and(|device| device.awaiting_registration))
    }
}

/// A certificate and key in PEM.
#[derive(Clone)]
struct Credentials {
    cert_pem: String,
    key_pem: String,
}

struct Harness {
    addr: SocketAddr,
    ca: Arc<DeviceCa>,
    /// The CA's PEM material, to craft certificates rcgen-side (expired ones).
    ca_key_pem: String,
    backend: Arc<TestBackend>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Harness {
        let store = MemoryStore::new(100);
        // The CA as the server creates it (in the store); the key is read back for rcgen.
        let ca = Arc::new(DeviceCa::load_or_create(&store).await.expect("CA"));
        let stored =
            flotta_api::store::Store::get(&store, flotta_apiserver::edge::ca::CA_STORE_KEY)
                .await
                .expect("get")
                .expect("stored CA");
        let stored: Value = serde_json::from_slice(&stored.value).expect("JSON");
        let ca_key_pem = stored["privateKey"].as_str().expect("key").to_owned();

        let server_cert = ca
            .issue_server_certificate(&["localhost".into(), "127.0.0.1".into()])
            .expect("server certificate");
        let config = listener::server_config(&ca, &server_cert).expect("TLS config");
        let backend = Arc::new(TestBackend::default());
        let state = EdgeState {
            backend: backend.clone(),
            ca: ca.clone(),
            device_cert_validity: Duration::from_secs(3600),
            observer: Arc::new(NoopObserver),
        };
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(DeviceListener::new(config, Duration::from_secs(2)).serve(
            tcp,
            handlers::router(state),
            async {
                let _ = stopped.await;
            },
        ));
        Harness {
            addr,
            ca,
            ca_key_pem,
            backend,
            stop: Some(stop),
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{BASE}/{path}", self.addr.port())
    }

    fn client(&self, credentials: Option<&Credentials>) -> reqwest::Client {
        client_trusting(self.ca.certificate_der(), credentials)
    }

    fn bootstrap(&self) -> Credentials {
        let issued = self.ca.issue_bootstrap_certificate().expect("bootstrap");
        Credentials {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }
    }

    /// A certificate signed by the device CA with an arbitrary subject and validity
    /// (Unix seconds), made with rcgen directly.
    fn crafted(&self, common_name: &str, unit: Option<&str>, from: i64, to: i64) -> Credentials {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).expect("CA key");
        let issuer =
            rcgen::Issuer::from_ca_cert_pem(self.ca.certificate_pem(), ca_key).expect("issuer");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        if let Some(unit) = unit {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, unit);
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + Duration::from_secs(u64::try_from(from).expect("time"));
        params.not_after = epoch + Duration::from_secs(u64::try_from(to).expect("time"));
        let cert = params.signed_by(&key, &issuer).expect("sign");
        Credentials {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn expired(&self, common_name: &str, unit: Option<&str>) -> Credentials {
        let now = now();
        self.crafted(common_name, unit, now - 30 * 86_400, now - 86_400)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.server).await.expect("server task");
    }
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time")
}

fn client_trusting(
    root: &CertificateDer<'static>,
    credentials: Option<&Credentials>,
) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match credentials {
        None => builder.with_no_client_auth(),
        Some(credentials) => {
            let chain = vec![
                CertificateDer::from_pem_slice(credentials.cert_pem.as_bytes()).expect("cert"),
            ];
            let key = PrivateKeyDer::from_pem_slice(credentials.key_pem.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .expect("client")
}

fn message(directive: &str, content: Value) -> Value {
    json!({
        "type": "data",
        "message_id": "m-1",
        "version": 1,
        "sent": "2024-05-01T10:00:00.000Z",
        "directive": directive,
        "content": content,
    })
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> reqwest::Response {
    client.post(url).json(body).send().await.expect("request")
}

async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).send().await.expect("request")
}

/// A new device key and a CSR for it.
fn device_key_and_csr(common_name: &str) -> (KeyPair, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let csr = params
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("PEM");
    (key, csr)
}

/// Registers `id` with `client` and returns the device credentials from the answer.
async fn register(harness: &Harness, client: &reqwest::Client, id: &str) -> Credentials {
    let (key, csr) = device_key_and_csr(id);
    let response = post(
        client,
        harness.url(&format!("data/{id}/out")),
        &message("registration", json!({"certificate_request": csr})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["directive"], "registration");
    assert_eq!(body["message_id"], "m-1");
    Credentials {
        cert_pem: body["content"]["certificate"]
            .as_str()
            .expect("certificate")
            .to_owned(),
        key_pem: key.serialize_pem(),
    }
}

/// Enrols, approves and registers `id`; returns its device credentials.
async fn registered_device(harness: &Harness, id: &str) -> Credentials {
    let bootstrap = harness.client(Some(&harness.bootstrap()));
    let enrolment = post(
        &bootstrap,
        harness.url(&format!("data/{id}/out")),
        &message("enrolment", json!({"features": {"hardware": {}}})),
    )
    .await;
    assert_eq!(enrolment.status(), StatusCode::OK);
    harness.backend.approve(id);
    register(harness, &bootstrap, id).await
}

#[tokio::test]
async fn connections_without_a_device_ca_certificate_fail_the_handshake() {
    let harness = Harness::start().await;
    let anonymous = harness.client(None);
    assert!(
        anonymous
            .get(harness.url("data/dev1/in"))
            .send()
            .await
            .is_err()
    );

    let foreign_ca = DeviceCa::load_or_create(&MemoryStore::new(10))
        .await
        .expect("foreign CA");
    let foreign = foreign_ca.issue_bootstrap_certificate().expect("foreign");
    let foreign = harness.client(Some(&Credentials {
        cert_pem: foreign.cert_pem,
        key_pem: foreign.key_pem,
    }));
    assert!(
        foreign
            .post(harness.url("data/dev1/out"))
            .json(&message("enrolment", json!({})))
            .send()
            .await
            .is_err()
    );
    harness.stop().await;
}

#[tokio::test]
async fn bootstrap_certificate_enrols_and_registers_once() {
    let harness = Harness::start().await;
    let bootstrap = harness.client(Some(&harness.bootstrap()));

    for path in ["data/dev1/in", "control/dev1/in"] {
        assert_eq!(
            get(&bootstrap, harness.url(path)).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert_eq!(
        post(
            &bootstrap,
            harness.url("control/dev1/out"),
            &message("x", json!({}))
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    for directive in ["heartbeat", "ansible", "bogus"] {
        assert_eq!(
            post(
                &bootstrap,
                harness.url("data/dev1/out"),
                &message(directive, json!({}))
            )
            .await
            .status(),
            StatusCode::FORBIDDEN,
            "{directive}"
        );
    }

    // Enrolment: 200 while new, registration 404 until approved.
    let enrol = message(
        "enrolment",
        json!({"features": {"modelName": "m"}, "target_namespace": "fleet-a"}),
    );
    assert_eq!(
        post(&bootstrap, harness.url("data/dev1/out"), &enrol)
            .await
            .status(),
        StatusCode::OK
    );
    let (_, csr) = device_key_and_csr("dev1");
    let registration = message("registration", json!({"certificate_request": csr}));
    assert_eq!(
        post(&bootstrap, harness.url("data/dev1/out"), &registration)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    harness.backend.approve("dev1");
    assert_eq!(
        post(&bootstrap, harness.url("data/dev1/out"), &enrol)
            .await
            .status(),
        StatusCode::ALREADY_REPORTED
    );
    let device = register(&harness, &bootstrap, "dev1").await;
    let der = CertificateDer::from_pem_slice(device.cert_pem.as_bytes()).expect("PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("X.509");
    let subject = cert.subject().to_string();
    assert!(subject.contains("CN=dev1"), "{subject}");
    assert!(subject.contains("OU=fleet-a"), "{subject}");

    // Registered: the bootstrap certificate may not register it again.
    assert_eq!(
        post(&bootstrap, harness.url("data/dev1/out"), &registration)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // Bad CSRs and reserved or invalid ids are the device's fault.
    harness.backend.approve("dev2");
    assert_eq!(
        post(
            &bootstrap,
            harness.url("data/dev2/out"),
            &message("registration", json!({"certificate_request": "garbage"}))
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    for id in ["register", "Dev3"] {
        assert_eq!(
            post(&bootstrap, harness.url(&format!("data/{id}/out")), &enrol)
                .await
                .status(),
            StatusCode::BAD_REQUEST,
            "{id}"
        );
    }
    harness.stop().await;
}

#[tokio::test]
async fn device_certificate_reaches_only_its_own_id() {
    let harness = Harness::start().await;
    let device = harness.client(Some(&registered_device(&harness, "dev1").await));

    // Configuration with an entity tag.
    let response = get(&device, harness.url("data/dev1/in")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response
        .headers()
        .get(reqwest::header::ETAG)
        .expect("ETag")
        .clone();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["type"], "data");
    assert_eq!(body["directive"], "device");
    assert_eq!(body["version"], 1);
    assert!(body["message_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["sent"].as_str().is_some());
    assert_eq!(
        body["content"],
        json!({"device_id": "dev1", "version": "1", "workloads": [], "secrets": []})
    );
    let not_modified = device
        .get(harness.url("data/dev1/in"))
        .header(reqwest::header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        not_modified.headers().get(reqwest::header::ETAG),
        Some(&etag)
    );
    assert!(not_modified.bytes().await.expect("body").is_empty());

    // Heartbeat and ansible.
    let heartbeat = message(
        "heartbeat",
        json!({"status": "up", "version": "1", "workloads": null, "events": null}),
    );
    assert_eq!(
        post(&device, harness.url("data/dev1/out"), &heartbeat)
            .await
            .status(),
        StatusCode::OK
    );
    let recorded = harness.backend.heartbeats.lock().expect("lock").clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].0.as_str(), recorded[0].1.as_str()),
        ("dev1", "default")
    );
    let ansible = post(
        &device,
        harness.url("data/dev1/out"),
        &message("ansible", Value::Null),
    )
    .await;
    assert_eq!(ansible.status(), StatusCode::OK);
    let ansible: Value = ansible.json().await.expect("JSON");
    assert_eq!(ansible["directive"], "ansible");
    assert_eq!(ansible["content"], "[]");

    // Control channel.
    let control = get(&device, harness.url("control/dev1/in")).await;
    assert_eq!(control.status(), StatusCode::OK);
    assert!(control.bytes().await.expect("body").is_empty());
    assert_eq!(
        post(
            &device,
            harness.url("control/dev1/out"),
            &json!({"type": "connection-status", "content": {"state": "online"}})
        )
        .await
        .status(),
        StatusCode::OK
    );

    // Another device's id: 403 everywhere, enrolment and registration included.
    for path in ["data/dev2/in", "control/dev2/in"] {
        assert_eq!(
            get(&device, harness.url(path)).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let (_, csr) = device_key_and_csr("dev2");
    for body in [
        heartbeat.clone(),
        message("enrolment", json!({})),
        message("registration", json!({"certificate_request": csr})),
        message("ansible", Value::Null),
    ] {
        assert_eq!(
            post(&device, harness.url("data/dev2/out"), &body)
                .await
                .status(),
            StatusCode::FORBIDDEN,
            "{body}"
        );
    }
    assert_eq!(
        post(&device, harness.url("control/dev2/out"), &json!({}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    // Renewal with its own valid certificate.
    let renewed = harness.client(Some(&register(&harness, &device, "dev1").await));
    assert_eq!(
        get(&renewed, harness.url("data/dev1/in")).await.status(),
        StatusCode::OK
    );

    // Deleted: the next control poll says disconnect.
    harness.backend.delete("dev1");
    let control = get(&device, harness.url("control/dev1/in")).await;
    assert_eq!(control.status(), StatusCode::OK);
    let command: Value = control.json().await.expect("JSON");
    assert_eq!(command["type"], "command");
    assert_eq!(command["version"], 1);
    assert_eq!(
        command["content"],
        json!({"command": "disconnect", "arguments": null})
    );
    harness.stop().await;
}

#[tokio::test]
async fn device_input_errors_are_4xx() {
    let harness = Harness::start().await;
    let device = harness.client(Some(&registered_device(&harness, "dev1").await));
    let url = harness.url("data/dev1/out");

    let not_json = device
        .post(url.clone())
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        post(&device, url.clone(), &message("nonsense", json!({})))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(
            &device,
            url.clone(),
            &message("heartbeat", json!("a string"))
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(
            &device,
            url.clone(),
            &message("heartbeat", json!({"workloads": 5}))
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(
            &device,
            url.clone(),
            &message("enrolment", json!({"target_namespace": "Not_A_Namespace"}))
        )
        .await
        .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(&device, url.clone(), &message("registration", json!({})))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let huge = vec![b' '; 2 << 20];
    let too_large = device
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(huge)
        .send()
        .await
        .expect("request");
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let bad_control = device
        .post(harness.url("control/dev1/out"))
        .body("[")
        .send()
        .await
        .expect("request");
    assert_eq!(bad_control.status(), StatusCode::BAD_REQUEST);
    // A device the backend does not know: its NotFound is a 404.
    let ghost = harness.client(Some(&harness.crafted(
        "ghost",
        None,
        now() - 60,
        now() + 3600,
    )));
    assert_eq!(
        get(&ghost, harness.url("data/ghost/in")).await.status(),
        StatusCode::NOT_FOUND
    );
    harness.stop().await;
}

#[tokio::test]
async fn expired_certificates_may_only_enrol_and_renew() {
    let harness = Harness::start().await;
    registered_device(&harness, "dev1").await;

    let expired_device = harness.client(Some(&harness.expired("dev1", Some("default"))));
    for path in ["data/dev1/in", "control/dev1/in"] {
        assert_eq!(
            get(&expired_device, harness.url(path)).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    for directive in ["heartbeat", "ansible"] {
        assert_eq!(
            post(
                &expired_device,
                harness.url("data/dev1/out"),
                &message(directive, json!({}))
            )
            .await
            .status(),
            StatusCode::UNAUTHORIZED,
            "{directive}"
        );
    }
    assert_eq!(
        post(&expired_device, harness.url("control/dev1/out"), &json!({}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(
            &expired_device,
            harness.url("data/dev1/out"),
            &message("enrolment", json!({}))
        )
        .await
        .status(),
        StatusCode::ALREADY_REPORTED
    );
    // Renewal works, and the new certificate is a working one.
    let renewed = harness.client(Some(&register(&harness, &expired_device, "dev1").await));
    assert_eq!(
        get(&renewed, harness.url("data/dev1/in")).await.status(),
        StatusCode::OK
    );

    // An expired bootstrap certificate may enrol but not register.
    let expired_bootstrap = harness.client(Some(&harness.expired("register", None)));
    assert_eq!(
        post(
            &expired_bootstrap,
            harness.url("data/dev9/out"),
            &message("enrolment", json!({}))
        )
        .await
        .status(),
        StatusCode::OK
    );
    harness.backend.approve("dev9");
    let (_, csr) = device_key_and_csr("dev9");
    assert_eq!(
        post(
            &expired_bootstrap,
            harness.url("data/dev9/out"),
            &message("registration", json!({"certificate_request": csr}))
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    // A certificate that is not valid yet fails the handshake.
    let now = now();
    let future = harness.client(Some(&harness.crafted(
        "dev1",
        None,
        now + 86_400,
        now + 2 * 86_400,
    )));
    assert!(
        future
            .get(harness.url("data/dev1/in"))
            .send()
            .await
            .is_err()
    );
    harness.stop().await;
}
