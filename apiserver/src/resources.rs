//! The kinds this server registers with the REST layer: the six
//! `management.project-flotta.io/v1alpha1` kinds with their printer columns and
//! validation. Validation decodes into the typed structs of `flotta_api::v1alpha1`, so
//! fields the types don't know are pruned as a CRD's structural schema would.

use std::marker::PhantomData;
use std::sync::Arc;

use flotta_api::selector::Selector;
use flotta_api::v1alpha1::{
    self as v1, EdgeConfig, EdgeDevice, EdgeDeviceSet, EdgeDeviceSignedRequest, EdgeWorkload,
    PlaybookExecution,
};
use flotta_api::validation::{FieldError, FieldErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::rest::resource::{Column, ResourceDef, ResourceRegistry, Strategy};

pub mod core_v1;

/// Validation through a typed struct plus the kind's rule function, and Table cells.
struct Typed<K> {
    rules: fn(&K) -> Vec<FieldError>,
    cells: fn(&Value) -> Vec<Value>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Strategy for Typed<K>
where
    K: DeserializeOwned + Serialize + 'static,
{
    fn validate(&self, object: &Value) -> Result<Value, Vec<FieldError>> {
        // The typed kinds require `spec`; a manifest without one means an empty spec,
        // and stays without one.
        let spec_absent = object.get("spec").is_none_or(Value::is_null);
        let mut object = object.clone();
        if spec_absent {
            object["spec"] = json!({});
        }
        let typed: K = serde_path_to_error::deserialize(&object).map_err(|e| {
            let path = e.path().to_string();
            vec![FieldError::new(
                FieldErrorKind::Invalid,
                if path == "." { String::new() } else { path },
                e.into_inner().to_string(),
            )]
        })?;
        let errors = (self.rules)(&typed);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut canonical = serde_json::to_value(&typed)
            .map_err(|e| vec![FieldError::new(FieldErrorKind::Invalid, "", e.to_string())])?;
        if spec_absent
            && canonical.get("spec") == Some(&json!({}))
            && let Some(o) = canonical.as_object_mut()
        {
            o.remove("spec");
        }
        Ok(canonical)
    }

    fn cells(&self, object: &Value) -> Vec<Value> {
        (self.cells)(object)
    }
}

fn typed<K>(rules: fn(&K) -> Vec<FieldError>, cells: fn(&Value) -> Vec<Value>) -> Arc<dyn Strategy>
where
    K: DeserializeOwned + Serialize + 'static,
{
    Arc::new(Typed::<K> {
        rules,
        cells,
        _kind: PhantomData,
    })
}

/// The value at a `/`-separated JSON pointer, or null.
fn at(obj: &Value, pointer: &str) -> Value {
    obj.pointer(pointer).cloned().unwrap_or(Value::Null)
}

/// The number of items of the array at `pointer` (0 when absent).
fn count(obj: &Value, pointer: &str) -> Value {
    json!(
        obj.pointer(pointer)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    )
}

/// The `type` of the newest condition whose status is "True", or `fallback`.
fn condition_state(obj: &Value, pointer: &str, fallback: &str) -> Value {
    let conditions = obj.pointer(pointer).and_then(Value::as_array);
    let newest = conditions.and_then(|cs| {
        cs.iter()
            // Flotta writes "true" where Kubernetes writes "True".
            .filter(|c| {
                c.get("status")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case("true"))
            })
            .max_by(|a, b| {
                let t = |c: &Value| {
                    c.get("lastTransitionTime")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                t(a).cmp(&t(b))
            })
            .and_then(|c| c.get("type").cloned())
    });
    newest.unwrap_or_else(|| json!(fallback))
}

const fn col(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
    priority: u8,
) -> Column {
    Column {
        name,
        type_,
        description,
        priority,
    }
}

fn edge_device_cells(o: &Value) -> Vec<Value> {
    vec![
        at(o, "/status/phase"),
        at(o, "/status/online"),
        at(o, "/status/lastSeen"),
        count(o, "/status/workloads"),
        at(
            o,
            &format!(
                "/metadata/labels/{}",
                v1::MEMBER_OF_LABEL.replace('/', "~1")
            ),
        ),
        at(o, "/status/lastSyncedResourceVersion"),
        at(o, "/status/upgradeInformation/currentCommitID"),
        at(o, "/status/hardware/hostname"),
    ]
}

/// The status of the `Ready` condition in `status.conditions`, or null.
fn ready(o: &Value) -> Value {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").cloned())
        .unwrap_or(Value::Null)
}

fn edge_device_set_cells(o: &Value) -> Vec<Value> {
    vec![
        json!(
            o.pointer("/status/memberCount")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        ),
        at(o, "/spec/heartbeat/periodSeconds"),
        at(o, "/spec/osInformation/commitID"),
    ]
}

fn edge_workload_cells(o: &Value) -> Vec<Value> {
    let target = match o.pointer("/spec/device").and_then(Value::as_str) {
        Some(device) if !device.is_empty() => json!(device),
        _ => o
            .pointer("/spec/deviceSelector")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .and_then(|s| Selector::from_label_selector(&s).ok())
            .map(|s| json!(s.to_string()))
            .unwrap_or(Value::Null),
    };
    let images: Vec<&str> = o
        .pointer("/spec/pod/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("image").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    vec![
        at(o, "/spec/type"),
        target,
        ready(o),
        json!(images.join(",")),
    ]
}

fn edsr_cells(o: &Value) -> Vec<Value> {
    let approved = o
        .pointer("/spec/approved")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    vec![
        at(o, "/spec/targetNamespace"),
        json!(approved),
        condition_state(o, "/status/conditions", v1::EDSR_CONDITION_PENDING),
        at(o, "/spec/targetSet"),
    ]
}

fn edge_config_cells(o: &Value) -> Vec<Value> {
    vec![
        count(o, "/spec/edgePlaybook/playbooks"),
        ready(o),
        condition_state(o, "/status/edgePlaybookStatus/conditions", ""),
    ]
}

fn playbook_execution_cells(o: &Value) -> Vec<Value> {
    vec![
        json!(
            o.pointer("/spec/executionAttempt")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        ),
        condition_state(o, "/status/conditions", ""),
    ]
}

/// A Flotta kind: group, version, scope, status subresource and category are shared.
fn flotta_kind(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    schema: Value,
    columns: Vec<Column>,
    strategy: Arc<dyn Strategy>,
) -> ResourceDef {
    ResourceDef {
        group: v1::GROUP,
        version: v1::VERSION,
        kind,
        plural,
        singular,
        short_names,
        categories: &["flotta"],
        namespaced: true,
        has_status: true,
        schema,
        columns,
        strategy,
        presenter: None,
    }
}

/// The six `management.project-flotta.io/v1alpha1` kinds.
pub fn flotta() -> ResourceRegistry {
    let mut reg = ResourceRegistry::default();
    reg.register(flotta_kind(
        "EdgeDevice",
        "edgedevices",
        "edgedevice",
        &[],
        v1::object_schema::<EdgeDevice>(),
        vec![
            col(
                "Phase",
                "string",
                "status.phase: the state the device reports (up, degraded)",
                0,
            ),
            col(
                "Online",
                "boolean",
                "status.online: heartbeats arrive within the grace period",
                0,
            ),
            col(
                "Last Seen",
                "date",
                "status.lastSeen: the device's last heartbeat",
                0,
            ),
            col(
                "Workloads",
                "integer",
                "the number of workloads in status.workloads",
                0,
            ),
            col(
                "Set",
                "string",
                "the EdgeDeviceSet, from the flotta/member-of label",
                1,
            ),
            col(
                "Config",
                "string",
                "status.lastSyncedResourceVersion: the configuration version applied",
                1,
            ),
            col(
                "OS Commit",
                "string",
                "status.upgradeInformation.currentCommitID",
                1,
            ),
            col("Hostname", "string", "status.hardware.hostname", 1),
        ],
        typed::<EdgeDevice>(v1::validate_edge_device, edge_device_cells),
    ));
    reg.register(flotta_kind(
        "EdgeDeviceSet",
        "edgedevicesets",
        "edgedeviceset",
        &[],
        v1::object_schema::<EdgeDeviceSet>(),
        vec![
            col(
                "Members",
                "integer",
                "status.memberCount: devices in the set",
                0,
            ),
            col("Heartbeat", "integer", "spec.heartbeat.periodSeconds", 0),
            col("OS Commit", "string", "spec.osInformation.commitID", 1),
        ],
        typed::<EdgeDeviceSet>(v1::validate_edge_device_set, edge_device_set_cells),
    ));
    reg.register(flotta_kind(
        "EdgeWorkload",
        "edgeworkloads",
        "edgeworkload",
        &[],
        v1::object_schema::<EdgeWorkload>(),
        vec![
            col("Type", "string", "spec.type", 0),
            col(
                "Target",
                "string",
                "spec.device, or spec.deviceSelector as a label selector",
                0,
            ),
            col(
                "Ready",
                "string",
                "the Ready condition: placed on its devices",
                0,
            ),
            col(
                "Images",
                "string",
                "the container images of spec.pod.spec.containers",
                1,
            ),
        ],
        typed::<EdgeWorkload>(v1::validate_edge_workload, edge_workload_cells),
    ));
    reg.register(flotta_kind(
        "EdgeDeviceSignedRequest",
        "edgedevicesignedrequests",
        "edgedevicesignedrequest",
        &["edsr"],
        v1::object_schema::<EdgeDeviceSignedRequest>(),
        vec![
            col("Target Namespace", "string", "spec.targetNamespace", 0),
            col("Approved", "boolean", "spec.approved", 0),
            col(
                "State",
                "string",
                "the newest true condition in status.conditions",
                0,
            ),
            col("Target Set", "string", "spec.targetSet", 1),
        ],
        typed::<EdgeDeviceSignedRequest>(v1::validate_edge_device_signed_request, edsr_cells),
    ));
    reg.register(flotta_kind(
        "EdgeConfig",
        "edgeconfigs",
        "edgeconfig",
        &[],
        v1::object_schema::<EdgeConfig>(),
        vec![
            col(
                "Playbooks",
                "integer",
                "the number of spec.edgePlaybook.playbooks",
                0,
            ),
            col("Ready", "string", "the Ready condition", 0),
            col(
                "State",
                "string",
                "the newest true condition in status.edgePlaybookStatus",
                0,
            ),
        ],
        typed::<EdgeConfig>(v1::validate_edge_config, edge_config_cells),
    ));
    reg.register(flotta_kind(
        "PlaybookExecution",
        "playbookexecutions",
        "playbookexecution",
        &[],
        v1::object_schema::<PlaybookExecution>(),
        vec![
            col("Attempt", "integer", "spec.executionAttempt", 0),
            col(
                "State",
                "string",
                "the newest true condition in status.conditions",
                0,
            ),
        ],
        typed::<PlaybookExecution>(v1::validate_playbook_execution, playbook_execution_cells),
    ));
    reg
}

/// The kinds served in standalone mode: the six Flotta kinds plus the core `v1`
/// `ConfigMap` and `Secret` ([`core_v1`]), which a cluster would otherwise provide.
pub fn standalone() -> ResourceRegistry {
    let mut reg = flotta();
    for def in core_v1::kinds() {
        reg.register(def);
    }
    reg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_cell_per_column() {
        let object = json!({"metadata": {"name": "x"}, "spec": {}, "status": {}});
        for def in standalone().all() {
            assert_eq!(
                def.strategy.cells(&object).len(),
                def.columns.len(),
                "{} cells and columns differ",
                def.kind
            );
        }
    }
}
