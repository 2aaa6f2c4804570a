//! EdgeConfig → PlaybookExecutions (`flotta-inventory.md` §2.5, §2.3): an EdgeConfig
//! targets the devices of its namespace labelled `config/device-by-config=<edgeconfig>`
//! (an operator sets the label). For each targeted device and each of the config's
//! playbooks this controller creates one PlaybookExecution, owned by the EdgeConfig
//! (`ownerReferences`, `controller: true`), with `spec.playbook` copied from the config,
//! `executionAttempt: 0` and a `Deploying` condition, and lists it in the device's
//! `status.PlaybookExec` (which the device API serves and heartbeats update). When every
//! execution of the device has finished (`SuccessfullyCompleted` or `CompletedWithError`),
//! the label is removed, as Flotta does; existing executions are never re-run or changed.
//!
//! Names: the first playbook's execution is `<device>-<edgeconfig>` (Flotta's name), the
//! n-th (n ≥ 1) `<device>-<edgeconfig>-<n>`; Flotta gave every playbook the first name, so
//! only one ran (§8.3). Devices are watched, so labelling a device later takes effect at
//! once (Flotta waited for a resync). When an EdgeConfig is deleted (or replaced by one of
//! the same name) its executions are deleted, as the garbage collector would do in a
//! cluster. The EdgeConfig's status gets `observedGeneration` and a `Ready` condition:
//! true once every targeted device has all its executions.
//!
//! Limits: executions are not updated when the playbooks change (as in Flotta); a device
//! targets at most one EdgeConfig at a time (one label); an execution name that is not a
//! valid object name (too long) is skipped and reported on the EdgeConfig.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use flotta_api::v1alpha1::{
    API_VERSION, PLAYBOOK_EXECUTION_COMPLETED_WITH_ERROR, PLAYBOOK_EXECUTION_DEPLOYING,
    PLAYBOOK_EXECUTION_SUCCESSFULLY_COMPLETED,
};
use serde_json::{Value, json};

use crate::client::{ClientError, EventType, Kind, Objects, Part};
use crate::condition::{self, Readiness};
use crate::informer::Observer;
use crate::labels::CONFIG_LABEL;
use crate::membership::Membership;
use crate::meta::{self, ObjectKey};
use crate::queue::WorkQueue;
use crate::reconciler::Reconciler;

/// How long an EdgeConfig's status update waits for more changes to batch with.
const STATUS_BATCH_DELAY: Duration = Duration::from_millis(100);

/// What the EdgeConfig controller reconciles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ConfigKey {
    /// A device's executions and label.
    Device(ObjectKey),
    /// An EdgeConfig's status, and the clean-up of executions it no longer owns.
    Config(ObjectKey),
}

/// A known PlaybookExecution.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Execution {
    /// The owning EdgeConfig's name and uid, if owned by one.
    owner: Option<(String, String)>,
    finished: bool,
}

#[derive(Debug)]
struct State {
    /// Which live devices name which EdgeConfig.
    attached: Membership,
    /// Live EdgeConfig → (uid, number of playbooks).
    configs: HashMap<ObjectKey, (String, usize)>,
    /// Known PlaybookExecutions.
    executions: HashMap<ObjectKey, Execution>,
    /// EdgeConfig name → the executions owned by an EdgeConfig of that name.
    owned: HashMap<ObjectKey, BTreeSet<String>>,
}

impl State {
    /// Nothing known yet (the informers fill it in).
    fn new() -> Self {
        State {
            attached: Membership::new(CONFIG_LABEL),
            configs: HashMap::new(),
            executions: HashMap::new(),
            owned: HashMap::new(),
        }
    }
}

/// The EdgeConfig controller.
pub(crate) struct EdgeConfigController {
    client: Arc<dyn Objects>,
    queue: WorkQueue<ConfigKey>,
    state: Mutex<State>,
}

/// The name of the execution of playbook `index` of `config` on `device`.
pub(crate) fn execution_name(device: &str, config: &str, index: usize) -> String {
    if index == 0 {
        format!("{device}-{config}")
    } else {
        format!("{device}-{config}-{index}")
    }
}

/// Whether an execution's last condition is a final one.
fn is_finished(execution: &Value) -> bool {
    execution
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.last())
        .is_some_and(|c| {
            let type_ = c.get("type").and_then(Value::as_str);
            let status = c.get("status").and_then(Value::as_str);
            matches!(
                type_,
                Some(
                    PLAYBOOK_EXECUTION_SUCCESSFULLY_COMPLETED
                        | PLAYBOOK_EXECUTION_COMPLETED_WITH_ERROR
                )
            ) && status.is_some_and(|s| s.eq_ignore_ascii_case("true"))
        })
}

