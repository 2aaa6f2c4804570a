//! The in-memory store, opened the way the server opens it (`--store memory`), against the
//! conformance suite. (flotta-api runs the same suite inline when built with "testing".)

use std::path::PathBuf;

use flotta_api::store::conformance;
use flotta_apiserver::store::{StoreKind, StoreOptions, open};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms() {
    conformance::run_all(|history| async move {
        open(&StoreOptions {
            kind: StoreKind::Memory,
            data_dir: PathBuf::from("/nonexistent/unused"),
            history,
        })
        .await
        .expect("open the memory store")
    })
    .await;
}
