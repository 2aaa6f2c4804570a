//! The secure port's TLS and authentication layers, served for real on 127.0.0.1 and
//! called with reqwest: anonymous vs client-certificate requests, HTTP/1.1 and HTTP/2,
//! foreign certificates, and graceful shutdown with in-flight and endless responses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::routing::get;
use flotta_apiserver::auth::{self, User};
use flotta_apiserver::pki::{self, Pki};
use flotta_apiserver::tls::{self, ClientIdentity, TlsServer};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{Mutex, mpsc, oneshot};

/// What the test routes share: the gate an in-flight request waits on, and a channel
/// telling the test that the request has arrived.
#[derive(Clone)]
struct Gates {
    arrived: mpsc::UnboundedSender<&'static str>,
    release: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

fn app(gates: Gates) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/whoami",
            get(
                |Extension(user): Extension<User>, identity: Option<Extension<ClientIdentity>>| async move {
                    format!(
                        "{} {} cn={:?}",
                        user.name,
                        user.groups.join(","),
                        identity.and_then(|Extension(i)| i.common_name)
                    )
                },
            ),
        )
        .route(
            "/slow",
            get(|State(gates): State<Gates>| async move {
                let _ = gates.arrived.send("slow");
                let release = gates.release.lock().await.take().expect("one slow request");
                let _ = release.await;
                "finished"
            }),
        )
        .route(
            "/watch",
            get(|State(gates): State<Gates>| async move {
                let _ = gates.arrived.send("watch");
                // An endless response, like a watch that never ends by itself.
                let stream = futures::stream::unfold(0u64, |n| async move {
                    if n > 0 {
                        futures::future::pending::<()>().await;
                    }
                    Some((Ok::<_, std::io::Error>(format!("event {n}\n")), n + 1))
                });
                Body::from_stream(stream)
            }),
        )
        .with_state(gates)
        .layer(axum::middleware::from_fn(auth::authenticate))
}

struct Running {
    addr: SocketAddr,
    pki: Pki,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    arrived: mpsc::UnboundedReceiver<&'static str>,
    release: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

async fn start(drain_timeout: Duration) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::ensure(dir.path(), "127.0.0.1").expect("PKI");
    let config = tls::server_config(
        &[pki.ca_certificate().expect("CA")],
        pki.serving_chain().expect("chain"),
        pki.serving_key().expect("key"),
    )
    .expect("server config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (arrived_tx, arrived) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = oneshot::channel();
    let gates = Gates {
        arrived: arrived_tx,
        release: Arc::new(Mutex::new(Some(release_rx))),
    };
    let (stop, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(
        TlsServer::new(config)
            .with_drain_timeout(drain_timeout)
            .serve(listener, app(gates), async {
                let _ = stop_rx.await;
            }),
    );
    Running {
        addr,
        pki,
        stop: Some(stop),
        server,
        arrived,
        release: Some(release_tx),
        _dir: dir,
    }
}

enum Cert<'a> {
    None,
    Admin(&'a Pki),
    Foreign(&'a Pki),
}

fn client(trust: &Pki, cert: Cert<'_>, http1_only: bool) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(trust.ca_certificate().expect("CA"))
        .expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let credentials = |pki: &Pki| {
        let chain = vec![
            CertificateDer::from_pem_slice(pki.admin_cert_pem.as_bytes()).expect("admin cert"),
        ];
        let key = PrivateKeyDer::from_pem_slice(pki.admin_key_pem.as_bytes()).expect("key");
        (chain, key)
    };
    let mut config = match cert {
        Cert::None => builder.with_no_client_auth(),
        Cert::Admin(pki) | Cert::Foreign(pki) => {
            let (chain, key) = credentials(pki);
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
    };
    config.alpn_protocols = if http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .expect("client")
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

#[tokio::test]
async fn anonymous_requests_reach_only_health_and_get_401_status_elsewhere() {
    let server = start(Duration::from_secs(5)).await;
    let anonymous = client(&server.pki, Cert::None, false);

    let response = anonymous
        .get(url(server.addr, "/whoami"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii")),
        Some("application/json")
    );
    let body: serde_json::Value = response.json().await.expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401
        })
    );

    let health = anonymous
        .get(url(server.addr, "/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    assert_eq!(health.text().await.expect("body"), "ok");
}

#[tokio::test]
async fn admin_certificate_authenticates_over_http2_and_http1() {
    let server = start(Duration::from_secs(5)).await;
    for http1_only in [false, true] {
        let admin = client(&server.pki, Cert::Admin(&server.pki), http1_only);
        let response = admin
            .get(url(server.addr, "/whoami"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let expected_version = if http1_only {
            reqwest::Version::HTTP_11
        } else {
            reqwest::Version::HTTP_2
        };
        assert_eq!(response.version(), expected_version);
        assert_eq!(
            response.text().await.expect("body"),
            "admin system:masters,system:authenticated cn=Some(\"admin\")"
        );
    }
}

#[tokio::test]
async fn certificate_from_another_ca_fails_the_handshake() {
    let server = start(Duration::from_secs(5)).await;
    let other = tempfile::tempdir().expect("tempdir");
    let foreign = pki::ensure(other.path(), "127.0.0.1").expect("other PKI");
    let intruder = client(&server.pki, Cert::Foreign(&foreign), false);
    let result = intruder.get(url(server.addr, "/healthz")).send().await;
    assert!(result.is_err(), "foreign certificate accepted: {result:?}");

    // The server keeps serving others.
    let admin = client(&server.pki, Cert::Admin(&server.pki), false);
    let ok = admin
        .get(url(server.addr, "/whoami"))
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops() {
    let mut server = start(Duration::from_secs(30)).await;
    let admin = client(&server.pki, Cert::Admin(&server.pki), true);
    let slow = tokio::spawn(admin.get(url(server.addr, "/slow")).send());
    assert_eq!(server.arrived.recv().await, Some("slow"));

    let _ = server.stop.take().expect("stop").send(());
    // New connections are refused once the listener is gone; wait until it is.
    while tokio::net::TcpStream::connect(server.addr).await.is_ok() {
        tokio::task::yield_now().await;
    }
    assert!(
        !server.server.is_finished(),
        "server stopped before the request finished"
    );

    let _ = server.release.take().expect("release").send(());
    let response = slow
        .await
        .expect("task")
        .expect("in-flight request completes");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "finished");
    tokio::time::timeout(Duration::from_secs(10), server.server)
        .await
        .expect("server stops once drained")
        .expect("server task");
}

#[tokio::test]
async fn endless_responses_are_cut_at_the_drain_timeout() {
    let mut server = start(Duration::from_millis(300)).await;
    let admin = client(&server.pki, Cert::Admin(&server.pki), false);
    let mut watch = admin
        .get(url(server.addr, "/watch"))
        .send()
        .await
        .expect("watch starts");
    assert_eq!(server.arrived.recv().await, Some("watch"));
    let first = watch.chunk().await.expect("chunk").expect("first event");
    assert_eq!(&first[..], b"event 0\n");

    let _ = server.stop.take().expect("stop").send(());
    tokio::time::timeout(Duration::from_secs(10), server.server)
        .await
        .expect("server stops despite the endless response")
        .expect("server task");
    // The client sees the stream end (an error or EOF), not a hang.
    let rest = tokio::time::timeout(Duration::from_secs(10), watch.chunk())
        .await
        .expect("stream ends");
    assert!(!matches!(rest, Ok(Some(_))), "unexpected data: {rest:?}");
}
