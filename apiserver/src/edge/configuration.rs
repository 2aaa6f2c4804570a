//! Device configuration rendering (`flotta-inventory.md` §3.5) and its cache.
//!
//! A device's `DeviceConfigurationMessage` is built from the EdgeDevice, its EdgeDeviceSet
//! (when the `flotta/member-of` label names one that exists, each configuration section
//! comes entirely from the set), the EdgeWorkloads listed in the device's
//! `status.workloads` (the placement the controllers maintain), and the ConfigMaps and
//! Secrets they reference. Defaults the original CRDs declared (and Kubernetes applied on
//! write) are applied here: heartbeat period 60 s, metrics interval 60 s and path `/`, log
//! buffer 12 KiB, receiver 30000 samples and 10 s timeout.
//!
//! A missing object or key does not fail the request, unlike Flotta: the workload (or
//! configuration section) that needs it is left out, the rest is rendered, and the
//! problems are written to the device's [`CONFIGURATION_PROBLEMS_ANNOTATION`] annotation
//! (removed when resolved; written only when the text changes), where
//! `kubectl describe edgedevice` shows them.
//!
//! ConfigMaps and Secrets are read through a [`ReferenceSource`]: the server's own in
//! standalone mode ([`crate::cluster::references::StoreReferences`]), the cluster's in
//! aggregated mode ([`crate::cluster::references::ClusterReferences`]).
//!
//! Rendered configurations are cached per device with their serialised JSON and ETag.
//! [`Configurations::run`] watches the store and the reference source's
//! [`ReferenceSource::changes`], and evicts a device when the device or anything it was
//! rendered from (set, workloads, ConfigMaps, Secrets, named even when missing) changes;
//! a lagging change receiver empties the whole cache. The cache counts the changes it
//! has seen (its generation) and refuses a render that started before a change to
//! something it read, so a render that raced with a change is never cached, whether the
//! change came from the store or from the cluster. The same watcher tells the liveness
//! table about device revisions and deletions.
//!
//! Limits: the ObjectBucketClaim storage mode reads the bucket host from the claim's
//! ConfigMap (`BUCKET_HOST`) since there is no OpenShift Route here, and sends no CA.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use flotta_api::edge::{
    AllowList, ComponentMetricsConfiguration, ContainerMetrics, DataConfiguration, DataPath,
    DeviceConfiguration, DeviceConfigurationMessage, HardwareProfileConfiguration,
    HeartbeatConfiguration, ImageRegistries, LogsCollectionInformation, MetricsConfiguration,
    MetricsReceiverConfiguration, MetricsRetention, Mount, OsInformation, S3StorageConfiguration,
    Secret, StorageConfiguration, SyslogConfig, Workload, WorkloadMetrics,
};
use flotta_api::store::{Event, EventKind, Store};
use flotta_api::v1alpha1::{self as v1, EdgeDevice, EdgeDeviceSet, EdgeWorkload};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::backend::{BackendError, RegistrationStatus, RenderedConfiguration};
use super::liveness::{Liveness, StoredLiveness};
use super::metrics::{EdgeMetrics, WriteReason};
use crate::cluster::references::{ReferenceError, ReferenceKind, ReferenceSource};
use crate::rest::collection::Collection;
use crate::rest::error::ApiError;
use crate::rest::request::QueryOptions;
use crate::rest::resource::{ResourceDef, ResourceRegistry};

/// The EdgeDevice annotation that lists what could not be rendered for the device, one
/// problem per line; absent when the configuration is complete.
pub const CONFIGURATION_PROBLEMS_ANNOTATION: &str =
    "management.project-flotta.io/configuration-problems";
/// The heartbeat period when neither the device nor its set says.
pub const DEFAULT_HEARTBEAT_PERIOD_SECONDS: i64 = 60;
/// Samples per remote-write request when the receiver configuration does not say.
const DEFAULT_RECEIVER_SAMPLES: i64 = 30_000;
/// Remote-write timeout when the receiver configuration does not say.
const DEFAULT_RECEIVER_TIMEOUT_SECONDS: i64 = 10;
/// The ConfigMap key holding a metrics allow list (`names: [...]`).
const ALLOW_LIST_KEY: &str = "metrics_list.yaml";
/// Workload labels and annotations with this prefix go to the device, prefix stripped.
const PODMAN_PREFIX: &str = "podman/";
/// The bucket port of ObjectBucketClaim storage.
const OBC_BUCKET_PORT: i32 = 443;
/// How many changed keys the cache remembers before it forgets them all (see
/// `Cache::changed`).
const MAX_TRACKED_CHANGES: usize = 200_000;
/// What the store watch covers: every kind (filtered by key below).
const WATCH_PREFIX: &str = "/registry/";
/// Dependency keys of ConfigMaps: their store keys in standalone mode, so store events
/// and reference changes evict alike (the same form in aggregated mode).
const CONFIG_MAP_KEY_PREFIX: &str = "/registry/core/configmaps/";
/// Dependency keys of Secrets (see [`CONFIG_MAP_KEY_PREFIX`]).
const SECRET_KEY_PREFIX: &str = "/registry/core/secrets/";

/// One device's rendered configuration and what it was rendered from.
#[derive(Debug)]
pub struct Rendered {
    /// The configuration message, serialised, with its ETag.
    pub configuration: RenderedConfiguration,
    /// What could not be rendered (empty when complete).
    pub problems: Vec<String>,
    /// The device is being deleted (its configuration has no workloads).
    pub deleting: bool,
    /// The device's effective heartbeat period.
    pub heartbeat_period: Duration,
    /// Keys of the objects this rendering read (the device included), for eviction.
    deps: Vec<String>,
}

/// The device kinds the renderer reads from the store.
struct Kinds {
    device: Arc<ResourceDef>,
    set: Arc<ResourceDef>,
    workload: Arc<ResourceDef>,
}

