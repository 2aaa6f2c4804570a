//! Golden round-trips: a manifest decodes and re-encodes to the same JSON, field for field.

use flotta_api::v1alpha1::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::fixture;

/// Decodes `manifest` as `K`, re-encodes it, and checks nothing was added, lost or renamed.
fn assert_round_trip<K: DeserializeOwned + Serialize>(manifest: &Value) -> K {
    let object: K = serde_json::from_value(manifest.clone()).expect("manifest decodes");
    let encoded = serde_json::to_value(&object).expect("object encodes");
    assert_eq!(&encoded, manifest, "round-trip changed the manifest");
    object
}

#[test]
fn edge_device_round_trips_with_flotta_status_keys() {
    let manifest = fixture("edge_device");
    let device: EdgeDevice = assert_round_trip(&manifest);

    let status = device.status.as_ref().expect("status");
    let execs = status.playbook_executions.as_ref().expect("PlaybookExec");
    assert_eq!(execs[0].name, "3f2a9c1e7b5d4e6f8a0b1c2d3e4f5a6b-hardening");
    let conditions = execs[0]
        .playbook_execution_status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .expect("conditions");
    assert_eq!(
        conditions[1].type_,
        PLAYBOOK_EXECUTION_SUCCESSFULLY_COMPLETED
    );
    let hardware = status.hardware.as_ref().expect("hardware");
    assert_eq!(
        hardware.system_vendor.as_ref().and_then(|v| v.virtual_),
        Some(false)
    );
    assert_eq!(
        hardware.host_devices.as_ref().expect("hostDevices")[0].gid,
        Some(20)
    );
    assert_eq!(
        device.spec.mounts.as_ref().expect("mounts")[0]
            .directory
            .as_deref(),
        Some("/mnt/data")
    );
    let s3 = device
        .spec
        .storage
        .as_ref()
        .and_then(|s| s.s3.as_ref())
        .expect("s3");
    assert_eq!(s3.config_map_name.as_deref(), Some("s3-bucket"));
    assert_eq!(
        status
            .upgrade_information
            .as_ref()
            .map(|u| u.current_commit_id.as_str()),
        Some("c4a8f3b2e1d0")
    );

    // The capitalised keys are the wire format; camelCase variants must not appear.
    let encoded = serde_json::to_value(&device).expect("encodes");
    assert!(encoded["status"].get("PlaybookExec").is_some());
    assert!(encoded["status"].get("playbookExec").is_none());
    assert!(
        encoded["status"]["PlaybookExec"][0]
            .get("PlaybookExecutionStatus")
            .is_some()
    );
}

#[test]
fn edge_device_set_round_trips() {
    let set: EdgeDeviceSet = assert_round_trip(&fixture("edge_device_set"));
    assert_eq!(
        set.spec.mounts,
        Some(vec![]),
        "an empty list stays an empty list"
    );
    let log = set.spec.log_collection.as_ref().expect("logCollection");
    assert_eq!(log["local"].buffer_size, Some(64));
    assert!(set.status.is_none());
}

#[test]
fn edge_workload_round_trips_with_full_pod_spec() {
    let workload: EdgeWorkload = assert_round_trip(&fixture("edge_workload"));
    let pod = &workload.spec.pod.as_ref().expect("pod").spec;
    assert_eq!(pod.containers.len(), 2);
    assert_eq!(pod.init_containers.as_ref().map(Vec::len), Some(1));
    assert_eq!(workload.spec.type_, WORKLOAD_TYPE_POD);
    assert_eq!(
        workload.spec.data.as_ref().and_then(|d| d.ingress.clone()),
        Some(vec![])
    );
    let selector = workload
        .spec
        .device_selector
        .as_ref()
        .expect("deviceSelector");
    assert_eq!(selector.match_expressions.as_ref().map(Vec::len), Some(1));
    assert_eq!(workload.status, Some(EdgeWorkloadStatus::default()));
}

