//! The etcd store against a real etcd (Debian's `etcd-server`, started per test on
//! 127.0.0.1): the conformance suite, plus what only a shared store shows (two stores on one
//! etcd, coordinated compaction, key prefixes, unreachable endpoints, a member losing quorum
//! in a three-member cluster, etcd's request size limit, TLS).
//!
//! Every test starts its own etcd: compaction is etcd-wide, and several checks assume that
//! nobody else writes while they run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flotta_api::store::conformance;
use flotta_api::store::{EventKind, Store, StoreError, WatchStream};
use flotta_apiserver::store::etcd::{
    ClientOptions, DEFAULT_WATCH_CAPACITY, EtcdOptions, EtcdStore,
};
use flotta_e2e::etcd::{EtcdCluster, EtcdServer};
use futures::StreamExt;

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn options(endpoints: &[String], prefix: &str, compaction_interval: Duration) -> EtcdOptions {
    EtcdOptions {
        client: ClientOptions {
            servers: endpoints.to_vec(),
            ..ClientOptions::default()
        },
        prefix: prefix.to_owned(),
        compaction_interval,
        ..EtcdOptions::default()
    }
}

/// A store on `etcd` under `prefix` without a background compactor.
async fn store(etcd: &EtcdServer, prefix: &str, history: u64) -> EtcdStore {
    EtcdStore::connect(
        &options(&[etcd.endpoint()], prefix, Duration::ZERO),
        history,
    )
    .await
    .expect("connect to etcd")
}

fn start_etcd() -> EtcdServer {
    EtcdServer::start().expect("start etcd")
}

async fn next_event(stream: &mut WatchStream) -> flotta_api::store::Event {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e:?}"),
        Ok(None) => panic!("watch ended early"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// Every check of `conformance::run_all` except `compaction`, each on a fresh prefix of
/// one etcd (the checks need an empty store, not revision 0). The compaction check assumes
/// that compaction keeps exactly `history` store events at every moment, which etcd's
/// periodic, revision-counting compaction cannot promise; `compaction_keeps_history` below
/// is its etcd counterpart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms() {
    let etcd = start_etcd();
    let n = AtomicUsize::new(0);
    let factory = async |history: u64| -> Arc<dyn Store> {
        let prefix = format!("/conformance-{}", n.fetch_add(1, Ordering::Relaxed));
        let store: Arc<dyn Store> = Arc::new(store(&etcd, &prefix, history).await);
        store
    };
    let h = conformance::HISTORY;
    conformance::empty_store(factory(h).await).await;
    conformance::create_and_get(factory(h).await).await;
    conformance::create_existing_fails(factory(h).await).await;
    conformance::update_compares_revision(factory(h).await).await;
    conformance::delete_compares_revision(factory(h).await).await;
    conformance::revisions_are_global(factory(h).await).await;
    conformance::values_round_trip(factory(h).await).await;
    conformance::list_prefix_isolation(factory(h).await).await;
    conformance::list_paging(factory(h).await).await;
    conformance::list_at_past_revisions(factory(h).await).await;
    conformance::list_future_revision(factory(h).await).await;
    conformance::watch_replays_history_then_live(factory(h).await).await;
    conformance::watch_prefix_only(factory(h).await).await;
    conformance::watch_delete_event_shape(factory(h).await).await;
    conformance::watch_from_current_revision(factory(h).await).await;
    conformance::watch_races_with_writes(factory(h).await).await;
    conformance::concurrent_writers(factory(h).await).await;
    conformance::concurrent_conflicting_writes(factory(h).await).await;
}

