//! One `flotta-apiserver` process per test, in its own temporary directory.
//!
//! Layout of the temporary directory: `data/` (the server's `--data-dir`), `server.log`
//! (stdout and stderr of every run, appended across restarts) and `kubectl-cache/`. The server
//! is started with `--secure-port 0 --metrics-port auto --device-port 0`; it is ready when `data/ports.json` names
//! its ports, `data/kubeconfig` points at the secure port, and `/readyz` on the metrics port
//! answers 200. The process is SIGKILLed on drop; if the test is panicking, the log tail is
//! printed, and `FLOTTA_E2E_KEEP=1` keeps the directory for inspection.
//! Limits: Unix only; ports are read from the server, never chosen here.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use tempfile::TempDir;

use crate::binary::apiserver_binary;
use crate::deadline::{DEFAULT_TIMEOUT, Probe, wait_for};
use crate::http::{ApiClient, tls_client};
use crate::kubectl::{CmdOutput, Kubectl, LineStream};

/// The ports a running server bound, as written to `ports.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The HTTPS port of the Kubernetes-style API.
    pub secure: u16,
    /// The plain-HTTP port of health and metrics.
    pub metrics: u16,
}

/// A running `flotta-apiserver` owned by one test.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    root: TempDir,
    args: Vec<String>,
    ports: Ports,
    kubectl: Kubectl,
}

impl Server {
    /// Starts a server with the default flags and waits until it is ready.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a server with extra flags (e.g. `["--store-history", "5"]`) and waits until it
    /// is ready.
    pub fn start_with(args: &[&str]) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("flotta-e2e-")
            .tempdir()
            .context("creating the server's temporary directory")?;
        let data_dir = root.path().join("data");
        fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let kubectl = Kubectl::new(
            data_dir.join("kubeconfig"),
            root.path().join("kubectl-cache"),
        );
        let mut server = Self {
            child: None,
            root,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            ports: Ports {
                secure: 0,
                metrics: 0,
            },
            kubectl,
        };
        server.spawn()?;
        Ok(server)
    }

    /// The server's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A scratch directory owned by the test, removed with the server.
    pub fn scratch_dir(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }

    /// The server's PKI directory (`ca.crt`, `admin.crt`, `admin.key`, …).
    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir().join("pki")
    }

    /// The ports of the current run.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// `https://127.0.0.1:<secure port>`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.secure)
    }

    /// `base_url()` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The kubectl bound to this server's kubeconfig.
    pub fn kubectl_client(&self) -> &Kubectl {
        &self.kubectl
    }

    /// Runs `kubectl <args>` against this server.
    pub fn kubectl(&self, args: &[&str]) -> Result<CmdOutput> {
        self.with_log(self.kubectl.run(args))
    }

    /// Runs `kubectl <args>` with `input` on stdin.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<CmdOutput> {
        self.with_log(self.kubectl.run_stdin(args, input))
    }

    /// Runs `kubectl <args>`, expects success, returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> Result<String> {
        self.with_log(self.kubectl.run_ok(args))
    }

    /// Runs `kubectl <args>`, expects failure, returns stderr.
    pub fn run_err(&self, args: &[&str]) -> Result<String> {
        self.with_log(self.kubectl.run_err(args))
    }

    /// Like [`Server::run_ok`] with `input` on stdin.
    pub fn run_ok_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        self.with_log(self.kubectl.run_ok_stdin(args, input))
    }

    /// Like [`Server::run_err`] with `input` on stdin.
    pub fn run_err_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        self.with_log(self.kubectl.run_err_stdin(args, input))
    }

    /// `kubectl <args> -o json` parsed.
    pub fn get_json(&self, args: &[&str]) -> Result<Value> {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        let stdout = self.run_ok(&full)?;
        serde_json::from_str(&stdout)
            .with_context(|| format!("kubectl output is not JSON: {stdout}"))
    }

    /// Starts a long-running kubectl (e.g. `get -w`) and streams its stdout lines.
    pub fn kubectl_lines(&self, args: &[&str]) -> Result<LineStream> {
        self.kubectl.spawn_lines(args)
    }

    /// A reqwest client authenticated with the admin client certificate.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let pki = self.pki_dir();
        tls_client(
            &pki.join("ca.crt"),
            Some((&pki.join("admin.crt"), &pki.join("admin.key"))),
        )
    }

    /// A reqwest client that trusts the server but presents no client certificate.
    pub fn http_client_without_cert(&self) -> Result<reqwest::Client> {
        tls_client(&self.pki_dir().join("ca.crt"), None)
    }

    /// An [`ApiClient`] for this server with the admin client certificate.
    pub fn api(&self) -> Result<ApiClient> {
        Ok(ApiClient::new(self.http_client()?, self.base_url()))
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .context("sending SIGKILL to flotta-apiserver")?;
            child.wait().context("reaping flotta-apiserver")?;
        }
        Ok(())
    }

    /// Stops the server with SIGTERM (graceful shutdown) and waits for it to exit.
    pub fn terminate(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        anyhow::ensure!(status.success(), "kill -TERM failed: {status}");
        let deadline = std::time::Instant::now() + DEFAULT_TIMEOUT;
        while child
            .try_wait()
            .context("waiting for flotta-apiserver")?
            .is_none()
        {
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(
                    "flotta-apiserver did not exit within {DEFAULT_TIMEOUT:?} of SIGTERM"
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the server again on the same data directory with the same flags (SIGKILLing
    /// the current process first if it still runs) and waits until it is ready.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn()
    }

    /// The last `lines` lines of the server's log (all runs).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("server.log")
    }

    fn with_log<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|error| {
            anyhow!(
                "{error:#}\n--- server log (tail) ---\n{}",
                self.log_tail(LOG_TAIL_LINES)
            )
        })
    }

    fn spawn(&mut self) -> Result<()> {
        let binary = apiserver_binary()?;
        let data_dir = self.data_dir();
        let ports_file = data_dir.join("ports.json");
        // A previous run's ports.json would look ready; the new run writes a fresh one.
        match fs::remove_file(&ports_file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("removing {}", ports_file.display()));
            }
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening server.log")?;
        writeln!(log, "=== starting {} {:?}", binary.display(), self.args)
            .context("writing server.log")?;
        let stderr = log.try_clone().context("duplicating server.log")?;
        let child = Command::new(&binary)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--secure-port", "0", "--metrics-port", "auto", "--device-port", "0"])
            .args(&self.args)
            .env("RUST_BACKTRACE", "1")
            // The log goes to a file that people read; colour codes would only clutter it.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        self.child = Some(child);
        let ready = self.wait_ready();
        self.ports = self.with_log(ready)?;
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<Ports> {
        let data_dir = self.data_dir();
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow!("flotta-apiserver is not running"))?;
        wait_for(
            "flotta-apiserver to write ports.json and kubeconfig and answer /readyz",
            DEFAULT_TIMEOUT,
            || {
                match child.try_wait() {
                    Ok(None) => {}
                    Ok(Some(status)) => {
                        return Probe::Failed(anyhow!(
                            "flotta-apiserver exited with {status} before it was ready"
                        ));
                    }
                    Err(error) => return Probe::Failed(error.into()),
                }
                readiness(&data_dir)
            },
        )
    }
}

