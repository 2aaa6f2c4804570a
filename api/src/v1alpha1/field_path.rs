//! Kubernetes-style field paths (`spec.pod.spec.containers[0].name`, `spec.logCollection[syslog]`)
//! and the small set of checks every kind shares, for building [`FieldError`]s.
//!
//! Map keys are written unquoted inside brackets, as apimachinery's `field.Path.Key` does.

use crate::validation::{FieldError, FieldErrorKind};

/// A path to a field, built up one step at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    /// A path that starts at a top-level field such as `spec`.
    pub(crate) fn root(name: &str) -> Self {
        FieldPath(name.to_owned())
    }

    /// The path of a named child field.
    pub(crate) fn child(&self, name: &str) -> Self {
        FieldPath(format!("{}.{name}", self.0))
    }

    /// The path of a list element.
    pub(crate) fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    /// The path of a map entry.
    pub(crate) fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }

    /// A `Required` error at this path.
    pub(crate) fn required(&self) -> FieldError {
        FieldError::new(FieldErrorKind::Required, self.0.clone(), "Required value")
    }

    /// An `Invalid` error at this path, showing the rejected value.
    pub(crate) fn invalid(&self, value: impl std::fmt::Display, detail: &str) -> FieldError {
        FieldError::new(
            FieldErrorKind::Invalid,
            self.0.clone(),
            format!("Invalid value: {value}: {detail}"),
        )
    }

    /// A `Forbidden` error at this path.
    pub(crate) fn forbidden(&self, detail: &str) -> FieldError {
        FieldError::new(
            FieldErrorKind::Forbidden,
            self.0.clone(),
            format!("Forbidden: {detail}"),
        )
    }

    /// A `NotSupported` error at this path, listing the values that are supported.
    pub(crate) fn not_supported(&self, value: &str, supported: &[&str]) -> FieldError {
        let supported = supported
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError::new(
            FieldErrorKind::NotSupported,
            self.0.clone(),
            format!("Unsupported value: \"{value}\": supported values: {supported}"),
        )
    }

    /// A `Duplicate` error at this path.
    pub(crate) fn duplicate(&self, value: &str, detail: &str) -> FieldError {
        FieldError::new(
            FieldErrorKind::Duplicate,
            self.0.clone(),
            format!("Duplicate value: \"{value}\": {detail}"),
        )
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reports `Required` when a required string is missing (deserialised as empty).
pub(crate) fn require_non_empty(value: &str, path: &FieldPath, errors: &mut Vec<FieldError>) {
    if value.is_empty() {
        errors.push(path.required());
    }
}

/// Reports `Invalid` when an optional number is below `minimum`.
pub(crate) fn check_minimum<T>(
    value: Option<T>,
    minimum: T,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if let Some(v) = value
        && v < minimum
    {
        errors.push(path.invalid(v, &format!("must be greater than or equal to {minimum}")));
    }
}

/// Reports `Invalid` when an optional number is outside `minimum..=maximum`.
pub(crate) fn check_range<T>(
    value: Option<T>,
    minimum: T,
    maximum: T,
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if let Some(v) = value
        && (v < minimum || v > maximum)
    {
        errors.push(path.invalid(
            v,
            &format!("must be between {minimum} and {maximum}, inclusive"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_the_kubernetes_way() {
        let p = FieldPath::root("spec")
            .child("logCollection")
            .key("syslog")
            .child("syslogConfig");
        assert_eq!(p.to_string(), "spec.logCollection[syslog].syslogConfig");
        let p = FieldPath::root("spec")
            .child("containers")
            .index(3)
            .child("name");
        assert_eq!(p.to_string(), "spec.containers[3].name");
    }

    #[test]
    fn range_checks_report_only_out_of_range_values() {
        let p = FieldPath::root("spec").child("port");
        let mut errors = Vec::new();
        check_range(Some(65535), 0, 65535, &p, &mut errors);
        check_range(None, 0, 65535, &p, &mut errors);
        check_minimum(Some(0), 0, &p, &mut errors);
        assert!(errors.is_empty());
        check_range(Some(65536), 0, 65535, &p, &mut errors);
        check_minimum(Some(-1), 0, &p, &mut errors);
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|e| e.kind == FieldErrorKind::Invalid));
        assert_eq!(
            errors[0].message,
            "Invalid value: 65536: must be between 0 and 65535, inclusive"
        );
    }
}
