//! [`ContainerRuntime`] on the `podman` CLI: `podman kube play` of the pod manifest plus
//! the workload's ConfigMaps, `podman pod ps --format json` for states, podman secrets.
//!
//! Files: `<data>/workloads/<name>/workload.yaml` (the manifest played),
//! `<data>/workloads/<name>/auth.json` (registry auth, passed with `--authfile`),
//! `<data>/volumes/<name>/` (`/export`), `<data>/secrets.json` (names of the podman secrets
//! the agent created, so only those are ever deleted). Host ports come from the PodSpec's
//! `hostPort`s, which `kube play` publishes.
//!
//! With [`Podman::with_systemd`] the pod is played by the workload's systemd unit
//! ([`super::systemd`]) instead of directly, and restarted through it; with
//! [`Podman::with_nftables`] the host ports get rules in the `inet flotta` table
//! ([`super::nftables`]; a failure there is logged, not fatal, since the pod runs).
//! Limits: the podman network is podman's default unless [`Podman::network`] is set.

use std::path::PathBuf;
use std::process::Stdio;

use flotta_api::edge::{Secret, Workload};
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use super::nftables::{NftRules, host_ports};
use super::systemd::SystemdUnits;
use super::{
    ContainerRuntime, MANAGED_LABEL, RuntimeError, WorkloadPhase, WorkloadState, pod_manifest,
};
use crate::state::{StateDir, write_atomic};

/// The podman runtime.
#[derive(Clone, Debug)]
pub struct Podman {
    program: PathBuf,
    state: StateDir,
    owner: String,
    /// `--network` for `kube play` (e.g. `none` in a sandbox without networking).
    pub network: Option<String>,
    systemd: Option<SystemdUnits>,
    nftables: Option<NftRules>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
}

