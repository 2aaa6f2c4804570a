//! Authorization attributes of a request: what a SubjectAccessReview asks about, worked out
//! from the method, path and query the way the Kubernetes API server's request-info
//! resolver does (`kube-api-contract.md` §3.1), so that RBAC rules written for
//! kube-apiserver mean the same thing here.
//!
//! A path is a *resource* request when it is `/apis/<group>/<version>/<more>` or
//! `/api/<version>/<more>`; everything else (`/apis`, `/apis/<g>/<v>`, `/openapi/...`,
//! `/version`, health) is a *non-resource* request whose verb is the lowercased method.
//! Resource verbs: `GET`/`HEAD` → `get` with a name, else `list`, or `watch` when the
//! `watch` parameter is set to anything but `false`/`0`; `POST` → `create`; `PUT` →
//! `update`; `PATCH` → `patch`; `DELETE` → `delete` with a name, else `deletecollection`.
//! The deprecated `/watch/` path segment gives `watch`. A list or watch whose
//! `fieldSelector` pins `metadata.name` carries that name, which is how `resourceNames`
//! rules apply to list and watch; if any list option fails to parse, the name is not taken
//! (the request itself is rejected later).
//!
//! Also here: the 403 `Status` a denied request gets, in kube-apiserver's words
//! (`kube-api-contract.md` §3.5).
//!
//! Limits: label and field selectors are not forwarded as selector requirements
//! (selector-aware authorization of Kubernetes 1.31+).

use std::borrow::Cow;

use flotta_api::selector::{FieldSelector, Selector};
use serde_json::{Value, json};

/// The authorization attributes of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAttributes {
    /// A request for an API resource.
    Resource(ResourceAttributes),
    /// Any other path.
    NonResource {
        /// The (decoded) path.
        path: String,
        /// The lowercased HTTP method.
        verb: String,
    },
}

/// The attributes of a resource request (SubjectAccessReview `resourceAttributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// or a special verb from the path (`watch`, `proxy`); empty for unknown methods.
    pub verb: String,
    /// API group; empty for the core group (`/api/v1`).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace; empty for cluster-scoped and all-namespaces requests.
    pub namespace: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource, e.g. `status`; empty when none.
    pub subresource: String,
    /// Object name; empty for collection requests without a `metadata.name` selector.
    pub name: String,
}

/// A path that looks like a resource request but cannot be resolved (e.g.
/// `/apis/g/v/watch` with nothing after the special verb).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to determine kind and namespace from url {0}")]
pub struct UnresolvablePath(pub String);

