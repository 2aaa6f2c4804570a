//! Store backends and how the server picks one (`--store`).
//!
//! [`open`] builds the configured backend: the embedded redb file (see [`embedded`]), an
//! etcd v3 cluster shared by several replicas (see [`etcd`]), or the in-memory store from
//! `flotta-api` (nothing survives a restart).

pub mod embedded;
pub mod etcd;

use std::path::PathBuf;
use std::sync::Arc;

use flotta_api::store::memory::MemoryStore;
use flotta_api::store::{Store, StoreError};

use self::embedded::EmbeddedStore;
use self::etcd::{EtcdOptions, EtcdStore};

/// The embedded store's file name inside the data directory.
pub const EMBEDDED_FILE: &str = "store.redb";

/// Which backend to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The redb file in the data directory (default; durable).
    Embedded,
    /// In memory; everything is lost on exit (tests, demos).
    Memory,
    /// An etcd v3 cluster (for several replicas); `history` counts etcd revisions.
    Etcd(EtcdOptions),
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The backend.
    pub kind: StoreKind,
    /// The data directory (the embedded store keeps `store.redb` there).
    pub data_dir: PathBuf,
    /// How many change events the watch history keeps; older revisions answer 410.
    pub history: u64,
}

/// Opens the configured store. For [`StoreKind::Embedded`] it creates the data directory
/// if needed and opens (or creates) `<data_dir>/store.redb`; for [`StoreKind::Etcd`] it
/// checks the endpoints and reads the TLS files, but connects lazily.
pub async fn open(opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    match &opts.kind {
        StoreKind::Etcd(etcd) => Ok(Arc::new(EtcdStore::connect(etcd, opts.history).await?)),
        StoreKind::Memory => Ok(Arc::new(MemoryStore::new(opts.history))),
        StoreKind::Embedded => {
            let dir = opts.data_dir.clone();
            let history = opts.history;
            let store = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
                })?;
                EmbeddedStore::open(dir.join(EMBEDDED_FILE), history)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("opening the store failed: {e}")))??;
            Ok(Arc::new(store))
        }
    }
}
