//! The etcd store: a [`Store`] on an etcd v3 cluster (`--store etcd`), so that several
//! apiserver replicas on one etcd serve the same objects and the same revisions.
//!
//! Mapping (one to one, as kube-apiserver's etcd3 storage does):
//! - Keys: store key `/registry/…` is etcd key `<prefix>/registry/…` (`--etcd-prefix`,
//!   default `/flotta`); the prefix is stripped on the way out. Store keys (and non-empty
//!   list and watch prefixes) must start with `/`, so one store's keys are exactly the etcd
//!   range `<prefix>/…`, never another prefix's (`/flotta2/…` is not under `/flotta/`).
//! - Revisions are etcd's global revision: `create_revision` and `mod_revision` come from
//!   etcd, a write returns the revision of its transaction, a list is served at the
//!   requested revision or at the response header's. etcd starts at revision 1 (the empty
//!   store); a list at revision 0 is served at 1, which holds the same nothing.
//! - `create` is a transaction "create revision == 0 → put"; `update` and `delete` are
//!   "version > 0 and mod revision == expected → put/delete, else read the key", so a
//!   failure answers [`StoreError::Conflict`] with the key's current revision, or
//!   [`StoreError::NotFound`].
//! - `list` is one range read `[max(prefix, start), end of prefix)` with etcd's limit and
//!   `more`. etcd's "required revision has been compacted" becomes
//!   [`StoreError::Compacted`], "required revision is a future revision"
//!   [`StoreError::FutureRevision`] (both are gRPC `OutOfRange`; the message tells them apart).
//! - `watch` is one etcd watcher per call from `after + 1` with previous key-values (see
//!   `etcd/watch.rs` for the event shapes, the bounded buffer that drops a slow consumer
//!   with [`StoreError::WatcherLagged`], and how a watch ends). A watch from before the
//!   recorded compacted revision is refused at once; from a future revision it waits, as
//!   etcd does.
//! - Compaction keeps `history` revisions and is coordinated between replicas through a meta
//!   key (see `etcd/compaction.rs`); it runs every `compaction_interval` in a task the store
//!   owns (stopped when the store is dropped), or on demand with
//!   [`EtcdStore::compact_now`]. [`Store::compacted_revision`] reads the meta key.
//! - `current_revision` is a count-only range read of the meta key (its header revision);
//!   `ready` is the same read with a deadline of [`READY_TIMEOUT`].
//!
//! Every call is linearizable (etcd's default for reads), so a read on one replica sees
//! every write acknowledged by another. Failures of etcd or of the connection are
//! [`StoreError::Backend`] naming the endpoint; nothing panics. Connections are made lazily,
//! so opening the store never fails because etcd is down: calls fail (after at most the
//! dial timeout) and `ready` reports it until etcd answers.
//!
//! Memory: each watch buffers at most `watch_capacity` events ([`DEFAULT_WATCH_CAPACITY`],
//! 4,096, by default) that its consumer has not taken yet; an event holds the value and the
//! previous value, so one stalled watcher pins at most capacity × 2 × object size (about
//! 8 MiB for 1 KiB objects, 12 GiB in theory for 1.5 MiB ones). A watcher that falls that far
//! behind ends with [`StoreError::WatcherLagged`] and its caller re-watches from the last
//! revision it saw.
//!
//! Limits: values are limited by etcd's request size (`--max-request-bytes`, 1.5 MiB by
//! default): a larger write fails with [`StoreError::TooLarge`]; watch streams outlive the
//! store that opened them (they hold their own connection handle); etcd authentication
//! (user/password) is not supported, only TLS client certificates; history is counted in
//! etcd revisions (see `etcd/compaction.rs`).

mod client;
mod compaction;
mod rpc;
mod watch;

use std::time::Duration;

use async_trait::async_trait;
use flotta_api::store::{KeyValue, ListResult, Revision, Store, StoreError, WatchStream};
use tokio::task::JoinHandle;