/// The etcd counterpart of `conformance::compaction`, with the compactor driven by the test:
/// a run keeps exactly `history` etcd revisions, older revisions answer `Compacted` for list
/// and watch, kept ones serve exact results, and the compactor's record (one revision per
/// run that compacts) counts as history too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_history() {
    const HISTORY: u64 = conformance::SMALL_HISTORY;
    let etcd = start_etcd();
    let store = store(&etcd, "/flotta", HISTORY).await;
    assert_eq!(store.compacted_revision().await.unwrap(), 0);
    assert_eq!(
        store.compact_now().await.unwrap(),
        0,
        "nothing to compact yet"
    );

    let mut snapshots = vec![store.list("/c/", "", 0, None).await.unwrap()];
    let mut rev = store.create("/c/a", b"0".to_vec()).await.unwrap();
    snapshots.push(store.list("/c/", "", 0, None).await.unwrap());
    store.create("/c/b", b"b".to_vec()).await.unwrap();
    snapshots.push(store.list("/c/", "", 0, None).await.unwrap());
    for i in 1..=HISTORY + 3 {
        rev = store
            .update("/c/a", i.to_string().into_bytes(), rev)
            .await
            .unwrap();
        snapshots.push(store.list("/c/", "", 0, None).await.unwrap());
    }
    let now = store.current_revision().await.unwrap();
    let compacted = store.compact_now().await.unwrap();
    assert_eq!(compacted, now - HISTORY);
    assert_eq!(store.compacted_revision().await.unwrap(), compacted);
    let recorded = store.current_revision().await.unwrap();
    assert_eq!(recorded, now + 1, "one write records the compaction");
    assert_eq!(
        store.compact_now().await.unwrap(),
        compacted,
        "a run with nothing new written does nothing"
    );
    assert_eq!(store.current_revision().await.unwrap(), recorded);

    for snapshot in &snapshots {
        let at = snapshot.revision;
        let got = store.list("/c/", "", 0, Some(at)).await;
        if at < compacted {
            let err = got.expect_err("list below the compacted revision");
            assert!(
                matches!(err, StoreError::Compacted { requested, compacted: c } if requested == at && c == compacted),
                "got {err:?}"
            );
        } else {
            assert_eq!(&got.expect("list at a kept revision"), snapshot);
        }
    }
    let err = store
        .watch("/c/", compacted - 1)
        .await
        .err()
        .expect("watch from before the compacted revision fails");
    assert!(
        matches!(err, StoreError::Compacted { compacted: c, .. } if c == compacted),
        "got {err:?}"
    );
    let mut stream = store.watch("/c/", compacted).await.unwrap();
    for expected in compacted + 1..=now {
        assert_eq!(next_event(&mut stream).await.revision(), expected);
    }
    let next = store.update("/c/a", b"live".to_vec(), rev).await.unwrap();
    assert_eq!(next_event(&mut stream).await.revision(), next);
    assert_eq!(store.compact_now().await.unwrap(), next - HISTORY);
    assert_eq!(store.compacted_revision().await.unwrap(), next - HISTORY);
}

/// Two replicas compacting at the same moment: one wins the record, both report its
/// revision, and etcd gets one record write, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compactions_agree() {
    let etcd = start_etcd();
    let a = store(&etcd, "/flotta", 10).await;
    let b = store(&etcd, "/flotta", 10).await;
    let mut rev = a.create("/k", b"0".to_vec()).await.unwrap();
    for round in 1..=5u64 {
        for i in 0..20 {
            rev = a.update("/k", vec![i], rev).await.unwrap();
        }
        let (from_a, from_b) = tokio::join!(a.compact_now(), b.compact_now());
        let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
        assert_eq!(from_a, rev - 10, "round {round}");
        assert_eq!(from_b, rev - 10, "round {round}");
        assert_eq!(
            a.current_revision().await.unwrap(),
            rev + 1,
            "round {round}: exactly one record write"
        );
        assert_eq!(b.compacted_revision().await.unwrap(), rev - 10);
        rev = a.get("/k").await.unwrap().unwrap().mod_revision;
    }
}

