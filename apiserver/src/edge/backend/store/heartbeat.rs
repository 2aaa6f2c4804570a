//! What a heartbeat changes on an EdgeDevice (`flotta-inventory.md` §3.8), as pure
//! functions: the status fields it reports, the workload phase mapping, the device events
//! kept in an annotation, and the hash that lets an unchanged heartbeat skip the store.
//!
//! Workload phases: devices report podman pod states; they are mapped to Flotta's
//! documented phases where one fits (`Running`; `Created`/`Initialized`/`Configured` →
//! `Deploying`; `Exited`/`Stopped`/`Dead` → `Exited`; `Crashed`/`Error` → `Crashed`) and
//! kept verbatim otherwise (`Degraded`, `Paused`, ...). Only workloads already placed on
//! the device (in `status.workloads`) are updated, as in Flotta.
//!
//! Device events: Flotta turned them into Kubernetes Events, and so do we in aggregated
//! mode ([`device_events`] converts them for [`crate::cluster::events::DeviceEventSink`]);
//! standalone mode has no Event objects, so in every mode the newest
//! [`MAX_DEVICE_EVENTS`] are also kept as a JSON list in the device's
//! [`DEVICE_EVENTS_ANNOTATION`] (`kubectl describe edgedevice` shows it).

use std::hash::Hasher;

use flotta_api::edge::{self, Heartbeat};
use flotta_api::v1alpha1::{self as v1, EdgeDeviceStatus, PlaybookExecutionCondition};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::hardware::merge_hardware;
use crate::cluster::events::{DeviceEvent, Severity};

/// The EdgeDevice annotation holding the newest device-reported events: a JSON list of
/// `{"time", "type" (Normal|Warning), "reason", "message"}`, oldest first.
pub const DEVICE_EVENTS_ANNOTATION: &str = "management.project-flotta.io/device-events";
/// How many device events the annotation keeps.
pub const MAX_DEVICE_EVENTS: usize = 10;
/// Playbook execution states after which nothing more happens.
pub(crate) const FINAL_PLAYBOOK_STATES: [&str; 2] = [
    v1::PLAYBOOK_EXECUTION_SUCCESSFULLY_COMPLETED,
    v1::PLAYBOOK_EXECUTION_COMPLETED_WITH_ERROR,
];

/// Feeds written bytes into a hasher, so a value can be hashed through its serialisation
/// without building the bytes.
struct HashWriter<'h, H: Hasher>(&'h mut H);

impl<H: Hasher> std::io::Write for HashWriter<'_, H> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A hash of what a heartbeat reports (everything but its events, which are new each time).
pub(crate) fn report_hash(heartbeat: &Heartbeat) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let reported = (
        &heartbeat.status,
        &heartbeat.version,
        &heartbeat.workloads,
        &heartbeat.playbook_executions,
        &heartbeat.upgrade,
        &heartbeat.hardware,
    );
    // Serialising plain data into a hasher cannot fail; a failure would only weaken
    // deduplication, never correctness, since the hash is only compared for equality.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), &reported);
    hasher.finish()
}

/// Flotta's phase for a reported podman pod state (see the module documentation).
pub(crate) fn workload_phase(reported: &str) -> String {
    match reported.to_ascii_lowercase().as_str() {
        "running" => v1::WORKLOAD_PHASE_RUNNING.to_string(),
        "created" | "initialized" | "configured" | "deploying" => {
            v1::WORKLOAD_PHASE_DEPLOYING.to_string()
        }
        "exited" | "stopped" | "dead" => v1::WORKLOAD_PHASE_EXITED.to_string(),
        "crashed" | "error" => "Crashed".to_string(),
        _ => reported.to_string(),
    }
}

/// A device-reported time; Go's zero time and unparseable values mean "none".
fn reported_time(value: Option<&String>) -> Option<Time> {
    let t: Timestamp = value?.parse().ok()?;
    (t.as_second() > Timestamp::UNIX_EPOCH.as_second()).then_some(Time(t))
}

