//! Flotta's controllers (`flotta-inventory.md` §2), run in-process by the API server and
//! written against [`client::Objects`], a small async client over the six Flotta kinds that
//! the server implements over its REST layer.
//!
//! - signed requests: EdgeDeviceSignedRequest approval (automatic unless
//!   [`Config::auto_approve`] is off) creating the EdgeDevice;
//! - placement: EdgeWorkload → EdgeDevice by `spec.device` or `spec.deviceSelector`,
//!   maintained from both sides through in-memory indexes;
//! - device sets: EdgeDeviceSet member counts and status;
//! - devices: the device finalizer and clean-up on deletion;
//! - EdgeConfigs: one PlaybookExecution per targeted device and playbook.
//!
//! # Controllers
//!
//! Each controller observes watch events through shared informers (one list-then-watch
//! per kind), updates its in-memory indexes, and queues keys in its own
//! [`queue::WorkQueue`], which coalesces repeated keys and retries failures with backoff.
//! Workers start once every informer has listed its kind, so no controller acts on a
//! half-known world. Reconciles are level-based and idempotent: they read the current
//! object, compute what it should be, and write only the difference, with compare-and-swap
//! retries ([`client::Objects::modify`]). A controller that owns an object's status keeps
//! `status.observedGeneration` and a `Ready` condition there ([`condition`]).
//!
//! # Runtime
//!
//! [`start`] spawns everything on the current tokio runtime and returns [`Controllers`],
//! whose [`Controllers::shutdown`] stops it (dropping it aborts the tasks).
//!
//! Limits: one process runs the controllers (no leader election between replicas yet);
//! controller state is in memory and rebuilt from a full list at start.

pub mod client;
pub mod condition;
pub mod labels;
pub mod meta;
pub mod queue;

mod device;
mod device_set;
mod edge_config;
mod informer;
mod membership;
mod placement;
mod reconciler;
mod signed_request;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use client::{
    Change, ClientError, EventStream, EventType, Kind, Listed, Objects, Part, Revision, WatchEvent,
};

use device::DeviceController;
use device_set::DeviceSetController;
use edge_config::EdgeConfigController;
use informer::{Informer, Observer};
use placement::PlacementController;
use reconciler::Reconciler;
use signed_request::SignedRequestController;

/// How long [`Controllers::shutdown`] lets workers finish the reconcile they are in.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Controller settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Approve every EdgeDeviceSignedRequest automatically (Flotta's
    /// `AUTO_APPROVAL_PROCESS`); when false an operator sets `spec.approved=true`.
    pub auto_approve: bool,
    /// Concurrent reconciles per controller (at least 1).
    pub workers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            auto_approve: true,
            workers: 2,
        }
    }
}

/// What [`Controllers`] needs from each controller's queue.
trait QueueControl: Send + Sync {
    fn shut_down(&self);
    fn is_idle(&self) -> bool;
}

impl<R: Reconciler> QueueControl for R {
    fn shut_down(&self) {
        self.queue().shut_down();
    }

    fn is_idle(&self) -> bool {
        self.queue().is_idle()
    }
}

/// The running controllers (see [`start`]).
pub struct Controllers {
    informers: JoinSet<()>,
    workers: JoinSet<()>,
    synced: Vec<watch::Receiver<bool>>,
    queues: Vec<Arc<dyn QueueControl>>,
}

impl std::fmt::Debug for Controllers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controllers")
            .field("synced", &self.is_synced())
            .field("idle", &self.is_idle())
            .finish()
    }
}

