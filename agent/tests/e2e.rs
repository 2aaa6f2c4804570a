//! End to end: the real `flotta-apiserver` binary, the real `flotta-agent` binary and the
//! real kubectl. The agent enrols with the server's bootstrap files (auto-approved),
//! registers, shows online in `kubectl get edgedevice`, and wipes its state and exits when
//! the EdgeDevice is deleted.
//!
//! The server binary is `FLOTTA_APISERVER_BIN`, or built once with
//! `cargo build -p flotta-apiserver --bin flotta-apiserver`. kubectl is `KUBECTL` or
//! `kubectl` on PATH. The workload test runs a pod on the real podman (skipped only when
//! `podman` is not on PATH; see `tests/support`). Limits: Unix only; each test has its own
//! server and directories.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step fails the test

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(90);

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn apiserver_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("FLOTTA_APISERVER_BIN") {
                return PathBuf::from(path);
            }
            let root = workspace_root();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "-p",
                    "flotta-apiserver",
                    "--bin",
                    "flotta-apiserver",
                ])
                .current_dir(&root)
                .status()
                .unwrap();
            assert!(status.success(), "building flotta-apiserver failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), |dir| root.join(dir));
            target.join("debug").join("flotta-apiserver")
        })
        .clone()
}

/// Polls `probe` every 100 ms until it returns `Some`, failing after [`TIMEOUT`].
fn wait_for<T>(
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    root: tempfile::TempDir,
    _server: Process,
    device_port: u16,
}

