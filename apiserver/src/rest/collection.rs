//! One kind's objects in the store, with the Kubernetes write semantics: create with
//! server-owned metadata, update and patch as a compare-and-swap loop with client
//! preconditions, the status subresource, finalizer-aware delete, and validation.
//! Reads and writes go through [`Store`]; HTTP lives in the handlers.

use flotta_api::store::{KeyValue, Revision, Store, StoreError};
use flotta_api::validation::{FieldError, FieldErrorKind};
use serde_json::{Value, json};

use super::error::{ApiError, Target};
use super::object;
use super::request::{FieldValidation, QueryOptions};
use super::resource::ResourceDef;

/// How many times a write is retried when another writer changed the object between our
/// read and our compare-and-swap (without a client precondition in play).
const MAX_RETRIES: usize = 16;

/// What a successful delete did.
#[derive(Debug)]
pub enum Deleted {
    /// The object is gone; this is its last state.
    Gone(Value),
    /// Finalizers remain: the object is marked for deletion and still exists.
    Pending(Value),
}

/// A write's result plus warnings for the `Warning` response header.
#[derive(Debug)]
pub struct Written {
    /// The object as stored (or as it would be, for dry runs).
    pub object: Value,
    /// Warnings such as unknown fields dropped.
    pub warnings: Vec<String>,
}

/// A kind's objects: `def` over `store`.
pub struct Collection<'a> {
    pub(super) store: &'a dyn Store,
    pub(super) def: &'a ResourceDef,
}

impl<'a> Collection<'a> {
    /// The collection of `def` in `store`.
    pub fn new(store: &'a dyn Store, def: &'a ResourceDef) -> Self {
        Collection { store, def }
    }

