//! Store backends and how the server picks one (`--store`).

use std::path::PathBuf;
use std::sync::Arc;

use flotta_api::store::{Store, StoreError};

/// Which backend to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The redb file in the data directory (default; durable).
    Embedded,
    /// In memory; everything is lost on exit (tests, demos).
    Memory,
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

/// Opens the configured store.
pub async fn open(opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let _ = opts;
    Err(StoreError::Backend("not implemented yet".into()))
}
