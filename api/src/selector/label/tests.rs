//! Tests of label selector parsing, rendering, conversion and matching, including property
//! tests against a reference evaluator and against kube-core's independent matcher.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::core::{Expression, SelectorExt};
use proptest::prelude::*;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(text: &str) -> Selector {
    Selector::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn single(text: &str) -> Requirement {
    let selector = parse(text);
    assert_eq!(selector.requirements().len(), 1, "{text:?}");
    selector.requirements()[0].clone()
}

fn syntax_error(text: &str) -> (usize, String, &'static str) {
    match Selector::parse(text) {
        Err(SelectorError::Syntax {
            offset,
            found,
            expected,
        }) => (offset, found, expected),
        other => panic!("{text:?}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn parses_every_operator() {
    let cases: &[(&str, Operator, &[&str])] = &[
        ("a=b", Operator::Equals, &["b"]),
        ("a==b", Operator::Equals, &["b"]),
        ("a!=b", Operator::NotEquals, &["b"]),
        ("a in (x,y)", Operator::In, &["x", "y"]),
        ("a notin (x)", Operator::NotIn, &["x"]),
        ("a", Operator::Exists, &[]),
        ("!a", Operator::DoesNotExist, &[]),
        ("a>5", Operator::GreaterThan, &["5"]),
        ("a<5", Operator::LessThan, &["5"]),
    ];
    for (text, operator, values) in cases {
        let r = single(text);
        assert_eq!(r.key(), "a", "{text}");
        assert_eq!(r.operator(), *operator, "{text}");
        assert_eq!(r.values(), *values, "{text}");
    }
}

#[test]
fn matches_each_operator_like_kubernetes() {
    // (selector, labels, expected)
    type Case = (&'static str, &'static [(&'static str, &'static str)], bool);
    let cases: &[Case] = &[
        ("a=b", &[("a", "b")], true),
        ("a=b", &[("a", "c")], false),
        ("a=b", &[], false),
        ("a==b", &[("a", "b")], true),
        ("a=", &[("a", "")], true),
        ("a=", &[], false),
        ("a!=b", &[("a", "b")], false),
        ("a!=b", &[("a", "c")], true),
        ("a!=b", &[], true),
        ("a in (x,y)", &[("a", "y")], true),
        ("a in (x,y)", &[("a", "z")], false),
        ("a in (x,y)", &[], false),
        ("a in ()", &[("a", "")], true),
        ("a in ()", &[("a", "x")], false),
        ("a notin (x,y)", &[("a", "x")], false),
        ("a notin (x,y)", &[("a", "z")], true),
        ("a notin (x,y)", &[], true),
        ("a", &[("a", "")], true),
        ("a", &[("b", "")], false),
        ("!a", &[("a", "x")], false),
        ("!a", &[("b", "x")], true),
        ("a>5", &[("a", "6")], true),
        ("a>5", &[("a", "5")], false),
        ("a>5", &[("a", "x")], false),
        ("a>5", &[], false),
        ("a<5", &[("a", "-3")], true),
        ("a<5", &[("a", "5")], false),
        ("a<5", &[], false),
        ("a=b,c", &[("a", "b"), ("c", "")], true),
        ("a=b,c", &[("a", "b")], false),
        (
            "example.com/tier in (web),!legacy",
            &[("example.com/tier", "web")],
            true,
        ),
        (
            "example.com/tier in (web),!legacy",
            &[("example.com/tier", "web"), ("legacy", "1")],
            false,
        ),
    ];
    for (text, pairs, expected) in cases {
        assert_eq!(
            parse(text).matches(&labels(pairs)),
            *expected,
            "{text} on {pairs:?}"
        );
    }
}

#[test]
fn empty_selector_matches_everything() {
    for text in ["", " ", "\t\n "] {
        let selector = parse(text);
        assert!(selector.is_empty());
        assert_eq!(selector, Selector::everything());
        assert!(selector.matches(&labels(&[])));
        assert!(selector.matches(&labels(&[("a", "b")])));
        assert_eq!(selector.to_string(), "");
    }
    assert!(!parse("a").is_empty());
}

#[test]
fn tolerates_whitespace_like_kubernetes() {
    let cases = [
        ("a = b", "a=b"),
        ("  a==b  ", "a=b"),
        ("a\t!=\tb", "a!=b"),
        ("c in ( x , y )", "c in (x,y)"),
        ("c in(x,y)", "c in (x,y)"),
        ("c notin(x)", "c notin (x)"),
        ("env in (prod),tier", "env in (prod),tier"),
        ("a=b , c", "a=b,c"),
        ("! a", "!a"),
        ("a > 5", "a>5"),
        ("a\r\n=\nb", "a=b"),
    ];
    for (text, canonical) in cases {
        assert_eq!(parse(text).to_string(), canonical, "{text:?}");
    }
}

#[test]
fn keywords_are_identifiers_outside_operator_position() {
    let r = single("in=notin");
    assert_eq!(
        (r.key(), r.operator(), r.values()),
        ("in", Operator::Equals, &["notin".to_owned()][..])
    );
    let r = single("in in (in, notin)");
    assert_eq!((r.key(), r.operator()), ("in", Operator::In));
    assert_eq!(r.values(), ["in", "notin"]);
    assert_eq!(single("notin").operator(), Operator::Exists);
    assert_eq!(single("!in").operator(), Operator::DoesNotExist);
    assert_eq!(parse("in in (in)").to_string(), "in in (in)");
}

#[test]
fn empty_values() {
    assert_eq!(single("a=").values(), [""]);
    assert_eq!(single("a!=").values(), [""]);
    assert_eq!(parse("a=,b").to_string(), "a=,b");
    assert_eq!(single("a in ()").values(), [""]);
    assert_eq!(single("a in ( )").values(), [""]);
    assert_eq!(single("a in (,x)").values(), ["", "x"]);
    assert_eq!(single("a in (x,)").values(), ["", "x"]);
    assert_eq!(single("a in (x,,y)").values(), ["", "x", "y"]);
    assert_eq!(single("a notin (,)").values(), [""]);
    assert_eq!(parse("a in (x,)").to_string(), "a in (,x)");
    assert_eq!(parse("a in ()").to_string(), "a in ()");
}

#[test]
fn canonical_form_sorts_keys_and_values() {
    assert_eq!(parse("b=1,a=2").to_string(), "a=2,b=1");
    assert_eq!(parse("a in (y,x,x)").to_string(), "a in (x,y)");
    assert_eq!(parse("a in (y,x,x)"), parse("a in (x,y)"));
    // Same key: relative order is kept, so the rendering is stable.
    assert_eq!(parse("b,a!=2,a=1").to_string(), "a!=2,a=1,b");
}

#[test]
fn invalid_keys_are_rejected() {
    let long_name = "n".repeat(64);
    let long_prefix = format!("{}.com/a", "p".repeat(250));
    let bad = [
        "-a",
        "a-",
        "a_",
        "a$b",
        "ä",
        "Example.com/a",
        "/a",
        "a/",
        "a/b/c",
        "ex_ample.com/a",
        "ex..com/a",
        long_name.as_str(),
        long_prefix.as_str(),
    ];
    for key in bad {
        for text in [
            key.to_owned(),
            format!("{key}=v"),
            format!("!{key}"),
            format!("{key} in (v)"),
        ] {
            match Selector::parse(&text) {
                Err(SelectorError::InvalidKey { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{text:?}: expected an invalid-key error, got {other:?}"),
            }
        }
    }
    let ok_name = "n".repeat(63);
    let ok_prefix = format!("{}.com/a", "p".repeat(249));
    for key in [
        "a",
        "A.b-c_d",
        "9",
        "example.com/MyName",
        "a-b.c/x",
        ok_name.as_str(),
        ok_prefix.as_str(),
    ] {
        assert!(validate_label_key(key).is_ok(), "{key}");
        assert_eq!(single(key).key(), key);
    }
}

#[test]
fn invalid_values_are_rejected() {
    let long = "v".repeat(64);
    for value in ["-b", "b_", "b/c", "ä", long.as_str()] {
        for text in [
            format!("a={value}"),
            format!("a!={value}"),
            format!("a in (x,{value})"),
            format!("a notin ({value})"),
        ] {
            match Selector::parse(&text) {
                Err(SelectorError::InvalidValue { key, value: v, .. }) => {
                    assert_eq!((key.as_str(), v.as_str()), ("a", value), "{text}");
                }
                other => panic!("{text:?}: expected an invalid-value error, got {other:?}"),
            }
        }
    }
    assert!(Selector::parse(&format!("a={}", "v".repeat(63))).is_ok());
    for text in ["a>b", "a<1.5", "a>", "a>99999999999999999999"] {
        assert!(
            matches!(
                Selector::parse(text),
                Err(SelectorError::InvalidValue { .. })
            ),
            "{text}"
        );
    }
}

#[test]
fn syntax_errors_name_the_token_and_position() {
    // (text, offset, found, expected)
    let cases: &[(&str, usize, &str, &str)] = &[
        // `in`/`notin` without parentheses, or unterminated.
        ("a in x", 5, "'x'", "'(' to start the list of values"),
        (
            "a in",
            4,
            "end of string",
            "'(' to start the list of values",
        ),
        ("a notin x,y", 8, "'x'", "'(' to start the list of values"),
        ("a in (x", 7, "end of string", "',' or ')'"),
        ("a in (x,", 8, "end of string", "a value, ',' or ')'"),
        ("a in (", 6, "end of string", "a value, ',' or ')'"),
        ("a in (x y)", 8, "'y'", "',' or ')'"),
        ("a in (x))", 8, "')'", "',' or end of string"),
        ("a in (=)", 6, "'='", "a value, ',' or ')'"),
        // Commas.
        ("a=b,", 4, "end of string", "a label key or '!' after ','"),
        ("a,,b", 2, "','", "a label key or '!' after ','"),
        (",a", 0, "','", "a label key, '!' or end of string"),
        // `!` followed by an operator or nothing.
        ("!=a", 0, "'!='", "a label key, '!' or end of string"),
        ("! =a", 2, "'='", "a label key"),
        ("!", 1, "end of string", "a label key"),
        ("!!a", 1, "'!'", "a label key"),
        ("!a=b", 2, "'='", "',' or end of string"),
        ("!a in (x)", 3, "'in'", "',' or end of string"),
        // Operators.
        (
            "a b",
            2,
            "'b'",
            "an operator ('=', '==', '!=', 'in', 'notin', '>', '<'), ',' or end of string",
        ),
        (
            "a (x)",
            2,
            "'('",
            "an operator ('=', '==', '!=', 'in', 'notin', '>', '<'), ',' or end of string",
        ),
        ("a=b=c", 3, "'='", "',' or end of string"),
        ("a===b", 3, "'='", "a value, ',' or end of string"),
        ("a=(b)", 2, "'('", "a value, ',' or end of string"),
        ("a=!b", 2, "'!'", "a value, ',' or end of string"),
        ("a>=5", 2, "'='", "a value, ',' or end of string"),
        ("(a)", 0, "'('", "a label key, '!' or end of string"),
        ("a=b c", 4, "'c'", "',' or end of string"),
    ];
    for (text, offset, found, expected) in cases {
        assert_eq!(
            syntax_error(text),
            (*offset, (*found).to_owned(), *expected),
            "{text:?}"
        );
    }
}

#[test]
fn error_messages_read_well() {
    let message = |text: &str| Selector::parse(text).map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        message("a in x"),
        "invalid label selector: found 'x' at offset 5, expected '(' to start the list of values"
    );
    assert_eq!(
        message("a=b,"),
        "invalid label selector: found end of string at offset 4, expected a label key or '!' after ','"
    );
    assert_eq!(
        message("Foo.com/a=b"),
        "invalid label key \"Foo.com/a\": the prefix must be a lowercase DNS subdomain: labels of 'a-z', '0-9' and '-', starting and ending with a letter or digit, separated by '.' (e.g. 'example.com')"
    );
    assert_eq!(
        message("a=-b"),
        "invalid value \"-b\" for label \"a\": must consist of alphanumeric characters, '-', '_' or '.', and start and end with an alphanumeric character (e.g. 'MyName', 'my.name', '123-abc')"
    );
    assert_eq!(
        message("a>x"),
        "invalid value \"x\" for label \"a\": operator '>' needs a 64-bit integer"
    );
}

#[test]
fn requirement_new_checks_the_number_of_values() {
    let v = |values: &[&str]| values.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let bad: &[(Operator, &[&str])] = &[
        (Operator::Equals, &[]),
        (Operator::Equals, &["x", "y"]),
        (Operator::NotEquals, &[]),
        (Operator::GreaterThan, &["1", "2"]),
        (Operator::In, &[]),
        (Operator::NotIn, &[]),
        (Operator::Exists, &["x"]),
        (Operator::DoesNotExist, &["x"]),
    ];
    for (operator, values) in bad {
        assert!(
            matches!(
                Requirement::new("a", *operator, v(values)),
                Err(SelectorError::ValueCount { operator: o, .. }) if o == *operator
            ),
            "{operator:?} {values:?}"
        );
    }
    let r = Requirement::new("a", Operator::In, v(&["b", "a", "b"])).unwrap();
    assert_eq!(r.values(), ["a", "b"]);
    assert_eq!(
        Requirement::new("a", Operator::In, Vec::new())
            .unwrap_err()
            .to_string(),
        "invalid values for label \"a\" with operator 'in': at least one value is required"
    );
}

#[test]
fn converts_label_selectors() {
    let expression =
        |key: &str, operator: &str, values: Option<&[&str]>| LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: values.map(|vs| vs.iter().map(|s| (*s).to_owned()).collect()),
        };
    let selector = LabelSelector {
        match_labels: Some(labels(&[("tier", "web"), ("app", "cam")])),
        match_expressions: Some(vec![
            expression("zone", "In", Some(&["b", "a"])),
            expression("env", "NotIn", Some(&["dev"])),
            expression("gpu", "Exists", None),
            expression("legacy", "DoesNotExist", Some(&[])),
        ]),
    };
    let converted = Selector::from_label_selector(&selector).unwrap();
    assert_eq!(
        converted.to_string(),
        "app=cam,env notin (dev),gpu,!legacy,tier=web,zone in (a,b)"
    );
    assert_eq!(converted, parse(&converted.to_string()));
    assert!(converted.matches(&labels(&[
        ("app", "cam"),
        ("tier", "web"),
        ("zone", "a"),
        ("gpu", "")
    ])));
    assert!(!converted.matches(&labels(&[("app", "cam"), ("tier", "web"), ("zone", "a")])));
    assert_eq!(Selector::try_from(&selector), Ok(converted));

    let empty = Selector::from_label_selector(&LabelSelector::default()).unwrap();
    assert!(empty.is_empty());
    let empty_lists = LabelSelector {
        match_labels: Some(BTreeMap::new()),
        match_expressions: Some(Vec::new()),
    };
    assert!(
        Selector::from_label_selector(&empty_lists)
            .unwrap()
            .is_empty()
    );

    let failing = |e: LabelSelectorRequirement| {
        Selector::from_label_selector(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![e]),
        })
    };
    assert_eq!(
        failing(expression("a", "Gt", Some(&["1"]))),
        Err(SelectorError::UnknownOperator {
            operator: "Gt".to_owned()
        })
    );
    assert_eq!(
        failing(expression("a", "in", Some(&["1"])))
            .unwrap_err()
            .to_string(),
        "\"in\" is not a valid label selector operator: expected In, NotIn, Exists or DoesNotExist"
    );
    assert!(matches!(
        failing(expression("a", "In", None)),
        Err(SelectorError::ValueCount { .. })
    ));
    assert!(matches!(
        failing(expression("a", "Exists", Some(&["x"]))),
        Err(SelectorError::ValueCount { .. })
    ));
    assert!(matches!(
        failing(expression("-a", "Exists", None)),
        Err(SelectorError::InvalidKey { .. })
    ));
    let bad_match_label = LabelSelector {
        match_labels: Some(labels(&[("a", "not valid")])),
        match_expressions: None,
    };
    assert!(matches!(
        Selector::from_label_selector(&bad_match_label),
        Err(SelectorError::InvalidValue { .. })
    ));
}

#[test]
fn exact_match_finds_pinned_values() {
    let selector = parse("a=1,b in (x),c in (x,y),d!=z,e,b!=q");
    assert_eq!(selector.exact_match("a"), Some("1"));
    assert_eq!(selector.exact_match("b"), Some("x"));
    assert_eq!(selector.exact_match("c"), None);
    assert_eq!(selector.exact_match("d"), None);
    assert_eq!(selector.exact_match("e"), None);
    assert_eq!(selector.exact_match("f"), None);
}

#[test]
fn from_str_parses() {
    let selector: Selector = "a=b".parse().unwrap();
    assert_eq!(selector, parse("a=b"));
    assert!("a in".parse::<Selector>().is_err());
}

// --- property tests ---

/// Small pools so that generated selectors and label maps share keys and values.
fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "app", "in", "notin", "example.com/tier", "x.y-z_9"]).prop_map(str::to_owned),
        1 => "[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?(\\.[a-z0-9]{1,4}){0,2}/[A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?",
        1 => "[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?",
    ]
}

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["", "x", "y", "in", "notin", "7", "12", "v.1-a_b"]).prop_map(str::to_owned),
        1 => "[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?",
    ]
}

