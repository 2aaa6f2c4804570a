//! Label and field selectors: parsing the `labelSelector` and `fieldSelector` query
//! parameters of list, watch and deletecollection, and matching objects against them.
//!
//! - [`Selector`] is a label selector with the grammar and semantics of apimachinery's
//!   `labels.Parse` (`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, and
//!   the integer comparisons `k>n`, `k<n`), built either from the query string or from a
//!   `metav1.LabelSelector` (`matchLabels` + `matchExpressions`). See [`label`] for the
//!   details and the few places where it deliberately differs from Go.
//! - [`FieldSelector`] is a field selector with the grammar of apimachinery's
//!   `fields.ParseSelector` (`f=v`, `f==v`, `f!=v`, backslash escapes in values). It does
//!   not know which fields exist: the caller checks [`FieldSelector::requirements`] against
//!   the fields its resource supports and reads them through the getter given to
//!   [`FieldSelector::matches`].
//!
//! Both render back to their canonical query form with `Display`, so a parsed selector can
//! be sent on (to a remote, in a `continue` token, in a SubjectAccessReview) unchanged in
//! meaning. Every parse error is a [`SelectorError`] whose message is fit for the body of a
//! 400 `BadRequest` Status.

pub mod field;
pub mod label;

pub use field::{FieldOp, FieldRequirement, FieldSelector, escape_value};
pub use label::{Operator, Requirement, Selector, validate_label_key, validate_label_value};

/// Why a label or field selector could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector text does not follow the grammar.
    #[error("invalid label selector: found {found} at offset {offset}, expected {expected}")]
    Syntax {
        /// Byte offset of the offending token in the selector text (0-based).
        offset: usize,
        /// The offending token as written, quoted, or `end of string`.
        found: String,
        /// What the grammar allows at that point.
        expected: &'static str,
    },
    /// A label key is not a qualified name (`[prefix/]name`).
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey {
        /// The key as written.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A label value is not a valid label value.
    #[error("invalid value {value:?} for label {key:?}: {reason}")]
    InvalidValue {
        /// The label key the value belongs to.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An operator got the wrong number of values (e.g. `In` with none, `Exists` with some).
    #[error("invalid values for label {key:?} with operator {operator}: {reason}")]
    ValueCount {
        /// The label key of the requirement.
        key: String,
        /// The requirement's operator.
        operator: Operator,
        /// What the operator needs.
        reason: &'static str,
    },
    /// A `matchExpressions` entry names an operator other than In, NotIn, Exists or
    /// DoesNotExist.
    #[error(
        "{operator:?} is not a valid label selector operator: expected In, NotIn, Exists or DoesNotExist"
    )]
    UnknownOperator {
        /// The operator as written.
        operator: String,
    },
    /// A field selector term has no `=`, `==` or `!=`.
    #[error(
        "invalid field selector: can't understand {term:?}, expected <field>=<value>, <field>==<value> or <field>!=<value>"
    )]
    FieldTerm {
        /// The comma-separated term as written.
        term: String,
    },
    /// A field selector value has a backslash that is not one of the escapes `\\`, `\,`, `\=`.
    #[error(
        "invalid field selector: invalid escape sequence {sequence:?} in {term:?}, only \\\\, \\, and \\= are escapes"
    )]
    FieldEscape {
        /// The term as written.
        term: String,
        /// The bad sequence: a backslash and the character after it, or a lone trailing
        /// backslash.
        sequence: String,
    },
    /// A field selector value has an unescaped `,` or `=`.
    #[error(
        "invalid field selector: unescaped '{character}' in the value of {term:?}, write it as '\\{character}'"
    )]
    FieldUnescaped {
        /// The term as written.
        term: String,
        /// The character that must be escaped.
        character: char,
    },
}
