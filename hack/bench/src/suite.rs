//! One benchmark run: start the server, create the devices, list them, watch one of them
//! being updated, read the server's memory, stop the server.
//!
//! With `--store etcd` a single-member etcd is started first
//! ([`flotta_e2e::etcd::EtcdServer::start_in`]: plain HTTP on 127.0.0.1, data directory
//! `flotta-etcd-XXXX/` under the data root, so on the same real disk as the embedded store's
//! file, etcd's default settings), the server gets `--store etcd --etcd-servers <url>`, etcd's
//! memory and CPU are read beside the server's, and etcd is killed and its directory removed
//! after the server is stopped.
//!
//! Progress goes to stderr so that stdout holds only the results. Limits: the phases run
//! in a fixed order on one server, so later phases see the state earlier ones left (10,000
//! devices, an open connection or two, the store's change log); etcd's directory is removed
//! even with `--keep-data`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flotta_e2e::etcd::EtcdServer;

use crate::args::{Options, StoreChoice};
use crate::client::{ApiError, Endpoint};
use crate::report::{EtcdFigures, Figures};
use crate::server::{self, Memory, Server, ServerError};
use crate::{create, fixture, list, watch};

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The server could not be started or read.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// etcd could not be started.
    #[error("starting etcd: {0:#}")]
    Etcd(anyhow::Error),
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

/// Starts etcd under `root` (blocking work, off the async workers).
async fn start_etcd(root: &Path) -> Result<EtcdServer, SuiteError> {
    std::fs::create_dir_all(root).map_err(|source| {
        SuiteError::Server(ServerError::Prepare {
            path: root.to_owned(),
            source,
        })
    })?;
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || EtcdServer::start_in(&root))
        .await
        .map_err(|e| SuiteError::Etcd(e.into()))?
        .map_err(SuiteError::Etcd)
}

/// Runs every benchmark once and returns the figures.
pub async fn run(opts: &Options) -> Result<Figures, SuiteError> {
    let root = data_root(opts);
    let etcd = match opts.store {
        StoreChoice::Etcd => Some(start_etcd(&root).await?),
        StoreChoice::Embedded | StoreChoice::Memory => None,
    };
    let mut flags = vec!["--metrics-port", "0", "--device-port", "off"];
    let etcd_url = etcd.as_ref().map(EtcdServer::endpoint);
    if let (Some(etcd), Some(url)) = (&etcd, &etcd_url) {
        eprintln!(
            "etcd pid {} on {url}, directory {}",
            etcd.pid().unwrap_or_default(),
            etcd.dir().display()
        );
        flags.extend(["--etcd-servers", url.as_str()]);
    }
    let server =
        Server::start_with_flags(&opts.server_bin, &root, opts.store, opts.keep_data, &flags)
            .await?;
    eprintln!(
        "server pid {} on port {}, store {}, data dir {}",
        server.pid(),
        server.port(),
        opts.store.as_flag(),
        server.data_dir().display()
    );
    let result = phases(opts, &server, etcd.as_ref()).await;
    if let Some(dir) = server.kept_dir() {
        eprintln!("data directory kept: {}", dir.display());
    }
    server.stop().await;
    // After the server, so that it never sees etcd go away mid-run.
    drop(etcd);
    result
}

/// etcd's process as the phases read it.
struct EtcdProbe {
    pid: u32,
    dir: PathBuf,
}

impl EtcdProbe {
    fn memory(&self) -> Result<Memory, ServerError> {
        server::process_memory(self.pid)
    }

    fn cpu(&self) -> Option<Duration> {
        server::process_cpu(self.pid)
    }
}

fn cpu_delta(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    after?.checked_sub(before?)
}

async fn phases(
    opts: &Options,
    server: &Server,
    etcd: Option<&EtcdServer>,
) -> Result<Figures, SuiteError> {
    let etcd = etcd.and_then(|e| {
        Some(EtcdProbe {
            pid: e.pid()?,
            dir: e.dir().to_owned(),
        })
    });
    let etcd_cpu = || etcd.as_ref().and_then(EtcdProbe::cpu);
    let etcd_memory = || etcd.as_ref().map(EtcdProbe::memory).transpose();
    let creds = server.credentials()?;
    let endpoint = Endpoint::new(server.port(), &opts.namespace);

    eprintln!(
        "creating {} EdgeDevices with {} clients ...",
        opts.devices, opts.clients
    );
    let cpu = || server.cpu_time();
    let etcd_before_creates = etcd_cpu();
    let create = create::run(&creds, &endpoint, opts.devices, opts.clients, &cpu)
        .await
        .map_err(phase("create"))?;
    let etcd_create_cpu = cpu_delta(etcd_before_creates, etcd_cpu());
    let memory_after_creates = server.memory()?;
    let etcd_after_creates = etcd_memory()?;

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
    let etcd_before_lists = etcd_cpu();
    let list = list::run(&creds, &endpoint, plan, &cpu)
        .await
        .map_err(phase("list"))?;
    let etcd_list_cpu = cpu_delta(etcd_before_lists, etcd_cpu());
    let memory_after_lists = server.memory()?;
    let etcd_after_lists = etcd_memory()?;

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
    let etcd_after_watch = etcd_memory()?;

    let etcd = match (
        &etcd,
        etcd_after_creates,
        etcd_after_lists,
        etcd_after_watch,
    ) {
        (Some(probe), Some(creates), Some(lists), Some(watch)) => Some(EtcdFigures {
            memory_after_creates: creates,
            memory_after_lists: lists,
            memory_after_watch: watch,
            cpu_per_create: etcd_create_cpu
                .and_then(|cpu| cpu.checked_div(u32::try_from(create.created).ok()?)),
            list_phase_cpu: etcd_list_cpu,
            data_bytes: server::dir_size(&probe.dir),
        }),
        _ => None,
    };
    Ok(Figures {
        create,
        memory_after_creates,
        list,
        memory_after_lists,
        watch,
        memory_after_watch,
        data_bytes: server.data_size(),
        etcd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn etcd_runs_on_the_data_root_and_is_gone_after_the_run() {
        // A directory on the repository's disk, as the benchmark uses (not tmpfs), that
        // exists wherever the target directory is.
        let root = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let etcd = start_etcd(root.path()).await.unwrap();
        let dir = etcd.dir().to_owned();
        let pid = etcd.pid().unwrap();
        assert_eq!(dir.parent(), Some(root.path()));
        assert!(
            dir.join("data-1/member/wal").is_dir(),
            "etcd's write-ahead log is under the data root"
        );
        assert!(server::process_memory(pid).unwrap().rss > 0);
        assert!(server::dir_size(&dir) > 0);
        assert!(etcd.endpoint().starts_with("http://127.0.0.1:"));
        drop(etcd);
        assert!(!dir.exists(), "etcd's directory is removed");
        assert!(
            server::process_memory(pid).is_err(),
            "etcd is stopped and reaped"
        );
    }
}
