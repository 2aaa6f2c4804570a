//! A test device: a Rust client of Flotta's device-facing Edge API (`flotta-inventory.md`
//! §3.2–§3.4, §3.6–§3.8) that behaves on the wire like yggd plus the device worker.
//!
//! Each [`DeviceClient`] is one device: its own client certificate (first the shared
//! bootstrap certificate, then the certificate it obtains by registering) and its own
//! single HTTP/1.1 keep-alive connection over mutual TLS 1.3, opened on first use and
//! reopened only when the server closed it or the identity changed
//! ([`DeviceClient::connections_opened`] counts them). It speaks the typed wire models of
//! [`flotta_api::edge`]:
//! - [`DeviceClient::enrol`]: `POST data/{id}/out`, directive `enrolment` (200 new, 208 known);
//! - [`DeviceClient::register`]: a new ECDSA P-256 key and a CSR with `CN=<id>`, directive
//!   `registration`; the returned certificate becomes the client's identity;
//! - [`DeviceClient::configuration`]: `GET data/{id}/in` with `If-None-Match` from the last
//!   `ETag` (304 → [`ConfigPoll::NotModified`]);
//! - [`DeviceClient::heartbeat`]: directive `heartbeat`;
//! - [`DeviceClient::control`]: `GET control/{id}/in` (a `disconnect` command once deleted).
//!
//! The raw [`DeviceClient::get`] and [`DeviceClient::post`] reach any path (another
//! device's, for authorization tests) and return the [`Reply`] whatever its status.
//! Benchmarks reuse the client with pre-built bodies ([`DeviceClient::envelope`]).
//!
//! Limits: one request at a time per device (as yggd does); only a GET that fails because
//! the server had closed the kept-alive connection is resent (once); the server is
//! reached by IP address, so its certificate must name that address (the device listener's
//! always names `127.0.0.1`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotta_api::edge::{
    BASE_PATH, COMMAND_DISCONNECT, Command, Cpu, DIRECTIVE_ENROLMENT, DIRECTIVE_HEARTBEAT,
    DIRECTIVE_REGISTRATION, DeviceConfigurationMessage, EnrolmentInfo, HardwareInfo, Heartbeat,
    Message, MessageResponse, MessageType, RegistrationInfo, RegistrationResponse, SystemVendor,
};
use http::header::{CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A file could not be read, or the server could not be reached.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// PEM material could not be parsed.
    #[error("{what}: {source}")]
    Pem {
        /// What was being parsed.
        what: String,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the client configuration.
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// HTTP failed on the connection (including a TLS alert from the server, such as a
    /// refused client certificate).
    #[error("{what}: {source}")]
    Http {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
    /// A request could not be built.
    #[error("building a request: {0}")]
    Request(#[from] http::Error),
    /// The server answered with a status the operation does not accept.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// The operation.
        what: String,
        /// The status received.
        status: StatusCode,
        /// The response body, as text.
        body: String,
    },
    /// A body was not the JSON expected.
    #[error("{what}: {source}")]
    Json {
        /// What was being read or written.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Keys, CSRs, certificates or the server's files were not what they should be.
    #[error("{0}")]
    Invalid(String),
}

/// The base path of the device API followed by `{channel}/{id}/{direction}`.
fn api_path(channel: &str, id: &str, direction: &str) -> String {
    format!("{BASE_PATH}/{channel}/{id}/{direction}")
}

/// `GET` path of device `id`'s configuration.
pub fn data_in_path(id: &str) -> String {
    api_path("data", id, "in")
}

/// `POST` path of device `id`'s directives.
pub fn data_out_path(id: &str) -> String {
    api_path("data", id, "out")
}

/// `GET` path of device `id`'s commands.
pub fn control_in_path(id: &str) -> String {
    api_path("control", id, "in")
}

/// `POST` path of device `id`'s yggd messages.
pub fn control_out_path(id: &str) -> String {
    api_path("control", id, "out")
}

/// The port of the device API a server bound: `device` in `<data-dir>/ports.json`.
pub fn device_port(data_dir: &Path) -> Result<u16, DeviceError> {
    let path = data_dir.join("ports.json");
    let text = read(&path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| DeviceError::Json {
            what: format!("parsing {}", path.display()),
            source,
        })?;
    value
        .get("device")
        .and_then(serde_json::Value::as_u64)
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port != 0)
        .ok_or_else(|| {
            DeviceError::Invalid(format!(
                "{} names no device port (is the server started with --device-port?): {text}",
                path.display()
            ))
        })
}

/// The bootstrap directory of a server's data directory (`ca.pem`, `cert.pem`, `key.pem`).
pub fn bootstrap_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("device-bootstrap")
}

fn read(path: &Path) -> Result<String, DeviceError> {
    std::fs::read_to_string(path).map_err(|source| DeviceError::Io {
        what: format!("reading {}", path.display()),
        source,
    })
}

/// Where the device API is and which CA its server certificate chains to.
#[derive(Clone, Debug)]
pub struct DeviceEndpoint {
    address: SocketAddr,
    roots: Arc<rustls::RootCertStore>,
    ca_pem: String,
}

impl DeviceEndpoint {
    /// The device API at `address`, trusting the CA certificates in `ca_pem`.
    pub fn new(address: SocketAddr, ca_pem: &str) -> Result<Self, DeviceError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|source| DeviceError::Pem {
                what: "parsing the device CA".into(),
                source,
            })?;
            roots.add(cert)?;
        }
        if roots.is_empty() {
            return Err(DeviceError::Invalid(
                "the device CA PEM has no certificate".into(),
            ));
        }
        Ok(Self {
            address,
            roots: Arc::new(roots),
            ca_pem: ca_pem.to_owned(),
        })
    }

    /// The device API of the server whose data directory is `data_dir`, on `127.0.0.1`:
    /// the port from `ports.json`, the CA from `device-bootstrap/ca.pem`.
    pub fn from_data_dir(data_dir: &Path) -> Result<Self, DeviceError> {
        let port = device_port(data_dir)?;
        let ca = read(&bootstrap_dir(data_dir).join("ca.pem"))?;
        Self::new(SocketAddr::from(([127, 0, 0, 1], port)), &ca)
    }

    /// The server's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The CA certificate(s) as PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

