//! Label selectors: the `labelSelector` query grammar of apimachinery's `labels.Parse`,
//! `metav1.LabelSelector` conversion, and matching against a label map.
//!
//! Grammar (whitespace — space, tab, CR, LF — is allowed around every token):
//!
//! ```text
//! selector    = "" | requirement ("," requirement)*
//! requirement = "!" key                      does not exist
//!             | key                          exists
//!             | key ("=" | "==" | "!=") value?
//!             | key (">" | "<") integer
//!             | key ("in" | "notin") "(" value? ("," value?)* ")"
//! ```
//!
//! Keys are qualified names (an optional lowercase DNS-subdomain prefix of at most 253
//! characters and `/`, then a name of at most 63 characters of `[A-Za-z0-9._-]` that starts
//! and ends with an alphanumeric); values are at most 63 such characters and may be empty.
//! `in` and `notin` are keywords only where an operator is expected, so `in=notin` is key
//! `in`, value `notin`, as in Go.
//!
//! Semantics are Go's: `=`, `in`, `>` and `<` need the key to be present; `!=` and `notin`
//! also match objects without the key; `>`/`<` compare as 64-bit integers and fail on a
//! label value that is not one. Requirements are kept sorted by key and values sorted and
//! deduplicated, so equal selectors compare equal and render identically.
//!
//! Deliberate differences from Go:
//! - `=` and `==` parse to the same [`Operator::Equals`] and render as `=`.
//! - A value list is any comma-separated list of possibly empty values, so `()` is the set
//!   `{""}` (as in Go) and `(x,,)` is `{"", "x"}` (Go rejects that one spelling).
//! - A NUL byte is an invalid character here; Go's lexer takes it as the end of the input.
//! - Error messages are our own wording, with the byte offset of the offending token.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::SelectorError;

/// Longest allowed label value and label key name part.
const MAX_NAME_LEN: usize = 63;
/// Longest allowed label key prefix (a DNS subdomain).
const MAX_PREFIX_LEN: usize = 253;

/// How a [`Requirement`] compares a label's value with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `k=v` or `k==v`: the label is present and equals the one value.
    Equals,
    /// `k!=v`: the label is absent or differs from the one value.
    NotEquals,
    /// `k in (a,b)`: the label is present and is one of the values.
    In,
    /// `k notin (a,b)`: the label is absent or is none of the values.
    NotIn,
    /// `k`: the label is present.
    Exists,
    /// `!k`: the label is absent.
    DoesNotExist,
    /// `k>n`: the label is present, an integer, and greater than the one value.
    GreaterThan,
    /// `k<n`: the label is present, an integer, and less than the one value.
    LessThan,
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operator::Equals => "'='",
            Operator::NotEquals => "'!='",
            Operator::In => "'in'",
            Operator::NotIn => "'notin'",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "'!' (does not exist)",
            Operator::GreaterThan => "'>'",
            Operator::LessThan => "'<'",
        })
    }
}

/// One condition of a [`Selector`]: a label key, an operator and its values.
///
/// Always valid: the key and values passed validation and the number of values suits the
/// operator. Values are sorted and deduplicated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// A requirement on `key`, checking the key, each value, and the number of values:
    /// exactly one for `Equals`, `NotEquals`, `GreaterThan`, `LessThan` (an integer for the
    /// last two), at least one for `In`, `NotIn`, none for `Exists`, `DoesNotExist`.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        validate_label_key(&key)?;
        let count_problem = match operator {
            Operator::Equals | Operator::NotEquals | Operator::GreaterThan | Operator::LessThan
                if values.len() != 1 =>
            {
                Some("exactly one value is required")
            }
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("at least one value is required")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("no values are allowed")
            }
            _ => None,
        };
        if let Some(reason) = count_problem {
            return Err(SelectorError::ValueCount {
                key,
                operator,
                reason,
            });
        }
        for value in &values {
            validate_label_value(&key, value)?;
            if matches!(operator, Operator::GreaterThan | Operator::LessThan)
                && value.parse::<i64>().is_err()
            {
                return Err(SelectorError::InvalidValue {
                    key,
                    value: value.clone(),
                    reason: format!("operator {operator} needs a 64-bit integer"),
                });
            }
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and deduplicated (empty for `Exists` and `DoesNotExist`).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let label = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => label.is_some_and(|v| self.has_value(v)),
            Operator::NotEquals | Operator::NotIn => !label.is_some_and(|v| self.has_value(v)),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(bound)) = (
                    label.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > bound
                } else {
                    have < bound
                }
            }
        }
    }

    fn has_value(&self, value: &str) -> bool {
        self.values
            .binary_search_by(|v| v.as_str().cmp(value))
            .is_ok()
    }
}

