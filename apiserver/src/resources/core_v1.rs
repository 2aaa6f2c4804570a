//! The core `v1` kinds served in standalone mode: `ConfigMap` and `Secret`, namespaced,
//! without a status subresource, so that workloads and devices can reference them and
//! `kubectl create configmap|secret` works against this server.
//!
//! Validation follows the Kubernetes API server's rules for these kinds: data keys must be
//! valid config keys, a ConfigMap key may not be in both `data` and `binaryData`, the data
//! of either kind is at most 1 MiB, a Secret's `type` defaults to `Opaque` and the
//! well-known types require their keys. A Secret's write-only `stringData` is merged into
//! `data` (base64 in JSON) and dropped, as Kubernetes does on every write.
//!
//! Limits: the rules that compare with the stored object (an `immutable` object's data,
//! a Secret's `type`) are not enforced, because a [`Strategy`] sees only the new object;
//! `kubernetes.io/service-account-token` Secrets are stored like any other (no token
//! controller exists here).

use std::collections::BTreeMap;
use std::sync::Arc;

use flotta_api::validation::{FieldError, FieldErrorKind};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::rest::resource::{Column, ResourceDef, Strategy};

pub mod protobuf;

/// The largest total size of a ConfigMap's or Secret's data, in bytes (Kubernetes'
/// `MaxSecretSize`, also enforced for ConfigMaps).
const MAX_DATA_BYTES: usize = 1024 * 1024;
/// The longest data key.
const MAX_KEY_LENGTH: usize = 253;
/// The `type` of a Secret that does not say.
pub const SECRET_TYPE_OPAQUE: &str = "Opaque";

/// The `ConfigMap` and `Secret` kinds of the core group, version `v1`.
pub fn kinds() -> Vec<ResourceDef> {
    vec![
        core_kind(
            "ConfigMap",
            "configmaps",
            "configmap",
            &["cm"],
            config_map_schema(),
            vec![Column {
                name: "Data",
                type_: "integer",
                description: "the number of keys in data and binaryData",
                priority: 0,
            }],
            Arc::new(CoreStrategy::<ConfigMap> {
                rules: config_map_rules,
                cells: config_map_cells,
            }),
        ),
        core_kind(
            "Secret",
            "secrets",
            "secret",
            &[],
            secret_schema(),
            vec![
                Column {
                    name: "Type",
                    type_: "string",
                    description: "type: how the secret's data is used",
                    priority: 0,
                },
                Column {
                    name: "Data",
                    type_: "integer",
                    description: "the number of keys in data",
                    priority: 0,
                },
            ],
            Arc::new(CoreStrategy::<Secret> {
                rules: secret_rules,
                cells: secret_cells,
            }),
        ),
    ]
}

fn core_kind(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    schema: Value,
    columns: Vec<Column>,
    strategy: Arc<dyn Strategy>,
) -> ResourceDef {
    ResourceDef {
        group: "",
        version: "v1",
        kind,
        plural,
        singular,
        short_names,
        categories: &[],
        namespaced: true,
        has_status: false,
        schema,
        columns,
        strategy,
        presenter: None,
    }
}

/// Decodes into the k8s-openapi type, applies the kind's rules (which may also bring the
/// object into canonical form) and encodes again, pruning unknown fields.
struct CoreStrategy<K> {
    rules: fn(&mut K) -> Vec<FieldError>,
    cells: fn(&Value) -> Vec<Value>,
}

impl<K> Strategy for CoreStrategy<K>
where
    K: DeserializeOwned + Serialize + Send + Sync + 'static,
{
    fn validate(&self, object: &Value) -> Result<Value, Vec<FieldError>> {
        let mut typed: K = serde_path_to_error::deserialize(object).map_err(|e| {
            let path = e.path().to_string();
            vec![FieldError::new(
                FieldErrorKind::Invalid,
                if path == "." { String::new() } else { path },
                e.into_inner().to_string(),
            )]
        })?;
        let errors = (self.rules)(&mut typed);
        if !errors.is_empty() {
            return Err(errors);
        }
        serde_json::to_value(&typed)
            .map_err(|e| vec![FieldError::new(FieldErrorKind::Invalid, "", e.to_string())])
    }

    fn cells(&self, object: &Value) -> Vec<Value> {
        (self.cells)(object)
    }
}

