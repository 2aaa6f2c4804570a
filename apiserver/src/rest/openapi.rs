//! OpenAPI documents for every kind in a [`ResourceRegistry`]: Swagger 2.0 (`/openapi/v2`),
//! the OpenAPI v3 root index (`/openapi/v3`) and one self-contained OpenAPI 3.0 document
//! per group-version (`/openapi/v3/apis/<g>/<v>`, `/openapi/v3/api/v1`).
//!
//! Everything is built once ([`OpenApiDocs::build`]) and kept serialized with a strong
//! ETag. Kind schemas are named as Kubernetes names CRD types (reverse-DNS group, version,
//! kind); the apimachinery meta types come from k8s-openapi's `schemars` support under their
//! upstream names. PATCH operations advertise JSON patch, merge patch and apply patch only:
//! listing strategic merge patch would make kubectl send it, and the server answers 415.
//!
//! Limits: no protobuf, no deprecated `/watch/` paths, no `securityDefinitions`; the meta
//! type schemas carry k8s-openapi's content plus the upstream list-type markers, so the
//! aggregator may rename them if kube-apiserver's copies differ.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::patch::PATCH_TYPES;
use super::resource::{ResourceDef, ResourceRegistry};

/// Prefix of the apimachinery meta type definition names.
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
/// Where v3 documents keep their schemas.
const V3_REF: &str = "#/components/schemas/";
/// Where Swagger 2.0 keeps its schemas.
const V2_REF: &str = "#/definitions/";
/// The `info.title` of every document.
const TITLE: &str = "flotta-apiserver";

/// Request content types of POST, PUT and DELETE bodies.
const ANY_CONTENT: [&str; 1] = ["*/*"];
/// Response content types of single objects and Status (the server answers JSON only).
const PRODUCES: [&str; 1] = ["application/json"];
/// Response content types of lists, which may also be watched.
const PRODUCES_LIST: [&str; 2] = ["application/json", "application/json;stream=watch"];

/// The serialized OpenAPI documents of a registry, each with its ETag.
#[derive(Debug, Clone)]
pub struct OpenApiDocs {
    v2: Published,
    v3_root: Published,
    v3: BTreeMap<String, Published>,
}

/// One serialized document.
#[derive(Debug, Clone)]
struct Published {
    body: Bytes,
    /// Uppercase hex SHA-256 of `body`.
    hash: String,
    /// `hash` in double quotes (a strong ETag).
    etag: String,
}

impl Published {
    fn new(doc: &Value) -> Self {
        let body = Bytes::from(doc.to_string());
        let hash = Sha256::digest(&body)
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02X}");
                s
            });
        let etag = format!("\"{hash}\"");
        Published { body, hash, etag }
    }

    fn parts(&self) -> (&Bytes, &str) {
        (&self.body, &self.etag)
    }
}

impl OpenApiDocs {
    /// Builds and serializes every document for `reg`.
    pub fn build(reg: &ResourceRegistry) -> OpenApiDocs {
        let meta_defs = meta_definitions();

        let mut v3 = BTreeMap::new();
        let mut root_paths = Map::new();
        for (group, version) in reg.group_versions() {
            let defs: Vec<&ResourceDef> = reg
                .all()
                .iter()
                .map(|d| d.as_ref())
                .filter(|d| d.group == group && d.version == version)
                .collect();
            let doc = v3_document(&defs, &meta_defs);
            let published = Published::new(&doc);
            let key = gv_path(group, version);
            root_paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", published.hash)}),
            );
            v3.insert(key, published);
        }
        let v3_root = Published::new(&json!({ "paths": root_paths }));

        let all: Vec<&ResourceDef> = reg.all().iter().map(|d| d.as_ref()).collect();
        let v2 = Published::new(&v2_document(&all, &meta_defs));

        OpenApiDocs { v2, v3_root, v3 }
    }

    /// The Swagger 2.0 document (`GET /openapi/v2`) and its ETag.
    pub fn v2(&self) -> (&Bytes, &str) {
        self.v2.parts()
    }

    /// The v3 root index (`GET /openapi/v3`) and its ETag.
    pub fn v3_root(&self) -> (&Bytes, &str) {
        self.v3_root.parts()
    }

    /// The v3 document of one group-version and its ETag; `path` is `apis/<g>/<v>` or
    /// `api/v1` (a leading `/` is ignored).
    pub fn v3_group_version(&self, path: &str) -> Option<(&Bytes, &str)> {
        self.v3
            .get(path.trim_start_matches('/'))
            .map(Published::parts)
    }

    /// The `hash` query value the root index publishes for `path` (as in
    /// [`Self::v3_group_version`]); a request carrying it may be cached as immutable.
    pub fn v3_hash(&self, path: &str) -> Option<&str> {
        self.v3
            .get(path.trim_start_matches('/'))
            .map(|p| p.hash.as_str())
    }
}

/// The definition name of a kind's schema, as Kubernetes names CRD types: the group's
/// labels reversed, then version and kind (`io.project-flotta.management.v1alpha1.EdgeDevice`).
/// Core kinds use upstream's `io.k8s.api.core.<version>.<Kind>`.
pub fn definition_name(def: &ResourceDef) -> String {
    type_name(def.group, def.version, def.kind)
}

/// The definition name of a kind's list schema (`….<Kind>List`).
pub fn list_definition_name(def: &ResourceDef) -> String {
    type_name(def.group, def.version, &def.list_kind())
}

fn type_name(group: &str, version: &str, kind: &str) -> String {
    let prefix = if group.is_empty() {
        "io.k8s.api.core".to_string()
    } else {
        group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{prefix}.{version}.{kind}")
}

/// `apis/<g>/<v>`, or `api/<v>` for the core group.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn meta_name(name: &str) -> String {
    format!("{META}.{name}")
}

// ---------------------------------------------------------------------------------------
// Schemas

/// The apimachinery meta type schemas (v3 form, keyed by upstream name), with every type
/// they reference.
fn meta_definitions() -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<meta::ObjectMeta>();
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::StatusDetails>();
    generator.subschema_for::<meta::StatusCause>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::Preconditions>();
    generator.subschema_for::<meta::Patch>();
    generator.subschema_for::<meta::ManagedFieldsEntry>();
    generator.subschema_for::<meta::OwnerReference>();
    generator.subschema_for::<meta::Time>();
    generator.subschema_for::<meta::FieldsV1>();
    generator.subschema_for::<meta::WatchEvent<Value>>();
    let mut defs = generator.take_definitions(true);
    add_meta_markers(&mut defs);
    defs
}

