//! Legacy (v1) discovery documents: `GET /api` (`APIVersions`), `GET /apis`
//! (`APIGroupList`), `GET /apis/<g>` (`APIGroup`) and `GET /apis/<g>/<v>` or `GET /api/v1`
//! (`APIResourceList`), built from a [`ResourceRegistry`].
//!
//! Pure functions returning JSON values; the router serves them. Aggregated discovery
//! (`apidiscovery.k8s.io/v2`) is not produced here: the aggregator falls back to these
//! legacy documents when it is absent.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::resource::{ResourceDef, ResourceRegistry};

/// Verbs of a main resource endpoint, sorted as Go's installer reports them.
const RESOURCE_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Verbs of the `status` subresource, sorted.
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

/// `GET /api`: the core group's versions; empty while no core kind is registered (kubectl
/// reports an empty `v1` resource list as an error).
pub fn api_versions(reg: &ResourceRegistry) -> Value {
    let versions: Vec<&str> = reg
        .group_versions()
        .into_iter()
        .filter(|(g, _)| g.is_empty())
        .map(|(_, v)| v)
        .collect();
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": ""}
        ],
    })
}

/// `GET /apis`: every non-core group in the registry, in registration order.
pub fn api_group_list(reg: &ResourceRegistry) -> Value {
    let groups: Vec<Value> = group_names(reg)
        .into_iter()
        .filter_map(|g| group_body(reg, g))
        .collect();
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups,
    })
}

