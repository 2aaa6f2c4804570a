//! EdgeDeviceSet membership (`flotta-inventory.md` §1.2): a device belongs to the set named
//! by its `flotta/member-of` label (set at approval from the request's `targetSet`, or by an
//! operator). What membership means for a device's configuration, each section taken from
//! the set when the set exists, is applied where the configuration is rendered; this
//! controller keeps the set's status: `memberCount` (live members in the set's namespace),
//! `observedGeneration` and a `Ready` condition.
//!
//! Membership is kept in memory from device events ([`crate::membership`]), so a membership
//! change costs one set status write (batched over a short delay), never a device scan.
//!
//! Limits: devices naming a set that does not exist are not reported anywhere (Flotta
//! silently uses the device's own configuration for them, and so does the renderer).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::client::{ClientError, EventType, Kind, Objects, Part};
use crate::condition::{self, Readiness};
use crate::informer::Observer;
use crate::labels::MEMBER_OF_LABEL;
use crate::membership::Membership;
use crate::meta::{self, ObjectKey};
use crate::queue::WorkQueue;
use crate::reconciler::Reconciler;

/// How long a set's status update waits for more membership changes to batch with.
const STATUS_BATCH_DELAY: Duration = Duration::from_millis(100);

/// The device-set controller.
pub(crate) struct DeviceSetController {
    client: Arc<dyn Objects>,
    queue: WorkQueue<ObjectKey>,
    membership: Mutex<Membership>,
}

impl DeviceSetController {
    /// A new controller.
    pub(crate) fn new(client: Arc<dyn Objects>) -> Self {
        DeviceSetController {
            client,
            queue: WorkQueue::new(),
            membership: Mutex::new(Membership::new(MEMBER_OF_LABEL)),
        }
    }

    fn membership(&self) -> MutexGuard<'_, Membership> {
        // Plain counters, rebuilt from events; a poisoned lock still holds usable data.
        self.membership
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn observe_device(&self, event: EventType, object: &Value) {
        let Some(moved) = self.membership().observe(event, object) else {
            return;
        };
        for set in moved.parents() {
            self.queue.add_after(set, STATUS_BATCH_DELAY);
        }
    }
}

/// A copy of `set` whose status reports `members` and is ready (`None` if it already is).
fn with_members(set: &Value, members: usize) -> Option<Value> {
    let mut next = set.clone();
    meta::status_mut(&mut next).insert("memberCount".into(), json!(members));
    let readiness = Readiness::ready("MembersCounted", format!("{members} member device(s)"));
    let next = condition::with_readiness(&next, &readiness).unwrap_or(next);
    (next != *set).then_some(next)
}

impl Observer for DeviceSetController {
    fn observe(&self, kind: Kind, event: EventType, object: &Value) {
        match kind {
            Kind::EdgeDevice => self.observe_device(event, object),
            Kind::EdgeDeviceSet if event != EventType::Deleted => {
                if let Some(key) = ObjectKey::of(object) {
                    self.queue.add(key);
                }
            }
            _ => {}
        }
    }
}

#[async_trait]
impl Reconciler for DeviceSetController {
    type Key = ObjectKey;
    const NAME: &'static str = "device-set";

    fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<(), ClientError> {
        let members = self.membership().count(key);
        self.client
            .modify_if_present(Kind::EdgeDeviceSet, key, Part::Status, &mut |current| {
                Ok(if meta::is_deleting(current) {
                    None
                } else {
                    with_members(current, members)
                })
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_members_once() {
        let set = json!({"metadata": {"name": "s", "generation": 2}, "spec": {}});
        let next = with_members(&set, 3).unwrap();
        assert_eq!(next["status"]["memberCount"], 3);
        assert_eq!(next["status"]["observedGeneration"], 2);
        assert_eq!(next["status"]["conditions"][0]["type"], "Ready");
        assert!(with_members(&next, 3).is_none());
        assert!(with_members(&next, 4).is_some());
    }
}
