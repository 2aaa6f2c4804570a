//! The in-memory placement index: which live devices each live workload targets, which
//! workloads each device should run, and what each device currently records, kept up to
//! date incrementally as devices and workloads change.
//!
//! Lookups never scan all devices for one device, nor all workloads for one device:
//! - **devices by label**: namespace → label key → value → device names;
//! - **workloads by anchor**: each selector is filed under one requirement it cannot match
//!   without: an `Equals`/`In` requirement under each of its `(key, value)`s, otherwise an
//!   `Exists`/`>`/`<` requirement under its key. Selectors with only negative requirements
//!   (`!=`, `notin`, `!key`) or none (`{}`) can match a device lacking every key they name,
//!   so they are "universal" and checked for every device of the namespace; workloads with
//!   `spec.device` are filed under that name.
//!
//! A device change therefore evaluates only the workloads filed under its name, its labels'
//! keys and `(key, value)` pairs, plus the universal ones. A workload change enumerates
//! only the devices under its cheapest positive requirement (all the namespace's devices
//! only for selectors that match devices lacking every key they name), so its cost is
//! O(candidate devices), and only devices whose placement changes are reported.
//!
//! Limits: memory grows with devices × labels plus placements; the index holds live
//! objects only (callers leave out devices and workloads being deleted).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use flotta_api::selector::{Operator, Selector};

use crate::labels::{WORKLOAD_LABEL_PREFIX, WORKLOAD_LABEL_VALUE, workload_label};
use crate::meta::ObjectKey;

/// Which devices a workload runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `spec.device`: exactly that device of the namespace.
    Device(String),
    /// `spec.deviceSelector`: the namespace's devices whose labels match.
    Selector(Selector),
    /// No devices (no target, or one that cannot be understood).
    Nothing,
}

impl Target {
    fn matches(&self, device: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Target::Device(name) => name == device,
            Target::Selector(selector) => selector.matches(labels),
            Target::Nothing => false,
        }
    }
}

/// What a device object records as placed on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// Names in `status.workloads`.
    pub(crate) status: BTreeSet<String>,
    /// Names of `workload/<name>=true` labels.
    pub(crate) labels: BTreeSet<String>,
}

impl Recorded {
    /// What `labels` record.
    pub(crate) fn from_labels(labels: &BTreeMap<String, String>, status: BTreeSet<String>) -> Self {
        let labels = labels
            .iter()
            .filter(|(_, v)| v.as_str() == WORKLOAD_LABEL_VALUE)
            .filter_map(|(k, _)| k.strip_prefix(WORKLOAD_LABEL_PREFIX))
            .map(str::to_owned)
            .collect();
        Recorded { status, labels }
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        self.status
            .iter()
            .chain(self.labels.difference(&self.status))
    }
}

/// What an index update asks the controller to look at.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Devices whose recorded placement differs from the desired one.
    pub(crate) devices: BTreeSet<ObjectKey>,
    /// Workloads whose placement or recorded placement changed.
    pub(crate) workloads: BTreeSet<ObjectKey>,
}

/// How far a workload's placement has been recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Devices the workload targets.
    pub(crate) targeted: usize,
    /// Of those, devices whose `status.workloads` lists it.
    pub(crate) recorded: usize,
}

#[derive(Debug, Default)]
struct Namespace {
    devices: HashMap<String, BTreeMap<String, String>>,
    by_label: HashMap<String, HashMap<String, HashSet<String>>>,
    workloads: HashMap<String, Target>,
    by_key_value: HashMap<(String, String), HashSet<String>>,
    by_key: HashMap<String, HashSet<String>>,
    universal: HashSet<String>,
    by_device_name: HashMap<String, HashSet<String>>,
    desired: HashMap<String, BTreeSet<String>>,
    placed: HashMap<String, BTreeSet<String>>,
    recorded: HashMap<String, Recorded>,
    recorded_by_workload: HashMap<String, HashSet<String>>,
}

