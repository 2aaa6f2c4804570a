//! EdgeDeviceSignedRequest approval (`flotta-inventory.md` §2.1): a device's enrolment
//! request is approved automatically (the default) or by an operator setting
//! `spec.approved=true`, e.g.
//! `kubectl patch edsr <id> --type merge -p '{"spec":{"approved":true}}'`. Approval creates
//! the EdgeDevice `<request name>` in `spec.targetNamespace` with the labels
//! `edgedeviceSignedRequest=true` (device not registered yet) and, when `spec.targetSet` is
//! set, `flotta/member-of=<targetSet>`, the device finalizer, and `spec.requestTime`.
//!
//! The request's status carries Flotta's conditions, one per type: `pending` while it waits
//! (or when the device cannot be created, with the reason in `message`), `approved` once
//! the device exists; the current one is `True`, earlier ones `False` (Flotta wrote a
//! lowercase `true` that its own check for `True` never matched, §8.3). `observedGeneration`
//! is the generation acted on. Flotta's condition types are an enum, so these requests get
//! no `Ready` condition: `approved` plays that role.
//!
//! Limits: an existing device of that name is adopted as is (nothing on it is changed);
//! un-approving a request does not remove its device.

use std::sync::Arc;

use async_trait::async_trait;
use flotta_api::v1alpha1::{
    API_VERSION, EDSR_CONDITION_APPROVED, EDSR_CONDITION_PENDING, EdgeDeviceSignedRequest,
};
use serde_json::{Map, Value, json};

use crate::client::{ClientError, EventType, Kind, Objects, Part};
use crate::informer::Observer;
use crate::labels::{DEVICE_FINALIZER, EDSR_LABEL_NAME, EDSR_LABEL_VALUE, MEMBER_OF_LABEL};
use crate::meta::{self, ObjectKey};
use crate::queue::WorkQueue;
use crate::reconciler::Reconciler;

/// Message of the `pending` condition while the request waits for approval.
pub(crate) const PENDING_MESSAGE: &str = "device is waiting for approval";
/// Message of the `approved` condition.
pub(crate) const APPROVED_MESSAGE: &str = "device correctly approved";

/// The approval controller.
pub(crate) struct SignedRequestController {
    client: Arc<dyn Objects>,
    queue: WorkQueue<ObjectKey>,
    auto_approve: bool,
}

impl SignedRequestController {
    /// A controller that approves requests itself when `auto_approve` is set.
    pub(crate) fn new(client: Arc<dyn Objects>, auto_approve: bool) -> Self {
        SignedRequestController {
            client,
            queue: WorkQueue::new(),
            auto_approve,
        }
    }

    /// Records `type_` as the request's current condition.
    async fn set_condition(
        &self,
        key: &ObjectKey,
        type_: &str,
        message: &str,
    ) -> Result<(), ClientError> {
        let now = meta::now();
        let written = self
            .client
            .modify(
                Kind::EdgeDeviceSignedRequest,
                &key.namespace,
                &key.name,
                Part::Status,
                &mut |current| Ok(with_condition(current, type_, message, &now)),
            )
            .await;
        match written {
            Ok(_) => Ok(()),
            // Deleted meanwhile: nothing left to record.
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A copy of `request` whose condition `type_` is the true one, with `message`, and whose
/// `observedGeneration` is current (`None` when it already is so).
fn with_condition(request: &Value, type_: &str, message: &str, now: &str) -> Option<Value> {
    let generation = meta::generation(request);
    let mut next = request.clone();
    let status = meta::status_mut(&mut next);
    status.insert("observedGeneration".into(), json!(generation));
    if !status.get("conditions").is_some_and(Value::is_array) {
        status.insert("conditions".into(), json!([]));
    }
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        let mut found = false;
        for condition in conditions.iter_mut() {
            let Some(c) = condition.as_object_mut() else {
                continue;
            };
            let is_type = c.get("type").and_then(Value::as_str) == Some(type_);
            let is_true = c
                .get("status")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("true"));
            let wanted = if is_type { "True" } else { "False" };
            if is_type != is_true {
                c.insert("lastTransitionTime".into(), json!(now));
            }
            // Also normalises Flotta's lowercase spelling, without a transition.
            c.insert("status".into(), json!(wanted));
            if is_type {
                found = true;
                c.insert("message".into(), json!(message));
            }
        }
        if !found {
            conditions.push(json!({
                "type": type_,
                "status": "True",
                "message": message,
                "lastTransitionTime": now,
            }));
        }
    }
    (next != *request).then_some(next)
}

/// The EdgeDevice an approved request creates.
fn device_for(request: &EdgeDeviceSignedRequest, name: &str) -> Value {
    let mut labels = Map::new();
    labels.insert(EDSR_LABEL_NAME.into(), json!(EDSR_LABEL_VALUE));
    if let Some(set) = request.spec.target_set.as_deref().filter(|s| !s.is_empty()) {
        labels.insert(MEMBER_OF_LABEL.into(), json!(set));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": Kind::EdgeDevice.name(),
        "metadata": {
            "name": name,
            "namespace": request.spec.target_namespace,
            "labels": labels,
            "finalizers": [DEVICE_FINALIZER],
        },
        "spec": {"requestTime": meta::now()},
    })
}

