//! One benchmark run: start the server, create the devices, list them, watch one of them
//! being updated, read the server's memory, stop the server.
//!
//! Progress goes to stderr so that stdout holds only the results. Limits: the phases run
//! in a fixed order on one server, so later phases see the state earlier ones left (10,000
//! devices, an open connection or two, the store's change log).

use std::path::PathBuf;

use crate::args::Options;
use crate::client::{ApiError, Endpoint};
use crate::report::Figures;
use crate::server::{Server, ServerError};
use crate::{create, fixture, list, watch};

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The server could not be started or read.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A phase failed.
    #[error("{phase}: {source}")]
    Phase {
        /// The phase.
        phase: &'static str,
        /// The cause.
        #[source]
        source: ApiError,
    },
}

fn phase(phase: &'static str) -> impl FnOnce(ApiError) -> SuiteError {
    move |source| SuiteError::Phase { phase, source }
}

/// The data root to use: the option, or the `target/` directory two levels above the
/// server binary (`target/release/flotta-apiserver`), or the current directory.
pub fn data_root(opts: &Options) -> PathBuf {
    if let Some(root) = &opts.data_root {
        return root.clone();
    }
    let bin = std::fs::canonicalize(&opts.server_bin).unwrap_or_else(|_| opts.server_bin.clone());
    bin.parent()
        .and_then(|profile| profile.parent())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Runs every benchmark once and returns the figures.
pub async fn run(opts: &Options) -> Result<Figures, SuiteError> {
    let root = data_root(opts);
    let server = Server::start(&opts.server_bin, &root, opts.store, opts.keep_data).await?;
    eprintln!(
        "server pid {} on port {}, store {}, data dir {}",
        server.pid(),
        server.port(),
        opts.store.as_flag(),
        server.data_dir().display()
    );
    let result = phases(opts, &server).await;
    if let Some(dir) = server.kept_dir() {
        eprintln!("data directory kept: {}", dir.display());
    }
    server.stop().await;
    result
}

async fn phases(opts: &Options, server: &Server) -> Result<Figures, SuiteError> {
    let creds = server.credentials()?;
    let endpoint = Endpoint::new(server.port(), &opts.namespace);

    eprintln!(
        "creating {} EdgeDevices with {} clients ...",
        opts.devices, opts.clients
    );
    let cpu = || server.cpu_time();
    let create = create::run(&creds, &endpoint, opts.devices, opts.clients, &cpu)
        .await
        .map_err(phase("create"))?;
    let memory_after_creates = server.memory()?;

    eprintln!(
        "listing: {} x JSON, {} x Table, {} x first page of {} ...",
        opts.list_runs, opts.list_runs, opts.page_runs, opts.page_size
    );
    let plan = list::ListPlan {
        devices: opts.devices,
        list_runs: opts.list_runs,
        page_size: opts.page_size,
        page_runs: opts.page_runs,
    };
    let list = list::run(&creds, &endpoint, plan, &cpu)
        .await
        .map_err(phase("list"))?;
    let memory_after_lists = server.memory()?;

    eprintln!(
        "watching: {} watchers, {} updates ...",
        opts.watchers, opts.updates
    );
    let watch = watch::run(
        &creds,
        &endpoint,
        opts.watchers,
        opts.updates,
        &list.resource_version,
        &fixture::device_name(0),
    )
    .await
    .map_err(phase("watch"))?;
    let memory_after_watch = server.memory()?;

    Ok(Figures {
        create,
        memory_after_creates,
        list,
        memory_after_lists,
        watch,
        memory_after_watch,
        data_bytes: server.data_size(),
    })
}
