//! The store conformance suite: behaviour every [`Store`] backend must show.
//!
//! Each check is a public async function that panics (like a test) when the backend
//! misbehaves. Most take a fresh, empty store with room for at least [`HISTORY`] events; the
//! compaction checks take one created with exactly [`SMALL_HISTORY`]. [`run_all`] runs every
//! check, asking its factory for a new store each time:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     flotta_api::store::conformance::run_all(|history| async move {
//!         Arc::new(MemoryStore::new(history)) as Arc<dyn Store>
//!     })
//!     .await;
//! }
//! ```
//!
//! Limits: the suite assumes nobody else writes to the store while a check runs, and that a
//! store keeps exactly its configured number of events (compacted = current − history once
//! the log is full). Watcher lag depends on a backend's buffer size, so
//! [`slow_watcher_is_dropped`] is not part of [`run_all`]; call it with a store built with
//! a small watch buffer.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{Event, EventKind, KeyValue, ListResult, Revision, Store, StoreError, WatchStream};

/// The history size the general checks need at least.
pub const HISTORY: u64 = 10_000;

/// The exact history size the compaction checks expect.
pub const SMALL_HISTORY: u64 = 4;

/// How long a check waits for an expected watch event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs every check in this module. `factory(history)` must return a fresh, empty store
/// that keeps `history` change events.
pub async fn run_all<F, Fut>(factory: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    empty_store(factory(HISTORY).await).await;
    create_and_get(factory(HISTORY).await).await;
    create_existing_fails(factory(HISTORY).await).await;
    update_compares_revision(factory(HISTORY).await).await;
    delete_compares_revision(factory(HISTORY).await).await;
    revisions_are_global(factory(HISTORY).await).await;
    values_round_trip(factory(HISTORY).await).await;
    list_prefix_isolation(factory(HISTORY).await).await;
    list_paging(factory(HISTORY).await).await;
    list_at_past_revisions(factory(HISTORY).await).await;
    list_future_revision(factory(HISTORY).await).await;
    watch_replays_history_then_live(factory(HISTORY).await).await;
    watch_prefix_only(factory(HISTORY).await).await;
    watch_delete_event_shape(factory(HISTORY).await).await;
    watch_from_current_revision(factory(HISTORY).await).await;
    watch_races_with_writes(factory(HISTORY).await).await;
    concurrent_writers(factory(HISTORY).await).await;
    concurrent_conflicting_writes(factory(HISTORY).await).await;
    compaction(factory(SMALL_HISTORY).await).await;
}

/// A fresh store is ready, empty, and watchable from its current revision.
pub async fn empty_store(store: Arc<dyn Store>) {
    store.ready().await.expect("a fresh store is ready");
    let current = store.current_revision().await.expect("current revision");
    let compacted = store
        .compacted_revision()
        .await
        .expect("compacted revision");
    assert!(
        compacted <= current,
        "compacted {compacted} > current {current}"
    );
    assert_eq!(store.get("/k").await.expect("get"), None);
    let all = store.list("", "", 0, None).await.expect("list");
    assert_eq!(all.items, vec![]);
    assert_eq!(all.revision, current);
    assert!(!all.more);
    let _stream = store.watch("", current).await.expect("watch from current");
}

/// `create` assigns a new revision that `get` and `current_revision` report.
pub async fn create_and_get(store: Arc<dyn Store>) {
    let before = current(&store).await;
    let rev = store.create("/t/a", b"one".to_vec()).await.expect("create");
    assert!(rev > before, "create returned {rev}, not above {before}");
    assert_eq!(current(&store).await, rev);
    assert_eq!(
        store.get("/t/a").await.expect("get"),
        Some(kv("/t/a", b"one", rev, rev))
    );
    assert_eq!(store.get("/t/b").await.expect("get"), None);
    assert_eq!(
        store.get("/t/").await.expect("get"),
        None,
        "a prefix is not a key"
    );
    assert_eq!(store.get("/t/a/").await.expect("get"), None);
}

