//! The `flotta-apiserver` binary: parses flags, sets up logging and runs
//! [`flotta_apiserver::server::run`]. Everything else lives in the library.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::Parser as _;
use flotta_apiserver::config::{LogFormat, Options};
use tracing_subscriber::EnvFilter;

// Lists build and free a JSON tree per object; glibc's allocator spent about half of a
// 10,000-object list in malloc/free and kept the freed memory (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Only ring is compiled in; installing it as the process default keeps any
    // `builder()` call in a dependency from having to pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let opts = Options::parse();
    let filter = EnvFilter::try_new(&opts.log_level)
        .with_context(|| format!("invalid log filter {:?}", opts.log_level))?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match opts.log_format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }

    flotta_apiserver::server::run(opts)
        .await
        .context("flotta-apiserver failed")
}
