//! Rendered device configurations read their ConfigMaps and Secrets through a
//! `ReferenceSource` and follow its `changes()`:
//! - a test source holding objects the store does not have: they are rendered, a change
//!   is picked up only once announced (the cached configuration is kept until then), and a
//!   lagging change receiver empties the cache;
//! - the standalone source (`StoreReferences`): a ConfigMap updated through the REST layer
//!   shows up in the next configuration;
//! - the aggregated source (`ClusterReferences`) over the Kubernetes API test double of
//!   `aggregated_support`: a ConfigMap changed in the "cluster" shows up in the next
//!   configuration, with no ConfigMap or Secret in the server's store at all.

mod aggregated_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flotta_api::edge::DeviceConfigurationMessage;
use flotta_api::store::Store;
use flotta_api::store::memory::MemoryStore;
use flotta_api::v1alpha1 as v1;
use flotta_apiserver::cluster::events::LogEvents;
use flotta_apiserver::cluster::references::{
    ClusterReferences, ReferenceChange, ReferenceError, ReferenceKind, ReferenceSource,
    StoreReferences,
};
use flotta_apiserver::edge::backend::DeviceBackend as _;
use flotta_apiserver::edge::backend::store::StoreBackend;
use flotta_apiserver::edge::liveness::{Liveness, LivenessConfig};
use flotta_apiserver::edge::metrics::EdgeMetrics;
use flotta_apiserver::resources;
use flotta_apiserver::rest::collection::Collection;
use flotta_apiserver::rest::request::QueryOptions;
use flotta_apiserver::rest::resource::ResourceRegistry;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};

const NS: &str = "fleet";
const WAIT: Duration = Duration::from_secs(10);

/// A reference source kept by the test: lookups answer from its maps, changes are
/// announced only when the test says so.
struct TestReferences {
    config_maps: Mutex<HashMap<String, Arc<ConfigMap>>>,
    secrets: Mutex<HashMap<String, Arc<Secret>>>,
    changes: broadcast::Sender<ReferenceChange>,
}

impl TestReferences {
    fn new(capacity: usize) -> Self {
        TestReferences {
            config_maps: Mutex::default(),
            secrets: Mutex::default(),
            changes: broadcast::channel(capacity).0,
        }
    }

    /// Sets ConfigMap `NS/name` to `data`, without announcing it.
    fn put_config_map(&self, name: &str, data: &[(&str, &str)]) {
        let config_map = ConfigMap {
            metadata: meta(name),
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ConfigMap::default()
        };
        self.config_maps
            .lock()
            .expect("lock")
            .insert(name.to_owned(), Arc::new(config_map));
    }

