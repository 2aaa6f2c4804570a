//! What a request asks for: the resource path (`/apis/<g>/<v>/namespaces/<ns>/<r>/<name>/<sub>`,
//! `/api/v1/...`, and the deprecated `/watch/` form) and the query options of the verbs.
//! Parsing only; nothing here touches the store.

use std::collections::HashMap;

use flotta_api::validation::{FieldError, FieldErrorKind};

use super::error::ApiError;

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// API group; empty for `/api/v1`.
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace, if the path has one.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    /// Object name, for item paths.
    pub name: Option<String>,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
    /// Whether the deprecated `/watch/` prefix was used.
    pub watch_prefix: bool,
}

impl ResourcePath {
    /// Parses a path below `/apis/` or `/api/`; `None` when it is not a resource path.
    pub fn parse(path: &str) -> Option<ResourcePath> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["apis", g, v, rest @ ..] => ((*g).to_string(), (*v).to_string(), rest),
            ["api", v, rest @ ..] => (String::new(), (*v).to_string(), rest),
            _ => return None,
        };
        let (watch_prefix, rest) = match rest {
            ["watch", rest @ ..] => (true, rest),
            _ => (false, rest),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, r, rest @ ..] => (Some((*ns).to_string()), [&[*r], rest].concat()),
            _ => (None, rest.to_vec()),
        };
        let (resource, name, subresource) = match rest.as_slice() {
            [r] => (*r, None, None),
            [r, n] => (*r, Some((*n).to_string()), None),
            [r, n, s] => (*r, Some((*n).to_string()), Some((*s).to_string())),
            _ => return None,
        };
        if resource.is_empty() || name.as_deref() == Some("") {
            return None;
        }
        Some(ResourcePath {
            group,
            version,
            namespace,
            resource: resource.to_string(),
            name,
            subresource,
            watch_prefix,
        })
    }
}

/// Query options of every verb, parsed leniently (unknown parameters are ignored, as
/// Kubernetes does) but validated strictly where a value is given.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit` (0 = no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// `watch`.
    pub watch: bool,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `force` (apply only).
    pub force: bool,
    /// `includeObject` for Table output.
    pub include_object: IncludeObject,
}

/// `fieldValidation`: what to do with unknown or duplicate fields in a body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the default).
    #[default]
    Warn,
    /// Fail with 400.
    Strict,
}

/// `includeObject` for Table rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object in rows.
    None,
    /// PartialObjectMetadata (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" | "True" => Ok(true),
        "false" | "0" | "False" | "" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "invalid value {value:?} for boolean parameter {name}"
        ))),
    }
}

