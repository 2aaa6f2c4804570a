//! The plain-HTTP health and metrics router: probes pass with a working store, `/readyz`
//! fails naming the failed check when the store is down or shutdown has begun, and
//! `/metrics` reports figures read from the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::body::Body;
use flotta_api::store::memory::MemoryStore;
use flotta_api::store::{ListResult, Revision, Store, StoreError, WatchStream};
use flotta_apiserver::server::{HealthState, health_router};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// A backend that is unreachable: every call fails.
struct DownStore;

fn down() -> StoreError {
    StoreError::Backend("connection refused".into())
}

#[async_trait]
impl Store for DownStore {
    async fn get(&self, _: &str) -> Result<Option<flotta_api::store::KeyValue>, StoreError> {
        Err(down())
    }
    async fn list(
        &self,
        _: &str,
        _: &str,
        _: usize,
        _: Option<Revision>,
    ) -> Result<ListResult, StoreError> {
        Err(down())
    }
    async fn create(&self, _: &str, _: Vec<u8>) -> Result<Revision, StoreError> {
        Err(down())
    }
    async fn update(&self, _: &str, _: Vec<u8>, _: Revision) -> Result<Revision, StoreError> {
        Err(down())
    }
    async fn delete(&self, _: &str, _: Revision) -> Result<Revision, StoreError> {
        Err(down())
    }
    async fn watch(&self, _: &str, _: Revision) -> Result<WatchStream, StoreError> {
        Err(down())
    }
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Err(down())
    }
    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Err(down())
    }
    async fn ready(&self) -> Result<(), StoreError> {
        Err(down())
    }
}

fn state(store: Arc<dyn Store>) -> HealthState {
    HealthState {
        store,
        connections: Arc::default(),
        controllers_running: Arc::new(AtomicBool::new(true)),
        shutting_down: Arc::new(AtomicBool::new(false)),
        started_at: 1_700_000_000,
        readiness: Vec::new(),
    }
}

async fn get(state: &HealthState, path: &str) -> (u16, String) {
    let response = health_router(state.clone())
        .oneshot(
            http::Request::get(path)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn probes_pass_with_a_working_store() {
    let store = Arc::new(MemoryStore::new(100));
    store
        .create("/registry/x/y/ns/a", b"{}".to_vec())
        .await
        .expect("write");
    let state = state(store);
    for path in ["/healthz", "/livez", "/readyz", "/readyz/store"] {
        assert_eq!(get(&state, path).await, (200, "ok".to_owned()), "{path}");
    }
    let (status, verbose) = get(&state, "/readyz?verbose").await;
    assert_eq!(status, 200);
    assert_eq!(
        verbose,
        "[+]ping ok\n[+]store ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    assert_eq!(get(&state, "/readyz/nonsense").await.0, 404);

    let (status, metrics) = get(&state, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("\nflotta_store_current_revision 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nflotta_store_ready 1\n"), "{metrics}");
    assert!(
        metrics.contains("\nflotta_controllers_leading 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nflotta_apiserver_start_time_seconds 1700000000\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn readyz_names_the_failed_store_check() {
    let state = state(Arc::new(DownStore));
    let (status, body) = get(&state, "/readyz").await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "[+]ping ok\n[-]store failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n"
    );
    assert_eq!(get(&state, "/healthz").await.0, 500);
    assert_eq!(get(&state, "/readyz/store").await.0, 500);
    // Liveness does not depend on the store: restarting would not bring it back.
    assert_eq!(get(&state, "/livez").await, (200, "ok".to_owned()));

    let (status, metrics) = get(&state, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\nflotta_store_ready 0\n"), "{metrics}");
    assert!(
        !metrics.contains("flotta_store_current_revision"),
        "no made-up revision when the store cannot tell: {metrics}"
    );
}

#[tokio::test]
async fn readyz_fails_once_shutdown_begins() {
    let state = state(Arc::new(MemoryStore::new(100)));
    assert_eq!(get(&state, "/readyz").await.0, 200);
    state.shutting_down.store(true, Ordering::SeqCst);
    let (status, body) = get(&state, "/readyz").await;
    assert_eq!(status, 500);
    assert!(body.contains("[-]shutdown failed"), "{body}");
    assert_eq!(get(&state, "/livez").await.0, 200);
}
