//! Compaction of etcd's history, coordinated between the replicas sharing one etcd.
//!
//! The record: the meta key (`<etcd-prefix>:compaction`, outside the data range so no list
//! or watch ever sees it) holds the last compacted revision as decimal text. A run reads it
//! together with the current revision, computes `target = current − history`, and does
//! nothing unless the target is above the record and something was written since the record
//! (so an idle etcd is not written to once per interval). Otherwise it claims the target with a
//! transaction that writes the meta key only if the key's mod revision is still the one it
//! read; of several replicas running at once exactly one wins, the others keep the winner's
//! record. The winner then asks etcd to compact to the target (like kube-apiserver, the
//! record is written first: a crash in between leaves the record ahead of etcd, which only
//! makes watches refuse a little early until the next run compacts).
//!
//! Limits: etcd compaction is cluster-wide and every write to etcd (including the meta key
//! itself and other programs' keys) takes a revision, so "history" counts etcd revisions,
//! not this store's events; between runs up to one interval's worth of extra revisions is
//! kept. Stores with different prefixes on one etcd keep separate records but share etcd's
//! one compacted revision: give them the same history. A compaction done by someone else
//! (e.g. etcd's `--auto-compaction-retention`) is not in the record; the store then learns of
//! it from etcd's compacted errors instead.

use std::time::Duration;

use flotta_api::store::{Revision, StoreError};
use tokio::task::JoinHandle;

use super::client::Client;
use super::rpc::{
    self, CompactionRequest, Compare, CompareResult, RangeRequest, RequestOp, TxnRequest,
};

/// What a compaction run needs: the client, the meta key and how many revisions to keep.
#[derive(Debug, Clone)]
pub(super) struct Compactor {
    pub(super) client: Client,
    pub(super) meta_key: Vec<u8>,
    pub(super) history: u64,
}

/// The meta key as read: the recorded revision and the key's own mod revision (0 if absent).
struct Record {
    compacted: Revision,
    mod_revision: i64,
}

impl Compactor {
    /// The recorded compacted revision (0 before the first compaction).
    pub(super) async fn recorded(&self) -> Result<Revision, StoreError> {
        Ok(self.read().await?.1.compacted)
    }

    /// One run (see the module documentation). Returns the compacted revision afterwards.
    pub(super) async fn run(&self) -> Result<Revision, StoreError> {
        let (current, record) = self.read().await?;
        let target = current.saturating_sub(self.history);
        // When the newest revision is the record itself, nothing was written since the last
        // run; compacting would only write the record again, once per interval, forever.
        let idle = record.mod_revision > 0 && rpc::to_revision(record.mod_revision) == current;
        if target <= record.compacted || idle {
            return Ok(record.compacted);
        }
        let claim = TxnRequest {
            compare: vec![Compare::mod_revision(
                &self.meta_key,
                CompareResult::Equal,
                record.mod_revision,
            )],
            success: vec![RequestOp::put(
                &self.meta_key,
                target.to_string().into_bytes(),
            )],
            failure: vec![RequestOp::get(&self.meta_key)],
        };
        let claimed = self.client.txn(claim).await?;
        if !claimed.succeeded {
            // Another replica compacted meanwhile; its record stands.
            let kv = claimed.first_range().and_then(|r| r.kvs.first());
            return parse(kv).map(|r| r.compacted);
        }
        let compacted = self
            .client
            .compact(CompactionRequest {
                revision: rpc::from_revision(target),
                physical: false,
            })
            .await;
        match compacted {
            Ok(_) => Ok(target),
            // Someone (another program, or etcd's own auto-compaction) went further.
            Err(e) if e.is_compacted() => Ok(target),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs [`Compactor::run`] every `interval` (the first run one interval after the start)
    /// until the returned task is aborted.
    pub(super) fn spawn(self, interval: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.run().await {
                    Ok(compacted) => tracing::debug!(compacted, "etcd compaction run"),
                    Err(e) => {
                        tracing::warn!(error = %e, "etcd compaction failed; retrying next interval")
                    }
                }
            }
        })
    }

    /// The current revision and the record, in one read.
    async fn read(&self) -> Result<(Revision, Record), StoreError> {
        let response = self
            .client
            .range(RangeRequest {
                key: self.meta_key.clone(),
                ..RangeRequest::default()
            })
            .await?;
        let record = parse(response.kvs.first())?;
        Ok((rpc::header_revision(response.header.as_ref()), record))
    }
}

fn parse(kv: Option<&rpc::KeyValue>) -> Result<Record, StoreError> {
    let Some(kv) = kv else {
        return Ok(Record {
            compacted: 0,
            mod_revision: 0,
        });
    };
    let compacted = std::str::from_utf8(&kv.value)
        .ok()
        .and_then(|text| text.trim().parse::<Revision>().ok())
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "etcd compaction record {} is not a revision: {:?}",
                String::from_utf8_lossy(&kv.key),
                String::from_utf8_lossy(&kv.value)
            ))
        })?;
    Ok(Record {
        compacted,
        mod_revision: kv.mod_revision,
    })
}
