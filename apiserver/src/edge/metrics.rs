//! Prometheus metrics of the device-facing Edge API and the store device backend:
//! Flotta's `flotta_api_edge_devices_*` counters (`flotta-inventory.md` §2.9), request
//! counts and latencies per device operation, store writes by reason, devices online and
//! offline, and configuration cache figures.
//!
//! The metrics live in an explicit prometheus-client [`Registry`]; [`EdgeMetrics::encode`]
//! renders it in the Prometheus text format (0.0.4) so the server's `/metrics` handler can
//! append it to its own figures.
//!
//! Differences from Flotta: counters carry the `_total` suffix Prometheus conventions
//! require (`flotta_api_edge_devices_heartbeat_total`), and there is no series per device
//! (Flotta's `deviceNamespace`/`deviceID` heartbeat labels would be 100k series for 100k
//! devices); per-device liveness is in `EdgeDevice.status` instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A device-facing operation, for request counts and latencies.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Operation {
    /// `POST data/{id}/out`, directive `enrolment`.
    Enrolment,
    /// `POST data/{id}/out`, directive `registration`.
    Registration,
    /// `POST data/{id}/out`, directive `heartbeat`.
    Heartbeat,
    /// `POST data/{id}/out`, directive `ansible`.
    Ansible,
    /// `GET data/{id}/in`.
    Configuration,
    /// `GET control/{id}/in` and `POST control/{id}/out`.
    Control,
}

/// How many [`Operation`]s there are.
const OPERATIONS: usize = 6;

/// Why the device backend wrote to the store.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum WriteReason {
    /// An enrolment created an EdgeDeviceSignedRequest.
    Enrolment,
    /// A registration recorded hardware and labels.
    Registration,
    /// A heartbeat reported a changed status (or labels, or device events).
    Heartbeat,
    /// A heartbeat moved a PlaybookExecution forward.
    Playbook,
    /// A device went offline, or came back.
    Liveness,
    /// The low-rate checkpoint of `status.lastSeen`.
    Checkpoint,
    /// A configuration problem appeared or was resolved (the device's annotation).
    Configuration,
}

impl WriteReason {
    const ALL: [WriteReason; 7] = [
        WriteReason::Enrolment,
        WriteReason::Registration,
        WriteReason::Heartbeat,
        WriteReason::Playbook,
        WriteReason::Liveness,
        WriteReason::Checkpoint,
        WriteReason::Configuration,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: Operation,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: Operation,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    reason: WriteReason,
}

type HistogramFamily = Family<OperationLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

/// Every Edge API and device backend metric (see the module documentation).
pub struct EdgeMetrics {
    registry: Registry,
    /// `flotta_api_edge_devices_successful_registration`: a certificate was issued.
    pub successful_registration: Counter,
    /// `flotta_api_edge_devices_failed_registration`: a registration failed (not counting
    /// "not approved yet").
    pub failed_registration: Counter,
    /// `flotta_api_edge_devices_unregistration`: a `disconnect` command was sent.
    pub unregistration: Counter,
    /// `flotta_api_edge_devices_heartbeat`: a heartbeat was processed (all devices).
    pub heartbeat: Counter,
    /// `flotta_api_edge_devices_failed_authentication`: a client certificate was refused.
    pub failed_authentication: Counter,
    /// `flotta_api_edge_devices_invalid_owner`: a certificate's CN did not match the URL.
    pub invalid_owner: Counter,
    /// Devices whose last heartbeat is recent enough (set by the liveness sweeper).
    pub devices_online: Gauge,
    /// Devices known to have missed too many heartbeats (set by the liveness sweeper).
    pub devices_offline: Gauge,
    /// Configurations rendered (cache misses).
    pub configuration_renders: Counter,
    /// Configuration requests served from the cache.
    pub configuration_cache_hits: Counter,
    /// Heartbeats that changed nothing and were answered from memory.
    pub heartbeats_unchanged: Counter,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily,
    store_writes: [Counter; WriteReason::ALL.len()],
    request_counts: [AtomicU64; OPERATIONS],
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EdgeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeMetrics")
            .field("store_writes", &self.store_writes())
            .finish_non_exhaustive()
    }
}