/// The index (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct PlacementIndex {
    namespaces: HashMap<String, Namespace>,
}

impl PlacementIndex {
    /// Adds or updates a live device with its labels and what it records.
    pub(crate) fn upsert_device(
        &mut self,
        key: &ObjectKey,
        labels: BTreeMap<String, String>,
        recorded: Recorded,
    ) -> Changes {
        let mut changes = Changes::default();
        let ns = self.namespaces.entry(key.namespace.clone()).or_default();
        if ns.devices.get(&key.name) != Some(&labels) {
            if let Some(old) = ns.devices.remove(&key.name) {
                ns.unindex_labels(&key.name, &old);
            }
            ns.index_labels(&key.name, &labels);
            let matched = ns.workloads_matching(&key.name, &labels);
            ns.devices.insert(key.name.clone(), labels);
            ns.set_desired(&key.name, matched, &key.namespace, &mut changes);
        }
        ns.set_recorded(&key.name, Some(recorded), &key.namespace, &mut changes);
        if ns.needs_write(&key.name) {
            changes.devices.insert(key.clone());
        }
        changes
    }

    /// Forgets a device (deleted, or being deleted).
    pub(crate) fn remove_device(&mut self, key: &ObjectKey) -> Changes {
        let mut changes = Changes::default();
        let Some(ns) = self.namespaces.get_mut(&key.namespace) else {
            return changes;
        };
        if let Some(old) = ns.devices.remove(&key.name) {
            ns.unindex_labels(&key.name, &old);
        }
        ns.set_desired(&key.name, BTreeSet::new(), &key.namespace, &mut changes);
        ns.desired.remove(&key.name);
        ns.set_recorded(&key.name, None, &key.namespace, &mut changes);
        self.drop_if_empty(&key.namespace);
        changes
    }

    /// Adds or updates a live workload's target.
    pub(crate) fn upsert_workload(&mut self, key: &ObjectKey, target: Target) -> Changes {
        let mut changes = Changes::default();
        let ns = self.namespaces.entry(key.namespace.clone()).or_default();
        if ns.workloads.get(&key.name) == Some(&target) {
            return changes;
        }
        if let Some(old) = ns.workloads.remove(&key.name) {
            ns.unanchor(&key.name, &old);
        }
        ns.anchor(&key.name, &target);
        let devices = ns.devices_matching(&target);
        ns.workloads.insert(key.name.clone(), target);
        ns.set_placed(&key.name, devices, &key.namespace, &mut changes);
        changes.workloads.insert(key.clone());
        changes
    }

    /// Forgets a workload (deleted, or being deleted): it leaves every device.
    pub(crate) fn remove_workload(&mut self, key: &ObjectKey) -> Changes {
        let mut changes = Changes::default();
        let Some(ns) = self.namespaces.get_mut(&key.namespace) else {
            return changes;
        };
        if let Some(old) = ns.workloads.remove(&key.name) {
            ns.unanchor(&key.name, &old);
            ns.set_placed(&key.name, BTreeSet::new(), &key.namespace, &mut changes);
            changes.workloads.insert(key.clone());
        }
        ns.placed.remove(&key.name);
        self.drop_if_empty(&key.namespace);
        changes
    }

    /// The workloads a live device should run; `None` for devices not in the index.
    pub(crate) fn desired(&self, device: &ObjectKey) -> Option<BTreeSet<String>> {
        let ns = self.namespaces.get(&device.namespace)?;
        ns.devices.get(&device.name)?;
        Some(ns.desired.get(&device.name).cloned().unwrap_or_default())
    }

    /// How many live devices still record `workload` (in status or labels).
    pub(crate) fn recorded_count(&self, workload: &ObjectKey) -> usize {
        self.namespaces
            .get(&workload.namespace)
            .and_then(|ns| ns.recorded_by_workload.get(&workload.name))
            .map_or(0, HashSet::len)
    }