/// Adds the merge markers upstream publishes on meta types (k8s-openapi omits them), so
/// that clients computing apply diffs treat finalizers and owner references as we do.
fn add_meta_markers(defs: &mut Map<String, Value>) {
    let mut mark = |ty: &str, pointer: &str, markers: Value| {
        let target = defs
            .get_mut(&meta_name(ty))
            .and_then(|s| s.pointer_mut(pointer))
            .and_then(Value::as_object_mut);
        if let (Some(target), Value::Object(markers)) = (target, markers) {
            target.extend(markers);
        }
    };
    mark(
        "ObjectMeta",
        "/properties/finalizers",
        json!({"x-kubernetes-list-type": "set"}),
    );
    mark(
        "ObjectMeta",
        "/properties/ownerReferences",
        json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]}),
    );
    mark(
        "ObjectMeta",
        "/properties/managedFields",
        json!({"x-kubernetes-list-type": "atomic"}),
    );
    mark(
        "OwnerReference",
        "",
        json!({"x-kubernetes-map-type": "atomic"}),
    );
    mark(
        "StatusDetails",
        "/properties/causes",
        json!({"x-kubernetes-list-type": "atomic"}),
    );
    mark(
        "DeleteOptions",
        "/properties/dryRun",
        json!({"x-kubernetes-list-type": "atomic"}),
    );
    mark(
        "Status",
        "",
        json!({"x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Status"}]}),
    );
}

fn gvk_list(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "version": version, "kind": kind}])
}

/// A v3 property that references `name` and adds a description (OpenAPI 3.0 ignores
/// siblings of `$ref`, hence `allOf`).
fn ref_property(name: &str, description: &str) -> Value {
    json!({"allOf": [{"$ref": format!("{V3_REF}{name}")}], "description": description})
}

fn type_meta_properties(props: &mut Map<String, Value>) {
    props.insert(
        "apiVersion".into(),
        json!({
            "type": "string",
            "description": "The versioned schema of this representation of an object, \
                            `group/version` (`v1` for the core group). Servers convert \
                            recognized schemas to the latest internal value.",
        }),
    );
    props.insert(
        "kind".into(),
        json!({
            "type": "string",
            "description": "The REST resource this object represents, in CamelCase. \
                            Servers infer it from the endpoint the client submits to; \
                            it cannot be updated.",
        }),
    );
}

/// The published v3 schema of a kind: its own schema with `apiVersion`/`kind` described,
/// `metadata` pointing at `ObjectMeta`, and the GVK marker.
fn kind_schema(def: &ResourceDef) -> Value {
    let mut schema = match &def.schema {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    let props = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if !props.is_object() {
        *props = Value::Object(Map::new());
    }
    if let Value::Object(props) = props {
        type_meta_properties(props);
        props.insert(
            "metadata".into(),
            ref_property(
                &meta_name("ObjectMeta"),
                "Standard object metadata: name, namespace, labels, annotations, \
                 resourceVersion and the other fields every persisted object has.",
            ),
        );
    }
    schema.insert(
        "x-kubernetes-group-version-kind".into(),
        gvk_list(def.group, def.version, def.kind),
    );
    Value::Object(schema)
}

/// The published v3 schema of a kind's list.
fn list_schema(def: &ResourceDef) -> Value {
    let mut props = Map::new();
    type_meta_properties(&mut props);
    props.insert(
        "items".into(),
        json!({
            "type": "array",
            "description": format!("The {} objects.", def.kind),
            "items": {"$ref": format!("{V3_REF}{}", definition_name(def))},
        }),
    );
    props.insert(
        "metadata".into(),
        ref_property(
            &meta_name("ListMeta"),
            "Standard list metadata: resourceVersion and continue token.",
        ),
    );
    json!({
        "description": format!("{} is a list of {}.", def.list_kind(), def.kind),
        "type": "object",
        "required": ["items"],
        "properties": props,
        "x-kubernetes-group-version-kind": gvk_list(def.group, def.version, &def.list_kind()),
    })
}

/// Every v3 schema a document about `defs` needs.
fn v3_schemas(defs: &[&ResourceDef], meta_defs: &Map<String, Value>) -> Map<String, Value> {
    let mut schemas = meta_defs.clone();
    for def in defs {
        schemas.insert(definition_name(def), kind_schema(def));
        schemas.insert(list_definition_name(def), list_schema(def));
    }
    schemas
}

/// Converts a v3 schema into Swagger 2.0 form: references point into `#/definitions/`,
/// `allOf: [{$ref}]` wrappers collapse back into `$ref` with siblings, and keywords
/// Swagger 2.0 lacks (`nullable`, `oneOf`, `anyOf`, `not`, …) are dropped, which leaves
/// the most general schema.
fn to_v2_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "nullable" | "oneOf" | "anyOf" | "not" | "writeOnly" | "deprecated"
            | "discriminator" => {}
            "$ref" => {
                let rewritten = match value.as_str() {
                    Some(r) => Value::String(r.replacen(V3_REF, V2_REF, 1)),
                    None => value.clone(),
                };
                out.insert(key.clone(), rewritten);
            }
            "type" => {
                // OpenAPI 3.1-style type arrays: keep the first non-null type.
                let ty = match value {
                    Value::Array(types) => types
                        .iter()
                        .find(|t| t.as_str() != Some("null"))
                        .cloned()
                        .unwrap_or(Value::Null),
                    other => other.clone(),
                };
                if !ty.is_null() {
                    out.insert(key.clone(), ty);
                }
            }
            "properties" | "patternProperties" | "definitions" => {
                let converted = match value {
                    Value::Object(children) => Value::Object(
                        children
                            .iter()
                            .map(|(k, v)| (k.clone(), to_v2_schema(v)))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                out.insert(key.clone(), converted);
            }
            "items" | "additionalProperties" => {
                let converted = match value {
                    Value::Array(list) => Value::Array(list.iter().map(to_v2_schema).collect()),
                    other => to_v2_schema(other),
                };
                out.insert(key.clone(), converted);
            }
            "allOf" => {
                let list: Vec<Value> = value
                    .as_array()
                    .map(|l| l.iter().map(to_v2_schema).collect())
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Array(list));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    collapse_single_ref_all_of(&mut out);
    Value::Object(out)
}

/// `{allOf: [{$ref: X}], description: …}` → `{$ref: X, description: …}`, the form
/// upstream's Swagger 2.0 document uses.
fn collapse_single_ref_all_of(schema: &mut Map<String, Value>) {
    if schema.contains_key("$ref") {
        return;
    }
    let reference = match schema.get("allOf").and_then(Value::as_array) {
        Some(list) if list.len() == 1 => match list[0].as_object() {
            Some(only) if only.len() == 1 => only.get("$ref").cloned(),
            _ => None,
        },
        _ => None,
    };
    if let Some(reference) = reference {
        schema.remove("allOf");
        schema.insert("$ref".into(), reference);
    }
}

// ---------------------------------------------------------------------------------------
// Paths

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Path,
    Query,
}

/// One path or query parameter.
#[derive(Debug, Clone, Copy)]
struct Param {
    name: &'static str,
    location: Location,
    ty: &'static str,
    description: &'static str,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: Location::Query,
        ty,
        description,
    }
}

