//! The device listener: TLS 1.3 with a required client certificate, verified against the
//! device CA by our own verifier so that an expired certificate still completes the
//! handshake (the authorization matrix then decides, see [`crate::edge::authz`]).
//!
//! [`DeviceClientVerifier`] checks the chain (signature, CA constraints, `clientAuth`) with
//! rustls' WebPKI verifier at a verification time clamped into the leaf's validity, which
//! ignores expiry and nothing else; a certificate not yet valid, not signed by the device
//! CA, or without a certificate at all fails the handshake. After the handshake the
//! connection's [`DeviceIdentity`] (common name, namespace, expiry, bootstrap or device) is
//! computed once and attached to every request of the connection, so requests never parse
//! or verify certificates again; whether it has expired is compared with the clock per
//! request, so a long-lived connection does not outlive its certificate.
//!
//! HTTP/1.1 and HTTP/2 are served (ALPN), with the accept loop, handshake timeout and
//! graceful drain of [`crate::tls::TlsServer`].
//!
//! Limits: no revocation list; the server certificate is fixed for the life of the
//! listener.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use flotta_api::store::Store;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::UnixTime;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use super::authz::{Caller, CallerKind};
use super::ca::{
    BOOTSTRAP_COMMON_NAME, BootstrapFiles, CaError, DeviceCa, IssuedCertificate, ensure_bootstrap,
};
use crate::tls::{self, ConnectionStats, TlsServer};

/// What can go wrong building the device listener's TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The device CA certificate was rejected as a trust root.
    #[error("device CA certificate: {0}")]
    Root(#[source] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("device client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The server certificate or key could not be parsed.
    #[error("device API server certificate: {0}")]
    ServerCertificate(String),
    /// rustls rejected the configuration.
    #[error("device API TLS configuration: {0}")]
    Config(#[source] rustls::Error),
    /// The device CA or the bootstrap files could not be set up.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// A blocking set-up task failed.
    #[error("device API set-up task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Where the device CA comes from.
#[derive(Debug, Clone)]
pub enum CaSource {
    /// Operator-supplied PEM files (certificate, key).
    Files(PathBuf, PathBuf),
    /// Kept in the store, created on first start.
    Store,
    /// Already loaded by the caller (aggregated mode: the `flotta-ca` Secret).
    Loaded(Arc<DeviceCa>),
}

/// What the device listener needs, prepared at start before binding.
pub struct DevicePki {
    /// The device CA.
    pub ca: Arc<DeviceCa>,
    /// The listener's TLS configuration.
    pub tls: Arc<ServerConfig>,
    /// Where the bootstrap material was written.
    pub bootstrap: BootstrapFiles,
}

impl DevicePki {
    /// Loads or creates the device CA, issues the server certificate for `hosts` (plus
    /// `localhost`, the loopback addresses and the bind address `bind_host`), and writes
    /// the bootstrap material into `bootstrap_dir`.
    pub async fn prepare(
        source: &CaSource,
        store: &dyn Store,
        bind_host: &str,
        hosts: &[String],
        bootstrap_dir: &Path,
    ) -> Result<Self, ListenerError> {
        let ca = match source {
            CaSource::Files(cert, key) => {
                let (cert, key) = (cert.clone(), key.clone());
                Arc::new(
                    tokio::task::spawn_blocking(move || DeviceCa::from_files(&cert, &key))
                        .await??,
                )
            }
            CaSource::Store => Arc::new(DeviceCa::load_or_create(store).await?),
            CaSource::Loaded(ca) => Arc::clone(ca),
        };
        let mut names = crate::pki::serving_hosts(bind_host);
        for host in hosts {
            let host = host.trim().to_ascii_lowercase();
            if !host.is_empty() && !names.contains(&host) {
                names.push(host);
            }
        }
        let server = ca.issue_server_certificate(&names)?;
        let tls = server_config(&ca, &server)?;
        let bootstrap = {
            let ca = ca.clone();
            let dir = bootstrap_dir.to_owned();
            tokio::task::spawn_blocking(move || ensure_bootstrap(&ca, &dir)).await??
        };
        Ok(DevicePki { ca, tls, bootstrap })
    }
}

/// Who is calling, from the client certificate of the connection (computed once per
/// connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// The subject's first `CN`, lowercased (as Flotta compares it).
    pub common_name: String,
    /// The subject's first `OU`: the namespace of a device certificate.
    pub namespace: Option<String>,
    /// Expiry of the certificate (Unix seconds).
    pub not_after: i64,
}

impl DeviceIdentity {
    /// Reads the identity of a DER certificate; `None` if it cannot be parsed or has no
    /// common name.
    pub fn from_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .find_map(|attr| attr.as_str().ok())?
            .to_lowercase();
        let namespace = subject
            .iter_organizational_unit()
            .find_map(|attr| attr.as_str().ok())
            .map(str::to_owned);
        Some(DeviceIdentity {
            common_name,
            namespace,
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Whether this is the bootstrap certificate (`CN=register`).
    pub fn is_bootstrap(&self) -> bool {
        self.common_name == BOOTSTRAP_COMMON_NAME
    }

    /// Whether the certificate has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        now > self.not_after
    }

    /// The namespace of requests made with this certificate: its `OU`, else `default`.
    pub fn namespace(&self) -> &str {
        self.namespace
            .as_deref()
            .unwrap_or(flotta_api::edge::DEFAULT_NAMESPACE)
    }

    /// The caller as the authorization matrix sees it, at `now` (Unix seconds).
    pub fn caller(&self, now: i64) -> Caller<'_> {
        let kind = if self.is_bootstrap() {
            CallerKind::Bootstrap
        } else {
            CallerKind::Device {
                common_name: &self.common_name,
            }
        };
        Caller {
            kind,
            expired: self.is_expired(now),
        }
    }
}

/// Verifies client certificates against the device CA, ignoring only expiry (see the
/// module documentation).
#[derive(Debug)]
pub struct DeviceClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl DeviceClientVerifier {
    /// A verifier trusting `ca` only, requiring a client certificate.
    pub fn new(ca: &CertificateDer<'static>) -> Result<Self, ListenerError> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).map_err(ListenerError::Root)?;
        let inner =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::crypto_provider())
                .build()?;
        Ok(DeviceClientVerifier { inner })
    }
}

