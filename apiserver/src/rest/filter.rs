//! The `labelSelector` and `fieldSelector` of list, watch and deletecollection, compiled
//! once per request. Field selectors support `metadata.name` and `metadata.namespace`,
//! as for custom resources.

use flotta_api::selector::{FieldSelector, Selector};
use serde_json::Value;

use super::error::ApiError;
use super::object;
use super::request::QueryOptions;

/// Fields a `fieldSelector` may name.
const SELECTABLE_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// A compiled label + field selector.
#[derive(Debug, Clone)]
pub struct Filter {
    labels: Selector,
    fields: FieldSelector,
}

impl Filter {
    /// Compiles the selectors of a request; a malformed one or an unknown field is a 400.
    pub fn from_options(opts: &QueryOptions) -> Result<Filter, ApiError> {
        let labels = match opts.label_selector.as_deref() {
            Some(s) => Selector::parse(s).map_err(|e| {
                ApiError::BadRequest(format!("unable to parse labelSelector {s:?}: {e}"))
            })?,
            None => Selector::everything(),
        };
        let fields = match opts.field_selector.as_deref() {
            Some(s) => FieldSelector::parse(s).map_err(|e| {
                ApiError::BadRequest(format!("unable to parse fieldSelector {s:?}: {e}"))
            })?,
            None => FieldSelector::everything(),
        };
        for r in fields.requirements() {
            if !SELECTABLE_FIELDS.contains(&r.field()) {
                return Err(ApiError::BadRequest(format!(
                    "{:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                    r.field()
                )));
            }
        }
        Ok(Filter { labels, fields })
    }

    /// Adds `metadata.name=<name>` (watch of a single object).
    pub fn with_name(self, name: &str) -> Result<Filter, ApiError> {
        let text = match self.fields.is_empty() {
            true => format!("metadata.name={}", flotta_api::selector::escape_value(name)),
            false => format!(
                "{},metadata.name={}",
                self.fields,
                flotta_api::selector::escape_value(name)
            ),
        };
        let fields = FieldSelector::parse(&text)
            .map_err(|e| ApiError::BadRequest(format!("invalid name {name:?}: {e}")))?;
        Ok(Filter { fields, ..self })
    }

    /// Whether the filter selects everything.
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `obj` passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&object::labels(obj)))
            && self.fields.matches(|field| match field {
                "metadata.name" => object::meta_str(obj, "name").map(str::to_string),
                "metadata.namespace" => object::meta_str(obj, "namespace").map(str::to_string),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(labels: Option<&str>, fields: Option<&str>) -> QueryOptions {
        QueryOptions {
            label_selector: labels.map(str::to_string),
            field_selector: fields.map(str::to_string),
            ..QueryOptions::default()
        }
    }

    #[test]
    fn label_and_field_selectors_combine() {
        let obj = json!({"metadata": {"name": "d1", "namespace": "ns", "labels": {"env": "prod"}}});
        let f = Filter::from_options(&opts(
            Some("env in (prod,stage),!legacy"),
            Some("metadata.name=d1"),
        ))
        .unwrap();
        assert!(f.matches(&obj));
        let f = Filter::from_options(&opts(Some("env=dev"), None)).unwrap();
        assert!(!f.matches(&obj));
        let f = Filter::from_options(&opts(None, Some("metadata.namespace!=ns"))).unwrap();
        assert!(!f.matches(&obj));
        let f = Filter::from_options(&opts(None, None))
            .unwrap()
            .with_name("d2")
            .unwrap();
        assert!(!f.matches(&obj));
    }

    #[test]
    fn unknown_fields_and_bad_syntax_are_400() {
        assert!(matches!(
            Filter::from_options(&opts(None, Some("spec.foo=bar"))),
            Err(ApiError::BadRequest(m)) if m.contains("not a known field selector")
        ));
        assert!(matches!(
            Filter::from_options(&opts(Some("env in (a"), None)),
            Err(ApiError::BadRequest(_))
        ));
    }
}
