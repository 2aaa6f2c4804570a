//! The store device backend against a real in-memory store through the real REST
//! `Collection`: enrolment and registration, configuration rendering with ConfigMaps and
//! Secrets, heartbeats that write nothing when nothing changed (proved by the store
//! revision and the write counter), offline detection, configuration problems reported on
//! the device, cache invalidation by watch events, deletion, playbook executions, and
//! device-reported events handed to the event sink.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use flotta_api::edge::{
    self, DeviceConfigurationMessage, EnrolmentFeatures, EnrolmentInfo, HardwareInfo, Heartbeat,
    RegistrationInfo, WorkloadStatus,
};
use flotta_api::store::Store;
use flotta_api::store::memory::MemoryStore;
use flotta_api::v1alpha1 as v1;
use flotta_apiserver::cluster::events::{DeviceEvent, DeviceEventSink, DeviceRef, Severity};
use flotta_apiserver::cluster::references::StoreReferences;
use flotta_apiserver::edge::backend::store::StoreBackend;
use flotta_apiserver::edge::backend::{BackendError, DeviceBackend, RegistrationStatus};
use flotta_apiserver::edge::configuration::CONFIGURATION_PROBLEMS_ANNOTATION;
use flotta_apiserver::edge::liveness::{Liveness, LivenessConfig};
use flotta_apiserver::edge::metrics::{EdgeMetrics, WriteReason};
use flotta_apiserver::resources;
use flotta_apiserver::rest::collection::{Collection, DeleteOptions};
use flotta_apiserver::rest::request::QueryOptions;
use flotta_apiserver::rest::resource::{ResourceDef, ResourceRegistry};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const NS: &str = "fleet";
const WAIT: Duration = Duration::from_secs(10);

/// An event sink that remembers what it was given.
#[derive(Default)]
struct RecordedEvents(Mutex<Vec<(DeviceRef, DeviceEvent)>>);

impl RecordedEvents {
    fn all(&self) -> Vec<(DeviceRef, DeviceEvent)> {
        self.0.lock().expect("lock").clone()
    }
}

#[async_trait]
impl DeviceEventSink for RecordedEvents {
    async fn record(&self, device: &DeviceRef, event: &DeviceEvent) {
        self.0
            .lock()
            .expect("lock")
            .push((device.clone(), event.clone()));
    }
}

struct Harness {
    store: Arc<dyn Store>,
    registry: ResourceRegistry,
    backend: Arc<StoreBackend>,
    metrics: Arc<EdgeMetrics>,
    events: Arc<RecordedEvents>,
    _stop: oneshot::Sender<()>,
}

impl Harness {
    async fn start(config: LivenessConfig) -> Harness {
        Harness::start_on(Arc::new(MemoryStore::new(10_000)), config).await
    }

