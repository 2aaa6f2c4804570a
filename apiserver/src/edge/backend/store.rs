//! The store implementation of [`super::DeviceBackend`]: device state over the shared
//! `Store`, written through the REST layer's `Collection` so that uids, generations,
//! resourceVersions, validation and watch events are exactly as for kubectl's writes.
//!
//! - Enrolment creates an `EdgeDeviceSignedRequest` named after the device in `default`
//!   (`flotta-inventory.md` §3.7); registration records the hardware in `status.hardware`,
//!   adds the hardware labels and removes the `edgedeviceSignedRequest` label.
//! - Configuration and registration status come from [`Configurations`] (cached, evicted
//!   by watch events), which reads ConfigMaps and Secrets through a [`ReferenceSource`].
//! - Heartbeats go to the [`Liveness`] table first; the store is read only when the report
//!   differs from the last one reconciled or the device changed since, and written only
//!   when the status, labels or events actually change (see [`heartbeat`] for what a
//!   heartbeat changes). Every write is counted in [`EdgeMetrics::store_writes`].
//!   Device-reported events are also handed to a [`DeviceEventSink`] (Kubernetes Events
//!   in aggregated mode, log lines in standalone mode) in the background, after the
//!   heartbeat was stored, so a slow cluster does not slow heartbeats down.
//! - [`StoreBackend::run`] runs the background parts: the configuration cache watcher and
//!   the liveness sweeper (after seeding the table from the stored devices).
//!
//! Fixed Flotta bugs: a device whose certificate does not match and that already
//! registered gets 403 rather than 500; a partial hardware report no longer replaces the
//! stored inventory; PlaybookExecution conditions advance whether or not the device status
//! also changed, and failures are reported rather than dropped.

pub mod hardware;
pub mod heartbeat;

use std::sync::Arc;

use async_trait::async_trait;
use flotta_api::edge::{
    DEFAULT_NAMESPACE, EnrolmentInfo, Heartbeat, PlaybookExecution, RegistrationInfo,
};
use flotta_api::store::Store;
use flotta_api::v1alpha1::{self as v1, EdgeDeviceStatus};
use futures::FutureExt as _;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use self::hardware::{hardware_labels, map_hardware};
use self::heartbeat::{
    DEVICE_EVENTS_ANNOTATION, FINAL_PLAYBOOK_STATES, advance_conditions, append_events,
    apply_heartbeat, device_events, report_hash,
};
use super::{BackendError, DeviceBackend, RegistrationStatus, RenderedConfiguration};
use crate::cluster::events::{DeviceEventSink, DeviceRef};
use crate::cluster::references::ReferenceSource;
use crate::edge::configuration::{
    Configurations, backend_error, flotta_kind, rv_of, set_annotation,
};
use crate::edge::liveness::{HeartbeatCheck, Liveness, claim_time, format_time};
use crate::edge::metrics::{EdgeMetrics, WriteReason};
use crate::rest::collection::Collection;
use crate::rest::error::ApiError;
use crate::rest::request::QueryOptions;
use crate::rest::resource::{ResourceDef, ResourceRegistry};

/// EdgeDevice label naming the EdgeConfig whose playbooks the device runs.
const CONFIG_LABEL: &str = "config/device-by-config";

/// The store device backend (see the module documentation).
pub struct StoreBackend {
    store: Arc<dyn Store>,
    devices: Arc<ResourceDef>,
    requests: Arc<ResourceDef>,
    executions: Arc<ResourceDef>,
    configurations: Arc<Configurations>,
    events: Arc<dyn DeviceEventSink>,
    liveness: Arc<Liveness>,
    metrics: Arc<EdgeMetrics>,
}

impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBackend").finish_non_exhaustive()
    }
}

fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn label<'v>(object: &'v Value, key: &str) -> Option<&'v str> {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// The labels of `object` as a mutable map (created when absent); `None` only when the
/// object has no `metadata` map.
fn labels_mut(object: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let labels = object
        .get_mut("metadata")?
        .as_object_mut()?
        .entry("labels")
        .or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels.as_object_mut()
}

