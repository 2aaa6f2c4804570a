//! systemd units for workloads, used when the host runs systemd (see
//! [`super::host::HostFeatures`]): one unit per workload, written by the agent (not
//! `podman generate systemd`), so that the pods come back after a host reboot even before
//! the agent runs.
//!
//! The unit `flotta-workload-<name>.service` in the unit directory (default
//! `/etc/systemd/system`) is a `Type=oneshot`, `RemainAfterExit=yes` service whose
//! `ExecStart` is `podman kube play --replace <manifest>` and `ExecStop` is
//! `podman kube down <manifest>`, wanted by `multi-user.target`. Installing writes it
//! atomically, then `systemctl daemon-reload`, `enable` and `restart` (not `enable --now`,
//! which would leave an already active unit running the old manifest). Removal is
//! `systemctl disable --now`, deleting the file, `daemon-reload`. Limits: system units
//! only (no `--user`); the agent still restarts crashed pods itself (through
//! `systemctl restart`), since a oneshot unit does not watch its pod.

use std::path::PathBuf;
use std::sync::Arc;

use super::RuntimeError;
use super::host::HostCommand;
use crate::state::write_atomic;

/// Default directory for the units.
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";

/// The unit name of workload `workload`.
pub fn unit_name(workload: &str) -> String {
    format!("flotta-workload-{workload}.service")
}

/// One command-line word quoted for a unit file's `Exec*=` line: double quotes when needed,
/// `\` and `"` escaped, `%` and `$` doubled so that systemd expands neither specifiers nor
/// variables.
fn quote(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c));
    if plain {
        escaped
    } else {
        format!("\"{escaped}\"")
    }
}