impl Setup {
    fn server_dir(&self) -> PathBuf {
        self.root.path().join("server")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let kubectl = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(self.server_dir().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.root.path().join("kubectl-cache"))
            .args(args)
            .output()
            .unwrap()
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn kubectl_stdin(&self, args: &[&str], input: &str) {
        use std::io::Write as _;
        let kubectl = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
        let mut child = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(self.server_dir().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.root.path().join("kubectl-cache"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn get_json(&self, args: &[&str]) -> Option<Value> {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        let output = self.kubectl(&full);
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    fn log(&self, name: &str) -> String {
        let text = fs::read_to_string(self.root.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn logs(&self) -> String {
        format!(
            "--- server.log ---\n{}\n--- agent.log ---\n{}",
            self.log("server.log"),
            self.log("agent.log")
        )
    }

    fn start_agent(&self, id: &str, data_dir: &Path, extra: &[&str]) -> Process {
        let bootstrap = self.server_dir().join("device-bootstrap");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("agent.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_flotta-agent"))
            .arg("--server")
            .arg(format!("https://127.0.0.1:{}", self.device_port))
            .args([
                "--device-id",
                id,
                "--poll-seconds",
                "1",
                "--log-level",
                "debug",
            ])
            .arg("--ca-cert")
            .arg(bootstrap.join("ca.pem"))
            .arg("--cert")
            .arg(bootstrap.join("cert.pem"))
            .arg("--key")
            .arg(bootstrap.join("key.pem"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .envs(
                support::ENV
                    .get()
                    .map(|(key, value)| (key.clone(), value.clone())),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Process(child)
    }
}

fn start_server() -> Setup {
    let root = tempfile::Builder::new()
        .prefix("flotta-agent-e2e-")
        .tempdir()
        .unwrap();
    let data = root.path().join("server");
    fs::create_dir_all(&data).unwrap();
    let log = fs::File::create(root.path().join("server.log")).unwrap();
    let child = Command::new(apiserver_binary())
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--secure-port",
            "0",
            "--metrics-port",
            "auto",
            "--device-port",
            "0",
        ])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Process(child);
    let ports = data.join("ports.json");
    let device_port = wait_for(
        "ports.json with a device port",
        || {
            let text = fs::read_to_string(&ports).ok()?;
            let value: Value = serde_json::from_str(&text).ok()?;
            let port = u16::try_from(value.get("device")?.as_u64()?).ok()?;
            (port != 0 && data.join("device-bootstrap").join("key.pem").exists()).then_some(port)
        },
        || fs::read_to_string(root.path().join("server.log")).unwrap_or_default(),
    );
    let setup = Setup {
        root,
        _server: server,
        device_port,
    };
    wait_for(
        "kubectl to reach the server",
        || {
            setup
                .kubectl(&["get", "edgedevices"])
                .status
                .success()
                .then_some(())
        },
        || setup.logs(),
    );
    setup
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn agent_registers_shows_online_and_wipes_on_deletion() {
    let setup = start_server();
    let id = "agent-e2e";
    let data_dir = setup.root.path().join("agent");
    let mut agent = setup.start_agent(id, &data_dir, &[]);

    let device = wait_for(
        "the device to be online in kubectl",
        || {
            let device = setup.get_json(&["get", "edgedevice", id])?;
            (device["status"]["online"] == true && device["status"]["phase"] == "up")
                .then_some(device)
        },
        || setup.logs(),
    );
    assert_eq!(
        device["status"]["hardware"]["cpu"]["architecture"],
        std::env::consts::ARCH,
        "the first heartbeat carries the full inventory: {device}"
    );
    let table = setup.kubectl_ok(&["get", "edgedevices"]);
    assert!(table.contains(id), "{table}");
    // Registration stored a device certificate; the configuration was persisted.
    let cert = fs::read_to_string(data_dir.join("identity").join("cert.pem")).unwrap();
    assert!(cert.contains("BEGIN CERTIFICATE"));
    wait_for(
        "the configuration to be persisted",
        || data_dir.join("device-config.json").exists().then_some(()),
        || setup.logs(),
    );

    setup.kubectl_ok(&["delete", "edgedevice", id, "--wait=false"]);
    let status = wait_for(
        "the agent to exit after disconnect",
        || agent.0.try_wait().ok().flatten(),
        || setup.logs(),
    );
    assert!(
        status.success(),
        "agent exit status {status}\n{}",
        setup.logs()
    );
    assert_eq!(
        entries(&data_dir),
        ["identity"],
        "disconnect keeps only the certificates\n{}",
        setup.logs()
    );
    assert_eq!(entries(&data_dir.join("identity")), ["cert.pem", "key.pem"]);
}

#[test]
fn a_missing_bootstrap_file_is_named_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let output = Command::new(env!("CARGO_BIN_EXE_flotta-agent"))
        .args(["--server", "https://127.0.0.1:1", "--device-id", "d1"])
        .arg("--ca-cert")
        .arg(&missing)
        .arg("--cert")
        .arg(&missing)
        .arg("--key")
        .arg(&missing)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&*missing.to_string_lossy()), "{stderr}");
}

#[test]
fn an_edgeworkload_runs_on_podman_and_is_removed() {
    if !support::podman_ready() {
        return;
    }
    let setup = start_server();
    let id = format!("agent-wl-{}", std::process::id());
    let data_dir = setup.root.path().join("agent");
    let agent = setup.start_agent(&id, &data_dir, &[]);
    wait_for(
        "the device to be online",
        || {
            let device = setup.get_json(&["get", "edgedevice", &id])?;
            (device["status"]["online"] == true).then_some(())
        },
        || setup.logs(),
    );
    setup.kubectl_ok(&["label", "edgedevice", &id, "site=agent-e2e"]);
    let workload = format!(
        "apiVersion: management.project-flotta.io/v1alpha1
kind: EdgeWorkload
metadata:
  name: sleeper
spec:
  type: pod
  deviceSelector:
    matchLabels:
      site: agent-e2e
  pod:
    spec:
      containers:
        - name: main
          image: {}
          command: [\"/bin/sh\", \"-c\", \"exec sleep 3600\"]
",
        support::IMAGE
    );
    setup.kubectl_stdin(&["apply", "-f", "-"], &workload);
    let pod_state = || {
        let output = support::podman()
            .args([
                "pod",
                "ps",
                "--filter",
                "name=^sleeper$",
                "--format",
                "{{.Status}}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    wait_for(
        "the pod to run on podman",
        || (pod_state() == "Running").then_some(()),
        || setup.logs(),
    );
    wait_for(
        "kubectl to show the workload Running",
        || {
            let device = setup.get_json(&["get", "edgedevice", &id])?;
            let workloads = device["status"]["workloads"].as_array()?.clone();
            workloads
                .iter()
                .any(|w| w["name"] == "sleeper" && w["phase"] == "Running")
                .then_some(())
        },
        || setup.logs(),
    );
    // Restart with the server unreachable: the stored configuration brings the workload
    // back without the server.
    drop(agent);
    let status = support::podman()
        .args(["pod", "rm", "--force", "--time", "0", "sleeper"])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(pod_state(), "");
    let offline = setup.start_agent(&id, &data_dir, &["--server", "https://127.0.0.1:1"]);
    wait_for(
        "the pod to be started again from the stored configuration",
        || (pod_state() == "Running").then_some(()),
        || setup.logs(),
    );
    drop(offline);
    let _agent = setup.start_agent(&id, &data_dir, &[]);

    setup.kubectl_ok(&["delete", "edgeworkload", "sleeper"]);
    wait_for(
        "the pod to be removed",
        || pod_state().is_empty().then_some(()),
        || setup.logs(),
    );
}
