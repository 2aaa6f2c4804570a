//! Field-level validation errors, the shape Kubernetes reports in a 422 `Invalid` Status
//! (`details.causes[]`).

/// Why a field is invalid; maps to the apimachinery cause `reason` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing (`FieldValueRequired`).
    Required,
    /// The value is malformed or out of range (`FieldValueInvalid`).
    Invalid,
    /// The field may not be set (`FieldValueForbidden`).
    Forbidden,
    /// The value is not one of the supported ones (`FieldValueNotSupported`).
    NotSupported,
    /// The value repeats one that must be unique (`FieldValueDuplicate`).
    Duplicate,
    /// The value is too long (`FieldValueTooLong`).
    TooLong,
}

impl FieldErrorKind {
    /// The apimachinery `StatusCause.reason` for this kind.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::TooLong => "FieldValueTooLong",
        }
    }
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Why it is invalid.
    pub kind: FieldErrorKind,
    /// The field path in Kubernetes notation, e.g. `spec.pod.spec.containers[0].livenessProbe`.
    pub field: String,
    /// A human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(kind: FieldErrorKind, field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            kind,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