impl ClientCertVerifier for DeviceClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        // An expired certificate is checked as of its last valid second: everything but
        // expiry is still verified; expiry is the authorization matrix's business.
        let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
        let at = if now.as_secs() > not_after {
            UnixTime::since_unix_epoch(Duration::from_secs(not_after))
        } else {
            now
        };
        self.inner.verify_client_cert(end_entity, intermediates, at)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The device listener's TLS configuration: TLS 1.3 only, ALPN `h2` and `http/1.1`,
/// `server` as the server certificate, client certificates required and verified by
/// [`DeviceClientVerifier`].
pub fn server_config(
    ca: &DeviceCa,
    server: &IssuedCertificate,
) -> Result<Arc<ServerConfig>, ListenerError> {
    let chain = vec![
        CertificateDer::from_pem_slice(server.cert_pem.as_bytes())
            .map_err(|e| ListenerError::ServerCertificate(e.to_string()))?,
    ];
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
        .map_err(|e| ListenerError::ServerCertificate(e.to_string()))?;
    let verifier = DeviceClientVerifier::new(ca.certificate_der())?;
    let mut config = ServerConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(ListenerError::Config)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, key)
        .map_err(ListenerError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The device listener: a TLS server whose requests carry an `Extension<Arc<DeviceIdentity>>`.
#[derive(Debug, Clone)]
pub struct DeviceListener {
    server: TlsServer,
}

impl DeviceListener {
    /// A listener with `config` (see [`server_config`]) draining for at most
    /// `drain_timeout` at shutdown.
    pub fn new(config: Arc<ServerConfig>, drain_timeout: Duration) -> Self {
        DeviceListener {
            server: TlsServer::new(config).with_drain_timeout(drain_timeout),
        }
    }

    /// The listener's connection counters.
    pub fn stats(&self) -> Arc<ConnectionStats> {
        self.server.stats()
    }

    /// Serves `app` (see [`crate::edge::handlers::router`]) on `listener` until `shutdown`
    /// completes, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        self.server
            .serve_with(listener, app, shutdown, |chain| {
                chain
                    .first()
                    .and_then(|leaf| DeviceIdentity::from_certificate(leaf))
                    .map(Arc::new)
            })
            .await;
    }
}