/// `create` on an existing key fails and changes nothing.
pub async fn create_existing_fails(store: Arc<dyn Store>) {
    let rev = store.create("/t/a", b"one".to_vec()).await.expect("create");
    let err = store
        .create("/t/a", b"two".to_vec())
        .await
        .expect_err("second create");
    assert!(
        matches!(&err, StoreError::AlreadyExists(k) if k == "/t/a"),
        "got {err:?}"
    );
    assert_eq!(
        current(&store).await,
        rev,
        "a failed create bumped the revision"
    );
    assert_eq!(
        store.get("/t/a").await.expect("get"),
        Some(kv("/t/a", b"one", rev, rev))
    );
}

/// `update` succeeds only on the expected revision and keeps the create revision.
pub async fn update_compares_revision(store: Arc<dyn Store>) {
    let r1 = store.create("/t/a", b"v1".to_vec()).await.expect("create");
    let r2 = store
        .update("/t/a", b"v2".to_vec(), r1)
        .await
        .expect("update at the right revision");
    assert!(r2 > r1);
    assert_eq!(
        store.get("/t/a").await.expect("get"),
        Some(kv("/t/a", b"v2", r1, r2))
    );

    let err = store
        .update("/t/a", b"v3".to_vec(), r1)
        .await
        .expect_err("update at a stale revision");
    assert!(
        matches!(&err, StoreError::Conflict { key, current } if key == "/t/a" && *current == r2),
        "got {err:?}"
    );
    let err = store
        .update("/t/a", b"v3".to_vec(), r2 + 100)
        .await
        .expect_err("update at a future revision");
    assert!(matches!(err, StoreError::Conflict { current, .. } if current == r2));
    assert_eq!(
        current(&store).await,
        r2,
        "a failed update bumped the revision"
    );
    assert_eq!(
        store.get("/t/a").await.expect("get"),
        Some(kv("/t/a", b"v2", r1, r2))
    );

    let err = store
        .update("/t/missing", b"x".to_vec(), r2)
        .await
        .expect_err("update of a missing key");
    assert!(
        matches!(&err, StoreError::NotFound(k) if k == "/t/missing"),
        "got {err:?}"
    );
    assert_eq!(store.get("/t/missing").await.expect("get"), None);

    let r3 = store
        .update("/t/a", b"v3".to_vec(), r2)
        .await
        .expect("second update");
    assert!(r3 > r2);
    assert_eq!(
        store.get("/t/a").await.expect("get"),
        Some(kv("/t/a", b"v3", r1, r3))
    );
}

/// `delete` succeeds only on the expected revision; a re-created key starts afresh.
pub async fn delete_compares_revision(store: Arc<dyn Store>) {
    let r1 = store.create("/t/a", b"v1".to_vec()).await.expect("create");
    let err = store
        .delete("/t/a", r1 + 1)
        .await
        .expect_err("delete at a wrong revision");
    assert!(
        matches!(&err, StoreError::Conflict { key, current } if key == "/t/a" && *current == r1),
        "got {err:?}"
    );
    let err = store
        .delete("/t/missing", r1)
        .await
        .expect_err("delete of a missing key");
    assert!(matches!(&err, StoreError::NotFound(k) if k == "/t/missing"));
    assert_eq!(
        current(&store).await,
        r1,
        "a failed delete bumped the revision"
    );

    let r2 = store.delete("/t/a", r1).await.expect("delete");
    assert!(r2 > r1);
    assert_eq!(current(&store).await, r2);
    assert_eq!(store.get("/t/a").await.expect("get"), None);
    let err = store.delete("/t/a", r1).await.expect_err("second delete");
    assert!(matches!(err, StoreError::NotFound(_)), "got {err:?}");
    let err = store
        .update("/t/a", b"x".to_vec(), r1)
        .await
        .expect_err("update after delete");
    assert!(matches!(err, StoreError::NotFound(_)), "got {err:?}");

    let r3 = store
        .create("/t/a", b"again".to_vec())
        .await
        .expect("re-create");
    assert!(r3 > r2);
    assert_eq!(
        store.get("/t/a").await.expect("get"),
        Some(kv("/t/a", b"again", r3, r3))
    );
}

