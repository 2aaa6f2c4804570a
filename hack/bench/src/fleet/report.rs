//! The device benchmark's figures against the targets and the peer: the original
//! Flotta Edge API (Go) on a real kube-apiserver + etcd, measured on this machine class
//! with the same method (200 and 1,000 devices, 16 in flight, 60 s runs).
//!
//! Limits: targets and peer figures are constants of this file; the peer has figures for
//! 200 devices and, for identical heartbeats only, for 1,000. The peer's configuration
//! polls were full answers (Flotta has no `ETag`), ours are 304s.

use std::fmt::Write as _;
use std::time::Duration;

use super::load::Load;
use super::{Measured, SizeFigures};
use crate::report::{Row, Verdict};
use crate::stats::{Samples, millis};

/// Identical heartbeats per second the issue asks for (16 in flight).
pub const IDENTICAL_RATE_TARGET: f64 = 16_000.0;
/// Their p99 limit.
pub const IDENTICAL_P99_TARGET: Duration = Duration::from_millis(5);
/// Status-changing heartbeats per second the issue asks for.
pub const CHANGE_RATE_TARGET: f64 = 2_000.0;
/// Unchanged-configuration polls per second the issue asks for.
pub const POLL_RATE_TARGET: f64 = 20_000.0;
/// Enrolments + registrations per second the issue asks for.
pub const ENROL_RATE_TARGET: f64 = 100.0;
/// How far the larger fleet may fall behind the smaller one.
pub const SCALING_TOLERANCE: f64 = 0.10;

/// The peer's identical heartbeats per second with 200 devices.
pub const PEER_IDENTICAL_200: f64 = 8_162.0;
/// The peer's identical heartbeats per second with 1,000 devices.
pub const PEER_IDENTICAL_1000: f64 = 7_495.0;
/// The peer's identical heartbeat p99.
pub const PEER_IDENTICAL_P99: Duration = Duration::from_micros(6_500);
/// The peer's configuration polls per second (full configuration every time).
pub const PEER_POLLS: f64 = 10_913.0;
/// The peer's configuration poll p99.
pub const PEER_POLL_P99: Duration = Duration::from_micros(4_800);
/// The peer's status-changing heartbeats per second.
pub const PEER_CHANGES: f64 = 5.0;
/// The peer's status-changing heartbeat p99.
pub const PEER_CHANGE_P99: Duration = Duration::from_millis(3_200);
/// The peer's registrations per second.
pub const PEER_ENROL: f64 = 2.5;

const MIB: f64 = 1024.0 * 1024.0;

fn verdict(pass: bool) -> Verdict {
    if pass { Verdict::Pass } else { Verdict::Miss }
}

fn row(benchmark: String, target: String, peer: String, ours: String, verdict: Verdict) -> Row {
    Row {
        benchmark,
        target,
        peer,
        ours,
        verdict,
    }
}

fn per_second(rate: f64) -> String {
    format!("{rate:.0}/s")
}

fn opt_millis(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), millis)
}

fn p50_p99(samples: &Samples) -> String {
    format!(
        "p50 {} / p99 {}",
        opt_millis(samples.median()),
        opt_millis(samples.percentile(99.0))
    )
}

/// Failures and unexpected answers of a run, empty when clean.
fn problems(m: &Measured) -> String {
    if m.run.clean() {
        return String::new();
    }
    let mut text = String::from(" (");
    if m.run.failed > 0 {
        let _ = write!(text, "{} failed", m.run.failed);
    }
    for (status, count) in &m.run.unexpected {
        if text.len() > 2 {
            text.push_str(", ");
        }
        let _ = write!(text, "{count}× HTTP {status}");
    }
    text.push(')');
    text
}

fn load_name(load: Load) -> &'static str {
    match load {
        Load::IdenticalHeartbeats => "identical heartbeats",
        Load::UnchangedPolls => "unchanged-config polls",
        Load::StatusChanges => "status-changing heartbeats",
    }
}

/// One line of progress for stderr after a run.
pub fn progress_line(m: &Measured) -> String {
    format!(
        "{}: {:.0}/s, {}, store revision +{:.0}, backend writes +{:.0} (checkpoints +{:.0}){}",
        load_name(m.load),
        m.run.rate(),
        p50_p99(&m.run.latency),
        m.writes.revision,
        m.writes.backend,
        m.writes.checkpoint,
        problems(m)
    )
}

fn cpu(cores: Option<f64>) -> String {
    cores.map_or_else(|| "?".to_owned(), |c| format!("{:.0}%", c * 100.0))
}

