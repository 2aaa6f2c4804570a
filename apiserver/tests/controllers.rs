//! The in-process controllers against the real REST layer: `StoreObjects` over real
//! `Collection`s and an in-memory store, driven the way kubectl would drive the server
//! (creates, merge patches, deletes through the same object semantics). A counting store
//! wrapper proves which objects the controllers write.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flotta_api::store::memory::MemoryStore;
use flotta_api::store::{KeyValue, ListResult, Revision, Store, StoreError, WatchStream};
use flotta_apiserver::controllers::{StoreObjects, start};
use flotta_apiserver::resources;
use flotta_controllers::{Config, Controllers, Kind, Objects, Part};
use serde_json::{Value, json};
use tokio::time::Instant;

const API_VERSION: &str = "management.project-flotta.io/v1alpha1";

/// A [`MemoryStore`] that counts writes (create, update, delete) per key.
struct CountingStore {
    inner: MemoryStore,
    writes: Mutex<HashMap<String, usize>>,
}

impl CountingStore {
    fn new() -> Self {
        CountingStore {
            inner: MemoryStore::new(1_000_000),
            writes: Mutex::new(HashMap::new()),
        }
    }

    fn count(&self, key: &str) {
        *self
            .writes
            .lock()
            .expect("write counts")
            .entry(key.to_owned())
            .or_default() += 1;
    }

    /// Writes per key since the last call, and resets the counts.
    fn take_writes(&self) -> HashMap<String, usize> {
        std::mem::take(&mut *self.writes.lock().expect("write counts"))
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        start: &str,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult, StoreError> {
        self.inner.list(prefix, start, limit, revision).await
    }
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let rev = self.inner.create(key, value).await?;
        self.count(key);
        Ok(rev)
    }
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let rev = self.inner.update(key, value, expected).await?;
        self.count(key);
        Ok(rev)
    }
    async fn delete(&self, key: &str, expected: Revision) -> Result<Revision, StoreError> {
        let rev = self.inner.delete(key, expected).await?;
        self.count(key);
        Ok(rev)
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, after).await
    }
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.inner.current_revision().await
    }
    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.inner.compacted_revision().await
    }
    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
}

/// The controllers running over a counting store, and a client playing the operator.
struct Harness {
    store: Arc<CountingStore>,
    api: StoreObjects,
    controllers: Option<Controllers>,
}

impl Harness {
    async fn start(auto_approve: bool) -> Harness {
        let store = Arc::new(CountingStore::new());
        let registry = resources::flotta();
        let api = StoreObjects::new(store.clone(), &registry);
        let controllers = start(
            store.clone(),
            &registry,
            Config {
                auto_approve,
                workers: 2,
            },
        );
        controllers.synced().await;
        Harness {
            store,
            api,
            controllers: Some(controllers),
        }
    }

    async fn create(&self, kind: Kind, namespace: &str, object: Value) -> Value {
        self.api
            .create(kind, namespace, object)
            .await
            .unwrap_or_else(|e| panic!("create {kind}: {e}"))
    }

    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        self.api.get(kind, namespace, name).await.expect("get")
    }

    async fn patch(&self, kind: Kind, namespace: &str, name: &str, part: Part, patch: Value) {
        self.api
            .merge_patch(kind, namespace, name, part, patch)
            .await
            .unwrap_or_else(|e| panic!("patch {kind} {namespace}/{name}: {e}"));
    }

    /// Waits until `kind namespace/name` satisfies `check` and returns it.
    async fn wait_object(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(what, || async {
            self.get(kind, namespace, name).await.filter(|o| check(o))
        })
        .await
    }

    /// Waits until `kind namespace/name` does not exist.
    async fn wait_gone(&self, kind: Kind, namespace: &str, name: &str) {
        eventually(&format!("{kind} {namespace}/{name} to be gone"), || async {
            self.get(kind, namespace, name)
                .await
                .is_none()
                .then_some(())
        })
        .await;
    }

    /// Waits until every controller queue is empty.
    async fn wait_idle(&self) {
        let controllers = self.controllers.as_ref().expect("running");
        eventually("the controllers to be idle", || async {
            controllers.is_idle().then_some(())
        })
        .await;
    }

    /// Stops the controllers and starts fresh ones on the same store, as a restarted
    /// server would.
    async fn restart(&mut self, auto_approve: bool) {
        if let Some(c) = self.controllers.take() {
            c.shutdown().await;
        }
        let controllers = start(
            self.store.clone(),
            &resources::flotta(),
            Config {
                auto_approve,
                workers: 2,
            },
        );
        controllers.synced().await;
        self.controllers = Some(controllers);
    }

    async fn stop(mut self) {
        if let Some(c) = self.controllers.take() {
            c.shutdown().await;
        }
    }
}

