//! Command-line flags of `bench-api`, parsed by hand (`--flag value` or `--flag=value`).
//!
//! Limits: no short flags and no flag clustering; every flag but `--keep-data` and
//! `--help` takes exactly one value.

use std::path::PathBuf;

/// Why the command line could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// A flag this program does not know.
    #[error("unknown flag {0:?} (see --help)")]
    UnknownFlag(String),
    /// A flag that needs a value came last.
    #[error("flag {0} needs a value")]
    MissingValue(String),
    /// A value that does not parse.
    #[error("invalid value {value:?} for {flag}: {reason}")]
    InvalidValue {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// `--server-bin` was not given.
    #[error("--server-bin PATH is required (see --help)")]
    NoServerBin,
}

/// The store backend the server is started with (its `--store` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChoice {
    /// The durable redb file store.
    Embedded,
    /// The in-memory store.
    Memory,
    /// The etcd store, on a single-member etcd the benchmark starts itself.
    Etcd,
}

impl StoreChoice {
    /// The value of the server's `--store` flag.
    pub fn as_flag(self) -> &'static str {
        match self {
            StoreChoice::Embedded => "embedded",
            StoreChoice::Memory => "memory",
            StoreChoice::Etcd => "etcd",
        }
    }
}

/// Everything the benchmark can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The `flotta-apiserver` binary to start.
    pub server_bin: PathBuf,
    /// Where the temporary data directory is created; `None` means the `target/`
    /// directory the server binary was built into (a real disk, so fsync costs what it
    /// costs in production).
    pub data_root: Option<PathBuf>,
    /// Keep the data directory after the run instead of deleting it.
    pub keep_data: bool,
    /// The server's store backend.
    pub store: StoreChoice,
    /// How many EdgeDevices to create.
    pub devices: usize,
    /// How many concurrent creating clients (one HTTP/1.1 connection each).
    pub clients: usize,
    /// How many concurrent watch streams.
    pub watchers: usize,
    /// How many measured full-list runs per representation.
    pub list_runs: usize,
    /// How many measured first-page runs.
    pub page_runs: usize,
    /// The page size of the first-page benchmark.
    pub page_size: usize,
    /// How many sequential updates the watch benchmark sends.
    pub updates: usize,
    /// The namespace the devices are created in.
    pub namespace: String,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the benchmark.
    Run(Options),
    /// Print the usage text.
    Help,
}

/// The usage text printed by `--help`.
pub const USAGE: &str = "\
usage: bench-api --server-bin PATH [flags]

Starts flotta-apiserver on a temporary data directory, measures creates, lists,
paging, watch fan-out and memory, prints the figures against their targets, and
stops the server. With --store etcd it first starts etcd (the `etcd` on PATH,
single member, plain HTTP on 127.0.0.1, etcd's default settings) with its data
directory under the data root, points the server at it, reports etcd's memory,
CPU and data size too, and stops etcd at the end.

flags:
  --server-bin PATH   flotta-apiserver binary (required)
  --data-root DIR     where the temporary data directory goes
                      (default: the target/ directory holding the server binary)
  --keep-data         do not delete the server's data directory afterwards
                      (etcd's is always deleted)
  --store KIND        embedded (default), memory or etcd
  --devices N         EdgeDevices to create (default 10000)
  --clients N         concurrent creating clients (default 16)
  --watchers N        concurrent watch streams (default 100)
  --list-runs N       measured full-list runs per representation (default 5)
  --page-runs N       measured first-page runs (default 20)
  --page-size N       page size of the first-page run (default 500)
  --updates N         sequential updates in the watch run (default 50)
  --namespace NS      namespace of the devices (default bench)
  --help              this text
";

fn positive(flag: &str, value: &str) -> Result<usize, ArgsError> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ArgsError::InvalidValue {
            flag: flag.to_owned(),
            value: value.to_owned(),
            reason: "expected a positive integer",
        }),
    }
}