/// The EdgeConfig owner (name, uid) of an execution.
fn owner_of(execution: &Value) -> Option<(String, String)> {
    execution
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("kind").and_then(Value::as_str) == Some(Kind::EdgeConfig.name()))
        .map(|r| {
            let field = |f: &str| {
                r.get(f)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (field("name"), field("uid"))
        })
}

/// The playbooks of an EdgeConfig object, as JSON.
fn playbooks(config: &Value) -> Vec<Value> {
    config
        .pointer("/spec/edgePlaybook/playbooks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A new execution of `playbook` on `device`, owned by `config`.
fn new_execution(name: &str, namespace: &str, config: &Value, playbook: Value) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": Kind::PlaybookExecution.name(),
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": Kind::EdgeConfig.name(),
                "name": meta::meta_str(config, "name").unwrap_or_default(),
                "uid": meta::meta_str(config, "uid").unwrap_or_default(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {"playbook": playbook, "executionAttempt": 0},
    })
}

/// The condition a new execution (and its device entry) starts with.
fn deploying(now: &str) -> Value {
    json!({"type": PLAYBOOK_EXECUTION_DEPLOYING, "status": "True", "lastTransitionTime": now})
}

/// A copy of `device` whose `status.PlaybookExec` lists every one of `names` (`None`
/// when it does); existing entries are left as they are.
fn with_device_executions(device: &Value, names: &[String], now: &str) -> Option<Value> {
    if meta::is_deleting(device) {
        return None;
    }
    let present: BTreeSet<&str> = meta::status_list_names(device, "PlaybookExec").collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !present.contains(n.as_str()))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut next = meta::status_list(device, "PlaybookExec").to_vec();
    for name in missing {
        next.push(json!({
            "name": name,
            "PlaybookExecutionStatus": {"conditions": [deploying(now)]},
        }));
    }
    let mut object = device.clone();
    meta::status_mut(&mut object).insert("PlaybookExec".into(), Value::Array(next));
    Some(object)
}