/// The dependency key of a referenced ConfigMap or Secret.
fn reference_key(kind: ReferenceKind, namespace: &str, name: &str) -> String {
    let prefix = match kind {
        ReferenceKind::ConfigMap => CONFIG_MAP_KEY_PREFIX,
        ReferenceKind::Secret => SECRET_KEY_PREFIX,
    };
    format!("{prefix}{namespace}/{name}")
}

/// Maps a failed ConfigMap/Secret lookup to a backend error: the device retries later.
fn reference_error(error: ReferenceError) -> BackendError {
    BackendError::Unavailable(error.to_string())
}

/// The rendering cache and its eviction index.
///
/// Its clock is `generation`, a count of the changes it has seen (store events and
/// reference changes alike, since cluster changes have no store revision): a render
/// remembers the generation it started at, and is cached only if nothing it read changed
/// at a later generation.
#[derive(Default)]
struct Cache {
    /// Device store key → its rendering.
    entries: HashMap<String, Arc<Rendered>>,
    /// Dependency key → devices whose rendering read it.
    dependents: HashMap<String, HashSet<String>>,
    /// Dependency key → generation of its newest change seen.
    changed_at: HashMap<String, u64>,
    /// Changes seen so far.
    generation: u64,
    /// Renders that started before this generation are not cached (changes they depend
    /// on may have gone unseen). `u64::MAX` while the watcher does not run.
    floor: u64,
}

impl Cache {
    fn remove(&mut self, device: &str) {
        if let Some(old) = self.entries.remove(device) {
            for dep in &old.deps {
                if let Some(devices) = self.dependents.get_mut(dep) {
                    devices.remove(device);
                    if devices.is_empty() {
                        self.dependents.remove(dep);
                    }
                }
            }
        }
    }

    /// Records a change of `key` and evicts the devices that read it.
    fn changed(&mut self, key: &str) {
        self.generation += 1;
        if self.changed_at.len() >= MAX_TRACKED_CHANGES {
            // Bounded memory: forget the history and refuse renders that started before
            // this change (they are rendered again on the next poll).
            self.changed_at.clear();
            self.floor = self.floor.max(self.generation);
        }
        self.changed_at.insert(key.to_string(), self.generation);
        if let Some(devices) = self.dependents.get(key).cloned() {
            for device in devices {
                self.remove(&device);
            }
        }
    }

    /// Forgets everything, as if every key changed now: renders in progress are not
    /// cached either.
    fn clear(&mut self) {
        self.generation += 1;
        self.entries.clear();
        self.dependents.clear();
        self.changed_at.clear();
        self.floor = self.floor.max(self.generation);
    }

    /// Starts caching after the watcher (re)started: renders from before are refused.
    fn start_watching(&mut self) {
        self.clear();
        self.floor = self.generation;
    }

    /// Stops caching (the watcher stopped; changes may go unseen).
    fn stop_watching(&mut self) {
        self.clear();
        self.floor = u64::MAX;
    }

    /// Caches `rendered` for `device` unless something it read changed after generation
    /// `start` (the generation when the render began).
    fn insert(&mut self, device: &str, rendered: Arc<Rendered>, start: u64) -> bool {
        if start < self.floor {
            return false;
        }
        let stale = rendered
            .deps
            .iter()
            .any(|d| self.changed_at.get(d).is_some_and(|r| *r > start));
        if stale {
            return false;
        }
        self.remove(device);
        for dep in &rendered.deps {
            self.dependents
                .entry(dep.clone())
                .or_default()
                .insert(device.to_string());
        }
        self.entries.insert(device.to_string(), rendered);
        true
    }
}

/// Renders and caches device configurations (see the module documentation).
pub struct Configurations {
    store: Arc<dyn Store>,
    references: Arc<dyn ReferenceSource>,
    kinds: Kinds,
    liveness: Arc<Liveness>,
    metrics: Arc<EdgeMetrics>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Configurations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configurations").finish_non_exhaustive()
    }
}

/// Maps a REST-layer error met while serving a device to a backend error.
pub(crate) fn backend_error(error: ApiError) -> BackendError {
    match error {
        ApiError::NotFound(_) => BackendError::NotFound,
        ApiError::Invalid { .. } | ApiError::BadRequest(_) | ApiError::TooLarge(_) => {
            BackendError::Invalid(error.to_string())
        }
        ApiError::Conflict { .. } | ApiError::Internal(_) => {
            BackendError::Unavailable(error.to_string())
        }
        other => BackendError::Internal(other.to_string()),
    }
}

/// The kind `plural` of the Flotta group, or an error naming it.
pub(crate) fn flotta_kind(
    registry: &ResourceRegistry,
    plural: &str,
) -> Result<Arc<ResourceDef>, BackendError> {
    registry
        .find(v1::GROUP, v1::VERSION, plural)
        .cloned()
        .ok_or_else(|| BackendError::Internal(format!("the kind {plural} is not registered")))
}

/// `namespace/name` of a store key under `prefix`, if it is one.
pub(crate) fn object_of_key<'k>(key: &'k str, prefix: &str) -> Option<(&'k str, &'k str)> {
    key.strip_prefix(prefix)?.split_once('/')
}

