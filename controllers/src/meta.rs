//! Object metadata as the controllers read and edit it on JSON objects: keys, labels,
//! finalizers, generation, deletion, the `status` map and its lists of named entries, and
//! decoding into the typed kinds.
//!
//! Limits: reads are lenient (a missing or mistyped field reads as absent); the server has
//! already validated every stored object.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::client::{ClientError, Kind};

/// The namespace and name of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an object; `None` when it lacks a name.
    pub fn of(object: &Value) -> Option<Self> {
        let name = meta_str(object, "name")?;
        let namespace = meta_str(object, "namespace").unwrap_or_default();
        Some(ObjectKey::new(namespace, name))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// The object's `metadata` map, created when missing.
pub fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = Value::Object(Map::new());
    }
    match object.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        // Unreachable: `metadata` was made an object just above.
        _ => unreachable!("metadata is an object"),
    }
}

/// `metadata.generation` (1 when absent).
pub fn generation(object: &Value) -> i64 {
    object
        .get("metadata")
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// `metadata.labels` (non-string values skipped).
pub fn labels(object: &Value) -> BTreeMap<String, String> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// One label's value.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("labels")?.get(key)?.as_str()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(object: &Value) -> bool {
    object
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
}

/// Whether `metadata.finalizers` contains `finalizer`.
pub fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    object
        .get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|v| v.as_str() == Some(finalizer)))
}

/// A copy of `object` with `finalizer` added (`None` when it is already there).
pub fn with_finalizer(object: &Value, finalizer: &str) -> Option<Value> {
    if has_finalizer(object, finalizer) {
        return None;
    }
    let mut next = object.clone();
    let meta = meta_mut(&mut next);
    match meta.get_mut("finalizers").and_then(Value::as_array_mut) {
        Some(list) => list.push(json!(finalizer)),
        None => {
            meta.insert("finalizers".into(), json!([finalizer]));
        }
    }
    Some(next)
}

/// A copy of `object` without `finalizer` (`None` when it is not there).
pub fn without_finalizer(object: &Value, finalizer: &str) -> Option<Value> {
    if !has_finalizer(object, finalizer) {
        return None;
    }
    let mut next = object.clone();
    let meta = meta_mut(&mut next);
    if let Some(list) = meta.get_mut("finalizers").and_then(Value::as_array_mut) {
        list.retain(|v| v.as_str() != Some(finalizer));
        if list.is_empty() {
            meta.remove("finalizers");
        }
    }
    Some(next)
}

/// The object's `metadata.labels` map, created when missing.
pub fn labels_mut(object: &mut Value) -> &mut Map<String, Value> {
    let meta = meta_mut(object);
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta.insert("labels".into(), Value::Object(Map::new()));
    }
    match meta.get_mut("labels") {
        Some(Value::Object(map)) => map,
        // Unreachable: `labels` was made an object just above.
        _ => unreachable!("labels is an object"),
    }
}

/// The object's `status` map, created when missing.
pub fn status_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("status").is_some_and(Value::is_object) {
        object["status"] = Value::Object(Map::new());
    }
    match object.get_mut("status") {
        Some(Value::Object(map)) => map,
        // Unreachable: `status` was made an object just above.
        _ => unreachable!("status is an object"),
    }
}

/// The entries of the list `status.<field>` (empty when absent or not a list).
pub fn status_list<'a>(object: &'a Value, field: &str) -> &'a [Value] {
    object
        .get("status")
        .and_then(|s| s.get(field))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The `name`s of the entries of the list `status.<field>`, e.g. a device's
/// `status.workloads` (entries without a string name skipped).
pub fn status_list_names<'a>(object: &'a Value, field: &str) -> impl Iterator<Item = &'a str> {
    status_list(object, field)
        .iter()
        .filter_map(|entry| entry.get("name").and_then(Value::as_str))
}

/// Decodes an object as the typed `kind`.
pub fn decode<T: DeserializeOwned>(kind: Kind, object: &Value) -> Result<T, ClientError> {
    T::deserialize(object).map_err(|e| ClientError::Decode {
        kind,
        key: ObjectKey::of(object)
            .map(|k| k.to_string())
            .unwrap_or_default(),
        message: e.to_string(),
    })
}

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizers_are_added_and_removed_once() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        let with = with_finalizer(&obj, "f").unwrap();
        assert!(has_finalizer(&with, "f"));
        assert!(with_finalizer(&with, "f").is_none());
        let without = without_finalizer(&with, "f").unwrap();
        assert_eq!(without, obj);
        assert!(without_finalizer(&without, "f").is_none());
    }

    #[test]
    fn keys_labels_and_deletion_read_leniently() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"x": "1", "n": 2},
            "deletionTimestamp": "2024-01-01T00:00:00Z", "generation": 3}});
        assert_eq!(ObjectKey::of(&obj), Some(ObjectKey::new("ns", "a")));
        assert_eq!(labels(&obj).len(), 1);
        assert_eq!(label(&obj, "x"), Some("1"));
        assert!(is_deleting(&obj));
        assert_eq!(generation(&obj), 3);
        assert_eq!(ObjectKey::of(&json!({})), None);
    }

    #[test]
    fn status_lists_read_their_named_entries() {
        let device = json!({"status": {"PlaybookExec": [{"name": "d-c"}, {"other": 1},
            {"name": "d-c-1"}], "phase": "up"}});
        assert_eq!(status_list(&device, "PlaybookExec").len(), 3);
        let names: Vec<&str> = status_list_names(&device, "PlaybookExec").collect();
        assert_eq!(names, ["d-c", "d-c-1"]);
        assert!(status_list(&device, "phase").is_empty());
        assert_eq!(status_list_names(&json!({}), "workloads").count(), 0);
    }
}