fn int_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["0", "7", "12", "007"]).prop_map(str::to_owned),
        (0i64..1000).prop_map(|n| n.to_string()),
    ]
}

/// An unnormalised requirement: values may repeat and be in any order.
fn spec_strategy() -> impl Strategy<Value = (String, Operator, Vec<String>)> {
    let one = || prop::collection::vec(value_strategy(), 1..=1);
    let many = || prop::collection::vec(value_strategy(), 1..4);
    let int = || prop::collection::vec(int_strategy(), 1..=1);
    (
        key_strategy(),
        prop_oneof![
            one().prop_map(|v| (Operator::Equals, v)),
            one().prop_map(|v| (Operator::NotEquals, v)),
            many().prop_map(|v| (Operator::In, v)),
            many().prop_map(|v| (Operator::NotIn, v)),
            Just((Operator::Exists, Vec::new())),
            Just((Operator::DoesNotExist, Vec::new())),
            int().prop_map(|v| (Operator::GreaterThan, v)),
            int().prop_map(|v| (Operator::LessThan, v)),
        ],
    )
        .prop_map(|(key, (operator, values))| (key, operator, values))
}

fn specs_strategy() -> impl Strategy<Value = Vec<(String, Operator, Vec<String>)>> {
    prop::collection::vec(spec_strategy(), 0..5)
}