impl Configurations {
    /// A renderer over `store` for the Flotta kinds in `registry` (required), reading
    /// ConfigMaps and Secrets from `references`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: &ResourceRegistry,
        references: Arc<dyn ReferenceSource>,
        liveness: Arc<Liveness>,
        metrics: Arc<EdgeMetrics>,
    ) -> Result<Self, BackendError> {
        let kinds = Kinds {
            device: flotta_kind(registry, "edgedevices")?,
            set: flotta_kind(registry, "edgedevicesets")?,
            workload: flotta_kind(registry, "edgeworkloads")?,
        };
        Ok(Configurations {
            store,
            references,
            kinds,
            liveness,
            metrics,
            cache: Mutex::new(Cache {
                floor: u64::MAX,
                ..Cache::default()
            }),
        })
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // A poisoned lock only means a panic elsewhere mid-update; the cache stays usable.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn device_key(&self, namespace: &str, name: &str) -> String {
        format!("{}{namespace}/{name}", self.kinds.device.key_prefix())
    }

    /// The device's configuration, from the cache or freshly rendered (and then cached).
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Arc<Rendered>, BackendError> {
        let key = self.device_key(namespace, name);
        if let Some(hit) = self.cache().entries.get(&key).cloned() {
            self.metrics.configuration_cache_hits.inc();
            return Ok(hit);
        }
        let start = self.cache().generation;
        let (rendered, recorded_problems) = self.render(namespace, name).await?;
        self.metrics.configuration_renders.inc();
        self.liveness
            .set_period(namespace, name, rendered.heartbeat_period);
        let rendered = Arc::new(rendered);
        let wanted = (!rendered.problems.is_empty()).then(|| rendered.problems.join("\n"));
        if !rendered.deleting && wanted != recorded_problems {
            self.record_problems(namespace, name, wanted.as_deref())
                .await?;
            // The write is a device change: this rendering is already stale.
            return Ok(rendered);
        }
        self.cache().insert(&key, Arc::clone(&rendered), start);
        Ok(rendered)
    }

    /// Whether the device exists and is not being deleted, answered from the cache when
    /// its configuration is cached.
    pub async fn registration_status(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<RegistrationStatus, BackendError> {
        let key = self.device_key(namespace, name);
        if let Some(hit) = self.cache().entries.get(&key) {
            return Ok(if hit.deleting {
                RegistrationStatus::Unregistered
            } else {
                RegistrationStatus::Registered
            });
        }
        let collection = Collection::new(&*self.store, &self.kinds.device);
        match collection.get(Some(namespace), name).await {
            Ok(device) => Ok(
                if device
                    .pointer("/metadata/deletionTimestamp")
                    .is_some_and(|t| !t.is_null())
                {
                    RegistrationStatus::Unregistered
                } else {
                    RegistrationStatus::Registered
                },
            ),
            Err(ApiError::NotFound(_)) => Ok(RegistrationStatus::Unregistered),
            Err(e) => Err(backend_error(e)),
        }
    }

    /// Drops a device's cached configuration.
    pub fn evict(&self, namespace: &str, name: &str) {
        let key = self.device_key(namespace, name);
        self.cache().remove(&key);
    }

    /// Whether the watcher runs, so that renderings are cached.
    pub fn watching(&self) -> bool {
        self.cache().floor != u64::MAX
    }

    /// How many configurations are cached.
    pub fn cached(&self) -> usize {
        self.cache().entries.len()
    }

    /// Writes (or removes) the configuration problems annotation on the device.
    async fn record_problems(
        &self,
        namespace: &str,
        name: &str,
        problems: Option<&str>,
    ) -> Result<(), BackendError> {
        let collection = Collection::new(&*self.store, &self.kinds.device);
        let mut before = None;
        let written = collection
            .update_with(
                Some(namespace),
                name,
                None,
                &QueryOptions::default(),
                |current| {
                    before = rv_of(current);
                    let mut next = current.clone();
                    set_annotation(&mut next, CONFIGURATION_PROBLEMS_ANNOTATION, problems);
                    Ok(next)
                },
            )
            .await
            .map_err(backend_error)?;
        if rv_of(&written.object) != before {
            self.metrics.store_write(WriteReason::Configuration);
        }
        Ok(())
    }

    /// Renders a device's configuration; also returns the problems currently recorded on
    /// the device.
    async fn render(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(Rendered, Option<String>), BackendError> {
        let devices = Collection::new(&*self.store, &self.kinds.device);
        let raw = devices
            .get(Some(namespace), name)
            .await
            .map_err(backend_error)?;
        let recorded = raw
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CONFIGURATION_PROBLEMS_ANNOTATION))
            .and_then(Value::as_str)
            .map(str::to_string);
        let version = rv_of(&raw);
        let device: EdgeDevice = serde_json::from_value(raw)
            .map_err(|e| BackendError::Internal(format!("stored device is malformed: {e}")))?;
        let mut render = Render {
            owner: self,
            namespace,
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
            deps: BTreeSet::new(),
            problems: Vec::new(),
        };
        render.deps.insert(self.device_key(namespace, name));
        let deleting = device.metadata.deletion_timestamp.is_some();

        let set = match device
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(v1::MEMBER_OF_LABEL))
        {
            Some(set_name) => render.set(set_name).await?,
            None => None,
        };
        let sections = match &set {
            Some(set) => Sections {
                heartbeat: set.spec.heartbeat.as_ref(),
                storage: set.spec.storage.as_ref(),
                metrics: set.spec.metrics.as_ref(),
                log_collection: set.spec.log_collection.as_ref(),
                os: set.spec.os_information.as_ref(),
                mounts: set.spec.mounts.as_ref(),
            },
            None => Sections {
                heartbeat: device.spec.heartbeat.as_ref(),
                storage: device.spec.storage.as_ref(),
                metrics: device.spec.metrics.as_ref(),
                log_collection: device.spec.log_collection.as_ref(),
                os: device.spec.os_information.as_ref(),
                mounts: device.spec.mounts.as_ref(),
            },
        };
        let heartbeat = heartbeat_section(sections.heartbeat);
        let period = heartbeat
            .period_seconds
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_HEARTBEAT_PERIOD_SECONDS);
        let data_obc = device
            .status
            .as_ref()
            .and_then(|s| s.data_obc.as_deref())
            .filter(|o| !o.is_empty());
        let configuration = DeviceConfiguration {
            ansible_manager: None,
            heartbeat: Some(heartbeat),
            storage: render.storage(sections.storage, data_obc).await?,
            metrics: Some(render.metrics(sections.metrics).await?),
            os: sections.os.map(|os| OsInformation {
                commit_id: os.commit_id.clone(),
                hosted_objects_url: os.hosted_objects_url.clone(),
                automatically_upgrade: os.automatically_upgrade,
            }),
            log_collection: render.log_collection(sections.log_collection).await?,
            mounts: sections
                .mounts
                .into_iter()
                .flatten()
                .map(|m| Mount {
                    device: m.device.clone(),
                    directory: m.directory.clone(),
                    fs_type: m.type_.clone(),
                    options: m.options.clone(),
                })
                .collect(),
        };

        let mut workloads = Vec::new();
        let mut secrets = BTreeMap::new();
        if !deleting {
            let placed = device
                .status
                .as_ref()
                .and_then(|s| s.workloads.as_ref())
                .into_iter()
                .flatten();
            for entry in placed {
                if let Some((workload, workload_secrets)) = render.workload(&entry.name).await? {
                    workloads.push(workload);
                    for secret in workload_secrets {
                        if let Some(name) = secret.name.clone() {
                            secrets.insert(name, secret);
                        }
                    }
                }
            }
        }
        let message = DeviceConfigurationMessage {
            device_id: Some(name.to_string()),
            version,
            configuration: Some(configuration),
            workloads,
            workloads_monitoring_interval: None,
            secrets: secrets.into_values().collect(),
        };
        let rendered = Rendered {
            configuration: RenderedConfiguration::new(message)?,
            problems: render.problems,
            deleting,
            heartbeat_period: Duration::from_secs(period.unsigned_abs()),
            deps: render.deps.into_iter().collect(),
        };
        Ok((rendered, recorded))
    }

    /// Watches the store and the reference source until `shutdown` completes, evicting
    /// cached configurations whose inputs changed and telling the liveness table about
    /// device revisions. Re-watches (with an empty cache) when the store watch ends or
    /// fails; empties the cache when the reference changes lag.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        // Subscribed before caching starts, so no change after that goes unseen.
        let mut references = Some(self.references.changes());
        loop {
            let from = match self.store.current_revision().await {
                Ok(revision) => revision,
                Err(error) => {
                    tracing::warn!(%error, "configuration cache: reading the store revision failed");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let mut events = match self.store.watch(WATCH_PREFIX, from).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, "configuration cache: watching the store failed");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            self.cache().start_watching();
            loop {
                let reference_change = async {
                    match references.as_mut() {
                        Some(changes) => changes.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = &mut shutdown => return,
                    event = events.next() => match event {
                        Some(Ok(event)) => self.apply(&event),
                        Some(Err(error)) => {
                            tracing::warn!(%error, "configuration cache: watch ended; re-watching");
                            break;
                        }
                        None => break,
                    },
                    change = reference_change => match change {
                        Ok(change) => self.cache().changed(&reference_key(
                            change.kind,
                            &change.namespace,
                            &change.name,
                        )),
                        Err(RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "configuration cache: reference changes lagged; emptying the cache");
                            self.cache().clear();
                        }
                        Err(RecvError::Closed) => {
                            // The source announces no more changes; keep what the store
                            // watch tells.
                            tracing::warn!("configuration cache: the reference source closed its changes");
                            references = None;
                        }
                    },
                }
            }
            // Nothing cached can be trusted across the gap.
            self.cache().stop_watching();
        }
    }

    fn apply(&self, event: &Event) {
        let key = &event.kv.key;
        self.cache().changed(key);
        if let Some((namespace, name)) = object_of_key(key, &self.kinds.device.key_prefix()) {
            match event.kind {
                EventKind::Put => self.liveness.observe(
                    namespace,
                    name,
                    event.kv.mod_revision,
                    StoredLiveness::from_stored(&event.kv.value),
                ),
                EventKind::Delete => self.liveness.forget(namespace, name),
            }
        }
    }
}

