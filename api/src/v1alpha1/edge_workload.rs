//! `EdgeWorkload`: a pod to run on the devices named by `spec.device` or matched by
//! `spec.deviceSelector`, with its data-transfer, registry and metrics settings.
//!
//! `spec.pod.spec` is a full Kubernetes `PodSpec`, but a device runs it with `podman kube play`,
//! so Flotta's webhook rules reject what podman on a device cannot honour: probes, lifecycle
//! hooks, resource requests and limits, volume devices, `fieldRef`/`resourceFieldRef`
//! environment, volumes other than `hostPath`, container names reused across init and regular
//! containers, and host port 9100 (node_exporter). One deliberate difference from Flotta's
//! webhook: `configMap` volumes are accepted, because Flotta's configuration assembler ships the
//! referenced ConfigMaps to the device for exactly that use (its webhook, which was never
//! actually invoked, rejected them).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_path::{FieldPath, check_minimum, check_range, require_non_empty};
use super::name_ref::NameRef;
use crate::validation::FieldError;

/// The only workload type: a pod.
pub const WORKLOAD_TYPE_POD: &str = "pod";
/// The host port node_exporter uses on every device, which workloads may not take.
pub const RESERVED_HOST_PORT: i32 = 9100;
/// The metrics path when `path` is not set.
pub const DEFAULT_METRICS_PATH: &str = "/";
/// Why a container field is rejected.
const UNSUPPORTED: &str = "not supported by Flotta devices";

/// A workload for edge devices.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "management.project-flotta.io",
    version = "v1alpha1",
    kind = "EdgeWorkload",
    plural = "edgeworkloads",
    namespaced,
    status = "EdgeWorkloadStatus",
    category = "flotta",
    derive = "PartialEq",
    derive = "Default",
    doc = "A pod to run on the selected edge devices.",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Device","type":"string","jsonPath":".spec.device"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["type"]))]
pub struct EdgeWorkloadSpec {
    /// Selects EdgeDevices in the workload's namespace by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_selector: Option<LabelSelector>,
    /// An explicit device name; takes precedence over `deviceSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The workload type; only `pod`. Required.
    #[serde(rename = "type", default)]
    #[schemars(extend("enum" = ["pod"]), transform = super::schema::drop_default)]
    pub type_: String,
    /// The pod to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// Directories to synchronise with object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataConfiguration>,
    /// Private image registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registries: Option<ImageRegistriesConfiguration>,
    /// Scraping of the workload's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<ContainerMetricsConfiguration>,
    /// Name of the device `logCollection` target that receives this workload's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_collection: Option<String>,
}

/// Status of an `EdgeWorkload`. Flotta's was empty (per-device state is on the EdgeDevice);
/// the two fields here are additive and written by the placement controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeWorkloadStatus {
    /// The `metadata.generation` the placement controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions; `Ready` is true once the workload is placed on the devices its
    /// `device`/`deviceSelector` names (false with a reason when it cannot be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The pod of a workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["spec"]))]
pub struct Pod {
    /// The pod specification. Required.
    #[serde(default)]
    #[schemars(transform = super::schema::pod_spec)]
    pub spec: PodSpec,
}

/// Data synchronisation between the device and object storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataConfiguration {
    /// Paths to download to the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<DataPath>>,
    /// Paths to upload from the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<DataPath>>,
}

/// One synchronised directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["source", "target"]))]
pub struct DataPath {
    /// Source path. Required.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub source: String,
    /// Target path. Required.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub target: String,
}

/// Image registry settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistriesConfiguration {
    /// Secret with a `.dockerconfigjson` key.
    #[serde(rename = "secretRef", default, skip_serializing_if = "Option::is_none")]
    pub auth_file_secret: Option<NameRef>,
}

/// Scraping of a workload's metrics endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerMetricsConfiguration {
    /// HTTP path of the metrics endpoint; default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "/"))]
    pub path: Option<String>,
    /// Port of the metrics endpoint, 0..65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<i32>,
    /// Scrape interval in seconds; at least 0, default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0), extend("default" = 60))]
    pub interval: Option<i32>,
    /// ConfigMap whose `metrics_list.yaml` lists the metrics to collect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_list: Option<NameRef>,
    /// Per-container overrides, by container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<BTreeMap<String, MetricsConfigEntity>>,
}

/// Metrics endpoint of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsConfigEntity {
    /// HTTP path; default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "/"))]
    pub path: Option<String>,
    /// Port, 0..65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<i32>,
    /// Do not scrape this container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// Every validation error of an `EdgeWorkload`: the CRD constraints and Flotta's webhook rules
