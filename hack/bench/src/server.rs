//! The server under test: starts `flotta-apiserver` on a fresh temporary data directory,
//! waits until it is ready, reads its memory figures from `/proc`, and stops it.
//!
//! Start-up: `--data-dir <tmp>/data --secure-port 0 --metrics-port 0 --device-port off
//! --store <kind>` (other flags than the two ports, e.g. `--etcd-servers`:
//! [`Server::start_with_flags`]), its
//! stderr into `<tmp>/server.log`; ready once `<tmp>/data/ports.json` names the secure
//! port and `GET /readyz` on it answers 200. The child is killed (SIGKILL) when stopped or
//! dropped; the data directory is deleted unless kept.
//!
//! The `/proc` readers are also used for etcd ([`process_memory`], [`process_cpu`]).
//!
//! Limits: Linux only (`/proc/<pid>/status`); the server is killed, not shut down
//! gracefully, since nothing it holds outlives the run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::args::StoreChoice;
use crate::client::{Credentials, Protocol};

/// How long the server gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(25);

/// Why the server could not be started, read or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory or log file could not be created.
    #[error("preparing {}: {source}", path.display())]
    Prepare {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The binary could not be started.
    #[error("starting {}: {source}", bin.display())]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server exited or never became ready; the log's tail says why.
    #[error("the server did not become ready: {reason}\n--- server log (tail) ---\n{log}")]
    NotReady {
        /// What was observed.
        reason: String,
        /// The end of the server's stderr.
        log: String,
    },
    /// `/proc/<pid>/status` could not be read.
    #[error("reading /proc/{pid}/status: {source}")]
    Proc {
        /// The server's process id.
        pid: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A client could not be built from the server's PKI.
    #[error(transparent)]
    Client(#[from] crate::client::ApiError),
}

/// The memory figures of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (`VmRSS`), bytes.
    pub rss: u64,
    /// Peak resident set size (`VmHWM`), bytes.
    pub peak: u64,
}

/// Parses `VmRSS` and `VmHWM` (in kB) out of a `/proc/<pid>/status` text.
pub fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kb = rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
            Some(kb * 1024)
        })
    };
    Some(Memory {
        rss: field("VmRSS")?,
        peak: field("VmHWM")?,
    })
}

/// User plus system CPU time (all threads) out of a `/proc/<pid>/stat` text, assuming the
/// Linux `USER_HZ` of 100 ticks per second.
pub fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    // The command name may hold spaces and parentheses; the fields after its last `)`
    // start with the state (field 3), so utime (14) and stime (15) are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The current and peak resident memory of process `pid` (the server, or etcd).
pub fn process_memory(pid: u32) -> Result<Memory, ServerError> {
    let path = format!("/proc/{pid}/status");
    let text =
        std::fs::read_to_string(&path).map_err(|source| ServerError::Proc { pid, source })?;
    parse_status(&text).ok_or_else(|| ServerError::Proc {
        pid,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no VmRSS/VmHWM lines"),
    })
}

/// The CPU time process `pid` has used so far (10 ms resolution); `None` if `/proc` cannot
/// tell.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&text)
}

/// The total size of the files under `dir`, bytes (unreadable entries count 0).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A running `flotta-apiserver`.
pub struct Server {
    child: Child,
    pid: u32,
    port: u16,
    data_dir: PathBuf,
    // Dropped last (field order): the directory outlives the process.
    tmp: Option<TempDir>,
    kept: Option<PathBuf>,
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn secure_port(ports_json: &str) -> Option<u16> {
    let value: serde_json::Value = serde_json::from_str(ports_json).ok()?;
    u16::try_from(value.get("secure")?.as_u64()?).ok()
}

impl Server {
    /// Starts the server on a new data directory under `data_root` and waits until it
    /// is ready.
    pub async fn start(
        bin: &Path,
        data_root: &Path,
        store: StoreChoice,
        keep_data: bool,
    ) -> Result<Server, ServerError> {
        let flags = ["--metrics-port", "0", "--device-port", "off"];
        Self::start_with_flags(bin, data_root, store, keep_data, &flags).await
    }

