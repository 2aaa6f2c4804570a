//! The figures of a run against the targets and the peer's figures (a real
//! kube-apiserver v1.24 + etcd 3.4 serving Flotta's CRDs on the same machine class),
//! printed as a pipe table that reads in a terminal and pastes into Markdown.
//!
//! Limits: the targets and peer figures are constants of this file; they describe 10,000
//! devices, 16 clients and 100 watchers, and are printed unchanged when a run uses other
//! sizes (the header says which sizes were used). Memory is in MiB (1024 × 1024 bytes).
//! With the etcd store, etcd's own figures follow as context rows; the RSS target is
//! judged on the server alone (the row says so), the sum is shown beside it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::create::CreateResult;
use crate::list::ListResult;
use crate::server::Memory;
use crate::stats::{Samples, millis};
use crate::watch::WatchResult;

/// Creates per second the issue asks for.
pub const CREATE_RATE_TARGET: f64 = 3000.0;
/// The peer's creates per second.
pub const CREATE_RATE_PEER: f64 = 1073.0;
/// Full list (JSON or Table) median limit.
pub const LIST_TARGET: Duration = Duration::from_millis(250);
/// The peer's full JSON list.
pub const LIST_JSON_PEER: Duration = Duration::from_millis(1097);
/// The peer's full Table list.
pub const LIST_TABLE_PEER: Duration = Duration::from_millis(1070);
/// First page median limit.
pub const FIRST_PAGE_TARGET: Duration = Duration::from_millis(15);
/// The peer's first page.
pub const FIRST_PAGE_PEER: Duration = Duration::from_millis(50);
/// Watch delivery p99 limit.
pub const WATCH_P99_TARGET: Duration = Duration::from_millis(50);
/// Server resident memory limit, MiB.
pub const RSS_TARGET_MIB: f64 = 200.0;
/// The peer's resident memory, MiB.
pub const RSS_PEER_MIB: f64 = 689.0;

const MIB: f64 = 1024.0 * 1024.0;

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Meets the target.
    Pass,
    /// Does not.
    Miss,
    /// No target (context only).
    Info,
}

impl Verdict {
    fn of(pass: bool) -> Self {
        if pass { Verdict::Pass } else { Verdict::Miss }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::Info => "",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What was measured.
    pub benchmark: String,
    /// The target.
    pub target: String,
    /// The peer's figure.
    pub peer: String,
    /// Ours.
    pub ours: String,
    /// Against the target.
    pub verdict: Verdict,
}

fn row(benchmark: &str, target: String, peer: String, ours: String, verdict: Verdict) -> Row {
    Row {
        benchmark: benchmark.to_owned(),
        target,
        peer,
        ours,
        verdict,
    }
}

fn opt_millis(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), millis)
}

fn median_max(s: &Samples) -> String {
    format!(
        "median {} / max {}",
        opt_millis(s.median()),
        opt_millis(s.max())
    )
}

fn at_most(s: &Samples, limit: Duration) -> Verdict {
    Verdict::of(s.median().is_some_and(|m| m <= limit))
}

/// What etcd used during a run with `--store etcd` (its process, read from `/proc`).
#[derive(Debug, Clone, Copy)]
pub struct EtcdFigures {
    /// etcd's memory right after the create benchmark.
    pub memory_after_creates: Memory,
    /// etcd's memory right after the list benchmarks.
    pub memory_after_lists: Memory,
    /// etcd's memory after the watch benchmark.
    pub memory_after_watch: Memory,
    /// etcd's CPU time per create (its CPU over the create phase / devices created).
    pub cpu_per_create: Option<Duration>,
    /// etcd's CPU time over the whole list phase (warm-ups included).
    pub list_phase_cpu: Option<Duration>,
    /// Bytes in etcd's directory at the end (data directory, write-ahead log, log file).
    pub data_bytes: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The create benchmark.
    pub create: CreateResult,
    /// Server memory right after the create benchmark.
    pub memory_after_creates: Memory,
    /// The list benchmarks.
    pub list: ListResult,
    /// Server memory right after the list benchmarks.
    pub memory_after_lists: Memory,
    /// The watch benchmark.
    pub watch: WatchResult,
    /// Server memory after the watch benchmark.
    pub memory_after_watch: Memory,
    /// Bytes in the server's data directory at the end.
    pub data_bytes: u64,
    /// etcd's figures, when the store was etcd.
    pub etcd: Option<EtcdFigures>,
}

