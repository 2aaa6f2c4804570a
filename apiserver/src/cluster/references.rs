//! ConfigMaps and Secrets that workloads, device sets and storage settings refer to
//! (`flotta-inventory.md` §3.5), looked up through one seam, [`ReferenceSource`], whatever
//! mode the server runs in:
//! - [`StoreReferences`] (standalone mode): the server's own `core/v1` ConfigMaps and
//!   Secrets, read from the store through the REST layer;
//! - [`ClusterReferences`] (aggregated mode): the cluster's ConfigMaps and Secrets, kept in
//!   a watch-backed in-memory cache (kube-runtime reflectors over all namespaces), so a
//!   lookup costs no API call.
//!
//! Both announce changes on [`ReferenceSource::changes`] (kind, namespace, name), so a
//! rendered-configuration cache can drop what depends on a changed object instead of
//! re-reading it on every poll. A receiver that lags behind gets
//! `RecvError::Lagged` and should then drop its whole cache.
//!
//! Limits: the cluster cache holds every ConfigMap and Secret of the cluster (minus
//! `managedFields`), which needs cluster-wide get/list/watch on both and memory in
//! proportion to them; lookups made before the initial listing completes wait for it
//! (up to [`READY_TIMEOUT`]) and then fail with [`ReferenceError::NotReady`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flotta_api::store::Store;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, reflector::store::Writer};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::rest::collection::Collection;
use crate::rest::error::ApiError;
use crate::rest::resource::{ResourceDef, ResourceRegistry};

/// How long a lookup waits for the cluster cache's initial listing.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many change notices a slow receiver may fall behind before it lags.
const CHANGES_CAPACITY: usize = 1024;

/// Which kind of object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferenceKind {
    /// A core/v1 ConfigMap.
    ConfigMap,
    /// A core/v1 Secret.
    Secret,
}

/// A ConfigMap or Secret was created, changed or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferenceChange {
    /// Its kind.
    pub kind: ReferenceKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Why a lookup failed (as opposed to finding nothing).
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The cluster cache has not finished its initial listing.
    #[error("the ConfigMap/Secret cache is not synchronised yet")]
    NotReady,
    /// The store could not be read, or holds an object that does not decode.
    #[error("reading {what}: {message}")]
    Read {
        /// `ConfigMap ns/name` or `Secret ns/name`.
        what: String,
        /// What went wrong.
        message: String,
    },
}

/// Where referenced ConfigMaps and Secrets are looked up (see the module docs).
#[async_trait]
pub trait ReferenceSource: Send + Sync {
    /// The ConfigMap `namespace/name`, if it exists.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<ConfigMap>>, ReferenceError>;

    /// The Secret `namespace/name`, if it exists.
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, ReferenceError>;

    /// Notices of ConfigMaps and Secrets created, changed or deleted from now on.
    fn changes(&self) -> broadcast::Receiver<ReferenceChange>;
}

/// The cluster's ConfigMaps and Secrets, cached by watches (aggregated mode).
pub struct ClusterReferences {
    config_maps: reflector::Store<ConfigMap>,
    secrets: reflector::Store<Secret>,
    changes: broadcast::Sender<ReferenceChange>,
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterReferences {
    /// Starts watching every namespace's ConfigMaps and Secrets through `client`. The
    /// watches stop when this is dropped.
    pub fn start(client: &kube::Client) -> Self {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        let (config_maps, config_map_writer) = reflector::store();
        let (secrets, secret_writer) = reflector::store();
        let tasks = vec![
            tokio::spawn(reflect(
                Api::<ConfigMap>::all(client.clone()),
                config_map_writer,
                ReferenceKind::ConfigMap,
                changes.clone(),
            )),
            tokio::spawn(reflect(
                Api::<Secret>::all(client.clone()),
                secret_writer,
                ReferenceKind::Secret,
                changes.clone(),
            )),
        ];
        ClusterReferences {
            config_maps,
            secrets,
            changes,
            tasks,
        }
    }

    /// Whether both initial listings have completed.
    pub fn is_ready(&self) -> bool {
        // `wait_until_ready` resolves at once when ready; poll it without waiting.
        futures::FutureExt::now_or_never(async {
            self.config_maps.wait_until_ready().await.is_ok()
                && self.secrets.wait_until_ready().await.is_ok()
        })
        .unwrap_or(false)
    }
}

impl Drop for ClusterReferences {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn lookup<K>(
    store: &reflector::Store<K>,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<K>>, ReferenceError>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    tokio::time::timeout(READY_TIMEOUT, store.wait_until_ready())
        .await
        .map_err(|_| ReferenceError::NotReady)?
        .map_err(|_| ReferenceError::NotReady)?;
    Ok(store.get(&ObjectRef::new(name).within(namespace)))
}

#[async_trait]
impl ReferenceSource for ClusterReferences {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<ConfigMap>>, ReferenceError> {
        lookup(&self.config_maps, namespace, name).await
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, ReferenceError> {
        lookup(&self.secrets, namespace, name).await
    }