    /// Like [`Server::start`], with `flags` in place of the default
    /// `--metrics-port 0 --device-port off` (e.g. `--metrics-port auto --device-port 0`;
    /// the ports bound are in `ports.json` of [`Server::data_dir`]).
    pub async fn start_with_flags(
        bin: &Path,
        data_root: &Path,
        store: StoreChoice,
        keep_data: bool,
        flags: &[&str],
    ) -> Result<Server, ServerError> {
        let prepare = |path: &Path| {
            let path = path.to_owned();
            move |source| ServerError::Prepare { path, source }
        };
        std::fs::create_dir_all(data_root).map_err(prepare(data_root))?;
        let tmp = tempfile::Builder::new()
            .prefix("bench-data-")
            .tempdir_in(data_root)
            .map_err(prepare(data_root))?;
        let data_dir = tmp.path().join("data");
        let log_path = tmp.path().join("server.log");
        let log = std::fs::File::create(&log_path).map_err(prepare(&log_path))?;
        let child = Command::new(bin)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--secure-port", "0"])
            .args(flags)
            .args(["--store", store.as_flag()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ServerError::Spawn {
                bin: bin.to_owned(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        let (tmp, kept) = if keep_data {
            (None, Some(tmp.keep()))
        } else {
            (Some(tmp), None)
        };
        let mut server = Server {
            child,
            pid,
            port: 0,
            data_dir,
            tmp,
            kept,
        };
        server.port = server.wait_ready(&log_path).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, log_path: &Path) -> Result<u16, ServerError> {
        let not_ready = |reason: String| ServerError::NotReady {
            reason,
            log: log_tail(log_path),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let ports_path = self.data_dir.join("ports.json");
        let mut client = None;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(not_ready(format!("it exited with {status}")));
            }
            if Instant::now() > deadline {
                return Err(not_ready(format!("not ready after {READY_TIMEOUT:?}")));
            }
            if let Some(port) = std::fs::read_to_string(&ports_path)
                .ok()
                .as_deref()
                .and_then(secure_port)
            {
                if client.is_none() {
                    let creds = Credentials::load(&self.data_dir.join("pki"))?;
                    client = Some(creds.client(Protocol::Http1)?);
                }
                if let Some(client) = &client {
                    let url = format!("https://127.0.0.1:{port}/readyz");
                    if let Ok(resp) = client.get(&url).send().await
                        && resp.status().is_success()
                    {
                        return Ok(port);
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The HTTPS port of the Kubernetes API.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's data directory (PKI in `pki/`, the store file).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the data directory was kept, if `keep_data` was asked for.
    pub fn kept_dir(&self) -> Option<&Path> {
        self.kept.as_deref()
    }

    /// Credentials for clients of this server.
    pub fn credentials(&self) -> Result<Credentials, ServerError> {
        Ok(Credentials::load(&self.data_dir.join("pki"))?)
    }

    /// The server's current and peak resident memory.
    pub fn memory(&self) -> Result<Memory, ServerError> {
        process_memory(self.pid)
    }

    /// The CPU time the server has used so far (10 ms resolution); `None` if `/proc` cannot
    /// tell.
    pub fn cpu_time(&self) -> Option<Duration> {
        process_cpu(self.pid)
    }

    /// The total size of the files in the data directory, bytes (store file, PKI, log).
    pub fn data_size(&self) -> u64 {
        dir_size(&self.data_dir)
    }

    /// Kills the server and waits for it to exit; the data directory is removed when
    /// `self` is dropped (unless kept).
    pub async fn stop(mut self) {
        // Already gone is fine: there is nothing left to stop.
        let _ = self.child.kill().await;
        drop(self.tmp.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_memory_lines() {
        let status = "Name:\tflotta-apiserver\nVmPeak:\t  900000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   61440 kB\nThreads:\t5\n";
        assert_eq!(
            parse_status(status),
            Some(Memory {
                rss: 61_440 * 1024,
                peak: 81_234 * 1024
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn stat_cpu_fields() {
        let stat = "4242 (flotta (api) srv) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 37 0 0 20 0 5 0 100 123456 789 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_millis(2870)));
        assert_eq!(parse_stat_cpu("4242 (x) S 1"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat_cpu(&own).is_some());
    }

    #[test]
    fn own_process_and_directory_are_measured() {
        let own = process_memory(std::process::id()).unwrap();
        assert!(own.rss > 0 && own.peak >= own.rss, "{own:?}");
        assert!(process_cpu(std::process::id()).is_some());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 23]).unwrap();
        assert_eq!(dir_size(dir.path()), 123);
        assert_eq!(dir_size(&dir.path().join("missing")), 0);
    }

    #[test]
    fn ports_file() {
        assert_eq!(
            secure_port(r#"{"secure":43211,"metrics":null}"#),
            Some(43211)
        );
        assert_eq!(secure_port(r#"{"secure":70000}"#), None);
        assert_eq!(secure_port("{"), None);
    }

    #[tokio::test]
    async fn a_server_that_exits_is_reported_with_its_log() {
        let root = tempfile::tempdir().unwrap();
        // `false` ignores its arguments and exits 1 at once.
        let started = Server::start(Path::new("false"), root.path(), StoreChoice::Memory, false);
        let Err(err) = started.await else {
            panic!("`false` cannot become ready");
        };
        assert!(matches!(err, ServerError::NotReady { .. }), "{err}");
        assert!(err.to_string().contains("exited"), "{err}");
    }
}