    fn put_secret(&self, name: &str, key: &str, value: &[u8]) {
        let secret = Secret {
            metadata: meta(name),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(value.to_vec()),
            )])),
            ..Secret::default()
        };
        self.secrets
            .lock()
            .expect("lock")
            .insert(name.to_owned(), Arc::new(secret));
    }

    fn announce(&self, kind: ReferenceKind, namespace: &str, name: &str) {
        let _ = self.changes.send(ReferenceChange {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(NS.to_owned()),
        ..ObjectMeta::default()
    }
}

#[async_trait]
impl ReferenceSource for TestReferences {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<ConfigMap>>, ReferenceError> {
        Ok((namespace == NS)
            .then(|| self.config_maps.lock().expect("lock").get(name).cloned())
            .flatten())
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, ReferenceError> {
        Ok((namespace == NS)
            .then(|| self.secrets.lock().expect("lock").get(name).cloned())
            .flatten())
    }

    fn changes(&self) -> broadcast::Receiver<ReferenceChange> {
        self.changes.subscribe()
    }
}

/// A store backend over a memory store, reading references from a given source, with a
/// device `dev1` running workload `web` that takes its environment from ConfigMap
/// `settings` and Secret `token`.
struct Harness {
    store: Arc<dyn Store>,
    registry: ResourceRegistry,
    backend: Arc<StoreBackend>,
    metrics: Arc<EdgeMetrics>,
    _stop: oneshot::Sender<()>,
}

impl Harness {
    async fn start(
        store: Arc<dyn Store>,
        registry: ResourceRegistry,
        references: Arc<dyn ReferenceSource>,
    ) -> Harness {
        let metrics = Arc::new(EdgeMetrics::new());
        let backend = Arc::new(
            StoreBackend::new(
                Arc::clone(&store),
                &registry,
                references,
                Arc::new(LogEvents),
                Arc::new(Liveness::new(LivenessConfig::default())),
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
        let h = Harness {
            store,
            registry,
            backend,
            metrics,
            _stop: stop,
        };
        h.wait_until(|| async { h.backend.configurations().watching() })
            .await;
        h.create(
            v1::GROUP,
            "edgeworkloads",
            json!({
                "metadata": {"name": "web"},
                "spec": {"type": "pod", "pod": {"spec": {"containers": [{
                    "name": "web", "image": "web:1",
                    "envFrom": [{"configMapRef": {"name": "settings"}},
                                {"secretRef": {"name": "token"}}],
                }]}}},
            }),
        )
        .await;
        h.create(
            v1::GROUP,
            "edgedevices",
            json!({"metadata": {"name": "dev1"}, "spec": {}}),
        )
        .await;
        let devices = h.registry.find(v1::GROUP, v1::VERSION, "edgedevices");
        Collection::new(&*h.store, devices.expect("kind"))
            .update_with(
                Some(NS),
                "dev1",
                Some("status"),
                &QueryOptions::default(),
                |current| {
                    let mut next = current.clone();
                    next["status"]["workloads"] = json!([{"name": "web", "phase": "Deploying"}]);
                    Ok(next)
                },
            )
            .await
            .expect("placed");
        h
    }

    async fn create(&self, group: &str, plural: &str, object: Value) -> Value {
        let version = if group.is_empty() { "v1" } else { v1::VERSION };
        let def = self.registry.find(group, version, plural).expect("kind");
        Collection::new(&*self.store, def)
            .create(Some(NS), object, &QueryOptions::default())
            .await
            .expect("create")
            .object
    }

    async fn configuration(&self) -> DeviceConfigurationMessage {
        let rendered = self
            .backend
            .configuration("dev1", NS)
            .await
            .expect("configuration");
        (*rendered.message).clone()
    }

    /// The `settings` ConfigMap as rendered for `web` (YAML), if it was.
    async fn rendered_settings(&self) -> Option<String> {
        self.configuration()
            .await
            .workloads
            .first()?
            .configmaps
            .first()
            .cloned()
    }

    async fn wait_until<F, Fut>(&self, mut condition: F)
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

    /// Waits until the rendered `settings` ConfigMap contains `text`.
    async fn wait_for_settings(&self, text: &str) {
        self.wait_until(|| async {
            self.rendered_settings()
                .await
                .is_some_and(|yaml| yaml.contains(text))
        })
        .await;
    }
}

#[tokio::test]
async fn configurations_read_references_through_the_source_and_follow_its_changes() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(10_000));
    let references = Arc::new(TestReferences::new(4));
    references.put_config_map("settings", &[("MODE", "first")]);
    references.put_secret("token", "TOKEN", b"s3cr3t");
    // The Flotta kinds only: ConfigMaps and Secrets can come from nowhere but the source.
    let h = Harness::start(
        store,
        resources::flotta(),
        Arc::clone(&references) as Arc<dyn ReferenceSource>,
    )
    .await;

    let message = h.configuration().await;
    let settings = h.rendered_settings().await.expect("settings rendered");
    assert!(settings.contains("MODE: first"), "{settings}");
    assert_eq!(message.secrets.len(), 1, "{message:?}");
    let secret_data: Value =
        serde_json::from_str(message.secrets[0].data.as_deref().expect("data")).expect("json");
    assert_eq!(
        secret_data,
        json!({"TOKEN": "czNjcjN0"}),
        "base64 as stored"
    );
    assert_eq!(h.backend.configurations().cached(), 1);

    // Changed but not announced: the cached configuration is served.
    references.put_config_map("settings", &[("MODE", "second")]);
    let renders = h.metrics.configuration_renders.get();
    assert!(
        h.rendered_settings()
            .await
            .expect("settings")
            .contains("MODE: first")
    );
    assert_eq!(
        h.metrics.configuration_renders.get(),
        renders,
        "a cache hit"
    );

    // Announced: the device's configuration is evicted and rendered anew.
    references.announce(ReferenceKind::ConfigMap, NS, "settings");
    h.wait_for_settings("MODE: second").await;
    assert!(h.metrics.configuration_renders.get() > renders);

    // Secrets too.
    references.put_secret("token", "TOKEN", b"n3w");
    references.announce(ReferenceKind::Secret, NS, "token");
    h.wait_until(|| async {
        h.configuration().await.secrets[0]
            .data
            .as_deref()
            .is_some_and(|d| d.contains("bjN3"))
    })
    .await;

    // More notices than the receiver holds, about objects nobody uses, sent before the
    // watcher can run (one test thread): it lags and must drop the whole cache.
    h.configuration().await;
    assert_eq!(h.backend.configurations().cached(), 1);
    for i in 0..10 {
        references.announce(
            ReferenceKind::ConfigMap,
            "elsewhere",
            &format!("unused-{i}"),
        );
    }
    h.wait_until(|| async { h.backend.configurations().cached() == 0 })
        .await;
    // And caching goes on afterwards.
    h.configuration().await;
    assert_eq!(h.backend.configurations().cached(), 1);
}

#[tokio::test]
async fn standalone_configurations_follow_the_stores_config_maps() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(10_000));
    let registry = resources::standalone();
    let references =
        Arc::new(StoreReferences::new(Arc::clone(&store), &registry).expect("core kinds"));
    let h = Harness::start(store, registry, references).await;
    h.create(
        "",
        "configmaps",
        json!({"metadata": {"name": "settings"}, "data": {"MODE": "first"}}),
    )
    .await;
    h.create(
        "",
        "secrets",
        json!({"metadata": {"name": "token"}, "data": {"TOKEN": "czNjcjN0"}}),
    )
    .await;
    h.wait_for_settings("MODE: first").await;

    let def = h.registry.find("", "v1", "configmaps").expect("kind");
    Collection::new(&*h.store, def)
        .update_with(
            Some(NS),
            "settings",
            None,
            &QueryOptions::default(),
            |current| {
                let mut next = current.clone();
                next["data"]["MODE"] = json!("second");
                Ok(next)
            },
        )
        .await
        .expect("update");
    h.wait_for_settings("MODE: second").await;
}

