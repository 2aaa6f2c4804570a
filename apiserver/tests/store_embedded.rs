//! The embedded (redb) store: the conformance suite, plus what only a file store can do
//! (reopen, durability, retention across restarts) and a throughput measurement.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flotta_api::store::conformance;
use flotta_api::store::{EventKind, Store, StoreError};
use flotta_apiserver::store::embedded::{EmbeddedStore, WATCH_CHUNK};
use flotta_apiserver::store::{EMBEDDED_FILE, StoreKind, StoreOptions, open};
use futures::StreamExt;

fn embedded(path: &Path, history: u64) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(path, history).expect("open the store"))
}

/// Creates `count` keys `<prefix><n>` from 16 concurrent tasks; returns their revisions.
async fn fill(store: &Arc<dyn Store>, prefix: &str, count: usize) -> Vec<u64> {
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = Arc::clone(store);
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in (t..count).step_by(16) {
                    let key = format!("{prefix}{i:06}");
                    revisions.push(store.create(&key, vec![1; 100]).await.expect("create"));
                }
                revisions
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.extend(task.await.expect("writer task"));
    }
    revisions.sort_unstable();
    revisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = AtomicUsize::new(0);
    conformance::run_all(|history| {
        let path = dir
            .path()
            .join(format!("store-{}.redb", n.fetch_add(1, Ordering::Relaxed)));
        async move { embedded(&path, history) }
    })
    .await;
}

#[tokio::test]
async fn slow_watcher_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open_with_watch_capacity(
        dir.path().join("s.redb"),
        conformance::HISTORY,
        16,
    )
    .expect("open");
    conformance::slow_watcher_is_dropped(Arc::new(store), 100).await;
}

#[tokio::test]
async fn reopen_keeps_data_revision_and_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(EMBEDDED_FILE);
    let store = embedded(&path, 100);
    let a = store.create("/r/a", b"a1".to_vec()).await.unwrap();
    let b = store.create("/r/b", b"b1".to_vec()).await.unwrap();
    let a2 = store.update("/r/a", b"a2".to_vec(), a).await.unwrap();
    let before = store.list("/r/", "", 0, None).await.unwrap();
    let gone = store.delete("/r/b", b).await.unwrap();
    drop(store);

    let store = embedded(&path, 100);
    assert_eq!(store.current_revision().await.unwrap(), gone);
    assert_eq!(store.get("/r/b").await.unwrap(), None);
    let a_now = store.get("/r/a").await.unwrap().unwrap();
    assert_eq!(
        (
            a_now.value.as_slice(),
            a_now.create_revision,
            a_now.mod_revision
        ),
        (&b"a2"[..], a, a2)
    );
    assert_eq!(
        store
            .list("/r/", "", 0, Some(before.revision))
            .await
            .unwrap(),
        before,
        "the change log survives a restart"
    );
    let mut replay = store.watch("/r/", a2).await.unwrap();
    let event = replay.next().await.unwrap().unwrap();
    assert_eq!((event.kind, event.revision()), (EventKind::Delete, gone));
    let next = store.create("/r/c", b"c".to_vec()).await.unwrap();
    assert_eq!(
        next,
        gone + 1,
        "the revision counter continues after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(EMBEDDED_FILE);
    let store = embedded(&path, 1000);
    let revisions = fill(&store, "/ack/", 300).await;
    let last = *revisions.last().unwrap();
    drop(store);

    let store = embedded(&path, 1000);
    assert_eq!(store.current_revision().await.unwrap(), last);
    let listed = store.list("/ack/", "", 0, None).await.unwrap();
    assert_eq!(listed.items.len(), 300);
    let mut seen: Vec<u64> = listed.items.iter().map(|i| i.mod_revision).collect();
    seen.sort_unstable();
    assert_eq!(seen, revisions);
}