#[test]
fn edge_device_signed_request_round_trips() {
    let request: EdgeDeviceSignedRequest =
        assert_round_trip(&fixture("edge_device_signed_request"));
    assert!(request.spec.is_approved());
    let conditions = &request.status.as_ref().expect("status").conditions;
    assert_eq!(conditions[0].type_, EDSR_CONDITION_PENDING);
    assert_eq!(
        conditions[0].status, "true",
        "Flotta's lowercase status is kept as is"
    );
}

#[test]
fn edge_config_round_trips_with_base64_content_and_integer_capabilities() {
    let config: EdgeConfig = assert_round_trip(&fixture("edge_config"));
    let playbook = &config
        .spec
        .edge_playbook
        .as_ref()
        .expect("edgePlaybook")
        .playbooks
        .as_ref()
        .expect("playbooks")[0];
    let content = String::from_utf8(playbook.content.0.clone()).expect("utf-8");
    assert!(content.starts_with("- hosts: all"), "{content}");
    let caps = playbook
        .required_privilege_level
        .as_ref()
        .expect("privileges");
    assert_eq!(caps.cap_add, Some(vec![0, 21]));
    assert_eq!(CAPABILITY_NAMES[21], "SYS_ADMIN");
    assert_eq!(
        playbook
            .privilege_escalation_options
            .as_ref()
            .and_then(|o| o.become_),
        Some(true)
    );
}

#[test]
fn playbook_execution_round_trips() {
    let execution: PlaybookExecution = assert_round_trip(&fixture("playbook_execution"));
    assert_eq!(execution.spec.execution_attempt, Some(2));
    let owners = execution
        .metadata
        .owner_references
        .as_ref()
        .expect("owners");
    assert_eq!(owners[0].kind, "EdgeConfig");
}

#[test]
fn a_minimal_manifest_stays_minimal() {
    let manifest = json!({
        "apiVersion": API_VERSION,
        "kind": "EdgeDevice",
        "metadata": {"name": "d1", "namespace": "default"},
        "spec": {}
    });
    let device: EdgeDevice = assert_round_trip(&manifest);
    assert_eq!(device.spec, EdgeDeviceSpec::default());
    assert!(device.status.is_none());

    // Empty collections given stay given; nothing absent is invented.
    let manifest = json!({
        "apiVersion": API_VERSION,
        "kind": "EdgeDevice",
        "metadata": {"name": "d1"},
        "spec": {"logCollection": {}, "mounts": [], "metrics": {}},
        "status": {"workloads": [], "PlaybookExec": []}
    });
    assert_round_trip::<EdgeDevice>(&manifest);
}

#[test]
fn an_edsr_condition_without_type_is_pending() {
    let manifest = json!({
        "apiVersion": API_VERSION,
        "kind": "EdgeDeviceSignedRequest",
        "metadata": {"name": "d1", "namespace": "default"},
        "spec": {"targetNamespace": "factory-a"},
        "status": {"conditions": [{"status": "true"}]}
    });
    let request: EdgeDeviceSignedRequest = serde_json::from_value(manifest).expect("decodes");
    let conditions = &request.status.expect("status").conditions;
    assert_eq!(conditions[0].type_, EDSR_CONDITION_PENDING);
}

#[test]
fn new_objects_carry_group_version_and_kind() {
    let workload = EdgeWorkload::new(
        "w1",
        EdgeWorkloadSpec {
            type_: WORKLOAD_TYPE_POD.into(),
            ..EdgeWorkloadSpec::default()
        },
    );
    let encoded = serde_json::to_value(&workload).expect("encodes");
    assert_eq!(encoded["apiVersion"], json!(format!("{GROUP}/{VERSION}")));
    assert_eq!(encoded["kind"], json!("EdgeWorkload"));
    assert_eq!(encoded["spec"], json!({"type": "pod"}));
    assert!(encoded.get("status").is_none());
}