fn label_map_strategy() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        key_strategy(),
        prop_oneof![value_strategy(), int_strategy()],
        0..6,
    )
}

fn selector_of(specs: &[(String, Operator, Vec<String>)]) -> Selector {
    Selector::new(
        specs
            .iter()
            .map(|(k, op, vs)| Requirement::new(k.clone(), *op, vs.clone()).unwrap()),
    )
}

/// Renders a spec by hand, independently of `Display`, with the whitespace and operator
/// spellings chosen by `style`.
fn render_by_hand(specs: &[(String, Operator, Vec<String>)], style: &[u8]) -> String {
    let ws = |i: usize| match style.get(i % style.len().max(1)).copied().unwrap_or(0) % 4 {
        0 => "",
        1 => " ",
        2 => "\t",
        _ => "  \n",
    };
    let mut parts = Vec::new();
    for (i, (key, operator, values)) in specs.iter().enumerate() {
        let (a, b, c) = (ws(3 * i), ws(3 * i + 1), ws(3 * i + 2));
        let first = values.first().map_or("", String::as_str);
        let eq = if style.get(i).is_some_and(|s| s % 2 == 0) {
            "=="
        } else {
            "="
        };
        parts.push(match operator {
            Operator::Equals => format!("{a}{key}{b}{eq}{c}{first}{a}"),
            Operator::NotEquals => format!("{a}{key}{b}!={c}{first}"),
            Operator::GreaterThan => format!("{key}{b}>{c}{first}"),
            Operator::LessThan => format!("{key}{b}<{c}{first}"),
            Operator::Exists => format!("{a}{key}{c}"),
            Operator::DoesNotExist => format!("{a}!{b}{key}"),
            Operator::In | Operator::NotIn => {
                let word = if *operator == Operator::In {
                    "in"
                } else {
                    "notin"
                };
                let list = values.join(&format!("{b},{c}"));
                // A keyword must be separated from the key; `(` needs no space.
                format!("{a}{key} {word}{b}({c}{list}{b}){a}")
            }
        });
    }
    parts.join(",")
}

