//! Device liveness in memory: when each device last sent a heartbeat, its heartbeat period,
//! and whether it counts as online, kept so that a heartbeat costs no store access.
//!
//! - [`Liveness::heartbeat`] records a heartbeat under one shard lock (64 shards, no lock
//!   is held across an `.await`) and says whether the heartbeat can be answered from
//!   memory: the same report as the last one reconciled with the stored device, the device
//!   unchanged since then (the configuration watcher reports device revisions through
//!   [`Liveness::observe`]), and the store already saying `online: true`.
//! - [`Liveness::run`] sweeps the table: a device whose last heartbeat is older than
//!   `missed periods × heartbeat period` is written `status.online=false` (a real status
//!   change, hence a watch event); the store backend writes `online: true` again with the
//!   next heartbeat. After a restart every device gets a full grace period from the start
//!   rather than being declared offline for the time the server was down. The sweep also
//!   checkpoints `status.lastSeen` to the store at a low rate (at most once per
//!   `checkpoint interval` per device, a bounded number per sweep) so a restart keeps it.
//! - [`Liveness::presenter`] merges the in-memory `lastSeen` and the current online state
//!   into EdgeDevices as they are served (get, list, watch).
//!
//! - With a store shared by several replicas ([`LivenessConfig::shared`]) each replica
//!   judges the devices whose heartbeats it receives (its *own* ones). The first heartbeat
//!   a replica gets from a device writes `lastSeen` ([`claim_time`]; one write per device
//!   and move between replicas); the others see that write through their watch ([`Liveness::observe`]) and
//!   leave the device to its new owner. A device nobody here hears from is judged from the
//!   stored `lastSeen`, which its owner refreshes every checkpoint interval (or heartbeat
//!   period, if longer; the replica measures the gap between refreshes): offline once that
//!   is older than the grace period plus two such gaps. Events older than what a replica
//!   already wrote or saw are ignored, and a replica owns a device only once its claim is
//!   stored.
//!
//! Limits: the table is per process, so with several replicas a replica that does not
//! receive a device's heartbeats serves its `lastSeen` from the last checkpoint (up to one
//! checkpoint interval old), and if a device and the replica it talks to stop together, the
//! device is marked offline only after the longer shared-store grace. A period set only on
//! the device's EdgeDeviceSet is known to the replica that renders its configuration; the
//! others learn it from the refresh gaps. Times are wall-clock
//! (`jiff::Timestamp`), so a clock jump shifts deadlines.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flotta_api::store::{Store, StoreError};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::metrics::{EdgeMetrics, WriteReason};
use crate::rest::collection::Collection;
use crate::rest::request::QueryOptions;
use crate::rest::resource::{Presenter, ResourceDef};

/// How many independently locked parts the table has.
const SHARDS: usize = 64;
/// The smallest number of checkpoints a sweep may write.
const MIN_CHECKPOINTS_PER_SWEEP: usize = 16;

/// How liveness is judged and recorded.
#[derive(Clone, Debug)]
pub struct LivenessConfig {
    /// A device is offline after this many heartbeat periods without one
    /// (`--device-offline-after-missed`, default 3).
    pub missed_periods: u32,
    /// The heartbeat period of a device whose configuration does not say (60 s, as the
    /// device assumes).
    pub default_period: Duration,
    /// How often `status.lastSeen` is written to the store per device at most
    /// (`--device-last-seen-checkpoint`, default 300 s).
    pub checkpoint_interval: Duration,
    /// How often the table is swept for offline devices and checkpoints.
    pub sweep_interval: Duration,
    /// Whether other replicas share the store (and receive some devices' heartbeats).
    pub shared: bool,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            missed_periods: 3,
            default_period: Duration::from_secs(60),
            checkpoint_interval: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(1),
            shared: false,
        }
    }
}

/// What a heartbeat needs from the store, as far as memory can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatCheck {
    /// Same report as the last one reconciled, device unchanged, stored online: nothing
    /// to read or write.
    Unchanged,
    /// The store must be consulted (and possibly written).
    Reconcile,
    /// This replica just took the device over from another one (shared store): reconcile
    /// and write `lastSeen` even if nothing else changed, so the others let go of it.
    Claim,
}