/// The background compactor runs by itself every interval, and stops with its store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compactor_compacts() {
    let etcd = start_etcd();
    let store = EtcdStore::connect(
        &options(&[etcd.endpoint()], "/flotta", Duration::from_millis(50)),
        5,
    )
    .await
    .unwrap();
    let first = store.create("/b/k", b"0".to_vec()).await.unwrap();
    let mut rev = first;
    for i in 0..20u8 {
        rev = store.update("/b/k", vec![i], rev).await.unwrap();
    }
    // Runs only write after something else was written, so once a record follows the last
    // write, the compactor is done; a run racing with the last writes may have aimed a few
    // revisions lower than `rev - 5`.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.current_revision().await.unwrap() == rev {
        assert!(Instant::now() < deadline, "the compactor never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let compacted = store.compacted_revision().await.unwrap();
    assert!(
        compacted > first && compacted <= rev - 5,
        "compacted {compacted}, first write {first}, last {rev}"
    );
    let err = store.list("/b/", "", 0, Some(first)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Compacted { requested, compacted: c } if requested == first && c == compacted),
        "got {err:?}"
    );
    assert!(matches!(
        store.watch("/b/", first).await.err(),
        Some(StoreError::Compacted { .. })
    ));
    assert_eq!(
        store
            .list("/b/", "", 0, Some(rev - 5))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

/// Two stores on one etcd (two replicas) share objects and revisions, and one's writes reach
/// the other's watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_revisions_and_watches() {
    let etcd = start_etcd();
    let a = store(&etcd, "/flotta", 1000).await;
    let b = store(&etcd, "/flotta", 1000).await;
    let start = b.current_revision().await.unwrap();
    let mut watch_b = b.watch("/registry/", start).await.unwrap();

    let created = a
        .create("/registry/x/ns/one", b"v1".to_vec())
        .await
        .unwrap();
    assert_eq!(b.current_revision().await.unwrap(), created);
    let seen = b.get("/registry/x/ns/one").await.unwrap().unwrap();
    assert_eq!(
        (seen.value.as_slice(), seen.mod_revision),
        (&b"v1"[..], created)
    );
    let event = next_event(&mut watch_b).await;
    assert_eq!((event.kind, event.revision()), (EventKind::Put, created));

    // A write from B conflicts with A's view exactly as on one store.
    let updated = b
        .update("/registry/x/ns/one", b"v2".to_vec(), created)
        .await
        .unwrap();
    let err = a
        .update("/registry/x/ns/one", b"stale".to_vec(), created)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current, .. } if current == updated),
        "got {err:?}"
    );
    let mut watch_a = a.watch("/registry/", created).await.unwrap();
    let event = next_event(&mut watch_a).await;
    assert_eq!(
        (event.revision(), event.kv.value.as_slice()),
        (updated, &b"v2"[..])
    );
    let deleted = a.delete("/registry/x/ns/one", updated).await.unwrap();
    let event = next_event(&mut watch_b).await;
    assert_eq!((event.kind, event.revision()), (EventKind::Put, updated));
    let event = next_event(&mut watch_b).await;
    assert_eq!((event.kind, event.revision()), (EventKind::Delete, deleted));
    assert_eq!(
        a.list("/registry/", "", 0, Some(updated)).await.unwrap(),
        b.list("/registry/", "", 0, Some(updated)).await.unwrap()
    );
}

/// Stores with different prefixes on one etcd (even `/fleet` and `/fleet2`) never see each
/// other's keys or events, and the compaction record is no key of either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_isolate_stores() {
    let etcd = start_etcd();
    let a = store(&etcd, "/fleet", 100).await;
    let b = store(&etcd, "/fleet2/", 100).await;
    let start = a.current_revision().await.unwrap();
    let mut watch_a = a.watch("", start).await.unwrap();
    b.create("/registry/k", b"b".to_vec()).await.unwrap();
    let mine = a.create("/registry/k", b"a".to_vec()).await.unwrap();
    assert_eq!(next_event(&mut watch_a).await.revision(), mine);
    assert_eq!(a.get("/registry/k").await.unwrap().unwrap().value, b"a");
    assert_eq!(b.get("/registry/k").await.unwrap().unwrap().value, b"b");
    a.compact_now().await.unwrap();
    let all = a.list("", "", 0, None).await.unwrap();
    let keys: Vec<&str> = all.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["/registry/k"]);
    assert!(matches!(
        a.create("registry/no-slash", Vec::new()).await,
        Err(StoreError::Backend(_))
    ));
}

/// A store keeps working when one of its endpoints is down: reads move on to the next one,
/// and writes then go there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_endpoint_is_skipped() {
    let etcd = start_etcd();
    let closed = closed_endpoint();
    let store = EtcdStore::connect(
        &options(&[closed, etcd.endpoint()], "/flotta", Duration::ZERO),
        100,
    )
    .await
    .unwrap();
    assert_eq!(store.get("/k").await.unwrap(), None);
    let rev = store.create("/k", b"v".to_vec()).await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), rev);
    store.ready().await.unwrap();
}

