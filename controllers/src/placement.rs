//! Workload placement (`flotta-inventory.md` §2.3, §2.4): an EdgeWorkload runs on the
//! EdgeDevice named by `spec.device`, or else on the devices of its namespace whose labels
//! match `spec.deviceSelector` (no target means no devices). Placement is maintained from
//! both sides, workload changes and device label changes, through the in-memory
//! [`index`], so a device change costs O(workloads filed under its labels) and a workload
//! change O(candidate devices), never a scan of all devices per device.
//!
//! Placement is recorded on each device the way Flotta records it, which is what the device
//! configuration is rendered from:
//! - `status.workloads[]`: one entry per placed workload; new ones are added as
//!   `{name, phase: Deploying, lastTransitionTime}`, existing entries (with the phases the
//!   device reports in heartbeats) are kept, and unplaced ones are removed;
//! - labels `workload/<name>=true` (for names that fit in a label key), so
//!   `kubectl get edgedevices -l workload/<name>` lists a workload's devices.
//!
//! Devices are reconciled one at a time with every change to them coalesced, so a burst of
//! workload changes costs each affected device at most two writes (status, labels) per
//! reconcile, and devices whose placement does not change are not written at all.
//!
//! Each live workload carries the finalizer `yggdrasil-device-reference-finalizer`; when it
//! is deleted it leaves every device, and the finalizer is removed once no live device
//! records it any more (Flotta looked those devices up with a label query that never
//! matched, §8.3, and could leave stale entries behind). The workload's status gets
//! `observedGeneration` and a `Ready` condition: `Placed` once every targeted device
//! records it, `Placing` before, `NoTarget`, `InvalidSelector` or `DeviceNotFound` when it
//! cannot be placed.
//!
//! Limits: placement does not look at EdgeDeviceSets (as in Flotta); devices being deleted
//! keep their recorded workloads (their configuration is empty anyway) and stop counting.

pub(crate) mod index;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use flotta_api::selector::Selector;
use flotta_api::v1alpha1::{EdgeWorkload, WORKLOAD_PHASE_DEPLOYING};
use serde_json::{Value, json};

use crate::client::{ClientError, EventType, Kind, Objects, Part};
use crate::condition::{self, Readiness};
use crate::informer::Observer;
use crate::labels::{
    WORKLOAD_FINALIZER, WORKLOAD_LABEL_PREFIX, WORKLOAD_LABEL_VALUE, workload_label,
};
use crate::meta::{self, ObjectKey};
use crate::queue::WorkQueue;
use crate::reconciler::Reconciler;
use index::{Changes, PlacementIndex, Recorded, Target};

/// How long a workload's status update waits for more device changes to batch with.
const STATUS_BATCH_DELAY: Duration = Duration::from_millis(100);

/// What the placement controller reconciles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PlacementKey {
    /// Write a device's recorded placement.
    Device(ObjectKey),
    /// A workload's finalizer and status.
    Workload(ObjectKey),
}