/// Writes to different keys share one strictly increasing revision sequence.
pub async fn revisions_are_global(store: Arc<dyn Store>) {
    let mut last = current(&store).await;
    let mut next = |rev: Revision| {
        assert!(rev > last, "revision {rev} not above {last}");
        last = rev;
        rev
    };
    let a = next(store.create("/g/a", b"1".to_vec()).await.expect("create a"));
    let b = next(store.create("/g/b", b"1".to_vec()).await.expect("create b"));
    let a = next(
        store
            .update("/g/a", b"2".to_vec(), a)
            .await
            .expect("update a"),
    );
    next(store.delete("/g/b", b).await.expect("delete b"));
    next(
        store
            .create("/other/c", b"1".to_vec())
            .await
            .expect("create c"),
    );
    let a = next(
        store
            .update("/g/a", b"3".to_vec(), a)
            .await
            .expect("update a"),
    );
    assert_eq!(current(&store).await, a);
    let listed = store.list("", "", 0, None).await.expect("list");
    assert_eq!(listed.revision, a);
    let mod_revisions: BTreeSet<Revision> = listed.items.iter().map(|i| i.mod_revision).collect();
    assert_eq!(mod_revisions.len(), listed.items.len());
}

/// Values come back byte for byte: empty, binary, large; keys may be any UTF-8.
pub async fn values_round_trip(store: Arc<dyn Store>) {
    let binary: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let cases: [(&str, Vec<u8>); 4] = [
        ("/v/empty", Vec::new()),
        ("/v/binary", binary),
        ("/v/large", large),
        ("/v/ünïcödé ключ", b"text".to_vec()),
    ];
    for (key, value) in &cases {
        let rev = store.create(key, value.clone()).await.expect("create");
        let got = store.get(key).await.expect("get").expect("present");
        assert_eq!(&got.value, value, "value of {key} changed");
        assert_eq!(got.mod_revision, rev);
    }
    let listed = store.list("/v/", "", 0, None).await.expect("list");
    assert_eq!(listed.items.len(), cases.len());
}

/// A prefix matches only keys that start with it; results are in key order.
pub async fn list_prefix_isolation(store: Arc<dyn Store>) {
    let keys = ["/a/2", "/ab/1", "/a/1", "/b/1", "/a", "/a/2/x", "/a0"];
    for key in keys {
        store
            .create(key, key.as_bytes().to_vec())
            .await
            .expect("create");
    }
    let rev = current(&store).await;
    assert_eq!(list_keys(&store, "/a/").await, ["/a/1", "/a/2", "/a/2/x"]);
    assert_eq!(list_keys(&store, "/ab/").await, ["/ab/1"]);
    assert_eq!(list_keys(&store, "/c/").await, Vec::<String>::new());
    let mut sorted = keys.map(str::to_owned).to_vec();
    sorted.sort();
    assert_eq!(list_keys(&store, "").await, sorted);

    let listed = store.list("/a/", "", 0, None).await.expect("list");
    assert_eq!(listed.revision, rev);
    assert!(!listed.more);
    for item in &listed.items {
        assert_eq!(
            Some(item),
            store.get(&item.key).await.expect("get").as_ref(),
            "list and get disagree"
        );
    }
}

