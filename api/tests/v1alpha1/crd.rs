//! The CRD descriptions (names, scope, subresources) and the structural object schemas.

use flotta_api::v1alpha1::*;
use kube::CustomResourceExt;
use kube::core::Resource;
use serde_json::{Value, json};

/// `(plural, kind, crd)` of every kind.
fn all_crds() -> Vec<(
    &'static str,
    &'static str,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
)> {
    vec![
        ("edgedevices", "EdgeDevice", EdgeDevice::crd()),
        ("edgedevicesets", "EdgeDeviceSet", EdgeDeviceSet::crd()),
        ("edgeworkloads", "EdgeWorkload", EdgeWorkload::crd()),
        (
            "edgedevicesignedrequests",
            "EdgeDeviceSignedRequest",
            EdgeDeviceSignedRequest::crd(),
        ),
        ("edgeconfigs", "EdgeConfig", EdgeConfig::crd()),
        (
            "playbookexecutions",
            "PlaybookExecution",
            PlaybookExecution::crd(),
        ),
    ]
}

/// `(kind, object schema)` of every kind.
fn all_schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("EdgeDevice", object_schema::<EdgeDevice>()),
        ("EdgeDeviceSet", object_schema::<EdgeDeviceSet>()),
        ("EdgeWorkload", object_schema::<EdgeWorkload>()),
        (
            "EdgeDeviceSignedRequest",
            object_schema::<EdgeDeviceSignedRequest>(),
        ),
        ("EdgeConfig", object_schema::<EdgeConfig>()),
        ("PlaybookExecution", object_schema::<PlaybookExecution>()),
    ]
}

#[test]
fn every_kind_is_namespaced_in_the_flotta_group_with_a_status_subresource() {
    for (plural, kind, crd) in all_crds() {
        assert_eq!(crd.spec.group, GROUP, "{kind}");
        assert_eq!(crd.spec.scope, "Namespaced", "{kind}");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.plural, plural, "{kind}");
        assert_eq!(
            crd.spec.names.singular.as_deref(),
            Some(kind.to_lowercase().as_str())
        );
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["flotta".to_string()]),
            "{kind}"
        );
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{plural}.{GROUP}").as_str())
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, VERSION);
        let subresources = version.subresources.as_ref().expect("subresources");
        assert!(
            subresources.status.is_some(),
            "{kind} has a status subresource"
        );
        assert!(subresources.scale.is_none());
    }
    assert_eq!(EdgeDevice::api_version(&()), API_VERSION);
    let listed: Vec<_> = crds().into_iter().map(|c| c.spec.names.kind).collect();
    let expected: Vec<_> = all_crds()
        .into_iter()
        .map(|(_, kind, _)| kind.to_string())
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn the_signed_request_has_a_proper_plural_and_the_edsr_short_name() {
    let crd = EdgeDeviceSignedRequest::crd();
    assert_eq!(crd.spec.names.plural, "edgedevicesignedrequests");
    assert_eq!(crd.spec.names.short_names, Some(vec!["edsr".to_string()]));
    assert_eq!(EdgeDeviceSignedRequest::shortnames(), &["edsr"]);
    for (_, kind, crd) in all_crds() {
        if kind != "EdgeDeviceSignedRequest" {
            assert_eq!(crd.spec.names.short_names, None, "{kind}");
        }
    }
}

#[test]
fn printer_columns_point_at_real_fields() {
    let columns = |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
        crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.json_path)
            .collect::<Vec<_>>()
    };
    assert!(columns(EdgeDevice::crd()).contains(&".status.phase".to_string()));
    // Flotta's EDSR `Status` column pointed at a nonexistent `.status.phase`.
    assert!(!columns(EdgeDeviceSignedRequest::crd()).contains(&".status.phase".to_string()));
    assert!(columns(EdgeDeviceSignedRequest::crd()).contains(&".spec.targetNamespace".to_string()));
    for (_, kind, crd) in all_crds() {
        for path in columns(crd) {
            if path.starts_with(".metadata.") {
                continue;
            }
            let mut schema = object_schema_of(kind);
            for step in path.trim_start_matches('.').split('.') {
                schema = schema["properties"][step].clone();
                assert!(schema.is_object(), "{kind}: column {path} has no schema");
            }
        }
    }
}

fn object_schema_of(kind: &str) -> Value {
    all_schemas()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, s)| s)
        .expect("known kind")
}

/// Every violation of the Kubernetes structural-schema rules, plus any `$ref`, in `schema`.
fn structural_violations(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        out.push(format!("{path}: not a schema object"));
        return;
    };
    for forbidden in [
        "$ref",
        "$defs",
        "definitions",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
    ] {
        if node.contains_key(forbidden) {
            out.push(format!("{path}: has {forbidden}"));
        }
    }
    let typed = node
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty());
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&json!(true));
    let preserve = node.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if !typed && !int_or_string && !preserve {
        out.push(format!("{path}: no type"));
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        let required = node.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !properties.contains_key(name) {
                out.push(format!("{path}: requires unknown property {name}"));
            }
        }
        for (name, child) in properties {
            structural_violations(child, &format!("{path}.{name}"), out);
        }
    }
    if let Some(additional) = node.get("additionalProperties").filter(|a| a.is_object()) {
        structural_violations(additional, &format!("{path}[*]"), out);
    }
    if let Some(items) = node.get("items") {
        structural_violations(items, &format!("{path}[]"), out);
    }
}