/// Server CPU time per expected answer, in microseconds: a figure that other load on a
/// shared machine disturbs less than the throughput.
fn server_micros_per_request(m: &Measured) -> Option<f64> {
    let ok = m.run.ok as f64;
    (ok > 0.0).then(|| {
        m.server_cores
            .map(|c| c * m.run.elapsed.as_secs_f64() * 1e6 / ok)
    })?
}

fn resources(m: &Measured) -> String {
    format!(
        "server CPU {} ({} µs/request) / generator CPU {} / server RSS {} / load {}",
        cpu(m.server_cores),
        server_micros_per_request(m).map_or_else(|| "?".to_owned(), |us| format!("{us:.0}")),
        cpu(m.generator_cores),
        m.memory.map_or_else(
            || "?".to_owned(),
            |mem| format!("{:.0} MiB", mem.rss as f64 / MIB)
        ),
        m.load_average
    )
}

impl SizeFigures {
    /// The rows of this fleet size: the targets, then context.
    pub fn rows(&self) -> Vec<Row> {
        let n = self.devices;
        let id = &self.identical;
        let polls = &self.polls;
        let changes = &self.changes;
        let peer_identical = match n {
            200 => per_second(PEER_IDENTICAL_200),
            1000 => per_second(PEER_IDENTICAL_1000),
            _ => "-".to_owned(),
        };
        let p99 = id.run.latency.percentile(99.0);
        let stored_each = changes.writes.heartbeat >= changes.run.ok as f64;
        vec![
            row(
                format!("enrolments + registrations ({n} devices)"),
                format!(">= {ENROL_RATE_TARGET:.0}/s"),
                format!("{PEER_ENROL}/s"),
                format!(
                    "{} ({} per device)",
                    per_second(self.enrolment.rate),
                    p50_p99(&self.enrolment.latency)
                ),
                verdict(self.enrolment.rate >= ENROL_RATE_TARGET),
            ),
            row(
                format!("identical heartbeats ({n})"),
                format!(">= {IDENTICAL_RATE_TARGET:.0}/s"),
                peer_identical,
                format!("{}{}", per_second(id.run.rate()), problems(id)),
                verdict(id.run.clean() && id.run.rate() >= IDENTICAL_RATE_TARGET),
            ),
            row(
                format!("identical heartbeat latency ({n})"),
                format!("p99 <= {}", millis(IDENTICAL_P99_TARGET)),
                if n == 200 {
                    format!("p99 {}", millis(PEER_IDENTICAL_P99))
                } else {
                    "-".to_owned()
                },
                p50_p99(&id.run.latency),
                verdict(p99.is_some_and(|p| p <= IDENTICAL_P99_TARGET)),
            ),
            row(
                format!("store writes in identical run ({n})"),
                "0 (lastSeen checkpoints aside)".to_owned(),
                "-".to_owned(),
                format!(
                    "{:.0} (store revision +{:.0}; lastSeen checkpoints +{:.0})",
                    id.writes.backend - id.writes.checkpoint,
                    id.writes.revision - id.writes.checkpoint,
                    id.writes.checkpoint
                ),
                verdict(id.writes.beyond_checkpoints() == (0.0, 0.0)),
            ),
            row(
                format!("status-changing heartbeats ({n})"),
                format!(">= {CHANGE_RATE_TARGET:.0}/s, each stored"),
                format!(
                    "{} (p99 {})",
                    per_second(PEER_CHANGES),
                    millis(PEER_CHANGE_P99)
                ),
                format!(
                    "{} ({}; {:.0} status writes){}",
                    per_second(changes.run.rate()),
                    p50_p99(&changes.run.latency),
                    changes.writes.heartbeat,
                    problems(changes)
                ),
                verdict(
                    changes.run.clean() && stored_each && changes.run.rate() >= CHANGE_RATE_TARGET,
                ),
            ),
            row(
                format!("unchanged-config polls, 304 ({n})"),
                format!(">= {POLL_RATE_TARGET:.0}/s"),
                format!(
                    "{} full (p99 {})",
                    per_second(PEER_POLLS),
                    millis(PEER_POLL_P99)
                ),
                format!(
                    "{} ({}){}",
                    per_second(polls.run.rate()),
                    p50_p99(&polls.run.latency),
                    problems(polls)
                ),
                verdict(polls.run.clean() && polls.run.rate() >= POLL_RATE_TARGET),
            ),
            row(
                format!("resources, identical heartbeats ({n})"),
                String::new(),
                String::new(),
                resources(id),
                Verdict::Info,
            ),
            row(
                format!("resources, polls ({n})"),
                String::new(),
                String::new(),
                resources(polls),
                Verdict::Info,
            ),
            row(
                format!("resources, status changes ({n})"),
                String::new(),
                String::new(),
                resources(changes),
                Verdict::Info,
            ),
            row(
                format!("reconnections during runs ({n})"),
                String::new(),
                String::new(),
                format!(
                    "{} / {} / {}",
                    id.reconnections, polls.reconnections, changes.reconnections
                ),
                Verdict::Info,
            ),
        ]
    }
}