#[derive(Debug, Default)]
struct State {
    index: PlacementIndex,
    /// Why a live workload targets nothing: (reason, message).
    problems: HashMap<ObjectKey, (&'static str, String)>,
    /// Live workloads that name a device with `spec.device`.
    by_name: HashMap<ObjectKey, String>,
    /// Workloads being deleted.
    deleting: HashSet<ObjectKey>,
}

/// The placement controller.
pub(crate) struct PlacementController {
    client: Arc<dyn Objects>,
    queue: WorkQueue<PlacementKey>,
    state: Mutex<State>,
}

impl PlacementController {
    /// A controller with an empty index (filled by the informers).
    pub(crate) fn new(client: Arc<dyn Objects>) -> Self {
        PlacementController {
            client,
            queue: WorkQueue::new(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The index is rebuilt from events only; a poisoned lock still holds usable data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enqueue(&self, changes: Changes) {
        for device in changes.devices {
            self.queue.add(PlacementKey::Device(device));
        }
        for workload in changes.workloads {
            self.queue
                .add_after(PlacementKey::Workload(workload), STATUS_BATCH_DELAY);
        }
    }

    fn observe_device(&self, event: EventType, object: &Value) {
        let Some(key) = ObjectKey::of(object) else {
            return;
        };
        let changes = if event == EventType::Deleted || meta::is_deleting(object) {
            self.state().index.remove_device(&key)
        } else {
            let labels = meta::labels(object);
            let workloads = meta::status_list_names(object, "workloads")
                .map(str::to_owned)
                .collect();
            let recorded = Recorded::from_labels(&labels, workloads);
            self.state().index.upsert_device(&key, labels, recorded)
        };
        self.enqueue(changes);
    }

    fn observe_workload(&self, event: EventType, object: &Value) {
        let Some(key) = ObjectKey::of(object) else {
            return;
        };
        let changes = {
            let mut state = self.state();
            state.problems.remove(&key);
            state.by_name.remove(&key);
            if event == EventType::Deleted {
                state.deleting.remove(&key);
                state.index.remove_workload(&key)
            } else if meta::is_deleting(object) {
                state.deleting.insert(key.clone());
                state.index.remove_workload(&key)
            } else {
                state.deleting.remove(&key);
                let target = match target_of(object) {
                    Ok(target) => target,
                    Err((reason, message)) => {
                        state.problems.insert(key.clone(), (reason, message));
                        Target::Nothing
                    }
                };
                if let Target::Device(name) = &target {
                    state.by_name.insert(key.clone(), name.clone());
                }
                state.index.upsert_workload(&key, target)
            }
        };
        self.enqueue(changes);
        if event != EventType::Deleted {
            self.queue.add(PlacementKey::Workload(key));
        }
    }

    async fn reconcile_device(&self, key: &ObjectKey) -> Result<(), ClientError> {
        let Some(desired) = self.state().index.desired(key) else {
            return Ok(());
        };
        let now = meta::now();
        let written = self
            .client
            .modify_if_present(Kind::EdgeDevice, key, Part::Status, &mut |current| {
                Ok(with_status_workloads(current, &desired, &now))
            })
            .await?;
        if written.is_none() {
            return Ok(());
        }
        self.client
            .modify_if_present(Kind::EdgeDevice, key, Part::Main, &mut |current| {
                Ok(with_workload_labels(current, &desired))
            })
            .await?;
        Ok(())
    }

    async fn reconcile_workload(&self, key: &ObjectKey) -> Result<(), ClientError> {
        let kind = Kind::EdgeWorkload;
        let Some(object) = self.client.get(kind, &key.namespace, &key.name).await? else {
            return Ok(());
        };
        if meta::is_deleting(&object) {
            if !meta::has_finalizer(&object, WORKLOAD_FINALIZER) {
                return Ok(());
            }
            let remaining = self.state().index.recorded_count(key);
            if remaining > 0 {
                // The devices' own events bring this key back once they are rewritten.
                tracing::debug!(workload = %key, remaining, "workload deletion waits for its devices");
                return Ok(());
            }
            self.client
                .modify_if_present(kind, key, Part::Main, &mut |current| {
                    Ok(meta::without_finalizer(current, WORKLOAD_FINALIZER))
                })
                .await?;
            return Ok(());
        }
        if !meta::has_finalizer(&object, WORKLOAD_FINALIZER) {
            self.client
                .modify_if_present(kind, key, Part::Main, &mut |current| {
                    Ok(if meta::is_deleting(current) {
                        None
                    } else {
                        meta::with_finalizer(current, WORKLOAD_FINALIZER)
                    })
                })
                .await?;
        }
        let Some(readiness) = self.readiness(key) else {
            // Not indexed yet: the informer's event for it is on its way.
            return Ok(());
        };
        self.client
            .modify_if_present(kind, key, Part::Status, &mut |current| {
                Ok(condition::with_readiness(current, &readiness))
            })
            .await?;
        Ok(())
    }

    fn readiness(&self, key: &ObjectKey) -> Option<Readiness> {
        let state = self.state();
        if let Some((reason, message)) = state.problems.get(key) {
            return Some(Readiness::not_ready(reason, message.clone()));
        }
        let progress = state.index.progress(key)?;
        if progress.targeted == 0
            && let Some(device) = state.by_name.get(key)
        {
            return Some(Readiness::not_ready(
                "DeviceNotFound",
                format!(
                    "EdgeDevice {device:?} does not exist in namespace {:?}",
                    key.namespace
                ),
            ));
        }
        Some(if progress.recorded == progress.targeted {
            Readiness::ready(
                "Placed",
                format!("placed on {} device(s)", progress.targeted),
            )
        } else {
            Readiness::not_ready(
                "Placing",
                format!("placing on {} device(s)", progress.targeted),
            )
        })
    }
}

/// Which devices a workload object targets, or why it targets none.
fn target_of(object: &Value) -> Result<Target, (&'static str, String)> {
    let workload: EdgeWorkload =
        meta::decode(Kind::EdgeWorkload, object).map_err(|e| ("InvalidSpec", e.to_string()))?;
    if let Some(device) = workload.spec.device.filter(|d| !d.is_empty()) {
        return Ok(Target::Device(device));
    }
    match workload.spec.device_selector {
        Some(selector) => Selector::from_label_selector(&selector)
            .map(Target::Selector)
            .map_err(|e| ("InvalidSelector", e.to_string())),
        None => Err((
            "NoTarget",
            "neither spec.device nor spec.deviceSelector is set".to_owned(),
        )),
    }
}

/// A copy of `device` whose `status.workloads` lists exactly `desired` (`None` when it
/// already does): entries of placed workloads are kept as they are, new ones are added
/// as `Deploying`, the rest are removed.
fn with_status_workloads(device: &Value, desired: &BTreeSet<String>, now: &str) -> Option<Value> {
    if meta::is_deleting(device) {
        return None;
    }
    let current = meta::status_list(device, "workloads");
    let mut seen = BTreeSet::new();
    let mut next: Vec<Value> = current
        .iter()
        .filter(|w| {
            w.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| desired.contains(n) && seen.insert(n.to_owned()))
        })
        .cloned()
        .collect();
    for name in desired.difference(&seen) {
        next.push(json!({
            "name": name,
            "phase": WORKLOAD_PHASE_DEPLOYING,
            "lastTransitionTime": now,
        }));
    }
    if next.as_slice() == current {
        return None;
    }
    let mut object = device.clone();
    let status = meta::status_mut(&mut object);
    if next.is_empty() {
        status.remove("workloads");
    } else {
        status.insert("workloads".into(), Value::Array(next));
    }
    Some(object)
}

/// A copy of `device` whose `workload/*` labels are exactly those of `desired` (`None`
/// when they already are).
fn with_workload_labels(device: &Value, desired: &BTreeSet<String>) -> Option<Value> {
    if meta::is_deleting(device) {
        return None;
    }
    let labels = meta::labels(device);
    let stale: Vec<&String> = labels
        .iter()
        .filter(|(k, v)| {
            k.strip_prefix(WORKLOAD_LABEL_PREFIX)
                .is_some_and(|name| !desired.contains(name) && v.as_str() == WORKLOAD_LABEL_VALUE)
        })
        .map(|(k, _)| k)
        .collect();
    let missing: Vec<String> = desired
        .iter()
        .filter_map(|name| workload_label(name))
        .filter(|k| labels.get(k).map(String::as_str) != Some(WORKLOAD_LABEL_VALUE))
        .collect();
    if stale.is_empty() && missing.is_empty() {
        return None;
    }
    let mut object = device.clone();
    let map = meta::labels_mut(&mut object);
    for key in stale {
        map.remove(key);
    }
    for key in missing {
        map.insert(key, json!(WORKLOAD_LABEL_VALUE));
    }
    if map.is_empty() {
        meta::meta_mut(&mut object).remove("labels");
    }
    Some(object)
}

impl Observer for PlacementController {
    fn observe(&self, kind: Kind, event: EventType, object: &Value) {
        match kind {
            Kind::EdgeDevice => self.observe_device(event, object),
            Kind::EdgeWorkload => self.observe_workload(event, object),
            _ => {}
        }
    }
}

#[async_trait]
impl Reconciler for PlacementController {
    type Key = PlacementKey;
    const NAME: &'static str = "placement";

    fn queue(&self) -> &WorkQueue<PlacementKey> {
        &self.queue
    }

    async fn reconcile(&self, key: &PlacementKey) -> Result<(), ClientError> {
        match key {
            PlacementKey::Device(device) => self.reconcile_device(device).await,
            PlacementKey::Workload(workload) => self.reconcile_workload(workload).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn status_keeps_reported_phases_adds_new_and_drops_unplaced() {
        let device = json!({"metadata": {"name": "d"}, "status": {"phase": "up", "workloads": [
            {"name": "a", "phase": "Running"}, {"name": "b", "phase": "Exited"}]}});
        let next = with_status_workloads(&device, &names(&["a", "c"]), "now").unwrap();
        assert_eq!(
            next["status"]["workloads"],
            json!([{"name": "a", "phase": "Running"},
                   {"name": "c", "phase": "Deploying", "lastTransitionTime": "now"}])
        );
        assert_eq!(next["status"]["phase"], "up");
        assert!(with_status_workloads(&next, &names(&["a", "c"]), "later").is_none());
        let empty = with_status_workloads(&next, &names(&[]), "now").unwrap();
        assert!(empty["status"].get("workloads").is_none());
    }

    #[test]
    fn labels_follow_the_desired_set_and_leave_others_alone() {
        let device = json!({"metadata": {"name": "d", "labels": {
            "app": "x", "workload/old": "true", "workload/user": "pinned"}}});
        let next = with_workload_labels(&device, &names(&["new"])).unwrap();
        assert_eq!(
            next["metadata"]["labels"],
            json!({"app": "x", "workload/new": "true", "workload/user": "pinned"})
        );
        assert!(with_workload_labels(&next, &names(&["new"])).is_none());
    }

    #[test]
    fn targets_from_spec() {
        let workload = |spec: Value| {
            json!({"apiVersion": "management.project-flotta.io/v1alpha1", "kind": "EdgeWorkload",
                   "metadata": {"name": "w", "namespace": "ns"}, "spec": spec})
        };
        assert_eq!(
            target_of(&workload(json!({"type": "pod", "device": "d1",
                "deviceSelector": {"matchLabels": {"a": "b"}}}))),
            Ok(Target::Device("d1".into()))
        );
        assert!(matches!(
            target_of(&workload(
                json!({"type": "pod", "deviceSelector": {"matchLabels": {"a": "b"}}})
            )),
            Ok(Target::Selector(_))
        ));
        assert!(matches!(
            target_of(&workload(json!({"type": "pod"}))),
            Err(("NoTarget", _))
        ));
        assert!(matches!(
            target_of(&workload(json!({"type": "pod", "deviceSelector": {
                "matchExpressions": [{"key": "a", "operator": "Sideways"}]}}))),
            Err(("InvalidSelector", _))
        ));
    }
}