/// The number of keys of the objects at `pointers`.
fn key_count(object: &Value, pointers: &[&str]) -> Value {
    let n: usize = pointers
        .iter()
        .filter_map(|p| object.pointer(p).and_then(Value::as_object))
        .map(serde_json::Map::len)
        .sum();
    json!(n)
}

fn config_map_cells(object: &Value) -> Vec<Value> {
    vec![key_count(object, &["/data", "/binaryData"])]
}

fn secret_cells(object: &Value) -> Vec<Value> {
    vec![
        object.get("type").cloned().unwrap_or(Value::Null),
        key_count(object, &["/data"]),
    ]
}

/// Kubernetes' config key rule: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
fn check_key(key: &str, path: &str, errors: &mut Vec<FieldError>) {
    let field = format!("{path}[{key}]");
    if key.len() > MAX_KEY_LENGTH {
        errors.push(FieldError::new(
            FieldErrorKind::Invalid,
            field,
            format!("Invalid value: {key:?}: must be no more than {MAX_KEY_LENGTH} characters"),
        ));
        return;
    }
    let valid_chars = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_chars {
        errors.push(FieldError::new(
            FieldErrorKind::Invalid,
            field,
            format!(
                "Invalid value: {key:?}: a valid config key must consist of alphanumeric \
                 characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', \
                 regex used for validation is '[-._a-zA-Z0-9]+')"
            ),
        ));
    } else if key == "." || key == ".." {
        errors.push(FieldError::new(
            FieldErrorKind::Invalid,
            field,
            format!("Invalid value: {key:?}: must not be '.' or '..'"),
        ));
    }
}

fn config_map_rules(config_map: &mut ConfigMap) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut size = 0;
    for (key, value) in config_map.data.iter().flatten() {
        check_key(key, "data", &mut errors);
        size += key.len() + value.len();
    }
    for (key, value) in config_map.binary_data.iter().flatten() {
        check_key(key, "binaryData", &mut errors);
        size += key.len() + value.0.len();
        if config_map
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
        {
            errors.push(FieldError::new(
                FieldErrorKind::Invalid,
                format!("data[{key}]"),
                format!("Invalid value: {key:?}: duplicate of key present in binaryData"),
            ));
        }
    }
    if size > MAX_DATA_BYTES {
        errors.push(FieldError::new(
            FieldErrorKind::TooLong,
            "",
            format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        ));
    }
    errors
}

/// The keys each well-known Secret type must have (one of them, for basic-auth).
fn required_keys(type_: &str) -> &'static [&'static str] {
    match type_ {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        _ => &[],
    }
}

fn secret_rules(secret: &mut Secret) -> Vec<FieldError> {
    // stringData is write-only: it overrides data and is never stored.
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (key, value) in string_data {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    let type_ = secret
        .type_
        .get_or_insert_with(|| SECRET_TYPE_OPAQUE.to_string())
        .clone();
    let mut errors = Vec::new();
    let data = secret.data.clone().unwrap_or_default();
    let mut size = 0;
    for (key, value) in &data {
        check_key(key, "data", &mut errors);
        size += value.0.len();
    }
    if size > MAX_DATA_BYTES {
        errors.push(FieldError::new(
            FieldErrorKind::TooLong,
            "data",
            format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        ));
    }
    for key in required_keys(&type_) {
        if !data.contains_key(*key) {
            errors.push(FieldError::new(
                FieldErrorKind::Required,
                format!("data[{key}]"),
                "Required value",
            ));
        }
    }
    for json_key in [".dockercfg", ".dockerconfigjson"] {
        if required_keys(&type_).contains(&json_key)
            && let Some(value) = data.get(json_key)
            && serde_json::from_slice::<Value>(&value.0).is_err()
        {
            errors.push(FieldError::new(
                FieldErrorKind::Invalid,
                format!("data[{json_key}]"),
                "Invalid value: \"<secret contents redacted>\": invalid JSON",
            ));
        }
    }
    if type_ == "kubernetes.io/basic-auth"
        && !data.contains_key("username")
        && !data.contains_key("password")
    {
        errors.push(FieldError::new(
            FieldErrorKind::Required,
            "data[username]",
            "Required value: either username or password is required for basic authentication",
        ));
    }
    errors
}

/// A string-to-string map property.
fn string_map(description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string"},
    })
}

