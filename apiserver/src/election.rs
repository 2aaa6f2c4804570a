//! Leader election over the [`Store`]: several replicas sharing one store agree on which of
//! them runs the singletons (the in-process controllers).
//!
//! The lease is one record under [`LEASE_KEY`], JSON `{holderIdentity, leaseDurationSeconds,
//! acquireTime, renewTime, leaderTransitions}` (the shape of a `coordination.k8s.io` Lease's
//! spec), changed only by compare-and-swap on its revision:
//! - the holder rewrites it every `retry` period; if it cannot renew for `renew_deadline` it
//!   stops leading (before anyone else may take over);
//! - a candidate takes the lease when the holder is empty or the record has not changed for
//!   the holder's `leaseDurationSeconds` *as the candidate observed it* (its own monotonic
//!   clock, never the timestamps inside, so clock skew between replicas does not matter);
//! - a holder that stops cleanly empties the holder so a standby takes over at its next try.
//!
//! Limits: safety rests on the holder stepping down (`renew_deadline`) before a candidate's
//! lease timer can run out (`lease_duration`), so clocks must run at about the same rate,
//! and a paused holder (e.g. a stopped VM) that resumes after the lease expired may act for
//! up to one `retry` period before it notices. Controller writes are compare-and-swap, so
//! such an overlap costs conflicts, not corruption.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flotta_api::store::{Revision, Store, StoreError};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the controllers' lease lives (outside every API resource's key prefix).
pub const LEASE_KEY: &str = "/registry/flotta.internal/leases/controllers";

/// The timing of an election.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// This replica's name in the lease (unique per process).
    pub identity: String,
    /// How long a lease lasts without renewal before a candidate may take it.
    pub lease_duration: Duration,
    /// How long the holder keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the holder renews and a candidate retries.
    pub retry: Duration,
}

impl ElectionConfig {
    /// Timings derived from a lease duration as Kubernetes' controllers derive theirs
    /// (15 s lease → 10 s renew deadline, 2 s retry).
    pub fn new(identity: String, lease_duration: Duration) -> Self {
        let lease_duration = lease_duration.max(Duration::from_millis(300));
        ElectionConfig {
            identity,
            renew_deadline: lease_duration.mul_f64(2.0 / 3.0),
            retry: lease_duration.mul_f64(2.0 / 15.0),
            lease_duration,
        }
    }
}

/// A unique identity for this process: the host name (a pod's name in Kubernetes) and a
/// random suffix, so a restarted pod is a new holder.
pub fn process_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "flotta-apiserver".to_owned());
    format!("{host}_{:08x}", rand::random::<u32>())
}

/// The stored lease record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseRecord {
    #[serde(default)]
    holder_identity: String,
    #[serde(default)]
    lease_duration_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acquire_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renew_time: Option<String>,
    #[serde(default)]
    leader_transitions: u64,
}

/// Where a term of leadership stands, as the `lead` callback of [`Election::run`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// This replica leads.
    Leading,
    /// The lease was lost (or could not be renewed in time): stop at once, another replica
    /// may take over.
    Lost,
    /// The process is shutting down: finish cleanly; the lease is released afterwards.
    Stopping,
}

/// What this replica last saw of the lease.
#[derive(Debug, Clone)]
struct Observed {
    revision: Revision,
    at: Instant,
}