fn within(larger: f64, smaller: f64) -> bool {
    smaller > 0.0 && larger >= smaller * (1.0 - SCALING_TOLERANCE)
}

/// Rows comparing the largest fleet with the smallest: each throughput within 10%, and
/// the identical-heartbeat p99 within 10% or within its target.
pub fn scaling_rows(figures: &[SizeFigures]) -> Vec<Row> {
    let (Some(small), Some(large)) = (
        figures.iter().min_by_key(|f| f.devices),
        figures.iter().max_by_key(|f| f.devices),
    ) else {
        return Vec::new();
    };
    if small.devices == large.devices {
        return Vec::new();
    }
    let label = |what: &str| format!("{what}: {} vs {} devices", large.devices, small.devices);
    let throughput = |what: &str, large_rate: f64, small_rate: f64| {
        row(
            label(what),
            format!("within {:.0}%", SCALING_TOLERANCE * 100.0),
            "-".to_owned(),
            format!(
                "{} vs {} ({:+.1}%)",
                per_second(large_rate),
                per_second(small_rate),
                if small_rate > 0.0 {
                    (large_rate / small_rate - 1.0) * 100.0
                } else {
                    0.0
                }
            ),
            verdict(within(large_rate, small_rate)),
        )
    };
    let large_p99 = large.identical.run.latency.percentile(99.0);
    let small_p99 = small.identical.run.latency.percentile(99.0);
    let p99_ok = match (large_p99, small_p99) {
        (Some(l), Some(s)) => l <= IDENTICAL_P99_TARGET || l.as_secs_f64() <= s.as_secs_f64() * 1.1,
        _ => false,
    };
    vec![
        throughput(
            "enrolments + registrations",
            large.enrolment.rate,
            small.enrolment.rate,
        ),
        throughput(
            "identical heartbeats",
            large.identical.run.rate(),
            small.identical.run.rate(),
        ),
        throughput(
            "status-changing heartbeats",
            large.changes.run.rate(),
            small.changes.run.rate(),
        ),
        throughput(
            "unchanged-config polls",
            large.polls.run.rate(),
            small.polls.run.rate(),
        ),
        row(
            label("identical heartbeat p99"),
            format!("within 10% or <= {}", millis(IDENTICAL_P99_TARGET)),
            "-".to_owned(),
            format!("{} vs {}", opt_millis(large_p99), opt_millis(small_p99)),
            verdict(p99_ok),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_tolerance() {
        assert!(within(9_000.0, 10_000.0));
        assert!(within(12_000.0, 10_000.0));
        assert!(!within(8_900.0, 10_000.0));
        assert!(!within(1.0, 0.0));
    }

    #[test]
    fn cpu_per_request() {
        let measured = |ok: u64, cores: Option<f64>| Measured {
            load: Load::IdenticalHeartbeats,
            run: crate::fleet::load::RunResult {
                ok,
                elapsed: Duration::from_secs(10),
                ..Default::default()
            },
            writes: crate::fleet::Writes::default(),
            server_cores: cores,
            generator_cores: None,
            memory: None,
            load_average: String::new(),
            reconnections: 0,
        };
        // Half a core for 10 s over 100,000 answers: 50 µs each.
        let m = measured(100_000, Some(0.5));
        assert_eq!(server_micros_per_request(&m), Some(50.0));
        assert!(
            resources(&m).contains("(50 µs/request)"),
            "{}",
            resources(&m)
        );
        assert_eq!(server_micros_per_request(&measured(0, Some(0.5))), None);
        assert_eq!(server_micros_per_request(&measured(10, None)), None);
    }

    #[test]
    fn rates_print_whole() {
        assert_eq!(per_second(16_432.4), "16432/s");
        assert_eq!(opt_millis(None), "-");
    }
}