/// A device's liveness fields as stored, seen in a watch event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredLiveness {
    /// `status.lastSeen`.
    pub last_seen: Option<Timestamp>,
    /// `status.online`.
    pub online: Option<bool>,
    /// `spec.heartbeat.periodSeconds`, when the device itself sets it.
    pub period: Option<Duration>,
}

impl StoredLiveness {
    /// Reads the fields from a stored EdgeDevice's bytes (missing or unreadable: none).
    pub fn from_stored(bytes: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Device {
            #[serde(default)]
            spec: Option<Spec>,
            #[serde(default)]
            status: Option<Status>,
        }
        #[derive(serde::Deserialize)]
        struct Spec {
            #[serde(default)]
            heartbeat: Option<HeartbeatSpec>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct HeartbeatSpec {
            #[serde(default)]
            period_seconds: Option<u64>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Status {
            #[serde(default)]
            last_seen: Option<String>,
            #[serde(default)]
            online: Option<bool>,
        }
        let device = serde_json::from_slice::<Device>(bytes).ok();
        let period = device
            .as_ref()
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.heartbeat.as_ref())
            .and_then(|h| h.period_seconds)
            .filter(|p| *p > 0)
            .map(Duration::from_secs);
        let status = device.and_then(|d| d.status);
        StoredLiveness {
            period,
            last_seen: status
                .as_ref()
                .and_then(|s| s.last_seen.as_deref())
                .and_then(|t| t.parse().ok()),
            online: status.and_then(|s| s.online),
        }
    }
}

/// One device's liveness as served to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLiveness {
    /// The last heartbeat (or the last checkpoint, after a restart).
    pub last_seen: Option<Timestamp>,
    /// Whether the device is within its grace period.
    pub online: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    last_seen: Option<Timestamp>,
    period: Duration,
    /// `status.online` in the store, as far as we know.
    stored_online: Option<bool>,
    /// `status.lastSeen` in the store, as far as we know.
    stored_last_seen: Option<Timestamp>,
    /// The report hash last reconciled with the store, and the device revision after it.
    reconciled: Option<(u64, u64)>,
    /// The newest device revision the watcher has seen.
    seen_revision: u64,
    /// Whether this process received the latest known heartbeat (the device is its own).
    heard: bool,
    /// The last interval between two stored `lastSeen` values seen through the watch: how
    /// often another replica refreshes it (at least its checkpoint interval, or the
    /// device's heartbeat period if longer).
    stored_gap: Option<SignedDuration>,
}

impl Entry {
    fn new(period: Duration) -> Self {
        Entry {
            last_seen: None,
            period,
            stored_online: None,
            stored_last_seen: None,
            reconciled: None,
            seen_revision: 0,
            heard: false,
            stored_gap: None,
        }
    }
}