impl RequestAttributes {
    /// Works out the attributes of a request from its method, raw (percent-encoded) path
    /// and raw query string.
    pub fn from_request(
        method: &str,
        raw_path: &str,
        raw_query: Option<&str>,
    ) -> Result<Self, UnresolvablePath> {
        let path = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
        let verb = method.to_ascii_lowercase();
        let non_resource = || RequestAttributes::NonResource {
            path: path.clone().into_owned(),
            verb: verb.clone(),
        };
        let trimmed = path.trim_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        // `/api/<v>/<more>` or `/apis/<g>/<v>/<more>`; shorter paths are discovery.
        let (group, rest) = match parts.as_slice() {
            ["api", rest @ ..] if rest.len() >= 2 => ("", rest),
            ["apis", group, rest @ ..] if rest.len() >= 2 => (*group, rest),
            _ => return Ok(non_resource()),
        };
        let Some((version, mut rest)) = rest.split_first() else {
            return Ok(non_resource());
        };
        let mut attrs = ResourceAttributes {
            group: group.to_owned(),
            version: (*version).to_owned(),
            ..ResourceAttributes::default()
        };

        let verb_from_method = !matches!(rest.first(), Some(&("watch" | "proxy")));
        if verb_from_method {
            attrs.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_owned();
        } else {
            if rest.len() < 2 {
                return Err(UnresolvablePath(path.into_owned()));
            }
            attrs.verb = rest[0].to_owned();
            rest = &rest[1..];
        }

        if rest.first() == Some(&"namespaces")
            && let Some(namespace) = rest.get(1)
        {
            attrs.namespace = (*namespace).to_owned();
            // `/namespaces/<ns>/status` and `/finalize` are subresources of the
            // namespace itself; anything else names a resource inside it.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        if attrs.verb != "proxy"
            && let Some(subresource) = rest.get(2)
        {
            attrs.subresource = (*subresource).to_owned();
        }
        if let Some(name) = rest.get(1) {
            attrs.name = (*name).to_owned();
        }
        if let Some(resource) = rest.first() {
            attrs.resource = (*resource).to_owned();
        }

        if attrs.name.is_empty() && attrs.verb == "get" {
            let list = ListParameters::parse(raw_query.unwrap_or(""));
            attrs.verb = if list.watch { "watch" } else { "list" }.to_owned();
            if let Some(name) = list.name.filter(|n| is_valid_path_segment_name(n)) {
                attrs.name = name;
            }
        }
        if attrs.name.is_empty() && attrs.verb == "delete" {
            attrs.verb = "deletecollection".to_owned();
        }
        Ok(RequestAttributes::Resource(attrs))
    }

    /// The verb being authorized.
    pub fn verb(&self) -> &str {
        match self {
            RequestAttributes::Resource(attrs) => &attrs.verb,
            RequestAttributes::NonResource { verb, .. } => verb,
        }
    }
}

/// What the list options of a collection `GET` say about authorization.
struct ListParameters {
    watch: bool,
    name: Option<String>,
}

impl ListParameters {
    /// Mirrors Go: if any list option fails to decode, only `watch` is kept.
    fn parse(raw_query: &str) -> ListParameters {
        let pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> =
            form_urlencoded::parse(raw_query.as_bytes()).collect();
        let first = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_ref())
        };
        let watch = first("watch").is_some_and(parameter_is_true);
        let decodes = first("labelSelector").is_none_or(|s| Selector::parse(s).is_ok())
            && ["limit", "timeoutSeconds"]
                .iter()
                .all(|key| first(key).is_none_or(|v| v.is_empty() || v.parse::<i64>().is_ok()));
        let field_selector = first("fieldSelector").map(FieldSelector::parse);
        let name = match field_selector {
            Some(Err(_)) => None,
            _ if !decodes => None,
            Some(Ok(selector)) => selector.exact_match("metadata.name").map(str::to_owned),
            None => None,
        };
        ListParameters { watch, name }
    }
}

/// Go's query-parameter boolean: anything but `0` and (case-insensitive) `false` is true.
fn parameter_is_true(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

/// apimachinery's `IsValidPathSegmentName`: not `.` or `..`, no `/` or `%`.
fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains(['/', '%'])
}

