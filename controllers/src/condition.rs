//! The `Ready` condition and `observedGeneration` that every controller keeps on the objects
//! whose status it owns, in the standard `metav1.Condition` shape
//! (`type`, `status`, `observedGeneration`, `lastTransitionTime`, `reason`, `message`).
//!
//! `lastTransitionTime` changes only when the condition's status does, so re-asserting the
//! same state writes nothing.

use serde_json::{Map, Value, json};

use crate::meta;

/// The condition type every controller maintains.
pub const READY: &str = "Ready";

/// The desired `Ready` state of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Whether the object is ready.
    pub ready: bool,
    /// A CamelCase reason.
    pub reason: &'static str,
    /// Details for humans.
    pub message: String,
}

impl Readiness {
    /// A true `Ready` condition.
    pub fn ready(reason: &'static str, message: impl Into<String>) -> Self {
        Readiness {
            ready: true,
            reason,
            message: message.into(),
        }
    }

    /// A false `Ready` condition.
    pub fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Readiness {
            ready: false,
            reason,
            message: message.into(),
        }
    }
}

/// A copy of `object` whose `status.observedGeneration` is its `metadata.generation` and
/// whose `Ready` condition says `readiness` (`None` when both already do).
pub fn with_readiness(object: &Value, readiness: &Readiness) -> Option<Value> {
    let generation = meta::generation(object);
    let mut next = object.clone();
    set(
        meta::status_mut(&mut next),
        generation,
        readiness,
        &meta::now(),
    );
    (next != *object).then_some(next)
}

/// Sets `observedGeneration` and the `Ready` condition in a status map, at time `now`.
pub fn set(status: &mut Map<String, Value>, generation: i64, readiness: &Readiness, now: &str) {
    status.insert("observedGeneration".into(), json!(generation));
    let wanted = if readiness.ready { "True" } else { "False" };
    if !status.get("conditions").is_some_and(Value::is_array) {
        status.insert("conditions".into(), json!([]));
    }
    let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    let existing = conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(READY));
    match existing {
        Some(condition) => {
            let transition_time = match condition.get("status").and_then(Value::as_str) {
                Some(s) if s == wanted => condition
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or_else(|| json!(now)),
                _ => json!(now),
            };
            *condition = json!({
                "type": READY,
                "status": wanted,
                "observedGeneration": generation,
                "lastTransitionTime": transition_time,
                "reason": readiness.reason,
                "message": readiness.message,
            });
        }
        None => conditions.push(json!({
            "type": READY,
            "status": wanted,
            "observedGeneration": generation,
            "lastTransitionTime": now,
            "reason": readiness.reason,
            "message": readiness.message,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut status = Map::new();
        set(&mut status, 1, &Readiness::ready("Placed", "a"), "t1");
        set(&mut status, 2, &Readiness::ready("Placed", "b"), "t2");
        let c = &status["conditions"][0];
        assert_eq!(c["lastTransitionTime"], "t1");
        assert_eq!(c["message"], "b");
        assert_eq!(status["observedGeneration"], 2);
        set(&mut status, 2, &Readiness::not_ready("Broken", "c"), "t3");
        let c = &status["conditions"][0];
        assert_eq!(c["lastTransitionTime"], "t3");
        assert_eq!(c["status"], "False");
        assert_eq!(status["conditions"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn same_state_is_no_change() {
        let obj = json!({"metadata": {"name": "x", "generation": 4}});
        let once = with_readiness(&obj, &Readiness::ready("Ok", "fine")).unwrap();
        assert!(with_readiness(&once, &Readiness::ready("Ok", "fine")).is_none());
        assert_eq!(once["status"]["observedGeneration"], 4);
    }
}