    /// How far a live workload's placement is recorded; `None` when it is not indexed.
    pub(crate) fn progress(&self, workload: &ObjectKey) -> Option<Progress> {
        let ns = self.namespaces.get(&workload.namespace)?;
        ns.workloads.get(&workload.name)?;
        let placed = ns.placed.get(&workload.name);
        let targeted = placed.map_or(0, BTreeSet::len);
        let recorded = placed.map_or(0, |devices| {
            devices
                .iter()
                .filter(|d| {
                    ns.recorded
                        .get(*d)
                        .is_some_and(|r| r.status.contains(&workload.name))
                })
                .count()
        });
        Some(Progress { targeted, recorded })
    }

    fn drop_if_empty(&mut self, namespace: &str) {
        let empty = self.namespaces.get(namespace).is_some_and(|ns| {
            ns.devices.is_empty() && ns.workloads.is_empty() && ns.recorded.is_empty()
        });
        if empty {
            self.namespaces.remove(namespace);
        }
    }
}

impl Namespace {
    fn index_labels(&mut self, device: &str, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            self.by_label
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .insert(device.to_owned());
        }
    }

    fn unindex_labels(&mut self, device: &str, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            let Some(values) = self.by_label.get_mut(k) else {
                continue;
            };
            if let Some(devices) = values.get_mut(v) {
                devices.remove(device);
                if devices.is_empty() {
                    values.remove(v);
                }
            }
            if values.is_empty() {
                self.by_label.remove(k);
            }
        }
    }

    fn anchor(&mut self, workload: &str, target: &Target) {
        match target {
            Target::Device(name) => {
                self.by_device_name
                    .entry(name.clone())
                    .or_default()
                    .insert(workload.to_owned());
            }
            Target::Selector(selector) => match anchor_of(selector) {
                Anchor::KeyValues(key, values) => {
                    for value in values {
                        self.by_key_value
                            .entry((key.clone(), value))
                            .or_default()
                            .insert(workload.to_owned());
                    }
                }
                Anchor::Key(key) => {
                    self.by_key
                        .entry(key)
                        .or_default()
                        .insert(workload.to_owned());
                }
                Anchor::Universal => {
                    self.universal.insert(workload.to_owned());
                }
            },
            Target::Nothing => {}
        }
    }

    fn unanchor(&mut self, workload: &str, target: &Target) {
        fn remove<K: std::hash::Hash + Eq>(
            map: &mut HashMap<K, HashSet<String>>,
            key: K,
            workload: &str,
        ) {
            if let Some(set) = map.get_mut(&key) {
                set.remove(workload);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
        match target {
            Target::Device(name) => remove(&mut self.by_device_name, name.clone(), workload),
            Target::Selector(selector) => match anchor_of(selector) {
                Anchor::KeyValues(key, values) => {
                    for value in values {
                        remove(&mut self.by_key_value, (key.clone(), value), workload);
                    }
                }
                Anchor::Key(key) => remove(&mut self.by_key, key, workload),
                Anchor::Universal => {
                    self.universal.remove(workload);
                }
            },
            Target::Nothing => {}
        }
    }

    /// The live workloads whose target matches this device.
    fn workloads_matching(
        &self,
        device: &str,
        labels: &BTreeMap<String, String>,
    ) -> BTreeSet<String> {
        let mut candidates: HashSet<&String> = HashSet::new();
        candidates.extend(self.by_device_name.get(device).into_iter().flatten());
        candidates.extend(self.universal.iter());
        for (k, v) in labels {
            candidates.extend(self.by_key.get(k).into_iter().flatten());
            if let Some(set) = self.by_key_value.get(&(k.clone(), v.clone())) {
                candidates.extend(set);
            }
        }
        candidates
            .into_iter()
            .filter(|w| {
                self.workloads
                    .get(*w)
                    .is_some_and(|t| t.matches(device, labels))
            })
            .cloned()
            .collect()
    }

    /// The live devices a target matches, enumerating only the candidates of its cheapest
    /// positive requirement.
    fn devices_matching(&self, target: &Target) -> BTreeSet<String> {
        let selector = match target {
            Target::Nothing => return BTreeSet::new(),
            Target::Device(name) => {
                return self
                    .devices
                    .contains_key(name)
                    .then(|| name.clone())
                    .into_iter()
                    .collect();
            }
            Target::Selector(selector) => selector,
        };
        let mut best: Option<(usize, Vec<&HashSet<String>>)> = None;
        for requirement in selector.requirements() {
            let Some(values) = self.by_label.get(requirement.key()) else {
                if is_positive(requirement.operator()) {
                    // A required key that no device carries: nothing can match.
                    return BTreeSet::new();
                }
                continue;
            };
            let sets: Vec<&HashSet<String>> = match requirement.operator() {
                Operator::Equals | Operator::In => requirement
                    .values()
                    .iter()
                    .filter_map(|v| values.get(v))
                    .collect(),
                Operator::Exists | Operator::GreaterThan | Operator::LessThan => {
                    values.values().collect()
                }
                Operator::NotEquals | Operator::NotIn | Operator::DoesNotExist => continue,
            };
            let cost = sets.iter().map(|s| s.len()).sum();
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, sets));
            }
        }
        let matches = |name: &String| {
            self.devices
                .get(name)
                .is_some_and(|labels| selector.matches(labels))
        };
        match best {
            Some((_, sets)) => sets
                .into_iter()
                .flatten()
                .filter(|d| matches(d))
                .cloned()
                .collect(),
            None => self
                .devices
                .keys()
                .filter(|d| matches(d))
                .cloned()
                .collect(),
        }
    }

    /// Sets the workloads a device should run, updating the per-workload placement.
    fn set_desired(
        &mut self,
        device: &str,
        wanted: BTreeSet<String>,
        namespace: &str,
        changes: &mut Changes,
    ) {
        let old = self.desired.remove(device).unwrap_or_default();
        for gone in old.difference(&wanted) {
            if let Some(devices) = self.placed.get_mut(gone) {
                devices.remove(device);
            }
            changes.workloads.insert(ObjectKey::new(namespace, gone));
        }
        for new in wanted.difference(&old) {
            self.placed
                .entry(new.clone())
                .or_default()
                .insert(device.to_owned());
            changes.workloads.insert(ObjectKey::new(namespace, new));
        }
        if !wanted.is_empty() {
            self.desired.insert(device.to_owned(), wanted);
        }
    }

    /// Sets the devices a workload targets, updating the per-device desired sets.
    fn set_placed(
        &mut self,
        workload: &str,
        devices: BTreeSet<String>,
        namespace: &str,
        changes: &mut Changes,
    ) {
        let old = self.placed.remove(workload).unwrap_or_default();
        for gone in old.difference(&devices) {
            if let Some(set) = self.desired.get_mut(gone) {
                set.remove(workload);
                if set.is_empty() {
                    self.desired.remove(gone);
                }
            }
            if self.needs_write(gone) {
                changes.devices.insert(ObjectKey::new(namespace, gone));
            }
        }
        for new in devices.difference(&old) {
            self.desired
                .entry(new.clone())
                .or_default()
                .insert(workload.to_owned());
            if self.needs_write(new) {
                changes.devices.insert(ObjectKey::new(namespace, new));
            }
        }
        if !devices.is_empty() {
            self.placed.insert(workload.to_owned(), devices);
        }
    }

    /// Sets (or, with `None`, forgets) what a device records.
    fn set_recorded(
        &mut self,
        device: &str,
        recorded: Option<Recorded>,
        namespace: &str,
        changes: &mut Changes,
    ) {
        let old = self.recorded.remove(device).unwrap_or_default();
        let new = recorded.clone().unwrap_or_default();
        let old_names: BTreeSet<&String> = old.all().collect();
        let new_names: BTreeSet<&String> = new.all().collect();
        for gone in old_names.difference(&new_names) {
            if let Some(devices) = self.recorded_by_workload.get_mut(*gone) {
                devices.remove(device);
                if devices.is_empty() {
                    self.recorded_by_workload.remove(*gone);
                }
            }
        }
        for added in new_names.difference(&old_names) {
            self.recorded_by_workload
                .entry((*added).clone())
                .or_default()
                .insert(device.to_owned());
        }
        if old != new {
            for name in old.status.symmetric_difference(&new.status) {
                changes.workloads.insert(ObjectKey::new(namespace, name));
            }
            for name in old.labels.symmetric_difference(&new.labels) {
                changes.workloads.insert(ObjectKey::new(namespace, name));
            }
        }
        if let Some(recorded) = recorded {
            self.recorded.insert(device.to_owned(), recorded);
        }
    }

    /// Whether a live device's recorded placement differs from the desired one.
    fn needs_write(&self, device: &str) -> bool {
        if !self.devices.contains_key(device) {
            return false;
        }
        let empty = BTreeSet::new();
        let desired = self.desired.get(device).unwrap_or(&empty);
        let recorded = self.recorded.get(device);
        let status = recorded.map(|r| &r.status).unwrap_or(&empty);
        let labels = recorded.map(|r| &r.labels).unwrap_or(&empty);
        let labelled: BTreeSet<String> = desired
            .iter()
            .filter(|w| workload_label(w).is_some())
            .cloned()
            .collect();
        status != desired || *labels != labelled
    }
}

