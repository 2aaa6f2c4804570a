//! Flotta's controllers, written against the [`flotta_api::store::Store`] trait.
//!
//! Not built yet: signed-request approval, workload placement, device-set membership,
//! device deletion and EdgeConfig playbooks arrive with the device issue.
