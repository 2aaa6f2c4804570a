//! HTTPS clients for the API server under test: rustls (ring provider) trusting the
//! server's CA and presenting the admin client certificate, handed to reqwest
//! preconfigured, plus the EdgeDevice URLs and the error type every benchmark phase uses.
//!
//! Limits: one fixed group/version/kind (EdgeDevices); HTTP/1.1 or HTTP/2 is chosen by
//! ALPN, which reqwest does not set on a preconfigured rustls config, so it is set here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The EdgeDevice collection path below a namespace.
const GROUP_VERSION: &str = "/apis/management.project-flotta.io/v1alpha1";

/// The `Accept` header that asks for a `meta.k8s.io/v1` Table.
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Why a client could not be built or a request did not give what a phase needs.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A PEM file could not be read or parsed.
    #[error("reading {}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the configuration.
    #[error("building the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// reqwest failed (building the client, connecting, sending or reading).
    #[error("{what}: {source}")]
    Http {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an unexpected status.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// What was being done.
        what: String,
        /// The status received.
        status: reqwest::StatusCode,
        /// The start of the response body.
        body: String,
    },
    /// A response body was not the JSON expected.
    #[error("{what}: {detail}")]
    Unexpected {
        /// What was being done.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// Something did not happen in time.
    #[error("{what}: timed out after {after:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        after: Duration,
    },
}

impl ApiError {
    /// Wraps a reqwest error with what was being done.
    pub fn http(what: impl Into<String>, source: reqwest::Error) -> Self {
        ApiError::Http {
            what: what.into(),
            source,
        }
    }

    /// A body that is not what was expected.
    pub fn unexpected(what: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Unexpected {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Which HTTP version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive: one connection per concurrent request.
    Http1,
    /// HTTP/2 when the server offers it (multiplexed on one connection).
    Http2,
}

/// The server's PKI files the clients need (`<data-dir>/pki`). Its `Debug` leaves the
/// private key out.
#[derive(Clone)]
pub struct Credentials {
    roots: rustls::RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key_pem: Vec<u8>,
    key_path: PathBuf,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("roots", &self.roots.len())
            .field("chain", &self.chain.len())
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ApiError> {
    let pem = |source| ApiError::Pem {
        path: path.to_owned(),
        source,
    };
    CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)
}

impl Credentials {
    /// Reads `ca.crt`, `admin.crt` and `admin.key` from the server's PKI directory.
    pub fn load(pki_dir: &Path) -> Result<Self, ApiError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_pem_certs(&pki_dir.join("ca.crt"))? {
            roots.add(cert)?;
        }
        let chain = read_pem_certs(&pki_dir.join("admin.crt"))?;
        let key_path = pki_dir.join("admin.key");
        let key_pem = std::fs::read(&key_path).map_err(|e| ApiError::Pem {
            path: key_path.clone(),
            source: rustls::pki_types::pem::Error::Io(e),
        })?;
        // Parse once here so a bad key fails at load, not at the first client.
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| ApiError::Pem {
            path: key_path.clone(),
            source,
        })?;
        Ok(Credentials {
            roots,
            chain,
            key_pem,
            key_path,
        })
    }

    /// A rustls client configuration: ring provider, these roots, the admin certificate,
    /// and the ALPN protocols for `protocol`.
    pub fn tls_config(&self, protocol: Protocol) -> Result<rustls::ClientConfig, ApiError> {
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|source| ApiError::Pem {
            path: self.key_path.clone(),
            source,
        })?;
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(self.roots.clone())
        .with_client_auth_cert(self.chain.clone(), key)?;
        config.alpn_protocols = match protocol {
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
            Protocol::Http2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        Ok(config)
    }

    /// A reqwest client that speaks `protocol` to the server as admin.
    pub fn client(&self, protocol: Protocol) -> Result<reqwest::Client, ApiError> {
        let builder = reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls_config(protocol)?)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10));
        let builder = match protocol {
            Protocol::Http1 => builder.http1_only(),
            Protocol::Http2 => builder,
        };
        builder
            .build()
            .map_err(|e| ApiError::http("building the HTTP client", e))
    }
}

/// The URLs of the server under test.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
    namespace: String,
}

impl Endpoint {
    /// The server at `https://127.0.0.1:<port>`, EdgeDevices in `namespace`.
    pub fn new(port: u16, namespace: &str) -> Self {
        Endpoint {
            base: format!("https://127.0.0.1:{port}"),
            namespace: namespace.to_owned(),
        }
    }

    /// The namespace the devices live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A path on the server (e.g. `/readyz`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The EdgeDevice collection of the namespace.
    pub fn devices(&self) -> String {
        format!(
            "{}{GROUP_VERSION}/namespaces/{}/edgedevices",
            self.base, self.namespace
        )
    }

    /// One EdgeDevice.
    pub fn device(&self, name: &str) -> String {
        format!("{}/{name}", self.devices())
    }
}

/// Sends `request` and returns the whole body if the status is `expected`.
pub async fn expect_body(
    what: &str,
    request: reqwest::RequestBuilder,
    expected: reqwest::StatusCode,
) -> Result<bytes::Bytes, ApiError> {
    let response = request.send().await.map_err(|e| ApiError::http(what, e))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| ApiError::http(what, e))?;
    if status != expected {
        return Err(ApiError::Status {
            what: what.to_owned(),
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
        });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ep = Endpoint::new(8443, "bench");
        assert_eq!(
            ep.devices(),
            "https://127.0.0.1:8443/apis/management.project-flotta.io/v1alpha1/namespaces/bench/edgedevices"
        );
        assert!(ep.device("abc").ends_with("/edgedevices/abc"));
        assert_eq!(ep.url("/readyz"), "https://127.0.0.1:8443/readyz");
    }

    #[test]
    fn missing_pki_is_a_pem_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Credentials::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }
}