impl fmt::Display for Requirement {
    /// The query form: `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>n`,
    /// `k<n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map_or("", String::as_str);
        match self.operator {
            Operator::Equals => write!(f, "{key}={first}"),
            Operator::NotEquals => write!(f, "{key}!={first}"),
            Operator::GreaterThan => write!(f, "{key}>{first}"),
            Operator::LessThan => write!(f, "{key}<{first}"),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
        }
    }
}

/// A label selector: a conjunction of [`Requirement`]s. The empty selector matches every
/// label set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything (no requirements).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// A selector of these requirements, kept in key order (requirements on the same key
    /// keep their relative order).
    pub fn new(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        let mut requirements: Vec<Requirement> = requirements.into_iter().collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector { requirements }
    }

    /// Parses the `labelSelector` query form (see the module docs for the grammar). An
    /// empty or all-whitespace string is [`Selector::everything`].
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        Parser::new(text).selector().map(Selector::new)
    }

    /// Converts a `metav1.LabelSelector`: each `matchLabels` entry is an `Equals`
    /// requirement and each `matchExpressions` entry an `In`, `NotIn`, `Exists` or
    /// `DoesNotExist` one. A selector with neither matches everything; what an absent
    /// (`None`) LabelSelector means is the caller's decision.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                key.clone(),
                Operator::Equals,
                vec![value.clone()],
            )?);
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::UnknownOperator {
                        operator: other.to_owned(),
                    });
                }
            };
            requirements.push(Requirement::new(
                expression.key.clone(),
                operator,
                expression.values.clone().unwrap_or_default(),
            )?);
        }
        Ok(Selector::new(requirements))
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether this selector has no requirements and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The single value label `key` must have for a match, if a requirement pins it
    /// (`key=v` or `key in (v)`): lets a caller look objects up in a label index instead of
    /// scanning.
    pub fn exact_match(&self, key: &str) -> Option<&str> {
        self.requirements
            .iter()
            .filter(|r| r.key == key)
            .find(|r| matches!(r.operator, Operator::Equals | Operator::In) && r.values.len() == 1)
            .and_then(|r| r.values.first())
            .map(String::as_str)
    }
}

impl fmt::Display for Selector {
    /// The canonical query form: requirements joined by `,`; empty for
    /// [`Selector::everything`]. [`Selector::parse`] of it gives back an equal selector.
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

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Selector::parse(text)
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    fn try_from(selector: &LabelSelector) -> Result<Self, Self::Error> {
        Selector::from_label_selector(selector)
    }
}

