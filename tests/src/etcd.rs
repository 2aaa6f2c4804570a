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
//! [`EtcdCluster::start`] runs several members (plain HTTP, one process each, on loopback
//! with distinct ports, tmpfs like [`EtcdServer::start`]) and returns once every member
//! reports itself healthy. Its Raft timers (50 ms heartbeat, 500 ms election timeout) leave
//! room for a loaded machine. [`EtcdCluster::pause`] freezes a member with SIGSTOP until the
//! returned guard is dropped (SIGCONT): its connections stay open but nothing answers, as in
//! a network partition, so the other members can be cut off from quorum without iptables.
//!
//! Limits: Unix only (`kill` sends the signals). Free ports are found by binding port 0 and
//! releasing it, so another process can take one before etcd binds it; start-up then retries
//! with new ports (up to three times). Each member preallocates a 64 MiB write-ahead log in
//! its data directory.

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

/// Heartbeat interval and election timeout (ms) of [`EtcdCluster`] members.
const CLUSTER_TIMERS: (u32, u32) = (50, 500);

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
            let [client_port, peer_port, metrics_port] = free_ports(3)?[..] else {
                bail!("expected three free ports");
            };
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
        let mut command = member_command(
            binary,
            &MemberUrls {
                name: "flotta-test",
                client: &client_url,
                peer: &peer_url,
                initial_cluster: &format!("flotta-test={peer_url}"),
                metrics_port,
            },
            &data_dir,
        );
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

/// One member's name and addresses.
struct MemberUrls<'a> {
    name: &'a str,
    client: &'a str,
    peer: &'a str,
    /// `name=peer-url,...` of every member.
    initial_cluster: &'a str,
    metrics_port: u16,
}

/// The etcd command line of one member of a new cluster (timers and TLS left to the caller).
fn member_command(binary: &Path, urls: &MemberUrls<'_>, data_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg(format!("--name={}", urls.name))
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--listen-client-urls={}", urls.client))
        .arg(format!("--advertise-client-urls={}", urls.client))
        .arg(format!("--listen-peer-urls={}", urls.peer))
        .arg(format!("--initial-advertise-peer-urls={}", urls.peer))
        .arg(format!("--initial-cluster={}", urls.initial_cluster))
        .arg("--initial-cluster-state=new")
        .arg(format!(
            "--listen-metrics-urls=http://127.0.0.1:{}",
            urls.metrics_port
        ))
        .arg("--logger=zap")
        .arg("--log-outputs=stderr")
        .arg("--log-level=warn");
    command
}

/// One member of an [`EtcdCluster`].
#[derive(Debug)]
struct Member {
    name: String,
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    metrics_port: u16,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running multi-member etcd cluster owned by one test (see the module documentation).
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    root: TempDir,
}

