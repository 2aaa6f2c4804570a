//! The agent's state directory and its crash-safe file writes.
//!
//! Layout under the data directory:
//! - `identity/cert.pem`, `identity/key.pem`: the device certificate and key (kept on
//!   disconnect);
//! - `device-config.json`: the last applied `DeviceConfigurationMessage`;
//! - `events.json`: events not yet delivered in a heartbeat;
//! - `workloads/<name>/`: the manifests and auth files given to the runtime;
//! - `volumes/<name>/`: the host side of each workload's `/export`.
//!
//! Every write goes to a temporary file in the same directory, is fsynced, renamed over
//! the target, and the directory is fsynced: a crash leaves the old or the new content,
//! never a torn file. Limits: Unix only (file modes).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Filesystem failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file holds something else than expected.
    #[error("parsing {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the directory)
/// with file mode `mode`; creates the parent directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)
            .map_err(io("creating", &temp))?;
        file.write_all(bytes).map_err(io("writing", &temp))?;
        file.sync_all().map_err(io("syncing", &temp))?;
        std::fs::rename(&temp, path).map_err(io("renaming into", path))?;
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io("syncing", dir))
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is harmless but untidy.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The state directory of one agent.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The device certificate.
    pub fn cert_path(&self) -> PathBuf {
        self.root.join("identity").join("cert.pem")
    }

    /// The device private key.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("identity").join("key.pem")
    }

    /// The last applied configuration.
    pub fn configuration_path(&self) -> PathBuf {
        self.root.join("device-config.json")
    }

    /// The undelivered events.
    pub fn events_path(&self) -> PathBuf {
        self.root.join("events.json")
    }

    /// Where the runtime keeps workload `name`'s files.
    pub fn workload_dir(&self, name: &str) -> PathBuf {
        self.root.join("workloads").join(name)
    }

    /// The host side of workload `name`'s `/export`.
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    /// Reads a JSON state file; `None` if it does not exist.
    pub fn read_json<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>, StateError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StateError::Json {
                        path: path.to_owned(),
                        source,
                    })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                what: "reading",
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes a JSON state file atomically, mode 0600.
    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Json {
            path: path.to_owned(),
            source,
        })?;
        write_atomic(path, &bytes, 0o600)
    }

    /// Removes a file or directory tree if it exists.
    pub fn remove(&self, path: &Path) -> Result<(), StateError> {
        let result = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match result {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(StateError::Io {
                what: "removing",
                path: path.to_owned(),
                source: error,
            }),
            _ => Ok(()),
        }
    }

    /// Removes everything but the identity: workloads, volumes, configuration and events.
    pub fn wipe_keeping_identity(&self) -> Result<(), StateError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io("listing", &self.root)(source)),
        };
        for entry in entries {
            let entry = entry.map_err(io("listing", &self.root))?;
            if entry.file_name() != "identity" {
                self.remove(&entry.path())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("file");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file"]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn wipe_keeps_the_identity_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        write_atomic(&state.cert_path(), b"c", 0o600).unwrap();
        state.write_json(&state.configuration_path(), &1).unwrap();
        std::fs::create_dir_all(state.volume_dir("w").join("x")).unwrap();
        state.wipe_keeping_identity().unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["identity"]);
        assert!(state.cert_path().exists());
    }
}
