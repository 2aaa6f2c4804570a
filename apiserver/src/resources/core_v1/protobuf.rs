//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! for the core kinds this server stores, into their JSON form.
//!
//! kubectl's typed clients send built-in kinds as protobuf whatever the server advertises
//! (`kubectl create configmap|secret` does), so a server that serves core `v1` ConfigMaps
//! and Secrets must read that encoding. The body is the Kubernetes envelope: the magic
//! `k8s\0`, then a `runtime.Unknown` message carrying `typeMeta` (apiVersion, kind) and the
//! object's bytes in `raw`.
//!
//! Limits: only `ConfigMap`, `Secret` and `DeleteOptions` bodies are understood, and of
//! `ObjectMeta` only what a client may set (name, generateName, namespace, uid,
//! resourceVersion, labels, annotations, ownerReferences, finalizers); server-owned
//! metadata is dropped since the server sets it anyway. Responses are never protobuf:
//! kubectl accepts JSON after protobuf in `Accept`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The media type of Kubernetes protobuf.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    /// The body does not start with the Kubernetes magic bytes.
    #[error("the protobuf body lacks the k8s envelope prefix")]
    NoEnvelope,
    /// The bytes are not well-formed protobuf.
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    /// The envelope names a kind this server does not decode from protobuf.
    #[error("protobuf bodies of kind {0:?} are not supported; send JSON")]
    UnsupportedKind(String),
}