    /// A replica on an existing store (several harnesses on one store play several
    /// server replicas).
    async fn start_on(store: Arc<dyn Store>, config: LivenessConfig) -> Harness {
        let liveness = Arc::new(Liveness::new(config));
        let mut registry = resources::standalone();
        assert!(registry.set_presenter(v1::GROUP, "edgedevices", liveness.presenter()));
        let metrics = Arc::new(EdgeMetrics::new());
        let references =
            Arc::new(StoreReferences::new(Arc::clone(&store), &registry).expect("core kinds"));
        let events = Arc::new(RecordedEvents::default());
        let backend = Arc::new(
            StoreBackend::new(
                Arc::clone(&store),
                &registry,
                references,
                Arc::clone(&events) as Arc<dyn DeviceEventSink>,
                liveness,
                Arc::clone(&metrics),
            )
            .expect("backend"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let running = Arc::clone(&backend);
        tokio::spawn(async move {
            running
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        wait_for(|| async { backend.configurations().watching() }).await;
        Harness {
            store,
            registry,
            backend,
            metrics,
            events,
            _stop: stop,
        }
    }

    fn def(&self, group: &str, plural: &str) -> Arc<ResourceDef> {
        let version = if group.is_empty() { "v1" } else { v1::VERSION };
        Arc::clone(self.registry.find(group, version, plural).expect("kind"))
    }

    async fn create(&self, group: &str, plural: &str, ns: &str, object: Value) -> Value {
        let def = self.def(group, plural);
        Collection::new(&*self.store, &def)
            .create(Some(ns), object, &QueryOptions::default())
            .await
            .expect("create")
            .object
    }

    async fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let def = self.def(group, plural);
        Collection::new(&*self.store, &def)
            .get(Some(ns), name)
            .await
            .ok()
    }

    async fn update(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        change: impl Fn(&mut Value) + Send + Sync,
    ) -> Value {
        let def = self.def(group, plural);
        Collection::new(&*self.store, &def)
            .update_with(
                Some(ns),
                name,
                subresource,
                &QueryOptions::default(),
                |current| {
                    let mut next = current.clone();
                    change(&mut next);
                    Ok(next)
                },
            )
            .await
            .expect("update")
            .object
    }

    async fn device(&self, name: &str) -> Value {
        self.get(v1::GROUP, "edgedevices", NS, name)
            .await
            .expect("device exists")
    }

    /// A registered device (as the approval controller and a registration leave it) with
    /// `workloads` placed on it (as the placement controller records them).
    async fn registered_device(&self, name: &str, workloads: &[&str]) -> Value {
        self.create(
            v1::GROUP,
            "edgedevices",
            NS,
            json!({"metadata": {"name": name}, "spec": {}}),
        )
        .await;
        self.place(name, workloads).await
    }

    async fn place(&self, device: &str, workloads: &[&str]) -> Value {
        let entries: Vec<Value> = workloads
            .iter()
            .map(|w| json!({"name": w, "phase": "Deploying"}))
            .collect();
        self.update(
            v1::GROUP,
            "edgedevices",
            NS,
            device,
            Some("status"),
            move |d| d["status"]["workloads"] = json!(entries.clone()),
        )
        .await
    }

    async fn workload(&self, name: &str, pod_spec: Value) -> Value {
        self.create(
            v1::GROUP,
            "edgeworkloads",
            NS,
            json!({
                "metadata": {"name": name, "labels": {"podman/io.containers.autoupdate": "registry", "team": "a"}},
                "spec": {"type": "pod", "pod": {"spec": pod_spec}},
            }),
        )
        .await
    }

    async fn configuration(&self, device: &str) -> DeviceConfigurationMessage {
        let rendered = self
            .backend
            .configuration(device, NS)
            .await
            .expect("configuration");
        (*rendered.message).clone()
    }

    async fn revision(&self) -> u64 {
        self.store.current_revision().await.expect("revision")
    }
}

/// Polls `condition` until it holds (panics after [`WAIT`]).
async fn wait_for<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    tokio::time::timeout(WAIT, async {
        loop {
            if condition().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition reached in time");
}

fn hardware(hostname: &str) -> HardwareInfo {
    HardwareInfo {
        hostname: Some(hostname.into()),
        cpu: Some(edge::Cpu {
            architecture: Some("x86_64".into()),
            model_name: Some("Intel(R) Xeon(R) CPU @ 2.20GHz".into()),
            frequency: Some(2200.0),
            ..Default::default()
        }),
        system_vendor: Some(edge::SystemVendor {
            manufacturer: Some("QEMU".into()),
            product_name: Some("Standard PC (Q35 + ICH9, 2009)".into()),
            serial_number: Some("SN-1".into()),
            is_virtual: Some(true),
        }),
        ..Default::default()
    }
}

fn heartbeat(workloads: &[(&str, &str)]) -> Heartbeat {
    Heartbeat {
        status: Some("up".into()),
        version: Some("1".into()),
        workloads: workloads
            .iter()
            .map(|(name, state)| WorkloadStatus {
                name: Some((*name).into()),
                status: Some((*state).into()),
                last_data_upload: None,
            })
            .collect(),
        ..Default::default()
    }
}

fn quiet_liveness() -> LivenessConfig {
    LivenessConfig {
        missed_periods: 3,
        default_period: Duration::from_secs(60),
        checkpoint_interval: Duration::from_secs(300),
        sweep_interval: Duration::from_millis(20),
        ..LivenessConfig::default()
    }
}

#[tokio::test]
async fn enrolment_approval_and_registration() {
    let h = Harness::start(quiet_liveness()).await;
    let b = &h.backend;
    let info = EnrolmentInfo {
        features: Some(EnrolmentFeatures {
            model_name: Some("rpi4".into()),
            hardware: Some(hardware("edge-1")),
        }),
        target_namespace: Some(NS.into()),
    };
    assert!(!b.enrol("dev1", NS, &info).await.expect("enrol"));
    let request = h
        .get(v1::GROUP, "edgedevicesignedrequests", "default", "dev1")
        .await
        .expect("signed request in default");
    assert_eq!(request["spec"]["targetNamespace"], NS);
    assert_eq!(request["spec"]["approved"], false);
    assert_eq!(request["spec"]["features"]["modelName"], "rpi4");
    assert_eq!(
        request["spec"]["features"]["hardware"]["hostname"],
        "edge-1"
    );
    assert_eq!(
        request["spec"]["features"]["hardware"]["cpu"]["frequency"],
        "2200.00"
    );
    assert!(!b.enrol("dev1", NS, &info).await.expect("enrol again"));
    assert_eq!(h.metrics.store_writes_for(WriteReason::Enrolment), 1);

    // Not approved yet: the bootstrap certificate (namespace default) learns nothing more.
    assert!(matches!(
        b.target_namespace("dev1", "default", false).await,
        Err(BackendError::NotApproved)
    ));
    assert!(matches!(
        b.target_namespace("nobody", "default", false).await,
        Err(BackendError::NotFound)
    ));

    // Approval creates the device carrying the signed-request label.
    h.create(
        v1::GROUP,
        "edgedevices",
        NS,
        json!({"metadata": {"name": "dev1", "labels": {"edgedeviceSignedRequest": "true"}}, "spec": {}}),
    )
    .await;
    assert!(
        b.enrol("dev1", NS, &info).await.expect("enrol"),
        "208 once it exists"
    );
    assert!(
        b.is_awaiting_first_registration("dev1", NS)
            .await
            .expect("awaiting")
    );
    assert_eq!(
        b.target_namespace("dev1", "default", false)
            .await
            .expect("target"),
        NS
    );

    b.register(
        "dev1",
        NS,
        &RegistrationInfo {
            hardware: Some(hardware("edge-1")),
            certificate_request: Some("csr".into()),
        },
    )
    .await
    .expect("register");
    let device = h.device("dev1").await;
    let labels = &device["metadata"]["labels"];
    assert!(labels.get("edgedeviceSignedRequest").is_none(), "{labels}");
    assert_eq!(labels["device.hostname"], "edge-1");
    assert_eq!(labels["device.cpu-architecture"], "x86_64");
    assert_eq!(labels["device.cpu-model"], "intelrxeonrcpu2.20ghz");
    assert_eq!(labels["device.system-manufacturer"], "qemu");
    assert_eq!(labels["device.system-product"], "standardpcq35ich92009");
    assert_eq!(labels["device.system-serial"], "sn-1");
    assert_eq!(device["status"]["hardware"]["hostname"], "edge-1");

    assert!(
        !b.is_awaiting_first_registration("dev1", NS)
            .await
            .expect("awaiting")
    );
    assert!(matches!(
        b.target_namespace("dev1", "default", false).await,
        Err(BackendError::Forbidden(_))
    ));
    // Renewal with the device's own certificate (namespace from its OU).
    assert_eq!(
        b.target_namespace("dev1", NS, true).await.expect("renewal"),
        NS
    );
    assert_eq!(
        b.registration_status("dev1", NS).await.expect("status"),
        RegistrationStatus::Registered
    );
    assert_eq!(
        b.registration_status("ghost", NS).await.expect("status"),
        RegistrationStatus::Unregistered
    );
}

#[tokio::test]
async fn configuration_carries_workloads_config_maps_and_secrets() {
    let h = Harness::start(quiet_liveness()).await;
    h.create(
        "",
        "configmaps",
        NS,
        json!({"metadata": {"name": "app-config"}, "data": {"LOG_LEVEL": "debug", "MODE": "edge"}}),
    )
    .await;
    h.create(
        "",
        "secrets",
        NS,
        json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}),
    )
    .await;
    h.create(
        "",
        "secrets",
        NS,
        json!({"metadata": {"name": "pull"}, "type": "kubernetes.io/dockerconfigjson",
               "stringData": {".dockerconfigjson": "{\"auths\":{}}"}}),
    )
    .await;
    h.create(
        v1::GROUP,
        "edgeworkloads",
        NS,
        json!({
            "metadata": {"name": "web", "labels": {"podman/io.containers.autoupdate": "registry", "team": "a"},
                          "annotations": {"podman/note": "n"}},
            "spec": {
                "type": "pod",
                "imageRegistries": {"secretRef": {"name": "pull"}},
                "metrics": {"port": 8080},
                "data": {"egress": [{"source": "out", "target": "bucket"}]},
                "pod": {"spec": {"containers": [{
                    "name": "web", "image": "quay.io/example/web:1",
                    "envFrom": [{"configMapRef": {"name": "app-config"}}],
                    "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": true}}}],
                }]}},
            },
        }),
    )
    .await;
    let device = h.registered_device("dev1", &["web"]).await;

    let message = h.configuration("dev1").await;
    assert_eq!(message.device_id.as_deref(), Some("dev1"));
    assert_eq!(
        message.version.as_deref(),
        device["metadata"]["resourceVersion"].as_str()
    );
    let configuration = message.configuration.as_ref().expect("configuration");
    let hb = configuration.heartbeat.as_ref().expect("heartbeat");
    assert_eq!(hb.period_seconds, Some(60));
    let receiver = configuration
        .metrics
        .as_ref()
        .and_then(|m| m.receiver.as_ref())
        .expect("receiver");
    assert_eq!(receiver.request_num_samples, Some(30_000));
    assert!(configuration.mounts.is_empty());

    assert_eq!(message.workloads.len(), 1);
    let web = &message.workloads[0];
    assert_eq!(web.name.as_deref(), Some("web"));
    assert_eq!(web.namespace.as_deref(), Some(NS));
    assert_eq!(web.labels.len(), 1);
    assert_eq!(web.labels["io.containers.autoupdate"], "registry");
    assert_eq!(web.annotations["note"], "n");
    let spec: Value =
        serde_saphyr::from_str(web.specification.as_deref().expect("spec")).expect("pod YAML");
    assert_eq!(spec["containers"][0]["image"], "quay.io/example/web:1");
    assert_eq!(web.configmaps.len(), 1);
    let cm: Value = serde_saphyr::from_str(&web.configmaps[0]).expect("configmap YAML");
    assert_eq!(
        cm,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"},
               "data": {"LOG_LEVEL": "debug", "MODE": "edge"}})
    );
    assert_eq!(
        web.image_registries
            .as_ref()
            .and_then(|r| r.auth_file.as_deref()),
        Some("{\"auths\":{}}")
    );
    let metrics = web.metrics.as_ref().expect("metrics");
    assert_eq!(
        (metrics.port, metrics.path.as_deref(), metrics.interval),
        (Some(8080), Some("/"), Some(60))
    );
    assert_eq!(web.data.as_ref().expect("data").egress.len(), 1);

    assert_eq!(message.secrets.len(), 1);
    let secret = &message.secrets[0];
    assert_eq!(secret.name.as_deref(), Some("creds"));
    let data: Value = serde_json::from_str(secret.data.as_deref().expect("data")).expect("json");
    assert_eq!(data, json!({"password": "czNjcmV0"}));

    // The device set overrides whole sections once the device joins an existing set.
    h.create(
        v1::GROUP,
        "edgedevicesets",
        NS,
        json!({"metadata": {"name": "lab"}, "spec": {
            "heartbeat": {"periodSeconds": 15},
            "mounts": [{"device": "/dev/sdb1", "folder": "/mnt/data", "type": "ext4"}],
        }}),
    )
    .await;
    h.update(v1::GROUP, "edgedevices", NS, "dev1", None, |d| {
        d["metadata"]["labels"] = json!({"flotta/member-of": "lab"});
    })
    .await;
    wait_for(|| async {
        let m = h.configuration("dev1").await;
        let c = m.configuration.expect("configuration");
        c.heartbeat.and_then(|hb| hb.period_seconds) == Some(15)
            && c.mounts.first().and_then(|m| m.directory.as_deref()) == Some("/mnt/data")
    })
    .await;
}

