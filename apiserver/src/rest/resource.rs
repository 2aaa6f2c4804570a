//! Resource definitions: everything the generic REST layer needs to know about a kind
//! (names, scope, subresources, schema, printer columns, validation). Registering a new
//! kind means adding a [`ResourceDef`] to the [`ResourceRegistry`]; nothing else in the
//! REST layer is kind-specific.

use std::sync::Arc;

use flotta_api::validation::FieldError;
use serde_json::Value;

/// Kind-specific behaviour the generic layer calls into.
pub trait Strategy: Send + Sync {
    /// Validates a whole object (after metadata defaulting) and returns it in canonical
    /// form: decoded into the typed struct and encoded again, so unknown fields are
    /// pruned as a CRD's structural schema would. Errors are reported per field.
    fn validate(&self, object: &Value) -> Result<Value, Vec<FieldError>>;

    /// The Table cells for one object, one per [`ResourceDef::columns`] entry after the
    /// implicit leading `Name` column and before the trailing `Age` column.
    fn cells(&self, object: &Value) -> Vec<Value>;
}

/// One printer column (`kubectl get`), as in a CRD's `additionalPrinterColumns`.
#[derive(Debug, Clone)]
pub struct Column {
    /// Header, e.g. `Phase`.
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: &'static str,
    /// Where the value comes from, shown by `kubectl explain`-like tools.
    pub description: &'static str,
    /// 0 = always shown, 1 = only with `-o wide`.
    pub priority: u8,
}

/// Merges volatile state that is not stored (such as a device's last heartbeat) into an
/// object as it is served: on get, list, watch and write responses.
pub type Presenter = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// A kind served by the REST layer.
#[derive(Clone)]
pub struct ResourceDef {
    /// API group; empty for the core group (`/api/v1`).
    pub group: &'static str,
    /// API version, e.g. `v1alpha1`.
    pub version: &'static str,
    /// Kind, e.g. `EdgeDevice`.
    pub kind: &'static str,
    /// Plural resource name used in paths, e.g. `edgedevices`.
    pub plural: &'static str,
    /// Singular name, e.g. `edgedevice`.
    pub singular: &'static str,
    /// Short names, e.g. `edsr`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `flotta`.
    pub categories: &'static [&'static str],
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether the `status` subresource exists (and the main endpoint ignores `.status`).
    pub has_status: bool,
    /// The OpenAPI v3 schema of the whole object (structural, self-contained; `metadata`
    /// is a plain object and is replaced by a reference to `ObjectMeta` when published).
    pub schema: Value,
    /// Printer columns between `Name` and `Age`.
    pub columns: Vec<Column>,
    /// Validation and table cells.
    pub strategy: Arc<dyn Strategy>,
    /// Read-time merge of volatile state, if the kind has any.
    pub presenter: Option<Presenter>,
}

impl ResourceDef {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `<Kind>List`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `plural.group` (or just `plural` for the core group), as used in error messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Applies the [`Presenter`], if any, to an object about to be served.
    pub fn present(&self, object: &mut Value) {
        if let Some(p) = &self.presenter {
            p(object);
        }
    }

    /// The store key prefix of every object of this kind, ending in `/`.
    pub fn key_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/registry/{group}/{}/", self.plural)
    }
}

/// All kinds the server serves.
#[derive(Clone, Default)]
pub struct ResourceRegistry {
    defs: Vec<Arc<ResourceDef>>,
}

impl ResourceRegistry {
    /// Adds a kind.
    pub fn register(&mut self, def: ResourceDef) {
        self.defs.push(Arc::new(def));
    }

    /// Sets the [`Presenter`] of the kind `group`/`plural`; false if there is no such kind.
    pub fn set_presenter(&mut self, group: &str, plural: &str, presenter: Presenter) -> bool {
        for def in &mut self.defs {
            if def.group == group && def.plural == plural {
                Arc::make_mut(def).presenter = Some(presenter);
                return true;
            }
        }
        false
    }

    /// Every registered kind, in registration order.
    pub fn all(&self) -> &[Arc<ResourceDef>] {
        &self.defs
    }

    /// The kind served at `group`/`version`/`plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    /// Distinct `(group, version)` pairs, in registration order.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for d in &self.defs {
            if !out.contains(&(d.group, d.version)) {
                out.push((d.group, d.version));
            }
        }
        out
    }
}
