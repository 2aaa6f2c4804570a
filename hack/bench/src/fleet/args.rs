//! Command-line flags of `bench-devices`.
//!
//! Limits: the run time applies to each measured run separately (three per fleet size),
//! not to the whole benchmark, which also enrols the fleet and waits for placement.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::args::StoreChoice;

/// Run time of each measured run unless told otherwise.
pub const DEFAULT_RUN_SECONDS: u64 = 60;
/// Run time of each measured run with `--quick`.
pub const QUICK_RUN_SECONDS: u64 = 10;

/// The flags of `bench-devices`.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "bench-devices",
    about = "Simulated devices against a flotta-apiserver it starts itself: enrolment and \
             registration, identical and status-changing heartbeats, and unchanged \
             configuration polls, against the issue's targets."
)]
pub struct Options {
    /// The `flotta-apiserver` binary to start.
    #[arg(long)]
    pub server_bin: PathBuf,

    /// Where the temporary data directory goes (default: the directory holding the
    /// server binary's `target/`, a real disk so that fsync costs what it costs).
    #[arg(long)]
    pub data_root: Option<PathBuf>,

    /// Keep the data directories afterwards.
    #[arg(long)]
    pub keep_data: bool,

    /// The server's store: `embedded` (durable, the default) or `memory`.
    #[arg(long, default_value = "embedded", value_parser = parse_store)]
    pub store: StoreChoice,

    /// Fleet sizes, comma separated; each gets a fresh server.
    #[arg(long, value_delimiter = ',', default_values_t = [200_usize, 1000])]
    pub devices: Vec<usize>,

    /// Requests in flight at any time (each on its own device's connection).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub in_flight: u16,

    /// Seconds of each measured run (default 60; 10 with `--quick`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: Option<u64>,

    /// Shorter runs (10 s each) for a first look.
    #[arg(long)]
    pub quick: bool,
}

fn parse_store(value: &str) -> Result<StoreChoice, String> {
    match value {
        "embedded" => Ok(StoreChoice::Embedded),
        "memory" => Ok(StoreChoice::Memory),
        other => Err(format!("expected `embedded` or `memory`, not {other:?}")),
    }
}

impl Options {
    /// How long each measured run lasts.
    pub fn run_time(&self) -> Duration {
        let seconds = match (self.duration, self.quick) {
            (Some(seconds), _) => seconds,
            (None, true) => QUICK_RUN_SECONDS,
            (None, false) => DEFAULT_RUN_SECONDS,
        };
        Duration::from_secs(seconds)
    }

    /// Requests in flight, as a count.
    pub fn in_flight(&self) -> usize {
        usize::from(self.in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("bench-devices").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_the_issue_method() {
        let opts = parse(&["--server-bin", "/s"]).unwrap();
        assert_eq!(opts.devices, [200, 1000]);
        assert_eq!(opts.in_flight(), 16);
        assert_eq!(opts.run_time(), Duration::from_secs(60));
        assert_eq!(opts.store, StoreChoice::Embedded);
    }

    #[test]
    fn quick_and_duration() {
        let quick = parse(&["--server-bin", "/s", "--quick"]).unwrap();
        assert_eq!(quick.run_time(), Duration::from_secs(10));
        let set = parse(&["--server-bin=/s", "--quick", "--duration", "3"]).unwrap();
        assert_eq!(set.run_time(), Duration::from_secs(3), "--duration wins");
        let sizes = parse(&["--server-bin=/s", "--devices", "50,70", "--store=memory"]).unwrap();
        assert_eq!(sizes.devices, [50, 70]);
        assert_eq!(sizes.store, StoreChoice::Memory);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&[]).is_err(), "--server-bin is required");
        assert!(parse(&["--server-bin=/s", "--in-flight", "0"]).is_err());
        assert!(parse(&["--server-bin=/s", "--duration", "0"]).is_err());
        assert!(parse(&["--server-bin=/s", "--store", "etcd"]).is_err());
    }
}