/// Checks a label key: an optional prefix (a lowercase RFC 1123 DNS subdomain of at most
/// 253 characters) and `/`, then a name of 1 to 63 characters of `[A-Za-z0-9._-]` that
/// starts and ends with an alphanumeric.
pub fn validate_label_key(key: &str) -> Result<(), SelectorError> {
    let invalid = |reason: String| SelectorError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.contains('/') {
        return Err(invalid(
            "a key has at most one '/', between a DNS subdomain prefix and a name (e.g. 'example.com/my-name')".to_owned(),
        ));
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(invalid(
                "the prefix before '/' must not be empty".to_owned(),
            ));
        }
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(invalid(format!(
                "the prefix must be at most {MAX_PREFIX_LEN} characters (it has {})",
                prefix.len()
            )));
        }
        if !is_dns_subdomain(prefix) {
            return Err(invalid(
                "the prefix must be a lowercase DNS subdomain: labels of 'a-z', '0-9' and '-', starting and ending with a letter or digit, separated by '.' (e.g. 'example.com')".to_owned(),
            ));
        }
    }
    if name.is_empty() {
        return Err(invalid("the name must not be empty".to_owned()));
    }
    check_name_chars(name).map_err(invalid)
}

/// Checks a label value (for error messages, of label `key`): empty, or at most 63
/// characters of `[A-Za-z0-9._-]` that start and end with an alphanumeric.
pub fn validate_label_value(key: &str, value: &str) -> Result<(), SelectorError> {
    if value.is_empty() {
        return Ok(());
    }
    check_name_chars(value).map_err(|reason| SelectorError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    })
}

/// The shared rule of key names and values (Go's `qualifiedNameFmt` and label value
/// format); `text` is not empty.
fn check_name_chars(text: &str) -> Result<(), String> {
    if text.len() > MAX_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_NAME_LEN} characters (it has {})",
            text.len()
        ));
    }
    let bytes = text.as_bytes();
    let edges_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    let chars_ok = bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if edges_ok && chars_ok {
        Ok(())
    } else {
        Err("must consist of alphanumeric characters, '-', '_' or '.', and start and end with an alphanumeric character (e.g. 'MyName', 'my.name', '123-abc')".to_owned())
    }
}

/// RFC 1123 subdomain: dot-separated labels of `[a-z0-9-]`, each starting and ending with
/// `[a-z0-9]`.
fn is_dns_subdomain(text: &str) -> bool {
    text.split('.').all(|label| {
        let bytes = label.as_bytes();
        let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes.iter().all(|b| edge(b) || *b == b'-')
    })
}

/// A token of the selector text. `in` and `notin` are identifiers here; the parser treats
/// them as operators only where an operator is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    End,
    Ident(&'a str),
    Open,
    Close,
    Comma,
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
}

impl Tok<'_> {
    /// How an error message names this token.
    fn describe(self) -> String {
        let symbol = match self {
            Tok::End => return "end of string".to_owned(),
            Tok::Ident(text) => return format!("'{text}'"),
            Tok::Open => "(",
            Tok::Close => ")",
            Tok::Comma => ",",
            Tok::Bang => "!",
            Tok::Equals => "=",
            Tok::DoubleEquals => "==",
            Tok::NotEquals => "!=",
            Tok::Greater => ">",
            Tok::Less => "<",
        };
        format!("'{symbol}'")
    }
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    offset: usize,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the text into tokens, ending with [`Tok::End`]. An identifier is a maximal run
/// of bytes that are neither whitespace nor one of `=!(),<>`; all of those are ASCII, so
/// identifiers are always whole UTF-8 sequences.
fn lex(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    loop {
        while bytes.get(at).copied().is_some_and(is_space) {
            at += 1;
        }
        let Some(&byte) = bytes.get(at) else {
            tokens.push(Token {
                tok: Tok::End,
                offset: at,
            });
            return tokens;
        };
        let (tok, len) = match (byte, bytes.get(at + 1)) {
            (b'!', Some(b'=')) => (Tok::NotEquals, 2),
            (b'=', Some(b'=')) => (Tok::DoubleEquals, 2),
            (b'!', _) => (Tok::Bang, 1),
            (b'=', _) => (Tok::Equals, 1),
            (b'(', _) => (Tok::Open, 1),
            (b')', _) => (Tok::Close, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'>', _) => (Tok::Greater, 1),
            (b'<', _) => (Tok::Less, 1),
            _ => {
                let rest = &text[at..];
                let len = rest
                    .bytes()
                    .position(|b| is_space(b) || is_special(b))
                    .unwrap_or(rest.len());
                (Tok::Ident(&rest[..len]), len)
            }
        };
        tokens.push(Token { tok, offset: at });
        at += len;
    }
}