/// Parses the arguments after the program name.
pub fn parse<I>(args: I) -> Result<Command, ArgsError>
where
    I: IntoIterator<Item = String>,
{
    let mut server_bin = None;
    let mut opts = Options {
        server_bin: PathBuf::new(),
        data_root: None,
        keep_data: false,
        store: StoreChoice::Embedded,
        devices: 10_000,
        clients: 16,
        watchers: 100,
        list_runs: 5,
        page_runs: 20,
        page_size: 500,
        updates: 50,
        namespace: "bench".to_owned(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--keep-data" => {
                opts.keep_data = true;
                continue;
            }
            _ => {}
        }
        let known = [
            "--server-bin",
            "--data-root",
            "--store",
            "--devices",
            "--clients",
            "--watchers",
            "--list-runs",
            "--page-runs",
            "--page-size",
            "--updates",
            "--namespace",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(ArgsError::UnknownFlag(arg));
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| ArgsError::MissingValue(flag.clone()))?,
        };
        match flag.as_str() {
            "--server-bin" => server_bin = Some(PathBuf::from(value)),
            "--data-root" => opts.data_root = Some(PathBuf::from(value)),
            "--store" => {
                opts.store = match value.as_str() {
                    "embedded" => StoreChoice::Embedded,
                    "memory" => StoreChoice::Memory,
                    "etcd" => StoreChoice::Etcd,
                    _ => {
                        return Err(ArgsError::InvalidValue {
                            flag,
                            value,
                            reason: "expected `embedded`, `memory` or `etcd`",
                        });
                    }
                }
            }
            "--devices" => opts.devices = positive(&flag, &value)?,
            "--clients" => opts.clients = positive(&flag, &value)?,
            "--watchers" => opts.watchers = positive(&flag, &value)?,
            "--list-runs" => opts.list_runs = positive(&flag, &value)?,
            "--page-runs" => opts.page_runs = positive(&flag, &value)?,
            "--page-size" => opts.page_size = positive(&flag, &value)?,
            "--updates" => opts.updates = positive(&flag, &value)?,
            // The only flag left in `known`.
            _ => opts.namespace = value,
        }
    }
    opts.server_bin = server_bin.ok_or(ArgsError::NoServerBin)?;
    Ok(Command::Run(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, ArgsError> {
        match parse(args.iter().map(|a| (*a).to_owned()))? {
            Command::Run(opts) => Ok(opts),
            Command::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn defaults_match_the_issue_targets() {
        let opts = run(&["--server-bin", "/x/apiserver"]).unwrap();
        assert_eq!(opts.server_bin, PathBuf::from("/x/apiserver"));
        assert_eq!(opts.devices, 10_000);
        assert_eq!(opts.clients, 16);
        assert_eq!(opts.watchers, 100);
        assert_eq!(opts.store, StoreChoice::Embedded);
        assert_eq!(opts.page_size, 500);
        assert!(!opts.keep_data);
    }

    #[test]
    fn both_value_forms_and_switches() {
        let opts = run(&[
            "--devices=200",
            "--clients",
            "4",
            "--store",
            "memory",
            "--keep-data",
            "--server-bin=/s",
            "--namespace",
            "ns1",
        ])
        .unwrap();
        assert_eq!(opts.devices, 200);
        assert_eq!(opts.clients, 4);
        assert_eq!(opts.store, StoreChoice::Memory);
        assert!(opts.keep_data);
        assert_eq!(opts.namespace, "ns1");
    }

    #[test]
    fn every_store_kind_round_trips_to_the_server_flag() {
        for kind in ["embedded", "memory", "etcd"] {
            let opts = run(&["--server-bin", "/s", "--store", kind]).unwrap();
            assert_eq!(opts.store.as_flag(), kind);
        }
        assert_eq!(
            run(&["--server-bin", "/s", "--store=etcd"]).unwrap().store,
            StoreChoice::Etcd
        );
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(matches!(
            run(&["--devices", "5"]),
            Err(ArgsError::NoServerBin)
        ));
        assert!(matches!(
            run(&["--server-bin", "/s", "--devices", "0"]),
            Err(ArgsError::InvalidValue { .. })
        ));
        assert!(matches!(
            run(&["--server-bin", "/s", "--store", "redis"]),
            Err(ArgsError::InvalidValue { .. })
        ));
        assert!(matches!(
            run(&["--server-bin", "/s", "--clients"]),
            Err(ArgsError::MissingValue(_))
        ));
        assert!(matches!(
            run(&["--server-bin", "/s", "--fast"]),
            Err(ArgsError::UnknownFlag(_))
        ));
        assert_eq!(
            parse(["--help".to_owned()]).unwrap(),
            Command::Help,
            "--help wins"
        );
    }
}
