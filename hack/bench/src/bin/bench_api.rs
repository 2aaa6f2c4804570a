//! `bench-api`: benchmarks a `flotta-apiserver` it starts itself (see `--help` and
//! `docs/benchmarks.md`). Results go to stdout, progress to stderr.

use std::process::ExitCode;

use flotta_bench::args::{self, Command, USAGE};
use flotta_bench::{report, suite};

fn main() -> ExitCode {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench-api: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-api: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(suite::run(&opts)) {
        Ok(figures) => {
            println!(
                "flotta-apiserver, store {}: {} devices, {} create clients, {} watchers x {} updates",
                opts.store.as_flag(),
                opts.devices,
                opts.clients,
                opts.watchers,
                opts.updates
            );
            println!();
            let rows = figures.rows();
            print!("{}", report::table(&rows));
            let (passed, total) = report::score(&rows);
            println!();
            println!("{passed} of {total} targets met");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-api: {e}");
            ExitCode::FAILURE
        }
    }
}
