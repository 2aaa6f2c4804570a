//! Tests of field selector parsing, escaping, rendering and matching.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn parse(text: &str) -> FieldSelector {
    FieldSelector::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn triples(selector: &FieldSelector) -> Vec<(&str, FieldOp, &str)> {
    selector
        .requirements()
        .iter()
        .map(|r| (r.field(), r.op(), r.value()))
        .collect()
}

/// A getter over a fixed map, like the caller's view of one object.
fn object(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |field| map.get(field).cloned()
}

#[test]
fn parses_each_operator() {
    assert_eq!(
        triples(&parse("metadata.name=dev1")),
        [("metadata.name", FieldOp::Equals, "dev1")]
    );
    assert_eq!(
        triples(&parse("metadata.name==dev1")),
        [("metadata.name", FieldOp::Equals, "dev1")]
    );
    assert_eq!(
        triples(&parse("metadata.name!=dev1")),
        [("metadata.name", FieldOp::NotEquals, "dev1")]
    );
    assert_eq!(
        triples(&parse(
            "status.phase=Running,metadata.namespace!=kube-system"
        )),
        [
            ("metadata.namespace", FieldOp::NotEquals, "kube-system"),
            ("status.phase", FieldOp::Equals, "Running"),
        ]
    );
    assert_eq!(triples(&parse("a=")), [("a", FieldOp::Equals, "")]);
    assert_eq!(triples(&parse("=x")), [("", FieldOp::Equals, "x")]);
    // `!` not followed by `=` is part of the field.
    assert_eq!(triples(&parse("a!b=c")), [("a!b", FieldOp::Equals, "c")]);
    // Go's rule: the first operator wins, and at one position `!=`/`==` beat `=`.
    assert_eq!(triples(&parse("a=!b")), [("a", FieldOp::Equals, "!b")]);
}

#[test]
fn empty_terms_are_skipped() {
    for text in ["", ",", ",,"] {
        let selector = parse(text);
        assert!(selector.is_empty(), "{text:?}");
        assert_eq!(selector, FieldSelector::everything());
        assert!(selector.matches(object(&[])));
        assert_eq!(selector.to_string(), "");
    }
    assert_eq!(parse("a=b,"), parse("a=b"));
    assert_eq!(parse(",a=b,,c=d"), parse("a=b,c=d"));
}

#[test]
fn whitespace_is_not_trimmed() {
    assert_eq!(triples(&parse("a = b")), [("a ", FieldOp::Equals, " b")]);
    assert!(!parse("a = b").matches(object(&[("a", "b")])));
}