#[tokio::test]
async fn steady_heartbeats_write_nothing_and_a_change_writes_once() {
    let h = Harness::start(quiet_liveness()).await;
    h.workload(
        "web",
        json!({"containers": [{"name": "web", "image": "web"}]}),
    )
    .await;
    h.registered_device("dev1", &["web"]).await;
    let b = &h.backend;

    b.heartbeat("dev1", NS, &heartbeat(&[("web", "Running")]))
        .await
        .expect("heartbeat");
    let device = h.device("dev1").await;
    assert_eq!(device["status"]["workloads"][0]["phase"], "Running");
    assert_eq!(device["status"]["online"], true);
    assert_eq!(device["status"]["phase"], "up");
    assert!(device["status"]["lastSeen"].is_string());

    let writes = h.metrics.store_writes();
    let revision = h.revision().await;
    let unchanged = h.metrics.heartbeats_unchanged.get();
    for _ in 0..200 {
        b.heartbeat("dev1", NS, &heartbeat(&[("web", "Running")]))
            .await
            .expect("heartbeat");
    }
    assert_eq!(
        h.metrics.store_writes(),
        writes,
        "steady heartbeats write nothing"
    );
    assert_eq!(h.revision().await, revision, "the store did not change");
    assert_eq!(h.metrics.heartbeats_unchanged.get() - unchanged, 200);

    b.heartbeat("dev1", NS, &heartbeat(&[("web", "Exited")]))
        .await
        .expect("heartbeat");
    assert_eq!(
        h.metrics.store_writes(),
        writes + 1,
        "one write for the change"
    );
    assert_eq!(h.revision().await, revision + 1);
    let device = h.device("dev1").await;
    assert_eq!(device["status"]["workloads"][0]["phase"], "Exited");

    // The device changed on the server side (say, a controller placed another workload):
    // the next identical heartbeat reads the device again but still writes nothing.
    h.workload("db", json!({"containers": [{"name": "db", "image": "db"}]}))
        .await;
    h.place("dev1", &["web", "db"]).await;
    let writes = h.metrics.store_writes();
    let revision = h.revision().await;
    b.heartbeat("dev1", NS, &heartbeat(&[("web", "Exited")]))
        .await
        .expect("heartbeat");
    assert_eq!(h.metrics.store_writes(), writes);
    assert_eq!(h.revision().await, revision);

    // Device events are kept on the device, visible to kubectl.
    let mut with_event = heartbeat(&[("web", "Exited")]);
    with_event.events.push(edge::EventInfo {
        reason: Some("Failed".into()),
        message: Some("image pull failed".into()),
        event_type: Some("warn".into()),
    });
    b.heartbeat("dev1", NS, &with_event)
        .await
        .expect("heartbeat");
    let device = h.device("dev1").await;
    let events: Vec<Value> = serde_json::from_str(
        device["metadata"]["annotations"]["management.project-flotta.io/device-events"]
            .as_str()
            .expect("events annotation"),
    )
    .expect("json");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["message"], "image pull failed");
    // ... and handed to the event sink (Kubernetes Events in aggregated mode), about this
    // very device.
    wait_for(|| async { !h.events.all().is_empty() }).await;
    let recorded = h.events.all();
    assert_eq!(recorded.len(), 1, "one event reported once");
    let (about, event) = &recorded[0];
    assert_eq!(
        (about.namespace.as_str(), about.name.as_str()),
        (NS, "dev1")
    );
    assert_eq!(about.uid.as_deref(), device["metadata"]["uid"].as_str());
    assert!(about.uid.is_some());
    assert_eq!(event.severity, Severity::Warning);
    assert_eq!(event.reason, "Failed");
    assert_eq!(event.message, "image pull failed");

    // A heartbeat for a device that does not exist is a 404.
    assert!(matches!(
        b.heartbeat("ghost", NS, &heartbeat(&[])).await,
        Err(BackendError::NotFound)
    ));
}

