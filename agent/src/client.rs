//! The agent's client of the device API (`flotta-inventory.md` §3.2): mutual TLS 1.3 with
//! rustls (ring), reqwest, and the wire models of [`flotta_api::edge`].
//!
//! One [`EdgeClient`] presents one identity; after registering or renewing the agent builds
//! a new one. Limits: no proxy support; the server certificate must name the host of the
//! server URL (an IP address works when the certificate carries it).

use std::sync::Arc;
use std::time::Duration;

use flotta_api::edge::{
    BASE_PATH, Command, DIRECTIVE_ENROLMENT, DIRECTIVE_HEARTBEAT, DIRECTIVE_REGISTRATION,
    DeviceConfigurationMessage, EnrolmentInfo, Heartbeat, Message, MessageResponse, MessageType,
    RegistrationInfo, RegistrationResponse,
};
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;

use crate::identity::Identity;

/// Why a request to the device API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS material was unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The server could not be reached or the exchange broke.
    #[error("{what}: {source}")]
    Transport {
        /// The operation.
        what: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// 401: the certificate was refused.
    #[error("{what}: unauthorized (HTTP 401)")]
    Unauthorized {
        /// The operation.
        what: String,
    },
    /// Another unexpected status.
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        /// The operation.
        what: String,
        /// The status.
        status: StatusCode,
        /// The body, as text.
        body: String,
    },
    /// The body was not the JSON expected.
    #[error("{what}: {source}")]
    Json {
        /// The operation.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// Whether the server refused the certificate.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }
}

/// The outcome of a configuration poll.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigPoll {
    /// A configuration, with the `ETag` to send next time.
    Changed(Box<DeviceConfigurationMessage>, Option<String>),
    /// 304: unchanged since the `ETag` sent.
    NotModified,
}

/// A client of the device API for one device and one identity.
#[derive(Clone, Debug)]
pub struct EdgeClient {
    http: reqwest::Client,
    base: String,
    device_id: String,
}

impl EdgeClient {
    /// A client of the API at `server` (e.g. `https://host:8043`) for `device_id`, trusting
    /// the CA certificates in `ca_pem` and presenting `identity`.
    pub fn new(
        server: &str,
        device_id: &str,
        ca_pem: &str,
        identity: &Identity,
    ) -> Result<Self, ClientError> {
        let tls = |e: &dyn std::fmt::Display| ClientError::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
        if roots.is_empty() {
            return Err(ClientError::Tls("the CA file holds no certificate".into()));
        }
        let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(&e))?;
        let key =
            PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(|e| tls(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| tls(&e))?;
        Ok(Self {
            http,
            base: format!("{}{BASE_PATH}", server.trim_end_matches('/')),
            device_id: device_id.to_owned(),
        })
    }

    fn url(&self, channel: &str, direction: &str) -> String {
        format!("{}/{channel}/{}/{direction}", self.base, self.device_id)
    }

    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
        accepted: &[StatusCode],
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                what: what.to_owned(),
                source,
            })?;
        let status = response.status();
        if accepted.contains(&status) {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                what: what.to_owned(),
            });
        }
        let body = response.text().await.unwrap_or_default();
        Err(ClientError::Status {
            what: what.to_owned(),
            status,
            body,
        })
    }

    async fn post_directive(
        &self,
        directive: &str,
        content: &impl Serialize,
        accepted: &[StatusCode],
    ) -> Result<reqwest::Response, ClientError> {
        let what = format!("{directive} of {}", self.device_id);
        let json = |source| ClientError::Json {
            what: what.clone(),
            source,
        };
        let message = Message {
            message_type: Some(MessageType::Data),
            message_id: Some(message_id()),
            version: Some(1),
            sent: Some(jiff::Timestamp::now().to_string()),
            directive: Some(directive.to_owned()),
            content: serde_json::to_value(content).map_err(json)?,
            ..Message::default()
        };
        let body = serde_json::to_vec(&message).map_err(json)?;
        let request = self
            .http
            .post(self.url("data", "out"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(&what, request, accepted).await
    }

    async fn json<T: serde::de::DeserializeOwned>(
        what: &str,
        response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                what: what.to_owned(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Json {
            what: what.to_owned(),
            source,
        })
    }

    /// Enrols; `true` once the server knows the device (208), `false` while pending (200).
    pub async fn enrol(&self, info: &EnrolmentInfo) -> Result<bool, ClientError> {
        let response = self
            .post_directive(
                DIRECTIVE_ENROLMENT,
                info,
                &[StatusCode::OK, StatusCode::ALREADY_REPORTED],
            )
            .await?;
        Ok(response.status() == StatusCode::ALREADY_REPORTED)
    }

    /// Registers (or renews) with a CSR; returns the signed certificate (PEM).
    pub async fn register(&self, info: &RegistrationInfo) -> Result<String, ClientError> {
        let what = format!("registration of {}", self.device_id);
        let response = self
            .post_directive(DIRECTIVE_REGISTRATION, info, &[StatusCode::OK])
            .await?;
        let response: MessageResponse = Self::json(&what, response).await?;
        let content: RegistrationResponse =
            serde_json::from_value(response.content).map_err(|source| ClientError::Json {
                what: what.clone(),
                source,
            })?;
        content
            .certificate
            .filter(|cert| !cert.trim().is_empty())
            .ok_or_else(|| ClientError::Status {
                what,
                status: StatusCode::OK,
                body: "no certificate in the answer".into(),
            })
    }

    /// Polls the configuration, sending `etag` as `If-None-Match`.
    pub async fn configuration(&self, etag: Option<&str>) -> Result<ConfigPoll, ClientError> {
        let what = format!("configuration of {}", self.device_id);
        let mut request = self.http.get(self.url("data", "in"));
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = self
            .send(&what, request, &[StatusCode::OK, StatusCode::NOT_MODIFIED])
            .await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(ConfigPoll::NotModified);
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|tag| tag.to_str().ok())
            .map(str::to_owned);
        let message: Message = Self::json(&what, response).await?;
        let configuration = serde_json::from_value(message.content)
            .map_err(|source| ClientError::Json { what, source })?;
        Ok(ConfigPoll::Changed(Box::new(configuration), etag))
    }

    /// Polls `control/in`: `None` when there is no command.
    pub async fn control(&self) -> Result<Option<Command>, ClientError> {
        let what = format!("control poll of {}", self.device_id);
        let request = self.http.get(self.url("control", "in"));
        let response = self.send(&what, request, &[StatusCode::OK]).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                what: what.clone(),
                source,
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let message: Message =
            serde_json::from_slice(&bytes).map_err(|source| ClientError::Json {
                what: what.clone(),
                source,
            })?;
        if message.message_type != Some(MessageType::Command) {
            return Ok(None);
        }
        serde_json::from_value(message.content)
            .map(Some)
            .map_err(|source| ClientError::Json { what, source })
    }

    /// Sends a heartbeat.
    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), ClientError> {
        self.post_directive(DIRECTIVE_HEARTBEAT, heartbeat, &[StatusCode::OK])
            .await
            .map(|_| ())
    }
}

/// A random message id (UUID-like hex; uniqueness is all that matters).
fn message_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}