/// The configuration sections, from the device or its set.
struct Sections<'a> {
    heartbeat: Option<&'a v1::HeartbeatConfiguration>,
    storage: Option<&'a v1::Storage>,
    metrics: Option<&'a v1::MetricsConfiguration>,
    log_collection: Option<&'a BTreeMap<String, v1::LogCollectionConfig>>,
    os: Option<&'a v1::OsInformation>,
    mounts: Option<&'a Vec<v1::Mount>>,
}

fn heartbeat_section(heartbeat: Option<&v1::HeartbeatConfiguration>) -> HeartbeatConfiguration {
    let profile = heartbeat
        .and_then(|h| h.hardware_profile.as_ref())
        .map(|p| HardwareProfileConfiguration {
            include: p.include,
            scope: p.scope.clone(),
        })
        .unwrap_or_default();
    HeartbeatConfiguration {
        period_seconds: Some(
            heartbeat
                .and_then(|h| h.period_seconds)
                .unwrap_or(DEFAULT_HEARTBEAT_PERIOD_SECONDS),
        ),
        hardware_profile: Some(profile),
    }
}

/// The resourceVersion of an object.
pub(crate) fn rv_of(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Sets (or, with `None`, removes) an annotation.
pub(crate) fn set_annotation(object: &mut Value, key: &str, value: Option<&str>) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    match value {
        Some(value) => {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if !annotations.is_object() {
                *annotations = json!({});
            }
            if let Some(a) = annotations.as_object_mut() {
                a.insert(key.to_string(), json!(value));
            }
        }
        None => {
            let now_empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
                Some(a) => {
                    a.remove(key);
                    a.is_empty()
                }
                None => false,
            };
            if now_empty {
                meta.remove("annotations");
            }
        }
    }
}

fn decode_base64(value: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(value).ok()
}

/// A ConfigMap value: from `data`, else from `binaryData` (decoded).
fn config_map_value(config_map: &Value, key: &str) -> Option<String> {
    if let Some(v) = config_map
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
    {
        return Some(v.to_string());
    }
    let bytes = config_map
        .get("binaryData")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .and_then(decode_base64)?;
    String::from_utf8(bytes).ok()
}