/// One replica's side of the election (see the module documentation).
#[derive(Clone)]
pub struct Election {
    store: Arc<dyn Store>,
    key: String,
    config: ElectionConfig,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("key", &self.key)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Election {
    /// An election for the lease at `key` in `store`.
    pub fn new(store: Arc<dyn Store>, key: impl Into<String>, config: ElectionConfig) -> Self {
        Election {
            store,
            key: key.into(),
            config,
        }
    }

    /// Campaigns until `shutdown` completes. Each time this replica becomes the leader it
    /// calls `lead` with a receiver that leaves [`Leadership::Leading`] when the term ends,
    /// and waits for the returned future before campaigning again; on shutdown it waits for
    /// the current term's future, then releases the lease.
    ///
    /// A leader steps down once it has not renewed for `renew_deadline`, counted from when
    /// its last successful renewal was *sent*; a candidate waits a whole lease duration
    /// from when it *saw* that renewal. The `lead` future must therefore stop quickly on
    /// [`Leadership::Lost`].
    pub async fn run<F, Fut>(self, mut lead: F, shutdown: impl Future<Output = ()>)
    where
        F: FnMut(watch::Receiver<Leadership>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut observed: Option<Observed> = None;
        loop {
            // Campaign.
            let (revision, acquired) = loop {
                let attempt = Instant::now();
                match self.try_acquire(&mut observed).await {
                    Ok(Some(revision)) => break (revision, attempt),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, key = %self.key, "leader election: cannot read or write the lease");
                    }
                }
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(self.config.retry) => {}
                }
            };
            tracing::info!(identity = %self.config.identity, "leader election: this replica leads");
            let (leading_tx, leading_rx) = watch::channel(Leadership::Leading);
            let term = lead(leading_rx);
            let keep = self.keep(revision, acquired);
            let mut term = std::pin::pin!(term);
            let mut keep = std::pin::pin!(keep);
            let stopping = tokio::select! {
                () = &mut shutdown => true,
                () = &mut keep => {
                    tracing::warn!(identity = %self.config.identity, "leader election: lost the lease; stopping the singletons");
                    observed = None;
                    false
                }
                () = &mut term => false,
            };
            let _ = leading_tx.send(if stopping {
                Leadership::Stopping
            } else {
                Leadership::Lost
            });
            term.await;
            if stopping {
                self.release().await;
                return;
            }
        }
    }

    /// One campaign step: takes the lease if it is free or expired. Returns the revision of
    /// the record this replica now holds.
    async fn try_acquire(
        &self,
        observed: &mut Option<Observed>,
    ) -> Result<Option<Revision>, StoreError> {
        let now = Timestamp::now().to_string();
        let Some(current) = self.store.get(&self.key).await? else {
            let record = LeaseRecord {
                holder_identity: self.config.identity.clone(),
                lease_duration_seconds: self.config.lease_duration.as_secs().max(1),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                leader_transitions: 0,
            };
            return match self.store.create(&self.key, encode(&record)).await {
                Ok(revision) => Ok(Some(revision)),
                Err(StoreError::AlreadyExists(_)) => Ok(None),
                Err(error) => Err(error),
            };
        };
        let record: LeaseRecord = serde_json::from_slice(&current.value).unwrap_or_default();
        let seen_at = match observed {
            Some(o) if o.revision == current.mod_revision => o.at,
            _ => {
                let at = Instant::now();
                *observed = Some(Observed {
                    revision: current.mod_revision,
                    at,
                });
                at
            }
        };
        // The holder's own lease duration counts, as it renews by it.
        let lease = match record.lease_duration_seconds {
            0 => self.config.lease_duration,
            seconds => Duration::from_secs(seconds),
        };
        let free = record.holder_identity.is_empty()
            || record.holder_identity == self.config.identity
            || seen_at.elapsed() >= lease;
        if !free {
            return Ok(None);
        }
        let transitions = if record.holder_identity == self.config.identity {
            record.leader_transitions
        } else {
            record.leader_transitions + 1
        };
        let taken = LeaseRecord {
            holder_identity: self.config.identity.clone(),
            lease_duration_seconds: self.config.lease_duration.as_secs().max(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            leader_transitions: transitions,
        };
        match self
            .store
            .update(&self.key, encode(&taken), current.mod_revision)
            .await
        {
            Ok(revision) => Ok(Some(revision)),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Renews the lease every `retry` period while it is held; returns when it is lost (a
    /// newer record by someone else) or when `renew_deadline` has passed since the last
    /// successful renewal was sent (`renewed`, first the acquisition).
    async fn keep(&self, mut revision: Revision, mut renewed: Instant) {
        loop {
            let remaining = self.config.renew_deadline.saturating_sub(renewed.elapsed());
            if remaining.is_zero() {
                return;
            }
            tokio::time::sleep(self.config.retry.min(remaining)).await;
            let remaining = self.config.renew_deadline.saturating_sub(renewed.elapsed());
            if remaining.is_zero() {
                return;
            }
            let attempt = Instant::now();
            match tokio::time::timeout(remaining, self.renew(revision)).await {
                Ok(Ok(Some(next))) => {
                    revision = next;
                    renewed = attempt;
                }
                Ok(Ok(None)) => return,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "leader election: renewing the lease failed");
                }
                Err(_) => {}
            }
        }
    }

    /// One renewal; `None` when the record is no longer ours.
    async fn renew(&self, revision: Revision) -> Result<Option<Revision>, StoreError> {
        let Some(current) = self.store.get(&self.key).await? else {
            return Ok(None);
        };
        let record: LeaseRecord = serde_json::from_slice(&current.value).unwrap_or_default();
        if current.mod_revision != revision || record.holder_identity != self.config.identity {
            return Ok(None);
        }
        let renewed = LeaseRecord {
            renew_time: Some(Timestamp::now().to_string()),
            ..record
        };
        match self
            .store
            .update(&self.key, encode(&renewed), revision)
            .await
        {
            Ok(next) => Ok(Some(next)),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Empties the holder if this replica still holds the lease, so a standby need not wait
    /// for it to expire.
    async fn release(&self) {
        let Ok(Some(current)) = self.store.get(&self.key).await else {
            return;
        };
        let record: LeaseRecord = serde_json::from_slice(&current.value).unwrap_or_default();
        if record.holder_identity != self.config.identity {
            return;
        }
        let released = LeaseRecord {
            holder_identity: String::new(),
            ..record
        };
        match self
            .store
            .update(&self.key, encode(&released), current.mod_revision)
            .await
        {
            Ok(_) => tracing::info!("leader election: released the lease"),
            Err(error) => tracing::warn!(%error, "leader election: releasing the lease failed"),
        }
    }

    /// Who holds the lease now, if anyone (for status and tests).
    pub async fn holder(&self) -> Result<Option<String>, StoreError> {
        let Some(current) = self.store.get(&self.key).await? else {
            return Ok(None);
        };
        let record: LeaseRecord = serde_json::from_slice(&current.value).unwrap_or_default();
        Ok(Some(record.holder_identity).filter(|h| !h.is_empty()))
    }
}

fn encode(record: &LeaseRecord) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotta_api::store::memory::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const LEASE: Duration = Duration::from_millis(600);
    const WAIT: Duration = Duration::from_secs(10);

    /// A running candidate: counts how many replicas lead at once and how often it led.
    struct Candidate {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
        terms: Arc<AtomicUsize>,
    }

    fn candidate(store: &Arc<dyn Store>, name: &str, leaders: &Arc<AtomicUsize>) -> Candidate {
        let election = Election::new(
            store.clone(),
            LEASE_KEY,
            ElectionConfig::new(name.to_owned(), LEASE),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let terms = Arc::new(AtomicUsize::new(0));
        let (leaders, counted) = (leaders.clone(), terms.clone());
        let task = tokio::spawn(election.run(
            move |mut leading| {
                let leaders = leaders.clone();
                counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    let before = leaders.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(before, 0, "two replicas lead at once");
                    while *leading.borrow() == Leadership::Leading {
                        if leading.changed().await.is_err() {
                            break;
                        }
                    }
                    leaders.fetch_sub(1, Ordering::SeqCst);
                }
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Candidate {
            stop: Some(stop),
            task,
            terms,
        }
    }

    async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn observer(store: &Arc<dyn Store>) -> Election {
        Election::new(
            store.clone(),
            LEASE_KEY,
            ElectionConfig::new("observer".into(), LEASE),
        )
    }

    #[tokio::test]
    async fn one_leader_and_a_clean_handover() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1000));
        let leaders = Arc::new(AtomicUsize::new(0));
        let mut a = candidate(&store, "a", &leaders);
        let b = candidate(&store, "b", &leaders);
        let watch = observer(&store);
        until("someone leads", async || {
            watch.holder().await.ok().flatten().is_some()
        })
        .await;
        let first = watch.holder().await.expect("holder").expect("a leader");
        // Several renewals later the same replica still leads, alone.
        tokio::time::sleep(LEASE * 2).await;
        assert_eq!(
            watch.holder().await.expect("holder").as_deref(),
            Some(first.as_str())
        );
        assert_eq!(leaders.load(Ordering::SeqCst), 1);

        let (mut leader, standby) = if first == "a" { (a, b) } else { (b, a) };
        let started = Instant::now();
        let _ = leader.stop.take().map(|s| s.send(()));
        (&mut leader.task).await.expect("leader stops");
        until("the standby leads", async || {
            standby.terms.load(Ordering::SeqCst) == 1
        })
        .await;
        // Released, not expired: the standby took over within a retry period or two.
        assert!(
            started.elapsed() < LEASE,
            "handover took {:?}",
            started.elapsed()
        );
        assert_ne!(watch.holder().await.expect("holder"), Some(first));
        a = standby;
        let _ = a.stop.take().map(|s| s.send(()));
        a.task.await.expect("stops");
        assert_eq!(leaders.load(Ordering::SeqCst), 0);
        assert_eq!(watch.holder().await.expect("holder"), None);
    }

    /// A store that can be cut off: every call fails while `down` is set (an unreachable
    /// etcd, as the leader sees it).
    struct Unreachable {
        inner: MemoryStore,
        down: std::sync::atomic::AtomicBool,
    }

    impl Unreachable {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("unreachable".into()));
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl Store for Unreachable {
        async fn get(&self, key: &str) -> Result<Option<flotta_api::store::KeyValue>, StoreError> {
            self.check()?;
            self.inner.get(key).await
        }
        async fn list(
            &self,
            prefix: &str,
            start: &str,
            limit: usize,
            revision: Option<Revision>,
        ) -> Result<flotta_api::store::ListResult, StoreError> {
            self.check()?;
            self.inner.list(prefix, start, limit, revision).await
        }
        async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
            self.check()?;
            self.inner.create(key, value).await
        }
        async fn update(
            &self,
            key: &str,
            value: Vec<u8>,
            expected: Revision,
        ) -> Result<Revision, StoreError> {
            self.check()?;
            self.inner.update(key, value, expected).await
        }
        async fn delete(&self, key: &str, expected: Revision) -> Result<Revision, StoreError> {
            self.check()?;
            self.inner.delete(key, expected).await
        }
        async fn watch(
            &self,
            prefix: &str,
            after: Revision,
        ) -> Result<flotta_api::store::WatchStream, StoreError> {
            self.check()?;
            self.inner.watch(prefix, after).await
        }
        async fn current_revision(&self) -> Result<Revision, StoreError> {
            self.check()?;
            self.inner.current_revision().await
        }
        async fn compacted_revision(&self) -> Result<Revision, StoreError> {
            self.check()?;
            self.inner.compacted_revision().await
        }
        async fn ready(&self) -> Result<(), StoreError> {
            self.check()
        }
    }

    #[tokio::test]
    async fn a_leader_cut_off_from_the_store_steps_down_before_the_lease_expires() {
        let store = Arc::new(Unreachable {
            inner: MemoryStore::new(1000),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let shared: Arc<dyn Store> = store.clone();
        let leaders = Arc::new(AtomicUsize::new(0));
        let mut a = candidate(&shared, "a", &leaders);
        until("a leads", async || leaders.load(Ordering::SeqCst) == 1).await;
        // Let a renew a few times, then cut it off right after a renewal could have landed.
        tokio::time::sleep(LEASE).await;
        store.down.store(true, Ordering::SeqCst);
        let cut = Instant::now();
        until("a steps down", async || leaders.load(Ordering::SeqCst) == 0).await;
        // A candidate that saw a's last renewal waits at least a whole lease from then.
        assert!(
            cut.elapsed() < LEASE,
            "stepped down {:?} after losing the store; the lease is {LEASE:?}",
            cut.elapsed()
        );
        store.down.store(false, Ordering::SeqCst);
        let _ = a.stop.take().map(|s| s.send(()));
        a.task.await.expect("stops");
    }

    #[tokio::test]
    async fn an_abandoned_lease_is_taken_after_it_expires() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1000));
        let dead = LeaseRecord {
            holder_identity: "crashed".into(),
            lease_duration_seconds: 1,
            ..LeaseRecord::default()
        };
        store
            .create(LEASE_KEY, encode(&dead))
            .await
            .expect("seed the lease");
        let leaders = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut c = candidate(&store, "c", &leaders);
        let watch = observer(&store);
        until("c leads", async || {
            watch.holder().await.ok().flatten().as_deref() == Some("c")
        })
        .await;
        assert!(
            started.elapsed() >= LEASE,
            "took an unexpired lease after {:?}",
            started.elapsed()
        );
        let _ = c.stop.take().map(|s| s.send(()));
        c.task.await.expect("stops");
    }

    #[tokio::test]
    async fn a_leader_that_loses_the_record_stops_leading() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1000));
        let leaders = Arc::new(AtomicUsize::new(0));
        let mut a = candidate(&store, "a", &leaders);
        until("a leads", async || leaders.load(Ordering::SeqCst) == 1).await;
        // Someone else overwrites the lease (as after a long pause of this replica).
        let current = store.get(LEASE_KEY).await.expect("get").expect("lease");
        let other = LeaseRecord {
            holder_identity: "usurper".into(),
            lease_duration_seconds: 3600,
            ..LeaseRecord::default()
        };
        store
            .update(LEASE_KEY, encode(&other), current.mod_revision)
            .await
            .expect("overwrite");
        until("a stops leading", async || {
            leaders.load(Ordering::SeqCst) == 0
        })
        .await;
        assert_eq!(a.terms.load(Ordering::SeqCst), 1);
        let _ = a.stop.take().map(|s| s.send(()));
        a.task.await.expect("stops");
        // It did not release someone else's lease.
        let watch = observer(&store);
        assert_eq!(
            watch.holder().await.expect("holder").as_deref(),
            Some("usurper")
        );
    }
}