/// A string-to-bytes map property (base64 strings in JSON).
fn bytes_map(description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string", "format": "byte"},
    })
}

fn type_meta(properties: &mut serde_json::Map<String, Value>) {
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

fn config_map_schema() -> Value {
    let mut properties = serde_json::Map::new();
    type_meta(&mut properties);
    properties.insert(
        "data".into(),
        string_map("Configuration data; keys consist of alphanumeric characters, '-', '_' or '.'."),
    );
    properties.insert(
        "binaryData".into(),
        bytes_map("Binary configuration data; keys may not also be in data."),
    );
    properties.insert(
        "immutable".into(),
        json!({"type": "boolean", "description": "If true, the data cannot be updated."}),
    );
    json!({
        "type": "object",
        "description": "ConfigMap holds configuration data for pods and edge workloads to consume.",
        "properties": properties,
    })
}

fn secret_schema() -> Value {
    let mut properties = serde_json::Map::new();
    type_meta(&mut properties);
    properties.insert(
        "data".into(),
        bytes_map("Secret data, base64-encoded; keys consist of alphanumeric characters, '-', '_' or '.'."),
    );
    properties.insert(
        "stringData".into(),
        string_map("Write-only convenience field: merged into data on write, never returned."),
    );
    properties.insert(
        "type".into(),
        json!({"type": "string", "description": "How the data is used; default Opaque."}),
    );
    properties.insert(
        "immutable".into(),
        json!({"type": "boolean", "description": "If true, the data cannot be updated."}),
    );
    json!({
        "type": "object",
        "description": "Secret holds secret data of a certain type; its data is at most 1 MiB.",
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(kind: &str) -> Arc<dyn Strategy> {
        kinds()
            .into_iter()
            .find(|d| d.kind == kind)
            .map(|d| d.strategy)
            .expect("kind registered")
    }

    #[test]
    fn string_data_is_merged_into_data_and_dropped() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"},
            "data": {"a": "b2xk", "k": "b2xk"},
            "stringData": {"k": "new"},
        });
        let canonical = strategy("Secret").validate(&secret).expect("valid");
        assert_eq!(canonical["data"], json!({"a": "b2xk", "k": "bmV3"}));
        assert!(canonical.get("stringData").is_none());
        assert_eq!(canonical["type"], json!("Opaque"));
    }

    #[test]
    fn bad_keys_and_missing_type_keys_are_invalid() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s"},
            "type": "kubernetes.io/tls",
            "stringData": {"bad key": "x"},
        });
        let errors = strategy("Secret").validate(&secret).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["data[bad key]", "data[tls.crt]", "data[tls.key]"]);
    }

    #[test]
    fn config_map_key_in_both_maps_is_invalid() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "data": {"k": "v"},
            "binaryData": {"k": "dg=="},
        });
        let errors = strategy("ConfigMap").validate(&cm).expect_err("invalid");
        assert_eq!(errors[0].field, "data[k]");
        let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}, "extra": 1});
        let canonical = strategy("ConfigMap").validate(&ok).expect("valid");
        assert!(canonical.get("extra").is_none());
        assert_eq!(strategy("ConfigMap").cells(&canonical), vec![json!(1)]);
    }

    #[test]
    fn invalid_base64_is_reported_on_its_key() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "%%%"}});
        let errors = strategy("Secret").validate(&secret).expect_err("invalid");
        assert_eq!(errors[0].field, "data.k");
    }
}