    /// The store key of an object.
    pub(super) fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) => format!("{}{ns}/{name}", self.def.key_prefix()),
            None => format!("{}{name}", self.def.key_prefix()),
        }
    }

    pub(super) fn target(&self, name: &str) -> Target {
        Target {
            group: self.def.group.to_string(),
            resource: self.def.plural.to_string(),
            name: name.to_string(),
        }
    }

    /// Decodes a stored value and stamps its `resourceVersion`.
    pub(super) fn decode(&self, kv: &KeyValue) -> Result<Value, ApiError> {
        decode_at(kv, kv.mod_revision)
    }

    fn invalid(&self, name: &str, causes: Vec<FieldError>) -> ApiError {
        ApiError::Invalid {
            qualified_kind: if self.def.group.is_empty() {
                self.def.kind.to_string()
            } else {
                format!("{}.{}", self.def.kind, self.def.group)
            },
            group: self.def.group.to_string(),
            kind: self.def.kind.to_string(),
            name: name.to_string(),
            causes,
        }
    }

    /// Reads one object.
    pub async fn get(&self, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let (_, object) = self
            .read_stored(&self.key(namespace, name), &self.target(name))
            .await?;
        Ok(object)
    }

    /// The stored entry at `key` and the object it decodes to (with its
    /// `resourceVersion`); `NotFound` about `target` when there is none.
    async fn read_stored(&self, key: &str, target: &Target) -> Result<(KeyValue, Value), ApiError> {
        let kv = self
            .store
            .get(key)
            .await
            .map_err(|e| ApiError::from_store(e, target))?
            .ok_or_else(|| ApiError::NotFound(target.clone()))?;
        let object = self.decode(&kv)?;
        Ok((kv, object))
    }

    /// Checks a body's `apiVersion`/`kind` and sets them.
    fn check_type(&self, obj: &mut Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest(
                "the request body must be a JSON or YAML object".into(),
            ));
        }
        let api_version = self.def.api_version();
        for (field, want) in [
            ("apiVersion", api_version.as_str()),
            ("kind", self.def.kind),
        ] {
            match obj.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s == want => {}
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "the {field} of the object ({other}) does not match the resource ({want})"
                    )));
                }
            }
        }
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(self.def.kind);
        Ok(())
    }

    /// Validates `obj` (metadata and kind rules) and returns its canonical form, applying
    /// `fieldValidation` to the fields the canonical form dropped.
    fn canonicalize(
        &self,
        obj: &Value,
        validation: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, ApiError> {
        let name = object::meta_str(obj, "name")
            .unwrap_or_default()
            .to_string();
        let mut errs = object::validate_metadata(obj);
        let canonical = match self.def.strategy.validate(obj) {
            Ok(c) => Some(c),
            Err(mut kind_errs) => {
                errs.append(&mut kind_errs);
                None
            }
        };
        if !errs.is_empty() {
            return Err(self.invalid(&name, errs));
        }
        let Some(canonical) = canonical else {
            return Err(self.invalid(&name, errs));
        };
        let unknown = object::unknown_fields(obj, &canonical);
        match validation {
            FieldValidation::Ignore => {}
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
            }
            FieldValidation::Strict if !unknown.is_empty() => {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            FieldValidation::Strict => {}
        }
        Ok(canonical)
    }

    /// Creates an object in `namespace` from a request body.
    pub async fn create(
        &self,
        namespace: Option<&str>,
        mut obj: Value,
        opts: &QueryOptions,
    ) -> Result<Written, ApiError> {
        self.check_type(&mut obj)?;
        let meta = object::meta_mut(&mut obj);
        match (namespace, meta.get("namespace").and_then(Value::as_str)) {
            (Some(url_ns), Some(body_ns)) if !body_ns.is_empty() && body_ns != url_ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => {}
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::BadRequest(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        match namespace {
            Some(ns) => {
                meta.insert("namespace".into(), json!(ns));
            }
            None => {
                meta.remove("namespace");
            }
        }
        let has_name = meta
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name
            && let Some(prefix) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
        {
            let name = object::generate_name(prefix);
            meta.insert("name".into(), json!(name));
        }
        meta.insert("uid".into(), json!(object::new_uid()));
        meta.insert("creationTimestamp".into(), json!(object::now()));
        meta.insert("generation".into(), json!(1));
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(field);
        }
        if self.def.has_status
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        let mut warnings = Vec::new();
        let canonical = self.canonicalize(&obj, opts.field_validation, &mut warnings)?;
        let name = object::meta_str(&canonical, "name")
            .unwrap_or_default()
            .to_string();
        if let Some(ns) = namespace
            && let Some(msg) = object::validate_namespace(ns)
        {
            return Err(self.invalid(
                &name,
                vec![FieldError::new(
                    FieldErrorKind::Invalid,
                    "metadata.namespace",
                    format!("Invalid value: {ns:?}: {msg}"),
                )],
            ));
        }
        let target = self.target(&name);
        let key = self.key(namespace, &name);
        if opts.dry_run {
            // A dry run still reports a name clash, like the real create would.
            if self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(e, &target))?
                .is_some()
            {
                return Err(ApiError::AlreadyExists(target));
            }
            let mut object = canonical;
            set_resource_version(&mut object, String::new());
            return Ok(Written { object, warnings });
        }
        let bytes = encode(&canonical)?;
        let rev = self
            .store
            .create(&key, bytes)
            .await
            .map_err(|e| ApiError::from_store(e, &target))?;
        let mut object = canonical;
        set_resource_version(&mut object, rev.to_string());
        Ok(Written { object, warnings })
    }

    /// The core of every update: read, let `change` build the desired object from the
    /// current one, apply the server's rules, then compare-and-swap; retried when another
    /// writer got in between. `change` returns errors such as failed preconditions.
    pub async fn update_with<F>(
        &self,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        opts: &QueryOptions,
        mut change: F,
    ) -> Result<Written, ApiError>
    where
        F: FnMut(&Value) -> Result<Value, ApiError> + Send,
    {
        let target = self.target(name);
        let key = self.key(namespace, name);
        for _ in 0..MAX_RETRIES {
            let (kv, current) = self.read_stored(&key, &target).await?;
            let mut desired = change(&current)?;
            self.check_type(&mut desired)?;
            if let Some(uid) = object::meta_str(&desired, "uid").filter(|u| !u.is_empty()) {
                check_uid_precondition(uid, &current, &target)?;
            }
            let mut warnings = Vec::new();
            let next = self.next_state(&current, desired, subresource, opts, &mut warnings)?;
            let mut unchanged = current.clone();
            object::meta_mut(&mut unchanged).remove("resourceVersion");
            if next == unchanged {
                return Ok(Written {
                    object: current,
                    warnings,
                });
            }
            let being_deleted = marked_for_deletion(&next);
            if opts.dry_run {
                let mut object = next;
                set_resource_version(&mut object, kv.mod_revision.to_string());
                return Ok(Written { object, warnings });
            }
            let result = if being_deleted && object::finalizers(&next).is_empty() {
                self.store.delete(&key, kv.mod_revision).await
            } else {
                self.store
                    .update(&key, encode(&next)?, kv.mod_revision)
                    .await
            };
            if let Some(rev) = landed(result, &target)? {
                let mut object = next;
                set_resource_version(&mut object, rev.to_string());
                return Ok(Written { object, warnings });
            }
        }
        Err(ApiError::optimistic_lock(target))
    }

    /// The object that results from writing `desired` over `current` through the main
    /// endpoint or `/status`.
    fn next_state(
        &self,
        current: &Value,
        mut desired: Value,
        subresource: Option<&str>,
        opts: &QueryOptions,
        warnings: &mut Vec<String>,
    ) -> Result<Value, ApiError> {
        let name = object::meta_str(current, "name")
            .unwrap_or_default()
            .to_string();
        if let Some(body_name) = object::meta_str(&desired, "name")
            && !body_name.is_empty()
            && body_name != name
        {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut next = if subresource == Some("status") {
            // /status takes only .status from the request.
            let mut next = current.clone();
            match desired.get("status") {
                Some(s) if !s.is_null() => next["status"] = s.clone(),
                _ => {
                    if let Some(o) = next.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            object::meta_mut(&mut next).remove("resourceVersion");
            next
        } else {
            if self.def.has_status {
                match current.get("status") {
                    Some(s) => desired["status"] = s.clone(),
                    None => {
                        if let Some(o) = desired.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            if marked_for_deletion(current) {
                let old = object::finalizers(current);
                let added: Vec<String> = object::finalizers(&desired)
                    .into_iter()
                    .filter(|f| !old.contains(f))
                    .collect();
                if !added.is_empty() {
                    return Err(self.invalid(
                        &name,
                        vec![FieldError::new(
                            FieldErrorKind::Forbidden,
                            "metadata.finalizers",
                            format!(
                                "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                            ),
                        )],
                    ));
                }
            }
            object::keep_server_fields(current, &mut desired);
            desired
        };
        let validation = if subresource == Some("status") {
            FieldValidation::Ignore
        } else {
            opts.field_validation
        };
        let mut canonical = self.canonicalize(&next, validation, warnings)?;
        let generation = current
            .get("metadata")
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let generation = if object::spec_changed(current, &canonical) {
            generation + 1
        } else {
            generation
        };
        object::meta_mut(&mut canonical).insert("generation".into(), json!(generation));
        next = canonical;
        Ok(next)
    }

    /// Replaces an object (`PUT`). The body must carry the `resourceVersion` it was read
    /// at; a different current one is a conflict.
    pub async fn update(
        &self,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        body: Value,
        opts: &QueryOptions,
    ) -> Result<Written, ApiError> {
        let Some(rv) = object::meta_str(&body, "resourceVersion")
            .filter(|rv| !rv.is_empty())
            .map(str::to_string)
        else {
            return Err(self.invalid(
                name,
                vec![FieldError::new(
                    FieldErrorKind::Invalid,
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            ));
        };
        let target = self.target(name);
        self.update_with(namespace, name, subresource, opts, |current| {
            if object::meta_str(current, "resourceVersion") != Some(rv.as_str()) {
                return Err(ApiError::optimistic_lock(target.clone()));
            }
            Ok(body.clone())
        })
        .await
    }

    /// Deletes an object: at once without finalizers, otherwise by marking it with a
    /// `deletionTimestamp` (the last finalizer's removal deletes it).
    pub async fn delete(
        &self,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let target = self.target(name);
        let key = self.key(namespace, name);
        for _ in 0..MAX_RETRIES {
            let (kv, current) = self.read_stored(&key, &target).await?;
            options.check_preconditions(&current, &target)?;
            let finalizers = object::finalizers(&current);
            if !finalizers.is_empty() {
                let marked = marked_for_deletion(&current);
                if marked || dry_run {
                    let mut object = current;
                    if !marked {
                        mark_for_deletion(&mut object);
                    }
                    return Ok(Deleted::Pending(object));
                }
                let mut next = current.clone();
                mark_for_deletion(&mut next);
                object::meta_mut(&mut next).remove("resourceVersion");
                let result = self
                    .store
                    .update(&key, encode(&next)?, kv.mod_revision)
                    .await;
                if let Some(rev) = landed(result, &target)? {
                    set_resource_version(&mut next, rev.to_string());
                    return Ok(Deleted::Pending(next));
                }
                continue;
            }
            if dry_run {
                return Ok(Deleted::Gone(current));
            }
            let result = self.store.delete(&key, kv.mod_revision).await;
            if landed(result, &target)?.is_some() {
                return Ok(Deleted::Gone(current));
            }
        }
        Err(ApiError::optimistic_lock(target))
    }
}

/// The parts of a `DeleteOptions` body the server honours.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun: ["All"]` in the body.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Parses an optional `DeleteOptions` body (which may lack `kind`/`apiVersion`).
    pub fn parse(body: Option<&Value>) -> Result<DeleteOptions, ApiError> {
        let Some(body) = body else {
            return Ok(DeleteOptions::default());
        };
        let mut o = DeleteOptions::default();
        if let Some(p) = body.get("preconditions") {
            o.uid = p.get("uid").and_then(Value::as_str).map(str::to_string);
            o.resource_version = p
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(dry) = body.get("dryRun").and_then(Value::as_array) {
            for d in dry {
                if d.as_str() != Some("All") {
                    return Err(ApiError::invalid_options(
                        "DeleteOptions",
                        vec![FieldError::new(
                            FieldErrorKind::NotSupported,
                            "dryRun",
                            format!("Unsupported value: {d}: supported values: \"All\""),
                        )],
                    ));
                }
                o.dry_run = true;
            }
        }
        if let Some(policy) = body.get("propagationPolicy").and_then(Value::as_str)
            && !matches!(policy, "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid_options(
                "DeleteOptions",
                vec![FieldError::new(
                    FieldErrorKind::NotSupported,
                    "propagationPolicy",
                    format!(
                        "Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                )],
            ));
        }
        Ok(o)
    }

    fn check_preconditions(&self, current: &Value, target: &Target) -> Result<(), ApiError> {
        if let Some(uid) = &self.uid {
            check_uid_precondition(uid, current, target)?;
        }
        if let Some(rv) = &self.resource_version {
            let current_rv = object::meta_str(current, "resourceVersion").unwrap_or_default();
            if rv != current_rv {
                return Err(ApiError::Conflict {
                    target: target.clone(),
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {current_rv}"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The outcome of one compare-and-swap write: the new revision when it landed, `None`
/// when another writer got in first (read again and retry), an error otherwise.
fn landed(
    result: Result<Revision, StoreError>,
    target: &Target,
) -> Result<Option<Revision>, ApiError> {
    match result {
        Ok(rev) => Ok(Some(rev)),
        Err(StoreError::Conflict { .. }) => Ok(None),
        Err(e) => Err(ApiError::from_store(e, target)),
    }
}

/// Sets `metadata.resourceVersion`, which the store keeps outside the object.
fn set_resource_version(obj: &mut Value, resource_version: String) {
    object::meta_mut(obj).insert("resourceVersion".into(), json!(resource_version));
}

/// Fails with a conflict unless `current` has the UID `uid` (a client's precondition).
fn check_uid_precondition(uid: &str, current: &Value, target: &Target) -> Result<(), ApiError> {
    let current_uid = object::meta_str(current, "uid").unwrap_or_default();
    if uid != current_uid {
        return Err(ApiError::Conflict {
            target: target.clone(),
            message: format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {current_uid}"
            ),
        });
    }
    Ok(())
}

/// Whether `obj` carries a `deletionTimestamp`, i.e. is being deleted.
fn marked_for_deletion(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
}

/// Marks `obj` as being deleted now, with no grace period.
fn mark_for_deletion(obj: &mut Value) {
    let meta = object::meta_mut(obj);
    meta.insert("deletionTimestamp".into(), json!(object::now()));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
}

/// Decodes stored bytes and sets `metadata.resourceVersion` to `revision`.
pub(crate) fn decode_at(kv: &KeyValue, revision: u64) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    if !obj.is_object() {
        return Err(ApiError::Internal(format!(
            "stored object {} is not a JSON object",
            kv.key
        )));
    }
    set_resource_version(&mut obj, revision.to_string());
    Ok(obj)
}

fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut obj = obj.clone();
    object::meta_mut(&mut obj).remove("resourceVersion");
    serde_json::to_vec(&obj).map_err(|e| ApiError::Internal(format!("encoding failed: {e}")))
}