    fn changes(&self) -> broadcast::Receiver<ReferenceChange> {
        self.changes.subscribe()
    }
}

/// Mirrors one kind into `writer` and announces every object touched.
async fn reflect<K>(
    api: Api<K>,
    writer: Writer<K>,
    kind: ReferenceKind,
    changes: broadcast::Sender<ReferenceChange>,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object: &mut K| object.meta_mut().managed_fields = None);
    let mut events = reflector::reflector(writer, events).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(object) | Event::Delete(object) | Event::InitApply(object)) => {
                let meta = object.meta();
                let _ = changes.send(ReferenceChange {
                    kind,
                    namespace: meta.namespace.clone().unwrap_or_default(),
                    name: meta.name.clone().unwrap_or_default(),
                });
            }
            Ok(Event::Init | Event::InitDone) => {}
            Err(error) => {
                tracing::warn!(?kind, %error, "watching referenced objects failed; retrying")
            }
        }
    }
}

/// The server's own ConfigMaps and Secrets (standalone mode).
pub struct StoreReferences {
    store: Arc<dyn Store>,
    config_maps: Arc<ResourceDef>,
    secrets: Arc<ResourceDef>,
    changes: broadcast::Sender<ReferenceChange>,
    task: JoinHandle<()>,
}

impl StoreReferences {
    /// Reads the `configmaps` and `secrets` kinds of `registry` from `store`; `None` when
    /// the registry does not serve them. Changes are announced from a store watch that
    /// stops when this is dropped.
    pub fn new(store: Arc<dyn Store>, registry: &ResourceRegistry) -> Option<Self> {
        let config_maps = registry.find("", "v1", "configmaps")?.clone();
        let secrets = registry.find("", "v1", "secrets")?.clone();
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        let task = tokio::spawn(announce_store_changes(
            store.clone(),
            [
                (config_maps.key_prefix(), ReferenceKind::ConfigMap),
                (secrets.key_prefix(), ReferenceKind::Secret),
            ],
            changes.clone(),
        ));
        Some(StoreReferences {
            store,
            config_maps,
            secrets,
            changes,
            task,
        })
    }

    async fn get<K: DeserializeOwned>(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<K>>, ReferenceError> {
        let what = || format!("{} {namespace}/{name}", def.kind);
        match Collection::new(self.store.as_ref(), def)
            .get(Some(namespace), name)
            .await
        {
            Ok(value) => serde_json::from_value(value)
                .map(|object| Some(Arc::new(object)))
                .map_err(|e| ReferenceError::Read {
                    what: what(),
                    message: e.to_string(),
                }),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(error) => Err(ReferenceError::Read {
                what: what(),
                message: error.to_string(),
            }),
        }
    }
}

impl Drop for StoreReferences {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl ReferenceSource for StoreReferences {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<ConfigMap>>, ReferenceError> {
        self.get(&self.config_maps, namespace, name).await
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, ReferenceError> {
        self.get(&self.secrets, namespace, name).await
    }

    fn changes(&self) -> broadcast::Receiver<ReferenceChange> {
        self.changes.subscribe()
    }
}

/// Announces every write under the given key prefixes (`<prefix><namespace>/<name>`),
/// re-watching from the last revision seen when a watch ends.
async fn announce_store_changes(
    store: Arc<dyn Store>,
    prefixes: [(String, ReferenceKind); 2],
    changes: broadcast::Sender<ReferenceChange>,
) {
    let common = common_prefix(&prefixes[0].0, &prefixes[1].0);
    let mut after = None;
    loop {
        let from = match after {
            Some(revision) => revision,
            None => match store.current_revision().await {
                Ok(revision) => revision,
                Err(error) => {
                    tracing::warn!(%error, "cannot watch referenced objects in the store");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let mut stream = match store.watch(&common, from).await {
            Ok(stream) => stream,
            Err(error) => {
                // Compacted or failed: start over from the present.
                tracing::warn!(%error, "re-watching referenced objects from the current revision");
                after = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::debug!(%error, "watch of referenced objects ended; resuming");
                    break;
                }
            };
            after = Some(event.revision());
            for (prefix, kind) in &prefixes {
                if let Some((namespace, name)) = event
                    .kv
                    .key
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.split_once('/'))
                {
                    let _ = changes.send(ReferenceChange {
                        kind: *kind,
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                    });
                }
            }
        }
    }
}

/// The longest common prefix of two keys that ends in `/`.
fn common_prefix(a: &str, b: &str) -> String {
    let shared: String = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    match shared.rfind('/') {
        Some(end) => shared[..=end].to_owned(),
        None => String::new(),
    }
}