#[tokio::test]
async fn reopening_with_less_history_compacts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(EMBEDDED_FILE);
    let store = embedded(&path, 100);
    let mut rev = store.create("/h/k", b"0".to_vec()).await.unwrap();
    for i in 1..20 {
        rev = store
            .update("/h/k", i.to_string().into_bytes(), rev)
            .await
            .unwrap();
    }
    assert_eq!(store.compacted_revision().await.unwrap(), 0);
    drop(store);

    let store = embedded(&path, 5);
    assert_eq!(store.compacted_revision().await.unwrap(), rev - 5);
    assert!(matches!(
        store.watch("/h/", rev - 6).await.err(),
        Some(StoreError::Compacted { .. })
    ));
    let mut stream = store.watch("/h/", rev - 5).await.unwrap();
    for expected in rev - 4..=rev {
        assert_eq!(stream.next().await.unwrap().unwrap().revision(), expected);
    }
    drop(stream);
    drop(store);

    // The compaction itself was committed.
    let store = embedded(&path, 100);
    assert_eq!(store.compacted_revision().await.unwrap(), rev - 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_catches_up_across_log_chunks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = embedded(&dir.path().join(EMBEDDED_FILE), 10_000);
    let count = 2 * WATCH_CHUNK + 100;
    let revisions = fill(&store, "/big/", count).await;
    store.create("/other/x", b"x".to_vec()).await.unwrap();
    let mut stream = store.watch("/big/", 0).await.unwrap();
    for expected in &revisions {
        let event = stream.next().await.unwrap().unwrap();
        assert_eq!(event.revision(), *expected);
    }
    let live = store.create("/big/live", b"l".to_vec()).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap().revision(), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_watcher_overtaken_by_compaction_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let history = (2 * WATCH_CHUNK) as u64;
    let store = embedded(&dir.path().join(EMBEDDED_FILE), history);
    fill(&store, "/a/", 2 * WATCH_CHUNK).await;
    // The first chunk is read when the watch starts; the rest is compacted before the
    // stream gets to it.
    let mut stream = store.watch("/a/", 0).await.unwrap();
    fill(&store, "/b/", 2 * WATCH_CHUNK).await;
    let mut delivered = 0;
    let end = loop {
        match stream.next().await {
            Some(Ok(_)) => delivered += 1,
            other => break other,
        }
    };
    assert_eq!(delivered, WATCH_CHUNK);
    assert!(
        matches!(end, Some(Err(StoreError::Compacted { .. }))),
        "got {end:?}"
    );
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn open_creates_the_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("nested").join("data");
    let opts = StoreOptions {
        kind: StoreKind::Embedded,
        data_dir: data_dir.clone(),
        history: 10,
    };
    let store = open(&opts).await.expect("open embedded");
    store.ready().await.unwrap();
    let rev = store.create("/k", b"v".to_vec()).await.unwrap();
    drop(store);
    assert!(data_dir.join(EMBEDDED_FILE).is_file());
    let store = open(&opts).await.expect("reopen embedded");
    assert_eq!(store.get("/k").await.unwrap().unwrap().mod_revision, rev);

    let memory = open(&StoreOptions {
        kind: StoreKind::Memory,
        data_dir: dir.path().join("unused"),
        history: 10,
    })
    .await
    .expect("open memory");
    assert_eq!(memory.current_revision().await.unwrap(), 0);
    assert!(!dir.path().join("unused").exists());
}

#[tokio::test]
async fn a_locked_file_fails_to_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(EMBEDDED_FILE);
    let _first = EmbeddedStore::open(&path, 10).unwrap();
    let second = EmbeddedStore::open(&path, 10);
    assert!(matches!(second, Err(StoreError::Backend(_))));
}

/// Throughput with every write durable: 16 writers × 1,000 creates of 1 KiB values.
/// Run with `cargo test --release -p flotta-apiserver --test store_embedded -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run in release mode"]
async fn measure_concurrent_creates() {
    const WRITERS: usize = 16;
    const EACH: usize = 1000;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = embedded(&dir.path().join(EMBEDDED_FILE), 100_000);
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                for i in 0..EACH {
                    let key = format!("/registry/bench/items/ns{t}/item-{i:05}");
                    let begun = Instant::now();
                    store.create(&key, vec![b'x'; 1024]).await.expect("create");
                    slowest = slowest.max(begun.elapsed());
                }
                slowest
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.expect("writer"));
    }
    let elapsed = started.elapsed();
    let total = WRITERS * EACH;
    println!(
        "{total} durable creates from {WRITERS} writers in {elapsed:.2?}: {:.0} creates/s, slowest {slowest:.2?}",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(store.current_revision().await.unwrap(), total as u64);
}
