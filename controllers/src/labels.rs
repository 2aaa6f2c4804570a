//! The labels, finalizers and fixed names Flotta puts on objects (`flotta-inventory.md`
//! §2.7), shared by the controllers and by whoever reads what they write.
//!
//! Limits: Flotta's `selector/*` reverse-index labels on EdgeWorkloads are not written; the
//! placement controller keeps that index in memory instead (they also produced invalid label
//! keys for selector keys with a `/`).

pub use flotta_api::v1alpha1::{EDSR_LABEL_NAME, EDSR_LABEL_VALUE, MEMBER_OF_LABEL};

/// Prefix of the EdgeDevice labels `workload/<workload name>=true` that record placement.
pub const WORKLOAD_LABEL_PREFIX: &str = "workload/";

/// Value of a `workload/<name>` label.
pub const WORKLOAD_LABEL_VALUE: &str = "true";

/// EdgeDevice label naming the EdgeConfig whose playbooks the device should run.
pub const CONFIG_LABEL: &str = "config/device-by-config";

/// Finalizer on EdgeDevices: the device controller cleans up (signed request, playbook
/// executions) before the device goes away.
pub const DEVICE_FINALIZER: &str = "device-finalizer";

/// Finalizer on EdgeWorkloads: the placement controller removes the workload from every
/// device before the workload goes away.
pub const WORKLOAD_FINALIZER: &str = "yggdrasil-device-reference-finalizer";

/// Namespace where devices' enrolment requests (EdgeDeviceSignedRequests) are created,
/// whatever their target namespace.
pub const INITIAL_NAMESPACE: &str = "default";

/// The `workload/<name>` label key of a workload, if `name` can form a valid label key
/// (names longer than 63 characters cannot; their placement is only in
/// `status.workloads`).
pub fn workload_label(name: &str) -> Option<String> {
    let key = format!("{WORKLOAD_LABEL_PREFIX}{name}");
    flotta_api::selector::validate_label_key(&key)
        .is_ok()
        .then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_labels_only_for_names_that_fit() {
        assert_eq!(workload_label("web").as_deref(), Some("workload/web"));
        assert_eq!(workload_label(&"a".repeat(64)), None);
        assert_eq!(workload_label("a.b-c").as_deref(), Some("workload/a.b-c"));
    }
}