fn command_line(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// The text of the unit of workload `workload`: `play` is the full `ExecStart` command
/// (podman and its arguments), `down` the `ExecStop` one.
pub fn unit_file(workload: &str, play: &[String], down: &[String]) -> String {
    format!(
        "# Written by flotta-agent for workload {workload}; removed with the workload.\n\
         [Unit]\n\
         Description=Flotta workload {workload}\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         TimeoutStartSec=600\n\
         ExecStart={}\n\
         ExecStop={}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        command_line(play),
        command_line(down),
    )
}

/// Installs and removes workload units through a [`HostCommand`] running `systemctl`.
#[derive(Clone, Debug)]
pub struct SystemdUnits {
    dir: PathBuf,
    command: Arc<dyn HostCommand>,
}

impl SystemdUnits {
    /// Units written to `dir`, `systemctl` run through `command`.
    pub fn new(dir: impl Into<PathBuf>, command: Arc<dyn HostCommand>) -> Self {
        Self {
            dir: dir.into(),
            command,
        }
    }

    /// The unit file of workload `workload`.
    pub fn path(&self, workload: &str) -> PathBuf {
        self.dir.join(unit_name(workload))
    }

    /// Whether workload `workload` has a unit file.
    pub fn installed(&self, workload: &str) -> bool {
        self.path(workload).exists()
    }

    async fn systemctl(&self, args: &[&str]) -> Result<(), RuntimeError> {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        self.command.run("systemctl", &args, None).await.map(|_| ())
    }

    /// Writes (or rewrites) the unit of `workload` and (re)starts it, which plays the pod.
    pub async fn install(
        &self,
        workload: &str,
        play: &[String],
        down: &[String],
    ) -> Result<(), RuntimeError> {
        let text = unit_file(workload, play, down);
        write_atomic(&self.path(workload), text.as_bytes(), 0o644)?;
        let unit = unit_name(workload);
        self.systemctl(&["daemon-reload"]).await?;
        self.systemctl(&["enable", &unit]).await?;
        self.systemctl(&["restart", &unit]).await
    }

    /// Restarts the unit of `workload` (its pod is played again).
    pub async fn restart(&self, workload: &str) -> Result<(), RuntimeError> {
        self.systemctl(&["restart", &unit_name(workload)]).await
    }

    /// Stops, disables and deletes the unit of `workload`; nothing to do when it has none.
    pub async fn uninstall(&self, workload: &str) -> Result<(), RuntimeError> {
        let path = self.path(workload);
        if !path.exists() {
            return Ok(());
        }
        self.systemctl(&["disable", "--now", &unit_name(workload)])
            .await?;
        std::fs::remove_file(&path).map_err(|source| {
            RuntimeError::State(crate::state::StateError::Io {
                what: "removing",
                path: path.clone(),
                source,
            })
        })?;
        self.systemctl(&["daemon-reload"]).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::host::double::RecordingHost;
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn unit_file_runs_kube_play_and_down() {
        let text = unit_file(
            "web",
            &words(
                "/usr/bin/podman kube play --replace /var/lib/flotta/workloads/web/workload.yaml",
            ),
            &words("/usr/bin/podman kube down /var/lib/flotta/workloads/web/workload.yaml"),
        );
        assert_eq!(
            text,
            "# Written by flotta-agent for workload web; removed with the workload.\n\
             [Unit]\n\
             Description=Flotta workload web\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             RemainAfterExit=yes\n\
             TimeoutStartSec=600\n\
             ExecStart=/usr/bin/podman kube play --replace /var/lib/flotta/workloads/web/workload.yaml\n\
             ExecStop=/usr/bin/podman kube down /var/lib/flotta/workloads/web/workload.yaml\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n"
        );
    }

    #[test]
    fn odd_words_are_quoted_and_not_expanded() {
        assert_eq!(
            command_line(&["/data dir/a%b$c\"d".to_owned(), "x".to_owned()]),
            "\"/data dir/a%%b$$c\\\"d\" x"
        );
        assert_eq!(quote(""), "\"\"");
    }

    #[tokio::test]
    async fn install_enables_and_starts_and_uninstall_undoes_it() {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(RecordingHost::new(dir.path().to_owned()));
        let units = SystemdUnits::new(dir.path(), host.clone());
        let unit = unit_name("web");
        units
            .install(
                "web",
                &words("podman kube play --replace m"),
                &words("podman kube down m"),
            )
            .await
            .unwrap();
        assert!(units.installed("web"));
        assert!(host.enabled.lock().unwrap().contains(&unit));
        assert!(host.active.lock().unwrap().contains(&unit));
        // A changed workload: rewritten and restarted, not left running the old manifest.
        units
            .install(
                "web",
                &words("podman kube play --replace m2"),
                &words("podman kube down m2"),
            )
            .await
            .unwrap();
        let text = std::fs::read_to_string(units.path("web")).unwrap();
        assert!(
            text.contains("ExecStart=podman kube play --replace m2\n"),
            "{text}"
        );
        units.uninstall("web").await.unwrap();
        assert!(!units.installed("web"));
        assert!(host.enabled.lock().unwrap().is_empty());
        assert!(host.active.lock().unwrap().is_empty());
        assert!(host.loaded.lock().unwrap().is_empty());
        // Absent: nothing to run (systemctl disable would fail on a missing unit file).
        units.uninstall("web").await.unwrap();
        let calls = host.calls.lock().unwrap().clone();
        let expected = [
            "systemctl daemon-reload",
            "systemctl enable flotta-workload-web.service",
            "systemctl restart flotta-workload-web.service",
            "systemctl daemon-reload",
            "systemctl enable flotta-workload-web.service",
            "systemctl restart flotta-workload-web.service",
            "systemctl disable --now flotta-workload-web.service",
            "systemctl daemon-reload",
        ];
        assert_eq!(calls, expected);
    }

    #[tokio::test]
    async fn restart_of_a_unit_never_installed_fails() {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(RecordingHost::new(dir.path().to_owned()));
        let units = SystemdUnits::new(dir.path(), host);
        assert!(units.restart("ghost").await.is_err());
    }
}
