//! The simulated fleet: devices that enrol and register with their own certificates, then
//! measured runs that keep a fixed number of requests in flight.
//!
//! Every device is a [`DeviceClient`] (the end-to-end suite's test device): its own
//! certificate and its own HTTP/1.1 keep-alive TLS connection, one request at a time, as a
//! real device. A run splits the devices among `in_flight` workers; each worker sends one
//! request on its next device's connection, waits for the answer, and moves on to its next
//! device, so exactly `in_flight` requests are outstanding until the run time is up.
//! Request bodies are built once per device before the run.
//!
//! Limits: enrolment retries every [`ENROL_RETRY`] (a real device waits 10 s) so that the
//! figure measures the server, not the retry timer; latencies are those seen by the load
//! generator, which shares the machine with the server.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use flotta_api::edge::{DIRECTIVE_HEARTBEAT, EnrolmentFeatures, EnrolmentInfo};
use flotta_e2e::device::{
    DeviceClient, DeviceEndpoint, DeviceError, Identity, data_in_path, data_out_path, heartbeat,
    sample_hardware,
};
use futures::StreamExt as _;
use http::StatusCode;
use tokio::time::Instant;

use crate::stats::Samples;

/// How often a device re-sends its enrolment until it is approved.
pub const ENROL_RETRY: Duration = Duration::from_millis(20);
/// How long a device waits for approval before the benchmark gives up.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(120);
/// Name of the workload placed on every simulated device.
pub const WORKLOAD: &str = "bench";
/// The podman states a status-changing heartbeat alternates between (Deploying ↔ Running).
const STATES: [&str; 2] = ["Running", "Created"];

/// The id of simulated device `index`.
pub fn device_id(index: usize) -> String {
    format!("bench-{index:05}")
}

/// The outcome of enrolling and registering the fleet.
#[derive(Debug)]
pub struct Enrolled {
    /// The registered devices, presenting their own certificates.
    pub devices: Vec<DeviceClient>,
    /// Wall time from the first enrolment to the last registration.
    pub elapsed: Duration,
    /// Per device: first enrolment to certificate received.
    pub latency: Samples,
}

impl Enrolled {
    /// Devices enrolled and registered per second.
    pub fn rate(&self) -> f64 {
        rate(self.devices.len() as u64, self.elapsed)
    }
}