/// Decodes a protobuf request body into the JSON object it encodes.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoEnvelope)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for field in Fields(rest) {
        match field? {
            (1, Wire::Bytes(type_meta)) => {
                for f in Fields(type_meta) {
                    match f? {
                        (1, Wire::Bytes(b)) => api_version = string(b)?,
                        (2, Wire::Bytes(b)) => kind = string(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut object = match kind.as_str() {
        "ConfigMap" => config_map(raw)?,
        "Secret" => secret(raw)?,
        "DeleteOptions" => delete_options(raw)?,
        _ => return Err(ProtobufError::UnsupportedKind(kind)),
    };
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Ok(Value::Object(object))
}

/// One decoded field value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one message, in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.read())
    }
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .0
                .split_first()
                .ok_or(ProtobufError::Malformed("truncated varint"))?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::Malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        if self.0.len() < n {
            return Err(ProtobufError::Malformed("truncated field"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn read(&mut self) -> Result<(u64, Wire<'a>), ProtobufError> {
        let tag = self.varint()?;
        let number = tag >> 3;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtobufError::Malformed("length too large"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            _ => return Err(ProtobufError::Malformed("unsupported wire type")),
        };
        Ok((number, wire))
    }
}

fn string(bytes: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::Malformed("string is not UTF-8"))
}

/// A `map<string, …>` entry: key (1) and value (2) bytes.
fn map_entry(entry: &[u8]) -> Result<(String, Vec<u8>), ProtobufError> {
    let (mut key, mut value) = (String::new(), Vec::new());
    for f in Fields(entry) {
        match f? {
            (1, Wire::Bytes(b)) => key = string(b)?,
            (2, Wire::Bytes(b)) => value = b.to_vec(),
            _ => {}
        }
    }
    Ok((key, value))
}

/// Inserts a string map entry into `map[field]`.
fn put_string(
    object: &mut Map<String, Value>,
    field: &str,
    entry: &[u8],
) -> Result<(), ProtobufError> {
    let (key, value) = map_entry(entry)?;
    let value = string(&value)?;
    insert_entry(object, field, key, json!(value));
    Ok(())
}

/// Inserts a bytes map entry (base64 in JSON) into `map[field]`.
fn put_bytes(
    object: &mut Map<String, Value>,
    field: &str,
    entry: &[u8],
) -> Result<(), ProtobufError> {
    let (key, value) = map_entry(entry)?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    insert_entry(object, field, key, json!(encoded));
    Ok(())
}

fn insert_entry(object: &mut Map<String, Value>, field: &str, key: String, value: Value) {
    if let Value::Object(map) = object
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()))
    {
        map.insert(key, value);
    }
}

/// Sets a string field unless empty (proto2 clients send unset strings as empty).
fn put_nonempty(
    object: &mut Map<String, Value>,
    field: &str,
    bytes: &[u8],
) -> Result<(), ProtobufError> {
    let s = string(bytes)?;
    if !s.is_empty() {
        object.insert(field.into(), json!(s));
    }
    Ok(())
}

fn object_meta(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let mut meta = Map::new();
    let mut owners = Vec::new();
    let mut finalizers = Vec::new();
    for f in Fields(bytes) {
        match f? {
            (1, Wire::Bytes(b)) => put_nonempty(&mut meta, "name", b)?,
            (2, Wire::Bytes(b)) => put_nonempty(&mut meta, "generateName", b)?,
            (3, Wire::Bytes(b)) => put_nonempty(&mut meta, "namespace", b)?,
            (5, Wire::Bytes(b)) => put_nonempty(&mut meta, "uid", b)?,
            (6, Wire::Bytes(b)) => put_nonempty(&mut meta, "resourceVersion", b)?,
            (11, Wire::Bytes(b)) => put_string(&mut meta, "labels", b)?,
            (12, Wire::Bytes(b)) => put_string(&mut meta, "annotations", b)?,
            (13, Wire::Bytes(b)) => owners.push(owner_reference(b)?),
            (14, Wire::Bytes(b)) => finalizers.push(json!(string(b)?)),
            _ => {}
        }
    }
    if !owners.is_empty() {
        meta.insert("ownerReferences".into(), Value::Array(owners));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

fn owner_reference(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let mut owner = Map::new();
    for f in Fields(bytes) {
        match f? {
            (1, Wire::Bytes(b)) => put_nonempty(&mut owner, "kind", b)?,
            (3, Wire::Bytes(b)) => put_nonempty(&mut owner, "name", b)?,
            (4, Wire::Bytes(b)) => put_nonempty(&mut owner, "uid", b)?,
            (5, Wire::Bytes(b)) => put_nonempty(&mut owner, "apiVersion", b)?,
            (6, Wire::Varint(v)) => {
                owner.insert("controller".into(), json!(v != 0));
            }
            (7, Wire::Varint(v)) => {
                owner.insert("blockOwnerDeletion".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(Value::Object(owner))
}

fn config_map(bytes: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut object = Map::new();
    for f in Fields(bytes) {
        match f? {
            (1, Wire::Bytes(b)) => {
                object.insert("metadata".into(), object_meta(b)?);
            }
            (2, Wire::Bytes(b)) => put_string(&mut object, "data", b)?,
            (3, Wire::Bytes(b)) => put_bytes(&mut object, "binaryData", b)?,
            (4, Wire::Varint(v)) => {
                object.insert("immutable".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(object)
}

fn secret(bytes: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut object = Map::new();
    for f in Fields(bytes) {
        match f? {
            (1, Wire::Bytes(b)) => {
                object.insert("metadata".into(), object_meta(b)?);
            }
            (2, Wire::Bytes(b)) => put_bytes(&mut object, "data", b)?,
            (3, Wire::Bytes(b)) => put_nonempty(&mut object, "type", b)?,
            (4, Wire::Bytes(b)) => put_string(&mut object, "stringData", b)?,
            (5, Wire::Varint(v)) => {
                object.insert("immutable".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(object)
}

fn delete_options(bytes: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut object = Map::new();
    let mut dry_run = Vec::new();
    for f in Fields(bytes) {
        match f? {
            (1, Wire::Varint(v)) => {
                object.insert("gracePeriodSeconds".into(), json!(v));
            }
            (2, Wire::Bytes(b)) => {
                let mut preconditions = BTreeMap::new();
                for p in Fields(b) {
                    match p? {
                        (1, Wire::Bytes(uid)) => {
                            preconditions.insert("uid", string(uid)?);
                        }
                        (2, Wire::Bytes(rv)) => {
                            preconditions.insert("resourceVersion", string(rv)?);
                        }
                        _ => {}
                    }
                }
                object.insert("preconditions".into(), json!(preconditions));
            }
            (4, Wire::Bytes(b)) => put_nonempty(&mut object, "propagationPolicy", b)?,
            (5, Wire::Bytes(b)) => dry_run.push(json!(string(b)?)),
            _ => {}
        }
    }
    if !dry_run.is_empty() {
        object.insert("dryRun".into(), Value::Array(dry_run));
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl create configmap x --from-literal=a=b` (v1.32) sends.
    const KUBECTL_CONFIG_MAP: &[u8] = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x1b\x0a\x11\x0a\x01x\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x06\x0a\x01a\x12\x01b\x1a\x00\x22\x00";
    /// What `kubectl create secret generic s --from-literal=k=v` (v1.32) sends.
    const KUBECTL_SECRET: &[u8] = b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x1d\x0a\x11\x0a\x01s\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x06\x0a\x01k\x12\x01v\x1a\x00\x1a\x00\x22\x00";

    #[test]
    fn decodes_kubectl_config_map() {
        assert_eq!(
            decode(KUBECTL_CONFIG_MAP).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn decodes_kubectl_secret() {
        assert_eq!(
            decode(KUBECTL_SECRET).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}})
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode(b"{}"), Err(ProtobufError::NoEnvelope));
        assert!(matches!(
            decode(b"k8s\x00\x0a\xff"),
            Err(ProtobufError::Malformed(_))
        ));
        let pod = b"k8s\x00\x0a\x09\x0a\x02v1\x12\x03Pod";
        assert_eq!(
            decode(pod),
            Err(ProtobufError::UnsupportedKind("Pod".into()))
        );
    }
}