/// Drops an empty `metadata.labels` so that "no labels" has one form.
fn drop_empty_labels(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("labels")
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty)
    {
        meta.remove("labels");
    }
}

/// The typed status of a device object (empty when absent or malformed).
fn typed_status(object: &Value) -> EdgeDeviceStatus {
    object
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default()
}

/// `object` with `status` replaced by `status`.
fn with_status(object: &Value, status: &EdgeDeviceStatus) -> Result<Value, ApiError> {
    let mut next = object.clone();
    next["status"] = serde_json::to_value(status)
        .map_err(|e| ApiError::Internal(format!("encoding a device status: {e}")))?;
    Ok(next)
}

impl StoreBackend {
    /// A backend over `store` for the Flotta kinds in `registry`, reading the ConfigMaps
    /// and Secrets of configurations from `references`, handing device-reported events to
    /// `events`, recording liveness in `liveness` and counting in `metrics`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: &ResourceRegistry,
        references: Arc<dyn ReferenceSource>,
        events: Arc<dyn DeviceEventSink>,
        liveness: Arc<Liveness>,
        metrics: Arc<EdgeMetrics>,
    ) -> Result<Self, BackendError> {
        let configurations = Arc::new(Configurations::new(
            Arc::clone(&store),
            registry,
            references,
            Arc::clone(&liveness),
            Arc::clone(&metrics),
        )?);
        Ok(StoreBackend {
            devices: flotta_kind(registry, "edgedevices")?,
            requests: flotta_kind(registry, "edgedevicesignedrequests")?,
            executions: flotta_kind(registry, "playbookexecutions")?,
            store,
            configurations,
            events,
            liveness,
            metrics,
        })
    }

    /// The configuration renderer and cache.
    pub fn configurations(&self) -> &Arc<Configurations> {
        &self.configurations
    }

    /// The liveness table.
    pub fn liveness(&self) -> &Arc<Liveness> {
        &self.liveness
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<EdgeMetrics> {
        &self.metrics
    }

    /// Runs the background parts until `shutdown` completes: seeds the liveness table from
    /// the stored devices, then runs the configuration cache watcher and the liveness
    /// sweeper.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let shutdown = shutdown.boxed().shared();
        match self.liveness.load(&*self.store, &self.devices).await {
            Ok(count) => tracing::debug!(devices = count, "liveness table seeded"),
            Err(error) => tracing::warn!(%error, "seeding the liveness table failed"),
        }
        let watcher = Arc::clone(&self.configurations).run(shutdown.clone());
        let sweeper = Arc::clone(&self.liveness).run(
            Arc::clone(&self.store),
            Arc::clone(&self.devices),
            Arc::clone(&self.metrics),
            shutdown,
        );
        tokio::join!(watcher, sweeper);
    }

    fn devices(&self) -> Collection<'_> {
        Collection::new(&*self.store, &self.devices)
    }

    /// Reads a device; `None` when it does not exist.
    async fn device(&self, namespace: &str, name: &str) -> Result<Option<Value>, BackendError> {
        match self.devices().get(Some(namespace), name).await {
            Ok(device) => Ok(Some(device)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(backend_error(e)),
        }
    }

    /// Updates a device through `change` on the main endpoint or `/status`, counting a
    /// write (for `reason`) when something changed; returns the object as stored.
    async fn update_device<F>(
        &self,
        namespace: &str,
        name: &str,
        subresource: Option<&str>,
        reason: WriteReason,
        mut change: F,
    ) -> Result<Value, BackendError>
    where
        F: FnMut(&Value) -> Result<Value, ApiError> + Send,
    {
        let mut before = None;
        let written = self
            .devices()
            .update_with(
                Some(namespace),
                name,
                subresource,
                &QueryOptions::default(),
                |current| {
                    before = rv_of(current);
                    change(current)
                },
            )
            .await
            .map_err(backend_error)?;
        if rv_of(&written.object) != before {
            self.metrics.store_write(reason);
        }
        Ok(written.object)
    }

    /// Moves the PlaybookExecutions the heartbeat reports on; returns the names of those
    /// that reached a final state.
    async fn advance_playbooks(
        &self,
        namespace: &str,
        heartbeat: &Heartbeat,
        now: Timestamp,
    ) -> Vec<String> {
        let collection = Collection::new(&*self.store, &self.executions);
        let mut finished = Vec::new();
        for reported in &heartbeat.playbook_executions {
            let (Some(name), Some(state)) = (&reported.name, &reported.status) else {
                continue;
            };
            let mut before = None;
            let result = collection
                .update_with(
                    Some(namespace),
                    name,
                    Some("status"),
                    &QueryOptions::default(),
                    |current| {
                        before = rv_of(current);
                        let mut next = current.clone();
                        let mut status: v1::PlaybookExecutionStatus = current
                            .get("status")
                            .cloned()
                            .and_then(|s| serde_json::from_value(s).ok())
                            .unwrap_or_default();
                        let conditions = status.conditions.get_or_insert_with(Vec::new);
                        if advance_conditions(conditions, state, now) {
                            next["status"] = serde_json::to_value(&status).map_err(|e| {
                                ApiError::Internal(format!("encoding a playbook status: {e}"))
                            })?;
                        }
                        Ok(next)
                    },
                )
                .await;
            match result {
                Ok(written) => {
                    if rv_of(&written.object) != before {
                        self.metrics.store_write(WriteReason::Playbook);
                    }
                    if FINAL_PLAYBOOK_STATES.contains(&state.as_str()) {
                        finished.push(name.clone());
                    }
                }
                Err(ApiError::NotFound(_)) => {}
                Err(error) => tracing::warn!(
                    namespace,
                    playbook_execution = %name,
                    %error,
                    "recording a playbook execution state failed"
                ),
            }
        }
        finished
    }
}

