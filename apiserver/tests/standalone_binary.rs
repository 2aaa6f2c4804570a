//! The `flotta-apiserver` binary end to end in standalone mode: start on free ports,
//! discover them through `ports.json`, call the secure port with the generated kubeconfig
//! (reqwest and the real kubectl), probe the metrics port, stop with SIGTERM, and restart
//! on the same data directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flotta_apiserver::pki::Kubeconfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

const STARTUP: Duration = Duration::from_secs(60);

struct Server {
    child: Child,
    secure: u16,
    metrics: u16,
    /// Every log line, kept by a task that drains stderr.
    lines: oneshot::Receiver<Vec<String>>,
}

async fn start(data_dir: &Path, store: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flotta-apiserver"))
        .args(["--data-dir"])
        .arg(data_dir)
        .args([
            "--secure-port",
            "0",
            "--metrics-port",
            "auto",
            "--device-port",
            "0",
            "--store",
            store,
            "--log-format",
            "json",
            "--log-level",
            "info",
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
    let (lines_tx, lines) = oneshot::channel();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = reader.next_line().await {
            if line.contains("wrote bound ports") {
                let _ = ports_written_tx.send(());
            }
            all.push(line);
        }
        let _ = lines_tx.send(all);
    });
    tokio::time::timeout(STARTUP, ports_written.recv())
        .await
        .expect("server did not start in time")
        .expect("server exited before binding its ports");

    let ports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("ports.json")).expect("ports.json"))
            .expect("ports.json is JSON");
    let port =
        |name: &str| u16::try_from(ports[name].as_u64().expect("port number")).expect("port");
    Server {
        secure: port("secure"),
        metrics: port("metrics"),
        child,
        lines,
    }
}

impl Server {
    /// Sends SIGTERM and returns the exit status and the log.
    async fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server did not stop after SIGTERM")
            .expect("wait");
        let lines = self.lines.await.expect("log collected");
        (exit, lines)
    }
}

/// A client from the kubeconfig, optionally without its client certificate.
fn client_from_kubeconfig(path: &Path, with_cert: bool) -> (reqwest::Client, String) {
    let kubeconfig: Kubeconfig =
        serde_saphyr::from_str(&std::fs::read_to_string(path).expect("kubeconfig"))
            .expect("kubeconfig YAML");
    let cluster = &kubeconfig.clusters[0].cluster;
    let user = &kubeconfig.users[0].user;
    let decode = |b64: &str| BASE64.decode(b64).expect("base64");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            CertificateDer::from_pem_slice(&decode(&cluster.certificate_authority_data))
                .expect("CA"),
        )
        .expect("root");
    let builder =
        rustls::ClientConfig::builder_with_provider(flotta_apiserver::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
    let config = if with_cert {
        builder
            .with_client_auth_cert(
                vec![
                    CertificateDer::from_pem_slice(&decode(&user.client_certificate_data))
                        .expect("cert"),
                ],
                PrivateKeyDer::from_pem_slice(&decode(&user.client_key_data)).expect("key"),
            )
            .expect("client auth")
    } else {
        builder.with_no_client_auth()
    };
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .expect("client");
    (client, cluster.server.clone())
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(
            rustls::ClientConfig::builder_with_provider(flotta_apiserver::tls::crypto_provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
        .build()
        .expect("client")
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect(url);
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("run kubectl")
}

#[tokio::test]
async fn standalone_binary_serves_stops_and_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir: PathBuf = tmp.path().join("data");
    let kubeconfig_path = data_dir.join("kubeconfig");

    let server = start(&data_dir, "memory").await;
    assert_ne!(server.secure, 0);
    assert_ne!(server.metrics, 0);

    let (admin, base) = client_from_kubeconfig(&kubeconfig_path, true);
    assert_eq!(base, format!("https://127.0.0.1:{}", server.secure));
    let (anonymous, _) = client_from_kubeconfig(&kubeconfig_path, false);

    let (status, _) = get(&anonymous, &format!("{base}/version")).await;
    assert_eq!(status, 200, "/version is public");
    let (status, body) = get(&anonymous, &format!("{base}/apis")).await;
    assert_eq!(status, 401);
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    let (status, body) = get(&admin, &format!("{base}/apis")).await;
    assert_eq!(status, 200, "{body}");

    // The real kubectl, with nothing but the generated kubeconfig.
    let cache = tmp.path().join("kube-cache");
    let out = kubectl(&kubeconfig_path, &cache, &["get", "--raw", "/apis"]);
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let metrics_base = format!("http://127.0.0.1:{}", server.metrics);
    let plain = plain_client();
    assert_eq!(
        get(&plain, &format!("{metrics_base}/readyz")).await,
        (200, "ok".to_owned())
    );
    let (status, verbose) = get(&plain, &format!("{metrics_base}/readyz?verbose")).await;
    assert_eq!(status, 200);
    assert!(verbose.contains("[+]store ok"), "{verbose}");
    assert_eq!(get(&plain, &format!("{metrics_base}/livez")).await.0, 200);
    let (status, metrics) = get(&plain, &format!("{metrics_base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\nflotta_store_ready 1\n"), "{metrics}");
    assert!(
        metrics.contains("# TYPE flotta_store_current_revision gauge"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flotta_apiserver_connections_accepted_total "),
        "{metrics}"
    );

    let ca_before = std::fs::read(data_dir.join("pki/ca.crt")).expect("ca.crt");
    let (exit, log) = server.terminate().await;
    assert!(
        exit.success(),
        "exit status {exit}; log:\n{}",
        log.join("\n")
    );
    let log = log.join("\n");
    assert!(
        log.contains("get edgedevices") && log.contains("kubectl --kubeconfig"),
        "{log}"
    );
    assert!(log.contains("shutdown complete"), "{log}");

    // A second start on the same directory (embedded store this time) reuses the CA and
    // rewrites the kubeconfig for the new port.
    let again = start(&data_dir, "embedded").await;
    assert_eq!(
        std::fs::read(data_dir.join("pki/ca.crt")).expect("ca.crt"),
        ca_before
    );
    let (admin, base) = client_from_kubeconfig(&kubeconfig_path, true);
    assert_eq!(base, format!("https://127.0.0.1:{}", again.secure));
    assert_eq!(get(&admin, &format!("{base}/apis")).await.0, 200);
    let (exit, log) = again.terminate().await;
    assert!(
        exit.success(),
        "exit status {exit}; log:\n{}",
        log.join("\n")
    );
}