/// A client certificate (chain PEM) and its private key (PEM). `Debug` leaves the key out.
#[derive(Clone)]
pub struct Identity {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &certificate_subject(&self.cert_pem).ok())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// An identity from PEM texts.
    pub fn new(cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        Self {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        }
    }

    /// The bootstrap (`CN=register`) certificate a server wrote into
    /// `<data_dir>/device-bootstrap/`.
    pub fn bootstrap(data_dir: &Path) -> Result<Self, DeviceError> {
        let dir = bootstrap_dir(data_dir);
        Ok(Self::new(
            read(&dir.join("cert.pem"))?,
            read(&dir.join("key.pem"))?,
        ))
    }

    /// The certificate chain, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The leaf certificate's subject and validity.
    pub fn subject(&self) -> Result<Subject, DeviceError> {
        certificate_subject(&self.cert_pem)
    }
}

/// What a certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// `CN`.
    pub common_name: Option<String>,
    /// `O` values.
    pub organizations: Vec<String>,
    /// `OU` values.
    pub organizational_units: Vec<String>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

/// The subject and validity of the first certificate in `cert_pem`.
pub fn certificate_subject(cert_pem: &str) -> Result<Subject, DeviceError> {
    let invalid = |e: String| DeviceError::Invalid(format!("parsing a certificate: {e}"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| invalid(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| invalid(e.to_string()))?;
    let texts = |values: Vec<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        values
            .into_iter()
            .filter_map(|value| value.as_str().ok().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let subject = cert.subject();
    Ok(Subject {
        common_name: texts(subject.iter_common_name().collect())
            .into_iter()
            .next(),
        organizations: texts(subject.iter_organization().collect()),
        organizational_units: texts(subject.iter_organizational_unit().collect()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// A new ECDSA P-256 private key (PKCS#8 PEM) and a CSR for it with subject `CN=<id>`
/// (PEM), as the device worker makes at first registration.
pub fn key_and_csr(id: &str) -> Result<(String, String), DeviceError> {
    let failed = |e: rcgen::Error| DeviceError::Invalid(format!("making a CSR for {id}: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, id);
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(failed)?;
    Ok((key.serialize_pem(), csr))
}

/// A small hardware inventory: host name `hostname`, an x86_64 CPU and a system vendor,
/// which the server turns into `device.hostname`, `device.cpu-architecture`, … labels.
pub fn sample_hardware(hostname: &str) -> HardwareInfo {
    HardwareInfo {
        hostname: Some(hostname.to_owned()),
        cpu: Some(Cpu {
            architecture: Some("x86_64".into()),
            model_name: Some("Test CPU".into()),
            count: Some(2),
            ..Cpu::default()
        }),
        system_vendor: Some(SystemVendor {
            manufacturer: Some("Flotta".into()),
            product_name: Some("e2e".into()),
            serial_number: Some(hostname.to_owned()),
            ..SystemVendor::default()
        }),
        ..HardwareInfo::default()
    }
}

/// One answer of the server.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as `T`; `what` names it in errors.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, DeviceError> {
        serde_json::from_slice(&self.body).map_err(|source| DeviceError::Json {
            what: format!("{what}: body {:?}", self.text()),
            source,
        })
    }

    /// `self` if the status is one of `accepted`, else a [`DeviceError::Status`].
    pub fn expect(self, what: &str, accepted: &[StatusCode]) -> Result<Self, DeviceError> {
        if accepted.contains(&self.status) {
            Ok(self)
        } else {
            Err(DeviceError::Status {
                what: what.to_owned(),
                status: self.status,
                body: self.text(),
            })
        }
    }
}

/// The outcome of an enrolment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enrolment {
    /// 200: the enrolment request was recorded; the device does not exist (yet).
    Requested,
    /// 208: the device exists (the request was approved).
    Known,
}

/// The outcome of a configuration poll.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigPoll {
    /// 200 with a configuration (and a new `ETag`).
    Changed(Box<DeviceConfigurationMessage>),
    /// 304: the configuration is the one last received.
    NotModified,
}

/// One simulated device (see the module documentation).
pub struct DeviceClient {
    id: String,
    endpoint: DeviceEndpoint,
    identity: Option<Identity>,
    tls: Arc<rustls::ClientConfig>,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    connections: u64,
    etag: Option<String>,
    sequence: u64,
}

impl std::fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceClient")
            .field("id", &self.id)
            .field("address", &self.endpoint.address)
            .field("identity", &self.identity)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

/// A TLS 1.3 client configuration trusting `roots`, presenting `identity` if given, and
/// offering only HTTP/1.1.
fn client_config(
    roots: &Arc<rustls::RootCertStore>,
    identity: Option<&Identity>,
) -> Result<Arc<rustls::ClientConfig>, DeviceError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(Arc::clone(roots));
    let mut config = match identity {
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| DeviceError::Pem {
                    what: "parsing the client certificate".into(),
                    source,
                })?;
            let key =
                PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(|source| {
                    DeviceError::Pem {
                        what: "parsing the client key".into(),
                        source,
                    }
                })?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl DeviceClient {
    /// Device `id` of the API at `endpoint`, presenting `identity` (none: no client
    /// certificate at all). No connection is opened yet.
    pub fn new(
        endpoint: &DeviceEndpoint,
        id: impl Into<String>,
        identity: Option<Identity>,
    ) -> Result<Self, DeviceError> {
        let tls = client_config(&endpoint.roots, identity.as_ref())?;
        let host = HeaderValue::from_str(&endpoint.address.to_string())
            .map_err(|e| DeviceError::Invalid(format!("host header: {e}")))?;
        Ok(Self {
            id: id.into(),
            endpoint: endpoint.clone(),
            identity,
            tls,
            host,
            sender: None,
            connections: 0,
            etag: None,
            sequence: 0,
        })
    }

    /// The device id (the `{id}` of its own paths).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The certificate the device presents.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Presents `identity` from now on; the open connection (if any) is closed, since a
    /// TLS connection's client certificate is fixed.
    pub fn set_identity(&mut self, identity: Option<Identity>) -> Result<(), DeviceError> {
        self.tls = client_config(&self.endpoint.roots, identity.as_ref())?;
        self.identity = identity;
        self.sender = None;
        Ok(())
    }

    /// How many connections this device has opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.connections
    }

    /// The `ETag` of the last configuration received.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Forgets the last `ETag`, so that the next poll fetches the configuration.
    pub fn forget_etag(&mut self) {
        self.etag = None;
    }

    /// Opens the connection now unless one is open and usable.
    pub async fn connect(&mut self) -> Result<(), DeviceError> {
        self.ready_sender().await.map(|_| ())
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, DeviceError> {
        let address = self.endpoint.address;
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|source| DeviceError::Io {
                what: format!("connecting to {address}"),
                source,
            })?;
        // Small request/response pairs: Nagle would only add latency.
        tcp.set_nodelay(true).map_err(|source| DeviceError::Io {
            what: "setting TCP_NODELAY".into(),
            source,
        })?;
        let server_name = ServerName::IpAddress(address.ip().into());
        let tls = TlsConnector::from(Arc::clone(&self.tls))
            .connect(server_name, tcp)
            .await
            .map_err(|source| DeviceError::Io {
                what: format!("TLS handshake with {address}"),
                source,
            })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|source| DeviceError::Http {
                what: format!("HTTP/1.1 handshake with {address}"),
                source,
            })?;
        tokio::spawn(async move {
            // The connection ends when the server or the device closes it; either way the
            // next request reports or reopens it.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Makes sure a usable connection is open; returns whether it was already open
    /// (reused) rather than opened now.
    async fn ready_sender(&mut self) -> Result<bool, DeviceError> {
        let usable = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.sender = None;
            let sender = self.open().await?;
            self.connections += 1;
            self.sender = Some(sender);
        }
        Ok(usable)
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, DeviceError> {
        let what = format!("{} {}", request.method(), request.uri());
        self.ready_sender().await?;
        let sender = self
            .sender
            .as_mut()
            .ok_or_else(|| DeviceError::Invalid("no connection".into()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|source| DeviceError::Http {
                what: what.clone(),
                source,
            })?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|source| DeviceError::Http {
                what: format!("reading the answer to {what}"),
                source,
            })?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `GET path`, with `If-None-Match: if_none_match` when given. A GET that fails
    /// because the server had closed the kept-alive connection (it may, e.g. after
    /// refusing an oversized body) is sent once more on a new connection, as HTTP clients
    /// do for idempotent requests.
    pub async fn get(
        &mut self,
        path: &str,
        if_none_match: Option<&str>,
    ) -> Result<Reply, DeviceError> {
        let build = |host: &HeaderValue| {
            let mut request = Request::builder()
                .method(Method::GET)
                .uri(path)
                .header(HOST, host.clone());
            if let Some(tag) = if_none_match {
                request = request.header(IF_NONE_MATCH, tag);
            }
            request.body(Full::new(Bytes::new()))
        };
        let reused = self.ready_sender().await?;
        match self.send(build(&self.host)?).await {
            Err(DeviceError::Http { source, .. }) if reused && closed_by_peer(&source) => {
                self.sender = None;
                self.send(build(&self.host)?).await
            }
            result => result,
        }
    }

    /// `POST path` with a JSON `body` (never resent).
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Reply, DeviceError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.send(request).await
    }

    /// A `data` message with `directive` and `content`, serialised as yggd sends it.
    pub fn envelope(
        &mut self,
        directive: &str,
        content: &impl Serialize,
    ) -> Result<Bytes, DeviceError> {
        self.sequence += 1;
        let json = |source| DeviceError::Json {
            what: format!("encoding a {directive} message"),
            source,
        };
        let message = Message {
            message_type: Some(MessageType::Data),
            message_id: Some(format!("{}-{}", self.id, self.sequence)),
            version: Some(1),
            sent: Some(jiff::Timestamp::now().to_string()),
            directive: Some(directive.to_owned()),
            content: serde_json::to_value(content).map_err(json)?,
            ..Message::default()
        };
        serde_json::to_vec(&message).map(Bytes::from).map_err(json)
    }

    /// `POST data/{id}/out` of this device with `directive` and `content`, whatever the
    /// answer.
    pub async fn post_directive(
        &mut self,
        directive: &str,
        content: &impl Serialize,
    ) -> Result<Reply, DeviceError> {
        let body = self.envelope(directive, content)?;
        let path = data_out_path(&self.id);
        self.post(&path, body).await
    }

    /// Enrols with `info`: 200 → [`Enrolment::Requested`], 208 → [`Enrolment::Known`].
    pub async fn enrol(&mut self, info: &EnrolmentInfo) -> Result<Enrolment, DeviceError> {
        let reply = self
            .post_directive(DIRECTIVE_ENROLMENT, info)
            .await?
            .expect(
                &format!("enrolment of {}", self.id),
                &[StatusCode::OK, StatusCode::ALREADY_REPORTED],
            )?;
        Ok(if reply.status == StatusCode::ALREADY_REPORTED {
            Enrolment::Known
        } else {
            Enrolment::Requested
        })
    }

    /// Registers: a new key and a CSR for `CN=<id>` sent with `hardware`; the certificate
    /// returned becomes this device's identity (and is returned).
    pub async fn register(
        &mut self,
        hardware: Option<HardwareInfo>,
    ) -> Result<Identity, DeviceError> {
        let (key_pem, csr_pem) = key_and_csr(&self.id)?;
        let info = RegistrationInfo {
            hardware,
            certificate_request: Some(csr_pem),
        };
        let what = format!("registration of {}", self.id);
        let reply = self
            .post_directive(DIRECTIVE_REGISTRATION, &info)
            .await?
            .expect(&what, &[StatusCode::OK])?;
        let response: MessageResponse = reply.json(&what)?;
        let content: RegistrationResponse =
            serde_json::from_value(response.content).map_err(|source| DeviceError::Json {
                what: format!("{what}: content"),
                source,
            })?;
        let cert_pem = content
            .certificate
            .filter(|cert| !cert.trim().is_empty())
            .ok_or_else(|| DeviceError::Invalid(format!("{what}: no certificate returned")))?;
        let identity = Identity::new(cert_pem, key_pem);
        self.set_identity(Some(identity.clone()))?;
        Ok(identity)
    }

    /// Joins the fleet as the device worker does: enrols with `info` every `retry` until
    /// the answer is 208 (the request was approved), then registers with `hardware`.
    /// Fails after `timeout` without approval.
    pub async fn join(
        &mut self,
        info: &EnrolmentInfo,
        hardware: Option<HardwareInfo>,
        retry: Duration,
        timeout: Duration,
    ) -> Result<Identity, DeviceError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.enrol(info).await? == Enrolment::Requested {
            if tokio::time::Instant::now() >= deadline {
                return Err(DeviceError::Invalid(format!(
                    "{} was not approved within {timeout:?} (enrolment still answers 200)",
                    self.id
                )));
            }
            tokio::time::sleep(retry).await;
        }
        self.register(hardware).await
    }

    /// Polls the configuration, sending the last `ETag` as `If-None-Match`.
    pub async fn configuration(&mut self) -> Result<ConfigPoll, DeviceError> {
        let path = data_in_path(&self.id);
        let tag = self.etag.clone();
        let what = format!("configuration of {}", self.id);
        let reply = self
            .get(&path, tag.as_deref())
            .await?
            .expect(&what, &[StatusCode::OK, StatusCode::NOT_MODIFIED])?;
        if reply.status == StatusCode::NOT_MODIFIED {
            return Ok(ConfigPoll::NotModified);
        }
        let message: Message = reply.json(&what)?;
        let configuration: DeviceConfigurationMessage = serde_json::from_value(message.content)
            .map_err(|source| DeviceError::Json {
                what: format!("{what}: content"),
                source,
            })?;
        self.etag = reply
            .headers
            .get(ETAG)
            .and_then(|tag| tag.to_str().ok())
            .map(str::to_owned);
        Ok(ConfigPoll::Changed(Box::new(configuration)))
    }

    /// Fetches the configuration in full (no `If-None-Match`).
    pub async fn full_configuration(&mut self) -> Result<DeviceConfigurationMessage, DeviceError> {
        self.forget_etag();
        match self.configuration().await? {
            ConfigPoll::Changed(configuration) => Ok(*configuration),
            ConfigPoll::NotModified => Err(DeviceError::Invalid(
                "304 to a request without If-None-Match".into(),
            )),
        }
    }

    /// Sends `heartbeat`; only 200 is success.
    pub async fn heartbeat(&mut self, heartbeat: &Heartbeat) -> Result<(), DeviceError> {
        let what = format!("heartbeat of {}", self.id);
        self.post_directive(DIRECTIVE_HEARTBEAT, heartbeat)
            .await?
            .expect(&what, &[StatusCode::OK])
            .map(|_| ())
    }

    /// Polls `control/{id}/in`: `None` for an empty answer, else the command.
    pub async fn control(&mut self) -> Result<Option<Command>, DeviceError> {
        let path = control_in_path(&self.id);
        let what = format!("control poll of {}", self.id);
        let reply = self
            .get(&path, None)
            .await?
            .expect(&what, &[StatusCode::OK])?;
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let message: Message = reply.json(&what)?;
        if message.message_type != Some(MessageType::Command) {
            return Err(DeviceError::Invalid(format!(
                "{what}: a message of type {:?}, not a command: {}",
                message.message_type,
                reply.text()
            )));
        }
        let command: Command =
            serde_json::from_value(message.content).map_err(|source| DeviceError::Json {
                what: format!("{what}: content"),
                source,
            })?;
        Ok(Some(command))
    }
}

/// Whether a request failed because the server closed the connection before answering.
fn closed_by_peer(error: &hyper::Error) -> bool {
    error.is_incomplete_message() || error.is_canceled() || error.is_closed()
}

/// Whether `command` is the `disconnect` command.
pub fn is_disconnect(command: &Command) -> bool {
    command.command == COMMAND_DISCONNECT
}

/// A heartbeat as the device worker sends it: status `up`, the applied configuration
/// `version`, and each `(workload, podman state)`.
pub fn heartbeat(version: Option<&str>, workloads: &[(&str, &str)]) -> Heartbeat {
    Heartbeat {
        status: Some(flotta_api::edge::HEARTBEAT_STATUS_UP.to_owned()),
        version: version.map(str::to_owned),
        workloads: workloads
            .iter()
            .map(|(name, state)| flotta_api::edge::WorkloadStatus {
                name: Some((*name).to_owned()),
                status: Some((*state).to_owned()),
                last_data_upload: None,
            })
            .collect(),
        ..Heartbeat::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_flotta_layout() {
        assert_eq!(
            data_in_path("dev1"),
            "/api/flotta-management/v1/data/dev1/in"
        );
        assert_eq!(
            data_out_path("dev1"),
            "/api/flotta-management/v1/data/dev1/out"
        );
        assert_eq!(
            control_in_path("dev1"),
            "/api/flotta-management/v1/control/dev1/in"
        );
        assert_eq!(
            control_out_path("dev1"),
            "/api/flotta-management/v1/control/dev1/out"
        );
    }

    #[test]
    fn csr_names_the_device_and_parses() {
        let (key, csr) = key_and_csr("dev-42").unwrap();
        assert!(key.contains("PRIVATE KEY"), "{key}");
        assert!(
            csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
            "{csr}"
        );
        let params = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
        let names: Vec<String> = params
            .params
            .distinguished_name
            .iter()
            .map(|(kind, value)| format!("{kind:?}={value:?}"))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(
            names[0].contains("CommonName") && names[0].contains("dev-42"),
            "{names:?}"
        );
    }

    #[test]
    fn envelope_is_a_data_message() {
        let endpoint = DeviceEndpoint {
            address: SocketAddr::from(([127, 0, 0, 1], 1)),
            roots: Arc::new(rustls::RootCertStore::empty()),
            ca_pem: String::new(),
        };
        let mut client = DeviceClient::new(&endpoint, "dev1", None).unwrap();
        let body = client
            .envelope(
                DIRECTIVE_HEARTBEAT,
                &heartbeat(Some("7"), &[("wl", "Running")]),
            )
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["type"], "data");
        assert_eq!(value["directive"], "heartbeat");
        assert_eq!(value["message_id"], "dev1-1");
        assert_eq!(value["version"], 1);
        assert_eq!(value["content"]["status"], "up");
        assert_eq!(value["content"]["version"], "7");
        assert_eq!(value["content"]["workloads"][0]["name"], "wl");
        assert_eq!(value["content"]["workloads"][0]["status"], "Running");
        // Flotta writes these lists even when empty.
        assert_eq!(value["content"]["events"], serde_json::json!([]));
        assert!(value["sent"].as_str().is_some_and(|s| s.ends_with('Z')));
    }
}
