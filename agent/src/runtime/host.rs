//! What the host offers beyond podman, and how the agent runs host programs.
//!
//! [`HostFeatures::detect`] looks, once at start, for systemd as PID 1 (the directory
//! `/run/systemd/system` exists, which is how `sd_booted(3)` decides) and for `nft` on
//! `PATH`. [`HostCommand`] is the seam through which [`super::systemd`] and
//! [`super::nftables`] run `systemctl` and `nft`: [`SystemCommand`] runs them for real; the
//! tests use a recording double (`host::double`) because systemd cannot run as PID 1 in the
//! sandbox or in CI. Limits: detection is not repeated while the agent runs.

use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;

use super::RuntimeError;

/// The marker directory systemd creates when it runs as PID 1.
pub const SYSTEMD_MARKER: &str = "/run/systemd/system";

/// The future a [`HostCommand`] returns: the command's standard output.
pub type CommandFuture<'a> =
    Pin<Box<dyn Future<Output = Result<String, RuntimeError>> + Send + 'a>>;

/// Runs a host program. Object-safe so that runtimes can hold `Arc<dyn HostCommand>`.
pub trait HostCommand: Send + Sync + std::fmt::Debug {
    /// Runs `program` with `args`, feeding it `stdin` when given; a non-zero exit is
    /// [`RuntimeError::Failed`].
    fn run<'a>(
        &'a self,
        program: &'a str,
        args: &'a [String],
        stdin: Option<&'a [u8]>,
    ) -> CommandFuture<'a>;
}

/// [`HostCommand`] running real processes (found on `PATH`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemCommand;

impl HostCommand for SystemCommand {
    fn run<'a>(
        &'a self,
        program: &'a str,
        args: &'a [String],
        stdin: Option<&'a [u8]>,
    ) -> CommandFuture<'a> {
        Box::pin(async move {
            let spawn_error = |source| RuntimeError::Spawn {
                program: program.to_owned(),
                source,
            };
            let mut child = tokio::process::Command::new(program)
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
                .map_err(spawn_error)?;
            if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
                pipe.write_all(bytes).await.map_err(spawn_error)?;
            }
            let output = child.wait_with_output().await.map_err(spawn_error)?;
            if !output.status.success() {
                return Err(RuntimeError::Failed {
                    command: format!("{program} {}", args.join(" ")),
                    status: output.status.to_string(),
                    stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                });
            }
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        })
    }
}

/// What the host offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostFeatures {
    /// systemd runs as PID 1.
    pub systemd: bool,
    /// `nft` is on `PATH`.
    pub nftables: bool,
}

impl HostFeatures {
    /// Detects the features of this host.
    pub fn detect() -> Self {
        Self::detect_with(
            Path::new(SYSTEMD_MARKER),
            std::env::var_os("PATH").as_deref(),
        )
    }

    /// Detects with `systemd_marker` standing for [`SYSTEMD_MARKER`] and `path` for `PATH`.
    pub fn detect_with(systemd_marker: &Path, path: Option<&OsStr>) -> Self {
        Self {
            systemd: systemd_marker.is_dir(),
            nftables: find_program("nft", path).is_some(),
        }
    }
}