/// The liveness table (see the module documentation).
pub struct Liveness {
    config: LivenessConfig,
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    started: Timestamp,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn key(namespace: &str, name: &str) -> String {
    let mut k = String::with_capacity(namespace.len() + name.len() + 1);
    k.push_str(namespace);
    k.push('/');
    k.push_str(name);
    k
}

/// `2006-01-02T15:04:05Z`, as Kubernetes serialises `metav1.Time`.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `lastSeen` a claiming heartbeat at `now` records over the stored `previous` one: `now`
/// rounded up to a whole second (so it is stored exactly) and later than `previous`, so that
/// the previous owner sees a heartbeat newer than any it got.
pub fn claim_time(now: Timestamp, previous: Option<Timestamp>) -> Timestamp {
    let whole = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let up = if whole < now {
        whole + SignedDuration::from_secs(1)
    } else {
        whole
    };
    match previous {
        Some(previous) if previous >= up => previous + SignedDuration::from_secs(1),
        _ => up,
    }
}

fn parse_time(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

impl Liveness {
    /// An empty table.
    pub fn new(config: LivenessConfig) -> Self {
        Liveness {
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            started: Timestamp::now(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LivenessConfig {
        &self.config
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Entry>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let index = usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0);
        // A poisoned shard only means a panic elsewhere mid-update; the map is still usable.
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_entry<T>(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let k = key(namespace, name);
        let mut shard = self.shard(&k);
        let period = self.config.default_period;
        f(shard.entry(k).or_insert_with(|| Entry::new(period)))
    }

    fn grace(&self, period: Duration) -> SignedDuration {
        let grace = period.saturating_mul(self.config.missed_periods.max(1));
        SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX)
    }

    fn online_at(&self, entry: &Entry, now: Timestamp) -> Option<bool> {
        let last = entry.last_seen?;
        let from = last.max(self.started);
        let mut grace = self.grace(entry.period);
        if self.config.shared && !entry.heard {
            // Someone else's device: its lastSeen reaches us only when its owner writes
            // it, every checkpoint interval or heartbeat period, whichever is longer.
            let checkpoint = SignedDuration::try_from(self.config.checkpoint_interval)
                .unwrap_or(SignedDuration::MAX);
            let refresh = entry
                .stored_gap
                .map_or(checkpoint, |gap| gap.max(checkpoint));
            grace = grace.saturating_add(refresh).saturating_add(refresh);
        }
        Some(now.duration_since(from) <= grace)
    }

    /// Records a heartbeat at `now` whose reported state hashes to `report`, and says
    /// whether the store must be consulted.
    pub fn heartbeat(
        &self,
        namespace: &str,
        name: &str,
        now: Timestamp,
        report: u64,
    ) -> HeartbeatCheck {
        let shared = self.config.shared;
        self.with_entry(namespace, name, |e| {
            e.last_seen = Some(e.last_seen.map_or(now, |t| t.max(now)));
            // `heard` is set once the claim is stored (`reconciled`); until then every
            // heartbeat claims again.
            if shared && !e.heard {
                return HeartbeatCheck::Claim;
            }
            match e.reconciled {
                Some((hash, revision))
                    if hash == report
                        && revision >= e.seen_revision
                        && e.stored_online == Some(true) =>
                {
                    HeartbeatCheck::Unchanged
                }
                _ => HeartbeatCheck::Reconcile,
            }
        })
    }

    /// Records that the stored device, at `revision`, now reflects the report hashing to
    /// `report`, says `online: true` and has `lastSeen` `stored_last_seen`.
    pub fn reconciled(
        &self,
        namespace: &str,
        name: &str,
        report: u64,
        revision: u64,
        stored_last_seen: Option<Timestamp>,
    ) {
        self.with_entry(namespace, name, |e| {
            e.reconciled = Some((report, revision));
            e.stored_online = Some(true);
            if stored_last_seen.is_some() {
                e.stored_last_seen = stored_last_seen;
                // A claim may have stored a time a little ahead of the heartbeat; our own
                // write must not look like someone else's newer one.
                e.last_seen = e.last_seen.max(stored_last_seen);
            }
            e.heard = true;
        });
    }

    /// Sets a device's heartbeat period (from its rendered configuration).
    pub fn set_period(&self, namespace: &str, name: &str, period: Duration) {
        let period = if period.is_zero() {
            self.config.default_period
        } else {
            period
        };
        self.with_entry(namespace, name, |e| e.period = period);
    }

    /// Records that the stored device changed at `revision` (from a watch event), so the
    /// next heartbeat compares with the store again. With a shared store, a `lastSeen`
    /// newer than any heartbeat this process received means another replica now has the
    /// device.
    pub fn observe(&self, namespace: &str, name: &str, revision: u64, stored: StoredLiveness) {
        let k = key(namespace, name);
        let mut shard = self.shard(&k);
        let entry = match shard.get_mut(&k) {
            Some(e) => e,
            None if self.config.shared && stored.last_seen.is_some() => shard
                .entry(k)
                .or_insert_with(|| Entry::new(self.config.default_period)),
            None => return,
        };
        let newest = entry
            .seen_revision
            .max(entry.reconciled.map_or(0, |(_, r)| r));
        entry.seen_revision = entry.seen_revision.max(revision);
        // An event older than what this replica already knows says nothing new.
        if !self.config.shared || revision < newest {
            return;
        }
        if stored.online.is_some() {
            entry.stored_online = stored.online;
        }
        if let Some(period) = stored.period {
            entry.period = period;
        }
        if let Some(seen) = stored.last_seen {
            if let Some(previous) = entry.stored_last_seen
                && seen > previous
            {
                entry.stored_gap = Some(seen.duration_since(previous));
            }
            entry.stored_last_seen = entry.stored_last_seen.max(Some(seen));
            if entry.last_seen.is_none_or(|last| seen > last) {
                entry.last_seen = Some(seen);
                entry.heard = false;
            }
        }
    }

    /// Drops a deleted device.
    pub fn forget(&self, namespace: &str, name: &str) {
        let k = key(namespace, name);
        self.shard(&k).remove(&k);
    }

    /// What is known about a device, if anything.
    pub fn get(&self, namespace: &str, name: &str) -> Option<DeviceLiveness> {
        let k = key(namespace, name);
        let shard = self.shard(&k);
        let e = shard.get(&k)?;
        let online = self.online_at(e, Timestamp::now())?;
        Some(DeviceLiveness {
            last_seen: e.last_seen,
            online,
        })
    }

    /// Seeds the table from a stored EdgeDevice (at start-up): its checkpointed
    /// `lastSeen`, its stored `online` and its heartbeat period.
    pub fn seed(&self, device: &Value) {
        let meta = device.get("metadata");
        let (Some(namespace), Some(name)) = (
            meta.and_then(|m| m.get("namespace"))
                .and_then(Value::as_str),
            meta.and_then(|m| m.get("name")).and_then(Value::as_str),
        ) else {
            return;
        };
        let status = device.get("status");
        let last_seen = status.and_then(|s| s.get("lastSeen")).and_then(parse_time);
        let online = status
            .and_then(|s| s.get("online"))
            .and_then(Value::as_bool);
        if last_seen.is_none() && online.is_none() {
            return;
        }
        let period = device
            .pointer("/spec/heartbeat/periodSeconds")
            .and_then(Value::as_u64)
            .filter(|p| *p > 0)
            .map_or(self.config.default_period, Duration::from_secs);
        self.with_entry(namespace, name, |e| {
            e.last_seen = e.last_seen.max(last_seen);
            e.stored_last_seen = last_seen;
            e.stored_online = online;
            e.period = period;
        });
    }

    /// Seeds the table from every stored EdgeDevice under `def`; returns how many devices
    /// were read.
    pub async fn load(&self, store: &dyn Store, def: &ResourceDef) -> Result<usize, StoreError> {
        let prefix = def.key_prefix();
        let mut start = prefix.clone();
        let mut count = 0;
        loop {
            let page = store.list(&prefix, &start, 1000, None).await?;
            for kv in &page.items {
                if let Ok(device) = serde_json::from_slice::<Value>(&kv.value) {
                    self.seed(&device);
                }
                count += 1;
            }
            match (page.more, page.items.last()) {
                (true, Some(last)) => start = format!("{}\0", last.key),
                _ => return Ok(count),
            }
        }
    }

    /// The presenter that merges in-memory liveness into EdgeDevices as they are served.
    pub fn presenter(self: &Arc<Self>) -> Presenter {
        let liveness = Arc::clone(self);
        Arc::new(move |object: &mut Value| liveness.present(object))
    }

    /// Merges `lastSeen` (the newer of memory and store) and `online` into `object`.
    pub fn present(&self, object: &mut Value) {
        let meta = object.get("metadata");
        let (Some(namespace), Some(name)) = (
            meta.and_then(|m| m.get("namespace"))
                .and_then(Value::as_str),
            meta.and_then(|m| m.get("name")).and_then(Value::as_str),
        ) else {
            return;
        };
        let Some(live) = self.get(namespace, name) else {
            return;
        };
        let Some(obj) = object.as_object_mut() else {
            return;
        };
        let status = obj.entry("status").or_insert_with(|| json!({}));
        let Some(status) = status.as_object_mut() else {
            return;
        };
        let stored = status.get("lastSeen").and_then(parse_time);
        if let Some(last) = live.last_seen.max(stored) {
            status.insert("lastSeen".into(), json!(format_time(last)));
        }
        status.insert("online".into(), json!(live.online));
    }

    /// One sweep at `now`: the devices to write offline, the checkpoints due (at most
    /// `budget`), and the online/offline counts.
    fn sweep(&self, now: Timestamp, budget: usize) -> Sweep {
        let mut sweep = Sweep::default();
        let interval = SignedDuration::try_from(self.config.checkpoint_interval)
            .unwrap_or(SignedDuration::MAX);
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (k, e) in shard.iter() {
                let Some(online) = self.online_at(e, now) else {
                    continue;
                };
                if online {
                    sweep.online += 1;
                } else {
                    sweep.offline += 1;
                    if e.stored_online != Some(false) {
                        sweep.to_offline.push(k.clone());
                    }
                }
                if let Some(last) = e.last_seen
                    && (e.heard || !self.config.shared)
                    && sweep.checkpoints.len() < budget
                    && e.stored_last_seen
                        .is_none_or(|stored| last.duration_since(stored) >= interval)
                {
                    sweep.checkpoints.push((k.clone(), last));
                }
            }
        }
        sweep
    }

    /// Sweeps every `sweep_interval` until `shutdown` completes: writes offline
    /// transitions and `lastSeen` checkpoints through `Collection` on the EdgeDevice kind
    /// `def`, and sets the online/offline gauges.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        def: Arc<ResourceDef>,
        metrics: Arc<EdgeMetrics>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.config.sweep_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            self.sweep_once(&*store, &def, &metrics).await;
        }
    }

    /// One sweep with its writes (see [`Liveness::run`]).
    pub async fn sweep_once(&self, store: &dyn Store, def: &ResourceDef, metrics: &EdgeMetrics) {
        let known: usize = self
            .shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum();
        // Spread checkpoints: twice the steady rate, so a backlog drains.
        let per_sweep = self.config.sweep_interval.as_secs_f64()
            / self.config.checkpoint_interval.as_secs_f64().max(0.001);
        let budget =
            ((known as f64 * per_sweep * 2.0).ceil() as usize).max(MIN_CHECKPOINTS_PER_SWEEP);
        let now = Timestamp::now();
        let sweep = self.sweep(now, budget);
        metrics
            .devices_online
            .set(i64::try_from(sweep.online).unwrap_or(i64::MAX));
        metrics
            .devices_offline
            .set(i64::try_from(sweep.offline).unwrap_or(i64::MAX));
        let collection = Collection::new(store, def);
        for k in sweep.to_offline {
            let Some((namespace, name)) = k.split_once('/') else {
                continue;
            };
            self.write_offline(&collection, namespace, name, metrics)
                .await;
        }
        for (k, last) in sweep.checkpoints {
            let Some((namespace, name)) = k.split_once('/') else {
                continue;
            };
            self.write_checkpoint(&collection, namespace, name, last, metrics)
                .await;
        }
    }

    async fn write_offline(
        &self,
        collection: &Collection<'_>,
        namespace: &str,
        name: &str,
        metrics: &EdgeMetrics,
    ) {
        let written = self
            .write_status(
                collection,
                namespace,
                name,
                "recording a device offline",
                |status| {
                    // A heartbeat may have arrived since the sweep decided.
                    if !self.get(namespace, name).is_some_and(|l| l.online) {
                        status.insert("online".into(), json!(false));
                    }
                },
            )
            .await;
        if let Some((object, wrote)) = written {
            if wrote {
                metrics.store_write(WriteReason::Liveness);
                tracing::info!(namespace, device = name, "device is offline");
            }
            let stored = object.pointer("/status/online").and_then(Value::as_bool);
            self.with_entry(namespace, name, |e| e.stored_online = stored);
        }
    }

    async fn write_checkpoint(
        &self,
        collection: &Collection<'_>,
        namespace: &str,
        name: &str,
        last: Timestamp,
        metrics: &EdgeMetrics,
    ) {
        let written = self
            .write_status(
                collection,
                namespace,
                name,
                "checkpointing lastSeen",
                |status| {
                    let stored = status.get("lastSeen").and_then(parse_time);
                    if stored.is_none_or(|s| s < last) {
                        status.insert("lastSeen".into(), json!(format_time(last)));
                    }
                },
            )
            .await;
        if let Some((object, wrote)) = written {
            if wrote {
                metrics.store_write(WriteReason::Checkpoint);
            }
            let stored = object.pointer("/status/lastSeen").and_then(parse_time);
            self.with_entry(namespace, name, |e| {
                e.stored_last_seen = stored.or(Some(last))
            });
        }
    }

    /// Changes a device's status through the `/status` subresource; returns the object as
    /// stored and whether anything was written, or `None` when the device is gone (then
    /// forgotten) or the write failed (logged as `what` failed).
    async fn write_status(
        &self,
        collection: &Collection<'_>,
        namespace: &str,
        name: &str,
        what: &str,
        mut change: impl FnMut(&mut serde_json::Map<String, Value>) + Send,
    ) -> Option<(Value, bool)> {
        let mut before = None;
        let result = collection
            .update_with(
                Some(namespace),
                name,
                Some("status"),
                &QueryOptions::default(),
                |current| {
                    before = current
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let mut next = current.clone();
                    if let Some(status) = status_mut(&mut next) {
                        change(status);
                    }
                    Ok(next)
                },
            )
            .await;
        match result {
            Ok(written) => {
                let after = written
                    .object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str);
                let wrote = after != before.as_deref();
                Some((written.object, wrote))
            }
            Err(crate::rest::error::ApiError::NotFound(_)) => {
                self.forget(namespace, name);
                None
            }
            Err(error) => {
                tracing::warn!(namespace, device = name, %error, "{what} failed");
                None
            }
        }
    }
}

