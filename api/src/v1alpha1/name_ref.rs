//! `NameRef`: a reference by name to a ConfigMap or Secret in the object's own namespace.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_path::{FieldPath, require_non_empty};
use crate::validation::FieldError;

/// A reference to a ConfigMap or Secret, by name, in the namespace of the referring object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("required" = ["name"]))]
pub struct NameRef {
    /// Name of the referenced object. Required.
    #[serde(default)]
    #[schemars(transform = super::schema::drop_default)]
    pub name: String,
}

impl NameRef {
    /// A reference to `name`.
    pub fn new(name: impl Into<String>) -> Self {
        NameRef { name: name.into() }
    }

    pub(crate) fn validate(&self, path: &FieldPath, errors: &mut Vec<FieldError>) {
        require_non_empty(&self.name, &path.child("name"), errors);
    }
}