#[tokio::test]
async fn silent_device_goes_offline_and_comes_back() {
    let h = Harness::start(LivenessConfig {
        missed_periods: 1,
        default_period: Duration::from_millis(300),
        checkpoint_interval: Duration::from_secs(300),
        sweep_interval: Duration::from_millis(20),
        ..LivenessConfig::default()
    })
    .await;
    h.registered_device("dev1", &[]).await;
    h.backend
        .heartbeat("dev1", NS, &heartbeat(&[]))
        .await
        .expect("heartbeat");
    let online_rv = h.device("dev1").await["metadata"]["resourceVersion"].clone();
    assert_eq!(h.device("dev1").await["status"]["online"], true);

    wait_for(|| async { h.device("dev1").await["status"]["online"] == false }).await;
    let offline = h.device("dev1").await;
    assert_ne!(
        offline["metadata"]["resourceVersion"], online_rv,
        "a real write, hence a watch event"
    );
    assert_eq!(h.metrics.store_writes_for(WriteReason::Liveness), 1);
    assert_eq!(h.metrics.devices_offline.get(), 1);

    // Served objects carry the in-memory state.
    let mut served = offline.clone();
    h.def(v1::GROUP, "edgedevices").present(&mut served);
    assert_eq!(served["status"]["online"], false);
    assert!(served["status"]["lastSeen"].is_string());

    h.backend
        .heartbeat("dev1", NS, &heartbeat(&[]))
        .await
        .expect("heartbeat");
    assert_eq!(h.device("dev1").await["status"]["online"], true);
    let mut served = h.device("dev1").await;
    h.def(v1::GROUP, "edgedevices").present(&mut served);
    assert_eq!(served["status"]["online"], true);
}

