//! The kinds this server registers with the REST layer.

use crate::rest::resource::ResourceRegistry;

/// The six `management.project-flotta.io/v1alpha1` kinds.
pub fn flotta() -> ResourceRegistry {
    ResourceRegistry::default()
}
