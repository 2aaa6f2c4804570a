//! Field selectors: the `fieldSelector` query grammar of apimachinery's
//! `fields.ParseSelector`, and matching through a field getter.
//!
//! A selector is comma-separated terms `field=value`, `field==value` or `field!=value`;
//! empty terms are skipped, so `""` and `","` match everything. The field is everything
//! before the first `!=`, `==` or `=` of the term, taken literally (no escapes, no
//! whitespace trimming: `a = b` selects field `"a "` with value `" b"`, as in Go). In a
//! value, `,`, `=` and `\` must be written `\,`, `\=` and `\\`; any other backslash
//! sequence, a trailing lone backslash, or an unescaped `,`/`=` is an error.
//!
//! Limits: this module does not know which fields exist — checking
//! [`FieldSelector::requirements`] against the resource's supported fields (and answering
//! 400 for others) is the caller's job. A field the getter does not know compares as the
//! empty string, as in Go. Requirements are kept in the order of their canonical rendering,
//! so equal selectors compare equal and render identically.

use std::fmt;
use std::str::FromStr;

use super::SelectorError;

/// How a [`FieldRequirement`] compares a field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldOp {
    /// `f=v` or `f==v`: the field equals the value.
    Equals,
    /// `f!=v`: the field differs from the value.
    NotEquals,
}

/// One term of a [`FieldSelector`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    field: String,
    op: FieldOp,
    value: String,
}

impl FieldRequirement {
    /// The field name, as written (e.g. `metadata.name`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The operator.
    pub fn op(&self) -> FieldOp {
        self.op
    }

    /// The value, unescaped.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `actual`, the field's value on an object, satisfies this requirement.
    pub fn matches_value(&self, actual: &str) -> bool {
        match self.op {
            FieldOp::Equals => actual == self.value,
            FieldOp::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// `field=value` or `field!=value`, with the value escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOp::Equals => "=",
            FieldOp::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A field selector: a conjunction of [`FieldRequirement`]s. The empty selector matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything (no requirements).
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses the `fieldSelector` query form (see the module docs).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            if term.is_empty() {
                continue;
            }
            let Some((field, op, raw_value)) = split_term(term) else {
                return Err(SelectorError::FieldTerm {
                    term: term.to_owned(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                op,
                value: unescape_value(term, raw_value)?,
            });
        }
        requirements.sort_by_cached_key(ToString::to_string);
        Ok(FieldSelector { requirements })
    }

    /// The requirements, in the order of their canonical rendering.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether this selector has no requirements and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object satisfies every requirement; `get` returns the object's value of a
    /// field, and `None` (a field it does not know) compares as the empty string.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(get(&r.field).as_deref().unwrap_or("")))
    }

    /// The value `field` must have for a match, if a `field=value` requirement pins it:
    /// lets a caller turn `metadata.name=x` into a direct get.
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.op == FieldOp::Equals && r.field == field)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical query form: requirements joined by `,`, values escaped;
    /// [`FieldSelector::parse`] of it gives back an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(text)
    }
}

/// Escapes a literal value for use in a field selector: `\` → `\\`, `,` → `\,`,
/// `=` → `\=`.
pub fn escape_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Splits on commas that are not escaped by a backslash; the terms keep their escapes.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&text[start..at]);
            start = at + 1;
        }
    }
    terms.push(&text[start..]);
    terms
}

/// Splits a term at the first operator; at one position `!=` and `==` win over `=`.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    term.char_indices().find_map(|(at, _)| {
        let rest = &term[at..];
        let (op, len) = if rest.starts_with("!=") {
            (FieldOp::NotEquals, 2)
        } else if rest.starts_with("==") {
            (FieldOp::Equals, 2)
        } else if rest.starts_with('=') {
            (FieldOp::Equals, 1)
        } else {
            return None;
        };
        Some((&term[..at], op, &rest[len..]))
    })
}

/// Undoes [`escape_value`]; `term` is only for error messages.
fn unescape_value(term: &str, raw: &str) -> Result<String, SelectorError> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => value.push(escaped),
                Some(other) => {
                    return Err(SelectorError::FieldEscape {
                        term: term.to_owned(),
                        sequence: format!("\\{other}"),
                    });
                }
                None => {
                    return Err(SelectorError::FieldEscape {
                        term: term.to_owned(),
                        sequence: "\\".to_owned(),
                    });
                }
            },
            ',' | '=' => {
                return Err(SelectorError::FieldUnescaped {
                    term: term.to_owned(),
                    character: c,
                });
            }
            other => value.push(other),
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