impl Figures {
    /// The table rows: the targets first, then context figures (etcd's last).
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = self.server_rows();
        if let Some(etcd) = &self.etcd {
            rows.extend(self.etcd_rows(etcd));
        }
        rows
    }

    fn etcd_rows(&self, etcd: &EtcdFigures) -> Vec<Row> {
        let mib = |m: Memory| m.rss as f64 / MIB;
        vec![
            row(
                "etcd RSS after creates / after lists / after watch / peak",
                String::new(),
                String::new(),
                format!(
                    "{:.0} MiB / {:.0} MiB / {:.0} MiB / {:.0} MiB",
                    mib(etcd.memory_after_creates),
                    mib(etcd.memory_after_lists),
                    mib(etcd.memory_after_watch),
                    etcd.memory_after_watch.peak as f64 / MIB
                ),
                Verdict::Info,
            ),
            row(
                "server + etcd RSS after lists",
                String::new(),
                String::new(),
                format!(
                    "{:.0} MiB",
                    mib(self.memory_after_lists) + mib(etcd.memory_after_lists)
                ),
                Verdict::Info,
            ),
            row(
                "etcd CPU per create / over the list phase",
                String::new(),
                String::new(),
                format!(
                    "{} / {}",
                    opt_millis(etcd.cpu_per_create),
                    opt_millis(etcd.list_phase_cpu)
                ),
                Verdict::Info,
            ),
            row(
                "etcd directory size",
                String::new(),
                String::new(),
                format!("{:.1} MiB", etcd.data_bytes as f64 / MIB),
                Verdict::Info,
            ),
        ]
    }

    fn server_rows(&self) -> Vec<Row> {
        let c = &self.create;
        let l = &self.list;
        let w = &self.watch;
        let rss = self.memory_after_lists.rss as f64 / MIB;
        let p99 = w.deliveries.percentile(99.0);
        vec![
            row(
                "creates/s (durable)",
                format!(">= {CREATE_RATE_TARGET:.0}/s"),
                format!("{CREATE_RATE_PEER:.0}/s"),
                format!("{:.0}/s", c.rate()),
                Verdict::of(c.rate() >= CREATE_RATE_TARGET),
            ),
            row(
                "list all, JSON",
                format!("<= {}", millis(LIST_TARGET)),
                millis(LIST_JSON_PEER),
                median_max(&l.json),
                at_most(&l.json, LIST_TARGET),
            ),
            row(
                "list all, Table",
                format!("<= {}", millis(LIST_TARGET)),
                millis(LIST_TABLE_PEER),
                median_max(&l.table),
                at_most(&l.table, LIST_TARGET),
            ),
            row(
                "first page (limit)",
                format!("<= {}", millis(FIRST_PAGE_TARGET)),
                millis(FIRST_PAGE_PEER),
                median_max(&l.first_page),
                at_most(&l.first_page, FIRST_PAGE_TARGET),
            ),
            row(
                "watch delivery p99",
                format!("<= {}", millis(WATCH_P99_TARGET)),
                "-".to_owned(),
                format!(
                    "p50 {} / p99 {}{}",
                    opt_millis(w.deliveries.median()),
                    opt_millis(p99),
                    if w.missing > 0 {
                        format!(" ({} missing)", w.missing)
                    } else {
                        String::new()
                    }
                ),
                Verdict::of(w.missing == 0 && p99.is_some_and(|p| p <= WATCH_P99_TARGET)),
            ),
            row(
                "server RSS after lists",
                format!("<= {RSS_TARGET_MIB:.0} MiB"),
                format!("{RSS_PEER_MIB:.0} MiB"),
                format!("{rss:.0} MiB"),
                Verdict::of(rss <= RSS_TARGET_MIB),
            ),
            row(
                "create latency",
                String::new(),
                String::new(),
                format!(
                    "p50 {} / p99 {} / max {}",
                    opt_millis(c.latency.median()),
                    opt_millis(c.latency.percentile(99.0)),
                    opt_millis(c.latency.max())
                ),
                Verdict::Info,
            ),
            row(
                "server CPU per create / JSON list / Table list / page",
                String::new(),
                String::new(),
                format!(
                    "{} / {} / {} / {}",
                    opt_millis(c.server_cpu),
                    opt_millis(l.json_cpu),
                    opt_millis(l.table_cpu),
                    opt_millis(l.page_cpu)
                ),
                Verdict::Info,
            ),
            row(
                "watched PATCH round trip",
                String::new(),
                String::new(),
                format!(
                    "p50 {} / max {}",
                    opt_millis(w.patch.median()),
                    opt_millis(w.patch.max())
                ),
                Verdict::Info,
            ),
            row(
                "server RSS after creates / after watch / peak",
                String::new(),
                String::new(),
                format!(
                    "{:.0} MiB / {:.0} MiB / {:.0} MiB",
                    self.memory_after_creates.rss as f64 / MIB,
                    self.memory_after_watch.rss as f64 / MIB,
                    self.memory_after_watch.peak as f64 / MIB
                ),
                Verdict::Info,
            ),
            row(
                "body sizes (device / JSON / Table)",
                String::new(),
                String::new(),
                format!(
                    "{} B / {:.1} MiB / {:.1} MiB",
                    c.body_bytes,
                    l.json_bytes as f64 / MIB,
                    l.table_bytes as f64 / MIB
                ),
                Verdict::Info,
            ),
            row(
                "data directory size",
                String::new(),
                String::new(),
                format!("{:.1} MiB", self.data_bytes as f64 / MIB),
                Verdict::Info,
            ),
        ]
    }
}