const NAMESPACE: Param = Param {
    name: "namespace",
    location: Location::Path,
    ty: "string",
    description: "The namespace of the objects.",
};
const NAME: Param = Param {
    name: "name",
    location: Location::Path,
    ty: "string",
    description: "The name of the object.",
};
const PRETTY: Param = query("pretty", "string", "If `true`, the response is indented.");
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "`All` processes the request fully (validation, defaulting, conflicts) but persists \
     nothing.",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "Name of the actor making the change, recorded in managedFields. Required for apply \
     patches.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "What to do with unknown or duplicate fields in the body: `Ignore`, `Warn` or \
     `Strict` (reject the request).",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "For apply patches only: take over fields owned by other managers instead of \
     failing with a conflict.",
);
const LABEL_SELECTOR: Param = query(
    "labelSelector",
    "string",
    "Only objects whose labels match this selector.",
);
const FIELD_SELECTOR: Param = query(
    "fieldSelector",
    "string",
    "Only objects whose fields match this selector (`metadata.name`, \
     `metadata.namespace`).",
);
const LIMIT: Param = query(
    "limit",
    "integer",
    "At most this many objects per response; `metadata.continue` then holds the token \
     for the next chunk.",
);
const CONTINUE: Param = query(
    "continue",
    "string",
    "The token from a previous chunked list, to fetch the next chunk.",
);
const RESOURCE_VERSION: Param = query(
    "resourceVersion",
    "string",
    "List: the revision to serve (with resourceVersionMatch). Watch: the revision to \
     start after.",
);
const RESOURCE_VERSION_MATCH: Param = query(
    "resourceVersionMatch",
    "string",
    "How resourceVersion applies to a list: `NotOlderThan` or `Exact`.",
);
const TIMEOUT_SECONDS: Param = query(
    "timeoutSeconds",
    "integer",
    "Ends a list or watch call after this many seconds.",
);
const WATCH: Param = query(
    "watch",
    "boolean",
    "Stream ADDED, MODIFIED and DELETED events instead of returning a list.",
);
const ALLOW_WATCH_BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    "boolean",
    "Let a watch send BOOKMARK events carrying the current resourceVersion.",
);
const SEND_INITIAL_EVENTS: Param = query(
    "sendInitialEvents",
    "boolean",
    "Start a watch with the current objects as synthetic ADDED events.",
);
const GRACE_PERIOD_SECONDS: Param = query(
    "gracePeriodSeconds",
    "integer",
    "Seconds before the object is deleted; zero means immediately.",
);
const PROPAGATION_POLICY: Param = query(
    "propagationPolicy",
    "string",
    "Garbage collection of dependents: `Orphan`, `Background` or `Foreground`.",
);

/// Parameters of list (and watch) calls.
const LIST_PARAMS: [Param; 10] = [
    LABEL_SELECTOR,
    FIELD_SELECTOR,
    LIMIT,
    CONTINUE,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    TIMEOUT_SECONDS,
    WATCH,
    ALLOW_WATCH_BOOKMARKS,
    SEND_INITIAL_EVENTS,
];
/// Parameters of create and update calls.
const WRITE_PARAMS: [Param; 3] = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
/// Parameters of patch calls.
const PATCH_PARAMS: [Param; 4] = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
/// Parameters of delete calls.
const DELETE_PARAMS: [Param; 3] = [DRY_RUN, GRACE_PERIOD_SECONDS, PROPAGATION_POLICY];

/// A request body.
struct RequestBody {
    definition: String,
    content_types: &'static [&'static str],
    required: bool,
}

/// A response.
struct Response {
    code: &'static str,
    description: &'static str,
    definition: Option<String>,
}

/// One operation on a path.
struct Operation {
    method: &'static str,
    operation_id: String,
    description: String,
    action: &'static str,
    params: Vec<Param>,
    body: Option<RequestBody>,
    responses: Vec<Response>,
    produces: &'static [&'static str],
}

/// One path and its operations.
struct PathItem {
    path: String,
    params: Vec<Param>,
    operations: Vec<Operation>,
}