impl Observer for SignedRequestController {
    fn observe(&self, kind: Kind, event: EventType, object: &Value) {
        if kind != Kind::EdgeDeviceSignedRequest || event == EventType::Deleted {
            return;
        }
        if let Some(key) = ObjectKey::of(object) {
            self.queue.add(key);
        }
    }
}

#[async_trait]
impl Reconciler for SignedRequestController {
    type Key = ObjectKey;
    const NAME: &'static str = "signed-request";

    fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }

    async fn reconcile(&self, key: &ObjectKey) -> Result<(), ClientError> {
        let kind = Kind::EdgeDeviceSignedRequest;
        let Some(mut object) = self.client.get(kind, &key.namespace, &key.name).await? else {
            return Ok(());
        };
        if meta::is_deleting(&object) {
            return Ok(());
        }
        let mut request: EdgeDeviceSignedRequest = meta::decode(kind, &object)?;
        if !request.spec.is_approved() && self.auto_approve {
            object = self
                .client
                .merge_patch(
                    kind,
                    &key.namespace,
                    &key.name,
                    Part::Main,
                    json!({"spec": {"approved": true}}),
                )
                .await?;
            request = meta::decode(kind, &object)?;
            tracing::info!(request = %key, "approved the device's enrolment request automatically");
        }
        if !request.spec.is_approved() {
            self.set_condition(key, EDSR_CONDITION_PENDING, PENDING_MESSAGE)
                .await?;
            return Ok(());
        }
        let target = request.spec.target_namespace.clone();
        let existing = self
            .client
            .get(Kind::EdgeDevice, &target, &key.name)
            .await?;
        if existing.is_none() {
            match self
                .client
                .create(Kind::EdgeDevice, &target, device_for(&request, &key.name))
                .await
            {
                Ok(_) => {
                    tracing::info!(device = %ObjectKey::new(&target, &key.name), "created the EdgeDevice of an approved enrolment request");
                }
                Err(ClientError::AlreadyExists(_)) => {}
                Err(ClientError::Invalid(reason)) => {
                    // Retrying cannot help; a change to the request triggers a new attempt.
                    let message = format!("cannot create the EdgeDevice in {target:?}: {reason}");
                    self.set_condition(key, EDSR_CONDITION_PENDING, &message)
                        .await?;
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
        self.set_condition(key, EDSR_CONDITION_APPROVED, APPROVED_MESSAGE)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_switch_once_and_keep_their_times() {
        let request = json!({"metadata": {"name": "d", "generation": 1}, "spec": {}});
        let pending = with_condition(&request, "pending", PENDING_MESSAGE, "t1").unwrap();
        assert!(with_condition(&pending, "pending", PENDING_MESSAGE, "t2").is_none());
        let approved = with_condition(&pending, "approved", APPROVED_MESSAGE, "t3").unwrap();
        let conditions = approved["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0]["type"], "pending");
        assert_eq!(conditions[0]["status"], "False");
        assert_eq!(conditions[0]["lastTransitionTime"], "t3");
        assert_eq!(conditions[1]["type"], "approved");
        assert_eq!(conditions[1]["status"], "True");
        assert_eq!(approved["status"]["observedGeneration"], 1);
        assert!(with_condition(&approved, "approved", APPROVED_MESSAGE, "t4").is_none());
    }

    #[test]
    fn flotta_lowercase_true_is_normalised() {
        let request = json!({"metadata": {"name": "d"}, "status": {"conditions": [
            {"type": "pending", "status": "true", "message": PENDING_MESSAGE}]}});
        let next = with_condition(&request, "pending", PENDING_MESSAGE, "t").unwrap();
        assert_eq!(next["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn device_carries_labels_finalizer_and_request_time() {
        let request: EdgeDeviceSignedRequest = serde_json::from_value(json!({
            "apiVersion": API_VERSION, "kind": "EdgeDeviceSignedRequest",
            "metadata": {"name": "dev1", "namespace": "default"},
            "spec": {"targetNamespace": "fleet", "targetSet": "lab", "approved": true}
        }))
        .unwrap();
        let device = device_for(&request, "dev1");
        assert_eq!(device["metadata"]["namespace"], "fleet");
        assert_eq!(device["metadata"]["labels"][EDSR_LABEL_NAME], "true");
        assert_eq!(device["metadata"]["labels"][MEMBER_OF_LABEL], "lab");
        assert_eq!(device["metadata"]["finalizers"][0], DEVICE_FINALIZER);
        assert!(device["spec"]["requestTime"].is_string());
    }
}
