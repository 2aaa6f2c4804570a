//! A throwaway single-member etcd for tests: Debian's `etcd` binary (package `etcd-server`)
//! on 127.0.0.1, on free ports, in its own temporary data directory.
//!
//! [`EtcdServer::start`] serves plain HTTP; [`EtcdServer::start_tls`] serves HTTPS and
//! requires client certificates signed by the given CA. Either way it returns once etcd
//! reports itself healthy (leader elected) on its plain-HTTP metrics port, polled with a
//! deadline. The data directory is on `/dev/shm` when that exists (tmpfs: etcd's fsyncs cost
//! nothing there, which is fine for tests), else in the system temp directory. Raft timers
//! are shortened so that the member elects itself in well under a second. The process is
//! SIGKILLed and reaped on drop; if the test is panicking, the tail of etcd's log is printed.
//!
//! [`EtcdServer::start_in`] is for benchmarks: plain HTTP, the data directory in a directory
//! the caller chooses (a real disk, so etcd's fsyncs cost what they cost), and etcd's own
//! default Raft timers; etcd's durability settings are never changed.
//!
//! Limits: Unix only. Free ports are found by binding port 0 and releasing it, so another
//! process can take one before etcd binds it; start-up then retries with new ports (up to
//! three times). Each member preallocates a 64 MiB write-ahead log in its data directory.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::deadline::{DEFAULT_TIMEOUT, Probe, wait_for};

/// How many times start-up picks new ports after etcd exited early (e.g. a port was taken).
const START_ATTEMPTS: usize = 3;

/// How many log lines error messages carry.
const LOG_TAIL_LINES: usize = 40;

/// TLS material for [`EtcdServer::start_tls`] (PEM files).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// The CA that signs the clients' certificates (and that clients use to verify etcd).
    pub ca_file: PathBuf,
    /// etcd's serving certificate; must be valid for `127.0.0.1`.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
}

/// The member's Raft timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timers {
    /// 10 ms heartbeat, 100 ms election timeout: tests start fast.
    Short,
    /// etcd's defaults (100 ms, 1 s), as in production.
    EtcdDefaults,
}

/// A running etcd owned by one test.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    root: TempDir,
    client_port: u16,
    scheme: &'static str,
}

impl EtcdServer {
    /// Starts etcd serving plain HTTP and waits until it is healthy.
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// Starts etcd serving HTTPS with `tls` (clients must present a certificate signed by
    /// `tls.ca_file`) and waits until it is healthy.
    pub fn start_tls(tls: &EtcdTls) -> Result<Self> {
        Self::start_with(Some(tls))
    }