#[async_trait]
impl DeviceBackend for StoreBackend {
    async fn registration_status(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<RegistrationStatus, BackendError> {
        self.configurations
            .registration_status(namespace, name)
            .await
    }

    async fn configuration(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<RenderedConfiguration, BackendError> {
        Ok(self
            .configurations
            .get(namespace, name)
            .await?
            .configuration
            .clone())
    }

    async fn enrol(
        &self,
        name: &str,
        namespace: &str,
        info: &EnrolmentInfo,
    ) -> Result<bool, BackendError> {
        if self.device(namespace, name).await?.is_some() {
            return Ok(true);
        }
        let requests = Collection::new(&*self.store, &self.requests);
        match requests.get(Some(DEFAULT_NAMESPACE), name).await {
            Ok(request) => {
                let target = request
                    .pointer("/spec/targetNamespace")
                    .and_then(Value::as_str)
                    .unwrap_or(DEFAULT_NAMESPACE);
                if target != namespace && self.device(target, name).await?.is_some() {
                    return Ok(true);
                }
                return Ok(false);
            }
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(backend_error(e)),
        }
        let features = info.features.as_ref();
        let mut spec = json!({
            "targetNamespace": namespace,
            "approved": false,
        });
        let mut features_json = serde_json::Map::new();
        if let Some(model) = features.and_then(|f| f.model_name.as_ref()) {
            features_json.insert("modelName".into(), json!(model));
        }
        if let Some(hw) = features.and_then(|f| f.hardware.as_ref()) {
            let hardware = serde_json::to_value(map_hardware(hw))
                .map_err(|e| BackendError::Internal(format!("encoding hardware: {e}")))?;
            features_json.insert("hardware".into(), hardware);
        }
        if !features_json.is_empty() {
            spec["features"] = Value::Object(features_json);
        }
        let request = json!({
            "apiVersion": v1::API_VERSION,
            "kind": "EdgeDeviceSignedRequest",
            "metadata": {"name": name, "namespace": DEFAULT_NAMESPACE},
            "spec": spec,
        });
        match requests
            .create(Some(DEFAULT_NAMESPACE), request, &QueryOptions::default())
            .await
        {
            Ok(_) => {
                self.metrics.store_write(WriteReason::Enrolment);
                Ok(false)
            }
            // Another enrolment of the same device won the race.
            Err(ApiError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(backend_error(e)),
        }
    }

    async fn target_namespace(
        &self,
        name: &str,
        identity_namespace: &str,
        matches_certificate: bool,
    ) -> Result<String, BackendError> {
        let namespace = if identity_namespace == DEFAULT_NAMESPACE && !matches_certificate {
            let requests = Collection::new(&*self.store, &self.requests);
            let request = requests
                .get(Some(DEFAULT_NAMESPACE), name)
                .await
                .map_err(backend_error)?;
            request
                .pointer("/spec/targetNamespace")
                .and_then(Value::as_str)
                .filter(|ns| !ns.is_empty())
                .unwrap_or(DEFAULT_NAMESPACE)
                .to_string()
        } else {
            identity_namespace.to_string()
        };
        let Some(device) = self.device(&namespace, name).await? else {
            return Err(BackendError::NotApproved);
        };
        if !matches_certificate && label(&device, v1::EDSR_LABEL_NAME) != Some(v1::EDSR_LABEL_VALUE)
        {
            return Err(BackendError::Forbidden(format!(
                "device {name} is already registered; renew its certificate with the device's own certificate"
            )));
        }
        Ok(namespace)
    }

    async fn register(
        &self,
        name: &str,
        namespace: &str,
        info: &RegistrationInfo,
    ) -> Result<(), BackendError> {
        if let Some(reported) = &info.hardware {
            let hardware = map_hardware(reported);
            self.update_device(
                namespace,
                name,
                Some("status"),
                WriteReason::Registration,
                |current| {
                    let mut status = typed_status(current);
                    status.hardware = Some(hardware.clone());
                    with_status(current, &status)
                },
            )
            .await?;
        }
        self.update_device(
            namespace,
            name,
            None,
            WriteReason::Registration,
            |current| {
                let mut next = current.clone();
                let hw_labels = typed_status(current)
                    .hardware
                    .as_ref()
                    .map(hardware_labels)
                    .unwrap_or_default();
                if let Some(labels) = labels_mut(&mut next) {
                    for (key, value) in hw_labels {
                        labels.insert(key.to_string(), json!(value));
                    }
                    labels.remove(v1::EDSR_LABEL_NAME);
                }
                drop_empty_labels(&mut next);
                Ok(next)
            },
        )
        .await?;
        Ok(())
    }

    async fn heartbeat(
        &self,
        name: &str,
        namespace: &str,
        heartbeat: &Heartbeat,
    ) -> Result<(), BackendError> {
        let now = Timestamp::now();
        let report = report_hash(heartbeat);
        let check = self.liveness.heartbeat(namespace, name, now, report);
        if check == HeartbeatCheck::Unchanged && heartbeat.events.is_empty() {
            self.metrics.heartbeats_unchanged.inc();
            return Ok(());
        }
        let stored = match self
            .update_device(
                namespace,
                name,
                Some("status"),
                WriteReason::Heartbeat,
                |current| {
                    let before = typed_status(current);
                    let mut status = before.clone();
                    apply_heartbeat(&mut status, heartbeat, now);
                    // A write that happens anyway carries lastSeen, sparing a checkpoint; a
                    // claim writes it so other replicas let go of the device.
                    if check == HeartbeatCheck::Claim {
                        let previous = before.last_seen.as_ref().map(|t| t.0);
                        status.last_seen = Some(Time(claim_time(now, previous)));
                    } else if status != before {
                        status.last_seen = Some(Time(now));
                    }
                    with_status(current, &status)
                },
            )
            .await
        {
            Ok(stored) => stored,
            Err(BackendError::NotFound) => {
                self.liveness.forget(namespace, name);
                return Err(BackendError::NotFound);
            }
            Err(e) => return Err(e),
        };
        let finished = self.advance_playbooks(namespace, heartbeat, now).await;
        let now_text = format_time(now);
        let needs_main_write = {
            let hw_labels = typed_status(&stored)
                .hardware
                .as_ref()
                .map(hardware_labels)
                .unwrap_or_default();
            let labels_differ = hw_labels
                .iter()
                .any(|(k, v)| label(&stored, k) != Some(v.as_str()));
            let config_done = label(&stored, CONFIG_LABEL)
                .is_some_and(|config| finished.contains(&format!("{name}-{config}")));
            labels_differ || config_done || !heartbeat.events.is_empty()
        };
        let stored = if needs_main_write {
            self.update_device(namespace, name, None, WriteReason::Heartbeat, |current| {
                let mut next = current.clone();
                let hw_labels = typed_status(current)
                    .hardware
                    .as_ref()
                    .map(hardware_labels)
                    .unwrap_or_default();
                let config_done = label(current, CONFIG_LABEL)
                    .is_some_and(|config| finished.contains(&format!("{name}-{config}")));
                if let Some(labels) = labels_mut(&mut next) {
                    for (key, value) in hw_labels {
                        labels.insert(key.to_string(), json!(value));
                    }
                    if config_done {
                        labels.remove(CONFIG_LABEL);
                    }
                }
                drop_empty_labels(&mut next);
                if !heartbeat.events.is_empty() {
                    let current_events = current
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(DEVICE_EVENTS_ANNOTATION))
                        .and_then(Value::as_str);
                    let events = append_events(current_events, &heartbeat.events, &now_text);
                    set_annotation(&mut next, DEVICE_EVENTS_ANNOTATION, Some(&events));
                }
                Ok(next)
            })
            .await?
        } else {
            stored
        };
        if !heartbeat.events.is_empty() {
            let device = DeviceRef {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                uid: stored
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            let events = device_events(&heartbeat.events);
            let sink = Arc::clone(&self.events);
            tokio::spawn(async move {
                for event in &events {
                    sink.record(&device, event).await;
                }
            });
        }
        let revision = rv_of(&stored)
            .and_then(|rv| rv.parse::<u64>().ok())
            .unwrap_or(0);
        let stored_last_seen = typed_status(&stored).last_seen.map(|t| t.0);
        self.liveness
            .reconciled(namespace, name, report, revision, stored_last_seen);
        Ok(())
    }

    async fn playbook_executions(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<PlaybookExecution>, BackendError> {
        let Some(device) = self.device(namespace, name).await? else {
            return Err(BackendError::NotFound);
        };
        let status = typed_status(&device);
        let executions = Collection::new(&*self.store, &self.executions);
        let mut out = Vec::new();
        for exec in status.playbook_executions.iter().flatten() {
            let object = match executions.get(Some(namespace), &exec.name).await {
                Ok(object) => object,
                Err(ApiError::NotFound(_)) => continue,
                Err(e) => return Err(backend_error(e)),
            };
            let execution: v1::PlaybookExecution = match serde_json::from_value(object) {
                Ok(execution) => execution,
                Err(error) => {
                    tracing::warn!(namespace, playbook_execution = %exec.name, %error, "malformed PlaybookExecution");
                    continue;
                }
            };
            let Some(playbook) = execution.spec.playbook else {
                continue;
            };
            out.push(PlaybookExecution {
                last_data_upload: None,
                name: Some(exec.name.clone()),
                ansible_playbook_string: Some(
                    String::from_utf8_lossy(&playbook.content.0).into_owned(),
                ),
            });
        }
        Ok(out)
    }

    async fn is_awaiting_first_registration(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<bool, BackendError> {
        Ok(self.device(namespace, name).await?.is_some_and(|device| {
            !is_deleting(&device)
                && label(&device, v1::EDSR_LABEL_NAME) == Some(v1::EDSR_LABEL_VALUE)
        }))
    }
}
