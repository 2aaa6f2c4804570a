//! The watch fan-out benchmark: W watch streams on the EdgeDevice collection (each its
//! own client and HTTP/1.1 connection), then U sequential merge-patch updates of one
//! device. Each update carries a marker label; for every watcher the time from sending
//! the PATCH to that watcher receiving the MODIFIED event with the marker is one delivery.
//!
//! The arrival time is taken when the chunk holding the event is read, before it is
//! parsed. One unmeasured update goes first and must reach every watcher, so all streams
//! are known to be live. An update waits until every watcher has its event (or a
//! timeout, counted as missing deliveries) before the next is sent. Limits: the watchers
//! run in this process on the same machine as the server, so their own scheduling delay
//! is part of the figure; PATCH latency (a durable write) is part of every delivery.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::{ApiError, Credentials, Endpoint, Protocol, expect_body};
use crate::stats::Samples;

/// The label whose value identifies an update.
pub const MARKER_LABEL: &str = "bench-update";

/// How long one update may take to reach every watcher.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the watch benchmark measured.
#[derive(Debug, Clone)]
pub struct WatchResult {
    /// Watch streams open.
    pub watchers: usize,
    /// Measured updates sent.
    pub updates: usize,
    /// One sample per (update, watcher) delivery.
    pub deliveries: Samples,
    /// Deliveries that did not arrive within the timeout.
    pub missing: usize,
    /// PATCH round trips (request to 200 response).
    pub patch: Samples,
}

/// Splits a byte stream into newline-terminated lines (the watch framing), across chunk
/// boundaries.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds one chunk; returns the lines it completes, without their `\n`.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..pos]);
            lines.push(std::mem::take(&mut self.partial));
            rest = &rest[pos + 1..];
        }
        self.partial.extend_from_slice(rest);
        lines.retain(|l| !l.iter().all(u8::is_ascii_whitespace));
        lines
    }
}

/// The marker of a watch event line, if it is a MODIFIED event carrying one.
pub fn marker(line: &[u8]) -> Option<u64> {
    let event: Value = serde_json::from_slice(line).ok()?;
    if event.get("type")?.as_str()? != "MODIFIED" {
        return None;
    }
    event
        .pointer("/object/metadata/labels")?
        .get(MARKER_LABEL)?
        .as_str()?
        .parse()
        .ok()
}

/// One delivery: which watcher got which marker when.
struct Delivery {
    marker: u64,
    at: Instant,
}

/// Opens `watchers` watch streams from `resource_version` and sends `updates` measured
/// merge-patches to the device `device`.
pub async fn run(
    creds: &Credentials,
    endpoint: &Endpoint,
    watchers: usize,
    updates: usize,
    resource_version: &str,
    device: &str,
) -> Result<WatchResult, ApiError> {
    let url = format!(
        "{}?watch=true&resourceVersion={resource_version}&timeoutSeconds=1800",
        endpoint.devices()
    );
    let opening = (0..watchers).map(|_| {
        let url = url.clone();
        async move {
            let client = creds.client(Protocol::Http1)?;
            let response = client
                .get(&url)
                .send()
                .await
                .map_err(|e| ApiError::http("opening a watch", e))?;
            if response.status() != StatusCode::OK {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                return Err(ApiError::Status {
                    what: "opening a watch".into(),
                    status,
                    body,
                });
            }
            // The client owns the connection pool; keep it alive with the stream.
            Ok((client, response))
        }
    });
    let streams = futures::future::try_join_all(opening).await?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    let readers: Vec<_> = streams
        .into_iter()
        .map(|(client, response)| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _client = client;
                let mut body = response.bytes_stream();
                let mut lines = LineSplitter::default();
                while let Some(Ok(chunk)) = body.next().await {
                    let at = Instant::now();
                    for line in lines.push(&chunk) {
                        if let Some(marker) = marker(&line)
                            && tx.send(Delivery { marker, at }).is_err()
                        {
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    drop(tx);

    let patcher = creds.client(Protocol::Http1)?;
    let device_url = endpoint.device(device);
    let mut deliveries = Vec::with_capacity(watchers * updates);
    let mut patch_times = Vec::with_capacity(updates);
    let mut missing = 0;
    // Marker 0 is the warm-up; a warm-up that does not reach everyone is an error.
    for marker in 0..=updates as u64 {
        let body = format!(r#"{{"metadata":{{"labels":{{"{MARKER_LABEL}":"{marker}"}}}}}}"#);
        let sent = Instant::now();
        expect_body(
            "patching the watched device",
            patcher
                .patch(&device_url)
                .header(CONTENT_TYPE, "application/merge-patch+json")
                .body(body),
            StatusCode::OK,
        )
        .await?;
        let patched = sent.elapsed();
        let arrivals = collect(&mut rx, marker, watchers).await;
        if marker == 0 {
            if arrivals.len() < watchers {
                return Err(ApiError::Timeout {
                    what: format!(
                        "the warm-up update reaching all {watchers} watchers ({} did)",
                        arrivals.len()
                    ),
                    after: DELIVERY_TIMEOUT,
                });
            }
            continue;
        }
        patch_times.push(patched);
        missing += watchers - arrivals.len();
        deliveries.extend(
            arrivals
                .into_iter()
                .map(|at| at.saturating_duration_since(sent)),
        );
    }
    for reader in readers {
        reader.abort();
    }
    Ok(WatchResult {
        watchers,
        updates,
        deliveries: Samples::new(deliveries),
        missing,
        patch: Samples::new(patch_times),
    })
}

/// Waits until `watchers` deliveries of `marker` arrived (or the timeout passed); returns
/// their arrival times. Deliveries of other markers (late ones) are dropped.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Delivery>,
    marker: u64,
    watchers: usize,
) -> Vec<Instant> {
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    let mut arrivals = Vec::with_capacity(watchers);
    while arrivals.len() < watchers {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) if d.marker == marker => arrivals.push(d.at),
            Ok(Some(_)) => {}
            // Every reader ended, or time is up.
            Ok(None) | Err(_) => break,
        }
    }
    arrivals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_chunks() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"{\"a\":").is_empty());
        assert_eq!(s.push(b"1}\n{\"b\""), vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(
            s.push(b":2}\n\n{\"c\":3}\n"),
            vec![b"{\"b\":2}".to_vec(), b"{\"c\":3}".to_vec()]
        );
        assert!(s.push(b"").is_empty());
    }

    #[test]
    fn markers_only_from_modified_events() {
        let modified =
            br#"{"type":"MODIFIED","object":{"metadata":{"name":"d","labels":{"bench-update":"17"}}}}"#;
        assert_eq!(marker(modified), Some(17));
        let added =
            br#"{"type":"ADDED","object":{"metadata":{"name":"d","labels":{"bench-update":"17"}}}}"#;
        assert_eq!(marker(added), None);
        let unlabeled = br#"{"type":"MODIFIED","object":{"metadata":{"name":"d"}}}"#;
        assert_eq!(marker(unlabeled), None);
        assert_eq!(marker(b"not json"), None);
    }
}
