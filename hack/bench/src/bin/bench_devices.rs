//! `bench-devices`: simulated devices against a `flotta-apiserver` it starts itself (see
//! `--help`, [`flotta_bench::fleet`] and `docs/benchmarks.md`). Results go to stdout,
//! progress to stderr.

use std::process::ExitCode;

use clap::Parser as _;
use flotta_bench::fleet::{self, args::Options, report::scaling_rows};
use flotta_bench::report;

fn main() -> ExitCode {
    let opts = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-devices: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let figures = match runtime.block_on(fleet::run(&opts)) {
        Ok(figures) => figures,
        Err(e) => {
            eprintln!("bench-devices: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "flotta-apiserver, store {}: fleets of {:?} devices, {} requests in flight, {} s per run",
        opts.store.as_flag(),
        opts.devices,
        opts.in_flight,
        opts.run_time().as_secs()
    );
    println!();
    let mut rows = Vec::new();
    for size in &figures {
        rows.extend(size.rows());
    }
    rows.extend(scaling_rows(&figures));
    print!("{}", report::table(&rows));
    let (passed, total) = report::score(&rows);
    println!();
    println!("{passed} of {total} targets met");
    ExitCode::SUCCESS
}