/// `management.project-flotta.io` → `ManagementProjectFlottaIo`; core → `Core`.
fn camel(text: &str) -> String {
    text.split(['.', '-'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

/// The `tags` entry of a group-version, e.g. `managementProjectFlottaIo_v1alpha1`.
fn tag(def: &ResourceDef) -> String {
    let group = if def.group.is_empty() {
        "Core".to_string()
    } else {
        camel(def.group)
    };
    let mut chars = group.chars();
    let lowered: String = chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    format!("{lowered}_{}", def.version)
}

/// `200 OK`.
const OK: (&str, &str) = ("200", "OK");
/// `201 Created`.
const CREATED: (&str, &str) = ("201", "Created");
/// `202 Accepted`.
const ACCEPTED: (&str, &str) = ("202", "Accepted");

/// The responses of an operation: each of `codes` answering with `definition`, then
/// `401 Unauthorized` (which has no body schema).
fn responses(definition: &str, codes: &[(&'static str, &'static str)]) -> Vec<Response> {
    codes
        .iter()
        .map(|&(code, description)| Response {
            code,
            description,
            definition: Some(definition.to_string()),
        })
        .chain([Response {
            code: "401",
            description: "Unauthorized",
            definition: None,
        }])
        .collect()
}

/// A request body of `definition` in `content_types`.
fn request_body(
    definition: &str,
    content_types: &'static [&'static str],
    required: bool,
) -> Option<RequestBody> {
    Some(RequestBody {
        definition: definition.to_string(),
        content_types,
        required,
    })
}

fn params(groups: &[&[Param]]) -> Vec<Param> {
    groups.iter().flat_map(|g| g.iter().copied()).collect()
}

/// What an item operation acts on: the object itself or its status subresource.
#[derive(Debug, Clone, Copy)]
struct Subject {
    /// Appended to the operation id.
    suffix: &'static str,
    /// How the description names it, before the kind.
    phrase: &'static str,
}

/// The object at `…/{name}`.
const OBJECT: Subject = Subject {
    suffix: "",
    phrase: "the specified",
};
/// The status subresource at `…/{name}/status`.
const STATUS: Subject = Subject {
    suffix: "Status",
    phrase: "status of the specified",
};

/// The operations of one kind, with the naming and definitions they share.
struct KindOperations<'a> {
    def: &'a ResourceDef,
    /// Group and version as operation ids spell them (`ToysExampleComV1alpha1`).
    gv: String,
    /// `Namespaced` for namespaced kinds, empty otherwise.
    scope: &'static str,
    kind_def: String,
    list_def: String,
}

impl<'a> KindOperations<'a> {
    fn new(def: &'a ResourceDef) -> Self {
        KindOperations {
            def,
            gv: format!("{}{}", camel(group_or_core(def)), camel(def.version)),
            scope: if def.namespaced { "Namespaced" } else { "" },
            kind_def: definition_name(def),
            list_def: list_definition_name(def),
        }
    }

    /// `<verb><Group><Version>[Namespaced]<Kind><suffix>`, upstream's operation ids.
    fn id(&self, verb: &str, suffix: &str) -> String {
        format!("{verb}{}{}{}{suffix}", self.gv, self.scope, self.def.kind)
    }

    /// List or watch, in the kind's scope or (`all_namespaces`) across namespaces.
    fn list(&self, all_namespaces: bool) -> Operation {
        let kind = self.def.kind;
        let (operation_id, description) = if all_namespaces {
            (
                format!("list{}{kind}ForAllNamespaces", self.gv),
                format!("list or watch objects of kind {kind} in all namespaces"),
            )
        } else {
            (
                self.id("list", ""),
                format!("list or watch objects of kind {kind}"),
            )
        };
        Operation {
            method: "get",
            operation_id,
            description,
            action: "list",
            params: LIST_PARAMS.to_vec(),
            body: None,
            responses: responses(&self.list_def, &[OK]),
            produces: &PRODUCES_LIST,
        }
    }

    fn create(&self) -> Operation {
        Operation {
            method: "post",
            operation_id: self.id("create", ""),
            description: format!("create a {}", self.def.kind),
            action: "post",
            params: WRITE_PARAMS.to_vec(),
            body: request_body(&self.kind_def, &ANY_CONTENT, true),
            responses: responses(&self.kind_def, &[OK, CREATED, ACCEPTED]),
            produces: &PRODUCES,
        }
    }

    fn delete_collection(&self) -> Operation {
        let kind = self.def.kind;
        Operation {
            method: "delete",
            operation_id: format!("delete{}Collection{}{kind}", self.gv, self.scope),
            description: format!("delete a collection of {kind}"),
            action: "deletecollection",
            params: params(&[&DELETE_PARAMS, &LIST_PARAMS]),
            body: request_body(&meta_name("DeleteOptions"), &ANY_CONTENT, false),
            responses: responses(&meta_name("Status"), &[OK]),
            produces: &PRODUCES,
        }
    }

    /// Read, replace and partially update `subject`: the operations the object and its
    /// status share.
    fn item(&self, subject: Subject) -> Vec<Operation> {
        let Subject { suffix, phrase } = subject;
        let kind = self.def.kind;
        vec![
            Operation {
                method: "get",
                operation_id: self.id("read", suffix),
                description: format!("read {phrase} {kind}"),
                action: "get",
                params: Vec::new(),
                body: None,
                responses: responses(&self.kind_def, &[OK]),
                produces: &PRODUCES,
            },
            Operation {
                method: "put",
                operation_id: self.id("replace", suffix),
                description: format!("replace {phrase} {kind}"),
                action: "put",
                params: WRITE_PARAMS.to_vec(),
                body: request_body(&self.kind_def, &ANY_CONTENT, true),
                responses: responses(&self.kind_def, &[OK, CREATED]),
                produces: &PRODUCES,
            },
            Operation {
                method: "patch",
                operation_id: self.id("patch", suffix),
                description: format!("partially update {phrase} {kind}"),
                action: "patch",
                params: PATCH_PARAMS.to_vec(),
                body: request_body(&meta_name("Patch"), &PATCH_TYPES, true),
                responses: responses(&self.kind_def, &[OK, CREATED]),
                produces: &PRODUCES,
            },
        ]
    }

    fn delete(&self) -> Operation {
        Operation {
            method: "delete",
            operation_id: self.id("delete", ""),
            description: format!("delete a {}", self.def.kind),
            action: "delete",
            params: DELETE_PARAMS.to_vec(),
            body: request_body(&meta_name("DeleteOptions"), &ANY_CONTENT, false),
            responses: responses(&meta_name("Status"), &[OK, ACCEPTED]),
            produces: &PRODUCES,
        }
    }
}

/// The paths and operations of one kind.
fn path_items(def: &ResourceDef) -> Vec<PathItem> {
    let ops = KindOperations::new(def);
    let base = format!("/{}", gv_path(def.group, def.version));
    let collection = if def.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", def.plural)
    } else {
        format!("{base}/{}", def.plural)
    };
    let scope_params: Vec<Param> = if def.namespaced {
        vec![NAMESPACE, PRETTY]
    } else {
        vec![PRETTY]
    };
    let mut item_params = vec![NAME];
    item_params.extend(scope_params.iter().copied());
    let mut item_operations = ops.item(OBJECT);
    item_operations.push(ops.delete());

    let mut items = vec![
        PathItem {
            path: collection.clone(),
            params: scope_params,
            operations: vec![ops.list(false), ops.create(), ops.delete_collection()],
        },
        PathItem {
            path: format!("{collection}/{{name}}"),
            params: item_params.clone(),
            operations: item_operations,
        },
    ];
    if def.has_status {
        items.push(PathItem {
            path: format!("{collection}/{{name}}/status"),
            params: item_params,
            operations: ops.item(STATUS),
        });
    }
    if def.namespaced {
        items.push(PathItem {
            path: format!("{base}/{}", def.plural),
            params: vec![PRETTY],
            operations: vec![ops.list(true)],
        });
    }
    items
}

