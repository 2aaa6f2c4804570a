//! Label membership: which live devices name which parent object through one label, e.g.
//! `flotta/member-of=<EdgeDeviceSet>` or `config/device-by-config=<EdgeConfig>`. Kept in
//! memory from device watch events, in both directions (device → parent, parent → members),
//! so that a label change costs a map update, never a device scan.
//!
//! Limits: a parent is looked up in its device's namespace; whether the named parent exists
//! is not checked here; devices being deleted count as members of nothing.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::client::EventType;
use crate::meta::{self, ObjectKey};

/// The parents named by devices through one label (see the module documentation).
#[derive(Debug)]
pub(crate) struct Membership {
    /// The label whose value names the parent.
    label: &'static str,
    /// Live device → the parent its label names.
    parent_of: HashMap<ObjectKey, String>,
    /// Parent → the names of the live devices naming it.
    members: HashMap<ObjectKey, BTreeSet<String>>,
}

/// A device's change of parent, as [`Membership::observe`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Move {
    /// The device.
    pub(crate) device: ObjectKey,
    /// The parent it named before, if any.
    pub(crate) from: Option<String>,
    /// The parent it names now, if any.
    pub(crate) to: Option<String>,
}

impl Move {
    /// The parents whose members changed, the old one first, as keys in the device's
    /// namespace.
    pub(crate) fn parents(&self) -> impl Iterator<Item = ObjectKey> + '_ {
        [&self.from, &self.to]
            .into_iter()
            .flatten()
            .map(|parent| ObjectKey::new(&self.device.namespace, parent))
    }
}

impl Membership {
    /// No members yet; parents are named by the value of `label`.
    pub(crate) fn new(label: &'static str) -> Self {
        Membership {
            label,
            parent_of: HashMap::new(),
            members: HashMap::new(),
        }
    }

    /// Records a device watch event: a live device with a non-empty label value is a member
    /// of that parent, any other of none. Returns the move, or `None` when the device's
    /// parent did not change (or the object has no name).
    pub(crate) fn observe(&mut self, event: EventType, device: &Value) -> Option<Move> {
        let key = ObjectKey::of(device)?;
        let to = if event == EventType::Deleted || meta::is_deleting(device) {
            None
        } else {
            meta::label(device, self.label)
                .filter(|parent| !parent.is_empty())
                .map(str::to_owned)
        };
        let from = self.parent_of.get(&key).cloned();
        if from == to {
            return None;
        }
        if let Some(old) = &from {
            let parent = ObjectKey::new(&key.namespace, old);
            if let Some(members) = self.members.get_mut(&parent) {
                members.remove(&key.name);
                if members.is_empty() {
                    self.members.remove(&parent);
                }
            }
            self.parent_of.remove(&key);
        }
        if let Some(new) = &to {
            self.members
                .entry(ObjectKey::new(&key.namespace, new))
                .or_default()
                .insert(key.name.clone());
            self.parent_of.insert(key.clone(), new.clone());
        }
        Some(Move {
            device: key,
            from,
            to,
        })
    }

    /// The names of the live devices naming `parent` (`None` when there are none).
    pub(crate) fn members(&self, parent: &ObjectKey) -> Option<&BTreeSet<String>> {
        self.members.get(parent)
    }

    /// How many live devices name `parent`.
    pub(crate) fn count(&self, parent: &ObjectKey) -> usize {
        self.members.get(parent).map_or(0, BTreeSet::len)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const LABEL: &str = "test/parent";

    fn device(name: &str, parent: Option<&str>) -> Value {
        let mut object = json!({"metadata": {"name": name, "namespace": "ns"}});
        if let Some(parent) = parent {
            object["metadata"]["labels"] = json!({LABEL: parent});
        }
        object
    }

    #[test]
    fn moves_report_old_and_new_parents_once() {
        let mut m = Membership::new(LABEL);
        let moved = m
            .observe(EventType::Added, &device("d1", Some("a")))
            .unwrap();
        assert_eq!(
            moved.parents().collect::<Vec<_>>(),
            [ObjectKey::new("ns", "a")]
        );
        assert!(
            m.observe(EventType::Modified, &device("d1", Some("a")))
                .is_none()
        );
        m.observe(EventType::Added, &device("d2", Some("a")));
        assert_eq!(m.count(&ObjectKey::new("ns", "a")), 2);

        let moved = m
            .observe(EventType::Modified, &device("d1", Some("b")))
            .unwrap();
        assert_eq!(
            moved.parents().collect::<Vec<_>>(),
            [ObjectKey::new("ns", "a"), ObjectKey::new("ns", "b")]
        );
        assert_eq!(m.count(&ObjectKey::new("ns", "a")), 1);
        assert!(
            m.members(&ObjectKey::new("ns", "b"))
                .unwrap()
                .contains("d1")
        );
    }

    #[test]
    fn deleted_deleting_and_empty_labels_leave() {
        let mut m = Membership::new(LABEL);
        m.observe(EventType::Added, &device("d1", Some("a")));
        m.observe(EventType::Added, &device("d2", Some("a")));
        m.observe(EventType::Added, &device("d3", Some("a")));
        let moved = m
            .observe(EventType::Deleted, &device("d1", Some("a")))
            .unwrap();
        assert_eq!((moved.from.as_deref(), moved.to), (Some("a"), None));
        let mut deleting = device("d2", Some("a"));
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(m.observe(EventType::Modified, &deleting).is_some());
        assert!(
            m.observe(EventType::Modified, &device("d3", Some("")))
                .is_some()
        );
        assert_eq!(m.count(&ObjectKey::new("ns", "a")), 0);
        assert!(m.members(&ObjectKey::new("ns", "a")).is_none());
        assert!(m.observe(EventType::Deleted, &device("d3", None)).is_none());
    }
}