/// The rows as an aligned pipe table with a header line.
pub fn table(rows: &[Row]) -> String {
    let header = ["benchmark", "target", "peer", "ours", "result"];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.benchmark.as_str(),
                r.target.as_str(),
                r.peer.as_str(),
                r.ours.as_str(),
                r.verdict.label(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &cells {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        out.push('|');
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(out, " {cell:<w$} |");
        }
        out.push('\n');
    };
    line(header);
    let dashes = widths.map(|w| "-".repeat(w));
    line(dashes.each_ref().map(String::as_str));
    for c in cells {
        line(c);
    }
    out
}

/// How many rows with a target pass, out of how many have one.
pub fn score(rows: &[Row]) -> (usize, usize) {
    let judged = rows.iter().filter(|r| r.verdict != Verdict::Info);
    let total = judged.clone().count();
    let passed = judged.filter(|r| r.verdict == Verdict::Pass).count();
    (passed, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Samples {
        Samples::new(v.iter().map(|m| Duration::from_millis(*m)).collect())
    }

    fn figures(create_secs: f64, list_ms: u64, p99_ms: u64, rss_mib: u64) -> Figures {
        let mem = Memory {
            rss: rss_mib * 1024 * 1024,
            peak: rss_mib * 1024 * 1024,
        };
        Figures {
            create: CreateResult {
                created: 10_000,
                elapsed: Duration::from_secs_f64(create_secs),
                latency: ms(&[3, 4, 5]),
                body_bytes: 1100,
                server_cpu: Some(Duration::from_micros(150)),
            },
            list: ListResult {
                json: ms(&[list_ms, list_ms, 2 * list_ms]),
                json_cpu: None,
                json_bytes: 11 << 20,
                table: ms(&[list_ms]),
                table_cpu: None,
                table_bytes: 3 << 20,
                first_page: ms(&[5; 20]),
                page_cpu: None,
                resource_version: "10001".into(),
            },
            memory_after_creates: mem,
            memory_after_lists: mem,
            watch: WatchResult {
                watchers: 100,
                updates: 50,
                deliveries: ms(&[1, 2, p99_ms]),
                missing: 0,
                patch: ms(&[2]),
            },
            memory_after_watch: mem,
            data_bytes: 50 << 20,
            etcd: None,
        }
    }

    #[test]
    fn verdicts_follow_the_targets() {
        let good = figures(2.0, 100, 20, 120).rows();
        assert_eq!(score(&good), (6, 6));
        // 10,000 in 4 s is 2,500/s; a 300 ms median list; 60 ms p99; 250 MiB.
        let bad = figures(4.0, 300, 60, 250).rows();
        assert_eq!(score(&bad), (1, 6), "only the first page passes");
        assert_eq!(bad[0].verdict, Verdict::Miss);
        assert_eq!(bad[0].ours, "2500/s");
        assert_eq!(bad[1].ours, "median 300 ms / max 600 ms");
    }

    #[test]
    fn missing_deliveries_fail_the_watch_row() {
        let mut f = figures(2.0, 100, 20, 120);
        f.watch.missing = 3;
        let rows = f.rows();
        assert_eq!(rows[4].verdict, Verdict::Miss);
        assert!(rows[4].ours.contains("3 missing"));
    }

    #[test]
    fn etcd_rows_follow_and_do_not_change_the_score() {
        let mut f = figures(2.0, 100, 20, 120);
        let server_only = f.rows();
        let mem = |mib: u64| Memory {
            rss: mib << 20,
            peak: (mib + 10) << 20,
        };
        f.etcd = Some(EtcdFigures {
            memory_after_creates: mem(60),
            memory_after_lists: mem(80),
            memory_after_watch: mem(90),
            cpu_per_create: Some(Duration::from_micros(400)),
            list_phase_cpu: Some(Duration::from_millis(1500)),
            data_bytes: 100 << 20,
        });
        let rows = f.rows();
        assert_eq!(rows.len(), server_only.len() + 4);
        assert_eq!(rows[..server_only.len()], server_only[..]);
        assert_eq!(score(&rows), score(&server_only));
        let etcd = &rows[server_only.len()..];
        assert_eq!(etcd[0].ours, "60 MiB / 80 MiB / 90 MiB / 100 MiB");
        assert_eq!(etcd[1].ours, "200 MiB", "120 MiB server + 80 MiB etcd");
        assert_eq!(etcd[2].ours, "0.40 ms / 1500 ms");
        assert_eq!(etcd[3].ours, "100.0 MiB");
    }

    #[test]
    fn table_is_aligned() {
        let text = table(&figures(2.0, 100, 20, 120).rows());
        let widths: Vec<usize> = text.lines().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with("| ---"));
        assert!(text.contains("| PASS"));
    }
}
