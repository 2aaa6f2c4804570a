//! An in-memory [`Store`]: for tests, demos and `--store memory`.
//!
//! Objects live in a `BTreeMap` ordered by key; every write appends one [`Event`] to a change
//! log and publishes it on a tokio broadcast channel for live watchers. All state sits behind
//! one mutex that is never held across an `.await`, so a write, its log entry and its
//! broadcast happen atomically, in revision order.
//!
//! Retention: the log keeps the last `history` events. Since every revision is exactly one
//! event, the log always covers the contiguous revisions `compacted + 1 ..= current`, and
//! anything older is compacted ([`StoreError::Compacted`]). A list at a past revision is
//! rebuilt from the current objects by undoing the logged changes newer than it.
//!
//! Limits: nothing survives the process; each logged event holds full copies of the new
//! and previous values, so memory grows with `history` × value size; a watcher more than
//! the broadcast capacity ([`DEFAULT_WATCH_CAPACITY`] unless set) events behind is dropped
//! with [`StoreError::WatcherLagged`]. A watch from a revision above the current one is
//! accepted and simply waits for it.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{Event, EventKind, KeyValue, ListResult, Revision, Store, StoreError, WatchStream};

/// How many events a live watcher may fall behind before it is dropped, by default.
pub const DEFAULT_WATCH_CAPACITY: usize = 65_536;

/// The in-memory store (see the module documentation).
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
}

#[derive(Debug)]
struct State {
    objects: BTreeMap<String, KeyValue>,
    /// Events for revisions `compacted + 1 ..= revision`, oldest first.
    log: VecDeque<Arc<Event>>,
    revision: Revision,
    compacted: Revision,
    history: u64,
}

impl MemoryStore {
    /// An empty store that keeps the last `history` change events.
    pub fn new(history: u64) -> Self {
        Self::with_watch_capacity(history, DEFAULT_WATCH_CAPACITY)
    }

    /// An empty store keeping `history` events whose live watchers are dropped once they
    /// fall more than `capacity` events behind (rounded up to a power of two; at least 1).
    pub fn with_watch_capacity(history: u64, capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        Self {
            state: Mutex::new(State {
                objects: BTreeMap::new(),
                log: VecDeque::new(),
                revision: 0,
                compacted: 0,
                history,
            }),
            events,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }

    /// Records `event` as the newest revision and tells live watchers. Called with the
    /// lock held so that broadcast order is revision order.
    fn publish(&self, state: &mut State, event: Event) -> Revision {
        let event = Arc::new(event);
        let revision = event.revision();
        state.log.push_back(Arc::clone(&event));
        state.trim();
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
        revision
    }
}

impl State {
    /// Drops log entries beyond the retention limit, advancing the compacted revision.
    fn trim(&mut self) {
        while self.log.len() as u64 > self.history {
            if let Some(old) = self.log.pop_front() {
                self.compacted = old.revision();
            }
        }
    }

    /// Logged events with a revision greater than `after`, oldest first.
    fn events_after(&self, after: Revision) -> impl Iterator<Item = &Arc<Event>> {
        let skip = after.saturating_sub(self.compacted);
        self.log
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }

    /// The key's current value if its mod revision is `expected`.
    fn expect(&self, key: &str, expected: Revision) -> Result<&KeyValue, StoreError> {
        match self.objects.get(key) {
            None => Err(StoreError::NotFound(key.to_owned())),
            Some(kv) if kv.mod_revision != expected => Err(StoreError::Conflict {
                key: key.to_owned(),
                current: kv.mod_revision,
            }),
            Some(kv) => Ok(kv),
        }
    }

    /// Stores `value` under `key` at the next revision; returns the event.
    fn put(&mut self, key: &str, value: Vec<u8>, prev: Option<KeyValue>) -> Event {
        self.revision += 1;
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.as_ref().map_or(self.revision, |p| p.create_revision),
            mod_revision: self.revision,
        };
        self.objects.insert(key.to_owned(), kv.clone());
        Event {
            kind: EventKind::Put,
            kv,
            prev,
        }
    }