/// `object.status` as a map, created (or replaced, if not a map) when needed; `None` only
/// when `object` itself is not a JSON object.
pub(crate) fn status_mut(object: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let status = object
        .as_object_mut()?
        .entry("status")
        .or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    status.as_object_mut()
}

#[derive(Default)]
struct Sweep {
    to_offline: Vec<String>,
    checkpoints: Vec<(String, Timestamp)>,
    online: usize,
    offline: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(period_ms: u64) -> LivenessConfig {
        LivenessConfig {
            missed_periods: 3,
            default_period: Duration::from_millis(period_ms),
            checkpoint_interval: Duration::from_secs(300),
            sweep_interval: Duration::from_millis(10),
            shared: false,
        }
    }

    fn shared(period_ms: u64, checkpoint_ms: u64) -> LivenessConfig {
        LivenessConfig {
            checkpoint_interval: Duration::from_millis(checkpoint_ms),
            shared: true,
            ..config(period_ms)
        }
    }

    fn stored(last_seen: Timestamp, online: bool) -> StoredLiveness {
        StoredLiveness {
            last_seen: Some(last_seen),
            online: Some(online),
            period: None,
        }
    }

    #[test]
    fn shared_store_first_heartbeat_claims_the_device() {
        let l = Liveness::new(shared(1000, 5000));
        let now = Timestamp::now();
        assert_eq!(l.heartbeat("ns", "d", now, 7), HeartbeatCheck::Claim);
        l.reconciled("ns", "d", 7, 10, Some(now));
        l.observe("ns", "d", 10, stored(now, true));
        assert_eq!(l.heartbeat("ns", "d", now, 7), HeartbeatCheck::Unchanged);
        // Without a shared store a first heartbeat is a plain reconcile.
        let single = Liveness::new(config(1000));
        assert_eq!(
            single.heartbeat("ns", "d", now, 7),
            HeartbeatCheck::Reconcile
        );
    }