/// How many log lines error messages carry.
const LOG_TAIL_LINES: usize = 60;

fn readiness(data_dir: &Path) -> Probe<Ports> {
    let text = match fs::read_to_string(data_dir.join("ports.json")) {
        Ok(text) => text,
        Err(error) => return Probe::Pending(format!("no ports.json yet ({error})")),
    };
    let ports = match parse_ports(&text) {
        Ok(ports) => ports,
        // ports.json is written once, atomically, after both listeners are bound, so a
        // complete file without a metrics port will not get one.
        Err(error) if metrics_is_null(&text) => {
            return Probe::Failed(anyhow!(
                "ports.json {text:?} has no metrics port ({error:#}); \
                 `--metrics-port auto` must bind a free port"
            ));
        }
        Err(error) => return Probe::Pending(format!("ports.json {text:?}: {error:#}")),
    };
    match fs::read_to_string(data_dir.join("kubeconfig")) {
        Ok(kubeconfig) if kubeconfig.contains(&format!("127.0.0.1:{}", ports.secure)) => {}
        Ok(_) => {
            return Probe::Pending(format!(
                "kubeconfig does not point at https://127.0.0.1:{} yet",
                ports.secure
            ));
        }
        Err(error) => return Probe::Pending(format!("no kubeconfig yet ({error})")),
    }
    match readyz(ports.metrics) {
        Ok(200) => Probe::Ready(ports),
        Ok(code) => Probe::Pending(format!("/readyz answered {code}")),
        Err(error) => Probe::Pending(format!("/readyz: {error:#}")),
    }
}

fn metrics_is_null(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .is_ok_and(|value| value.get("metrics") == Some(&Value::Null))
}

fn parse_ports(text: &str) -> Result<Ports> {
    let value: Value = serde_json::from_str(text).context("not JSON")?;
    let port = |name: &str| -> Result<u16> {
        let number = value
            .get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("no numeric {name:?}"))?;
        u16::try_from(number)
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| anyhow!("{name:?} = {number} is not a bound port"))
    };
    Ok(Ports {
        secure: port("secure")?,
        metrics: port("metrics")?,
    })
}

/// `GET /readyz` over plain HTTP on the metrics port; returns the status code.
fn readyz(port: u16) -> Result<u16> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .context("reading the /readyz response")?;
    let status_line = response.lines().next().unwrap_or_default();
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("unexpected /readyz response: {status_line:?}"))
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("FLOTTA_E2E_KEEP").is_some() {
            self.root.disable_cleanup(true);
        }
        if thread::panicking() {
            eprintln!(
                "flotta-apiserver in {} (FLOTTA_E2E_KEEP=1 keeps it); log tail:\n{}",
                self.root.path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}