impl Podman {
    /// Podman at `program` for device `device_id` (its pods are labelled with it), keeping
    /// its files in `state`.
    pub fn new(program: impl Into<PathBuf>, state: StateDir, device_id: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            state,
            owner: device_id.into(),
            network: None,
            systemd: None,
            nftables: None,
        }
    }

    /// This runtime playing pods through systemd units managed by `units`.
    pub fn with_systemd(mut self, units: SystemdUnits) -> Self {
        self.systemd = Some(units);
        self
    }

    /// This runtime keeping nftables rules for host ports with `rules`.
    pub fn with_nftables(mut self, rules: NftRules) -> Self {
        self.nftables = Some(rules);
        self
    }

    async fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, RuntimeError> {
        let program = self.program.display().to_string();
        let mut child = tokio::process::Command::new(&self.program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                program: program.clone(),
                source,
            })?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(bytes)
                .await
                .map_err(|source| RuntimeError::Spawn {
                    program: program.clone(),
                    source,
                })?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| RuntimeError::Spawn { program, source })?;
        if !output.status.success() {
            return Err(RuntimeError::Failed {
                command: format!("podman {}", args.join(" ")),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Removes pod `name` (absent is fine), giving its containers 2 s to stop.
    async fn remove_pod(&self, name: &str) -> Result<(), RuntimeError> {
        self.run(
            &["pod", "rm", "--force", "--ignore", "--time", "2", name],
            None,
        )
        .await
        .map(|_| ())
    }

    fn secrets_path(&self) -> PathBuf {
        self.state.root().join("secrets.json")
    }
}

impl ContainerRuntime for Podman {
    async fn apply(&self, workload: &Workload, device_id: &str) -> Result<(), RuntimeError> {
        let name = workload.name.clone().unwrap_or_default();
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(RuntimeError::Invalid {
                name,
                message: "not a usable workload name".into(),
            });
        }
        let volume = self.state.volume_dir(&name);
        std::fs::create_dir_all(&volume).map_err(|source| {
            RuntimeError::State(crate::state::StateError::Io {
                what: "creating",
                path: volume.clone(),
                source,
            })
        })?;
        if device_id != self.owner {
            return Err(RuntimeError::Invalid {
                name,
                message: format!("this runtime runs workloads of device {}", self.owner),
            });
        }
        let pod = pod_manifest(workload, device_id, &volume)?;
        let mut manifest =
            serde_json::to_string_pretty(&pod).map_err(|e| RuntimeError::Invalid {
                name: name.clone(),
                message: e.to_string(),
            })?;
        for configmap in &workload.configmaps {
            manifest.push_str("\n---\n");
            manifest.push_str(configmap);
        }
        let dir = self.state.workload_dir(&name);
        let manifest_path = dir.join("workload.yaml");
        write_atomic(&manifest_path, manifest.as_bytes(), 0o600)?;
        let auth_path = dir.join("auth.json");
        let auth = workload
            .image_registries
            .as_ref()
            .and_then(|registries| registries.auth_file.as_deref());
        if let Some(auth) = auth {
            write_atomic(&auth_path, auth.as_bytes(), 0o600)?;
        }
        let manifest_arg = manifest_path.to_string_lossy().into_owned();
        let auth_arg = auth_path.to_string_lossy().into_owned();
        let mut args = vec!["kube", "play"];
        if self.systemd.is_some() {
            args.push("--replace");
        }
        if let Some(network) = &self.network {
            args.extend(["--network", network]);
        }
        if auth.is_some() {
            args.extend(["--authfile", &auth_arg]);
        }
        args.push(&manifest_arg);
        match &self.systemd {
            Some(units) => {
                let program = self.program.to_string_lossy().into_owned();
                let words = |args: &[&str]| {
                    std::iter::once(program.clone())
                        .chain(args.iter().map(|&a| a.to_owned()))
                        .collect::<Vec<_>>()
                };
                let down = words(&["kube", "down", &manifest_arg]);
                units.install(&name, &words(&args), &down).await?;
            }
            None => {
                self.remove_pod(&name).await?;
                self.run(&args, None).await?;
            }
        }
        if let Some(rules) = &self.nftables
            && let Err(error) = rules.apply(&name, &host_ports(&pod)).await
        {
            tracing::warn!(workload = %name, %error, "cannot apply nftables rules");
        }
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        if let Some(units) = &self.systemd {
            units.uninstall(name).await?;
        }
        // Also without systemd, and after it: a pod the unit did not create must go too.
        self.remove_pod(name).await?;
        if let Some(rules) = &self.nftables
            && let Err(error) = rules.remove(name).await
        {
            tracing::warn!(workload = %name, %error, "cannot remove nftables rules");
        }
        self.state.remove(&self.state.workload_dir(name))?;
        Ok(())
    }

    async fn restart(&self, name: &str) -> Result<(), RuntimeError> {
        match &self.systemd {
            Some(units) if units.installed(name) => units.restart(name).await,
            _ => self.run(&["pod", "restart", name], None).await.map(|_| ()),
        }
    }

    async fn list(&self) -> Result<Vec<WorkloadState>, RuntimeError> {
        let filter = format!("label={MANAGED_LABEL}={}", self.owner);
        let out = self
            .run(
                &["pod", "ps", "--filter", &filter, "--format", "json"],
                None,
            )
            .await?;
        let pods: Vec<PodEntry> = if out.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&out).map_err(|e| RuntimeError::Invalid {
                name: "podman pod ps".into(),
                message: e.to_string(),
            })?
        };
        Ok(pods
            .into_iter()
            .map(|pod| WorkloadState {
                phase: WorkloadPhase::from_podman(&pod.status),
                name: pod.name,
            })
            .collect())
    }

    async fn sync_secrets(&self, secrets: &[Secret]) -> Result<(), RuntimeError> {
        let previous: Vec<String> = self
            .state
            .read_json(&self.secrets_path())?
            .unwrap_or_default();
        let wanted: Vec<String> = secrets.iter().filter_map(|s| s.name.clone()).collect();
        for name in previous.iter().filter(|name| !wanted.contains(name)) {
            self.run(&["secret", "rm", name], None).await.ok();
        }
        for secret in secrets {
            let Some(name) = secret.name.as_deref() else {
                continue;
            };
            // Replace: podman 4 has no `secret create --replace`.
            self.run(&["secret", "rm", name], None).await.ok();
            let data = secret.data.as_deref().unwrap_or("{}");
            self.run(&["secret", "create", name, "-"], Some(data.as_bytes()))
                .await?;
        }
        self.state.write_json(&self.secrets_path(), &wanted)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::host::double::RecordingHost;
    use super::super::nftables::{HostPort, apply_script, remove_script};
    use super::*;

    #[tokio::test]
    async fn with_systemd_and_nftables_the_unit_plays_the_pod_and_rules_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let unit_dir = dir.path().join("units");
        std::fs::create_dir(&unit_dir).unwrap();
        let host = Arc::new(RecordingHost::new(unit_dir.clone()));
        // `true` stands in for podman: only `pod rm` reaches it on this path.
        let podman = Podman::new("true", StateDir::new(dir.path().join("data")), "dev1")
            .with_systemd(SystemdUnits::new(&unit_dir, host.clone()))
            .with_nftables(NftRules::new(host.clone()));
        let workload = Workload {
            name: Some("web".into()),
            specification: Some(
                "containers:\n- name: c\n  image: busybox\n  ports:\n  - containerPort: 80\n    hostPort: 8080\n"
                    .into(),
            ),
            ..Workload::default()
        };
        podman.apply(&workload, "dev1").await.unwrap();
        let manifest = dir.path().join("data/workloads/web/workload.yaml");
        let unit = std::fs::read_to_string(unit_dir.join("flotta-workload-web.service")).unwrap();
        assert!(
            unit.contains(&format!(
                "ExecStart=true kube play --replace {}\n",
                manifest.display()
            )),
            "{unit}"
        );
        assert!(
            unit.contains(&format!("ExecStop=true kube down {}\n", manifest.display())),
            "{unit}"
        );
        podman.restart("web").await.unwrap();
        podman.remove("web").await.unwrap();
        assert!(!unit_dir.join("flotta-workload-web.service").exists());
        assert!(!manifest.exists());
        let port = HostPort {
            protocol: "tcp",
            port: 8080,
        };
        assert_eq!(
            *host.calls.lock().unwrap(),
            [
                "systemctl daemon-reload".to_owned(),
                "systemctl enable flotta-workload-web.service".to_owned(),
                "systemctl restart flotta-workload-web.service".to_owned(),
                format!("nft -f -\n{}", apply_script("web", &[port])),
                "systemctl restart flotta-workload-web.service".to_owned(),
                "systemctl disable --now flotta-workload-web.service".to_owned(),
                "systemctl daemon-reload".to_owned(),
                format!("nft -f -\n{}", remove_script("web")),
            ]
        );
    }
}
