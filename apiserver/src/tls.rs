//! HTTPS serving with client-certificate identity: the rustls server configuration and the
//! accept loop that runs an axum [`Router`] over it.
//!
//! The server asks every client for a certificate but does not require one: a client
//! certificate, when sent, must chain to the configured roots (else the handshake fails);
//! without one the connection is anonymous and authentication (see [`crate::auth`]) decides
//! what it may reach. The verified identity is attached to every request of the connection
//! as an `Extension<ClientIdentity>`; it is absent on anonymous connections. The peer
//! address is attached as `ConnectInfo<SocketAddr>`.
//!
//! Each accepted connection is handled in its own task, handshake included (bounded by
//! [`HANDSHAKE_TIMEOUT`]), so a slow or silent client never stalls the accept loop. HTTP/1.1
//! and HTTP/2 are served (ALPN `h2`, `http/1.1`). Graceful shutdown stops accepting,
//! lets in-flight requests finish, and after the drain timeout closes whatever is still
//! open — a long-lived watch response therefore delays shutdown by at most that timeout.
//!
//! Limits: the certificate configuration is fixed for the life of the listener (no hot
//! reload); revocation lists are not checked.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// How long a client gets to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A client-certificate root was rejected.
    #[error("invalid client CA certificate: {0}")]
    InvalidRoot(#[source] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. no roots).
    #[error("building the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls rejected the protocol versions or the certificate and key.
    #[error("building the TLS server configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The crypto provider every TLS configuration of this crate uses (ring).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration presenting `chain`/`key`, offering TLS 1.3 and 1.2 and ALPN
/// `h2` and `http/1.1`, and requesting (not requiring) client certificates that chain to
/// `client_roots`.
pub fn server_config(
    client_roots: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let mut roots = RootCertStore::empty();
    for root in client_roots {
        roots.add(root.clone()).map_err(TlsError::InvalidRoot)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Who the client is, from its verified certificate: the subject's common name and
/// organizations (Kubernetes reads these as user name and groups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The first `CN` of the subject, if any.
    pub common_name: Option<String>,
    /// Every `O` of the subject, in order.
    pub organizations: Vec<String>,
}

impl ClientIdentity {
    /// Reads the subject of a DER certificate; `None` if it cannot be parsed.
    pub fn from_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .find_map(|attr| attr.as_str().ok())
            .map(str::to_owned);
        let organizations = subject
            .iter_organization()
            .filter_map(|attr| attr.as_str().ok())
            .map(str::to_owned)
            .collect();
        Some(ClientIdentity {
            common_name,
            organizations,
        })
    }
}

/// Connection counters of one listener, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    accepted: AtomicU64,
    handshake_failures: AtomicU64,
    closed: AtomicU64,
}

impl ConnectionStats {
    /// TCP connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections whose TLS handshake failed or timed out.
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// Connections currently open (accepted and not yet closed).
    pub fn open(&self) -> u64 {
        self.accepted()
            .saturating_sub(self.closed.load(Ordering::Relaxed))
    }
}

/// Counts a connection as closed when its task ends, however it ends (including abort).
struct OpenConnection(Arc<ConnectionStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// An HTTPS server: a TLS configuration plus shutdown behaviour.
#[derive(Debug, Clone)]
pub struct TlsServer {
    config: Arc<ServerConfig>,
    drain_timeout: Duration,
    stats: Arc<ConnectionStats>,
}

impl TlsServer {
    /// A server using `config`, with a 10 s drain timeout.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsServer {
            config,
            drain_timeout: Duration::from_secs(10),
            stats: Arc::default(),
        }
    }

    /// How long in-flight requests get after shutdown starts before their connections are
    /// closed.
    pub fn with_drain_timeout(mut self, drain_timeout: Duration) -> Self {
        self.drain_timeout = drain_timeout;
        self
    }

    /// This server's connection counters.
    pub fn stats(&self) -> Arc<ConnectionStats> {
        self.stats.clone()
    }

    /// Serves `app` on `listener` until `shutdown` completes, then drains (see the module
    /// documentation). Returns once every connection is closed.
    pub async fn serve(
        self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        self.serve_with(listener, app, shutdown, |chain| {
            chain
                .first()
                .and_then(|leaf| ClientIdentity::from_certificate(leaf))
        })
        .await;
    }

    /// Like [`serve`](Self::serve), but what is attached to every request of a connection
    /// is `identify(peer certificate chain)` instead of a [`ClientIdentity`]: computed once
    /// per connection, right after the handshake, and cloned into each request (nothing is
    /// attached when it returns `None` or the client sent no certificate).
    pub async fn serve_with<I, F>(
        self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send,
        identify: F,
    ) where
        I: Clone + Send + Sync + 'static,
        F: Fn(&[CertificateDer<'static>]) -> Option<I> + Send + Sync + 'static,
    {
        let identify = Arc::new(identify);
        let acceptor = TlsAcceptor::from(self.config);
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        let local = listener.local_addr().ok();

        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(?local, %error, "accept failed");
                            // Out of file descriptors and the like: give in-flight
                            // connections a moment to free some instead of spinning.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let open = OpenConnection(self.stats.clone());
                    // Subscribed before the task starts, so a shutdown signalled during
                    // the handshake still reaches this connection.
                    let watcher = graceful.watcher();
                    let acceptor = acceptor.clone();
                    let app = app.clone();
                    let identify = identify.clone();
                    connections.spawn(async move {
                        let open = open;
                        let _ = tcp.set_nodelay(true);
                        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                open.0.handshake_failures.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                open.0.handshake_failures.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let identity = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| identify(chain));
                        let service = app.map_request(move |mut request: http::Request<Incoming>| {
                            request.extensions_mut().insert(ConnectInfo(peer));
                            if let Some(identity) = &identity {
                                request.extensions_mut().insert(identity.clone());
                            }
                            request
                        });
                        let builder = auto::Builder::new(TokioExecutor::new());
                        let connection = builder
                            .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
                        if let Err(error) = watcher.watch(connection).await {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                    });
                }
            }
        }

        drop(listener);
        let open = connections.len();
        tracing::debug!(?local, open, "stopped accepting; draining connections");
        let drained = tokio::time::timeout(self.drain_timeout, async {
            graceful.shutdown().await;
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?local,
                still_open = connections.len(),
                timeout = ?self.drain_timeout,
                "drain timeout reached; closing remaining connections"
            );
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
    }
}