/// `start` and `limit` page through a prefix; `more` says whether keys follow; pages read
/// at the first page's revision stay one snapshot while writes go on.
pub async fn list_paging(store: Arc<dyn Store>) {
    for i in 0..10 {
        store
            .create(&format!("/p/{i:02}"), vec![i])
            .await
            .expect("create");
    }
    store.create("/q/x", b"x".to_vec()).await.expect("create");
    store.create("/o/x", b"x".to_vec()).await.expect("create");
    let all = store.list("/p/", "", 0, None).await.expect("list");
    assert_eq!(all.items.len(), 10);
    assert!(!all.more);

    for limit in 1..=11 {
        let (items, mores) = list_pages(&store, "/p/", limit, None).await;
        assert_eq!(items, all.items, "pages of {limit} differ from one list");
        let (last, earlier) = mores.split_last().expect("at least one page");
        assert!(!last, "last page of {limit} says more");
        assert!(
            earlier.iter().all(|m| *m),
            "an early page of {limit} says no more"
        );
    }
    let exact = store.list("/p/", "", 10, None).await.expect("list");
    assert!(!exact.more, "limit == count must not say more");
    let short = store.list("/p/", "", 9, None).await.expect("list");
    assert!(short.more);
    assert_eq!(short.items.len(), 9);

    let from = store.list("/p/", "/p/05", 0, None).await.expect("list");
    assert_eq!(from.items, all.items[5..], "start is inclusive");
    let between = store.list("/p/", "/p/05\0", 2, None).await.expect("list");
    assert_eq!(between.items, all.items[6..8]);
    assert!(between.more);
    let past = store.list("/p/", "/p/zz", 0, None).await.expect("list");
    assert_eq!(past.items, vec![]);
    assert!(!past.more);
    let before = store.list("/p/", "/a", 0, None).await.expect("list");
    assert_eq!(
        before.items, all.items,
        "a start before the prefix is the prefix"
    );

    // Writes between pages do not show in a list pinned to the first page's revision.
    let first = store.list("/p/", "", 4, None).await.expect("first page");
    store
        .create("/p/045", b"new".to_vec())
        .await
        .expect("create");
    let rev_08 = all.items[8].mod_revision;
    store.delete("/p/08", rev_08).await.expect("delete");
    let rev_06 = all.items[6].mod_revision;
    store
        .update("/p/06", b"changed".to_vec(), rev_06)
        .await
        .expect("update");
    let start = format!("{}\0", first.items[3].key);
    let rest = store
        .list("/p/", &start, 0, Some(first.revision))
        .await
        .expect("second page at the first page's revision");
    assert_eq!(rest.revision, first.revision);
    let mut joined = first.items;
    joined.extend(rest.items);
    assert_eq!(joined, all.items);
}

/// A list at a past revision returns exactly the state at that revision, with paging.
pub async fn list_at_past_revisions(store: Arc<dyn Store>) {
    let r0 = current(&store).await;
    let mut snapshots: Vec<ListResult> = vec![store.list("/h/", "", 0, None).await.expect("list")];
    let mut record = async |store: &Arc<dyn Store>| {
        snapshots.push(store.list("/h/", "", 0, None).await.expect("list"));
    };

    let a = store.create("/h/a", b"a1".to_vec()).await.expect("create");
    record(&store).await;
    let b = store.create("/h/b", b"b1".to_vec()).await.expect("create");
    let c = store.create("/h/c", b"c1".to_vec()).await.expect("create");
    store.create("/i/x", b"x".to_vec()).await.expect("create");
    record(&store).await;
    store
        .update("/h/b", b"b2".to_vec(), b)
        .await
        .expect("update");
    record(&store).await;
    store.delete("/h/a", a).await.expect("delete");
    record(&store).await;
    let d = store.create("/h/d", b"d1".to_vec()).await.expect("create");
    let c = store
        .update("/h/c", b"c2".to_vec(), c)
        .await
        .expect("update");
    record(&store).await;
    store
        .update("/h/c", b"c3".to_vec(), c)
        .await
        .expect("update");
    store.delete("/h/d", d).await.expect("delete");
    record(&store).await;
    store
        .create("/h/a", b"a2".to_vec())
        .await
        .expect("re-create");
    store
        .create("/h/0", b"first".to_vec())
        .await
        .expect("create");
    record(&store).await;

    assert_eq!(snapshots[0].revision, r0);
    for snapshot in &snapshots {
        let at = snapshot.revision;
        let got = store
            .list("/h/", "", 0, Some(at))
            .await
            .expect("list at a past revision");
        assert_eq!(&got, snapshot, "state at revision {at}");
        for limit in 1..=3 {
            let (items, mores) = list_pages(&store, "/h/", limit, Some(at)).await;
            assert_eq!(items, snapshot.items, "pages of {limit} at revision {at}");
            assert!(!mores.last().copied().unwrap_or(false));
        }
        let from_b = store
            .list("/h/", "/h/b", 0, Some(at))
            .await
            .expect("list from /h/b");
        let expected: Vec<KeyValue> = snapshot
            .items
            .iter()
            .filter(|i| i.key.as_str() >= "/h/b")
            .cloned()
            .collect();
        assert_eq!(from_b.items, expected, "start at revision {at}");
    }

    // Every revision in between, not just the recorded ones, is readable and consistent.
    let now = current(&store).await;
    for at in r0..=now {
        let got = store.list("", "", 0, Some(at)).await.expect("list");
        assert_eq!(got.revision, at);
        assert!(
            got.items
                .iter()
                .all(|i| i.mod_revision <= at && i.create_revision <= at)
        );
    }
    assert_eq!(
        store.list("/h/", "", 0, Some(now)).await.expect("list"),
        store.list("/h/", "", 0, None).await.expect("list")
    );
}

