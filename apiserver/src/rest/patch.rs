//! `PATCH`: JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386). Strategic merge patch
//! is answered with 415, exactly as Kubernetes does for custom resources, and so is
//! server-side apply until it is implemented. A `resourceVersion` inside the patched
//! object is a precondition; a patch that changes nothing writes nothing.

use flotta_api::validation::{FieldError, FieldErrorKind};
use serde_json::Value;

use super::collection::{Collection, Written};
use super::error::ApiError;
use super::object;
use super::request::QueryOptions;

/// The patch media types this server implements (and publishes in OpenAPI).
pub const PATCH_TYPES: [&str; 2] = [
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// Most operations a JSON Patch may carry (the Kubernetes limit).
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// A decoded patch body.
#[derive(Debug, Clone)]
pub enum Patch {
    /// RFC 6902.
    Json(json_patch::Patch),
    /// RFC 7386.
    Merge(Value),
}

impl Patch {
    /// Decodes a patch body by its `Content-Type`.
    pub fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Patch, ApiError> {
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_default();
        match media.as_str() {
            "application/json-patch+json" => {
                let ops: Vec<Value> = serde_json::from_slice(body).map_err(|e| {
                    ApiError::BadRequest(format!("the JSON patch is not a JSON array: {e}"))
                })?;
                if ops.len() > MAX_JSON_PATCH_OPERATIONS {
                    return Err(ApiError::TooLarge(format!(
                        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                        ops.len()
                    )));
                }
                let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
                    .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
                Ok(Patch::Json(patch))
            }
            "application/merge-patch+json" => {
                let v: Value = serde_json::from_slice(body).map_err(|e| {
                    ApiError::BadRequest(format!("the merge patch is not valid JSON: {e}"))
                })?;
                if !v.is_object() {
                    return Err(ApiError::BadRequest(
                        "a merge patch for an object must be a JSON object".into(),
                    ));
                }
                Ok(Patch::Merge(v))
            }
            _ => Err(ApiError::UnsupportedMediaType(PATCH_TYPES.join(", "))),
        }
    }

    /// Applies the patch to a copy of `current`.
    fn apply(&self, current: &Value) -> Result<Value, ApiError> {
        let mut doc = current.clone();
        match self {
            Patch::Json(p) => json_patch::patch(&mut doc, p).map_err(|e| {
                ApiError::invalid_options(
                    "Patch",
                    vec![FieldError::new(
                        FieldErrorKind::Invalid,
                        "patch",
                        e.to_string(),
                    )],
                )
            })?,
            Patch::Merge(p) => json_patch::merge(&mut doc, p),
        }
        if !doc.is_object() {
            return Err(ApiError::BadRequest(
                "the patched document is not an object".into(),
            ));
        }
        Ok(doc)
    }
}

impl Collection<'_> {
    /// Patches an object (or its status).
    pub async fn patch(
        &self,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch: &Patch,
        opts: &QueryOptions,
    ) -> Result<Written, ApiError> {
        if opts.force {
            return Err(ApiError::invalid_options(
                "PatchOptions",
                vec![FieldError::new(
                    FieldErrorKind::Forbidden,
                    "force",
                    "Forbidden: may not be specified for non-apply patch",
                )],
            ));
        }
        let target = self.target(name);
        self.update_with(namespace, name, subresource, opts, |current| {
            let patched = patch.apply(current)?;
            let wanted = object::meta_str(&patched, "resourceVersion");
            if wanted.is_some_and(|rv| Some(rv) != object::meta_str(current, "resourceVersion")) {
                return Err(ApiError::optimistic_lock(target.clone()));
            }
            Ok(patched)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_and_apply_are_415() {
        for ct in [
            "application/strategic-merge-patch+json",
            "application/apply-patch+yaml",
            "text/plain",
        ] {
            assert!(matches!(
                Patch::decode(Some(ct), b"{}"),
                Err(ApiError::UnsupportedMediaType(_))
            ));
        }
    }

    #[test]
    fn json_and_merge_patches_apply() {
        let current = json!({"metadata": {"name": "a"}, "spec": {"x": 1, "y": 2}});
        let p = Patch::decode(
            Some("application/json-patch+json"),
            br#"[{"op":"replace","path":"/spec/x","value":5}]"#,
        )
        .unwrap();
        assert_eq!(p.apply(&current).unwrap()["spec"]["x"], 5);
        let p = Patch::decode(
            Some("application/merge-patch+json"),
            br#"{"spec":{"y":null}}"#,
        )
        .unwrap();
        assert_eq!(p.apply(&current).unwrap()["spec"], json!({"x": 1}));
    }

    #[test]
    fn failing_test_op_is_422_and_garbage_is_400() {
        let current = json!({"spec": {"x": 1}});
        let p = Patch::decode(
            Some("application/json-patch+json"),
            br#"[{"op":"test","path":"/spec/x","value":2}]"#,
        )
        .unwrap();
        assert!(matches!(p.apply(&current), Err(ApiError::Invalid { .. })));
        assert!(matches!(
            Patch::decode(Some("application/json-patch+json"), b"{}"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
