//! The device API as the `flotta-apiserver` binary serves it: `--device-port 0` is reported
//! as `device` in `ports.json`, the bootstrap material in `<data-dir>/device-bootstrap/` is
//! what a device needs to enrol, and a device then goes through the real store backend and
//! the in-process controllers: enrol → (auto-approval) → register → configuration →
//! heartbeat → control poll. A restart on the same data directory keeps the device CA, so
//! the device's certificate still works.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const STARTUP: Duration = Duration::from_secs(60);
const BASE: &str = "/api/flotta-management/v1";

struct Server {
    child: Child,
    device_port: u16,
}

async fn start(data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flotta-apiserver"))
        .args(["--data-dir"])
        .arg(data_dir)
        .args([
            "--secure-port",
            "0",
            "--metrics-port",
            "off",
            "--device-port",
            "0",
            "--device-server-names",
            "edge.example.test",
            "--log-format",
            "json",
            "--shutdown-timeout",
            "5",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn flotta-apiserver");
    let stderr = child.stderr.take().expect("stderr");
    let (ports_written_tx, mut ports_written) = mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if line.contains("wrote bound ports") {
                let _ = ports_written_tx.send(());
            }
        }
    });
    tokio::time::timeout(STARTUP, ports_written.recv())
        .await
        .expect("server did not start in time")
        .expect("server exited before binding its ports");
    let ports: Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("ports.json")).expect("ports.json"))
            .expect("JSON");
    assert!(ports["metrics"].is_null());
    let device_port = u16::try_from(ports["device"].as_u64().expect("device port")).expect("port");
    assert_ne!(device_port, 0);
    Server { child, device_port }
}

impl Server {
    async fn stop(mut self) {
        let pid = self.child.id().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server stops")
            .expect("wait");
        assert!(exit.success(), "{exit:?}");
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{BASE}/{path}", self.device_port)
    }
}

fn client(ca_pem: &str, cert_pem: &str, key_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA"))
        .expect("root");
    let config =
        rustls::ClientConfig::builder_with_provider(flotta_apiserver::tls::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key"),
            )
            .expect("client certificate");
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .expect("client")
}

fn message(directive: &str, content: Value) -> Value {
    json!({"type": "data", "message_id": "m-1", "version": 1, "directive": directive, "content": content})
}

#[tokio::test]
async fn a_device_enrols_registers_and_reports_against_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = start(&data).await;

    let bootstrap_dir = data.join("device-bootstrap");
    let read = |name: &str| std::fs::read_to_string(bootstrap_dir.join(name)).expect(name);
    let (ca_pem, bootstrap_cert, bootstrap_key) =
        (read("ca.pem"), read("cert.pem"), read("key.pem"));
    let bootstrap = client(&ca_pem, &bootstrap_cert, &bootstrap_key);

    // Enrol until the (automatic) approval created the device: 200, then 208.
    let enrolment = message(
        "enrolment",
        json!({"features": {"hardware": {"hostname": "edge-a"}}, "target_namespace": "default"}),
    );
    let mut approved = false;
    for _ in 0..200 {
        let response = bootstrap
            .post(server.url("data/edge-a/out"))
            .json(&enrolment)
            .send()
            .await
            .expect("enrolment");
        match response.status() {
            StatusCode::ALREADY_REPORTED => {
                approved = true;
                break;
            }
            StatusCode::OK => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("enrolment answered {other}"),
        }
    }
    assert!(approved, "the device was never approved");

    // Register with a CSR; the answer is a certificate for CN=edge-a.
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "edge-a");
    let csr = params
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("PEM");
    let registration = bootstrap
        .post(server.url("data/edge-a/out"))
        .json(&message(
            "registration",
            json!({"certificate_request": csr, "hardware": {"hostname": "edge-a"}}),
        ))
        .send()
        .await
        .expect("registration");
    assert_eq!(registration.status(), StatusCode::OK);
    let registration: Value = registration.json().await.expect("JSON");
    let cert_pem = registration["content"]["certificate"]
        .as_str()
        .expect("certificate")
        .to_owned();
    let key_pem = key.serialize_pem();
    let device = client(&ca_pem, &cert_pem, &key_pem);

    let config = device
        .get(server.url("data/edge-a/in"))
        .send()
        .await
        .expect("configuration");
    assert_eq!(config.status(), StatusCode::OK);
    assert!(config.headers().contains_key(reqwest::header::ETAG));
    let config: Value = config.json().await.expect("JSON");
    assert_eq!(config["directive"], "device");
    assert_eq!(config["content"]["device_id"], "edge-a");
    let version = config["content"]["version"].clone();

    let heartbeat = device
        .post(server.url("data/edge-a/out"))
        .json(&message(
            "heartbeat",
            json!({"status": "up", "version": version, "workloads": [], "events": [], "playbook-executions": []}),
        ))
        .send()
        .await
        .expect("heartbeat");
    assert_eq!(heartbeat.status(), StatusCode::OK);
    let control = device
        .get(server.url("control/edge-a/in"))
        .send()
        .await
        .expect("control");
    assert_eq!(control.status(), StatusCode::OK);
    assert!(control.bytes().await.expect("body").is_empty());
    server.stop().await;

    // Same data directory: the same CA and bootstrap certificate, and the device's
    // certificate is still accepted.
    let server = start(&data).await;
    assert_eq!(read("ca.pem"), ca_pem);
    assert_eq!(read("cert.pem"), bootstrap_cert);
    let device = client(&ca_pem, &cert_pem, &key_pem);
    let again = device
        .get(server.url("control/edge-a/in"))
        .send()
        .await
        .expect("control after restart");
    assert_eq!(again.status(), StatusCode::OK);
    server.stop().await;
}