/// The two OpenAPI dialects the documents are rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Swagger2,
    OpenApi3,
}

impl Dialect {
    fn reference(self, definition: &str) -> Value {
        let prefix = match self {
            Dialect::Swagger2 => V2_REF,
            Dialect::OpenApi3 => V3_REF,
        };
        json!({"$ref": format!("{prefix}{definition}")})
    }

    /// A v3 `content` map: each of `content_types` carrying a `definition` schema.
    fn content(self, content_types: &[&str], definition: &str) -> Map<String, Value> {
        content_types
            .iter()
            .map(|ct| {
                (
                    (*ct).to_string(),
                    json!({"schema": self.reference(definition)}),
                )
            })
            .collect()
    }

    fn param(self, p: &Param) -> Value {
        let mut out = json!({
            "name": p.name,
            "in": match p.location {
                Location::Path => "path",
                Location::Query => "query",
            },
            "description": p.description,
        });
        if let Value::Object(map) = &mut out {
            if p.location == Location::Path {
                map.insert("required".into(), Value::Bool(true));
            }
            match self {
                Dialect::Swagger2 => {
                    map.insert("type".into(), json!(p.ty));
                }
                Dialect::OpenApi3 => {
                    map.insert("schema".into(), json!({"type": p.ty}));
                }
            }
        }
        out
    }

    fn operation(self, def: &ResourceDef, op: &Operation) -> Value {
        let mut out = Map::new();
        out.insert("tags".into(), json!([tag(def)]));
        out.insert("description".into(), json!(op.description));
        out.insert("operationId".into(), json!(op.operation_id));
        let mut parameters: Vec<Value> = op.params.iter().map(|p| self.param(p)).collect();
        match (self, &op.body) {
            (Dialect::OpenApi3, Some(body)) => {
                let content = self.content(body.content_types, &body.definition);
                out.insert(
                    "requestBody".into(),
                    json!({"content": content, "required": body.required}),
                );
            }
            (Dialect::Swagger2, Some(body)) => {
                out.insert("consumes".into(), json!(body.content_types));
                parameters.insert(
                    0,
                    json!({
                        "name": "body",
                        "in": "body",
                        "required": body.required,
                        "schema": self.reference(&body.definition),
                    }),
                );
            }
            (_, None) => {}
        }
        if self == Dialect::Swagger2 {
            out.insert("produces".into(), json!(op.produces));
            out.insert("schemes".into(), json!(["https"]));
        }
        if !parameters.is_empty() {
            out.insert("parameters".into(), Value::Array(parameters));
        }
        let responses: Map<String, Value> = op
            .responses
            .iter()
            .map(|r| {
                let mut body = json!({"description": r.description});
                if let (Value::Object(map), Some(definition)) = (&mut body, &r.definition) {
                    match self {
                        Dialect::Swagger2 => {
                            map.insert("schema".into(), self.reference(definition));
                        }
                        Dialect::OpenApi3 => {
                            let content = self.content(op.produces, definition);
                            map.insert("content".into(), Value::Object(content));
                        }
                    }
                }
                (r.code.to_string(), body)
            })
            .collect();
        out.insert("responses".into(), Value::Object(responses));
        out.insert("x-kubernetes-action".into(), json!(op.action));
        out.insert(
            "x-kubernetes-group-version-kind".into(),
            json!({"group": def.group, "version": def.version, "kind": def.kind}),
        );
        Value::Object(out)
    }

    fn paths(self, defs: &[&ResourceDef]) -> Map<String, Value> {
        let mut paths = Map::new();
        for def in defs {
            for item in path_items(def) {
                let mut entry = Map::new();
                for op in &item.operations {
                    entry.insert(op.method.into(), self.operation(def, op));
                }
                entry.insert(
                    "parameters".into(),
                    Value::Array(item.params.iter().map(|p| self.param(p)).collect()),
                );
                paths.insert(item.path, Value::Object(entry));
            }
        }
        paths
    }
}

fn info() -> Value {
    json!({"title": TITLE, "version": env!("CARGO_PKG_VERSION")})
}

/// The OpenAPI 3.0 document of one group-version's kinds.
fn v3_document(defs: &[&ResourceDef], meta_defs: &Map<String, Value>) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": Dialect::OpenApi3.paths(defs),
        "components": {"schemas": v3_schemas(defs, meta_defs)},
    })
}

/// The Swagger 2.0 document of every kind.
fn v2_document(defs: &[&ResourceDef], meta_defs: &Map<String, Value>) -> Value {
    let definitions: Map<String, Value> = v3_schemas(defs, meta_defs)
        .iter()
        .map(|(name, schema)| (name.clone(), to_v2_schema(schema)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": Dialect::Swagger2.paths(defs),
        "definitions": definitions,
    })
}