/// The reference evaluation, straight from the Kubernetes documentation.
fn reference_matches(
    specs: &[(String, Operator, Vec<String>)],
    labels: &BTreeMap<String, String>,
) -> bool {
    specs.iter().all(|(key, operator, values)| {
        let label = labels.get(key);
        let int = |s: &str| s.parse::<i64>().ok();
        match operator {
            Operator::Equals => label == Some(&values[0]),
            Operator::NotEquals => label != Some(&values[0]),
            Operator::In => label.is_some_and(|l| values.contains(l)),
            Operator::NotIn => label.is_none_or(|l| !values.contains(l)),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::GreaterThan => {
                matches!((label.and_then(|l| int(l)), int(&values[0])), (Some(l), Some(v)) if l > v)
            }
            Operator::LessThan => {
                matches!((label.and_then(|l| int(l)), int(&values[0])), (Some(l), Some(v)) if l < v)
            }
        }
    })
}

fn kube_expression(
    (key, operator, values): &(String, Operator, Vec<String>),
) -> Option<Expression> {
    let set = || values.iter().cloned().collect::<BTreeSet<_>>();
    Some(match operator {
        Operator::Equals => Expression::Equal(key.clone(), values[0].clone()),
        Operator::NotEquals => Expression::NotEqual(key.clone(), values[0].clone()),
        Operator::In => Expression::In(key.clone(), set()),
        Operator::NotIn => Expression::NotIn(key.clone(), set()),
        Operator::Exists => Expression::Exists(key.clone()),
        Operator::DoesNotExist => Expression::DoesNotExist(key.clone()),
        Operator::GreaterThan | Operator::LessThan => return None,
    })
}