/// The 403 `Status` for a request `user` may not make, with kube-apiserver's message (e.g.
/// `edgedevices.management.project-flotta.io "dev1" is forbidden: User "alice" cannot
/// get resource "edgedevices" in API group "management.project-flotta.io" in the namespace
/// "default"`); `reason`, when not empty, is appended after `": "`.
pub fn forbidden_status(user: &str, attributes: &RequestAttributes, reason: &str) -> Value {
    let mut message = match attributes {
        RequestAttributes::NonResource { path, verb } => {
            format!("User {user:?} cannot {verb} path {path:?}")
        }
        RequestAttributes::Resource(attrs) => {
            let mut resource = attrs.resource.clone();
            if !attrs.subresource.is_empty() {
                resource = format!("{resource}/{}", attrs.subresource);
            }
            if attrs.namespace.is_empty() {
                format!(
                    "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                    attrs.verb, attrs.group
                )
            } else {
                format!(
                    "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                    attrs.verb, attrs.group, attrs.namespace
                )
            }
        }
    };
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    let (group, resource, name) = match attributes {
        RequestAttributes::Resource(attrs) => (
            attrs.group.as_str(),
            attrs.resource.as_str(),
            attrs.name.as_str(),
        ),
        RequestAttributes::NonResource { .. } => ("", "", ""),
    };
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {message}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {message}")
    } else {
        format!("{qualified} {name:?} is forbidden: {message}")
    };
    let mut details = serde_json::Map::new();
    for (key, value) in [("name", name), ("group", group), ("kind", resource)] {
        if !value.is_empty() {
            details.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "management.project-flotta.io";

    fn resource(method: &str, path: &str, query: Option<&str>) -> ResourceAttributes {
        match RequestAttributes::from_request(method, path, query) {
            Ok(RequestAttributes::Resource(attrs)) => attrs,
            other => panic!("{method} {path}: expected a resource request, got {other:?}"),
        }
    }

    fn attrs(
        verb: &str,
        namespace: &str,
        resource: &str,
        name: &str,
        subresource: &str,
    ) -> ResourceAttributes {
        ResourceAttributes {
            verb: verb.into(),
            group: G.into(),
            version: "v1alpha1".into(),
            namespace: namespace.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            name: name.into(),
        }
    }

    #[test]
    fn verbs_from_methods() {
        let item = "/apis/management.project-flotta.io/v1alpha1/namespaces/ns/edgedevices/d1";
        let collection = "/apis/management.project-flotta.io/v1alpha1/namespaces/ns/edgedevices";
        for (method, path, verb, name) in [
            ("GET", item, "get", "d1"),
            ("HEAD", item, "get", "d1"),
            ("PUT", item, "update", "d1"),
            ("PATCH", item, "patch", "d1"),
            ("DELETE", item, "delete", "d1"),
            ("POST", item, "create", "d1"),
            ("GET", collection, "list", ""),
            ("POST", collection, "create", ""),
            ("DELETE", collection, "deletecollection", ""),
            ("OPTIONS", collection, "", ""),
        ] {
            assert_eq!(
                resource(method, path, None),
                attrs(verb, "ns", "edgedevices", name, ""),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn watch_detection() {
        let collection = "/apis/management.project-flotta.io/v1alpha1/edgedevices";
        for (query, verb) in [
            ("watch=true", "watch"),
            ("watch=1", "watch"),
            ("watch=True", "watch"),
            ("watch", "watch"),
            ("watch=false", "list"),
            ("watch=FALSE", "list"),
            ("watch=0", "list"),
            ("limit=5", "list"),
            ("watch=true&watch=false", "watch"),
        ] {
            assert_eq!(
                resource("GET", collection, Some(query)).verb,
                verb,
                "{query}"
            );
        }
        // The deprecated path form.
        assert_eq!(
            resource(
                "GET",
                "/apis/management.project-flotta.io/v1alpha1/watch/namespaces/ns/edgedevices",
                None
            ),
            attrs("watch", "ns", "edgedevices", "", "")
        );
        assert_eq!(
            resource(
                "GET",
                "/apis/management.project-flotta.io/v1alpha1/watch/namespaces/ns/edgedevices/d1",
                None
            ),
            attrs("watch", "ns", "edgedevices", "d1", "")
        );
        // Go keeps `get` for a named object even with watch=true.
        assert_eq!(
            resource(
                "GET",
                "/apis/management.project-flotta.io/v1alpha1/namespaces/ns/edgedevices/d1",
                Some("watch=true")
            )
            .verb,
            "get"
        );
        assert_eq!(
            RequestAttributes::from_request(
                "GET",
                "/apis/management.project-flotta.io/v1alpha1/watch",
                None
            ),
            Err(UnresolvablePath(
                "/apis/management.project-flotta.io/v1alpha1/watch".into()
            ))
        );
    }

    #[test]
    fn name_from_field_selector() {
        let collection = "/apis/management.project-flotta.io/v1alpha1/namespaces/ns/edgedevices";
        for (query, verb, name) in [
            ("fieldSelector=metadata.name%3Dd1", "list", "d1"),
            ("watch=1&fieldSelector=metadata.name%3D%3Dd1", "watch", "d1"),
            (
                "fieldSelector=metadata.namespace%3Dns,metadata.name%3Dd1",
                "list",
                "d1",
            ),
            ("fieldSelector=metadata.name!%3Dd1", "list", ""),
            ("fieldSelector=metadata.name%3Da%2Fb", "list", ""),
            ("fieldSelector=metadata.name%3D..", "list", ""),
            ("fieldSelector=metadata.name", "list", ""),
            (
                "fieldSelector=metadata.name%3Dd1&labelSelector=a%20in%20(",
                "list",
                "",
            ),
            ("fieldSelector=metadata.name%3Dd1&limit=x", "list", ""),
            ("fieldSelector=metadata.name%3Dd1&limit=5", "list", "d1"),
            (
                "fieldSelector=metadata.name%3Dd1&labelSelector=app%3Dx",
                "list",
                "d1",
            ),
        ] {
            let got = resource("GET", collection, Some(query));
            assert_eq!(
                (got.verb.as_str(), got.name.as_str()),
                (verb, name),
                "{query}"
            );
        }
        // A named delete of the collection is still deletecollection: only GET reads it.
        assert_eq!(
            resource(
                "DELETE",
                collection,
                Some("fieldSelector=metadata.name%3Dd1")
            )
            .verb,
            "deletecollection"
        );
    }

    #[test]
    fn subresources_and_scopes() {
        assert_eq!(
            resource(
                "PUT",
                "/apis/management.project-flotta.io/v1alpha1/namespaces/ns/edgedevices/d1/status",
                None
            ),
            attrs("update", "ns", "edgedevices", "d1", "status")
        );
        assert_eq!(
            resource(
                "GET",
                "/apis/management.project-flotta.io/v1alpha1/edgedevices",
                None
            ),
            attrs("list", "", "edgedevices", "", "")
        );
        // Core group, and the namespace object itself.
        let ns = resource("GET", "/api/v1/namespaces/ns", None);
        assert_eq!(
            (
                ns.group.as_str(),
                ns.resource.as_str(),
                ns.name.as_str(),
                ns.namespace.as_str()
            ),
            ("", "namespaces", "ns", "ns")
        );
        let finalize = resource("PUT", "/api/v1/namespaces/ns/finalize", None);
        assert_eq!(
            (
                finalize.resource.as_str(),
                finalize.name.as_str(),
                finalize.subresource.as_str()
            ),
            ("namespaces", "ns", "finalize")
        );
        let cm = resource("GET", "/api/v1/namespaces/ns/configmaps/c", None);
        assert_eq!(
            (cm.resource.as_str(), cm.name.as_str()),
            ("configmaps", "c")
        );
        // Percent-encoded paths are decoded first.
        assert_eq!(
            resource(
                "GET",
                "/apis/management.project-flotta.io/v1alpha1/namespaces/n%73/edgedevices/d1",
                None
            )
            .namespace,
            "ns"
        );
    }

    #[test]
    fn non_resource_paths() {
        for (method, path, verb) in [
            ("GET", "/apis", "get"),
            ("GET", "/apis/management.project-flotta.io", "get"),
            ("GET", "/apis/management.project-flotta.io/v1alpha1", "get"),
            ("GET", "/apis/management.project-flotta.io/v1alpha1/", "get"),
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/openapi/v2", "get"),
            ("HEAD", "/version", "head"),
            ("POST", "/healthz", "post"),
            ("GET", "/", "get"),
        ] {
            assert_eq!(
                RequestAttributes::from_request(method, path, None),
                Ok(RequestAttributes::NonResource {
                    path: path.into(),
                    verb: verb.into()
                }),
                "{path}"
            );
        }
    }

    #[test]
    fn forbidden_messages() {
        let status = forbidden_status(
            "alice",
            &RequestAttributes::Resource(ResourceAttributes {
                group: "edge.example.com".into(),
                ..attrs("get", "default", "edgedevices", "dev1", "")
            }),
            "",
        );
        assert_eq!(
            status,
            serde_json::from_str::<Value>(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"edgedevices.edge.example.com \"dev1\" is forbidden: User \"alice\" cannot get resource \"edgedevices\" in API group \"edge.example.com\" in the namespace \"default\"",
                "reason":"Forbidden","details":{"name":"dev1","group":"edge.example.com","kind":"edgedevices"},"code":403}"#
            )
            .unwrap()
        );

        let status = forbidden_status(
            "bob",
            &RequestAttributes::Resource(attrs("list", "", "edgedevices", "", "status")),
            "no RBAC rule",
        );
        assert_eq!(
            status["message"],
            format!(
                "edgedevices.{G} is forbidden: User \"bob\" cannot list resource \"edgedevices/status\" in API group \"{G}\" at the cluster scope: no RBAC rule"
            )
        );
        assert_eq!(
            status["details"],
            json!({"group": G, "kind": "edgedevices"})
        );

        let status = forbidden_status(
            "system:anonymous",
            &RequestAttributes::NonResource {
                path: "/openapi/v2".into(),
                verb: "get".into(),
            },
            "",
        );
        assert_eq!(
            status["message"],
            "forbidden: User \"system:anonymous\" cannot get path \"/openapi/v2\""
        );
        assert_eq!(status["details"], json!({}));
    }
}