/// `GET /apis/<group>`: the group's versions, or `None` if no kind of that (non-core)
/// group is registered.
pub fn api_group(reg: &ResourceRegistry, group: &str) -> Option<Value> {
    let mut body = group_body(reg, group)?;
    if let Value::Object(map) = &mut body {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Some(body)
}

/// `GET /apis/<group>/<version>` (or `GET /api/v1` with `group == ""`): the resources
/// served in that group-version, each followed by its `status` subresource when it has
/// one. `None` if nothing is registered there.
pub fn api_resource_list(reg: &ResourceRegistry, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = reg
        .all()
        .iter()
        .map(|d| d.as_ref())
        .filter(|d| d.group == group && d.version == version)
        .collect();
    let first = defs.first()?;
    let mut resources = Vec::new();
    for def in &defs {
        resources.push(resource_entry(def));
        if def.has_status {
            resources.push(json!({
                "name": format!("{}/status", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": first.api_version(),
        "resources": resources,
    }))
}

/// The `storageVersionHash` of a kind: base64 of the first 8 bytes of the SHA-256 of
/// `group/version/kind`, as Go computes it. Stable across restarts and replicas.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// One `APIResource` entry for the main endpoint of a kind.
fn resource_entry(def: &ResourceDef) -> Value {
    let mut entry = json!({
        "name": def.plural,
        "singularName": def.singular,
        "namespaced": def.namespaced,
        "kind": def.kind,
        "verbs": RESOURCE_VERBS,
        "storageVersionHash": storage_version_hash(def.group, def.version, def.kind),
    });
    if let Value::Object(map) = &mut entry {
        // Go marks both `omitempty`; kubectl treats a missing list and an empty one alike.
        if !def.short_names.is_empty() {
            map.insert("shortNames".into(), json!(def.short_names));
        }
        if !def.categories.is_empty() {
            map.insert("categories".into(), json!(def.categories));
        }
    }
    entry
}

/// Distinct non-core group names, in registration order.
fn group_names(reg: &ResourceRegistry) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (group, _) in reg.group_versions() {
        if !group.is_empty() && !out.contains(&group) {
            out.push(group);
        }
    }
    out
}

/// `{name, versions, preferredVersion}` of a non-core group; the preferred version is the
/// first one registered.
fn group_body(reg: &ResourceRegistry, group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let versions: Vec<Value> = reg
        .group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first()?.clone();
    Some(json!({
        "name": group,
        "versions": versions,
        "preferredVersion": preferred,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use flotta_api::validation::FieldError;
    use serde_json::{Value, json};

    use super::*;
    use crate::rest::resource::{Column, ResourceDef, ResourceRegistry, Strategy};

    /// A strategy that accepts everything and prints no cells.
    struct AcceptAll;

    impl Strategy for AcceptAll {
        fn validate(&self, object: &Value) -> Result<Value, Vec<FieldError>> {
            Ok(object.clone())
        }

        fn cells(&self, _object: &Value) -> Vec<Value> {
            Vec::new()
        }
    }

    /// A small structural object schema like a CRD's `openAPIV3Schema`.
    pub(crate) fn widget_schema() -> Value {
        json!({
            "description": "A widget.",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "properties": {
                        "size": {"type": "integer", "format": "int64", "nullable": true},
                        "port": {
                            "x-kubernetes-int-or-string": true,
                            "anyOf": [{"type": "integer"}, {"type": "string"}]
                        },
                        "tags": {
                            "type": "array",
                            "items": {"type": "string"},
                            "x-kubernetes-list-type": "set"
                        }
                    },
                    "required": ["size"]
                },
                "status": {
                    "type": "object",
                    "properties": {"phase": {"type": "string"}}
                }
            },
            "required": ["spec"]
        })
    }

    /// A fake namespaced kind with a status subresource.
    pub(crate) fn widget(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        has_status: bool,
        schema: Value,
    ) -> ResourceDef {
        ResourceDef {
            group,
            version,
            kind,
            plural,
            singular,
            short_names: if has_status { &["wd"] } else { &[] },
            categories: &["toys"],
            namespaced: true,
            has_status,
            schema,
            columns: vec![Column {
                name: "Phase",
                type_: "string",
                description: "status.phase",
                priority: 0,
            }],
            strategy: Arc::new(AcceptAll),
            presenter: None,
        }
    }

    /// Two kinds in `toys.example.com/v1alpha1`, one in `/v1`, one core kind.
    pub(crate) fn registry() -> ResourceRegistry {
        let mut reg = ResourceRegistry::default();
        reg.register(widget(
            "toys.example.com",
            "v1alpha1",
            "Widget",
            "widgets",
            "widget",
            true,
            widget_schema(),
        ));
        reg.register(widget(
            "toys.example.com",
            "v1alpha1",
            "Gadget",
            "gadgets",
            "gadget",
            false,
            widget_schema(),
        ));
        reg.register(widget(
            "toys.example.com",
            "v1",
            "Gizmo",
            "gizmos",
            "gizmo",
            false,
            widget_schema(),
        ));
        reg.register(widget(
            "",
            "v1",
            "Trinket",
            "trinkets",
            "trinket",
            false,
            widget_schema(),
        ));
        reg
    }

    #[test]
    fn api_versions_lists_core_v1_only_when_served() {
        let doc = api_versions(&registry());
        assert_eq!(doc["kind"], "APIVersions");
        assert_eq!(doc["versions"], json!(["v1"]));
        let flotta_only = crate::resources::flotta();
        assert_eq!(api_versions(&flotta_only)["versions"], json!([]));
        assert_eq!(
            doc["serverAddressByClientCIDRs"][0]["clientCIDR"],
            "0.0.0.0/0"
        );
    }

    #[test]
    fn group_list_skips_core_and_prefers_first_version() {
        let doc = api_group_list(&registry());
        assert_eq!(doc["kind"], "APIGroupList");
        assert_eq!(doc["apiVersion"], "v1");
        let groups = doc["groups"].as_array().cloned().unwrap_or_default();
        assert_eq!(groups.len(), 1, "{doc}");
        assert_eq!(groups[0]["name"], "toys.example.com");
        assert_eq!(
            groups[0]["versions"],
            json!([
                {"groupVersion": "toys.example.com/v1alpha1", "version": "v1alpha1"},
                {"groupVersion": "toys.example.com/v1", "version": "v1"}
            ])
        );
        assert_eq!(
            groups[0]["preferredVersion"],
            json!({"groupVersion": "toys.example.com/v1alpha1", "version": "v1alpha1"})
        );
    }

    #[test]
    fn api_group_known_and_unknown() {
        let reg = registry();
        let doc = api_group(&reg, "toys.example.com").expect("group exists");
        assert_eq!(doc["kind"], "APIGroup");
        assert_eq!(doc["apiVersion"], "v1");
        assert_eq!(doc["name"], "toys.example.com");
        assert_eq!(doc["versions"].as_array().map(Vec::len), Some(2));
        assert!(api_group(&reg, "other.example.com").is_none());
        assert!(api_group(&reg, "").is_none());
    }

    #[test]
    fn resource_list_has_verbs_status_and_names() {
        let reg = registry();
        let doc = api_resource_list(&reg, "toys.example.com", "v1alpha1").expect("gv exists");
        assert_eq!(doc["kind"], "APIResourceList");
        assert_eq!(doc["apiVersion"], "v1");
        assert_eq!(doc["groupVersion"], "toys.example.com/v1alpha1");
        let resources = doc["resources"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = resources
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names, ["widgets", "widgets/status", "gadgets"]);

        let widgets = &resources[0];
        assert_eq!(widgets["singularName"], "widget");
        assert_eq!(widgets["namespaced"], true);
        assert_eq!(widgets["kind"], "Widget");
        assert_eq!(
            widgets["verbs"],
            json!([
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch"
            ])
        );
        assert_eq!(widgets["shortNames"], json!(["wd"]));
        assert_eq!(widgets["categories"], json!(["toys"]));
        let hash = widgets["storageVersionHash"].as_str().unwrap_or_default();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(hash)
            .expect("base64");
        assert_eq!(raw.len(), 8);

        let status = &resources[1];
        assert_eq!(status["kind"], "Widget");
        assert_eq!(status["namespaced"], true);
        assert_eq!(status["singularName"], "");
        assert_eq!(status["verbs"], json!(["get", "patch", "update"]));

        let gadgets = &resources[2];
        assert!(gadgets.get("shortNames").is_none(), "{gadgets}");
        assert_ne!(gadgets["storageVersionHash"], widgets["storageVersionHash"]);
    }

    #[test]
    fn resource_list_core_and_missing() {
        let reg = registry();
        let core = api_resource_list(&reg, "", "v1").expect("core v1");
        assert_eq!(core["groupVersion"], "v1");
        assert_eq!(core["resources"][0]["name"], "trinkets");
        assert!(api_resource_list(&reg, "toys.example.com", "v2").is_none());
        assert!(api_resource_list(&reg, "nope.example.com", "v1alpha1").is_none());
    }

    #[test]
    fn storage_version_hash_is_stable_and_distinct() {
        let a = storage_version_hash("toys.example.com", "v1alpha1", "Widget");
        assert_eq!(
            a,
            storage_version_hash("toys.example.com", "v1alpha1", "Widget")
        );
        assert_ne!(a, storage_version_hash("toys.example.com", "v1", "Widget"));
        assert_eq!(a.len(), 12);
    }
}
