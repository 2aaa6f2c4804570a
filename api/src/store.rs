//! The revisioned object store: the one seam between the API semantics and where bytes live.
//!
//! A backend stores opaque values under string keys with one global, monotonic revision
//! (like etcd's). Every write gets the next revision; an object's `resourceVersion` is the
//! revision of its last write. Backends know nothing about Kubernetes objects: metadata,
//! selectors, paging tokens and watch filtering live above this trait.
//!
//! Keys look like `/registry/<group>/<resource>/<namespace>/<name>` and sort bytewise.

use async_trait::async_trait;
use futures::stream::BoxStream;

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "memory")]
pub mod memory;

/// A store revision. Revision 0 means "nothing written yet".
pub type Revision = u64;

/// One stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key.
    pub key: String,
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

/// The result of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Matching keys in ascending key order, at most `limit` of them.
    pub items: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// True when more keys in the range follow the last returned one.
    pub more: bool,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated.
    Put,
    /// Deleted.
    Delete,
}

/// One change, as delivered by [`Store::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change. For a delete, `kv.value` is the last value before the
    /// delete and `kv.mod_revision` is the revision of the delete itself.
    pub kv: KeyValue,
    /// The value before the change, if the key existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A stream of changes in revision order. It ends with `Err` when the watcher cannot keep
/// up or the store closes; the caller re-watches from the last revision it saw.
pub type WatchStream = BoxStream<'static, Result<Event, StoreError>>;

/// Errors from a store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist.
    #[error("key {0} not found")]
    NotFound(String),
    /// `create` on a key that exists.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The key's current revision differs from the expected one.
    #[error("key {key} is at revision {current}, not the expected one")]
    Conflict {
        /// The key.
        key: String,
        /// Its current mod revision.
        current: Revision,
    },
    /// The requested revision is older than the oldest the store still keeps.
    #[error("revision {requested} is compacted (oldest kept is {compacted})")]
    Compacted {
        /// What was asked for.
        requested: Revision,
        /// The newest revision that is no longer available.
        compacted: Revision,
    },
    /// The requested revision is newer than the store's current one.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// What was asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A watcher fell too far behind and was dropped.
    #[error("watcher fell behind and was dropped")]
    WatcherLagged,
    /// The write (its key and value) is larger than the backend accepts, e.g. etcd's
    /// request limit (`--max-request-bytes`, 1.5 MiB by default). Retrying cannot help;
    /// the REST layer answers 413 RequestEntityTooLarge.
    #[error("too large for the store: {0}")]
    TooLarge(String),
    /// The backend failed (I/O, corruption, unreachable).
    #[error("store backend failed: {0}")]
    Backend(String),
}

/// A revisioned key-value store (see the module documentation).
///
/// All writes are durable when the call returns `Ok`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key at the current revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Reads keys with `prefix`, in key order, starting at `start` (inclusive; empty means
    /// from the beginning of the prefix), at most `limit` keys (0 means no limit), at
    /// `revision` (`None` means the current revision). A revision below the compacted one
    /// fails with [`StoreError::Compacted`]; one above the current with
    /// [`StoreError::FutureRevision`].
    async fn list(
        &self,
        prefix: &str,
        start: &str,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult, StoreError>;

    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if it exists. Returns the
    /// new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError>;

    /// Replaces `key` if its mod revision is `expected`; otherwise fails with
    /// [`StoreError::Conflict`] (or [`StoreError::NotFound`]). Returns the new revision.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError>;

    /// Deletes `key` if its mod revision is `expected`, with the same failures as
    /// [`Store::update`]. Returns the revision of the delete.
    async fn delete(&self, key: &str, expected: Revision) -> Result<Revision, StoreError>;

    /// Streams every change under `prefix` with a revision greater than `after`, first
    /// those already in history, then live ones. Fails with [`StoreError::Compacted`] when
    /// history no longer reaches back to `after + 1`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// The newest revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// The newest revision that is no longer readable (history starts after it).
    async fn compacted_revision(&self) -> Result<Revision, StoreError>;

    /// Ok when the backend can serve requests.
    async fn ready(&self) -> Result<(), StoreError>;
}