/// (see the module documentation), each problem reported on its own path.
pub fn validate_edge_workload(workload: &EdgeWorkload) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = FieldPath::root("spec");
    let workload_spec = &workload.spec;

    let type_path = spec.child("type");
    if workload_spec.type_.is_empty() {
        errors.push(type_path.required());
    } else if workload_spec.type_ != WORKLOAD_TYPE_POD {
        errors.push(type_path.not_supported(&workload_spec.type_, &[WORKLOAD_TYPE_POD]));
    }

    let pod_path = spec.child("pod");
    match &workload_spec.pod {
        Some(pod) => validate_pod_spec(&pod.spec, &pod_path.child("spec"), &mut errors),
        None => errors.push(pod_path.required()),
    }

    if let Some(data) = &workload_spec.data {
        let path = spec.child("data");
        for (name, paths) in [("ingress", &data.ingress), ("egress", &data.egress)] {
            for (i, data_path) in paths.iter().flatten().enumerate() {
                let path = path.child(name).index(i);
                require_non_empty(&data_path.source, &path.child("source"), &mut errors);
                require_non_empty(&data_path.target, &path.child("target"), &mut errors);
            }
        }
    }

    if let Some(secret) = workload_spec
        .image_registries
        .as_ref()
        .and_then(|r| r.auth_file_secret.as_ref())
    {
        secret.validate(
            &spec.child("imageRegistries").child("secretRef"),
            &mut errors,
        );
    }

    if let Some(metrics) = &workload_spec.metrics {
        let path = spec.child("metrics");
        check_range(metrics.port, 0, 65535, &path.child("port"), &mut errors);
        check_minimum(metrics.interval, 0, &path.child("interval"), &mut errors);
        if let Some(allow_list) = &metrics.allow_list {
            allow_list.validate(&path.child("allowList"), &mut errors);
        }
        for (name, entity) in metrics.containers.iter().flatten() {
            let path = path.child("containers").key(name).child("port");
            check_range(entity.port, 0, 65535, &path, &mut errors);
        }
    }
    errors
}

/// The PodSpec rules: containers are required, then every container and volume is checked.
fn validate_pod_spec(pod: &PodSpec, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if pod.containers.is_empty() {
        errors.push(path.child("containers").required());
    }

    // Flotta checks init containers first, so a name reused by a regular container is reported
    // on the regular one.
    let all_containers = pod
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (path.child("initContainers").index(i), c))
        .chain(
            pod.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (path.child("containers").index(i), c)),
        );
    let mut first_use: HashMap<&str, FieldPath> = HashMap::new();
    for (container_path, container) in all_containers {
        validate_container(container, &container_path, errors);
        if container.name.is_empty() {
            continue;
        }
        match first_use.get(container.name.as_str()) {
            Some(first) => errors.push(container_path.child("name").duplicate(
                &container.name,
                &format!("container name already used by {first}"),
            )),
            None => {
                first_use.insert(&container.name, container_path);
            }
        }
    }

    for (i, volume) in pod.volumes.iter().flatten().enumerate() {
        validate_volume(volume, &path.child("volumes").index(i), errors);
    }
}

/// The webhook rules for one init or regular container.
fn validate_container(container: &Container, path: &FieldPath, errors: &mut Vec<FieldError>) {
    require_non_empty(&container.name, &path.child("name"), errors);

    let unsupported = [
        ("lifecycle", container.lifecycle.is_some()),
        ("livenessProbe", container.liveness_probe.is_some()),
        ("readinessProbe", container.readiness_probe.is_some()),
        ("startupProbe", container.startup_probe.is_some()),
        (
            "volumeDevices",
            container
                .volume_devices
                .as_ref()
                .is_some_and(|d| !d.is_empty()),
        ),
    ];
    for (field, present) in unsupported {
        if present {
            errors.push(path.child(field).forbidden(UNSUPPORTED));
        }
    }

    if let Some(resources) = &container.resources {
        let path = path.child("resources");
        let lists = [
            ("limits", &resources.limits),
            ("requests", &resources.requests),
        ];
        for (field, list) in lists {
            if list.as_ref().is_some_and(|l| !l.is_empty()) {
                errors.push(path.child(field).forbidden(UNSUPPORTED));
            }
        }
    }

    for (i, env) in container.env.iter().flatten().enumerate() {
        let Some(source) = &env.value_from else {
            continue;
        };
        let path = path.child("env").index(i).child("valueFrom");
        if source.field_ref.is_some() {
            errors.push(path.child("fieldRef").forbidden(UNSUPPORTED));
        }
        if source.resource_field_ref.is_some() {
            errors.push(path.child("resourceFieldRef").forbidden(UNSUPPORTED));
        }
    }

    for (i, port) in container.ports.iter().flatten().enumerate() {
        if port.host_port == Some(RESERVED_HOST_PORT) {
            errors.push(path.child("ports").index(i).child("hostPort").invalid(
                RESERVED_HOST_PORT,
                "port 9100 is reserved for node_exporter",
            ));
        }
    }
}

/// Devices support `hostPath` volumes, and `configMap` volumes whose ConfigMaps are shipped
/// with the workload.
fn validate_volume(volume: &Volume, path: &FieldPath, errors: &mut Vec<FieldError>) {
    require_non_empty(&volume.name, &path.child("name"), errors);
    if volume.host_path.is_none() && volume.config_map.is_none() {
        errors.push(
            path.forbidden("only hostPath and configMap volumes are supported by Flotta devices"),
        );
    }
}