    /// Removes `prev.key` at the next revision; returns the event.
    fn remove(&mut self, prev: KeyValue) -> Event {
        self.revision += 1;
        self.objects.remove(&prev.key);
        Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                mod_revision: self.revision,
                ..prev.clone()
            },
            prev: Some(prev),
        }
    }

    /// The revision a read asked for, checked against what the store can serve.
    fn resolve(&self, revision: Option<Revision>) -> Result<Revision, StoreError> {
        match revision {
            None => Ok(self.revision),
            Some(r) if r > self.revision => Err(StoreError::FutureRevision {
                requested: r,
                current: self.revision,
            }),
            Some(r) if r < self.compacted => Err(StoreError::Compacted {
                requested: r,
                compacted: self.compacted,
            }),
            Some(r) => Ok(r),
        }
    }

    fn list(&self, prefix: &str, start: &str, limit: usize, at: Revision) -> (Vec<KeyValue>, bool) {
        let lower = if start > prefix { start } else { prefix };
        let in_range = |key: &str| key >= lower && key.starts_with(prefix);

        // The state at `at` of every key changed after it: the value before its oldest
        // later change (None when it did not exist then).
        let mut undone: BTreeMap<&str, Option<&KeyValue>> = BTreeMap::new();
        for event in self.events_after(at) {
            if in_range(&event.kv.key) {
                undone
                    .entry(event.kv.key.as_str())
                    .or_insert(event.prev.as_ref());
            }
        }

        let mut current = self
            .objects
            .range::<str, _>((Bound::Included(lower), Bound::Unbounded))
            .map(|(_, kv)| kv)
            .take_while(|kv| kv.key.starts_with(prefix))
            .peekable();
        let mut undone = undone.into_iter().peekable();
        let mut items = Vec::new();
        loop {
            let next = match (current.peek(), undone.peek()) {
                (None, None) => break,
                (Some(c), Some((k, _))) if c.key.as_str() < *k => current.next(),
                (Some(c), Some((k, _))) if c.key.as_str() == *k => {
                    current.next();
                    undone.next().and_then(|(_, old)| old)
                }
                (_, Some(_)) => undone.next().and_then(|(_, old)| old),
                (Some(_), None) => current.next(),
            };
            let Some(kv) = next else { continue };
            if limit != 0 && items.len() == limit {
                return (items, true);
            }
            items.push(kv.clone());
        }
        (items, false)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.lock()?.objects.get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        start: &str,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult, StoreError> {
        let state = self.lock()?;
        let at = state.resolve(revision)?;
        let (items, more) = state.list(prefix, start, limit, at);
        Ok(ListResult {
            items,
            revision: at,
            more,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let mut state = self.lock()?;
        if state.objects.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        let event = state.put(key, value, None);
        Ok(self.publish(&mut state, event))
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let mut state = self.lock()?;
        let prev = state.expect(key, expected)?.clone();
        let event = state.put(key, value, Some(prev));
        Ok(self.publish(&mut state, event))
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<Revision, StoreError> {
        let mut state = self.lock()?;
        let prev = state.expect(key, expected)?.clone();
        let event = state.remove(prev);
        Ok(self.publish(&mut state, event))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        // Subscribing and copying the backlog under one lock leaves no gap between them.
        let (receiver, backlog, covered) = {
            let state = self.lock()?;
            if after < state.compacted {
                return Err(StoreError::Compacted {
                    requested: after,
                    compacted: state.compacted,
                });
            }
            let backlog: Vec<Event> = state
                .events_after(after)
                .filter(|e| e.kv.key.starts_with(prefix))
                .map(|e| Event::clone(e))
                .collect();
            (self.events.subscribe(), backlog, state.revision.max(after))
        };
        let live = live_events(receiver, prefix.to_owned(), covered);
        Ok(futures::stream::iter(backlog.into_iter().map(Ok))
            .chain(live)
            .boxed())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.lock()?.revision)
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.lock()?.compacted)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}

/// Live events under `prefix` newer than `covered`, ending with an error when the receiver
/// lags or the store goes away.
fn live_events(
    receiver: broadcast::Receiver<Arc<Event>>,
    prefix: String,
    covered: Revision,
) -> impl futures::Stream<Item = Result<Event, StoreError>> + Send + 'static {
    futures::stream::unfold(Some((receiver, prefix)), move |state| async move {
        let (mut receiver, prefix) = state?;
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    if event.revision() > covered && event.kv.key.starts_with(&prefix) {
                        return Some((Ok(Event::clone(&event)), Some((receiver, prefix))));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Some((Err(StoreError::WatcherLagged), None));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Some((Err(StoreError::Backend("store closed".into())), None));
                }
            }
        }
    })
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::store::conformance;

    fn store(history: u64) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new(history))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conforms() {
        conformance::run_all(|history| async move { store(history) }).await;
    }

    #[tokio::test]
    async fn slow_watcher_is_dropped() {
        let store = Arc::new(MemoryStore::with_watch_capacity(conformance::HISTORY, 16));
        conformance::slow_watcher_is_dropped(store, 100).await;
    }

    #[tokio::test]
    async fn zero_history_keeps_no_events() {
        let store = store(0);
        let r1 = store.create("/k", b"a".to_vec()).await.unwrap();
        store.update("/k", b"b".to_vec(), r1).await.unwrap();
        let now = store.current_revision().await.unwrap();
        assert_eq!(store.compacted_revision().await.unwrap(), now);
        assert!(matches!(
            store.list("", "", 0, Some(now - 1)).await,
            Err(StoreError::Compacted { .. })
        ));
        assert_eq!(
            store.list("", "", 0, Some(now)).await.unwrap().items.len(),
            1
        );
        assert!(store.watch("", now - 1).await.is_err());
        let mut live = store.watch("", now).await.unwrap();
        let r3 = store.delete("/k", now).await.unwrap();
        let event = live.next().await.unwrap().unwrap();
        assert_eq!(event.kind, EventKind::Delete);
        assert_eq!(event.revision(), r3);
    }

    #[tokio::test]
    async fn stream_ends_when_the_store_is_dropped() {
        let store = MemoryStore::new(10);
        let mut live = store.watch("", 0).await.unwrap();
        drop(store);
        assert!(matches!(
            live.next().await,
            Some(Err(StoreError::Backend(_)))
        ));
        assert!(live.next().await.is_none());
    }
}
