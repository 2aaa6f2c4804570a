//! Device-reported events (the `events` of a heartbeat, `flotta-inventory.md` §3.4 and
//! §4.1) made visible to operators: in aggregated mode as Kubernetes Events
//! (`events.k8s.io/v1`) regarding the `EdgeDevice`, so `kubectl describe edgedevice` and
//! `kubectl get events` show them, reported by component `flotta-edge-api` as in Flotta;
//! in standalone mode (no Event kind is served) as log lines.
//!
//! `warn` events become `Warning`, everything else `Normal`. Repeats of the same event
//! within a few minutes are folded into one Event with a growing count (kube-runtime's
//! recorder does this). Publishing never fails the heartbeat: errors are logged.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The reporting component of device events, as in Flotta.
pub const REPORTING_COMPONENT: &str = "flotta-edge-api";
/// Longest reason Kubernetes accepts.
const MAX_REASON: usize = 128;
/// Longest note Kubernetes accepts (1 kB).
const MAX_NOTE: usize = 1024;

/// The device an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    /// Namespace of the `EdgeDevice`.
    pub namespace: String,
    /// Its name (the device id).
    pub name: String,
    /// Its uid, when known (lets `kubectl describe` match the Event to the object).
    pub uid: Option<String>,
}

/// Severity of a device event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Informational (`info`).
    Normal,
    /// Something is wrong (`warn`).
    Warning,
}

impl Severity {
    /// The severity of a device event's `type` (`warn` → Warning, anything else Normal).
    pub fn from_device_type(device_type: &str) -> Self {
        if device_type == "warn" {
            Severity::Warning
        } else {
            Severity::Normal
        }
    }
}

/// One event a device reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    /// Severity.
    pub severity: Severity,
    /// Short machine-readable reason (e.g. `Failed`).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// Where device events go.
#[async_trait]
pub trait DeviceEventSink: Send + Sync {
    /// Records an event about `device`; never fails (errors are logged).
    async fn record(&self, device: &DeviceRef, event: &DeviceEvent);
}

/// Publishes device events as Kubernetes Events (aggregated mode).
pub struct ClusterEvents {
    recorder: Recorder,
}

impl ClusterEvents {
    /// A sink publishing through `client`; `instance` names this replica (its pod name).
    pub fn new(client: kube::Client, instance: Option<String>) -> Self {
        ClusterEvents {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: REPORTING_COMPONENT.to_owned(),
                    instance,
                },
            ),
        }
    }
}

/// The object reference of an `EdgeDevice`.
pub fn device_reference(device: &DeviceRef) -> ObjectReference {
    ObjectReference {
        api_version: Some("management.project-flotta.io/v1alpha1".to_owned()),
        kind: Some("EdgeDevice".to_owned()),
        namespace: Some(device.namespace.clone()),
        name: Some(device.name.clone()),
        uid: device.uid.clone(),
        ..ObjectReference::default()
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[async_trait]
impl DeviceEventSink for ClusterEvents {
    async fn record(&self, device: &DeviceRef, event: &DeviceEvent) {
        let reason = if event.reason.is_empty() {
            "DeviceEvent".to_owned()
        } else {
            truncate(&event.reason, MAX_REASON)
        };
        let k8s_event = Event {
            type_: match event.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason,
            note: Some(truncate(&event.message, MAX_NOTE)),
            action: "Heartbeat".to_owned(),
            secondary: None,
        };
        if let Err(error) = self
            .recorder
            .publish(&k8s_event, &device_reference(device))
            .await
        {
            tracing::warn!(
                namespace = %device.namespace,
                device = %device.name,
                %error,
                "could not publish a device event"
            );
        }
    }
}

/// Logs device events (standalone mode).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogEvents;

#[async_trait]
impl DeviceEventSink for LogEvents {
    async fn record(&self, device: &DeviceRef, event: &DeviceEvent) {
        match event.severity {
            Severity::Normal => tracing::info!(
                namespace = %device.namespace, device = %device.name,
                reason = %event.reason, "device event: {}", event.message
            ),
            Severity::Warning => tracing::warn!(
                namespace = %device.namespace, device = %device.name,
                reason = %event.reason, "device event: {}", event.message
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_and_references() {
        assert_eq!(Severity::from_device_type("warn"), Severity::Warning);
        assert_eq!(Severity::from_device_type("info"), Severity::Normal);
        assert_eq!(Severity::from_device_type(""), Severity::Normal);
        let reference = device_reference(&DeviceRef {
            namespace: "ns".into(),
            name: "dev1".into(),
            uid: Some("u".into()),
        });
        assert_eq!(reference.kind.as_deref(), Some("EdgeDevice"));
        assert_eq!(
            reference.api_version.as_deref(),
            Some("management.project-flotta.io/v1alpha1")
        );
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