fn config_map_has(config_map: &Value, key: &str) -> bool {
    ["data", "binaryData"]
        .iter()
        .any(|field| config_map.get(*field).and_then(|d| d.get(key)).is_some())
}

/// A Secret value as stored: base64.
fn secret_base64(secret: &Value, key: &str) -> Option<String> {
    secret
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A Secret value decoded to text.
fn secret_text(secret: &Value, key: &str) -> Option<String> {
    String::from_utf8(decode_base64(&secret_base64(secret, key)?)?).ok()
}

/// `names` from a `metrics_list.yaml` document.
#[derive(serde::Deserialize, Default)]
struct AllowListDocument {
    #[serde(default)]
    names: Vec<String>,
}

/// One reference from a pod to a ConfigMap or Secret.
struct Reference {
    name: String,
    /// The key, for a key reference.
    keys: Vec<String>,
    optional: bool,
}

/// The ConfigMaps and Secrets a pod references.
fn references(spec: &PodSpec) -> (Vec<Reference>, Vec<Reference>) {
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for container in containers {
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                config_maps.push(Reference {
                    name: r.name.clone(),
                    keys: Vec::new(),
                    optional: r.optional == Some(true),
                });
            }
            if let Some(r) = &from.secret_ref {
                secrets.push(Reference {
                    name: r.name.clone(),
                    keys: Vec::new(),
                    optional: r.optional == Some(true),
                });
            }
        }
        for env in container.env.iter().flatten() {
            let Some(source) = &env.value_from else {
                continue;
            };
            if let Some(r) = &source.config_map_key_ref {
                config_maps.push(Reference {
                    name: r.name.clone(),
                    keys: vec![r.key.clone()],
                    optional: r.optional == Some(true),
                });
            }
            if let Some(r) = &source.secret_key_ref {
                secrets.push(Reference {
                    name: r.name.clone(),
                    keys: vec![r.key.clone()],
                    optional: r.optional == Some(true),
                });
            }
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            config_maps.push(Reference {
                name: cm.name.clone(),
                keys: cm.items.iter().flatten().map(|i| i.key.clone()).collect(),
                optional: cm.optional == Some(true),
            });
        }
    }
    (config_maps, secrets)
}

/// Labels or annotations with the `podman/` prefix, prefix stripped.
fn podman_entries(map: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix(PODMAN_PREFIX)
                .filter(|k| !k.is_empty())
                .map(|k| (k.to_string(), v.clone()))
        })
        .collect()
}

/// One rendering in progress: the objects read so far and the problems found.
struct Render<'a> {
    owner: &'a Configurations,
    namespace: &'a str,
    config_maps: HashMap<String, Option<Value>>,
    secrets: HashMap<String, Option<Value>>,
    deps: BTreeSet<String>,
    problems: Vec<String>,
}

/// A referenced object as JSON (the wire form: `data` of Secrets and `binaryData` of
/// ConfigMaps base64).
fn as_value<T: serde::Serialize>(
    object: &T,
    kind: &str,
    name: &str,
) -> Result<Value, BackendError> {
    serde_json::to_value(object)
        .map_err(|e| BackendError::Internal(format!("encoding {kind} {name}: {e}")))
}

