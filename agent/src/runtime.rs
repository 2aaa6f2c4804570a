//! Workloads on the device: the [`ContainerRuntime`] trait, the one documented set of
//! workload phases the agent reports, and the pod manifest a workload becomes.
//!
//! Phases (the `workload-status` enum of Flotta's swagger): `Deploying` (created, starting,
//! or unknown), `Running`, `Crashed` (exited with a failure, dead, degraded, in error),
//! `Stopped` (exited or stopped). Podman's pod states map onto them in
//! [`WorkloadPhase::from_podman`]. Host integration, when detected ([`host`]): a systemd
//! unit per workload ([`systemd`]) and nftables rules for host ports ([`nftables`]), both
//! used by [`podman::Podman`]. Limits: no other runtime than podman.

pub mod host;
pub mod nftables;
pub mod podman;
pub mod systemd;

use std::future::Future;

use flotta_api::edge::{Secret, Workload};
use serde_json::{Value, json};

/// Label put on every pod the agent creates, valued with the device id, to find them again
/// (and only them: several agents may share a host in tests).
pub const MANAGED_LABEL: &str = "flotta-agent";

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime program could not be run.
    #[error("running {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime program failed.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The workload cannot be turned into a pod.
    #[error("workload {name}: {message}")]
    Invalid {
        /// The workload.
        name: String,
        /// Why.
        message: String,
    },
    /// Files under the data directory could not be written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// A workload's phase as the agent reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadPhase {
    /// Created or starting.
    Deploying,
    /// All containers running.
    Running,
    /// Failed.
    Crashed,
    /// Stopped on purpose or exited.
    Stopped,
}

impl WorkloadPhase {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploying => "Deploying",
            Self::Running => "Running",
            Self::Crashed => "Crashed",
            Self::Stopped => "Stopped",
        }
    }

    /// The phase of a podman pod state (`podman pod ps` `Status`).
    pub fn from_podman(status: &str) -> Self {
        match status.to_ascii_lowercase().as_str() {
            "running" => Self::Running,
            "exited" | "stopped" => Self::Stopped,
            "degraded" | "dead" | "error" => Self::Crashed,
            _ => Self::Deploying,
        }
    }

    /// Whether the workload should be restarted.
    pub fn needs_restart(self) -> bool {
        matches!(self, Self::Crashed | Self::Stopped)
    }
}

/// A workload the runtime knows about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadState {
    /// Workload name.
    pub name: String,
    /// Its phase.
    pub phase: WorkloadPhase,
}

/// Runs workloads. Implementations must be idempotent: `apply` replaces a workload of the
/// same name, `remove` of an absent workload succeeds.
pub trait ContainerRuntime: Send + Sync {
    /// Creates workload `workload` (replacing one of the same name) for device `device_id`.
    fn apply(
        &self,
        workload: &Workload,
        device_id: &str,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Tears workload `name` down.
    fn remove(&self, name: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Restarts workload `name` in place.
    fn restart(&self, name: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// The workloads this agent created that exist now.
    fn list(&self) -> impl Future<Output = Result<Vec<WorkloadState>, RuntimeError>> + Send;
    /// Makes the runtime's secrets those of `secrets` (creates, replaces, deletes).
    fn sync_secrets(
        &self,
        secrets: &[Secret],
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
}

/// The Kubernetes Pod manifest of `workload`: its PodSpec with the `/export` volume at
/// `volume_dir`, `DEVICE_ID` in every container's environment, the workload's labels (plus
/// [`MANAGED_LABEL`]`=<device_id>`) and annotations.
pub fn pod_manifest(
    workload: &Workload,
    device_id: &str,
    volume_dir: &std::path::Path,
) -> Result<Value, RuntimeError> {
    let name = workload.name.clone().unwrap_or_default();
    let invalid = |message: String| RuntimeError::Invalid {
        name: name.clone(),
        message,
    };
    let text = workload
        .specification
        .as_deref()
        .ok_or_else(|| invalid("no specification".into()))?;
    let mut spec: Value =
        serde_saphyr::from_str(text).map_err(|e| invalid(format!("PodSpec YAML: {e}")))?;
    let volume = format!("export-{name}");
    let Some(object) = spec.as_object_mut() else {
        return Err(invalid("the PodSpec is not a mapping".into()));
    };
    let volumes = object.entry("volumes").or_insert_with(|| json!([]));
    if let Some(list) = volumes.as_array_mut() {
        list.push(json!({
            "name": volume,
            "hostPath": {"path": volume_dir.to_string_lossy(), "type": "DirectoryOrCreate"},
        }));
    }
    let containers = object
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| invalid("the PodSpec has no containers".into()))?;
    for container in containers.iter_mut().filter_map(Value::as_object_mut) {
        let env = container.entry("env").or_insert_with(|| json!([]));
        if let Some(env) = env.as_array_mut() {
            env.retain(|var| var["name"] != "DEVICE_ID");
            env.push(json!({"name": "DEVICE_ID", "value": device_id}));
        }
        let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
        if let Some(mounts) = mounts.as_array_mut() {
            mounts.push(json!({"name": volume, "mountPath": "/export"}));
        }
    }
    let mut labels = serde_json::Map::new();
    for (key, value) in &workload.labels {
        labels.insert(key.clone(), json!(value));
    }
    labels.insert(MANAGED_LABEL.into(), json!(device_id));
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": workload.annotations},
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_states_map_to_the_documented_set() {
        assert_eq!(
            WorkloadPhase::from_podman("Running"),
            WorkloadPhase::Running
        );
        assert_eq!(
            WorkloadPhase::from_podman("Created"),
            WorkloadPhase::Deploying
        );
        assert_eq!(WorkloadPhase::from_podman("Exited"), WorkloadPhase::Stopped);
        assert_eq!(
            WorkloadPhase::from_podman("Degraded"),
            WorkloadPhase::Crashed
        );
    }

    #[test]
    fn manifest_adds_export_device_id_and_labels() {
        let workload = Workload {
            name: Some("web".into()),
            specification: Some(
                "containers:\n- name: c\n  image: busybox\n  env:\n  - name: A\n    value: b\n"
                    .into(),
            ),
            labels: [("tier".to_owned(), "front".to_owned())].into(),
            ..Workload::default()
        };
        let pod = pod_manifest(&workload, "dev1", std::path::Path::new("/d/v/web")).unwrap();
        assert_eq!(pod["metadata"]["name"], "web");
        assert_eq!(pod["metadata"]["labels"]["tier"], "front");
        assert_eq!(pod["metadata"]["labels"][MANAGED_LABEL], "dev1");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(
            container["env"][1],
            json!({"name": "DEVICE_ID", "value": "dev1"})
        );
        assert_eq!(container["volumeMounts"][0]["mountPath"], "/export");
        assert_eq!(pod["spec"]["volumes"][0]["hostPath"]["path"], "/d/v/web");
    }
}