    /// Starts etcd serving plain HTTP with its data directory and log in a fresh
    /// subdirectory `flotta-etcd-XXXX` of `dir` (removed on drop) instead of on tmpfs, with
    /// etcd's default Raft timers, and waits until it is healthy.
    pub fn start_in(dir: &Path) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("flotta-etcd-")
            .tempdir_in(dir)
            .with_context(|| format!("creating etcd's directory in {}", dir.display()))?;
        Self::start_rooted(None, root, Timers::EtcdDefaults)
    }

    /// etcd's process id (`None` only if it is no longer owned).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding etcd's data directory and its log.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    /// The client URL: `http://127.0.0.1:<port>` (or `https://` with TLS).
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    /// The last `lines` lines of etcd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.root.path().join("etcd.log"), lines)
    }

    fn start_with(tls: Option<&EtcdTls>) -> Result<Self> {
        Self::start_rooted(tls, data_root()?, Timers::Short)
    }

    fn start_rooted(tls: Option<&EtcdTls>, mut root: TempDir, timers: Timers) -> Result<Self> {
        let binary = etcd_binary()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut last_error = None;
        for attempt in 1..=START_ATTEMPTS {
            let [client_port, peer_port, metrics_port] = free_ports()?;
            let mut server = Self {
                child: None,
                root,
                client_port,
                scheme,
            };
            match server.spawn(&binary, attempt, [peer_port, metrics_port], tls, timers) {
                Ok(()) => return Ok(server),
                Err(error) => {
                    last_error = Some(error);
                    // Keep the directory (and its log) for the next attempt.
                    root = take_root(server)?;
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("etcd did not start")))
    }

    fn spawn(
        &mut self,
        binary: &Path,
        attempt: usize,
        [peer_port, metrics_port]: [u16; 2],
        tls: Option<&EtcdTls>,
        timers: Timers,
    ) -> Result<()> {
        let log_path = self.root.path().join("etcd.log");
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .context("opening etcd.log")?;
        writeln!(log, "=== attempt {attempt}").context("writing etcd.log")?;
        let stderr = log.try_clone().context("duplicating etcd.log")?;
        // A fresh data directory per attempt: a half-initialised one would not start.
        let data_dir = self.root.path().join(format!("data-{attempt}"));
        let client_url = self.endpoint();
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new(binary);
        command
            .arg("--name=flotta-test")
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=flotta-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg(format!(
                "--listen-metrics-urls=http://127.0.0.1:{metrics_port}"
            ))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=warn");
        if timers == Timers::Short {
            // A single member elects itself after one election timeout.
            command
                .arg("--heartbeat-interval=10")
                .arg("--election-timeout=100");
        }
        if let Some(tls) = tls {
            command
                .arg(format!("--cert-file={}", tls.cert_file.display()))
                .arg(format!("--key-file={}", tls.key_file.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca_file.display()))
                .arg("--client-cert-auth=true");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let child = self.child.insert(child);
        wait_for(
            &format!("etcd on {client_url} to report itself healthy"),
            DEFAULT_TIMEOUT,
            || {
                match child.try_wait() {
                    Ok(None) => {}
                    Ok(Some(status)) => {
                        return Probe::Failed(anyhow!("etcd exited with {status}"));
                    }
                    Err(error) => return Probe::Failed(error.into()),
                }
                match health(metrics_port) {
                    Ok(body) if body.contains(r#""health":"true""#) => Probe::Ready(()),
                    Ok(body) => Probe::Pending(format!("/health answered {body:?}")),
                    Err(error) => Probe::Pending(format!("/health: {error:#}")),
                }
            },
        )
        .map_err(|error| {
            anyhow!(
                "{error:#}\n--- etcd log (tail) ---\n{}",
                log_tail(&log_path, LOG_TAIL_LINES)
            )
        })
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "etcd {} log tail:\n{}",
                self.endpoint(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}

/// Moves the temporary directory out of a server that failed to start.
fn take_root(mut server: EtcdServer) -> Result<TempDir> {
    server.kill();
    let replacement = tempfile::tempdir().context("creating a placeholder directory")?;
    Ok(std::mem::replace(&mut server.root, replacement))
}

/// The `etcd` binary on PATH.
fn etcd_binary() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            anyhow!("etcd is not on PATH: install etcd-server (apt-get install etcd-server)")
        })
}

/// A fresh temporary directory, on tmpfs when there is one.
fn data_root() -> Result<TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("flotta-etcd-");
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return Ok(dir);
    }
    builder
        .tempdir()
        .context("creating etcd's temporary directory")
}

/// Three distinct free TCP ports on 127.0.0.1 (held together so they differ).
fn free_ports() -> Result<[u16; 3]> {
    let listeners = [
        TcpListener::bind("127.0.0.1:0"),
        TcpListener::bind("127.0.0.1:0"),
        TcpListener::bind("127.0.0.1:0"),
    ];
    let mut ports = [0; 3];
    for (port, listener) in ports.iter_mut().zip(listeners) {
        *port = listener
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
    }
    Ok(ports)
}

/// `GET /health` on the metrics port; returns the body.
fn health(port: u16) -> Result<String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.trim().to_owned()),
        None => bail!("no HTTP response: {response:?}"),
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
