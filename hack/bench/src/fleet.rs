//! `bench-devices`: simulated devices against a `flotta-apiserver` (issue 3, item 9).
//!
//! For each fleet size a fresh server is started (`--device-port 0 --metrics-port auto`,
//! automatic approval) and, in order:
//! 1. every device enrols with the bootstrap certificate until approved and registers with
//!    a CSR of its own ([`load::enrol_all`]): enrolments + registrations per second;
//! 2. an EdgeWorkload selecting every device (`device.cpu-architecture=x86_64`, a hardware
//!    label set at registration) is created and its placement awaited;
//! 3. every device fetches its configuration and sends one heartbeat (the steady state);
//! 4. three measured runs ([`load::run`]), each after the store has gone quiet:
//!    identical heartbeats (no store write allowed but the low-rate `lastSeen`
//!    checkpoints, which only runs longer than the checkpoint interval meet),
//!    unchanged-configuration polls (`If-None-Match` → 304), and status-changing
//!    heartbeats (each one flips the workload's phase, so each one is a durable status
//!    write).
//!
//! Around every run the server's `/metrics` is read: `flotta_store_current_revision`
//! (every store write moves it) and `flotta_edge_store_writes_total` (the device backend's
//! writes, by reason), with the server's CPU time and memory from `/proc`.
//!
//! Limits: the load generator and the server share the machine, so the generator's CPU
//! use is part of every figure (it is printed); Linux only.

pub mod args;
pub mod load;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use flotta_e2e::device::{DeviceEndpoint, DeviceError, Identity};
use serde_json::{Value, json};
use tokio::time::Instant;

use self::args::Options;
use self::load::{Enrolled, Load, RunResult, WORKLOAD};
use crate::client::{ApiError, Protocol, expect_body};
use crate::server::{Memory, Server, ServerError, parse_stat_cpu};

/// How long placement of the workload on every device may take.
const PLACEMENT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the store may take to go quiet before a run.
const QUIET_TIMEOUT: Duration = Duration::from_secs(60);
/// The store counts as quiet when its revision holds this long.
const QUIET_FOR: Duration = Duration::from_millis(500);

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The server could not be started or read.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A request to the Kubernetes API or `/metrics` failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A simulated device failed outside a measured run.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Something did not turn out as the benchmark needs.
    #[error("{0}")]
    Unexpected(String),
}

/// What `/metrics` says about writes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Writes {
    /// `flotta_store_current_revision`: moves with every store write.
    pub revision: f64,
    /// `flotta_edge_store_writes_total`, all reasons: the device backend's writes.
    pub backend: f64,
    /// `flotta_edge_store_writes_total{reason="Heartbeat"}`: status writes of heartbeats.
    pub heartbeat: f64,
    /// `flotta_edge_store_writes_total{reason="Checkpoint"}`: the low-rate `lastSeen`
    /// checkpoints (due `--device-last-seen-checkpoint` seconds after a device's last
    /// write, so they appear in long runs).
    pub checkpoint: f64,
}

impl Writes {
    /// The writes from `before` to `self`.
    pub fn since(&self, before: &Writes) -> Writes {
        Writes {
            revision: self.revision - before.revision,
            backend: self.backend - before.backend,
            heartbeat: self.heartbeat - before.heartbeat,
            checkpoint: self.checkpoint - before.checkpoint,
        }
    }

    /// Writes other than the `lastSeen` checkpoints: by the device backend, and in the
    /// whole store.
    pub fn beyond_checkpoints(&self) -> (f64, f64) {
        (
            self.backend - self.checkpoint,
            self.revision - self.checkpoint,
        )
    }
}

