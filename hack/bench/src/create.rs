//! The create benchmark: N clients, each with its own HTTP/1.1 keep-alive connection, POST
//! EdgeDevices until the wanted number exists; every create must answer 201 (which the
//! embedded store gives only once the write is durable).
//!
//! The request bodies are serialized before the clock starts and each connection's TLS
//! handshake is done beforehand, so the figure is the server's create rate, not the
//! client's JSON or handshake cost. Limits: the client runs on the same machine and takes
//! some CPU from the server; devices are handed out from one shared counter, so clients
//! that are served faster create more.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use crate::client::{ApiError, Credentials, Endpoint, Protocol, expect_body};
use crate::fixture;
use crate::stats::{self, Samples};

/// What the create benchmark measured.
#[derive(Debug, Clone)]
pub struct CreateResult {
    /// Devices created.
    pub created: usize,
    /// Wall time from the first request sent to the last acknowledged.
    pub elapsed: Duration,
    /// Per-request latency.
    pub latency: Samples,
    /// Bytes in one device body (the first one).
    pub body_bytes: usize,
    /// Server CPU time per create, if it could be read.
    pub server_cpu: Option<Duration>,
}

impl CreateResult {
    /// Creates per second.
    pub fn rate(&self) -> f64 {
        self.created as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Creates `devices` EdgeDevices with `clients` concurrent HTTP/1.1 clients; `cpu` reads
/// the server's CPU time.
pub async fn run(
    creds: &Credentials,
    endpoint: &Endpoint,
    devices: usize,
    clients: usize,
    cpu: &dyn Fn() -> Option<Duration>,
) -> Result<CreateResult, ApiError> {
    let bodies: Vec<Bytes> = (0..devices)
        .map(|i| {
            serde_json::to_vec(&fixture::device(i, endpoint.namespace()))
                .map(Bytes::from)
                .map_err(|e| ApiError::unexpected("serializing a device", e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let body_bytes = bodies.first().map_or(0, Bytes::len);
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));

    // Open every connection (TLS handshake included) before the clock starts.
    let mut http = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = creds.client(Protocol::Http1)?;
        expect_body(
            "warming up a create connection",
            client.get(endpoint.url("/version")),
            StatusCode::OK,
        )
        .await?;
        http.push(client);
    }

    let cpu_before = cpu();
    let started = Instant::now();
    let tasks: Vec<_> = http
        .into_iter()
        .map(|client| {
            let bodies = Arc::clone(&bodies);
            let next = Arc::clone(&next);
            let url = endpoint.devices();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return Ok::<_, ApiError>(latencies);
                    };
                    let sent = Instant::now();
                    expect_body(
                        "creating an EdgeDevice",
                        client
                            .post(&url)
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.clone()),
                        StatusCode::CREATED,
                    )
                    .await?;
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(devices);
    for task in futures::future::join_all(tasks).await {
        let task = task.map_err(|e| ApiError::unexpected("a create client", e.to_string()))?;
        latencies.extend(task?);
    }
    let elapsed = started.elapsed();
    let server_cpu = stats::per_op(cpu_before, cpu(), latencies.len());
    Ok(CreateResult {
        created: latencies.len(),
        elapsed,
        latency: Samples::new(latencies),
        body_bytes,
        server_cpu,
    })
}