#[tokio::test]
async fn replicas_on_one_store_hand_a_device_over_without_an_offline_flap() {
    let shared = LivenessConfig {
        missed_periods: 1,
        default_period: Duration::from_millis(400),
        checkpoint_interval: Duration::from_secs(300),
        sweep_interval: Duration::from_millis(20),
        shared: true,
    };
    let a = Harness::start(shared.clone()).await;
    let b = Harness::start_on(Arc::clone(&a.store), shared).await;
    a.registered_device("dev1", &[]).await;
    a.backend
        .heartbeat("dev1", NS, &heartbeat(&[]))
        .await
        .expect("heartbeat to a");
    assert_eq!(a.device("dev1").await["status"]["online"], true);

    // The device moves to b: b's first heartbeat writes lastSeen, once.
    b.backend
        .heartbeat("dev1", NS, &heartbeat(&[]))
        .await
        .expect("heartbeat to b");
    assert_eq!(b.metrics.store_writes_for(WriteReason::Heartbeat), 1);
    let claimed = a.device("dev1").await["status"]["lastSeen"].clone();
    // b keeps it alive for several of a's grace periods; a never marks it offline.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < until {
        b.backend
            .heartbeat("dev1", NS, &heartbeat(&[]))
            .await
            .expect("heartbeat to b");
        assert_eq!(a.device("dev1").await["status"]["online"], true);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.metrics.store_writes_for(WriteReason::Liveness), 0);
    assert_eq!(b.metrics.store_writes_for(WriteReason::Liveness), 0);
    assert_eq!(
        b.metrics.store_writes_for(WriteReason::Heartbeat),
        1,
        "steady heartbeats write nothing"
    );
    assert_eq!(a.device("dev1").await["status"]["lastSeen"], claimed);

    // When the device goes silent, its owner marks it offline.
    wait_for(|| async { a.device("dev1").await["status"]["online"] == false }).await;
    assert_eq!(b.metrics.store_writes_for(WriteReason::Liveness), 1);
}