/// Where a selector is filed in the workload index.
#[derive(Debug, PartialEq, Eq)]
enum Anchor {
    KeyValues(String, Vec<String>),
    Key(String),
    Universal,
}

fn is_positive(operator: Operator) -> bool {
    matches!(
        operator,
        Operator::Equals
            | Operator::In
            | Operator::Exists
            | Operator::GreaterThan
            | Operator::LessThan
    )
}

fn anchor_of(selector: &Selector) -> Anchor {
    let by_values = selector
        .requirements()
        .iter()
        .filter(|r| matches!(r.operator(), Operator::Equals | Operator::In))
        .min_by_key(|r| r.values().len());
    if let Some(r) = by_values {
        return Anchor::KeyValues(r.key().to_owned(), r.values().to_vec());
    }
    match selector
        .requirements()
        .iter()
        .find(|r| is_positive(r.operator()))
    {
        Some(r) => Anchor::Key(r.key().to_owned()),
        None => Anchor::Universal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("ns", name)
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn selector(text: &str) -> Target {
        Target::Selector(Selector::parse(text).unwrap())
    }

    fn names(set: &[&str]) -> BTreeSet<String> {
        set.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn selector_workloads_follow_device_labels() {
        let mut index = PlacementIndex::default();
        index.upsert_device(&key("d1"), labels(&[("app", "a")]), Recorded::default());
        index.upsert_device(&key("d2"), labels(&[("app", "b")]), Recorded::default());
        let changes = index.upsert_workload(&key("w"), selector("app=a"));
        assert_eq!(changes.devices, [key("d1")].into());
        assert_eq!(index.desired(&key("d1")), Some(names(&["w"])));
        assert_eq!(index.desired(&key("d2")), Some(names(&[])));

        // Relabel d1 away and d2 in.
        let changes = index.upsert_device(&key("d1"), labels(&[("app", "c")]), Recorded::default());
        assert!(
            changes.devices.is_empty(),
            "d1 records nothing and wants nothing"
        );
        assert_eq!(index.desired(&key("d1")), Some(names(&[])));
        let changes = index.upsert_device(&key("d2"), labels(&[("app", "a")]), Recorded::default());
        assert_eq!(changes.devices, [key("d2")].into());
        assert_eq!(
            index.progress(&key("w")),
            Some(Progress {
                targeted: 1,
                recorded: 0
            })
        );
    }

    #[test]
    fn recorded_state_decides_what_needs_a_write() {
        let mut index = PlacementIndex::default();
        index.upsert_workload(&key("w"), Target::Device("d1".into()));
        let changes = index.upsert_device(&key("d1"), labels(&[]), Recorded::default());
        assert_eq!(changes.devices, [key("d1")].into());
        let recorded = Recorded::from_labels(&labels(&[("workload/w", "true")]), names(&["w"]));
        let changes = index.upsert_device(
            &key("d1"),
            labels(&[("workload/w", "true")]),
            recorded.clone(),
        );
        assert!(changes.devices.is_empty());
        assert_eq!(changes.workloads, [key("w")].into());
        assert_eq!(index.recorded_count(&key("w")), 1);
        assert_eq!(
            index.progress(&key("w")),
            Some(Progress {
                targeted: 1,
                recorded: 1
            })
        );
        // The workload goes: the device must be rewritten, and it still records it.
        let changes = index.remove_workload(&key("w"));
        assert_eq!(changes.devices, [key("d1")].into());
        assert_eq!(index.recorded_count(&key("w")), 1);
        index.upsert_device(&key("d1"), labels(&[]), Recorded::default());
        assert_eq!(index.recorded_count(&key("w")), 0);
    }

    #[test]
    fn negative_and_empty_selectors_are_universal() {
        let mut index = PlacementIndex::default();
        index.upsert_workload(&key("not-legacy"), selector("!legacy"));
        index.upsert_workload(&key("all"), selector(""));
        index.upsert_workload(&key("none"), Target::Nothing);
        index.upsert_device(&key("d1"), labels(&[]), Recorded::default());
        index.upsert_device(
            &key("d2"),
            labels(&[("legacy", "yes")]),
            Recorded::default(),
        );
        assert_eq!(
            index.desired(&key("d1")),
            Some(names(&["all", "not-legacy"]))
        );
        assert_eq!(index.desired(&key("d2")), Some(names(&["all"])));
    }

    #[test]
    fn in_and_exists_requirements_and_missing_keys() {
        let mut index = PlacementIndex::default();
        index.upsert_device(&key("d1"), labels(&[("zone", "x")]), Recorded::default());
        index.upsert_device(
            &key("d2"),
            labels(&[("zone", "y"), ("gpu", "1")]),
            Recorded::default(),
        );
        index.upsert_workload(&key("in"), selector("zone in (x,y)"));
        index.upsert_workload(&key("gpu"), selector("gpu,zone!=x"));
        index.upsert_workload(&key("absent"), selector("nothere=1"));
        assert_eq!(index.desired(&key("d1")), Some(names(&["in"])));
        assert_eq!(index.desired(&key("d2")), Some(names(&["gpu", "in"])));
        // A device appearing later finds the anchored workloads.
        index.upsert_device(&key("d3"), labels(&[("nothere", "1")]), Recorded::default());
        assert_eq!(index.desired(&key("d3")), Some(names(&["absent"])));
    }

    #[test]
    fn removing_a_device_updates_workload_progress() {
        let mut index = PlacementIndex::default();
        index.upsert_workload(&key("w"), selector("a=1"));
        let recorded = Recorded {
            status: names(&["w"]),
            labels: names(&["w"]),
        };
        index.upsert_device(&key("d1"), labels(&[("a", "1")]), recorded);
        assert_eq!(index.recorded_count(&key("w")), 1);
        let changes = index.remove_device(&key("d1"));
        assert_eq!(changes.workloads, [key("w")].into());
        assert_eq!(index.recorded_count(&key("w")), 0);
        assert_eq!(index.desired(&key("d1")), None);
        assert_eq!(
            index.progress(&key("w")),
            Some(Progress {
                targeted: 0,
                recorded: 0
            })
        );
    }

    #[test]
    fn long_workload_names_need_no_label() {
        let long = "w".repeat(70);
        let mut index = PlacementIndex::default();
        index.upsert_workload(&key(&long), Target::Device("d".into()));
        let recorded = Recorded {
            status: names(&[&long]),
            labels: BTreeSet::new(),
        };
        let changes = index.upsert_device(&key("d"), labels(&[]), recorded);
        assert!(changes.devices.is_empty());
    }
}