/// The first call a store makes is a write, and its first endpoint is down: the connection
/// is refused, so the write provably never left and is sent to the next endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_moves_on_when_the_connection_is_refused() {
    let etcd = start_etcd();
    let store = EtcdStore::connect(
        &options(
            &[closed_endpoint(), etcd.endpoint()],
            "/flotta",
            Duration::ZERO,
        ),
        100,
    )
    .await
    .unwrap();
    let rev = store
        .create("/k", b"v".to_vec())
        .await
        .expect("first write");
    let rev = store
        .update("/k", b"w".to_vec(), rev)
        .await
        .expect("second write");
    let kv = store.get("/k").await.unwrap().expect("the key exists");
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"w"[..], rev));
}

/// A member that loses quorum (the two others frozen with SIGSTOP: their sockets stay open
/// and silent, as in a partition) ends the watch it serves with a `Backend` error within a
/// few election timeouts, instead of keeping it open and silent forever. The member is then
/// skipped: once the majority is back (and the first member is frozen in turn), the
/// re-watch goes to another member at once and sees new writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_a_member_without_quorum_ends() {
    const BOUND: Duration = Duration::from_secs(15);
    let cluster = EtcdCluster::start(3).expect("start a three-member etcd cluster");
    let store = EtcdStore::connect(
        &options(&cluster.endpoints(), "/flotta", Duration::ZERO),
        1000,
    )
    .await
    .unwrap();
    let first = store.create("/registry/k", b"v1".to_vec()).await.unwrap();
    let mut watch = store.watch("/registry/", first - 1).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), first);

    let second = cluster.pause(1).unwrap();
    let third = cluster.pause(2).unwrap();
    let member = cluster.endpoint(0);
    match tokio::time::timeout(BOUND, watch.next()).await {
        Ok(Some(Err(StoreError::Backend(message)))) => assert!(
            message.contains(&member) && message.contains("no leader"),
            "{message}"
        ),
        Ok(other) => panic!("expected the watch to end with a Backend error, got {other:?}"),
        Err(_) => panic!("the watch on a member without quorum is still open after {BOUND:?}"),
    }

    let frozen_first = cluster.pause(0).unwrap();
    second.resume().unwrap();
    third.resume().unwrap();
    tokio::task::block_in_place(|| {
        cluster.wait_healthy(1)?;
        cluster.wait_healthy(2)
    })
    .expect("the majority elects a leader");
    let mut rewatch = tokio::time::timeout(BOUND, store.watch("/registry/", first))
        .await
        .expect("the re-watch skips the member that failed")
        .expect("re-watch");
    let next = store
        .update("/registry/k", b"v2".to_vec(), first)
        .await
        .unwrap();
    assert_eq!(next_event(&mut rewatch).await.revision(), next);
    frozen_first.resume().unwrap();
}

/// A value over etcd's request limit is `TooLarge`, whether etcd refuses it (over 1.5 MiB)
/// or its gRPC server does (over 2 MiB), for creates and updates alike; nothing is written
/// and the store keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_the_request_limit_are_too_large() {
    let etcd = start_etcd();
    let store = store(&etcd, "/flotta", 100).await;
    for size in [1_600_000, 2_500_000, 3 * 1024 * 1024] {
        let err = store
            .create("/registry/big", vec![b'x'; size])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::TooLarge(_)),
            "{size} bytes: {err:?}"
        );
    }
    assert_eq!(store.get("/registry/big").await.unwrap(), None);
    let rev = store
        .create("/registry/big", vec![b'x'; 1_000_000])
        .await
        .unwrap();
    let err = store
        .update("/registry/big", vec![b'y'; 1_600_000], rev)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge(_)), "{err:?}");
    let kv = store.get("/registry/big").await.unwrap().unwrap();
    assert_eq!((kv.value.len(), kv.mod_revision), (1_000_000, rev));
}

/// Nothing listens: every call fails with a `Backend` error naming the endpoint, quickly,
/// and the store is not ready.
#[tokio::test]
async fn an_unreachable_etcd_fails_fast() {
    let endpoint = closed_endpoint();
    let store = EtcdStore::connect(
        &options(std::slice::from_ref(&endpoint), "/flotta", Duration::ZERO),
        100,
    )
    .await
    .expect("connecting is lazy");
    let started = Instant::now();
    let err = store.ready().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains(&endpoint)),
        "got {err:?}"
    );
    for result in [
        store.get("/k").await.map(|_| ()),
        store.create("/k", Vec::new()).await.map(|_| ()),
        store.list("/", "", 0, None).await.map(|_| ()),
        store.watch("/", 0).await.map(|_| ()),
        store.current_revision().await.map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.starts_with(&format!("etcd {endpoint}"))),
            "got {err:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failing took {:?}",
        started.elapsed()
    );
}

