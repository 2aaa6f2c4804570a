//! Object metadata rules the server owns (kube-api-contract §5.1): names, generated names,
//! uid, timestamps, generation, immutable fields, and the unknown-field check behind
//! `fieldValidation`. Objects are plain JSON here; kind-specific checks live in the
//! [`Strategy`](super::resource::Strategy).

use std::collections::BTreeMap;

use flotta_api::validation::{FieldError, FieldErrorKind};
use rand::Rng;
use serde_json::{Map, Value};

/// Metadata fields the server sets and clients can't change through an update.
const SERVER_OWNED: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
];

/// The object's `metadata` map, created if missing or not an object.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        // Unreachable: the metadata object was just ensured above.
        _ => unreachable!("metadata was just set to an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.labels` as a map (non-string values are skipped).
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The current time as Kubernetes writes timestamps (RFC 3339, second precision, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A new object uid.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `prefix` plus five random characters, as `metadata.generateName` asks.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // Keep the generated name a valid DNS label-sized name, like Kubernetes does.
    let prefix: String = prefix.chars().take(58).collect();
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks an object name: a DNS-1123 subdomain (lowercase alphanumerics, `-`, `.`; at most
/// 253 characters; each dot-separated part starts and ends alphanumeric).
pub fn validate_name(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if name.split('.').all(is_dns1123_label) {
        None
    } else {
        Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into())
    }
}

/// Checks a namespace name: a DNS-1123 label.
pub fn validate_namespace(ns: &str) -> Option<String> {
    if is_dns1123_label(ns) {
        None
    } else {
        Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', start and end with an alphanumeric character, and be at most 63 characters".into())
    }
}

/// Validates the generic parts of metadata: name, label keys and values, annotation keys
/// and total annotation size, finalizer names.
pub fn validate_metadata(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match meta_str(obj, "name") {
        None | Some("") => errs.push(FieldError::new(
            FieldErrorKind::Required,
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            if let Some(msg) = validate_name(name) {
                errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    "metadata.name",
                    format!("Invalid value: {name:?}: {msg}"),
                ));
            }
        }
    }
    let Some(meta) = obj.get("metadata") else {
        return errs;
    };
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(msg) = flotta_api::selector::validate_label_key(k).err() {
                errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    "metadata.labels",
                    format!("Invalid value: {k:?}: {msg}"),
                ));
            }
            match v.as_str() {
                Some(v) => {
                    if let Some(msg) = flotta_api::selector::validate_label_value(k, v).err() {
                        errs.push(FieldError::new(
                            FieldErrorKind::Invalid,
                            format!("metadata.labels.{k}"),
                            format!("Invalid value: {v:?}: {msg}"),
                        ));
                    }
                }
                None => errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    format!("metadata.labels.{k}"),
                    "label values must be strings",
                )),
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0usize;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Some(msg) = flotta_api::selector::validate_label_key(k).err() {
                errs.push(FieldError::new(
                    FieldErrorKind::Invalid,
                    "metadata.annotations",
                    format!("Invalid value: {k:?}: {msg}"),
                ));
            }
        }
        if total > 256 * 1024 {
            errs.push(FieldError::new(
                FieldErrorKind::TooLong,
                "metadata.annotations",
                "Too long: must have at most 262144 bytes",
            ));
        }
    }
    for (i, f) in finalizers(obj).iter().enumerate() {
        if flotta_api::selector::validate_label_key(f).is_err() {
            errs.push(FieldError::new(
                FieldErrorKind::Invalid,
                format!("metadata.finalizers[{i}]"),
                format!("Invalid value: {f:?}: must be a qualified name"),
            ));
        }
    }
    errs
}

/// Copies the server-owned metadata fields of `from` onto `to` (removing those `from`
/// lacks), and drops `resourceVersion`, which lives in the store's revision.
pub fn keep_server_fields(from: &Value, to: &mut Value) {
    let src = from.get("metadata").and_then(Value::as_object).cloned();
    let dst = meta_mut(to);
    for field in SERVER_OWNED {
        match src.as_ref().and_then(|m| m.get(*field)) {
            Some(v) => {
                dst.insert((*field).to_string(), v.clone());
            }
            None => {
                dst.remove(*field);
            }
        }
    }
    dst.remove("resourceVersion");
}

/// Whether anything outside `metadata` and `status` differs (the CRD rule for bumping
/// `metadata.generation`).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    strip(old) != strip(new)
}

/// Paths of fields present (and not null) in `input` but missing from `canonical`, i.e.
/// the fields the typed decoding dropped as unknown. Paths use Kubernetes notation
/// (`spec.containers[0].foo`).
pub fn unknown_fields(input: &Value, canonical: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_unknown(input, canonical, "", &mut out);
    out
}

fn collect_unknown(input: &Value, canonical: &Value, path: &str, out: &mut Vec<String>) {
    match (input, canonical) {
        (Value::Object(i), Value::Object(c)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match c.get(k) {
                    Some(cv) => collect_unknown(v, cv, &p, out),
                    None if !v.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(c)) => {
            for (n, (iv, cv)) in i.iter().zip(c).enumerate() {
                collect_unknown(iv, cv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_dns1123() {
        assert!(validate_name("dev-1.example").is_none());
        assert!(validate_name("Dev").is_some());
        assert!(validate_name("-a").is_some());
        assert!(validate_name(&"a".repeat(254)).is_some());
        assert!(validate_namespace("edge-ns").is_none());
        assert!(validate_namespace("a.b").is_some());
    }

    #[test]
    fn generated_names_have_prefix_and_suffix() {
        let n = generate_name("dev-");
        assert!(n.starts_with("dev-") && n.len() == 9);
        assert!(validate_name(&n).is_none());
    }

    #[test]
    fn generation_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"p": 1}});
        let b = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"x": 1}, "status": {"p": 2}});
        assert!(!spec_changed(&a, &b));
        let c = json!({"metadata": {}, "spec": {"x": 2}});
        assert!(spec_changed(&a, &c));
    }

    #[test]
    fn unknown_fields_are_reported_with_paths() {
        let input = json!({"spec": {"a": 1, "bogus": 2, "list": [{"x": 1, "y": 2}]}, "gone": null});
        let canonical = json!({"spec": {"a": 1, "list": [{"x": 1}]}});
        assert_eq!(
            unknown_fields(&input, &canonical),
            vec!["spec.bogus", "spec.list[0].y"]
        );
    }

    #[test]
    fn server_fields_are_kept_and_resource_version_dropped() {
        let old = json!({"metadata": {"name": "a", "uid": "u1", "generation": 3, "creationTimestamp": "t"}});
        let mut new = json!({"metadata": {"name": "a", "uid": "other", "resourceVersion": "9", "labels": {"k": "v"}, "deletionTimestamp": "x"}});
        keep_server_fields(&old, &mut new);
        assert_eq!(new["metadata"]["uid"], "u1");
        assert_eq!(new["metadata"]["generation"], 3);
        assert_eq!(new["metadata"]["labels"]["k"], "v");
        assert!(new["metadata"].get("resourceVersion").is_none());
        assert!(new["metadata"].get("deletionTimestamp").is_none());
    }
}