    #[test]
    fn shared_store_lets_go_of_a_device_another_replica_claimed() {
        let here = Liveness::new(shared(1000, 5000));
        let t0 = Timestamp::now();
        here.heartbeat("ns", "d", t0, 1);
        here.reconciled("ns", "d", 1, 5, Some(t0));
        // Another replica claims the device: its lastSeen write arrives through the watch.
        let t1 = t0 + SignedDuration::from_millis(500);
        here.observe("ns", "d", 6, stored(t1, true));
        // Past this replica's own grace (3 s) the device is not ours to judge ...
        let sweep = here.sweep(t1 + SignedDuration::from_millis(3100), 100);
        assert!(sweep.to_offline.is_empty(), "{:?}", sweep.to_offline);
        assert!(
            sweep.checkpoints.is_empty(),
            "checkpointed someone else's device"
        );
        // ... until the owner's checkpoints stop for the grace plus two checkpoint intervals.
        let sweep = here.sweep(t1 + SignedDuration::from_millis(13_100), 100);
        assert_eq!(sweep.to_offline, ["ns/d"]);
        // The device coming back here is claimed again.
        assert_eq!(
            here.heartbeat("ns", "d", t1 + SignedDuration::from_secs(14), 1),
            HeartbeatCheck::Claim
        );
    }

