//! Raw HTTPS access to a test server: a reqwest client over a rustls configuration built
//! here (ring provider, the server's CA as the only root, optionally a client certificate),
//! and a reader for watch streams (newline-delimited JSON events).
//!
//! Limits: PEM files only; the client offers h2 and http/1.1 like kubectl; every read has a
//! 30 s timeout, so a watch that stays silent longer than that ends with an error.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

use crate::deadline::DEFAULT_TIMEOUT;

/// A reqwest client trusting only the CA in `ca_pem`, presenting `identity` (certificate
/// chain PEM, private key PEM) as client certificate when given.
pub fn tls_client(ca_pem: &Path, identity: Option<(&Path, &Path)>) -> Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem)
        .with_context(|| format!("reading CA certificates from {}", ca_pem.display()))?
    {
        let cert = cert.with_context(|| format!("parsing {}", ca_pem.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("adding {} as a root", ca_pem.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing TLS protocol versions")?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_file_iter(cert_pem)
                .with_context(|| format!("reading {}", cert_pem.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", cert_pem.display()))?;
            let key = PrivateKeyDer::from_pem_file(key_pem)
                .with_context(|| format!("reading private key {}", key_pem.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("configuring the client certificate")?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(DEFAULT_TIMEOUT)
        .build()
        .context("building the reqwest client")
}

/// Reads a response body as JSON, returning the status with it; the error shows the raw text.
pub async fn json_response(response: reqwest::Response) -> Result<(reqwest::StatusCode, Value)> {
    let status = response.status();
    let text = response.text().await.context("reading the response body")?;
    let value = serde_json::from_str(&text)
        .with_context(|| format!("HTTP {status}: body is not JSON: {text}"))?;
    Ok((status, value))
}

/// A watch response being read event by event.
#[derive(Debug)]
pub struct WatchStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
    ended: bool,
}

impl WatchStream {
    /// Wraps a watch response; fails unless it is `200 OK`.
    pub async fn new(response: reqwest::Response) -> Result<Self> {
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            bail!("watch answered HTTP {status}: {body}");
        }
        Ok(Self::from_response(response))
    }

    /// Wraps any response without looking at its status.
    pub fn from_response(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
            ended: false,
        }
    }

    /// The next event, `None` at the end of the stream; fails after `timeout` without one.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Option<Value>> {
        tokio::time::timeout(timeout, self.read_event())
            .await
            .map_err(|_| anyhow!("no watch event within {timeout:?}"))?
    }

    /// Events until the one that satisfies `matches` (returned), with those before it.
    pub async fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Vec<Value>)> {
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(remaining).await {
                Ok(Some(event)) if matches(&event) => return Ok((event, before)),
                Ok(Some(event)) => before.push(event),
                Ok(None) => bail!("watch ended before {what}; events: {before:#?}"),
                Err(error) => {
                    return Err(error.context(format!("waiting for {what}; events: {before:#?}")));
                }
            }
        }
    }

    async fn read_event(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                let event = serde_json::from_slice(line).with_context(|| {
                    format!("watch line is not JSON: {}", String::from_utf8_lossy(line))
                })?;
                return Ok(Some(event));
            }
            if self.ended {
                let rest = self.buffer.trim_ascii();
                if rest.is_empty() {
                    return Ok(None);
                }
                let event = serde_json::from_slice(rest).with_context(|| {
                    format!(
                        "trailing watch data is not JSON: {}",
                        String::from_utf8_lossy(rest)
                    )
                })?;
                self.buffer.clear();
                return Ok(Some(event));
            }
            match self
                .response
                .chunk()
                .await
                .context("reading the watch stream")?
            {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => self.ended = true,
            }
        }
    }
}

/// A reqwest client plus the server's base URL, with JSON helpers that name the request in
/// their errors.
#[derive(Debug, Clone)]
pub struct ApiClient {
    client: reqwest::Client,
    base: String,
}

impl ApiClient {
    /// Wraps `client` for requests to `base` (e.g. `https://127.0.0.1:8443`).
    pub fn new(client: reqwest::Client, base: impl Into<String>) -> Self {
        Self {
            client,
            base: base.into(),
        }
    }

    /// The same client aimed at another base URL (e.g. after a restart on a new port).
    pub fn with_base(&self, base: impl Into<String>) -> Self {
        Self::new(self.client.clone(), base)
    }

    /// A request builder for `path` (which starts with `/`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends `request` and reads the JSON answer; errors name `what`.
    pub async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let response = request
            .send()
            .await
            .with_context(|| format!("sending {what}"))?;
        json_response(response)
            .await
            .with_context(|| format!("answer to {what}"))
    }

    /// `GET path` accepting JSON.
    pub async fn get(&self, path: &str) -> Result<(reqwest::StatusCode, Value)> {
        self.get_as(path, "application/json").await
    }

    /// `GET path` with the given `Accept` header.
    pub async fn get_as(&self, path: &str, accept: &str) -> Result<(reqwest::StatusCode, Value)> {
        let request = self
            .request(reqwest::Method::GET, path)
            .header(reqwest::header::ACCEPT, accept);
        self.send(&format!("GET {path}"), request).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(reqwest::StatusCode, Value)> {
        let request = self
            .request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send(&format!("POST {path}"), request).await
    }

    /// `PATCH path` with the given patch `content_type` and raw body.
    pub async fn patch(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let request = self
            .request(reqwest::Method::PATCH, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_owned());
        self.send(&format!("PATCH {path} ({content_type})"), request)
            .await
    }

    /// `DELETE path` without a body.
    pub async fn delete(&self, path: &str) -> Result<(reqwest::StatusCode, Value)> {
        let request = self.request(reqwest::Method::DELETE, path);
        self.send(&format!("DELETE {path}"), request).await
    }

    /// Opens `GET path` (a watch URL with its query) and returns the raw response, whatever
    /// its status, so callers can accept an HTTP error as well as an in-stream ERROR event.
    pub async fn open(&self, path: &str) -> Result<reqwest::Response> {
        self.request(reqwest::Method::GET, path)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .with_context(|| format!("sending GET {path}"))
    }
}