impl Render<'_> {
    async fn read(
        &mut self,
        def: &Arc<ResourceDef>,
        name: &str,
    ) -> Result<Option<Value>, BackendError> {
        self.deps
            .insert(format!("{}{}/{name}", def.key_prefix(), self.namespace));
        let collection = Collection::new(&*self.owner.store, def);
        match collection.get(Some(self.namespace), name).await {
            Ok(object) => Ok(Some(object)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(backend_error(e)),
        }
    }

    async fn config_map(&mut self, name: &str) -> Result<Option<Value>, BackendError> {
        if let Some(cached) = self.config_maps.get(name) {
            return Ok(cached.clone());
        }
        self.deps.insert(reference_key(
            ReferenceKind::ConfigMap,
            self.namespace,
            name,
        ));
        let object = self
            .owner
            .references
            .config_map(self.namespace, name)
            .await
            .map_err(reference_error)?
            .map(|object| as_value(&*object, "ConfigMap", name))
            .transpose()?;
        self.config_maps.insert(name.to_string(), object.clone());
        Ok(object)
    }

    async fn secret(&mut self, name: &str) -> Result<Option<Value>, BackendError> {
        if let Some(cached) = self.secrets.get(name) {
            return Ok(cached.clone());
        }
        self.deps
            .insert(reference_key(ReferenceKind::Secret, self.namespace, name));
        let object = self
            .owner
            .references
            .secret(self.namespace, name)
            .await
            .map_err(reference_error)?
            .map(|object| as_value(&*object, "Secret", name))
            .transpose()?;
        self.secrets.insert(name.to_string(), object.clone());
        Ok(object)
    }

    async fn set(&mut self, name: &str) -> Result<Option<EdgeDeviceSet>, BackendError> {
        let def = Arc::clone(&self.owner.kinds.set);
        let Some(raw) = self.read(&def, name).await? else {
            return Ok(None);
        };
        match serde_json::from_value(raw) {
            Ok(set) => Ok(Some(set)),
            Err(e) => {
                self.problems
                    .push(format!("EdgeDeviceSet {name} is malformed: {e}"));
                Ok(None)
            }
        }
    }

    /// The allow list in ConfigMap `name`, or a problem described as `what`.
    async fn allow_list(
        &mut self,
        name: &str,
        what: &str,
    ) -> Result<Option<AllowList>, BackendError> {
        let Some(cm) = self.config_map(name).await? else {
            self.problems
                .push(format!("{what}: ConfigMap {name} not found"));
            return Ok(None);
        };
        let Some(text) = config_map_value(&cm, ALLOW_LIST_KEY) else {
            self.problems.push(format!(
                "{what}: ConfigMap {name} has no key {ALLOW_LIST_KEY}"
            ));
            return Ok(None);
        };
        match serde_saphyr::from_str::<AllowListDocument>(&text) {
            Ok(doc) => Ok(Some(AllowList { names: doc.names })),
            Err(e) => {
                self.problems.push(format!(
                    "{what}: ConfigMap {name} key {ALLOW_LIST_KEY} is not a list of names: {e}"
                ));
                Ok(None)
            }
        }
    }

    async fn component(
        &mut self,
        component: Option<&v1::ComponentMetricsConfiguration>,
        what: &str,
    ) -> Result<Option<ComponentMetricsConfiguration>, BackendError> {
        let Some(component) = component else {
            return Ok(None);
        };
        let allow_list = match &component.allow_list {
            Some(r) => self.allow_list(&r.name, what).await?,
            None => None,
        };
        Ok(Some(ComponentMetricsConfiguration {
            interval: Some(
                component
                    .interval
                    .unwrap_or(v1::DEFAULT_METRICS_INTERVAL_SECONDS),
            ),
            allow_list,
            disabled: component.disabled,
        }))
    }

    async fn metrics(
        &mut self,
        metrics: Option<&v1::MetricsConfiguration>,
    ) -> Result<MetricsConfiguration, BackendError> {
        let receiver = metrics.and_then(|m| m.receiver_configuration.as_ref());
        let url = receiver.and_then(|r| r.url.clone());
        let mut ca_cert = None;
        if let (Some(url), Some(ca_secret)) = (
            url.as_deref(),
            receiver.and_then(|r| r.ca_secret_name.as_deref()),
        ) && url.starts_with("https")
        {
            match self.secret(ca_secret).await? {
                Some(secret) => match secret_text(&secret, "ca.crt") {
                    Some(pem) => ca_cert = Some(pem),
                    None => self.problems.push(format!(
                        "metrics receiver: Secret {ca_secret} has no key ca.crt"
                    )),
                },
                None => self
                    .problems
                    .push(format!("metrics receiver: Secret {ca_secret} not found")),
            }
        }
        let receiver = MetricsReceiverConfiguration {
            url,
            timeout_seconds: Some(
                receiver
                    .and_then(|r| r.timeout_seconds)
                    .unwrap_or(DEFAULT_RECEIVER_TIMEOUT_SECONDS),
            ),
            request_num_samples: Some(
                receiver
                    .and_then(|r| r.request_num_samples)
                    .unwrap_or(DEFAULT_RECEIVER_SAMPLES),
            ),
            ca_cert,
        };
        Ok(MetricsConfiguration {
            retention: metrics
                .and_then(|m| m.retention.as_ref())
                .map(|r| MetricsRetention {
                    max_mib: r.max_mib,
                    max_hours: r.max_hours,
                }),
            system: self
                .component(
                    metrics.and_then(|m| m.system_metrics.as_ref()),
                    "system metrics",
                )
                .await?,
            data_transfer: self
                .component(
                    metrics.and_then(|m| m.data_transfer_metrics.as_ref()),
                    "data-transfer metrics",
                )
                .await?,
            receiver: Some(receiver),
        })
    }

    async fn log_collection(
        &mut self,
        targets: Option<&BTreeMap<String, v1::LogCollectionConfig>>,
    ) -> Result<BTreeMap<String, LogsCollectionInformation>, BackendError> {
        let mut out = BTreeMap::new();
        for (target, config) in targets.into_iter().flatten() {
            let mut syslog_config = None;
            if let Some(r) = &config.syslog_config {
                let what = format!("log collection {target}");
                let Some(cm) = self.config_map(&r.name).await? else {
                    self.problems
                        .push(format!("{what}: ConfigMap {} not found", r.name));
                    continue;
                };
                let protocol = config_map_value(&cm, "Protocol")
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "tcp".to_string());
                if protocol != "tcp" && protocol != "udp" {
                    self.problems.push(format!(
                        "{what}: ConfigMap {} key Protocol is {protocol:?}, not tcp or udp",
                        r.name
                    ));
                    continue;
                }
                syslog_config = Some(SyslogConfig {
                    address: config_map_value(&cm, "Address"),
                    protocol: Some(protocol),
                });
            }
            out.insert(
                target.clone(),
                LogsCollectionInformation {
                    kind: config.kind.clone(),
                    buffer_size: Some(
                        config
                            .buffer_size
                            .unwrap_or(v1::DEFAULT_LOG_BUFFER_SIZE_KIB),
                    ),
                    syslog_config,
                },
            );
        }
        Ok(out)
    }

    async fn storage(
        &mut self,
        storage: Option<&v1::Storage>,
        data_obc: Option<&str>,
    ) -> Result<Option<StorageConfiguration>, BackendError> {
        if let Some(obc) = data_obc {
            return self.obc_storage(obc).await;
        }
        let Some(s3) = storage.and_then(|s| s.s3.as_ref()) else {
            return Ok(None);
        };
        let (Some(cm_name), Some(secret_name)) = (
            s3.config_map_name.as_deref().filter(|n| !n.is_empty()),
            s3.secret_name.as_deref().filter(|n| !n.is_empty()),
        ) else {
            if s3.config_map_name.is_some() || s3.secret_name.is_some() {
                self.problems.push(
                    "storage: spec.storage.s3 needs both configMapName and secretName".to_string(),
                );
            }
            return Ok(None);
        };
        let Some(cm) = self.config_map(cm_name).await? else {
            self.problems
                .push(format!("storage: ConfigMap {cm_name} not found"));
            return Ok(None);
        };
        let Some(secret) = self.secret(secret_name).await? else {
            self.problems
                .push(format!("storage: Secret {secret_name} not found"));
            return Ok(None);
        };
        let mut missing = Vec::new();
        let mut cm_key = |key: &str| {
            let v = config_map_value(&cm, key);
            if v.is_none() {
                missing.push(format!("ConfigMap {cm_name} key {key}"));
            }
            v
        };
        let bucket_name = cm_key("BUCKET_NAME");
        let bucket_host = cm_key("BUCKET_HOST");
        let bucket_port = cm_key("BUCKET_PORT");
        let bucket_region = cm_key("BUCKET_REGION");
        let mut secret_key = |key: &str| {
            let v = secret_base64(&secret, key);
            if v.is_none() {
                missing.push(format!("Secret {secret_name} key {key}"));
            }
            v
        };
        let access_key = secret_key("AWS_ACCESS_KEY_ID");
        let secret_access_key = secret_key("AWS_SECRET_ACCESS_KEY");
        if !missing.is_empty() {
            self.problems
                .push(format!("storage: missing {}", missing.join(", ")));
            return Ok(None);
        }
        let Some(port) = bucket_port
            .as_deref()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            self.problems.push(format!(
                "storage: ConfigMap {cm_name} key BUCKET_PORT is not a port number"
            ));
            return Ok(None);
        };
        Ok(Some(StorageConfiguration {
            s3: Some(S3StorageConfiguration {
                bucket_host,
                bucket_port: Some(port),
                bucket_name,
                bucket_region,
                aws_access_key_id: access_key,
                aws_secret_access_key: secret_access_key,
                aws_ca_bundle: secret_base64(&secret, "tls.crt"),
            }),
        }))
    }

    async fn obc_storage(
        &mut self,
        obc: &str,
    ) -> Result<Option<StorageConfiguration>, BackendError> {
        let (Some(cm), Some(secret)) = (self.config_map(obc).await?, self.secret(obc).await?)
        else {
            self.problems.push(format!(
                "storage: the ObjectBucketClaim ConfigMap and Secret {obc} are not both present"
            ));
            return Ok(None);
        };
        let (Some(host), Some(name)) = (
            config_map_value(&cm, "BUCKET_HOST"),
            config_map_value(&cm, "BUCKET_NAME"),
        ) else {
            self.problems.push(format!(
                "storage: ConfigMap {obc} needs BUCKET_HOST and BUCKET_NAME"
            ));
            return Ok(None);
        };
        Ok(Some(StorageConfiguration {
            s3: Some(S3StorageConfiguration {
                bucket_host: Some(host),
                bucket_port: Some(OBC_BUCKET_PORT),
                bucket_name: Some(name),
                bucket_region: Some("ignore".to_string()),
                aws_access_key_id: secret_base64(&secret, "AWS_ACCESS_KEY_ID"),
                aws_secret_access_key: secret_base64(&secret, "AWS_SECRET_ACCESS_KEY"),
                aws_ca_bundle: None,
            }),
        }))
    }

    /// One workload and the Secrets it needs, or `None` (with a problem recorded, unless
    /// the workload is simply gone) when it cannot be rendered.
    async fn workload(
        &mut self,
        name: &str,
    ) -> Result<Option<(Workload, Vec<Secret>)>, BackendError> {
        let def = Arc::clone(&self.owner.kinds.workload);
        let Some(raw) = self.read(&def, name).await? else {
            return Ok(None);
        };
        if raw
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            return Ok(None);
        }
        let workload: EdgeWorkload = match serde_json::from_value(raw) {
            Ok(w) => w,
            Err(e) => {
                self.problems
                    .push(format!("workload {name}: stored object is malformed: {e}"));
                return Ok(None);
            }
        };
        let spec = &workload.spec;
        let pod_spec = spec
            .pod
            .as_ref()
            .map(|p| p.spec.clone())
            .unwrap_or_default();
        let problems_before = self.problems.len();
        let what = format!("workload {name}");

        let (config_map_refs, secret_refs) = references(&pod_spec);
        let mut config_maps = Vec::new();
        let mut seen = HashSet::new();
        for r in config_map_refs {
            match self.config_map(&r.name).await? {
                Some(cm) => {
                    for key in &r.keys {
                        if !r.optional && !config_map_has(&cm, key) {
                            self.problems
                                .push(format!("{what}: ConfigMap {} has no key {key}", r.name));
                        }
                    }
                    if seen.insert(r.name.clone()) {
                        config_maps.push(config_map_yaml(&r.name, &cm)?);
                    }
                }
                None if r.optional => {}
                None => self
                    .problems
                    .push(format!("{what}: ConfigMap {} not found", r.name)),
            }
        }
        let mut secrets = Vec::new();
        let mut seen = HashSet::new();
        for r in secret_refs {
            match self.secret(&r.name).await? {
                Some(secret) => {
                    for key in &r.keys {
                        if !r.optional && secret_base64(&secret, key).is_none() {
                            self.problems
                                .push(format!("{what}: Secret {} has no key {key}", r.name));
                        }
                    }
                    if seen.insert(r.name.clone()) {
                        let data = secret.get("data").cloned().unwrap_or_else(|| json!({}));
                        secrets.push(Secret {
                            name: Some(r.name.clone()),
                            data: Some(data.to_string()),
                        });
                    }
                }
                None if r.optional => {}
                None => self
                    .problems
                    .push(format!("{what}: Secret {} not found", r.name)),
            }
        }

        let mut image_registries = None;
        if let Some(secret_ref) = spec
            .image_registries
            .as_ref()
            .and_then(|r| r.auth_file_secret.as_ref())
        {
            match self.secret(&secret_ref.name).await? {
                Some(secret) => match secret_text(&secret, ".dockerconfigjson") {
                    Some(auth_file) => {
                        image_registries = Some(ImageRegistries {
                            auth_file: Some(auth_file),
                        });
                    }
                    None => self.problems.push(format!(
                        "{what}: Secret {} has no key .dockerconfigjson",
                        secret_ref.name
                    )),
                },
                None => self
                    .problems
                    .push(format!("{what}: Secret {} not found", secret_ref.name)),
            }
        }

        let mut metrics = None;
        if let Some(m) = spec
            .metrics
            .as_ref()
            .filter(|m| m.port.is_some_and(|p| p > 0))
        {
            let allow_list = match &m.allow_list {
                Some(r) => self.allow_list(&r.name, &format!("{what} metrics")).await?,
                None => None,
            };
            metrics = Some(WorkloadMetrics {
                path: Some(
                    m.path
                        .clone()
                        .unwrap_or_else(|| v1::DEFAULT_METRICS_PATH.to_string()),
                ),
                port: m.port,
                interval: Some(m.interval.unwrap_or(v1::DEFAULT_METRICS_INTERVAL_SECONDS)),
                allow_list,
                containers: m
                    .containers
                    .iter()
                    .flatten()
                    .map(|(container, c)| {
                        (
                            container.clone(),
                            ContainerMetrics {
                                disabled: c.disabled,
                                path: Some(
                                    c.path
                                        .clone()
                                        .unwrap_or_else(|| v1::DEFAULT_METRICS_PATH.to_string()),
                                ),
                                port: c.port,
                            },
                        )
                    })
                    .collect(),
            });
        }

        if self.problems.len() > problems_before {
            return Ok(None);
        }
        let specification = serde_saphyr::to_string(&pod_spec)
            .map_err(|e| BackendError::Internal(format!("{what}: encoding the pod spec: {e}")))?;
        let data = spec.data.as_ref().map(|d| DataConfiguration {
            ingress: data_paths(d.ingress.as_ref()),
            egress: data_paths(d.egress.as_ref()),
        });
        let workload_message = Workload {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.to_string()),
            labels: podman_entries(workload.metadata.labels.as_ref()),
            annotations: podman_entries(workload.metadata.annotations.as_ref()),
            specification: Some(specification),
            data,
            image_registries,
            metrics,
            configmaps: config_maps,
            log_collection: spec.log_collection.clone(),
        };
        Ok(Some((workload_message, secrets)))
    }
}

