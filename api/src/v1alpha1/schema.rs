//! The OpenAPI v3 schema of a whole object, as a CRD's `openAPIV3Schema` would hold it.
//!
//! kube's derive produces the schema of `spec` and `status`, inlined (no `$ref`) and rewritten
//! to be structural. This adds what controller-gen adds and kube leaves out: the `apiVersion`,
//! `kind` and `metadata` properties. Field transforms used by the types' derives live here too.

use kube::CustomResourceExt;
use schemars::Schema;
use serde_json::{Value, json};

/// The structural OpenAPI v3 schema of a whole `K` object, self-contained (no `$ref`).
pub fn object_schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let derived = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok());
    // Every kind here derives its schema; the fallback keeps the function total all the same.
    let Some(Value::Object(mut schema)) = derived else {
        return json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    };
    schema.insert("type".into(), json!("object"));
    let properties = schema.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(properties) = properties {
        properties.insert(
            "apiVersion".into(),
            json!({
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            }),
        );
        properties.insert(
            "kind".into(),
            json!({
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string",
            }),
        );
        properties.insert("metadata".into(), json!({"type": "object"}));
    }
    Value::Object(schema)
}

/// Field transform for required fields that deserialise with a default: the default only stands
/// in for "missing" until validation reports it, so it must not be advertised in the schema.
pub(crate) fn drop_default(schema: &mut Schema) {
    schema.remove("default");
}

/// Field transform for the embedded `PodSpec`: no default (see [`drop_default`]), and the
/// list-map markers Flotta's CRD carries, so that server-side apply merges container ports and
/// topology spread constraints by key rather than replacing the lists.
pub(crate) fn pod_spec(schema: &mut Schema) {
    drop_default(schema);
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        let ports = properties
            .get_mut(list)
            .and_then(|l| l.pointer_mut("/items/properties/ports"));
        if let Some(Value::Object(ports)) = ports {
            ports.insert("x-kubernetes-list-type".into(), json!("map"));
            ports.insert(
                "x-kubernetes-list-map-keys".into(),
                json!(["containerPort", "protocol"]),
            );
            // A list-map key must be required or defaulted; Kubernetes defaults it to TCP.
            if let Some(Value::Object(protocol)) = ports
                .get_mut("items")
                .and_then(|i| i.pointer_mut("/properties/protocol"))
            {
                protocol.insert("default".into(), json!("TCP"));
            }
        }
    }
    if let Some(Value::Object(constraints)) = properties.get_mut("topologySpreadConstraints") {
        constraints.insert("x-kubernetes-list-type".into(), json!("map"));
        constraints.insert(
            "x-kubernetes-list-map-keys".into(),
            json!(["topologyKey", "whenUnsatisfiable"]),
        );
    }
}