impl EdgeConfigController {
    /// A new controller.
    pub(crate) fn new(client: Arc<dyn Objects>) -> Self {
        EdgeConfigController {
            client,
            queue: WorkQueue::new(),
            state: Mutex::new(State::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain maps rebuilt from events; a poisoned lock still holds usable data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn config_changed(&self, config: ObjectKey) {
        self.queue
            .add_after(ConfigKey::Config(config), STATUS_BATCH_DELAY);
    }

    fn observe_device(&self, event: EventType, object: &Value) {
        let Some(moved) = self.state().attached.observe(event, object) else {
            return;
        };
        for config in moved.parents() {
            self.config_changed(config);
        }
        if moved.to.is_some() {
            self.queue.add(ConfigKey::Device(moved.device));
        }
    }

    fn observe_config(&self, event: EventType, object: &Value) {
        let Some(key) = ObjectKey::of(object) else {
            return;
        };
        let devices = {
            let mut state = self.state();
            if event == EventType::Deleted || meta::is_deleting(object) {
                state.configs.remove(&key);
                Vec::new()
            } else {
                let info = (
                    meta::meta_str(object, "uid").unwrap_or_default().to_owned(),
                    playbooks(object).len(),
                );
                if state.configs.insert(key.clone(), info.clone()) == Some(info) {
                    Vec::new()
                } else {
                    state
                        .attached
                        .members(&key)
                        .map(|d| d.iter().cloned().collect())
                        .unwrap_or_default()
                }
            }
        };
        for device in devices {
            self.queue
                .add(ConfigKey::Device(ObjectKey::new(&key.namespace, device)));
        }
        self.queue.add(ConfigKey::Config(key));
    }

    fn observe_execution(&self, event: EventType, object: &Value) {
        let Some(key) = ObjectKey::of(object) else {
            return;
        };
        let (configs, device) = {
            let mut state = self.state();
            let old = state.executions.remove(&key);
            let new = (event != EventType::Deleted).then(|| Execution {
                owner: owner_of(object),
                finished: is_finished(object),
            });
            if old == new {
                if let Some(new) = new {
                    state.executions.insert(key, new);
                }
                return;
            }
            let mut configs = Vec::new();
            if let Some((name, _)) = old.as_ref().and_then(|o| o.owner.clone()) {
                let config = ObjectKey::new(&key.namespace, name);
                if let Some(owned) = state.owned.get_mut(&config) {
                    owned.remove(&key.name);
                    if owned.is_empty() {
                        state.owned.remove(&config);
                    }
                }
                configs.push(config);
            }
            let mut device = None;
            if let Some(execution) = &new {
                if let Some((name, _)) = &execution.owner {
                    let config = ObjectKey::new(&key.namespace, name);
                    state
                        .owned
                        .entry(config.clone())
                        .or_default()
                        .insert(key.name.clone());
                    if execution.finished {
                        device = device_of_execution(&state, &config, &key.name);
                    }
                    configs.push(config);
                }
                state.executions.insert(key.clone(), execution.clone());
            }
            (configs, device)
        };
        for config in configs {
            self.config_changed(config);
        }
        if let Some(device) = device {
            self.queue
                .add(ConfigKey::Device(ObjectKey::new(&key.namespace, device)));
        }
    }

    async fn reconcile_device(&self, key: &ObjectKey) -> Result<(), ClientError> {
        let ns = key.namespace.as_str();
        let Some(device) = self.client.get(Kind::EdgeDevice, ns, &key.name).await? else {
            return Ok(());
        };
        if meta::is_deleting(&device) {
            return Ok(());
        }
        let Some(config_name) = meta::label(&device, CONFIG_LABEL).map(str::to_owned) else {
            return Ok(());
        };
        let Some(config) = self.client.get(Kind::EdgeConfig, ns, &config_name).await? else {
            // The EdgeConfig's creation brings this device back.
            return Ok(());
        };
        if meta::is_deleting(&config) {
            return Ok(());
        }
        let playbooks = playbooks(&config);
        let mut names = Vec::with_capacity(playbooks.len());
        let mut all_finished = !playbooks.is_empty();
        let now = meta::now();
        for (index, playbook) in playbooks.into_iter().enumerate() {
            let name = execution_name(&key.name, &config_name, index);
            match self.client.get(Kind::PlaybookExecution, ns, &name).await? {
                Some(existing) => all_finished &= is_finished(&existing),
                None => {
                    all_finished = false;
                    let execution = new_execution(&name, ns, &config, playbook);
                    match self
                        .client
                        .create(Kind::PlaybookExecution, ns, execution)
                        .await
                    {
                        Ok(_) | Err(ClientError::AlreadyExists(_)) => {}
                        Err(ClientError::Invalid(reason)) => {
                            tracing::warn!(device = %key, execution = %name, %reason, "cannot create the playbook execution");
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                    self.client
                        .modify(
                            Kind::PlaybookExecution,
                            ns,
                            &name,
                            Part::Status,
                            &mut |current| {
                                Ok(current.pointer("/status/conditions").is_none().then(|| {
                                    let mut next = current.clone();
                                    meta::status_mut(&mut next)
                                        .insert("conditions".into(), json!([deploying(&now)]));
                                    next
                                }))
                            },
                        )
                        .await?;
                }
            }
            names.push(name);
        }
        let written = self
            .client
            .modify_if_present(Kind::EdgeDevice, key, Part::Status, &mut |current| {
                Ok(with_device_executions(current, &names, &now))
            })
            .await?;
        if written.is_none() || !all_finished {
            return Ok(());
        }
        let removed = self
            .client
            .modify_if_present(Kind::EdgeDevice, key, Part::Main, &mut |current| {
                if meta::label(current, CONFIG_LABEL) != Some(config_name.as_str()) {
                    return Ok(None);
                }
                let mut next = current.clone();
                meta::labels_mut(&mut next).remove(CONFIG_LABEL);
                Ok(Some(next))
            })
            .await?;
        if removed.is_some() {
            tracing::info!(device = %key, config = %config_name, "playbooks finished; detached the device from its EdgeConfig");
        }
        Ok(())
    }

    async fn reconcile_config(&self, key: &ObjectKey) -> Result<(), ClientError> {
        let ns = key.namespace.as_str();
        let config = self.client.get(Kind::EdgeConfig, ns, &key.name).await?;
        let live = config.as_ref().filter(|c| !meta::is_deleting(c));
        let uid = live.and_then(|c| meta::meta_str(c, "uid"));
        let orphans: Vec<String> = {
            let state = self.state();
            state
                .owned
                .get(key)
                .into_iter()
                .flatten()
                .filter(|name| {
                    let owner = state
                        .executions
                        .get(&ObjectKey::new(ns, name.as_str()))
                        .and_then(|e| e.owner.as_ref());
                    owner.is_some_and(|(_, owner_uid)| Some(owner_uid.as_str()) != uid)
                })
                .cloned()
                .collect()
        };
        for name in &orphans {
            self.client
                .delete_if_present(Kind::PlaybookExecution, ns, name)
                .await?;
        }
        if !orphans.is_empty() {
            tracing::info!(config = %key, deleted = orphans.len(), "deleted the playbook executions of a removed EdgeConfig");
        }
        let Some(config) = live else {
            return Ok(());
        };
        let readiness = self.readiness(key, playbooks(config).len());
        self.client
            .modify_if_present(Kind::EdgeConfig, key, Part::Status, &mut |current| {
                Ok(condition::with_readiness(current, &readiness))
            })
            .await?;
        Ok(())
    }

    fn readiness(&self, key: &ObjectKey, playbooks: usize) -> Readiness {
        if playbooks == 0 {
            return Readiness::not_ready("NoPlaybooks", "spec.edgePlaybook.playbooks is empty");
        }
        let state = self.state();
        let devices = state.attached.members(key);
        let total = devices.map_or(0, BTreeSet::len);
        let done = devices.map_or(0, |devices| {
            devices
                .iter()
                .filter(|d| {
                    (0..playbooks).all(|i| {
                        let name = execution_name(d, &key.name, i);
                        state
                            .executions
                            .contains_key(&ObjectKey::new(&key.namespace, name))
                    })
                })
                .count()
        });
        if done == total {
            Readiness::ready(
                "ExecutionsCreated",
                format!("{total} device(s) have their playbook executions"),
            )
        } else {
            Readiness::not_ready(
                "CreatingExecutions",
                format!("{done} of {total} device(s) have their playbook executions"),
            )
        }
    }
}

/// The attached device an execution of `config` named `execution` belongs to.
fn device_of_execution(state: &State, config: &ObjectKey, execution: &str) -> Option<String> {
    let suffix = format!("-{}", config.name);
    let base = match execution.strip_suffix(&suffix) {
        Some(device) => device,
        None => {
            let (rest, index) = execution.rsplit_once('-')?;
            index.parse::<usize>().ok()?;
            rest.strip_suffix(&suffix)?
        }
    };
    state
        .attached
        .members(config)
        .filter(|devices| devices.contains(base))
        .map(|_| base.to_owned())
}

impl Observer for EdgeConfigController {
    fn observe(&self, kind: Kind, event: EventType, object: &Value) {
        match kind {
            Kind::EdgeDevice => self.observe_device(event, object),
            Kind::EdgeConfig => self.observe_config(event, object),
            Kind::PlaybookExecution => self.observe_execution(event, object),
            _ => {}
        }
    }
}

#[async_trait]
impl Reconciler for EdgeConfigController {
    type Key = ConfigKey;
    const NAME: &'static str = "edge-config";

    fn queue(&self) -> &WorkQueue<ConfigKey> {
        &self.queue
    }

    async fn reconcile(&self, key: &ConfigKey) -> Result<(), ClientError> {
        match key {
            ConfigKey::Device(device) => self.reconcile_device(device).await,
            ConfigKey::Config(config) => self.reconcile_config(config).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_flottas_first_and_number_the_rest() {
        assert_eq!(execution_name("dev", "cfg", 0), "dev-cfg");
        assert_eq!(execution_name("dev", "cfg", 2), "dev-cfg-2");
    }

    #[test]
    fn executions_map_back_to_attached_devices() {
        let mut state = State::new();
        let config = ObjectKey::new("ns", "cfg");
        let device = json!({"metadata": {"name": "dev", "namespace": "ns",
            "labels": {CONFIG_LABEL: "cfg"}}});
        state.attached.observe(EventType::Added, &device);
        assert_eq!(
            device_of_execution(&state, &config, "dev-cfg").as_deref(),
            Some("dev")
        );
        assert_eq!(
            device_of_execution(&state, &config, "dev-cfg-3").as_deref(),
            Some("dev")
        );
        assert_eq!(device_of_execution(&state, &config, "other-cfg"), None);
    }

    #[test]
    fn finished_means_a_final_last_condition() {
        let with = |conditions: Value| json!({"status": {"conditions": conditions}});
        assert!(!is_finished(&json!({})));
        assert!(!is_finished(&with(
            json!([{"type": "Running", "status": "True"}])
        )));
        assert!(is_finished(&with(
            json!([{"type": "Running", "status": "False"},
            {"type": "SuccessfullyCompleted", "status": "True"}])
        )));
        assert!(is_finished(&with(
            json!([{"type": "CompletedWithError", "status": "true"}])
        )));
    }

    #[test]
    fn device_entries_are_appended_once() {
        let device = json!({"metadata": {"name": "d"}, "status": {"PlaybookExec": [
            {"name": "d-c", "PlaybookExecutionStatus": {"conditions": [{"type": "Running", "status": "True"}]}}]}});
        let names = vec!["d-c".to_owned(), "d-c-1".to_owned()];
        let next = with_device_executions(&device, &names, "now").unwrap();
        let list = next["status"]["PlaybookExec"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0]["PlaybookExecutionStatus"]["conditions"][0]["type"],
            "Running"
        );
        assert_eq!(list[1]["name"], "d-c-1");
        assert!(with_device_executions(&next, &names, "later").is_none());
    }
}