/// Polls `check` until it yields a value (at most 30 s).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn request(name: &str, target_namespace: &str, target_set: Option<&str>) -> Value {
    let mut spec = json!({"targetNamespace": target_namespace});
    if let Some(set) = target_set {
        spec["targetSet"] = json!(set);
    }
    json!({"apiVersion": API_VERSION, "kind": "EdgeDeviceSignedRequest",
           "metadata": {"name": name}, "spec": spec})
}

fn device(name: &str, labels: Value) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "EdgeDevice",
           "metadata": {"name": name, "labels": labels, "finalizers": ["device-finalizer"]},
           "spec": {}})
}

fn workload(name: &str, target: Value) -> Value {
    let mut spec = json!({"type": "pod",
        "pod": {"spec": {"containers": [{"name": "app", "image": "quay.io/app:1"}]}}});
    if let (Some(spec), Some(target)) = (spec.as_object_mut(), target.as_object()) {
        spec.extend(target.clone());
    }
    json!({"apiVersion": API_VERSION, "kind": "EdgeWorkload",
           "metadata": {"name": name}, "spec": spec})
}

fn status_workloads(device: &Value) -> Vec<String> {
    device
        .pointer("/status/workloads")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|w| w["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn has_label(object: &Value, key: &str, value: &str) -> bool {
    object["metadata"]["labels"][key].as_str() == Some(value)
}

fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|v| v == finalizer))
}

fn ready(object: &Value) -> Option<(String, String, String)> {
    let conditions = object.pointer("/status/conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str()?.to_owned(),
        c["message"].as_str()?.to_owned(),
    ))
}

fn places(device: &Value, workload: &str) -> bool {
    status_workloads(device).iter().any(|w| w == workload)
        && has_label(device, &format!("workload/{workload}"), "true")
}