/// A revision above the current one fails with `FutureRevision`.
pub async fn list_future_revision(store: Arc<dyn Store>) {
    store.create("/f/a", b"a".to_vec()).await.expect("create");
    let now = current(&store).await;
    let err = store
        .list("/f/", "", 0, Some(now + 1))
        .await
        .expect_err("list in the future");
    assert!(
        matches!(err, StoreError::FutureRevision { requested, current } if requested == now + 1 && current == now),
        "got {err:?}"
    );
}

/// A watch from a revision replays later history in order, then streams live changes.
pub async fn watch_replays_history_then_live(store: Arc<dyn Store>) {
    let r0 = current(&store).await;
    let r1 = store.create("/w/a", b"a1".to_vec()).await.expect("create");
    let r2 = store
        .update("/w/a", b"a2".to_vec(), r1)
        .await
        .expect("update");
    let r3 = store.create("/w/b", b"b1".to_vec()).await.expect("create");
    let r4 = store.delete("/w/a", r2).await.expect("delete");
    let history = [
        put(kv("/w/a", b"a1", r1, r1), None),
        put(kv("/w/a", b"a2", r1, r2), Some(kv("/w/a", b"a1", r1, r1))),
        put(kv("/w/b", b"b1", r3, r3), None),
        delete(kv("/w/a", b"a2", r1, r4), kv("/w/a", b"a2", r1, r2)),
    ];

    let mut from_start = store.watch("/w/", r0).await.expect("watch");
    let mut from_middle = store.watch("/w/", r2).await.expect("watch");
    for expected in &history {
        assert_eq!(&next_event(&mut from_start).await, expected);
    }
    for expected in &history[2..] {
        assert_eq!(&next_event(&mut from_middle).await, expected);
    }

    let r5 = store
        .update("/w/b", b"b2".to_vec(), r3)
        .await
        .expect("update");
    let r6 = store.create("/w/c", b"c1".to_vec()).await.expect("create");
    let live = [
        put(kv("/w/b", b"b2", r3, r5), Some(kv("/w/b", b"b1", r3, r3))),
        put(kv("/w/c", b"c1", r6, r6), None),
    ];
    for expected in &live {
        assert_eq!(&next_event(&mut from_start).await, expected);
        assert_eq!(&next_event(&mut from_middle).await, expected);
    }
    for (event, rev) in history.iter().chain(&live).zip([r1, r2, r3, r4, r5, r6]) {
        assert_eq!(event.revision(), rev);
    }
}