fn data_paths(paths: Option<&Vec<v1::DataPath>>) -> Vec<DataPath> {
    paths
        .into_iter()
        .flatten()
        .map(|p| DataPath {
            source: Some(p.source.clone()),
            target: Some(p.target.clone()),
        })
        .collect()
}

/// A ConfigMap as the device wants it: YAML with `apiVersion`, `kind`, only the name in
/// `metadata`, and the data.
fn config_map_yaml(name: &str, config_map: &Value) -> Result<String, BackendError> {
    let mut doc = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
    });
    for field in ["data", "binaryData"] {
        if let Some(v) = config_map.get(field).filter(|v| !v.is_null()) {
            doc[field] = v.clone();
        }
    }
    serde_saphyr::to_string(&doc)
        .map_err(|e| BackendError::Internal(format!("encoding ConfigMap {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_prefix_is_stripped_and_others_dropped() {
        let labels: BTreeMap<String, String> = [
            ("podman/io.containers.autoupdate", "registry"),
            ("app", "x"),
            ("podman/", "empty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let out = podman_entries(Some(&labels));
        assert_eq!(out.len(), 1);
        assert_eq!(out["io.containers.autoupdate"], "registry");
    }

    #[test]
    fn config_map_yaml_keeps_only_name_and_data() {
        let cm =
            json!({"metadata": {"name": "c", "namespace": "ns", "uid": "u"}, "data": {"k": "v"}});
        let yaml = config_map_yaml("c", &cm).expect("yaml");
        let back: Value = serde_saphyr::from_str(&yaml).expect("parse");
        assert_eq!(
            back,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn cache_refuses_renders_that_raced_with_a_change() {
        let mut cache = Cache {
            floor: u64::MAX,
            ..Cache::default()
        };
        let rendered = |deps: &[&str]| {
            Arc::new(Rendered {
                configuration: RenderedConfiguration::new(DeviceConfigurationMessage::default())
                    .expect("render"),
                problems: Vec::new(),
                deleting: false,
                heartbeat_period: Duration::from_secs(60),
                deps: deps.iter().map(|d| d.to_string()).collect(),
            })
        };
        let before_watching = cache.generation;
        assert!(
            !cache.insert("d", rendered(&["d"]), before_watching),
            "not watching"
        );
        cache.start_watching();
        assert!(
            !cache.insert("d", rendered(&["d"]), before_watching),
            "started before the watch"
        );
        let start = cache.generation;
        cache.changed("w");
        assert!(
            !cache.insert("d", rendered(&["d", "w"]), start),
            "w changed after the render started"
        );
        assert!(
            cache.insert("d", rendered(&["d", "x"]), start),
            "an unrelated change does not matter"
        );
        let start = cache.generation;
        assert!(cache.insert("d", rendered(&["d", "w"]), start));
        cache.changed("w");
        assert!(cache.entries.is_empty(), "evicted by its dependency");
        assert!(cache.dependents.is_empty());

        let start = cache.generation;
        assert!(cache.insert("d", rendered(&["d"]), start));
        cache.clear();
        assert!(cache.entries.is_empty(), "cleared");
        assert!(
            !cache.insert("d", rendered(&["d"]), start),
            "a render from before the clear"
        );
        cache.stop_watching();
        let start = cache.generation;
        assert!(!cache.insert("d", rendered(&["d"]), start), "stopped");
    }

    #[test]
    fn reference_keys_are_the_store_keys_of_core_kinds() {
        let registry = crate::resources::standalone();
        for (kind, plural) in [
            (ReferenceKind::ConfigMap, "configmaps"),
            (ReferenceKind::Secret, "secrets"),
        ] {
            let def = registry.find("", "v1", plural).expect("core kind");
            assert_eq!(
                reference_key(kind, "ns", "n"),
                format!("{}ns/n", def.key_prefix())
            );
        }
    }
}