/// A watcher that stops reading is dropped once its buffer is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_dropped() {
    let etcd = start_etcd();
    let store = EtcdStore::connect(
        &EtcdOptions {
            watch_capacity: 16,
            ..options(&[etcd.endpoint()], "/flotta", Duration::ZERO)
        },
        conformance::HISTORY,
    )
    .await
    .unwrap();
    conformance::slow_watcher_is_dropped(Arc::new(store), 100).await;
}

/// With the default options, a watcher that stops reading is dropped once
/// [`DEFAULT_WATCH_CAPACITY`] (4,096) events are waiting, which bounds what it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_holds_a_bounded_number_of_events() {
    assert_eq!(DEFAULT_WATCH_CAPACITY, 4_096);
    let etcd = start_etcd();
    let store = store(&etcd, "/flotta", conformance::HISTORY).await;
    conformance::slow_watcher_is_dropped(Arc::new(store), DEFAULT_WATCH_CAPACITY + 100).await;
}

/// `--store etcd` through `store::open`, the way the server opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_through_store_options() {
    use flotta_apiserver::store::{StoreKind, StoreOptions, open};
    let etcd = start_etcd();
    let store = open(&StoreOptions {
        kind: StoreKind::Etcd(options(&[etcd.endpoint()], "/flotta", Duration::ZERO)),
        data_dir: "/nonexistent/unused".into(),
        history: 100,
    })
    .await
    .unwrap();
    store.ready().await.unwrap();
    let rev = store.create("/registry/k", b"v".to_vec()).await.unwrap();
    assert_eq!(
        store
            .get("/registry/k")
            .await
            .unwrap()
            .unwrap()
            .mod_revision,
        rev
    );
}

/// https endpoints with a CA and a client certificate (etcd requiring client certificates);
/// without the client certificate etcd refuses the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let cert_path = dir.path().join(format!("{name}.pem"));
        let key_path = dir.path().join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    };
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let (server_cert, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    );
    let (client_cert, client_key) = leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, "client");
    let etcd = EtcdServer::start_tls(&flotta_e2e::etcd::EtcdTls {
        ca_file: ca_file.clone(),
        cert_file: server_cert,
        key_file: server_key,
    })
    .expect("start etcd with TLS");
    assert!(etcd.endpoint().starts_with("https://"));

    let mut opts = options(&[etcd.endpoint()], "/flotta", Duration::ZERO);
    opts.client.ca_file = Some(ca_file);
    opts.client.cert_file = Some(client_cert);
    opts.client.key_file = Some(client_key);
    let store = EtcdStore::connect(&opts, 100).await.unwrap();
    store.ready().await.unwrap();
    let rev = store.create("/registry/k", b"v".to_vec()).await.unwrap();
    let mut watch = store.watch("/registry/", rev - 1).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), rev);

    opts.client.cert_file = None;
    opts.client.key_file = None;
    let anonymous = EtcdStore::connect(&opts, 100).await.unwrap();
    assert!(matches!(
        anonymous.get("/registry/k").await,
        Err(StoreError::Backend(_))
    ));
}

/// Throughput against the local etcd: 16 writers × 1,000 creates of 1 KiB values.
/// Run with `cargo test --release -p flotta-apiserver --test store_etcd -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run in release mode"]
async fn measure_concurrent_creates() {
    const WRITERS: usize = 16;
    const EACH: usize = 1000;
    let etcd = start_etcd();
    let store = Arc::new(store(&etcd, "/flotta", 100_000).await);
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..EACH {
                    let key = format!("/registry/bench/items/ns{t}/item-{i:05}");
                    store.create(&key, vec![b'x'; 1024]).await.expect("create");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    let elapsed = started.elapsed();
    let total = WRITERS * EACH;
    println!(
        "{total} creates from {WRITERS} writers on etcd in {elapsed:.2?}: {:.0} creates/s",
        total as f64 / elapsed.as_secs_f64()
    );
    let listed = store.list("/registry/bench/", "", 0, None).await.unwrap();
    assert_eq!(listed.items.len(), total);
}

/// A loopback URL on which nothing listens.
fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}