/// A watch sees only keys under its prefix, in history and live.
pub async fn watch_prefix_only(store: Arc<dyn Store>) {
    let r0 = current(&store).await;
    let mut live = store.watch("/x/", r0).await.expect("watch");
    for key in ["/xy/1", "/y/1", "/x", "/w/x/1"] {
        store.create(key, b"no".to_vec()).await.expect("create");
    }
    let rev = store.create("/x/1", b"yes".to_vec()).await.expect("create");
    let wanted = put(kv("/x/1", b"yes", rev, rev), None);
    assert_eq!(next_event(&mut live).await, wanted, "live");
    let mut replay = store.watch("/x/", r0).await.expect("watch");
    assert_eq!(next_event(&mut replay).await, wanted, "replay");

    let mut everything = store.watch("", r0).await.expect("watch");
    for _ in 0..5 {
        next_event(&mut everything).await;
    }
    let other = store.create("/zz", b"z".to_vec()).await.expect("create");
    assert_eq!(next_event(&mut everything).await.revision(), other);
}

/// A delete event carries the last value at the delete's revision, and the last KeyValue
/// as `prev`, whether replayed or live.
pub async fn watch_delete_event_shape(store: Arc<dyn Store>) {
    let r1 = store.create("/d/k", b"v1".to_vec()).await.expect("create");
    let r2 = store
        .update("/d/k", b"v2".to_vec(), r1)
        .await
        .expect("update");
    let mut live = store.watch("/d/", r2).await.expect("watch");
    let r3 = store.delete("/d/k", r2).await.expect("delete");
    let expected = Event {
        kind: EventKind::Delete,
        kv: kv("/d/k", b"v2", r1, r3),
        prev: Some(kv("/d/k", b"v2", r1, r2)),
    };
    let got = next_event(&mut live).await;
    assert_eq!(got, expected, "live delete");
    assert_eq!(got.revision(), r3);
    let mut replay = store.watch("/d/", r2).await.expect("watch");
    assert_eq!(next_event(&mut replay).await, expected, "replayed delete");
}

/// A watch from the current revision starts with the next write.
pub async fn watch_from_current_revision(store: Arc<dyn Store>) {
    for i in 0..5 {
        store
            .create(&format!("/n/{i}"), b"old".to_vec())
            .await
            .expect("create");
    }
    let now = current(&store).await;
    let mut stream = store.watch("/n/", now).await.expect("watch");
    let rev = store
        .create("/n/new", b"new".to_vec())
        .await
        .expect("create");
    assert_eq!(
        next_event(&mut stream).await,
        put(kv("/n/new", b"new", rev, rev), None)
    );
}

/// Watches opened while writes are in flight see every later write exactly once, in order.
pub async fn watch_races_with_writes(store: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const EACH: usize = 60;
    const MAX_WATCHERS: usize = 1000;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut revisions = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    let key = format!("/r/{w}/{}", i % 5);
                    let value = format!("{w}-{i}").into_bytes();
                    let rev = match store.get(&key).await.expect("get") {
                        Some(old) => store
                            .update(&key, value, old.mod_revision)
                            .await
                            .expect("update"),
                        None => store.create(&key, value).await.expect("create"),
                    };
                    revisions.push(rev);
                }
                revisions
            })
        })
        .collect();

    // Open watchers back to back for as long as the writers run, some from the current
    // revision (all live) and some from a little earlier (history, then live).
    let mut watchers = Vec::new();
    while watchers.len() < MAX_WATCHERS && !writers.iter().all(|w| w.is_finished()) {
        let now = current(&store).await;
        let after = now.saturating_sub((watchers.len() % 3) as Revision);
        let stream = store.watch("/r/", after).await.expect("watch");
        watchers.push((after, stream));
        tokio::task::yield_now().await;
    }
    let mut revisions = Vec::new();
    for writer in writers {
        revisions.extend(writer.await.expect("writer task"));
    }
    revisions.sort_unstable();
    let last = *revisions.last().expect("writes happened");
    for (after, mut stream) in watchers {
        let expected: Vec<Revision> = revisions.iter().copied().filter(|r| *r > after).collect();
        let mut seen = Vec::new();
        while !expected.is_empty() && seen.last().is_none_or(|r| *r < last) {
            let event = next_event(&mut stream).await;
            assert!(event.kv.key.starts_with("/r/"));
            seen.push(event.revision());
        }
        assert_eq!(
            seen, expected,
            "watch after {after} missed or repeated events"
        );
    }
}