#[test]
fn unescapes_values() {
    assert_eq!(triples(&parse(r"a=x\,y")), [("a", FieldOp::Equals, "x,y")]);
    assert_eq!(triples(&parse(r"a=x\=y")), [("a", FieldOp::Equals, "x=y")]);
    assert_eq!(triples(&parse(r"a=x\\y")), [("a", FieldOp::Equals, r"x\y")]);
    // An escaped backslash does not escape the comma after it.
    assert_eq!(
        triples(&parse(r"a=x\\,b=c")),
        [("a", FieldOp::Equals, r"x\"), ("b", FieldOp::Equals, "c")]
    );
    assert_eq!(parse(r"a!=x\,y\=z\\").to_string(), r"a!=x\,y\=z\\");
    assert_eq!(escape_value(r"a,b=c\d"), r"a\,b\=c\\d");
}

#[test]
fn rejects_malformed_terms() {
    assert_eq!(
        FieldSelector::parse("a=b,nonsense"),
        Err(SelectorError::FieldTerm {
            term: "nonsense".to_owned()
        })
    );
    assert_eq!(
        FieldSelector::parse("a=b=c"),
        Err(SelectorError::FieldUnescaped {
            term: "a=b=c".to_owned(),
            character: '='
        })
    );
    assert_eq!(
        FieldSelector::parse("a===b"),
        Err(SelectorError::FieldUnescaped {
            term: "a===b".to_owned(),
            character: '='
        })
    );
    assert_eq!(
        FieldSelector::parse(r"a=x\y"),
        Err(SelectorError::FieldEscape {
            term: r"a=x\y".to_owned(),
            sequence: r"\y".to_owned()
        })
    );
    assert_eq!(
        FieldSelector::parse(r"a=x\"),
        Err(SelectorError::FieldEscape {
            term: r"a=x\".to_owned(),
            sequence: r"\".to_owned()
        })
    );
    assert_eq!(
        FieldSelector::parse("a=x\\é"),
        Err(SelectorError::FieldEscape {
            term: "a=x\\é".to_owned(),
            sequence: "\\é".to_owned()
        })
    );
}

#[test]
fn error_messages_read_well() {
    let message = |text: &str| FieldSelector::parse(text).unwrap_err().to_string();
    assert_eq!(
        message("spec"),
        "invalid field selector: can't understand \"spec\", expected <field>=<value>, <field>==<value> or <field>!=<value>"
    );
    assert_eq!(
        message("a=b=c"),
        "invalid field selector: unescaped '=' in the value of \"a=b=c\", write it as '\\='"
    );
    assert_eq!(
        message(r"a=\n"),
        r#"invalid field selector: invalid escape sequence "\\n" in "a=\\n", only \\, \, and \= are escapes"#
    );
}

#[test]
fn matches_through_the_getter() {
    let dev = object(&[("metadata.name", "dev1"), ("metadata.namespace", "edge")]);
    assert!(parse("metadata.name=dev1").matches(&dev));
    assert!(parse("metadata.name==dev1,metadata.namespace=edge").matches(&dev));
    assert!(!parse("metadata.name=dev2").matches(&dev));
    assert!(!parse("metadata.name!=dev1").matches(&dev));
    assert!(parse("metadata.name!=dev2").matches(&dev));
    assert!(!parse("metadata.name=dev1,metadata.namespace=other").matches(&dev));
    // An unknown field is the empty string.
    assert!(parse("spec.unknown=").matches(&dev));
    assert!(!parse("spec.unknown!=").matches(&dev));
    assert!(parse("spec.unknown!=x").matches(&dev));
    assert!(!parse("spec.unknown=x").matches(&dev));
    let odd = object(&[("a", "x,y=z")]);
    assert!(parse(r"a=x\,y\=z").matches(&odd));
}

#[test]
fn canonical_form_is_sorted_and_reescaped() {
    assert_eq!(parse("b=1,a==2").to_string(), "a=2,b=1");
    assert_eq!(parse("a==z,a=b").to_string(), "a=b,a=z");
    assert_eq!(parse("a==z,a=b"), parse("a=b,a==z"));
}

#[test]
fn exact_match_finds_equals_terms() {
    let selector = parse("metadata.name=dev1,metadata.namespace!=x");
    assert_eq!(selector.exact_match("metadata.name"), Some("dev1"));
    assert_eq!(selector.exact_match("metadata.namespace"), None);
    assert_eq!(selector.exact_match("spec.x"), None);
}

#[test]
fn from_str_parses() {
    let selector: FieldSelector = "a=b".parse().unwrap();
    assert_eq!(selector, parse("a=b"));
    assert!("a".parse::<FieldSelector>().is_err());
}

fn requirement_strategy() -> impl Strategy<Value = FieldRequirement> {
    (
        "[a-z][a-z0-9.]{0,10}",
        prop_oneof![Just(FieldOp::Equals), Just(FieldOp::NotEquals)],
        prop_oneof![any::<String>(), "[a-z,=\\\\ !]{0,8}"],
    )
        .prop_map(|(field, op, value)| FieldRequirement { field, op, value })
}

proptest! {
    #[test]
    fn escaping_round_trips_any_value(value in any::<String>(), op in "(=|==|!=)") {
        let selector = parse(&format!("f{op}{}", escape_value(&value)));
        prop_assert_eq!(selector.requirements().len(), 1);
        prop_assert_eq!(selector.requirements()[0].value(), value.as_str());
    }

    #[test]
    fn display_round_trips(requirements in prop::collection::vec(requirement_strategy(), 0..5)) {
        let mut requirements = requirements;
        requirements.sort_by_cached_key(ToString::to_string);
        let selector = FieldSelector { requirements };
        let text = selector.to_string();
        prop_assert_eq!(FieldSelector::parse(&text), Ok(selector), "{:?}", text);
    }

    #[test]
    fn arbitrary_text_parses_or_fails_cleanly(text in "[a-z,=!\\\\ é]{0,24}") {
        if let Ok(selector) = FieldSelector::parse(&text) {
            prop_assert_eq!(FieldSelector::parse(&selector.to_string()), Ok(selector));
        }
    }
}