/// The first executable file `name` in the directories of `path` (a `PATH` value).
pub fn find_program(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// A recording stand-in for `systemctl` and `nft`, following the parts of their documented
/// command-line contracts the agent relies on:
///
/// - `systemctl daemon-reload` loads every `*.service` file of the unit directory;
/// - `systemctl enable UNIT`, `systemctl restart UNIT` fail (exit 1, "Unit file … does not
///   exist" / "Unit … not found") unless `UNIT` was loaded by the last `daemon-reload`;
///   `restart` starts a stopped unit; `disable --now UNIT` fails for a unit whose file does
///   not exist and otherwise stops and disables it;
/// - `nft -f -` reads a script from standard input and fails on an empty one.
///
/// Every call is recorded as `program arg…` (plus the script for `nft`).
#[cfg(test)]
pub(crate) mod double {
    use std::collections::BTreeSet;
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::{CommandFuture, HostCommand, RuntimeError};

    /// The double; `unit_dir` is the directory `systemctl` loads units from.
    #[derive(Debug, Default)]
    pub(crate) struct RecordingHost {
        pub(crate) unit_dir: PathBuf,
        pub(crate) calls: Mutex<Vec<String>>,
        pub(crate) loaded: Mutex<BTreeSet<String>>,
        pub(crate) enabled: Mutex<BTreeSet<String>>,
        pub(crate) active: Mutex<BTreeSet<String>>,
    }

    fn fail(command: String, stderr: &str) -> RuntimeError {
        RuntimeError::Failed {
            command,
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        }
    }

    impl RecordingHost {
        pub(crate) fn new(unit_dir: PathBuf) -> Self {
            Self {
                unit_dir,
                ..Self::default()
            }
        }

        fn systemctl(&self, args: &[String], line: String) -> Result<(), RuntimeError> {
            match args
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["daemon-reload"] => {
                    let mut loaded = self.loaded.lock().unwrap();
                    loaded.clear();
                    for entry in std::fs::read_dir(&self.unit_dir).into_iter().flatten() {
                        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                        if name.ends_with(".service") {
                            loaded.insert(name);
                        }
                    }
                    Ok(())
                }
                ["enable", unit] | ["restart", unit] => {
                    if !self.loaded.lock().unwrap().contains(*unit) {
                        return Err(fail(line, &format!("Unit file {unit} does not exist.")));
                    }
                    let set = if args[0] == "enable" {
                        &self.enabled
                    } else {
                        &self.active
                    };
                    set.lock().unwrap().insert((*unit).to_owned());
                    Ok(())
                }
                ["disable", "--now", unit] => {
                    if !self.unit_dir.join(unit).exists() {
                        return Err(fail(line, &format!("Unit file {unit} does not exist.")));
                    }
                    self.enabled.lock().unwrap().remove(*unit);
                    self.active.lock().unwrap().remove(*unit);
                    Ok(())
                }
                _ => Err(fail(line, "unknown command")),
            }
        }
    }

    impl HostCommand for RecordingHost {
        fn run<'a>(
            &'a self,
            program: &'a str,
            args: &'a [String],
            stdin: Option<&'a [u8]>,
        ) -> CommandFuture<'a> {
            Box::pin(async move {
                let mut line = format!("{program} {}", args.join(" "));
                let result = match program {
                    "systemctl" => self.systemctl(args, line.clone()),
                    "nft" => match (args, stdin) {
                        ([f, dash], Some(script)) if f == "-f" && dash == "-" => {
                            line.push('\n');
                            line.push_str(&String::from_utf8_lossy(script));
                            if script.is_empty() {
                                Err(fail(line.clone(), "empty script"))
                            } else {
                                Ok(())
                            }
                        }
                        _ => Err(fail(line.clone(), "unsupported nft invocation")),
                    },
                    _ => Err(fail(line.clone(), "command not found")),
                };
                self.calls.lock().unwrap().push(line);
                result.map(|()| String::new())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_reads_the_marker_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("systemd");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let path = std::env::join_paths([&bin]).unwrap();
        assert_eq!(
            HostFeatures::detect_with(&marker, Some(&path)),
            HostFeatures::default()
        );
        std::fs::create_dir(&marker).unwrap();
        let nft = bin.join("nft");
        std::fs::write(&nft, "#!/bin/sh\n").unwrap();
        // Not executable yet: not a program.
        assert!(!HostFeatures::detect_with(&marker, Some(&path)).nftables);
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            HostFeatures::detect_with(&marker, Some(&path)),
            HostFeatures {
                systemd: true,
                nftables: true
            }
        );
        assert!(!HostFeatures::detect_with(&marker, None).nftables);
    }
}