/// Starts every controller against `client` on the current tokio runtime.
pub fn start(client: Arc<dyn Objects>, config: Config) -> Controllers {
    let workers_per_controller = config.workers.max(1);
    let signed = Arc::new(SignedRequestController::new(
        client.clone(),
        config.auto_approve,
    ));
    let placement = Arc::new(PlacementController::new(client.clone()));
    let sets = Arc::new(DeviceSetController::new(client.clone()));
    let devices = Arc::new(DeviceController::new(client.clone()));
    let configs = Arc::new(EdgeConfigController::new(client.clone()));

    let observers: Vec<(Kind, Vec<Arc<dyn Observer>>)> = vec![
        (
            Kind::EdgeDevice,
            vec![
                placement.clone(),
                sets.clone(),
                devices.clone(),
                configs.clone(),
            ],
        ),
        (Kind::EdgeWorkload, vec![placement.clone()]),
        (Kind::EdgeDeviceSignedRequest, vec![signed.clone()]),
        (Kind::EdgeDeviceSet, vec![sets.clone()]),
        (Kind::EdgeConfig, vec![configs.clone()]),
        (Kind::PlaybookExecution, vec![configs.clone()]),
    ];
    let mut informers = JoinSet::new();
    let mut synced = Vec::new();
    for (kind, observers) in observers {
        let (tx, rx) = watch::channel(false);
        informers.spawn(Informer::new(client.clone(), kind, observers).run(tx));
        synced.push(rx);
    }

    let mut workers = JoinSet::new();
    for _ in 0..workers_per_controller {
        spawn_worker(&mut workers, &synced, signed.clone());
        spawn_worker(&mut workers, &synced, placement.clone());
        spawn_worker(&mut workers, &synced, sets.clone());
        spawn_worker(&mut workers, &synced, devices.clone());
        spawn_worker(&mut workers, &synced, configs.clone());
    }
    tracing::info!(
        auto_approve = config.auto_approve,
        workers = workers_per_controller,
        "controllers started"
    );
    Controllers {
        informers,
        workers,
        synced,
        queues: vec![signed, placement, sets, devices, configs],
    }
}

/// A worker that starts reconciling once every informer has synced.
fn spawn_worker<R: Reconciler>(
    set: &mut JoinSet<()>,
    synced: &[watch::Receiver<bool>],
    reconciler: Arc<R>,
) {
    let mut gates = synced.to_vec();
    set.spawn(async move {
        for gate in &mut gates {
            if gate.wait_for(|synced| *synced).await.is_err() {
                return;
            }
        }
        reconciler::work(reconciler).await;
    });
}

impl Controllers {
    /// Whether every informer has listed its kind once.
    pub fn is_synced(&self) -> bool {
        self.synced.iter().all(|s| *s.borrow())
    }

    /// Waits until every informer has listed its kind once.
    pub async fn synced(&self) {
        for gate in &self.synced {
            let mut gate = gate.clone();
            // An informer only goes away with the controllers, so an error means "stopped".
            let _ = gate.wait_for(|synced| *synced).await;
        }
    }

    /// Whether every controller's queue is empty with nothing delayed or in progress.
    /// Events still travelling from the store are not seen, so "idle" is a snapshot.
    pub fn is_idle(&self) -> bool {
        self.is_synced() && self.queues.iter().all(|q| q.is_idle())
    }

    /// Stops the controllers: no new reconciles start, the ones in progress get a few
    /// seconds to finish, and the informers stop.
    pub async fn shutdown(mut self) {
        for queue in &self.queues {
            queue.shut_down();
        }
        self.informers.abort_all();
        let drain = async { while self.workers.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!("controllers: reconciles still running at shutdown; aborting them");
            self.workers.abort_all();
        }
        while self.informers.join_next().await.is_some() {}
        tracing::info!("controllers stopped");
    }

    /// Stops the controllers at once, cutting reconciles short (for a replica that lost
    /// its leadership and must stop writing before another one starts). Their writes are
    /// compare-and-swap, so an interrupted reconcile leaves nothing half-written; the next
    /// leader redoes it.
    pub async fn abort(mut self) {
        for queue in &self.queues {
            queue.shut_down();
        }
        self.informers.abort_all();
        self.workers.abort_all();
        while self.workers.join_next().await.is_some() {}
        while self.informers.join_next().await.is_some() {}
        tracing::info!("controllers aborted");
    }
}