proptest! {
    #[test]
    fn display_round_trips(specs in specs_strategy()) {
        let selector = selector_of(&specs);
        let text = selector.to_string();
        prop_assert_eq!(Selector::parse(&text), Ok(selector.clone()), "{}", text);
    }

    #[test]
    fn matching_agrees_with_the_reference(
        specs in specs_strategy(),
        style in prop::collection::vec(any::<u8>(), 1..16),
        maps in prop::collection::vec(label_map_strategy(), 1..8),
    ) {
        let text = render_by_hand(&specs, &style);
        let parsed = Selector::parse(&text);
        prop_assert!(parsed.is_ok(), "{:?}: {:?}", text, parsed);
        let parsed = parsed.unwrap();
        prop_assert_eq!(&parsed, &selector_of(&specs), "{:?}", text);
        for map in &maps {
            prop_assert_eq!(parsed.matches(map), reference_matches(&specs, map), "{:?} on {:?}", text, map);
            // Each requirement alone too, so a wrong operator is not hidden by the others.
            for spec in &specs {
                let one = std::slice::from_ref(spec);
                prop_assert_eq!(selector_of(one).matches(map), reference_matches(one, map), "{:?} on {:?}", spec, map);
            }
        }
    }

    #[test]
    fn agrees_with_kube_core(
        specs in specs_strategy(),
        maps in prop::collection::vec(label_map_strategy(), 1..8),
    ) {
        let Some(expressions) = specs.iter().map(kube_expression).collect::<Option<Vec<_>>>() else {
            return Ok(());
        };
        // Sorted by key the way ours is, kube-core's rendering is our canonical form.
        let mut sorted = expressions.clone();
        sorted.sort_by(|a, b| expression_key(a).cmp(expression_key(b)));
        let kube_selector: kube::core::Selector = sorted.into_iter().collect();
        let ours = Selector::parse(&kube_selector.to_string());
        prop_assert_eq!(ours.as_ref().map(ToString::to_string), Ok(kube_selector.to_string()));
        let ours = ours.unwrap();
        for map in &maps {
            prop_assert_eq!(ours.matches(map), kube_selector.matches(map), "{} on {:?}", kube_selector, map);
        }
    }

    #[test]
    fn arbitrary_text_parses_or_fails_cleanly(text in "[a-z !=(),<>in0-9\t.-]{0,24}") {
        if let Ok(selector) = Selector::parse(&text) {
            prop_assert_eq!(Selector::parse(&selector.to_string()), Ok(selector));
        }
    }
}

fn expression_key(expression: &Expression) -> &str {
    match expression {
        Expression::In(k, _)
        | Expression::NotIn(k, _)
        | Expression::Equal(k, _)
        | Expression::NotEqual(k, _)
        | Expression::Exists(k)
        | Expression::DoesNotExist(k) => k,
    }
}
