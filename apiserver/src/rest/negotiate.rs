//! Content negotiation: which representation a client accepts (plain JSON, `Table`, or
//! `PartialObjectMetadata`) and how a request body is decoded (JSON or YAML).
//! Protobuf and CBOR are never produced; a client that lists JSON after them gets JSON.

use serde_json::Value;

use super::error::ApiError;

/// The representation of objects in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Object,
    /// A `meta.k8s.io` Table (`kubectl get`).
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList` (metadata-only clients).
    Metadata,
}

/// Media types we can produce, for 406 messages.
const PRODUCED: &str = "application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io";

/// Picks the first entry of an `Accept` header we can serve.
pub fn representation(accept: Option<&str>) -> Result<Representation, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Representation::Object);
    };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut as_, mut g, mut v) = (None, None, None);
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(val.trim().to_string()),
                    "g" => g = Some(val.trim().to_string()),
                    "v" => v = Some(val.trim().to_string()),
                    _ => {}
                }
            }
        }
        if !matches!(
            media.as_str(),
            "application/json" | "*/*" | "application/*" | "application/yaml"
        ) {
            continue;
        }
        match as_.as_deref() {
            None => return Ok(Representation::Object),
            Some("Table")
                if g.as_deref() == Some("meta.k8s.io")
                    && matches!(v.as_deref(), Some("v1" | "v1beta1")) =>
            {
                return Ok(Representation::Table);
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if g.as_deref() == Some("meta.k8s.io")
                    && matches!(v.as_deref(), Some("v1" | "v1beta1")) =>
            {
                return Ok(Representation::Metadata);
            }
            Some(_) => continue,
        }
    }
    Err(ApiError::NotAcceptable(PRODUCED.into()))
}

/// Decodes a request body as JSON or YAML, by its `Content-Type`.
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "application/json".into());
    match media.as_str() {
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("unable to decode the JSON body: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::BadRequest("the YAML body is not UTF-8".into()))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::BadRequest(format!("unable to decode the YAML body: {e}")))
        }
        // kubectl's typed clients send core kinds (ConfigMap, Secret) as protobuf.
        crate::resources::core_v1::protobuf::MEDIA_TYPE => {
            use crate::resources::core_v1::protobuf::{ProtobufError, decode};
            decode(body).map_err(|e| match e {
                ProtobufError::Malformed(_) => ApiError::BadRequest(e.to_string()),
                _ => ApiError::UnsupportedMediaType(format!(
                    "application/json, application/yaml ({e})"
                )),
            })
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "application/json, application/yaml (got {other})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_accept_selects_table() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(representation(Some(a)).unwrap(), Representation::Table);
    }

    #[test]
    fn protobuf_first_falls_through_to_json() {
        let a = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(representation(Some(a)).unwrap(), Representation::Metadata);
        let a = "application/vnd.kubernetes.protobuf, application/json";
        assert_eq!(representation(Some(a)).unwrap(), Representation::Object);
    }

    #[test]
    fn unservable_accept_is_406() {
        assert!(matches!(
            representation(Some("application/vnd.kubernetes.protobuf")),
            Err(ApiError::NotAcceptable(_))
        ));
        assert_eq!(representation(None).unwrap(), Representation::Object);
        assert_eq!(representation(Some("*/*")).unwrap(), Representation::Object);
    }

    #[test]
    fn decodes_yaml_and_rejects_protobuf_bodies() {
        let v = decode_body(Some("application/yaml"), b"a: 1\nb: [x]\n").unwrap();
        assert_eq!(v, serde_json::json!({"a": 1, "b": ["x"]}));
        assert!(matches!(
            decode_body(Some("application/vnd.kubernetes.protobuf"), b""),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            decode_body(None, b"{"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