/// Applies a heartbeat to a device status at `now`; also marks the device online.
pub(crate) fn apply_heartbeat(
    status: &mut EdgeDeviceStatus,
    heartbeat: &Heartbeat,
    now: Timestamp,
) {
    if let Some(version) = &heartbeat.version {
        status.last_synced_resource_version = Some(version.clone());
    }
    if let Some(phase) = &heartbeat.status {
        status.phase = Some(phase.clone());
    }
    if let Some(hardware) = &heartbeat.hardware {
        status.hardware = Some(merge_hardware(status.hardware.take(), hardware));
    }
    for workload in status.workloads.iter_mut().flatten() {
        let Some(reported) = heartbeat
            .workloads
            .iter()
            .find(|w| w.name.as_deref() == Some(workload.name.as_str()))
        else {
            continue;
        };
        if let Some(state) = &reported.status {
            let phase = workload_phase(state);
            if workload.phase.as_deref() != Some(phase.as_str()) {
                workload.phase = Some(phase);
                workload.last_transition_time = Some(Time(now));
            }
        }
        if let Some(upload) = reported_time(reported.last_data_upload.as_ref()) {
            workload.last_data_upload = Some(upload);
        }
    }
    for exec in status.playbook_executions.iter_mut().flatten() {
        let Some(state) = heartbeat
            .playbook_executions
            .iter()
            .find(|p| p.name.as_deref() == Some(exec.name.as_str()))
            .and_then(|p| p.status.as_ref())
        else {
            continue;
        };
        let conditions = exec
            .playbook_execution_status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new);
        advance_conditions(conditions, state, now);
    }
    if let Some(upgrade) = &heartbeat.upgrade {
        status.upgrade_information = Some(v1::UpgradeInformation {
            current_commit_id: upgrade.current_commit_id.clone().unwrap_or_default(),
            last_upgrade_status: upgrade.last_upgrade_status.clone(),
            last_upgrade_time: upgrade.last_upgrade_time.clone(),
        });
    }
    status.online = Some(true);
}

/// Appends condition `state` unless it is already the newest: the previous newest
/// becomes `False`. Returns whether anything changed.
pub(crate) fn advance_conditions(
    conditions: &mut Vec<PlaybookExecutionCondition>,
    state: &str,
    now: Timestamp,
) -> bool {
    if conditions.last().is_some_and(|c| c.type_ == state) {
        return false;
    }
    if let Some(last) = conditions.last_mut() {
        last.status = "False".to_string();
    }
    conditions.push(PlaybookExecutionCondition {
        type_: state.to_string(),
        status: "True".to_string(),
        reason: None,
        message: None,
        last_transition_time: Some(Time(now)),
    });
    true
}

/// Device-reported events as the event sink takes them (`warn` → Warning, anything else
/// Normal; missing reason or message → empty).
pub(crate) fn device_events(events: &[edge::EventInfo]) -> Vec<DeviceEvent> {
    events
        .iter()
        .map(|event| DeviceEvent {
            severity: Severity::from_device_type(event.event_type.as_deref().unwrap_or("")),
            reason: event.reason.clone().unwrap_or_default(),
            message: event.message.clone().unwrap_or_default(),
        })
        .collect()
}