use self::client::Client;
pub use self::client::{
    ClientOptions, DIAL_TIMEOUT, EtcdError, KEEPALIVE_INTERVAL, REQUEST_TIMEOUT,
};
use self::compaction::Compactor;
use self::rpc::{Compare, CompareResult, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest};

/// The default `--etcd-prefix`.
pub const DEFAULT_PREFIX: &str = "/flotta";

/// The default `--etcd-compaction-interval`.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(60);

/// How many events a watcher may fall behind before it is dropped, by default (see the
/// module documentation for the memory this bounds).
pub const DEFAULT_WATCH_CAPACITY: usize = 4_096;

/// How long [`Store::ready`] waits for etcd.
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// The meta key's suffix after the prefix: `:` sorts after `0`, the end of the data range
/// `[<prefix>/, <prefix>0)`, so the meta key is in no list or watch.
const META_SUFFIX: &str = ":compaction";

/// How to open an [`EtcdStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Endpoints and TLS material.
    pub client: ClientOptions,
    /// Prepended to every key (a trailing `/` is ignored); [`DEFAULT_PREFIX`] by default.
    pub prefix: String,
    /// How often the store's compactor runs; zero means never.
    pub compaction_interval: Duration,
    /// How many events a watcher may fall behind before it is dropped (at least 1).
    pub watch_capacity: usize,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            client: ClientOptions::default(),
            prefix: DEFAULT_PREFIX.to_owned(),
            compaction_interval: DEFAULT_COMPACTION_INTERVAL,
            watch_capacity: DEFAULT_WATCH_CAPACITY,
        }
    }
}

/// The mapping between store keys and etcd keys under one prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').as_bytes().to_vec(),
        }
    }

    fn with_prefix(&self, suffix: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + suffix.len());
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(suffix.as_bytes());
        key
    }

    /// The etcd key of a store key.
    fn key(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        if !key.starts_with('/') {
            return Err(StoreError::Backend(format!(
                "etcd store keys must start with '/': {key:?}"
            )));
        }
        Ok(self.with_prefix(key))
    }

    /// The etcd range `[begin, end)` of the store keys starting with `prefix`.
    fn range(&self, prefix: &str) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let begin = if prefix.is_empty() {
            self.with_prefix("/")
        } else {
            self.key(prefix)?
        };
        let end = range_end(&begin);
        Ok((begin, end))
    }

    /// The meta key recording the compacted revision.
    fn meta(&self) -> Vec<u8> {
        self.with_prefix(META_SUFFIX)
    }

    /// The store key of an etcd key under the prefix.
    fn strip(&self, key: &[u8]) -> Result<String, StoreError> {
        key.strip_prefix(self.prefix.as_slice())
            .and_then(|rest| String::from_utf8(rest.to_vec()).ok())
            .filter(|rest| rest.starts_with('/'))
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "etcd key {:?} is not a store key under {:?}",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(&self.prefix)
                ))
            })
    }

    fn key_value(&self, kv: rpc::KeyValue) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: self.strip(&kv.key)?,
            value: kv.value,
            create_revision: rpc::to_revision(kv.create_revision),
            mod_revision: rpc::to_revision(kv.mod_revision),
        })
    }
}

/// The smallest key above every key starting with `prefix` (etcd's prefix range end).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes: every key from `prefix` on.
    vec![0]
}