impl QueryOptions {
    /// Parses the query parameters of a request.
    pub fn parse(params: &HashMap<String, String>) -> Result<QueryOptions, ApiError> {
        let mut o = QueryOptions::default();
        for (key, value) in params {
            match key.as_str() {
                "labelSelector" => o.label_selector = Some(value.clone()),
                "fieldSelector" => o.field_selector = Some(value.clone()),
                "limit" => {
                    let n: i64 = value.parse().map_err(|_| {
                        ApiError::BadRequest(format!("invalid value {value:?} for limit"))
                    })?;
                    o.limit = usize::try_from(n.max(0)).unwrap_or(0);
                }
                "continue" if !value.is_empty() => o.continue_token = Some(value.clone()),
                "resourceVersion" if !value.is_empty() => o.resource_version = Some(value.clone()),
                "resourceVersionMatch" if !value.is_empty() => {
                    o.resource_version_match = Some(value.clone())
                }
                "watch" => o.watch = parse_bool(key, value)?,
                "allowWatchBookmarks" => o.allow_watch_bookmarks = parse_bool(key, value)?,
                "timeoutSeconds" => {
                    o.timeout_seconds = Some(value.parse().map_err(|_| {
                        ApiError::BadRequest(format!("invalid value {value:?} for timeoutSeconds"))
                    })?)
                }
                "sendInitialEvents" => o.send_initial_events = Some(parse_bool(key, value)?),
                "dryRun" => {
                    if value != "All" {
                        return Err(ApiError::invalid_options(
                            "CreateOptions",
                            vec![FieldError::new(
                                FieldErrorKind::NotSupported,
                                "dryRun",
                                format!("Unsupported value: {value:?}: supported values: \"All\""),
                            )],
                        ));
                    }
                    o.dry_run = true;
                }
                "fieldManager" => {
                    if value.chars().count() > 128 {
                        return Err(ApiError::invalid_options(
                            "PatchOptions",
                            vec![FieldError::new(
                                FieldErrorKind::TooLong,
                                "fieldManager",
                                "must have at most 128 characters",
                            )],
                        ));
                    }
                    o.field_manager = Some(value.clone());
                }
                "fieldValidation" => {
                    o.field_validation = match value.as_str() {
                        "Ignore" => FieldValidation::Ignore,
                        "Warn" | "" => FieldValidation::Warn,
                        "Strict" => FieldValidation::Strict,
                        other => {
                            return Err(ApiError::BadRequest(format!(
                                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got {other:?}"
                            )));
                        }
                    }
                }
                "force" => o.force = parse_bool(key, value)?,
                "includeObject" => {
                    o.include_object = match value.as_str() {
                        "None" => IncludeObject::None,
                        "Metadata" | "" => IncludeObject::Metadata,
                        "Object" => IncludeObject::Object,
                        other => {
                            return Err(ApiError::BadRequest(format!(
                                "includeObject must be one of None, Metadata or Object, got {other:?}"
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaced_item_with_subresource() {
        let p = ResourcePath::parse(
            "/apis/management.project-flotta.io/v1alpha1/namespaces/ns1/edgedevices/d1/status",
        )
        .unwrap();
        assert_eq!(p.group, "management.project-flotta.io");
        assert_eq!(p.version, "v1alpha1");
        assert_eq!(p.namespace.as_deref(), Some("ns1"));
        assert_eq!(p.resource, "edgedevices");
        assert_eq!(p.name.as_deref(), Some("d1"));
        assert_eq!(p.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn parses_all_namespace_list_core_and_watch_prefix() {
        let p = ResourcePath::parse("/apis/g/v1/edgedevices").unwrap();
        assert_eq!(p.namespace, None);
        assert_eq!(p.name, None);
        let p = ResourcePath::parse("/api/v1/namespaces/a/configmaps/c").unwrap();
        assert_eq!(p.group, "");
        assert_eq!(p.name.as_deref(), Some("c"));
        let p = ResourcePath::parse("/apis/g/v1/watch/namespaces/a/things").unwrap();
        assert!(p.watch_prefix);
        assert_eq!(p.resource, "things");
    }

    #[test]
    fn rejects_non_resource_paths() {
        assert_eq!(ResourcePath::parse("/apis/g/v1"), None);
        assert_eq!(ResourcePath::parse("/version"), None);
        assert_eq!(ResourcePath::parse("/apis/g/v1/r/n/s/extra"), None);
    }

    #[test]
    fn query_options_validate_values() {
        let mut q = HashMap::new();
        q.insert("dryRun".to_string(), "Some".to_string());
        assert!(matches!(
            QueryOptions::parse(&q),
            Err(ApiError::Invalid { .. })
        ));
        q.insert("dryRun".to_string(), "All".to_string());
        q.insert("limit".to_string(), "5".to_string());
        q.insert("watch".to_string(), "1".to_string());
        let o = QueryOptions::parse(&q).unwrap();
        assert!(o.dry_run && o.watch);
        assert_eq!(o.limit, 5);
        q.insert("watch".to_string(), "maybe".to_string());
        assert!(matches!(
            QueryOptions::parse(&q),
            Err(ApiError::BadRequest(_))
        ));
    }
}