impl EtcdCluster {
    /// Starts `size` members (at least 1) serving plain HTTP and waits until every one of
    /// them is healthy (a leader is elected and known to all).
    pub fn start(size: usize) -> Result<Self> {
        anyhow::ensure!(size >= 1, "a cluster needs at least one member");
        let binary = etcd_binary()?;
        let mut root = data_root()?;
        let mut last_error = None;
        for attempt in 1..=START_ATTEMPTS {
            let ports = free_ports(3 * size)?;
            let members = ports
                .chunks_exact(3)
                .enumerate()
                .map(|(i, ports)| Member {
                    name: format!("member-{i}"),
                    child: None,
                    client_port: ports[0],
                    peer_port: ports[1],
                    metrics_port: ports[2],
                })
                .collect();
            let mut cluster = Self { members, root };
            match cluster.spawn(&binary, attempt) {
                Ok(()) => return Ok(cluster),
                Err(error) => {
                    last_error = Some(error);
                    for member in &mut cluster.members {
                        member.kill();
                    }
                    // Keep the directory (and the logs) for the next attempt.
                    let placeholder =
                        tempfile::tempdir().context("creating a placeholder directory")?;
                    root = std::mem::replace(&mut cluster.root, placeholder);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("the etcd cluster did not start")))
    }

    /// The client URLs of all members, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// The client URL of member `index`.
    pub fn endpoint(&self, index: usize) -> String {
        self.members[index].endpoint()
    }

    /// The last `lines` lines of member `index`'s log.
    pub fn log_tail(&self, index: usize, lines: usize) -> String {
        log_tail(&self.log_path(&self.members[index].name), lines)
    }

    /// Freezes member `index` with SIGSTOP until the returned guard is dropped (or
    /// [`Paused::resume`]d): its sockets stay open but it answers nothing.
    pub fn pause(&self, index: usize) -> Result<Paused<'_>> {
        let member = &self.members[index];
        let pid = member
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow!("etcd {} is not running", member.name))?;
        signal("STOP", pid)?;
        Ok(Paused {
            pid: Some(pid),
            _cluster: self,
        })
    }

    /// Waits (blocking, up to [`DEFAULT_TIMEOUT`]) until member `index` reports itself
    /// healthy: it knows a leader and serves linearizable reads.
    pub fn wait_healthy(&self, index: usize) -> Result<()> {
        let member = &self.members[index];
        wait_for(
            &format!("etcd {} to report itself healthy", member.name),
            DEFAULT_TIMEOUT,
            || match health(member.metrics_port) {
                Ok(body) if body.contains(r#""health":"true""#) => Probe::Ready(()),
                Ok(body) => Probe::Pending(format!("/health answered {body:?}")),
                Err(error) => Probe::Pending(format!("/health: {error:#}")),
            },
        )
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.log"))
    }

    fn spawn(&mut self, binary: &Path, attempt: usize) -> Result<()> {
        let initial_cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        let initial_cluster = initial_cluster.join(",");
        let (heartbeat, election) = CLUSTER_TIMERS;
        for index in 0..self.members.len() {
            let member = &self.members[index];
            let log_path = self.log_path(&member.name);
            let mut log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            writeln!(log, "=== attempt {attempt}").context("writing an etcd log")?;
            let stderr = log.try_clone().context("duplicating an etcd log")?;
            let data_dir = self
                .root
                .path()
                .join(format!("{}-data-{attempt}", member.name));
            let mut command = member_command(
                binary,
                &MemberUrls {
                    name: &member.name,
                    client: &member.endpoint(),
                    peer: &member.peer_url(),
                    initial_cluster: &initial_cluster,
                    metrics_port: member.metrics_port,
                },
                &data_dir,
            );
            command
                .arg(format!("--heartbeat-interval={heartbeat}"))
                .arg(format!("--election-timeout={election}"));
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(stderr))
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            self.members[index].child = Some(child);
        }
        let members = &mut self.members;
        wait_for(
            "every etcd cluster member to report itself healthy",
            DEFAULT_TIMEOUT,
            || {
                for member in members.iter_mut() {
                    let Some(child) = member.child.as_mut() else {
                        return Probe::Failed(anyhow!("etcd {} is not running", member.name));
                    };
                    match child.try_wait() {
                        Ok(None) => {}
                        Ok(Some(status)) => {
                            return Probe::Failed(anyhow!(
                                "etcd {} exited with {status}",
                                member.name
                            ));
                        }
                        Err(error) => return Probe::Failed(error.into()),
                    }
                    match health(member.metrics_port) {
                        Ok(body) if body.contains(r#""health":"true""#) => {}
                        Ok(body) => {
                            return Probe::Pending(format!(
                                "{}: /health answered {body:?}",
                                member.name
                            ));
                        }
                        Err(error) => {
                            return Probe::Pending(format!("{}: /health: {error:#}", member.name));
                        }
                    }
                }
                Probe::Ready(())
            },
        )
        .map_err(|error| anyhow!("{error:#}\n{}", self.log_tails()))
    }

    fn log_tails(&self) -> String {
        let tails: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                format!(
                    "--- etcd {} ({}) log (tail) ---\n{}",
                    m.name,
                    m.endpoint(),
                    self.log_tail(i, LOG_TAIL_LINES)
                )
            })
            .collect();
        tails.join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
        if thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
    }
}

/// A member frozen by [`EtcdCluster::pause`]; dropping it resumes the member.
#[derive(Debug)]
pub struct Paused<'a> {
    pid: Option<u32>,
    _cluster: &'a EtcdCluster,
}

impl Paused<'_> {
    /// Resumes the member (SIGCONT).
    pub fn resume(mut self) -> Result<()> {
        match self.pid.take() {
            Some(pid) => signal("CONT", pid),
            None => Ok(()),
        }
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = signal("CONT", pid);
        }
    }
}

/// Sends signal `name` (e.g. `STOP`) to `pid` with `kill`.
fn signal(name: &str, pid: u32) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .with_context(|| format!("running kill -{name} {pid}"))?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed: {status}");
    Ok(())
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

/// `count` distinct free TCP ports on 127.0.0.1 (held together so they differ).
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("finding a free port"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("finding a free port")?.port()))
        .collect()
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