impl EdgeMetrics {
    /// All metrics at zero, registered in a fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let successful_registration = counter(
            &mut registry,
            "flotta_api_edge_devices_successful_registration",
            "Device registrations that issued a certificate",
        );
        let failed_registration = counter(
            &mut registry,
            "flotta_api_edge_devices_failed_registration",
            "Device registrations that failed (not counting devices awaiting approval)",
        );
        let unregistration = counter(
            &mut registry,
            "flotta_api_edge_devices_unregistration",
            "Disconnect commands sent to deleted devices",
        );
        let heartbeat = counter(
            &mut registry,
            "flotta_api_edge_devices_heartbeat",
            "Heartbeats processed, all devices together",
        );
        let failed_authentication = counter(
            &mut registry,
            "flotta_api_edge_devices_failed_authentication",
            "Device requests refused because the client certificate was not acceptable",
        );
        let invalid_owner = counter(
            &mut registry,
            "flotta_api_edge_devices_invalid_owner",
            "Device requests whose certificate belongs to another device",
        );
        let configuration_renders = counter(
            &mut registry,
            "flotta_edge_configuration_renders",
            "Device configurations rendered (configuration cache misses)",
        );
        let configuration_cache_hits = counter(
            &mut registry,
            "flotta_edge_configuration_cache_hits",
            "Device configuration requests answered from the cache",
        );
        let heartbeats_unchanged = counter(
            &mut registry,
            "flotta_edge_heartbeats_unchanged",
            "Heartbeats that reported nothing new and were answered from memory",
        );
        let devices_online = Gauge::default();
        registry.register(
            "flotta_edge_devices_online",
            "Devices whose last heartbeat is within the allowed number of periods",
            devices_online.clone(),
        );
        let devices_offline = Gauge::default();
        registry.register(
            "flotta_edge_devices_offline",
            "Devices that missed more than the allowed number of heartbeat periods",
            devices_offline.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "flotta_edge_requests",
            "Device API requests by operation and HTTP status code",
            requests.clone(),
        );
        let request_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "flotta_edge_request_duration_seconds",
            "Device API request latency by operation, in seconds",
            request_seconds.clone(),
        );
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "flotta_edge_store_writes",
            "Store writes made by the device backend, by reason",
            writes.clone(),
        );
        let store_writes =
            WriteReason::ALL.map(|reason| writes.get_or_create_owned(&WriteLabels { reason }));
        EdgeMetrics {
            registry,
            successful_registration,
            failed_registration,
            unregistration,
            heartbeat,
            failed_authentication,
            invalid_owner,
            devices_online,
            devices_offline,
            configuration_renders,
            configuration_cache_hits,
            heartbeats_unchanged,
            requests,
            request_seconds,
            store_writes,
            request_counts: Default::default(),
        }
    }

    /// Records one device request: its operation, HTTP status and how long it took.
    pub fn observe_request(&self, operation: Operation, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                operation,
                code: status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
        self.request_counts[operation as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one store write made for `reason`.
    pub fn store_write(&self, reason: WriteReason) {
        self.store_writes[reason.index()].inc();
    }

    /// Store writes made so far, all reasons together.
    pub fn store_writes(&self) -> u64 {
        self.store_writes.iter().map(Counter::get).sum()
    }

    /// Store writes made so far for `reason`.
    pub fn store_writes_for(&self, reason: WriteReason) -> u64 {
        self.store_writes[reason.index()].get()
    }

    /// Requests recorded so far for `operation`, all status codes together.
    pub fn requests(&self, operation: Operation) -> u64 {
        self.request_counts[operation as usize].load(Ordering::Relaxed)
    }

    /// Every metric in the Prometheus text format (0.0.4), without an EOF marker, ready to
    /// be appended to another exposition.
    pub fn encode(&self) -> String {
        let mut open_metrics = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut open_metrics, &self.registry)
            .is_err()
        {
            return String::new();
        }
        to_prometheus_text(&open_metrics)
    }
}

/// Rewrites OpenMetrics text as Prometheus 0.0.4 text: a counter family `x` has samples
/// `x_total`, so its HELP and TYPE lines are renamed to `x_total`; UNIT and EOF lines go.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_prometheus_text_with_flotta_names() {
        let metrics = EdgeMetrics::new();
        metrics.heartbeat.inc();
        metrics.store_write(WriteReason::Heartbeat);
        metrics.store_write(WriteReason::Liveness);
        metrics.observe_request(Operation::Heartbeat, 200, Duration::from_millis(2));
        let text = metrics.encode();
        assert!(text.contains("# TYPE flotta_api_edge_devices_heartbeat_total counter\n"));
        assert!(text.contains("\nflotta_api_edge_devices_heartbeat_total 1\n"));
        assert!(text.contains("flotta_edge_store_writes_total{reason=\"Heartbeat\"} 1\n"));
        assert!(
            text.contains("flotta_edge_requests_total{operation=\"Heartbeat\",code=\"200\"} 1\n")
        );
        assert!(text.contains(
            "flotta_edge_request_duration_seconds_bucket{le=\"0.0025\",operation=\"Heartbeat\"} 1\n"
        ));
        assert!(!text.contains("# EOF"));
        assert_eq!(metrics.store_writes(), 2);
        assert_eq!(metrics.requests(Operation::Heartbeat), 1);
        assert_eq!(metrics.requests(Operation::Configuration), 0);
    }
}
