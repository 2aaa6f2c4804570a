//! Tests of the `management.project-flotta.io/v1alpha1` types: golden round-trips of realistic
//! Flotta manifests, the CRD descriptions and schemas, and every validation rule.

mod crd;
mod roundtrip;
mod validation;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A fixture manifest from `fixtures/`, parsed as JSON.
pub(crate) fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/v1alpha1/fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture manifest decoded as `K`.
pub(crate) fn load<K: DeserializeOwned>(name: &str) -> K {
    serde_json::from_value(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}