/// The group as operation ids spell it: `core` for the core group, as upstream does.
fn group_or_core(def: &ResourceDef) -> &'static str {
    if def.group.is_empty() {
        "core"
    } else {
        def.group
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::rest::discovery::tests::{registry, widget, widget_schema};

    const GV: &str = "apis/toys.example.com/v1alpha1";
    const WIDGET: &str = "com.example.toys.v1alpha1.Widget";

    fn parse(bytes: &Bytes) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    fn v3_doc(docs: &OpenApiDocs, path: &str) -> Value {
        let (body, _) = docs.v3_group_version(path).expect("group-version doc");
        parse(body)
    }

    /// Every `$ref` string anywhere in `doc`.
    fn refs(doc: &Value, out: &mut Vec<String>) {
        match doc {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(list) => list.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// Asserts that every `$ref` in `doc` names an existing entry under `pointer`.
    fn assert_refs_resolve(doc: &Value, prefix: &str, pointer: &str) {
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(!found.is_empty());
        let table = doc.pointer(pointer).expect("definitions table");
        for r in found {
            let name = r
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{r} does not start with {prefix}"));
            assert!(table.get(name).is_some(), "{r} does not resolve");
        }
    }

    /// Whether any object in `doc` has the key `key`, as a schema keyword (not a property
    /// name: the maps under `properties` are skipped one level).
    fn has_keyword(doc: &Value, key: &str) -> bool {
        match doc {
            Value::Object(map) => map.iter().any(|(k, v)| {
                if k == "properties" {
                    v.as_object()
                        .is_some_and(|props| props.values().any(|p| has_keyword(p, key)))
                } else {
                    k == key || has_keyword(v, key)
                }
            }),
            Value::Array(list) => list.iter().any(|v| has_keyword(v, key)),
            _ => false,
        }
    }

    #[test]
    fn definition_names_follow_kubernetes_crd_naming() {
        let reg = registry();
        assert_eq!(definition_name(&reg.all()[0]), WIDGET);
        assert_eq!(
            list_definition_name(&reg.all()[0]),
            "com.example.toys.v1alpha1.WidgetList"
        );
        assert_eq!(definition_name(&reg.all()[3]), "io.k8s.api.core.v1.Trinket");
    }

    #[test]
    fn v3_root_lists_every_group_version_with_its_hash() {
        let docs = OpenApiDocs::build(&registry());
        let root = parse(docs.v3_root().0);
        let paths = root["paths"].as_object().expect("paths");
        let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        for key in [GV, "apis/toys.example.com/v1", "api/v1"] {
            let hash = docs.v3_hash(key).expect("hash");
            assert_eq!(
                paths[key]["serverRelativeURL"],
                format!("/openapi/v3/{key}?hash={hash}")
            );
            let (_, etag) = docs.v3_group_version(key).expect("doc");
            assert_eq!(etag, format!("\"{hash}\""));
        }
        assert!(docs.v3_group_version("/api/v1").is_some());
        assert!(docs.v3_group_version("apis/toys.example.com/v2").is_none());
        assert!(docs.v3_hash("apis/nope/v1").is_none());
    }

    #[test]
    fn v3_kind_schema_has_gvk_meta_ref_and_type_meta() {
        let docs = OpenApiDocs::build(&registry());
        let doc = v3_doc(&docs, GV);
        assert_eq!(doc["openapi"], "3.0.0");
        assert_eq!(doc["info"]["title"], "flotta-apiserver");
        let schemas = &doc["components"]["schemas"];
        let widget = &schemas[WIDGET];
        assert_eq!(
            widget["x-kubernetes-group-version-kind"],
            json!([{"group": "toys.example.com", "version": "v1alpha1", "kind": "Widget"}])
        );
        assert_eq!(
            widget["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(widget["properties"]["apiVersion"]["type"], "string");
        assert!(widget["properties"]["kind"]["description"].is_string());
        // The kind's own schema is kept.
        assert_eq!(
            widget["properties"]["spec"]["properties"]["tags"]["x-kubernetes-list-type"],
            "set"
        );
        assert_eq!(widget["required"], json!(["spec"]));

        let list = &schemas["com.example.toys.v1alpha1.WidgetList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"],
            json!([{"group": "toys.example.com", "version": "v1alpha1", "kind": "WidgetList"}])
        );
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            format!("#/components/schemas/{WIDGET}")
        );
        assert_eq!(
            list["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
        );
        // Kinds of other group-versions stay in their own documents.
        assert!(schemas.get("com.example.toys.v1.Gizmo").is_none());
    }

    #[test]
    fn v3_documents_carry_the_upstream_meta_types() {
        let docs = OpenApiDocs::build(&registry());
        let doc = v3_doc(&docs, GV);
        let schemas = &doc["components"]["schemas"];
        for name in [
            "ObjectMeta",
            "ListMeta",
            "Status",
            "StatusDetails",
            "StatusCause",
            "DeleteOptions",
            "Preconditions",
            "Patch",
            "ManagedFieldsEntry",
            "OwnerReference",
            "Time",
            "FieldsV1",
            "WatchEvent",
        ] {
            let full = format!("io.k8s.apimachinery.pkg.apis.meta.v1.{name}");
            assert!(schemas.get(&full).is_some(), "{full} missing");
        }
        let meta = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
        assert_eq!(meta["properties"]["name"]["type"], "string");
        assert_eq!(
            meta["properties"]["ownerReferences"]["x-kubernetes-list-map-keys"],
            json!(["uid"])
        );
        assert_eq!(
            meta["properties"]["finalizers"]["x-kubernetes-list-type"],
            "set"
        );
    }

    #[test]
    fn v3_refs_resolve_in_every_document() {
        let docs = OpenApiDocs::build(&registry());
        for key in [GV, "apis/toys.example.com/v1", "api/v1"] {
            let doc = v3_doc(&docs, key);
            assert_refs_resolve(&doc, "#/components/schemas/", "/components/schemas");
        }
    }

    #[test]
    fn v2_refs_resolve_and_v3_only_keywords_are_gone() {
        let docs = OpenApiDocs::build(&registry());
        let doc = parse(docs.v2().0);
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(doc["info"]["title"], "flotta-apiserver");
        assert_refs_resolve(&doc, "#/definitions/", "/definitions");
        let definitions = &doc["definitions"];
        for keyword in ["nullable", "anyOf", "oneOf"] {
            assert!(
                !has_keyword(definitions, keyword),
                "{keyword} left in v2 definitions"
            );
        }
        let widget = &definitions[WIDGET];
        // `allOf: [$ref]` collapses back into a plain `$ref`.
        assert_eq!(
            widget["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        // int-or-string keeps its marker and loses the anyOf.
        assert_eq!(
            widget["properties"]["spec"]["properties"]["port"],
            json!({"x-kubernetes-int-or-string": true})
        );
        assert_eq!(
            widget["properties"]["spec"]["properties"]["size"],
            json!({"type": "integer", "format": "int64"})
        );
        assert_eq!(
            widget["x-kubernetes-group-version-kind"][0]["kind"],
            "Widget"
        );
        // All group-versions are in the one v2 document.
        assert!(definitions.get("com.example.toys.v1.Gizmo").is_some());
        assert!(definitions.get("io.k8s.api.core.v1.Trinket").is_some());
        assert!(
            doc["paths"]
                .get("/api/v1/namespaces/{namespace}/trinkets")
                .is_some()
        );
    }

    #[test]
    fn paths_and_actions_of_a_namespaced_kind_with_status() {
        let docs = OpenApiDocs::build(&registry());
        let doc = v3_doc(&docs, GV);
        let paths = &doc["paths"];
        let base = "/apis/toys.example.com/v1alpha1";
        let collection = format!("{base}/namespaces/{{namespace}}/widgets");
        let item = format!("{collection}/{{name}}");
        let status = format!("{item}/status");
        let expected = [
            (collection.as_str(), "get", "list"),
            (collection.as_str(), "post", "post"),
            (collection.as_str(), "delete", "deletecollection"),
            (item.as_str(), "get", "get"),
            (item.as_str(), "put", "put"),
            (item.as_str(), "patch", "patch"),
            (item.as_str(), "delete", "delete"),
            (status.as_str(), "get", "get"),
            (status.as_str(), "put", "put"),
            (status.as_str(), "patch", "patch"),
            ("/apis/toys.example.com/v1alpha1/widgets", "get", "list"),
        ];
        let mut ids = Vec::new();
        for (path, method, action) in expected {
            let op = &paths[path][method];
            assert_eq!(op["x-kubernetes-action"], action, "{path} {method}");
            assert_eq!(
                op["x-kubernetes-group-version-kind"],
                json!({"group": "toys.example.com", "version": "v1alpha1", "kind": "Widget"}),
                "{path} {method}"
            );
            let id = op["operationId"].as_str().expect("operationId").to_string();
            assert!(!ids.contains(&id), "duplicate {id}");
            ids.push(id);
        }
        assert_eq!(
            paths[&collection]["get"]["operationId"],
            "listToysExampleComV1alpha1NamespacedWidget"
        );
        assert_eq!(
            paths[&status]["patch"]["operationId"],
            "patchToysExampleComV1alpha1NamespacedWidgetStatus"
        );
        // Gadget has no status subresource.
        assert!(
            paths
                .get(format!(
                    "{base}/namespaces/{{namespace}}/gadgets/{{name}}/status"
                ))
                .is_none()
        );
        assert!(
            paths
                .get(format!("{base}/namespaces/{{namespace}}/gadgets/{{name}}"))
                .is_some()
        );
        // Path-level parameters carry the path params.
        let item_params: Vec<&str> = paths[&item]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(item_params, ["name", "namespace", "pretty"]);
        assert_eq!(paths[&item]["parameters"][0]["required"], true);
        // Responses reference the kind, the list and Status.
        assert_eq!(
            paths[&item]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{WIDGET}")
        );
        assert_eq!(
            paths[&collection]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
                ["$ref"],
            "#/components/schemas/com.example.toys.v1alpha1.WidgetList"
        );
        assert_eq!(
            paths[&item]["delete"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status"
        );
    }

    fn param_names(op: &Value) -> Vec<String> {
        op["parameters"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn operations_declare_their_query_parameters() {
        let docs = OpenApiDocs::build(&registry());
        let doc = v3_doc(&docs, GV);
        let collection = "/apis/toys.example.com/v1alpha1/namespaces/{namespace}/widgets";
        let item = format!("{collection}/{{name}}");
        let list = param_names(&doc["paths"][collection]["get"]);
        for p in [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "resourceVersionMatch",
            "timeoutSeconds",
            "watch",
            "allowWatchBookmarks",
            "sendInitialEvents",
        ] {
            assert!(list.iter().any(|n| n == p), "list lacks {p}");
        }
        for (path, method) in [
            (collection, "post"),
            (item.as_str(), "put"),
            (item.as_str(), "patch"),
        ] {
            let names = param_names(&doc["paths"][path][method]);
            for p in ["dryRun", "fieldManager", "fieldValidation"] {
                assert!(names.iter().any(|n| n == p), "{method} lacks {p}");
            }
            assert_eq!(names.iter().any(|n| n == "force"), method == "patch");
        }
        let query = doc["paths"][collection]["get"]["parameters"][0].clone();
        assert_eq!(query["in"], "query");
        assert!(query["schema"]["type"].is_string());
    }

    #[test]
    fn patch_offers_exactly_the_implemented_content_types() {
        let docs = OpenApiDocs::build(&registry());
        let item = "/apis/toys.example.com/v1alpha1/namespaces/{namespace}/widgets/{name}";
        let v3 = v3_doc(&docs, GV);
        let v2 = parse(docs.v2().0);
        for path in [item.to_string(), format!("{item}/status")] {
            let content = v3["paths"][&path]["patch"]["requestBody"]["content"]
                .as_object()
                .expect("requestBody content");
            let mut types: Vec<&str> = content.keys().map(String::as_str).collect();
            types.sort_unstable();
            assert_eq!(
                types,
                [
                    "application/json-patch+json",
                    "application/merge-patch+json"
                ]
            );
            assert_eq!(
                content["application/merge-patch+json"]["schema"]["$ref"],
                "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
            );
            assert_eq!(v2["paths"][&path]["patch"]["consumes"], json!(PATCH_TYPES));
        }
        for body in [docs.v2().0, docs.v3_group_version(GV).expect("doc").0] {
            let text = std::str::from_utf8(body).expect("utf-8");
            assert!(!text.contains("strategic-merge-patch"));
        }
    }

    #[test]
    fn v2_operations_use_body_parameters_and_schemas() {
        let docs = OpenApiDocs::build(&registry());
        let doc = parse(docs.v2().0);
        let collection = "/apis/toys.example.com/v1alpha1/namespaces/{namespace}/widgets";
        let post = &doc["paths"][collection]["post"];
        assert_eq!(post["parameters"][0]["in"], "body");
        assert_eq!(
            post["parameters"][0]["schema"]["$ref"],
            format!("#/definitions/{WIDGET}")
        );
        assert_eq!(
            post["responses"]["201"]["schema"]["$ref"],
            format!("#/definitions/{WIDGET}")
        );
        assert_eq!(post["x-kubernetes-action"], "post");
        assert_eq!(post["x-kubernetes-group-version-kind"]["kind"], "Widget");
        let dry_run = post["parameters"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["name"] == "dryRun"))
            .expect("dryRun");
        assert_eq!(dry_run["type"], "string");
        assert!(dry_run.get("schema").is_none());
    }

    #[test]
    fn etags_are_stable_and_follow_content() {
        let a = OpenApiDocs::build(&registry());
        let b = OpenApiDocs::build(&registry());
        assert_eq!(a.v2().1, b.v2().1);
        assert_eq!(a.v3_root().1, b.v3_root().1);
        assert_eq!(a.v3_group_version(GV), b.v3_group_version(GV));
        assert!(a.v2().1.starts_with('"') && a.v2().1.ends_with('"'));

        let mut schema = widget_schema();
        schema["properties"]["spec"]["properties"]["colour"] = json!({"type": "string"});
        let mut changed = registry();
        changed.register(widget(
            "toys.example.com",
            "v1alpha1",
            "Doohickey",
            "doohickeys",
            "doohickey",
            false,
            schema,
        ));
        let c = OpenApiDocs::build(&changed);
        assert_ne!(a.v2().1, c.v2().1);
        assert_ne!(a.v3_root().1, c.v3_root().1);
        assert_ne!(
            a.v3_group_version(GV).map(|d| d.1),
            c.v3_group_version(GV).map(|d| d.1)
        );
        // Other group-versions are untouched.
        assert_eq!(a.v3_hash("api/v1"), c.v3_hash("api/v1"));
    }

    #[test]
    fn etag_changes_with_a_kind_schema() {
        let mut reg_a = ResourceRegistry::default();
        reg_a.register(widget(
            "toys.example.com",
            "v1alpha1",
            "Widget",
            "widgets",
            "widget",
            true,
            widget_schema(),
        ));
        let mut schema = widget_schema();
        schema["properties"]["spec"]["required"] = json!([]);
        let mut reg_b = ResourceRegistry::default();
        reg_b.register(widget(
            "toys.example.com",
            "v1alpha1",
            "Widget",
            "widgets",
            "widget",
            true,
            schema,
        ));
        let a = OpenApiDocs::build(&reg_a);
        let b = OpenApiDocs::build(&reg_b);
        assert_ne!(a.v2().1, b.v2().1);
        assert_ne!(a.v3_hash(GV), b.v3_hash(GV));
    }

    #[test]
    fn cluster_scoped_kinds_have_no_namespace_paths() {
        let mut def = widget(
            "toys.example.com",
            "v1alpha1",
            "Shelf",
            "shelves",
            "shelf",
            true,
            widget_schema(),
        );
        def.namespaced = false;
        let mut reg = ResourceRegistry::default();
        reg.register(def);
        let docs = OpenApiDocs::build(&reg);
        let doc = v3_doc(&docs, GV);
        let paths: Vec<&str> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(paths.len(), 3, "{paths:?}");
        assert!(paths.iter().all(|p| !p.contains("namespace")), "{paths:?}");
        assert_eq!(
            doc["paths"]["/apis/toys.example.com/v1alpha1/shelves"]["get"]["operationId"],
            "listToysExampleComV1alpha1Shelf"
        );
        assert_refs_resolve(&doc, "#/components/schemas/", "/components/schemas");
    }

    #[test]
    fn flotta_kinds_publish_complete_documents() {
        let reg = crate::resources::flotta();
        let gv = "apis/management.project-flotta.io/v1alpha1";
        let kinds = [
            ("EdgeDevice", "edgedevices"),
            ("EdgeDeviceSet", "edgedevicesets"),
            ("EdgeWorkload", "edgeworkloads"),
            ("EdgeDeviceSignedRequest", "edgedevicesignedrequests"),
            ("EdgeConfig", "edgeconfigs"),
            ("PlaybookExecution", "playbookexecutions"),
        ];
        assert_eq!(reg.all().len(), kinds.len());

        let discovery = crate::rest::discovery::api_resource_list(
            &reg,
            "management.project-flotta.io",
            "v1alpha1",
        )
        .expect("discovery");
        let names: Vec<&str> = discovery["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for (_, plural) in kinds {
            assert!(names.contains(&plural), "{plural} missing from {names:?}");
            let status = format!("{plural}/status");
            assert!(names.contains(&status.as_str()), "{status} missing");
        }

        let docs = OpenApiDocs::build(&reg);
        let root = parse(docs.v3_root().0);
        assert!(root["paths"].get(gv).is_some(), "{root}");
        let v3 = v3_doc(&docs, gv);
        let v2 = parse(docs.v2().0);
        assert_refs_resolve(&v3, "#/components/schemas/", "/components/schemas");
        assert_refs_resolve(&v2, "#/definitions/", "/definitions");
        for keyword in ["nullable", "anyOf", "oneOf"] {
            assert!(!has_keyword(&v2["definitions"], keyword), "{keyword} in v2");
        }
        for (kind, plural) in kinds {
            let name = format!("io.project-flotta.management.v1alpha1.{kind}");
            for (doc, table) in [(&v3, "/components/schemas"), (&v2, "/definitions")] {
                let schema = doc
                    .pointer(table)
                    .and_then(|t| t.get(&name))
                    .unwrap_or_else(|| panic!("{name} missing"));
                assert_eq!(
                    schema["x-kubernetes-group-version-kind"],
                    json!([{"group": "management.project-flotta.io", "version": "v1alpha1", "kind": kind}])
                );
            }
            let item = format!(
                "/apis/management.project-flotta.io/v1alpha1/namespaces/{{namespace}}/{plural}/{{name}}"
            );
            let content = v3["paths"][&item]["patch"]["requestBody"]["content"]
                .as_object()
                .unwrap_or_else(|| panic!("no PATCH on {item}"));
            assert_eq!(content.len(), PATCH_TYPES.len());
            assert!(!content.contains_key("application/strategic-merge-patch+json"));
            assert!(v3["paths"][format!("{item}/status")]["put"].is_object());
            assert!(
                v3["paths"][format!("/apis/management.project-flotta.io/v1alpha1/{plural}")]["get"]
                    .is_object()
            );
        }
        // What `kubectl explain edgedevice.spec.heartbeat.periodSeconds` walks.
        let device =
            &v3["components"]["schemas"]["io.project-flotta.management.v1alpha1.EdgeDevice"];
        assert!(
            device
                .pointer("/properties/spec/properties/heartbeat/properties/periodSeconds/type")
                .is_some(),
            "{device}"
        );
        assert!(
            !std::str::from_utf8(docs.v2().0)
                .expect("utf-8")
                .contains("strategic-merge-patch")
        );
    }
}
