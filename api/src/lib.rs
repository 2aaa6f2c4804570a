//! Flotta's shared vocabulary, with no I/O of its own: the `management.project-flotta.io`
//! resource types, label selectors, and the [`store::Store`] trait that every storage
//! backend implements.

pub mod edge;
pub mod selector;
pub mod store;
pub mod v1alpha1;
pub mod validation;