/// A recursive-descent parser over the token list.
struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            tokens: lex(text),
            at: 0,
        }
    }

    fn peek(&self) -> Token<'a> {
        // The list always ends with End and `next` never moves past it.
        self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token<'a> {
        let token = self.peek();
        if token.tok != Tok::End {
            self.at += 1;
        }
        token
    }

    fn unexpected(token: Token<'_>, expected: &'static str) -> SelectorError {
        SelectorError::Syntax {
            offset: token.offset,
            found: token.tok.describe(),
            expected,
        }
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        match self.peek().tok {
            Tok::End => return Ok(requirements),
            Tok::Ident(_) | Tok::Bang => {}
            _ => {
                return Err(Self::unexpected(
                    self.peek(),
                    "a label key, '!' or end of string",
                ));
            }
        }
        loop {
            requirements.push(self.requirement()?);
            let token = self.next();
            match token.tok {
                Tok::End => return Ok(requirements),
                Tok::Comma => {
                    if !matches!(self.peek().tok, Tok::Ident(_) | Tok::Bang) {
                        return Err(Self::unexpected(
                            self.peek(),
                            "a label key or '!' after ','",
                        ));
                    }
                }
                _ => return Err(Self::unexpected(token, "',' or end of string")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = self.peek().tok == Tok::Bang;
        if negated {
            self.next();
        }
        let token = self.next();
        let Tok::Ident(key) = token.tok else {
            return Err(Self::unexpected(token, "a label key"));
        };
        validate_label_key(key)?;
        if negated {
            return Requirement::new(key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek().tok, Tok::End | Tok::Comma) {
            return Requirement::new(key, Operator::Exists, Vec::new());
        }
        let token = self.next();
        let operator = match token.tok {
            Tok::Equals | Tok::DoubleEquals => Operator::Equals,
            Tok::NotEquals => Operator::NotEquals,
            Tok::Greater => Operator::GreaterThan,
            Tok::Less => Operator::LessThan,
            Tok::Ident("in") => Operator::In,
            Tok::Ident("notin") => Operator::NotIn,
            _ => {
                return Err(Self::unexpected(
                    token,
                    "an operator ('=', '==', '!=', 'in', 'notin', '>', '<'), ',' or end of string",
                ));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        Requirement::new(key, operator, values)
    }

    /// The value after `=`, `!=`, `>`, `<`; empty when the requirement ends there.
    fn exact_value(&mut self) -> Result<String, SelectorError> {
        match self.peek().tok {
            Tok::End | Tok::Comma => Ok(String::new()),
            Tok::Ident(value) => {
                self.next();
                Ok(value.to_owned())
            }
            _ => Err(Self::unexpected(
                self.peek(),
                "a value, ',' or end of string",
            )),
        }
    }

    /// `( value? ("," value?)* )`: an omitted value is the empty string.
    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        let token = self.next();
        if token.tok != Tok::Open {
            return Err(Self::unexpected(token, "'(' to start the list of values"));
        }
        let mut values = Vec::new();
        loop {
            match self.peek().tok {
                Tok::Ident(value) => {
                    self.next();
                    values.push(value.to_owned());
                }
                Tok::Comma | Tok::Close => values.push(String::new()),
                _ => return Err(Self::unexpected(self.peek(), "a value, ',' or ')'")),
            }
            let token = self.next();
            match token.tok {
                Tok::Comma => {}
                Tok::Close => return Ok(values),
                _ => return Err(Self::unexpected(token, "',' or ')'")),
            }
        }
    }
}

#[cfg(test)]
mod tests;