/// Sixteen writers creating at once: every write gets its own revision and is readable.
pub async fn concurrent_writers(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    const EACH: usize = 50;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let key = format!("/cw/{t:02}/{i:03}");
                let value = format!("{t}-{i}").into_bytes();
                let rev = store.create(&key, value.clone()).await.expect("create");
                written.push((key, value, rev));
            }
            written
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("writer task"));
    }
    let revisions: BTreeSet<Revision> = all.iter().map(|(_, _, r)| *r).collect();
    assert_eq!(
        revisions.len(),
        TASKS * EACH,
        "two writes shared a revision"
    );
    let max = *revisions.last().expect("writes happened");
    assert_eq!(current(&store).await, max);
    for (key, value, rev) in &all {
        assert_eq!(
            store.get(key).await.expect("get"),
            Some(kv(key, value, *rev, *rev)),
            "acknowledged write to {key} not readable"
        );
    }
    let listed = store.list("/cw/", "", 0, None).await.expect("list");
    assert_eq!(listed.items.len(), TASKS * EACH);
}

/// Racing writes to one key: exactly one create and one compare-and-swap win; the others
/// fail cleanly without affecting the winner.
pub async fn concurrent_conflicting_writes(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    let mut creates = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        creates.push(tokio::spawn(async move {
            store.create("/cc/k", vec![t as u8]).await
        }));
    }
    let mut winners = Vec::new();
    for (t, task) in creates.into_iter().enumerate() {
        match task.await.expect("create task") {
            Ok(rev) => winners.push((t, rev)),
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => panic!("unexpected create error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "creates that won: {winners:?}");
    let (winner, created) = winners[0];
    assert_eq!(
        store.get("/cc/k").await.expect("get"),
        Some(kv("/cc/k", &[winner as u8], created, created))
    );

    let mut updates = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        updates.push(tokio::spawn(async move {
            store.update("/cc/k", vec![100 + t as u8], created).await
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    for (t, task) in updates.into_iter().enumerate() {
        match task.await.expect("update task") {
            Ok(rev) => winners.push((t, rev)),
            Err(StoreError::Conflict { current, .. }) => conflicts.push(current),
            Err(e) => panic!("unexpected update error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "updates that won: {winners:?}");
    let (winner, updated) = winners[0];
    assert!(
        conflicts.iter().all(|c| *c == updated),
        "conflicts {conflicts:?}"
    );
    assert_eq!(current(&store).await, updated);
    assert_eq!(
        store.get("/cc/k").await.expect("get"),
        Some(kv("/cc/k", &[100 + winner as u8], created, updated))
    );
}

/// With [`SMALL_HISTORY`] events kept, older revisions fail with `Compacted` for both list
/// and watch, and the kept ones still serve exact results.
pub async fn compaction(store: Arc<dyn Store>) {
    let mut snapshots = vec![store.list("/c/", "", 0, None).await.expect("list")];
    let mut rev = store.create("/c/a", b"0".to_vec()).await.expect("create");
    snapshots.push(store.list("/c/", "", 0, None).await.expect("list"));
    store.create("/c/b", b"b".to_vec()).await.expect("create");
    snapshots.push(store.list("/c/", "", 0, None).await.expect("list"));
    for i in 1..=SMALL_HISTORY + 3 {
        rev = store
            .update("/c/a", i.to_string().into_bytes(), rev)
            .await
            .expect("update");
        snapshots.push(store.list("/c/", "", 0, None).await.expect("list"));
    }
    let now = current(&store).await;
    let compacted = store.compacted_revision().await.expect("compacted");
    assert_eq!(
        compacted,
        now - SMALL_HISTORY,
        "the store must keep exactly the last {SMALL_HISTORY} events"
    );

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
    let mut stream = store
        .watch("/c/", compacted)
        .await
        .expect("watch from the compacted revision");
    for expected in compacted + 1..=now {
        assert_eq!(next_event(&mut stream).await.revision(), expected);
    }
    let next = store
        .update("/c/a", b"live".to_vec(), rev)
        .await
        .expect("update");
    assert_eq!(next_event(&mut stream).await.revision(), next);
    assert_eq!(
        store.compacted_revision().await.expect("compacted"),
        compacted + 1
    );
}

/// A watcher that stops reading while `writes` changes happen is dropped: its stream ends
/// with [`StoreError::WatcherLagged`] (possibly after some events). Pass a store whose
/// watch buffer is smaller than `writes`.
pub async fn slow_watcher_is_dropped(store: Arc<dyn Store>, writes: usize) {
    let now = current(&store).await;
    let mut stream = store.watch("/slow/", now).await.expect("watch");
    for i in 0..writes {
        store
            .create(&format!("/slow/{i}"), b"x".to_vec())
            .await
            .expect("create");
    }
    let mut delivered = 0;
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(_))) => delivered += 1,
            Ok(Some(Err(StoreError::WatcherLagged))) => break,
            Ok(Some(Err(e))) => panic!("expected WatcherLagged, got {e:?}"),
            Ok(None) => panic!("stream ended without WatcherLagged"),
            Err(_) => panic!("no WatcherLagged after {delivered} events"),
        }
    }
    assert!(
        delivered < writes,
        "all {writes} events arrived despite the lag"
    );
    assert!(
        stream.next().await.is_none(),
        "the stream must end after WatcherLagged"
    );
}

fn kv(key: &str, value: &[u8], create_revision: Revision, mod_revision: Revision) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
    }
}

fn put(kv: KeyValue, prev: Option<KeyValue>) -> Event {
    Event {
        kind: EventKind::Put,
        kv,
        prev,
    }
}

fn delete(kv: KeyValue, prev: KeyValue) -> Event {
    Event {
        kind: EventKind::Delete,
        kv,
        prev: Some(prev),
    }
}

async fn current(store: &Arc<dyn Store>) -> Revision {
    store.current_revision().await.expect("current revision")
}

async fn list_keys(store: &Arc<dyn Store>, prefix: &str) -> Vec<String> {
    let listed = store.list(prefix, "", 0, None).await.expect("list");
    listed.items.into_iter().map(|i| i.key).collect()
}

/// Reads a whole prefix `limit` keys at a time, the way the API pages; returns the items
/// and each page's `more`. Every page is read at the first page's revision.
async fn list_pages(
    store: &Arc<dyn Store>,
    prefix: &str,
    limit: usize,
    revision: Option<Revision>,
) -> (Vec<KeyValue>, Vec<bool>) {
    let mut items: Vec<KeyValue> = Vec::new();
    let mut mores = Vec::new();
    let mut revision = revision;
    let mut start = String::new();
    loop {
        let page = store
            .list(prefix, &start, limit, revision)
            .await
            .expect("list page");
        assert!(page.items.len() <= limit, "page longer than its limit");
        revision = Some(page.revision);
        mores.push(page.more);
        if let Some(last) = page.items.last() {
            start = format!("{}\0", last.key);
        }
        items.extend(page.items);
        if !page.more {
            return (items, mores);
        }
    }
}

async fn next_event(stream: &mut WatchStream) -> Event {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e:?}"),
        Ok(None) => panic!("watch ended early"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}