#[tokio::test]
async fn aggregated_configurations_follow_the_clusters_config_maps() {
    aggregated_support::init();
    let double = aggregated_support::KubeDouble::start(None).await;
    let config_map = |mode: &str| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": NS},
            "data": {"MODE": mode},
        })
    };
    double.put_object("configmaps", config_map("first"));
    double.put_object(
        "secrets",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "token", "namespace": NS},
            "type": "Opaque",
            "data": {"TOKEN": "czNjcjN0"},
        }),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = double.write_kubeconfig(dir.path());
    let client = flotta_apiserver::cluster::client(Some(&kubeconfig), None)
        .await
        .expect("client");
    let references = Arc::new(ClusterReferences::start(&client));
    // As in aggregated mode: the store serves the Flotta kinds only.
    let h = Harness::start(
        Arc::new(MemoryStore::new(10_000)),
        resources::flotta(),
        references,
    )
    .await;

    let settings = h.rendered_settings().await.expect("settings rendered");
    assert!(settings.contains("MODE: first"), "{settings}");
    let message = h.configuration().await;
    assert_eq!(message.secrets.len(), 1, "{message:?}");
    assert!(
        message.secrets[0]
            .data
            .as_deref()
            .is_some_and(|d| d.contains("czNjcjN0"))
    );

    double.put_object("configmaps", config_map("second"));
    h.wait_for_settings("MODE: second").await;
}