#[test]
fn every_object_schema_is_structural_and_self_contained() {
    for (kind, schema) in all_schemas() {
        let mut violations = Vec::new();
        structural_violations(&schema, kind, &mut violations);
        assert!(violations.is_empty(), "{kind}: {violations:#?}");
        assert!(!schema.to_string().contains("$ref"), "{kind}");
        for top in ["apiVersion", "kind", "metadata", "spec", "status"] {
            assert!(
                schema["properties"].get(top).is_some(),
                "{kind} lacks {top}"
            );
        }
        assert_eq!(schema["properties"]["metadata"], json!({"type": "object"}));
    }
}

#[test]
fn the_checker_catches_non_structural_schemas() {
    let mut violations = Vec::new();
    let bad = json!({
        "type": "object",
        "properties": {
            "a": {"$ref": "#/definitions/A"},
            "b": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "c": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}
        },
        "required": ["d"]
    });
    structural_violations(&bad, "x", &mut violations);
    assert_eq!(violations.len(), 6, "{violations:#?}");
}

#[test]
fn the_workload_schema_embeds_the_pod_spec_inline() {
    let schema = object_schema::<EdgeWorkload>();
    let spec = &schema["properties"]["spec"];
    assert_eq!(spec["required"], json!(["type"]));
    assert_eq!(spec["properties"]["type"]["enum"], json!(["pod"]));
    let pod_spec = &spec["properties"]["pod"]["properties"]["spec"];
    assert_eq!(spec["properties"]["pod"]["required"], json!(["spec"]));
    assert!(
        pod_spec.get("default").is_none(),
        "a required field advertises no default"
    );
    assert_eq!(pod_spec["required"], json!(["containers"]));
    let containers = &pod_spec["properties"]["containers"];
    assert_eq!(containers["type"], json!("array"));
    let container = &containers["items"];
    assert_eq!(container["required"], json!(["name"]));
    assert_eq!(container["properties"]["image"]["type"], json!("string"));

    // Int-or-string and quantity fields keep their markers.
    let port =
        &container["properties"]["livenessProbe"]["properties"]["httpGet"]["properties"]["port"];
    assert_eq!(port["x-kubernetes-int-or-string"], json!(true));
    let limits = &container["properties"]["resources"]["properties"]["limits"];
    assert_eq!(
        limits["additionalProperties"]["x-kubernetes-int-or-string"],
        json!(true)
    );

    // Container ports merge by key under server-side apply, as in Flotta's CRD.
    let ports = &container["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-list-type"], json!("map"));
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["containerPort", "protocol"])
    );
    assert_eq!(
        ports["items"]["properties"]["protocol"]["default"],
        json!("TCP")
    );

    let selector = &spec["properties"]["deviceSelector"]["properties"];
    assert_eq!(
        selector["matchLabels"]["additionalProperties"]["type"],
        json!("string")
    );
}

#[test]
fn schemas_carry_flotta_constraints_and_required_fields() {
    let device = object_schema::<EdgeDevice>();
    let spec = &device["properties"]["spec"]["properties"];
    assert_eq!(
        spec["heartbeat"]["properties"]["periodSeconds"]["minimum"],
        json!(1.0)
    );
    let log = &spec["logCollection"]["additionalProperties"]["properties"];
    assert_eq!(log["kind"]["enum"], json!(["syslog"]));
    assert_eq!(log["bufferSize"]["minimum"], json!(1.0));
    assert_eq!(log["bufferSize"]["default"], json!(12));
    assert_eq!(log["syslogConfig"]["required"], json!(["name"]));
    assert!(
        log["syslogConfig"]["properties"]["name"]
            .get("default")
            .is_none()
    );
    let status = &device["properties"]["status"]["properties"];
    assert!(status.get("PlaybookExec").is_some());
    let hardware = &status["hardware"];
    assert_eq!(hardware["required"], json!(["disks", "gpus", "interfaces"]));
    assert_eq!(
        status["upgradeInformation"]["required"],
        json!(["currentCommitID"])
    );

    let edsr = object_schema::<EdgeDeviceSignedRequest>();
    assert_eq!(
        edsr["properties"]["spec"]["required"],
        json!(["targetNamespace"])
    );
    let condition = &edsr["properties"]["status"]["properties"]["conditions"]["items"];
    assert_eq!(
        condition["properties"]["type"]["enum"],
        json!(["declined", "approved", "pending"])
    );
    assert_eq!(condition["properties"]["type"]["default"], json!("pending"));

    let config = object_schema::<EdgeConfig>();
    let playbooks =
        &config["properties"]["spec"]["properties"]["edgePlaybook"]["properties"]["playbooks"];
    assert_eq!(playbooks["minItems"], json!(1));
    let playbook = &playbooks["items"];
    assert_eq!(playbook["required"], json!(["content"]));
    assert_eq!(playbook["properties"]["content"]["format"], json!("byte"));
    assert_eq!(
        playbook["properties"]["privilegeEscalationOptions"]["properties"]["becomeMethod"]["enum"],
        json!(["sudo", "su"])
    );

    let workload = object_schema::<EdgeWorkload>();
    let metrics = &workload["properties"]["spec"]["properties"]["metrics"]["properties"];
    assert_eq!(metrics["port"]["maximum"], json!(65535.0));
    assert_eq!(
        metrics["containers"]["additionalProperties"]["properties"]["port"]["minimum"],
        json!(0.0)
    );
}