fn places_not(device: &Value, workload: &str) -> bool {
    !status_workloads(device).iter().any(|w| w == workload)
        && device["metadata"]["labels"]
            .get(format!("workload/{workload}"))
            .is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_approval_creates_the_device_in_its_namespace_and_set() {
    let h = Harness::start(true).await;
    h.create(
        Kind::EdgeDeviceSignedRequest,
        "default",
        request("dev-1", "fleet", Some("lab")),
    )
    .await;
    let device = h
        .wait_object(
            Kind::EdgeDevice,
            "fleet",
            "dev-1",
            "the approved device",
            |_| true,
        )
        .await;
    assert!(has_label(&device, "edgedeviceSignedRequest", "true"));
    assert!(has_label(&device, "flotta/member-of", "lab"));
    assert!(has_finalizer(&device, "device-finalizer"));
    assert!(device["spec"]["requestTime"].is_string());

    let request = h
        .wait_object(
            Kind::EdgeDeviceSignedRequest,
            "default",
            "dev-1",
            "the approved condition",
            |r| {
                r["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "approved" && c["status"] == "True")
                })
            },
        )
        .await;
    assert_eq!(request["spec"]["approved"], true);
    assert_eq!(
        request["status"]["observedGeneration"],
        request["metadata"]["generation"]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_approval_waits_for_the_operator() {
    let h = Harness::start(false).await;
    h.create(
        Kind::EdgeDeviceSignedRequest,
        "default",
        request("dev-2", "fleet", None),
    )
    .await;
    let pending = h
        .wait_object(
            Kind::EdgeDeviceSignedRequest,
            "default",
            "dev-2",
            "the pending condition",
            |r| {
                r["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "pending" && c["status"] == "True")
                })
            },
        )
        .await;
    assert_ne!(pending["spec"]["approved"], true);
    h.wait_idle().await;
    assert!(
        h.get(Kind::EdgeDevice, "fleet", "dev-2").await.is_none(),
        "no device before approval"
    );

    // What `kubectl patch edsr dev-2 --type merge -p '{"spec":{"approved":true}}'` sends.
    h.patch(
        Kind::EdgeDeviceSignedRequest,
        "default",
        "dev-2",
        Part::Main,
        json!({"spec": {"approved": true}}),
    )
    .await;
    let device = h
        .wait_object(
            Kind::EdgeDevice,
            "fleet",
            "dev-2",
            "the approved device",
            |_| true,
        )
        .await;
    assert!(
        device["metadata"]["labels"]
            .get("flotta/member-of")
            .is_none()
    );
    h.wait_object(
        Kind::EdgeDeviceSignedRequest,
        "default",
        "dev-2",
        "approved replacing pending",
        |r| {
            let c = r["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            c.iter()
                .any(|c| c["type"] == "approved" && c["status"] == "True")
                && c.iter()
                    .any(|c| c["type"] == "pending" && c["status"] == "False")
        },
    )
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_workloads_follow_device_labels() {
    let h = Harness::start(true).await;
    h.create(Kind::EdgeDevice, "ns", device("d1", json!({"app": "web"})))
        .await;
    h.create(Kind::EdgeDevice, "ns", device("d2", json!({"app": "db"})))
        .await;
    h.create(
        Kind::EdgeWorkload,
        "ns",
        workload(
            "web",
            json!({"deviceSelector": {"matchLabels": {"app": "web"}}}),
        ),
    )
    .await;
    let d1 = h
        .wait_object(Kind::EdgeDevice, "ns", "d1", "web placed on d1", |d| {
            places(d, "web")
        })
        .await;
    assert_eq!(d1["status"]["workloads"][0]["phase"], "Deploying");
    let w = h
        .wait_object(Kind::EdgeWorkload, "ns", "web", "web ready", |w| {
            ready(w).is_some_and(|(s, _, _)| s == "True")
        })
        .await;
    assert!(has_finalizer(&w, "yggdrasil-device-reference-finalizer"));
    assert_eq!(
        ready(&w).map(|(_, r, m)| (r, m)),
        Some(("Placed".to_owned(), "placed on 1 device(s)".to_owned()))
    );
    assert_eq!(
        w["status"]["observedGeneration"],
        w["metadata"]["generation"]
    );
    let d2 = h.get(Kind::EdgeDevice, "ns", "d2").await.unwrap();
    assert!(places_not(&d2, "web"));

    // The device reports the workload running; a second workload must keep that phase.
    h.patch(
        Kind::EdgeDevice,
        "ns",
        "d1",
        Part::Status,
        json!({"status": {"workloads": [{"name": "web", "phase": "Running"}]}}),
    )
    .await;
    h.create(
        Kind::EdgeWorkload,
        "ns",
        workload("everywhere", json!({"deviceSelector": {}})),
    )
    .await;
    let d1 = h
        .wait_object(Kind::EdgeDevice, "ns", "d1", "both on d1", |d| {
            places(d, "web") && places(d, "everywhere")
        })
        .await;
    let phases: HashMap<String, String> = d1["status"]["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_owned(),
                w["phase"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(phases["web"], "Running");
    assert_eq!(phases["everywhere"], "Deploying");

    // Relabel: web leaves d1 and lands on d2.
    h.patch(
        Kind::EdgeDevice,
        "ns",
        "d1",
        Part::Main,
        json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await;
    h.patch(
        Kind::EdgeDevice,
        "ns",
        "d2",
        Part::Main,
        json!({"metadata": {"labels": {"app": "web"}}}),
    )
    .await;
    h.wait_object(Kind::EdgeDevice, "ns", "d1", "web gone from d1", |d| {
        places_not(d, "web") && places(d, "everywhere")
    })
    .await;
    h.wait_object(Kind::EdgeDevice, "ns", "d2", "web on d2", |d| {
        places(d, "web")
    })
    .await;

    // A device created later with a matching label gets the workload too.
    h.create(Kind::EdgeDevice, "ns", device("d5", json!({"app": "web"})))
        .await;
    h.wait_object(Kind::EdgeDevice, "ns", "d5", "web on d5", |d| {
        places(d, "web") && places(d, "everywhere")
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_controllers_catch_up_with_changes_made_while_stopped() {
    let mut h = Harness::start(true).await;
    h.create(Kind::EdgeDevice, "ns", device("d1", json!({"app": "web"})))
        .await;
    h.create(
        Kind::EdgeWorkload,
        "ns",
        workload(
            "web",
            json!({"deviceSelector": {"matchLabels": {"app": "web"}}}),
        ),
    )
    .await;
    h.wait_object(Kind::EdgeDevice, "ns", "d1", "web on d1", |d| {
        places(d, "web")
    })
    .await;
    h.controllers.take().expect("running").shutdown().await;

    // While no controller runs: the device is relabelled and a new one appears.
    h.patch(
        Kind::EdgeDevice,
        "ns",
        "d1",
        Part::Main,
        json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await;
    h.create(Kind::EdgeDevice, "ns", device("d2", json!({"app": "web"})))
        .await;
    let d1 = h.get(Kind::EdgeDevice, "ns", "d1").await.unwrap();
    assert!(places(&d1, "web"), "nothing changes while stopped");

    h.restart(true).await;
    h.wait_object(Kind::EdgeDevice, "ns", "d1", "web gone from d1", |d| {
        places_not(d, "web")
    })
    .await;
    h.wait_object(Kind::EdgeDevice, "ns", "d2", "web on d2", |d| {
        places(d, "web")
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_named_workloads_and_workload_deletion() {
    let h = Harness::start(true).await;
    h.create(
        Kind::EdgeWorkload,
        "ns",
        workload("pinned", json!({"device": "d3"})),
    )
    .await;
    h.wait_object(Kind::EdgeWorkload, "ns", "pinned", "DeviceNotFound", |w| {
        ready(w).is_some_and(|(s, r, _)| s == "False" && r == "DeviceNotFound")
    })
    .await;
    h.create(Kind::EdgeDevice, "ns", device("d3", json!({})))
        .await;
    h.create(Kind::EdgeDevice, "ns", device("d4", json!({})))
        .await;
    h.wait_object(Kind::EdgeDevice, "ns", "d3", "pinned on d3", |d| {
        places(d, "pinned")
    })
    .await;
    h.wait_object(Kind::EdgeWorkload, "ns", "pinned", "pinned ready", |w| {
        ready(w).is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    h.wait_idle().await;
    assert!(places_not(
        &h.get(Kind::EdgeDevice, "ns", "d4").await.unwrap(),
        "pinned"
    ));

    // Deleting the workload takes it off the device before the finalizer goes.
    h.api
        .delete(Kind::EdgeWorkload, "ns", "pinned")
        .await
        .expect("delete");
    h.wait_gone(Kind::EdgeWorkload, "ns", "pinned").await;
    let d3 = h.get(Kind::EdgeDevice, "ns", "d3").await.unwrap();
    assert!(places_not(&d3, "pinned"), "device still lists it: {d3}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_device_cleans_up_its_request_and_finalizer() {
    let h = Harness::start(true).await;
    h.create(
        Kind::EdgeDeviceSignedRequest,
        "default",
        request("dev-5", "fleet", None),
    )
    .await;
    h.wait_object(Kind::EdgeDevice, "fleet", "dev-5", "the device", |_| true)
        .await;
    h.create(
        Kind::EdgeWorkload,
        "fleet",
        workload("w", json!({"device": "dev-5"})),
    )
    .await;
    h.wait_object(Kind::EdgeDevice, "fleet", "dev-5", "w placed", |d| {
        places(d, "w")
    })
    .await;

    h.api
        .delete(Kind::EdgeDevice, "fleet", "dev-5")
        .await
        .expect("delete");
    h.wait_gone(Kind::EdgeDevice, "fleet", "dev-5").await;
    h.wait_gone(Kind::EdgeDeviceSignedRequest, "default", "dev-5")
        .await;
    // The workload no longer counts the device.
    h.wait_object(Kind::EdgeWorkload, "fleet", "w", "DeviceNotFound", |w| {
        ready(w).is_some_and(|(s, r, _)| s == "False" && r == "DeviceNotFound")
    })
    .await;

    // A device created without the finalizer (kubectl apply) gets it.
    let mut bare = device("dev-6", json!({}));
    bare["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    h.create(Kind::EdgeDevice, "fleet", bare).await;
    h.wait_object(Kind::EdgeDevice, "fleet", "dev-6", "the finalizer", |d| {
        has_finalizer(d, "device-finalizer")
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_configs_create_playbook_executions() {
    let h = Harness::start(true).await;
    let config = h
        .create(
            Kind::EdgeConfig,
            "ns",
            json!({"apiVersion": API_VERSION, "kind": "EdgeConfig",
                   "metadata": {"name": "cfg"},
                   "spec": {"edgePlaybook": {"playbooks": [
                       {"content": "LSBob3N0czogYWxs", "timeoutSeconds": 30},
                       {"content": "LSBob3N0czogbG9jYWxob3N0"}]}}}),
        )
        .await;
    h.create(
        Kind::EdgeDevice,
        "ns",
        device("dev", json!({"config/device-by-config": "cfg"})),
    )
    .await;
    let first = h
        .wait_object(
            Kind::PlaybookExecution,
            "ns",
            "dev-cfg",
            "the first execution",
            |e| e.pointer("/status/conditions/0/type") == Some(&json!("Deploying")),
        )
        .await;
    assert_eq!(first["spec"]["playbook"]["content"], "LSBob3N0czogYWxs");
    assert_eq!(first["spec"]["playbook"]["timeoutSeconds"], 30);
    assert_eq!(first["spec"]["executionAttempt"], 0);
    let owner = &first["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "EdgeConfig");
    assert_eq!(owner["name"], "cfg");
    assert_eq!(owner["uid"], config["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    let second = h
        .wait_object(
            Kind::PlaybookExecution,
            "ns",
            "dev-cfg-1",
            "the second execution",
            |_| true,
        )
        .await;
    assert_eq!(
        second["spec"]["playbook"]["content"],
        "LSBob3N0czogbG9jYWxob3N0"
    );
    h.wait_object(Kind::EdgeDevice, "ns", "dev", "PlaybookExec entries", |d| {
        d["status"]["PlaybookExec"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    h.wait_object(Kind::EdgeConfig, "ns", "cfg", "cfg ready", |c| {
        ready(c).is_some_and(|(s, _, _)| s == "True")
    })
    .await;

    // Both executions finish: the device is detached from the EdgeConfig.
    for name in ["dev-cfg", "dev-cfg-1"] {
        h.patch(
            Kind::PlaybookExecution,
            "ns",
            name,
            Part::Status,
            json!({"status": {"conditions": [
                {"type": "Deploying", "status": "False"},
                {"type": "SuccessfullyCompleted", "status": "True"}]}}),
        )
        .await;
    }
    h.wait_object(Kind::EdgeDevice, "ns", "dev", "the label removed", |d| {
        d["metadata"]["labels"]
            .get("config/device-by-config")
            .is_none()
    })
    .await;

    // Deleting the EdgeConfig deletes what it owns.
    h.api
        .delete(Kind::EdgeConfig, "ns", "cfg")
        .await
        .expect("delete");
    h.wait_gone(Kind::PlaybookExecution, "ns", "dev-cfg").await;
    h.wait_gone(Kind::PlaybookExecution, "ns", "dev-cfg-1")
        .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_sets_count_their_members() {
    let h = Harness::start(true).await;
    h.create(
        Kind::EdgeDeviceSet,
        "ns",
        json!({"apiVersion": API_VERSION, "kind": "EdgeDeviceSet",
               "metadata": {"name": "lab"}, "spec": {}}),
    )
    .await;
    for name in ["a", "b", "c"] {
        h.create(
            Kind::EdgeDevice,
            "ns",
            device(name, json!({"flotta/member-of": "lab"})),
        )
        .await;
    }
    h.wait_object(Kind::EdgeDeviceSet, "ns", "lab", "3 members", |s| {
        s["status"]["memberCount"] == 3 && ready(s).is_some_and(|(st, _, _)| st == "True")
    })
    .await;
    h.patch(
        Kind::EdgeDevice,
        "ns",
        "c",
        Part::Main,
        json!({"metadata": {"labels": {"flotta/member-of": null}}}),
    )
    .await;
    h.wait_object(Kind::EdgeDeviceSet, "ns", "lab", "2 members", |s| {
        s["status"]["memberCount"] == 2
    })
    .await;
    h.stop().await;
}

/// 2,000 devices in 100 sites, 50 workloads each selecting one site: placing them writes
/// exactly the 1,000 matching devices (status and labels once each) and nothing else, and
/// relabelling one device writes only that device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_touches_only_matching_devices() {
    const DEVICES: usize = 2_000;
    const SITES: usize = 100;
    const WORKLOADS: usize = 50;
    let h = Harness::start(true).await;
    for i in 0..DEVICES {
        let labels = json!({"site": format!("site-{}", i % SITES), "tier": format!("t{}", i % 4)});
        h.create(
            Kind::EdgeDevice,
            "scale",
            device(&format!("d{i:04}"), labels),
        )
        .await;
    }
    h.wait_idle().await;
    let before = h.store.take_writes();
    assert!(
        before
            .keys()
            .all(|k| !k.contains("/edgedevices/") || before[k] == 1),
        "creating devices made the controllers write to them"
    );

    for k in 0..WORKLOADS {
        h.create(
            Kind::EdgeWorkload,
            "scale",
            workload(
                &format!("w{k:02}"),
                json!({"deviceSelector": {"matchLabels": {"site": format!("site-{k}")}}}),
            ),
        )
        .await;
    }
    let per_site = DEVICES / SITES;
    for k in 0..WORKLOADS {
        h.wait_object(
            Kind::EdgeWorkload,
            "scale",
            &format!("w{k:02}"),
            "placement",
            |w| {
                ready(w).is_some_and(|(s, _, m)| {
                    s == "True" && m == format!("placed on {per_site} device(s)")
                })
            },
        )
        .await;
    }
    h.wait_idle().await;
    let writes = h.store.take_writes();
    for i in 0..DEVICES {
        let key = format!("/registry/management.project-flotta.io/edgedevices/scale/d{i:04}");
        let expected = if i % SITES < WORKLOADS { 2 } else { 0 };
        assert_eq!(
            writes.get(&key).copied().unwrap_or(0),
            expected,
            "writes to device d{i:04}"
        );
    }
    let device = h.get(Kind::EdgeDevice, "scale", "d0007").await.unwrap();
    assert!(places(&device, "w07"));

    // Move d0000 from site-0 (w00) to site-99 (no workload): only d0000 is written.
    h.patch(
        Kind::EdgeDevice,
        "scale",
        "d0000",
        Part::Main,
        json!({"metadata": {"labels": {"site": "site-99"}}}),
    )
    .await;
    h.wait_object(Kind::EdgeDevice, "scale", "d0000", "w00 gone", |d| {
        places_not(d, "w00")
    })
    .await;
    h.wait_object(
        Kind::EdgeWorkload,
        "scale",
        "w00",
        "w00 on one device fewer",
        |w| ready(w).is_some_and(|(_, _, m)| m == format!("placed on {} device(s)", per_site - 1)),
    )
    .await;
    h.wait_idle().await;
    let writes = h.store.take_writes();
    let devices_written: Vec<&String> = writes
        .keys()
        .filter(|k| k.contains("/edgedevices/"))
        .collect();
    assert_eq!(
        devices_written,
        vec!["/registry/management.project-flotta.io/edgedevices/scale/d0000"]
    );
    // The test's own label patch, then the controller's status and label writes.
    assert_eq!(writes[devices_written[0]], 3);
    h.stop().await;
}