impl From<EtcdError> for StoreError {
    fn from(e: EtcdError) -> Self {
        if e.is_too_large() {
            StoreError::TooLarge(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}

/// The etcd-backed store (see the module documentation).
#[derive(Debug)]
pub struct EtcdStore {
    client: Client,
    keys: Keys,
    compactor: Compactor,
    watch_capacity: usize,
    /// The background compactor, aborted on drop.
    compacting: Option<JoinHandle<()>>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        if let Some(task) = self.compacting.take() {
            task.abort();
        }
    }
}

impl EtcdStore {
    /// Opens the store on the endpoints of `opts`, keeping `history` revisions. Reads the TLS
    /// files and checks the endpoints' form; connects lazily (see the module documentation).
    /// Must be called inside a tokio runtime (the compactor is a task).
    pub async fn connect(opts: &EtcdOptions, history: u64) -> Result<Self, StoreError> {
        let client = Client::new(&opts.client).await?;
        let keys = Keys::new(&opts.prefix);
        let compactor = Compactor {
            client: client.clone(),
            meta_key: keys.meta(),
            history,
        };
        let compacting = (!opts.compaction_interval.is_zero())
            .then(|| compactor.clone().spawn(opts.compaction_interval));
        Ok(Self {
            client,
            keys,
            compactor,
            watch_capacity: opts.watch_capacity,
            compacting,
        })
    }

    /// Runs one compaction now (as the background compactor does every interval) and
    /// returns the compacted revision afterwards.
    pub async fn compact_now(&self) -> Result<Revision, StoreError> {
        self.compactor.run().await
    }

    /// The endpoint URLs, comma separated.
    pub fn endpoints(&self) -> String {
        self.client.endpoints()
    }

    /// A transaction on `key` guarded by `compare`, answering with the key's current state
    /// when the guard fails.
    async fn guarded(
        &self,
        key: &[u8],
        compare: Vec<Compare>,
        op: RequestOp,
    ) -> Result<Result<Revision, Option<rpc::KeyValue>>, StoreError> {
        let response = self
            .client
            .txn(TxnRequest {
                compare,
                success: vec![op],
                failure: vec![RequestOp::get(key)],
            })
            .await?;
        if response.succeeded {
            Ok(Ok(rpc::header_revision(response.header.as_ref())))
        } else {
            let current = response.first_range().and_then(|r| r.kvs.first()).cloned();
            Ok(Err(current))
        }
    }

    /// A compare-and-swap write (`update` or `delete`) of `key` at `expected`.
    async fn swap(
        &self,
        key: &str,
        op: impl FnOnce(&[u8]) -> RequestOp,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let etcd_key = self.keys.key(key)?;
        let compare = vec![
            Compare::version(&etcd_key, CompareResult::Greater, 0),
            Compare::mod_revision(
                &etcd_key,
                CompareResult::Equal,
                rpc::from_revision(expected),
            ),
        ];
        let op = op(&etcd_key);
        match self.guarded(&etcd_key, compare, op).await? {
            Ok(revision) => Ok(revision),
            Err(Some(current)) => Err(StoreError::Conflict {
                key: key.to_owned(),
                current: rpc::to_revision(current.mod_revision),
            }),
            Err(None) => Err(StoreError::NotFound(key.to_owned())),
        }
    }

    /// Maps a failed read at `requested` to the store's revision errors.
    async fn read_error(&self, e: EtcdError, requested: Revision) -> StoreError {
        if e.is_compacted() {
            // etcd refuses revisions below its compacted one, so that is above `requested`
            // even when the record lags behind (someone else compacted).
            let recorded = self.compactor.recorded().await.unwrap_or(0);
            return StoreError::Compacted {
                requested,
                compacted: recorded.max(requested.saturating_add(1)),
            };
        }
        if e.is_future_revision() {
            return match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(other) => other,
            };
        }
        e.into()
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let response = self
            .client
            .range(RangeRequest {
                key: self.keys.key(key)?,
                ..RangeRequest::default()
            })
            .await?;
        response
            .kvs
            .into_iter()
            .next()
            .map(|kv| self.keys.key_value(kv))
            .transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start: &str,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult, StoreError> {
        let (begin, end) = self.keys.range(prefix)?;
        let from = self.keys.with_prefix(start);
        let request = RangeRequest {
            key: begin.max(from),
            range_end: end,
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            // etcd reads 0 as "newest"; revision 0 (nothing written) is etcd's revision 1.
            revision: revision.map_or(0, |r| rpc::from_revision(r.max(1))),
            ..RangeRequest::default()
        };
        let response = match self.client.range(request).await {
            Ok(response) => response,
            Err(e) => return Err(self.read_error(e, revision.unwrap_or(0)).await),
        };
        let items = response
            .kvs
            .into_iter()
            .map(|kv| self.keys.key_value(kv))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListResult {
            items,
            revision: revision.unwrap_or_else(|| rpc::header_revision(response.header.as_ref())),
            more: response.more,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        let etcd_key = self.keys.key(key)?;
        let compare = vec![Compare::create_revision(&etcd_key, CompareResult::Equal, 0)];
        let op = RequestOp::put(&etcd_key, value);
        match self.guarded(&etcd_key, compare, op).await? {
            Ok(revision) => Ok(revision),
            Err(_) => Err(StoreError::AlreadyExists(key.to_owned())),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        self.swap(key, |k| RequestOp::put(k, value), expected).await
    }

    async fn delete(&self, key: &str, expected: Revision) -> Result<Revision, StoreError> {
        self.swap(key, RequestOp::delete, expected).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let (begin, end) = self.keys.range(prefix)?;
        let compacted = self.compactor.recorded().await?;
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let call = self
            .client
            .watch(WatchCreateRequest {
                key: begin,
                range_end: end,
                start_revision: rpc::from_revision(after.saturating_add(1)),
                prev_kv: true,
                ..WatchCreateRequest::default()
            })
            .await?;
        Ok(watch::stream(
            call,
            self.keys.clone(),
            after,
            self.watch_capacity,
        ))
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let response = self
            .client
            .range(RangeRequest {
                key: self.keys.meta(),
                count_only: true,
                ..RangeRequest::default()
            })
            .await?;
        Ok(rpc::header_revision(response.header.as_ref()))
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.compactor.recorded().await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(READY_TIMEOUT, self.current_revision()).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(StoreError::Backend(format!(
                "etcd {}: no answer within {READY_TIMEOUT:?}",
                self.client.endpoints()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_prefix() {
        let keys = Keys::new("/flotta/");
        assert_eq!(keys.key("/registry/a").unwrap(), b"/flotta/registry/a");
        assert!(matches!(keys.key("registry"), Err(StoreError::Backend(_))));
        assert_eq!(keys.strip(b"/flotta/registry/a").unwrap(), "/registry/a");
        assert!(keys.strip(b"/flotta2/registry/a").is_err());
        assert!(keys.strip(b"/flotta:compaction").is_err());
        let (begin, end) = keys.range("").unwrap();
        assert_eq!(
            (begin.as_slice(), end.as_slice()),
            (&b"/flotta/"[..], &b"/flotta0"[..])
        );
        let (begin, end) = keys.range("/registry/").unwrap();
        assert_eq!(
            (begin.as_slice(), end.as_slice()),
            (&b"/flotta/registry/"[..], &b"/flotta/registry0"[..])
        );
        let meta = keys.meta();
        assert!(meta.as_slice() >= end.as_slice() || meta.as_slice() < begin.as_slice());
        let (begin, end) = keys.range("").unwrap();
        assert!(meta.as_slice() >= end.as_slice() || meta.as_slice() < begin.as_slice());
    }

    #[test]
    fn range_end_increments_the_last_byte_below_0xff() {
        assert_eq!(range_end(b"/a/"), b"/a0");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn an_empty_prefix_keeps_keys_as_they_are() {
        let keys = Keys::new("");
        assert_eq!(keys.key("/registry/a").unwrap(), b"/registry/a");
        assert_eq!(keys.meta(), b":compaction");
        assert_eq!(keys.range("").unwrap(), (b"/".to_vec(), b"0".to_vec()));
    }
}
