//! EdgeDevice lifecycle (`flotta-inventory.md` §2.2, §3.9): every live device carries the
//! finalizer `device-finalizer` (devices created by approval get it at creation; others,
//! e.g. applied with kubectl, get it here), so that deleting a device runs its clean-up
//! first. While the device is being deleted the device API answers its control polls with
//! `disconnect`; meanwhile this controller deletes its enrolment request (the
//! EdgeDeviceSignedRequest of the same name in the initial namespace `default`, if it
//! targets the device's namespace) and the
//! PlaybookExecutions listed in its `status.PlaybookExec`, then removes the finalizer. The
//! placement controller drops a device from its bookkeeping as soon as its deletion starts.
//!
//! Limits: Flotta's ObjectBucketClaim creation (OpenShift-only) is not done; EdgeDevices
//! have no `Ready` condition here, since their readiness is what the device reports
//! (`status.phase`) and its liveness.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::client::{ClientError, EventType, Kind, Objects, Part};
use crate::informer::Observer;
use crate::labels::{DEVICE_FINALIZER, INITIAL_NAMESPACE};
use crate::meta::{self, ObjectKey};
use crate::queue::WorkQueue;
use crate::reconciler::Reconciler;

/// The device lifecycle controller.
pub(crate) struct DeviceController {
    client: Arc<dyn Objects>,
    queue: WorkQueue<ObjectKey>,
}

impl DeviceController {
    /// A new controller.
    pub(crate) fn new(client: Arc<dyn Objects>) -> Self {
        DeviceController {
            client,
            queue: WorkQueue::new(),
        }
    }

    async fn clean_up(&self, key: &ObjectKey, device: &Value) -> Result<(), ClientError> {
        let request = self
            .client
            .get(Kind::EdgeDeviceSignedRequest, INITIAL_NAMESPACE, &key.name)
            .await?;
        // A request of the same name for another namespace belongs to another device.
        let ours = request.as_ref().is_some_and(|r| {
            r.pointer("/spec/targetNamespace").and_then(Value::as_str)
                == Some(key.namespace.as_str())
        });
        if ours {
            self.client
                .delete_if_present(Kind::EdgeDeviceSignedRequest, INITIAL_NAMESPACE, &key.name)
                .await?;
        }
        for execution in meta::status_list_names(device, "PlaybookExec") {
            self.client
                .delete_if_present(Kind::PlaybookExecution, &key.namespace, execution)
                .await?;
        }
        let removed = self
            .client
            .modify_if_present(Kind::EdgeDevice, key, Part::Main, &mut |current| {
                Ok(meta::without_finalizer(current, DEVICE_FINALIZER))
            })
            .await?;
        if removed.is_some() {
            tracing::info!(device = %key, "device clean-up done; finalizer removed");
        }
        Ok(())
    }
}

/// Whether the device needs this controller: a live one without the finalizer, or one
/// being deleted that still has it.
fn needs_attention(device: &Value) -> bool {
    meta::is_deleting(device) == meta::has_finalizer(device, DEVICE_FINALIZER)
}

impl Observer for DeviceController {
    fn observe(&self, kind: Kind, event: EventType, object: &Value) {
        if kind != Kind::EdgeDevice || event == EventType::Deleted || !needs_attention(object) {
            return;
        }
        if let Some(key) = ObjectKey::of(object) {
            self.queue.add(key);
        }
    }
}

#[async_trait]
impl Reconciler for DeviceController {
    type Key = ObjectKey;
    const NAME: &'static str = "device";

    fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<(), ClientError> {
        let Some(device) = self
            .client
            .get(Kind::EdgeDevice, &key.namespace, &key.name)
            .await?
        else {
            return Ok(());
        };
        if !needs_attention(&device) {
            return Ok(());
        }
        if meta::is_deleting(&device) {
            self.clean_up(key, &device).await?;
            return Ok(());
        }
        self.client
            .modify_if_present(Kind::EdgeDevice, key, Part::Main, &mut |current| {
                Ok(if meta::is_deleting(current) {
                    None
                } else {
                    meta::with_finalizer(current, DEVICE_FINALIZER)
                })
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn attention_only_when_the_finalizer_is_out_of_step() {
        let live = json!({"metadata": {"name": "d"}});
        assert!(needs_attention(&live));
        let guarded = json!({"metadata": {"name": "d", "finalizers": [DEVICE_FINALIZER]}});
        assert!(!needs_attention(&guarded));
        let deleting = json!({"metadata": {"name": "d", "finalizers": [DEVICE_FINALIZER],
            "deletionTimestamp": "2024-01-01T00:00:00Z"}});
        assert!(needs_attention(&deleting));
        let released = json!({"metadata": {"name": "d", "finalizers": ["other"],
            "deletionTimestamp": "2024-01-01T00:00:00Z"}});
        assert!(!needs_attention(&released));
    }
}
