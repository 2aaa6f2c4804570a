//! A work queue of object keys, with the semantics of client-go's rate-limited queue:
//!
//! - **coalescing**: a key added while it already waits is queued once;
//! - **one worker per key**: a key added while a worker processes it is marked dirty and
//!   handed out again only after [`WorkQueue::done`], so reconciles of one key never overlap;
//! - **delays and backoff**: [`WorkQueue::add_after`] queues a key later (a key waits for at
//!   most one delay, the earliest asked for, and not at all while it is queued already);
//!   [`WorkQueue::add_rate_limited`] does so with a per-key exponential backoff (from
//!   [`BASE_DELAY`], doubling, at most [`MAX_DELAY`]) that [`WorkQueue::forget`] resets.
//!
//! Limits: in memory only; keys are handed out in FIFO order without priorities; a delayed
//! key that is added directly meanwhile is processed at once and again when its delay ends
//! (harmless for idempotent reconcilers).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The first retry delay after a failure.
pub const BASE_DELAY: Duration = Duration::from_millis(25);
/// The longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// The queue (see the module documentation).
#[derive(Debug)]
pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    notify: Notify,
}

#[derive(Debug)]
struct Inner<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    processing: HashSet<K>,
    dirty: HashSet<K>,
    failures: HashMap<K, u32>,
    delayed: BTreeMap<(Instant, u64), K>,
    delayed_at: HashMap<K, (Instant, u64)>,
    sequence: u64,
    shut_down: bool,
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        WorkQueue {
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                processing: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
                delayed: BTreeMap::new(),
                delayed_at: HashMap::new(),
                sequence: 0,
                shut_down: false,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // A panic while holding this lock leaves only plain collections behind, which stay
        // consistent enough to keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `key` now (once, however often it is added before a worker takes it).
    pub fn add(&self, key: K) {
        let mut inner = self.lock();
        if inner.push(key) {
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let mut inner = self.lock();
        if inner.shut_down || inner.queued.contains(&key) {
            return;
        }
        let when = Instant::now() + delay;
        if let Some(&(existing, sequence)) = inner.delayed_at.get(&key) {
            if existing <= when {
                return;
            }
            inner.delayed.remove(&(existing, sequence));
        }
        inner.sequence += 1;
        let at = (when, inner.sequence);
        inner.delayed_at.insert(key.clone(), at);
        inner.delayed.insert(at, key);
        drop(inner);
        // A waiting worker may sleep until a later deadline; wake one to look again.
        self.notify.notify_one();
    }

    /// Queues `key` after its next backoff delay (and counts the failure).
    pub fn add_rate_limited(&self, key: K) {
        let delay = {
            let mut inner = self.lock();
            let failures = inner.failures.entry(key.clone()).or_insert(0);
            *failures = failures.saturating_add(1);
            backoff(*failures)
        };
        self.add_after(key, delay);
    }

    /// Resets the backoff of `key` (after a success).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How many times `key` failed since it was last forgotten.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Marks the processing of `key` finished; a key added meanwhile is queued again.
    pub fn done(&self, key: &K) {
        let mut inner = self.lock();
        inner.processing.remove(key);
        if inner.dirty.remove(key) && inner.push(key.clone()) {
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Stops the queue: waiting and future [`WorkQueue::next`] calls return `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }

    /// Keys waiting now (not delayed, not being processed).
    pub fn len(&self) -> usize {
        self.lock().ready.len()
    }

    /// Whether no key waits now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether nothing waits, is delayed or is being processed.
    pub fn is_idle(&self) -> bool {
        let inner = self.lock();
        inner.ready.is_empty() && inner.delayed.is_empty() && inner.processing.is_empty()
    }

    /// The next key to process, waiting for one; `None` once the queue is shut down. The
    /// caller must call [`WorkQueue::done`] with it afterwards.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let deadline = {
                let mut inner = self.lock();
                if inner.shut_down {
                    return None;
                }
                inner.promote_due(Instant::now());
                if let Some(key) = inner.ready.pop_front() {
                    inner.queued.remove(&key);
                    inner.processing.insert(key.clone());
                    let more = !inner.ready.is_empty();
                    drop(inner);
                    if more {
                        // Pass the wake-up on so that idle workers pick up the rest.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                inner.delayed.keys().next().map(|(at, _)| *at)
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

impl<K: Clone + Eq + Hash> Inner<K> {
    /// Queues `key` unless it waits already; true when a worker should be woken.
    fn push(&mut self, key: K) -> bool {
        if self.shut_down || self.queued.contains(&key) {
            return false;
        }
        if self.processing.contains(&key) {
            self.dirty.insert(key);
            return false;
        }
        self.queued.insert(key.clone());
        self.ready.push_back(key);
        true
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.delayed_at.remove(&key);
            self.push(key);
        }
    }
}

/// The delay after `failures` consecutive failures.
fn backoff(failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u32::MAX);
    BASE_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn coalesces_and_never_hands_out_a_key_twice_at_once() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let first = q.next().await.unwrap();
        assert_eq!(first, "a");
        // Added while processing: dirty, not handed out to another worker.
        q.add("a");
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.next().await, Some("a"));
        q.done(&"a");
        q.done(&"b");
        assert!(q.is_idle());
    }

    #[tokio::test]
    async fn delays_and_backoff() {
        let q = Arc::new(WorkQueue::new());
        q.add_rate_limited("k");
        q.add_rate_limited("k");
        assert_eq!(q.failures(&"k"), 2);
        let start = Instant::now();
        assert_eq!(q.next().await, Some("k"));
        assert!(start.elapsed() >= BASE_DELAY);
        q.done(&"k");
        q.forget(&"k");
        assert_eq!(q.failures(&"k"), 0);
        assert_eq!(backoff(1), BASE_DELAY);
        assert_eq!(backoff(2), BASE_DELAY * 2);
        assert_eq!(backoff(100), MAX_DELAY);
    }

    #[tokio::test]
    async fn a_key_waits_for_its_earliest_delay_only() {
        let q = WorkQueue::new();
        q.add_after("k", Duration::from_secs(3600));
        q.add_after("k", Duration::from_millis(1));
        q.add_after("k", Duration::from_secs(60));
        assert_eq!(q.next().await, Some("k"));
        q.done(&"k");
        assert!(
            q.is_idle(),
            "the later delays were merged into the earliest"
        );
        q.add("j");
        q.add_after("j", Duration::from_millis(1));
        assert!(
            q.lock().delayed.is_empty(),
            "a queued key is not delayed too"
        );
    }

    #[tokio::test]
    async fn shut_down_wakes_waiters() {
        let q = Arc::new(WorkQueue::<u32>::new());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiter.await.unwrap(), None);
        q.add(1);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_worker_sees_a_later_add() {
        let q = Arc::new(WorkQueue::<u32>::new());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.add(7);
        assert_eq!(waiter.await.unwrap(), Some(7));
    }
}