    #[test]
    fn stored_liveness_reads_the_fields_it_needs() {
        let bytes = br#"{"metadata":{"name":"d"},"spec":{"heartbeat":{"periodSeconds":30}},
            "status":{"lastSeen":"2030-01-01T00:00:00Z","online":false,"workloads":[]}}"#;
        let stored = StoredLiveness::from_stored(bytes);
        assert_eq!(stored.period, Some(Duration::from_secs(30)));
        assert_eq!(stored.online, Some(false));
        assert_eq!(
            stored.last_seen,
            Some("2030-01-01T00:00:00Z".parse().expect("time"))
        );
        assert_eq!(
            StoredLiveness::from_stored(b"not json"),
            StoredLiveness::default()
        );
    }

    #[test]
    fn shared_store_claims_until_the_claim_is_stored() {
        let l = Liveness::new(shared(1000, 5000));
        let now = Timestamp::now();
        assert_eq!(l.heartbeat("ns", "d", now, 1), HeartbeatCheck::Claim);
        // The claim's write failed: the next heartbeat claims again.
        assert_eq!(l.heartbeat("ns", "d", now, 1), HeartbeatCheck::Claim);
        l.reconciled("ns", "d", 1, 3, Some(now));
        assert_eq!(l.heartbeat("ns", "d", now, 1), HeartbeatCheck::Unchanged);
    }

    #[test]
    fn shared_store_ignores_events_older_than_what_it_wrote() {
        let l = Liveness::new(shared(1000, 5000));
        let t0 = Timestamp::now();
        l.heartbeat("ns", "d", t0, 1);
        l.reconciled("ns", "d", 1, 20, Some(t0));
        // A late event from before our write (online=false at revision 15) changes nothing:
        // when the device goes silent, we still write it offline.
        l.observe("ns", "d", 15, stored(t0, false));
        let sweep = l.sweep(t0 + SignedDuration::from_millis(3100), 100);
        assert_eq!(sweep.to_offline, ["ns/d"]);
    }

    #[test]
    fn shared_store_waits_for_a_slow_owner_refresh_before_judging() {
        // Another replica's device with a 20 s heartbeat period: its stored lastSeen moves
        // every 20 s, longer than the 5 s checkpoint interval and this replica's grace.
        let l = Liveness::new(shared(1000, 5000));
        let t0 = Timestamp::now();
        let every = SignedDuration::from_secs(20);
        for (i, revision) in (0..3).zip(10..) {
            l.observe("ns", "d", revision, stored(t0 + every * i, true));
        }
        let last = t0 + every * 2;
        // Within grace + two refresh gaps after the last refresh: still online.
        let sweep = l.sweep(last + SignedDuration::from_secs(40), 100);
        assert!(sweep.to_offline.is_empty(), "{:?}", sweep.to_offline);
        let sweep = l.sweep(last + SignedDuration::from_secs(44), 100);
        assert_eq!(sweep.to_offline, ["ns/d"]);
        // A period the device sets itself is used as its heartbeat period.
        let mut with_period = stored(last, true);
        with_period.period = Some(Duration::from_secs(30));
        l.observe("ns", "d", 20, with_period);
        let sweep = l.sweep(last + SignedDuration::from_secs(44), 100);
        assert!(
            sweep.to_offline.is_empty(),
            "3 × 30 s + 2 × 20 s not yet over"
        );
    }

    #[test]
    fn shared_store_own_writes_do_not_give_a_device_away() {
        let here = Liveness::new(shared(1000, 5000));
        let t0 = Timestamp::now();
        let t1 = t0 + SignedDuration::from_millis(900);
        assert_eq!(here.heartbeat("ns", "d", t0, 1), HeartbeatCheck::Claim);
        here.reconciled("ns", "d", 1, 9, Some(t0));
        assert_eq!(here.heartbeat("ns", "d", t1, 1), HeartbeatCheck::Unchanged);
        // Our own (older) lastSeen write comes back through the watch.
        here.observe("ns", "d", 9, stored(t0, true));
        let sweep = here.sweep(t1 + SignedDuration::from_millis(3100), 100);
        assert_eq!(
            sweep.to_offline,
            ["ns/d"],
            "own device judged by its own grace"
        );
        // And it is ours to checkpoint once a checkpoint interval has passed.
        let t2 = t0 + SignedDuration::from_secs(6);
        here.heartbeat("ns", "d", t2, 1);
        let sweep = here.sweep(t2, 100);
        assert_eq!(sweep.checkpoints, [("ns/d".to_string(), t2)]);
    }

    #[test]
    fn unchanged_only_after_reconcile_and_until_the_device_changes() {
        let l = Liveness::new(config(1000));
        let now = Timestamp::now();
        assert_eq!(l.heartbeat("ns", "d", now, 7), HeartbeatCheck::Reconcile);
        l.reconciled("ns", "d", 7, 10, None);
        l.observe("ns", "d", 10, StoredLiveness::default());
        assert_eq!(l.heartbeat("ns", "d", now, 7), HeartbeatCheck::Unchanged);
        assert_eq!(l.heartbeat("ns", "d", now, 8), HeartbeatCheck::Reconcile);
        l.reconciled("ns", "d", 8, 11, None);
        l.observe("ns", "d", 12, StoredLiveness::default());
        assert_eq!(l.heartbeat("ns", "d", now, 8), HeartbeatCheck::Reconcile);
    }

    #[test]
    fn offline_after_missed_periods_counting_from_start() {
        let l = Liveness::new(config(1000));
        let now = Timestamp::now();
        l.heartbeat("ns", "d", now, 1);
        l.reconciled("ns", "d", 1, 1, None);
        let sweep = l.sweep(now + SignedDuration::from_millis(2900), 100);
        assert!(sweep.to_offline.is_empty());
        assert_eq!(sweep.online, 1);
        let sweep = l.sweep(now + SignedDuration::from_millis(3100), 100);
        assert_eq!(sweep.to_offline, ["ns/d"]);
        // A device last seen long before this process started gets a grace period.
        let old = json!({"metadata": {"namespace": "ns", "name": "old"},
            "status": {"lastSeen": "2020-01-01T00:00:00Z", "online": true}});
        l.seed(&old);
        let sweep = l.sweep(Timestamp::now(), 100);
        assert!(!sweep.to_offline.contains(&"ns/old".to_string()));
    }

    #[test]
    fn presenter_merges_newer_last_seen_and_online() {
        let l = Arc::new(Liveness::new(config(60_000)));
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().expect("time");
        l.heartbeat("ns", "d", now, 1);
        let mut device = json!({"metadata": {"namespace": "ns", "name": "d"},
            "status": {"lastSeen": "2029-01-01T00:00:00Z", "online": false}});
        (l.presenter())(&mut device);
        assert_eq!(device["status"]["lastSeen"], "2030-01-01T00:00:00Z");
        assert_eq!(device["status"]["online"], true);
        let mut other = json!({"metadata": {"namespace": "ns", "name": "x"}});
        l.present(&mut other);
        assert!(other.get("status").is_none());
    }
}