#[tokio::test]
async fn missing_required_key_is_reported_and_other_workloads_still_render() {
    let h = Harness::start(quiet_liveness()).await;
    h.create(
        "",
        "secrets",
        NS,
        json!({"metadata": {"name": "creds"}, "stringData": {"user": "u"}}),
    )
    .await;
    h.workload(
        "good",
        json!({"containers": [{"name": "c", "image": "good"}]}),
    )
    .await;
    h.workload(
        "needs-password",
        json!({"containers": [{"name": "c", "image": "bad",
            "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]}]}),
    )
    .await;
    h.registered_device("dev1", &["good", "needs-password"])
        .await;

    let message = h.configuration("dev1").await;
    let names: Vec<&str> = message
        .workloads
        .iter()
        .filter_map(|w| w.name.as_deref())
        .collect();
    assert_eq!(names, ["good"]);
    assert!(message.secrets.is_empty());
    let device = h.device("dev1").await;
    let problems = device["metadata"]["annotations"][CONFIGURATION_PROBLEMS_ANNOTATION]
        .as_str()
        .expect("problems recorded on the device");
    assert!(
        problems.contains("needs-password") && problems.contains("password"),
        "{problems}"
    );
    assert_eq!(h.metrics.store_writes_for(WriteReason::Configuration), 1);

    // Polling again does not write again.
    h.configuration("dev1").await;
    h.configuration("dev1").await;
    assert_eq!(h.metrics.store_writes_for(WriteReason::Configuration), 1);

    // Adding the key fixes it: the Secret's watch event evicts the cached configuration.
    h.update("", "secrets", NS, "creds", None, |s| {
        s["stringData"] = json!({"password": "p"});
    })
    .await;
    wait_for(|| async { h.configuration("dev1").await.workloads.len() == 2 }).await;
    wait_for(|| async {
        h.device("dev1").await["metadata"]
            .get("annotations")
            .and_then(|a| a.get(CONFIGURATION_PROBLEMS_ANNOTATION))
            .is_none()
    })
    .await;
}

#[tokio::test]
async fn cached_configuration_is_evicted_when_a_workload_changes() {
    let h = Harness::start(quiet_liveness()).await;
    h.workload(
        "web",
        json!({"containers": [{"name": "web", "image": "web:1"}]}),
    )
    .await;
    h.registered_device("dev1", &["web"]).await;

    let first = h
        .backend
        .configuration("dev1", NS)
        .await
        .expect("configuration");
    let renders = h.metrics.configuration_renders.get();
    for _ in 0..50 {
        let again = h
            .backend
            .configuration("dev1", NS)
            .await
            .expect("configuration");
        assert_eq!(again.etag, first.etag);
    }
    assert_eq!(
        h.metrics.configuration_renders.get(),
        renders,
        "polls are cache hits"
    );
    assert!(h.metrics.configuration_cache_hits.get() >= 50);

    h.update(v1::GROUP, "edgeworkloads", NS, "web", None, |w| {
        w["spec"]["pod"]["spec"]["containers"][0]["image"] = json!("web:2");
    })
    .await;
    wait_for(|| async {
        let message = h.configuration("dev1").await;
        message.workloads[0]
            .specification
            .as_deref()
            .is_some_and(|s| s.contains("web:2"))
    })
    .await;
    let updated = h
        .backend
        .configuration("dev1", NS)
        .await
        .expect("configuration");
    assert_ne!(updated.etag, first.etag);
    assert!(h.metrics.configuration_renders.get() > renders);
}

#[tokio::test]
async fn deleting_device_is_unregistered_and_gets_no_workloads() {
    let h = Harness::start(quiet_liveness()).await;
    h.workload(
        "web",
        json!({"containers": [{"name": "web", "image": "web"}]}),
    )
    .await;
    h.create(
        v1::GROUP,
        "edgedevices",
        NS,
        json!({"metadata": {"name": "dev1", "finalizers": ["device-finalizer"]}, "spec": {}}),
    )
    .await;
    h.place("dev1", &["web"]).await;
    assert_eq!(h.configuration("dev1").await.workloads.len(), 1);
    assert_eq!(
        h.backend
            .registration_status("dev1", NS)
            .await
            .expect("status"),
        RegistrationStatus::Registered
    );
    let def = h.def(v1::GROUP, "edgedevices");
    Collection::new(&*h.store, &def)
        .delete(Some(NS), "dev1", &DeleteOptions::default(), false)
        .await
        .expect("delete");
    wait_for(|| async {
        h.backend.registration_status("dev1", NS).await.ok()
            == Some(RegistrationStatus::Unregistered)
    })
    .await;
    let message = h.configuration("dev1").await;
    assert!(message.workloads.is_empty() && message.secrets.is_empty());
}

#[tokio::test]
async fn playbook_executions_are_served_and_advanced_by_heartbeats() {
    let h = Harness::start(quiet_liveness()).await;
    h.create(
        v1::GROUP,
        "playbookexecutions",
        NS,
        json!({"metadata": {"name": "dev1-cfg"}, "spec": {"playbook": {"content": "LSBob3N0czogYWxs"}}}),
    )
    .await;
    h.create(
        v1::GROUP,
        "edgedevices",
        NS,
        json!({"metadata": {"name": "dev1", "labels": {"config/device-by-config": "cfg"}}, "spec": {}}),
    )
    .await;
    h.update(v1::GROUP, "edgedevices", NS, "dev1", Some("status"), |d| {
        d["status"]["PlaybookExec"] = json!([{"name": "dev1-cfg",
            "PlaybookExecutionStatus": {"conditions": [{"type": "Deploying", "status": "True"}]}}]);
    })
    .await;
    let executions = h
        .backend
        .playbook_executions("dev1", NS)
        .await
        .expect("executions");
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].name.as_deref(), Some("dev1-cfg"));
    assert_eq!(
        executions[0].ansible_playbook_string.as_deref(),
        Some("- hosts: all")
    );

    let mut hb = heartbeat(&[]);
    hb.playbook_executions.push(edge::PlaybookExecutionStatus {
        name: Some("dev1-cfg".into()),
        status: Some("SuccessfullyCompleted".into()),
        last_data_upload: None,
    });
    h.backend
        .heartbeat("dev1", NS, &hb)
        .await
        .expect("heartbeat");
    let execution = h
        .get(v1::GROUP, "playbookexecutions", NS, "dev1-cfg")
        .await
        .expect("execution");
    assert_eq!(
        execution["status"]["conditions"][0]["type"],
        "SuccessfullyCompleted"
    );
    let device = h.device("dev1").await;
    let conditions = &device["status"]["PlaybookExec"][0]["PlaybookExecutionStatus"]["conditions"];
    assert_eq!(conditions[0]["status"], "False");
    assert_eq!(conditions[1]["type"], "SuccessfullyCompleted");
    assert!(
        device["metadata"]
            .get("labels")
            .and_then(|l| l.get("config/device-by-config"))
            .is_none(),
        "the EdgeConfig label goes once its playbook finished"
    );
    assert!(
        h.backend
            .playbook_executions("ghost", NS)
            .await
            .is_err_and(|e| matches!(e, BackendError::NotFound))
    );
}