/// The device events annotation value after appending `events` to `current` (keeping the
/// newest [`MAX_DEVICE_EVENTS`]).
pub(crate) fn append_events(
    current: Option<&str>,
    events: &[edge::EventInfo],
    now: &str,
) -> String {
    let mut list: Vec<Value> = current
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    for event in events {
        let kind = if event.event_type.as_deref() == Some(edge::EVENT_TYPE_WARN) {
            "Warning"
        } else {
            "Normal"
        };
        list.push(json!({
            "time": now,
            "type": kind,
            "reason": event.reason.clone().unwrap_or_default(),
            "message": event.message.clone().unwrap_or_default(),
        }));
    }
    let excess = list.len().saturating_sub(MAX_DEVICE_EVENTS);
    list.drain(..excess);
    Value::Array(list).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotta_api::v1alpha1::DeviceWorkload;

    fn status_with(workload: &str, phase: &str) -> EdgeDeviceStatus {
        EdgeDeviceStatus {
            workloads: Some(vec![DeviceWorkload {
                name: workload.into(),
                phase: Some(phase.into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn heartbeat(workload: &str, state: &str) -> Heartbeat {
        Heartbeat {
            status: Some("up".into()),
            version: Some("7".into()),
            workloads: vec![edge::WorkloadStatus {
                name: Some(workload.into()),
                status: Some(state.into()),
                last_data_upload: Some("0001-01-01T00:00:00Z".into()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn phases_map_to_flotta_and_only_placed_workloads_change() {
        let now = Timestamp::now();
        let mut status = status_with("w", "Deploying");
        apply_heartbeat(&mut status, &heartbeat("w", "running"), now);
        let w = &status.workloads.as_ref().expect("workloads")[0];
        assert_eq!(w.phase.as_deref(), Some("Running"));
        assert!(w.last_transition_time.is_some());
        assert!(w.last_data_upload.is_none(), "Go's zero time means none");
        assert_eq!(status.phase.as_deref(), Some("up"));
        assert_eq!(status.online, Some(true));

        let mut other = status_with("w", "Deploying");
        apply_heartbeat(&mut other, &heartbeat("unplaced", "Running"), now);
        assert_eq!(other.workloads.as_ref().expect("workloads").len(), 1);
        assert_eq!(workload_phase("Degraded"), "Degraded");
        assert_eq!(workload_phase("Created"), "Deploying");
    }

    #[test]
    fn same_report_same_hash_and_events_do_not_count() {
        let a = heartbeat("w", "Running");
        let mut b = a.clone();
        b.events.push(edge::EventInfo {
            reason: Some("Started".into()),
            ..Default::default()
        });
        assert_eq!(report_hash(&a), report_hash(&b));
        assert_ne!(report_hash(&a), report_hash(&heartbeat("w", "Exited")));
    }

    #[test]
    fn events_keep_the_newest() {
        let events: Vec<edge::EventInfo> = (0..12)
            .map(|i| edge::EventInfo {
                reason: Some(format!("r{i}")),
                message: Some("m".into()),
                event_type: Some(if i == 11 { "warn" } else { "info" }.into()),
            })
            .collect();
        let value = append_events(None, &events, "2030-01-01T00:00:00Z");
        let list: Vec<Value> = serde_json::from_str(&value).expect("json");
        assert_eq!(list.len(), MAX_DEVICE_EVENTS);
        assert_eq!(list[0]["reason"], "r2");
        assert_eq!(list[9]["type"], "Warning");
    }

    #[test]
    fn playbook_conditions_advance_once() {
        let now = Timestamp::now();
        let mut conditions = Vec::new();
        assert!(advance_conditions(&mut conditions, "Running", now));
        assert!(!advance_conditions(&mut conditions, "Running", now));
        assert!(advance_conditions(
            &mut conditions,
            "SuccessfullyCompleted",
            now
        ));
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[1].status, "True");
    }

    #[test]
    fn device_events_map_severity_and_fill_blanks() {
        let events = device_events(&[
            edge::EventInfo {
                reason: Some("Failed".into()),
                message: Some("image pull failed".into()),
                event_type: Some(edge::EVENT_TYPE_WARN.into()),
            },
            edge::EventInfo {
                reason: None,
                message: None,
                event_type: None,
            },
        ]);
        assert_eq!(
            events,
            vec![
                DeviceEvent {
                    severity: Severity::Warning,
                    reason: "Failed".into(),
                    message: "image pull failed".into(),
                },
                DeviceEvent {
                    severity: Severity::Normal,
                    reason: String::new(),
                    message: String::new(),
                },
            ]
        );
    }
}
