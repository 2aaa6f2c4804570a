//! The reconcile loop shared by every controller: workers take keys from the controller's
//! [`WorkQueue`], call [`Reconciler::reconcile`], and on failure queue the key again with
//! backoff. Reconcilers are level-based: they read the current state and make it right,
//! whatever events led there, so a key may be reconciled more often than strictly needed
//! but never misses its last change.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;

use crate::client::ClientError;
use crate::queue::WorkQueue;

/// A controller's reconcile step.
#[async_trait]
pub(crate) trait Reconciler: Send + Sync + 'static {
    /// What the queue holds.
    type Key: Clone + Eq + Hash + Send + Sync + fmt::Debug + 'static;

    /// The controller's name, for logs.
    const NAME: &'static str;

    /// The controller's queue.
    fn queue(&self) -> &WorkQueue<Self::Key>;

    /// Makes the world match the desired state of `key`.
    async fn reconcile(&self, key: &Self::Key) -> Result<(), ClientError>;
}

/// One worker: processes keys until the queue shuts down.
pub(crate) async fn work<R: Reconciler>(reconciler: Arc<R>) {
    let queue = reconciler.queue();
    while let Some(key) = queue.next().await {
        match reconciler.reconcile(&key).await {
            Ok(()) => queue.forget(&key),
            Err(error) => {
                let failures = queue.failures(&key) + 1;
                if failures > 3 {
                    tracing::warn!(controller = R::NAME, ?key, %error, failures, "reconcile failed; retrying with backoff");
                } else {
                    tracing::debug!(controller = R::NAME, ?key, %error, failures, "reconcile failed; retrying");
                }
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}