/// The sum of every sample of `series` in a Prometheus text page: `series` is a metric
/// name (all its label sets count) or a name with labels (`x_total{reason="a"}`).
pub fn metric_sum(page: &str, series: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(series) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

fn parse_writes(page: &str) -> Result<Writes, FleetError> {
    let get = |series: &str| {
        metric_sum(page, series)
            .ok_or_else(|| FleetError::Unexpected(format!("/metrics has no {series}")))
    };
    Ok(Writes {
        revision: get("flotta_store_current_revision")?,
        backend: get("flotta_edge_store_writes_total")?,
        heartbeat: get("flotta_edge_store_writes_total{reason=\"Heartbeat\"}")?,
        checkpoint: get("flotta_edge_store_writes_total{reason=\"Checkpoint\"}")?,
    })
}

/// The figures of one measured run.
#[derive(Debug, Clone)]
pub struct Measured {
    /// What was sent.
    pub load: Load,
    /// Requests, answers and latencies.
    pub run: RunResult,
    /// Writes during the run.
    pub writes: Writes,
    /// Server CPU during the run, in cores (1.0 = one core busy all the time).
    pub server_cores: Option<f64>,
    /// Load generator CPU during the run, in cores.
    pub generator_cores: Option<f64>,
    /// Server memory right after the run.
    pub memory: Option<Memory>,
    /// `/proc/loadavg` before the run (the machine is shared).
    pub load_average: String,
    /// Connections the devices opened during the run (0 with keep-alive).
    pub reconnections: u64,
}

/// Everything measured for one fleet size.
#[derive(Debug)]
pub struct SizeFigures {
    /// Devices in the fleet.
    pub devices: usize,
    /// Enrolments and registrations: count, time, per-device latency.
    pub enrolment: EnrolmentFigures,
    /// The identical-heartbeat run.
    pub identical: Measured,
    /// The unchanged-configuration poll run.
    pub polls: Measured,
    /// The status-changing heartbeat run.
    pub changes: Measured,
}

/// Enrolment and registration figures.
#[derive(Debug, Clone)]
pub struct EnrolmentFigures {
    /// Devices per second (enrolment through certificate).
    pub rate: f64,
    /// Per-device latency.
    pub latency: crate::stats::Samples,
    /// Wall time.
    pub elapsed: Duration,
}

impl From<&Enrolled> for EnrolmentFigures {
    fn from(enrolled: &Enrolled) -> Self {
        EnrolmentFigures {
            rate: enrolled.rate(),
            latency: enrolled.latency.clone(),
            elapsed: enrolled.elapsed,
        }
    }
}

/// The server under test with what the benchmark needs from it.
struct Target {
    server: Server,
    admin: reqwest::Client,
    metrics_url: String,
    api_base: String,
}

fn ports(data_dir: &Path) -> Result<Value, FleetError> {
    let path = data_dir.join("ports.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| FleetError::Unexpected(format!("reading {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| FleetError::Unexpected(format!("parsing {}: {e}", path.display())))
}

fn own_cpu() -> Option<Duration> {
    parse_stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".to_owned())
}

fn cores(cpu: Option<Duration>, elapsed: Duration) -> Option<f64> {
    let seconds = elapsed.as_secs_f64();
    (seconds > 0.0).then(|| cpu.map(|cpu| cpu.as_secs_f64() / seconds))?
}

impl Target {
    async fn start(opts: &Options, data_root: &Path) -> Result<Self, FleetError> {
        let server = Server::start_with_flags(
            &opts.server_bin,
            data_root,
            opts.store,
            opts.keep_data,
            &["--metrics-port", "auto", "--device-port", "0"],
        )
        .await?;
        let ports = ports(server.data_dir())?;
        let metrics = ports
            .get("metrics")
            .and_then(Value::as_u64)
            .ok_or_else(|| FleetError::Unexpected(format!("no metrics port in {ports}")))?;
        let admin = server.credentials()?.client(Protocol::Http1)?;
        Ok(Target {
            api_base: format!("https://127.0.0.1:{}", server.port()),
            metrics_url: format!("http://127.0.0.1:{metrics}/metrics"),
            server,
            admin,
        })
    }

    async fn writes(&self) -> Result<Writes, FleetError> {
        let body = expect_body(
            "GET /metrics",
            self.admin.get(&self.metrics_url),
            reqwest::StatusCode::OK,
        )
        .await?;
        parse_writes(&String::from_utf8_lossy(&body))
    }

    /// Waits until the store revision holds still for [`QUIET_FOR`]; returns the writes then.
    async fn quiet(&self) -> Result<Writes, FleetError> {
        let deadline = Instant::now() + QUIET_TIMEOUT;
        let mut before = self.writes().await?;
        loop {
            tokio::time::sleep(QUIET_FOR).await;
            let now = self.writes().await?;
            if now.revision == before.revision {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                return Err(FleetError::Unexpected(format!(
                    "the store kept being written for {QUIET_TIMEOUT:?} (revision {} → {})",
                    before.revision, now.revision
                )));
            }
            before = now;
        }
    }

    /// Creates the workload that selects every simulated device.
    async fn create_workload(&self) -> Result<(), FleetError> {
        let url = format!(
            "{}/apis/management.project-flotta.io/v1alpha1/namespaces/default/edgeworkloads",
            self.api_base
        );
        let workload = json!({
            "apiVersion": "management.project-flotta.io/v1alpha1",
            "kind": "EdgeWorkload",
            "metadata": {"name": WORKLOAD},
            "spec": {
                "type": "pod",
                "deviceSelector": {"matchLabels": {"device.cpu-architecture": "x86_64"}},
                "pod": {"spec": {"containers": [
                    {"name": "app", "image": "quay.io/example/app:1.0"}
                ]}},
            },
        });
        expect_body(
            "creating the benchmark workload",
            self.admin.post(&url).json(&workload),
            reqwest::StatusCode::CREATED,
        )
        .await?;
        Ok(())
    }

    /// Waits until `count` devices list the workload in `status.workloads`.
    async fn await_placement(&self, count: usize) -> Result<(), FleetError> {
        let url = format!(
            "{}/apis/management.project-flotta.io/v1alpha1/namespaces/default/edgedevices",
            self.api_base
        );
        let deadline = Instant::now() + PLACEMENT_TIMEOUT;
        loop {
            let body = expect_body(
                "listing the devices",
                self.admin.get(&url),
                reqwest::StatusCode::OK,
            )
            .await?;
            let list: Value = serde_json::from_slice(&body)
                .map_err(|e| FleetError::Unexpected(format!("device list: {e}")))?;
            let placed = list["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter(|device| {
                            device["status"]["workloads"]
                                .as_array()
                                .is_some_and(|w| w.iter().any(|w| w["name"] == WORKLOAD))
                        })
                        .count()
                })
                .unwrap_or(0);
            if placed >= count {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(FleetError::Unexpected(format!(
                    "the workload reached {placed} of {count} devices in {PLACEMENT_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// One measured run of `load`.
    async fn measure(
        &self,
        sims: Vec<load::Sim>,
        load: Load,
        opts: &Options,
    ) -> Result<(Vec<load::Sim>, Measured), FleetError> {
        let before = self.quiet().await?;
        let load_average = load_average();
        let connections: u64 = sims.iter().map(load::Sim::connections_opened).sum();
        let server_cpu = self.server.cpu_time();
        let generator_cpu = own_cpu();
        let (sims, run) = load::run(sims, load, opts.in_flight(), opts.run_time()).await;
        let server_cpu = self
            .server
            .cpu_time()
            .zip(server_cpu)
            .map(|(after, before)| after.saturating_sub(before));
        let generator_cpu = own_cpu()
            .zip(generator_cpu)
            .map(|(after, before)| after.saturating_sub(before));
        let after = self.writes().await?;
        let reconnections =
            sims.iter().map(load::Sim::connections_opened).sum::<u64>() - connections;
        let measured = Measured {
            load,
            writes: after.since(&before),
            server_cores: cores(server_cpu, run.elapsed),
            generator_cores: cores(generator_cpu, run.elapsed),
            memory: self.server.memory().ok(),
            load_average,
            reconnections,
            run,
        };
        eprintln!("  {}", report::progress_line(&measured));
        Ok((sims, measured))
    }
}

/// The default data root: the `target/` directory above the server binary, if any.
fn data_root(opts: &Options) -> PathBuf {
    if let Some(root) = &opts.data_root {
        return root.clone();
    }
    opts.server_bin
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "target"))
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
}

/// Benchmarks one fleet of `devices`.
pub async fn run_size(opts: &Options, devices: usize) -> Result<SizeFigures, FleetError> {
    let root = data_root(opts);
    eprintln!(
        "== {devices} devices: starting the server (data under {})",
        root.display()
    );
    let target = Target::start(opts, &root).await?;
    let data_dir = target.server.data_dir().to_path_buf();
    let endpoint = DeviceEndpoint::from_data_dir(&data_dir)?;
    let bootstrap = Identity::bootstrap(&data_dir)?;

    eprintln!("  enrolling and registering {devices} devices");
    let enrolled = load::enrol_all(&endpoint, &bootstrap, devices, opts.in_flight()).await?;
    let enrolment = EnrolmentFigures::from(&enrolled);
    eprintln!(
        "  {devices} registered in {:.1} s ({:.0}/s)",
        enrolled.elapsed.as_secs_f64(),
        enrolment.rate
    );

    target.create_workload().await?;
    target.await_placement(devices).await?;
    let sims = load::prepare(enrolled.devices, WORKLOAD, opts.in_flight()).await?;
    eprintln!("  workload placed; every device sent its first heartbeat");

    let (sims, identical) = target
        .measure(sims, Load::IdenticalHeartbeats, opts)
        .await?;
    let sims = load::refresh_etags(sims, opts.in_flight()).await?;
    let (sims, polls) = target.measure(sims, Load::UnchangedPolls, opts).await?;
    let (sims, changes) = target.measure(sims, Load::StatusChanges, opts).await?;
    drop(sims);
    if let Some(kept) = target.server.kept_dir() {
        eprintln!("  data kept in {}", kept.display());
    }
    target.server.stop().await;
    Ok(SizeFigures {
        devices,
        enrolment,
        identical,
        polls,
        changes,
    })
}

/// Runs every fleet size of `opts` in turn.
pub async fn run(opts: &Options) -> Result<Vec<SizeFigures>, FleetError> {
    let mut figures = Vec::new();
    for &devices in &opts.devices {
        figures.push(run_size(opts, devices).await?);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# TYPE flotta_edge_store_writes_total counter
flotta_edge_store_writes_total{reason=\"Heartbeat\"} 7
flotta_edge_store_writes_total{reason=\"Enrolment\"} 3
flotta_edge_store_writes_total{reason=\"Checkpoint\"} 0
flotta_store_current_revision 120
flotta_store_current_revision_other 5
";

    #[test]
    fn writes_from_metrics() {
        let writes = parse_writes(PAGE).unwrap();
        assert_eq!(
            writes,
            Writes {
                revision: 120.0,
                backend: 10.0,
                heartbeat: 7.0,
                checkpoint: 0.0,
            }
        );
        let later = Writes {
            revision: 125.0,
            backend: 12.0,
            heartbeat: 9.0,
            checkpoint: 2.0,
        };
        assert_eq!(later.since(&writes).revision, 5.0);
        assert_eq!(later.since(&writes).beyond_checkpoints(), (0.0, 3.0));
        assert!(parse_writes("flotta_store_current_revision 1\n").is_err());
    }

    #[test]
    fn cpu_in_cores() {
        assert_eq!(
            cores(Some(Duration::from_secs(3)), Duration::from_secs(2)),
            Some(1.5)
        );
        assert_eq!(cores(None, Duration::from_secs(2)), None);
        assert_eq!(cores(Some(Duration::from_secs(1)), Duration::ZERO), None);
    }
}