/// `count` per `elapsed`, 0 for an empty interval.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Enrols and registers `count` devices, `in_flight` at a time, each starting with the
/// bootstrap certificate `bootstrap` and ending with its own.
pub async fn enrol_all(
    endpoint: &DeviceEndpoint,
    bootstrap: &Identity,
    count: usize,
    in_flight: usize,
) -> Result<Enrolled, DeviceError> {
    let started = Instant::now();
    let results: Vec<Result<(DeviceClient, Duration), DeviceError>> =
        futures::stream::iter(0..count)
            .map(|index| {
                let endpoint = endpoint.clone();
                let bootstrap = bootstrap.clone();
                async move {
                    let id = device_id(index);
                    let began = Instant::now();
                    let mut device = DeviceClient::new(&endpoint, id.clone(), Some(bootstrap))?;
                    let info = EnrolmentInfo {
                        features: Some(EnrolmentFeatures {
                            model_name: Some("bench-device".into()),
                            hardware: Some(sample_hardware(&id)),
                        }),
                        target_namespace: None,
                    };
                    device
                        .join(
                            &info,
                            Some(sample_hardware(&id)),
                            ENROL_RETRY,
                            APPROVAL_TIMEOUT,
                        )
                        .await?;
                    Ok((device, began.elapsed()))
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
    let elapsed = started.elapsed();
    let mut devices = Vec::with_capacity(count);
    let mut latencies = Vec::with_capacity(count);
    for result in results {
        let (device, latency) = result?;
        devices.push(device);
        latencies.push(latency);
    }
    Ok(Enrolled {
        devices,
        elapsed,
        latency: Samples::new(latencies),
    })
}

/// A registered device with its prepared request bodies.
#[derive(Debug)]
pub struct Sim {
    client: DeviceClient,
    out_path: String,
    in_path: String,
    /// The heartbeat of the steady state (workload `Running`).
    steady: Bytes,
    /// The heartbeat with the workload in the other state (`Created`).
    other: Bytes,
    /// Which body the next status-changing heartbeat sends.
    flip: bool,
    etag: Option<String>,
}

impl Sim {
    /// The device's id.
    pub fn id(&self) -> &str {
        self.client.id()
    }

    /// Connections the device has opened so far.
    pub fn connections_opened(&self) -> u64 {
        self.client.connections_opened()
    }
}

/// Prepares every device, `in_flight` at a time: fetch its configuration (which must list
/// `workload`), build its heartbeats, and send the first one (the steady state).
pub async fn prepare(
    devices: Vec<DeviceClient>,
    workload: &str,
    in_flight: usize,
) -> Result<Vec<Sim>, DeviceError> {
    let results: Vec<Result<Sim, DeviceError>> = futures::stream::iter(devices)
        .map(|mut client| async move {
            let configuration = client.full_configuration().await?;
            if !configuration
                .workloads
                .iter()
                .any(|w| w.name.as_deref() == Some(workload))
            {
                return Err(DeviceError::Invalid(format!(
                    "{}: workload {workload} is not in the configuration",
                    client.id()
                )));
            }
            let version = configuration.version.as_deref();
            let steady = client.envelope(
                DIRECTIVE_HEARTBEAT,
                &heartbeat(version, &[(workload, STATES[0])]),
            )?;
            let other = client.envelope(
                DIRECTIVE_HEARTBEAT,
                &heartbeat(version, &[(workload, STATES[1])]),
            )?;
            let out_path = data_out_path(client.id());
            client.post(&out_path, steady.clone()).await?.expect(
                &format!("first heartbeat of {}", client.id()),
                &[StatusCode::OK],
            )?;
            let in_path = data_in_path(client.id());
            let etag = client.etag().map(str::to_owned);
            Ok(Sim {
                client,
                out_path,
                in_path,
                steady,
                other,
                flip: true,
                etag,
            })
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Fetches every device's configuration again to learn its current `ETag`.
pub async fn refresh_etags(sims: Vec<Sim>, in_flight: usize) -> Result<Vec<Sim>, DeviceError> {
    let results: Vec<Result<Sim, DeviceError>> = futures::stream::iter(sims)
        .map(|mut sim| async move {
            sim.client.full_configuration().await?;
            sim.etag = sim.client.etag().map(str::to_owned);
            if sim.etag.is_none() {
                return Err(DeviceError::Invalid(format!(
                    "{}: data/in sent no ETag",
                    sim.id()
                )));
            }
            Ok(sim)
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    results.into_iter().collect()
}

/// What a measured run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The steady-state heartbeat, unchanged: nothing to store.
    IdenticalHeartbeats,
    /// Heartbeats whose workload phase flips every time: each one a status change.
    StatusChanges,
    /// `GET data/in` with the current `ETag` in `If-None-Match`: 304 expected.
    UnchangedPolls,
}

impl Load {
    fn expected(self) -> StatusCode {
        match self {
            Load::IdenticalHeartbeats | Load::StatusChanges => StatusCode::OK,
            Load::UnchangedPolls => StatusCode::NOT_MODIFIED,
        }
    }
}

/// The figures of one measured run.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of each expected answer.
    pub latency: Samples,
    /// Answers with another status, by status code.
    pub unexpected: BTreeMap<u16, u64>,
    /// Requests that got no answer.
    pub failed: u64,
    /// The first failure or unexpected answer, for the report.
    pub first_problem: Option<String>,
}

impl RunResult {
    /// Expected answers per second.
    pub fn rate(&self) -> f64 {
        rate(self.ok, self.elapsed)
    }

    /// Whether every request got the expected answer.
    pub fn clean(&self) -> bool {
        self.failed == 0 && self.unexpected.is_empty()
    }
}

#[derive(Debug, Default)]
struct WorkerResult {
    ok: u64,
    latencies: Vec<Duration>,
    unexpected: BTreeMap<u16, u64>,
    failed: u64,
    first_problem: Option<String>,
}

async fn worker(mut sims: Vec<Sim>, load: Load, stop: Instant) -> (Vec<Sim>, WorkerResult) {
    let mut out = WorkerResult::default();
    let expected = load.expected();
    if sims.is_empty() {
        return (sims, out);
    }
    'run: loop {
        for sim in &mut sims {
            if Instant::now() >= stop {
                break 'run;
            }
            let started = Instant::now();
            let reply = match load {
                Load::IdenticalHeartbeats => {
                    sim.client.post(&sim.out_path, sim.steady.clone()).await
                }
                Load::StatusChanges => {
                    let body = if sim.flip { &sim.other } else { &sim.steady };
                    sim.flip = !sim.flip;
                    sim.client.post(&sim.out_path, body.clone()).await
                }
                Load::UnchangedPolls => sim.client.get(&sim.in_path, sim.etag.as_deref()).await,
            };
            let latency = started.elapsed();
            match reply {
                Ok(reply) if reply.status == expected => {
                    out.ok += 1;
                    out.latencies.push(latency);
                }
                Ok(reply) => {
                    *out.unexpected.entry(reply.status.as_u16()).or_default() += 1;
                    out.first_problem.get_or_insert_with(|| {
                        format!("{}: HTTP {}: {}", sim.id(), reply.status, reply.text())
                    });
                }
                Err(error) => {
                    out.failed += 1;
                    out.first_problem
                        .get_or_insert_with(|| format!("{}: {error}", sim.id()));
                }
            }
        }
    }
    (sims, out)
}

/// Runs `load` over `sims` for `duration` with `in_flight` requests outstanding; returns
/// the devices (for the next run) and the figures.
pub async fn run(
    sims: Vec<Sim>,
    load: Load,
    in_flight: usize,
    duration: Duration,
) -> (Vec<Sim>, RunResult) {
    let workers = in_flight.max(1);
    let mut groups: Vec<Vec<Sim>> = (0..workers).map(|_| Vec::new()).collect();
    for (index, sim) in sims.into_iter().enumerate() {
        groups[index % workers].push(sim);
    }
    let started = Instant::now();
    let stop = started + duration;
    let handles: Vec<_> = groups
        .into_iter()
        .map(|group| tokio::spawn(worker(group, load, stop)))
        .collect();
    let mut sims = Vec::new();
    let mut result = RunResult::default();
    let mut latencies = Vec::new();
    for handle in handles {
        match handle.await {
            Ok((group, out)) => {
                sims.extend(group);
                result.ok += out.ok;
                result.failed += out.failed;
                latencies.extend(out.latencies);
                for (status, count) in out.unexpected {
                    *result.unexpected.entry(status).or_default() += count;
                }
                if result.first_problem.is_none() {
                    result.first_problem = out.first_problem;
                }
            }
            Err(error) => {
                result.failed += 1;
                result
                    .first_problem
                    .get_or_insert_with(|| format!("a load worker failed: {error}"));
            }
        }
    }
    result.elapsed = started.elapsed();
    result.latency = Samples::new(latencies);
    (sims, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_creation_order() {
        assert_eq!(device_id(7), "bench-00007");
        assert!(device_id(999) < device_id(1000));
    }

    #[test]
    fn rates() {
        assert_eq!(rate(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(rate(5, Duration::ZERO), 0.0);
        let run = RunResult {
            ok: 30,
            elapsed: Duration::from_secs(3),
            ..RunResult::default()
        };
        assert_eq!(run.rate(), 10.0);
        assert!(run.clean());
    }

    #[test]
    fn polls_expect_not_modified() {
        assert_eq!(Load::UnchangedPolls.expected(), StatusCode::NOT_MODIFIED);
        assert_eq!(Load::StatusChanges.expected(), StatusCode::OK);
    }
}
