//! The controllers' view of the API: [`Objects`], a small async client over the six Flotta
//! kinds as JSON objects, implemented by the API server over its REST layer (so uid,
//! generation, resourceVersion, validation, finalizers and watch events are exactly what a
//! kubectl user gets) and by anything else that can honour the same contract.
//!
//! Objects are `serde_json::Value`s in the wire shape, with `metadata.resourceVersion`
//! stamped. Controllers decode what they read into the typed structs of
//! `flotta_api::v1alpha1` and write back with small, targeted edits through
//! [`Objects::modify`], which re-reads and retries on conflicts so that concurrent writers
//! (heartbeats, kubectl) never lose an update.
//!
//! Limits: every kind is namespaced, so every call takes a namespace; there is no
//! server-side apply, no field selector and no paging (controllers list a kind once per
//! (re)sync).

use std::fmt;

use async_trait::async_trait;
use flotta_api::selector::Selector;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::meta::ObjectKey;

/// A store revision, as in `metadata.resourceVersion`.
pub type Revision = u64;

/// The kinds the controllers read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `EdgeDevice`.
    EdgeDevice,
    /// `EdgeDeviceSet`.
    EdgeDeviceSet,
    /// `EdgeWorkload`.
    EdgeWorkload,
    /// `EdgeDeviceSignedRequest`.
    EdgeDeviceSignedRequest,
    /// `EdgeConfig`.
    EdgeConfig,
    /// `PlaybookExecution`.
    PlaybookExecution,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 6] = [
        Kind::EdgeDevice,
        Kind::EdgeDeviceSet,
        Kind::EdgeWorkload,
        Kind::EdgeDeviceSignedRequest,
        Kind::EdgeConfig,
        Kind::PlaybookExecution,
    ];

    /// The `kind` string, e.g. `EdgeDevice`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::EdgeDevice => "EdgeDevice",
            Kind::EdgeDeviceSet => "EdgeDeviceSet",
            Kind::EdgeWorkload => "EdgeWorkload",
            Kind::EdgeDeviceSignedRequest => "EdgeDeviceSignedRequest",
            Kind::EdgeConfig => "EdgeConfig",
            Kind::PlaybookExecution => "PlaybookExecution",
        }
    }

    /// The plural resource name used in API paths, e.g. `edgedevices`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::EdgeDevice => "edgedevices",
            Kind::EdgeDeviceSet => "edgedevicesets",
            Kind::EdgeWorkload => "edgeworkloads",
            Kind::EdgeDeviceSignedRequest => "edgedevicesignedrequests",
            Kind::EdgeConfig => "edgeconfigs",
            Kind::PlaybookExecution => "playbookexecutions",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which part of an object a write replaces: the main resource (metadata and spec; any
/// `status` in the body is ignored) or the `status` subresource (only `status` is taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource.
    Main,
    /// The `status` subresource.
    Status,
}

/// What happened to an object, as in a Kubernetes watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created (or is new to this watcher).
    Added,
    /// The object changed.
    Modified,
    /// The object is gone; the event carries its last state.
    Deleted,
}

/// One change of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// What happened.
    pub type_: EventType,
    /// The object after the change (its last state for [`EventType::Deleted`]), with
    /// `metadata.resourceVersion` set to [`WatchEvent::revision`].
    pub object: Value,
    /// The revision of the change.
    pub revision: Revision,
}

/// A stream of changes of one kind in revision order. It ends, or yields an error, when the
/// watch breaks; the watcher then resumes from the last revision it saw, or lists again
/// after [`ClientError::Expired`].
pub type EventStream = BoxStream<'static, Result<WatchEvent, ClientError>>;

/// A consistent list of one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listed {
    /// The objects, in namespace then name order.
    pub items: Vec<Value>,
    /// The revision the list was read at; watch from here to see every later change.
    pub revision: Revision,
}

/// The edit [`Objects::modify`] applies to the current object: `Ok(None)` means "nothing
/// to change", `Ok(Some(desired))` is the whole desired object (of [`Part`]), and an error
/// aborts the write. It may run several times when other writers get in between.
pub type Change<'a> = &'a mut (dyn FnMut(&Value) -> Result<Option<Value>, ClientError> + Send);

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Create of an object that exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A resourceVersion precondition failed, or retries on conflicts ran out.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The server rejected the object (validation, bad namespace or name).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The requested revision is no longer in the store's history: list again.
    #[error("expired: {0}")]
    Expired(String),
    /// The store failed or is unreachable; retrying later may help.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A stored object did not decode as its kind.
    #[error("cannot decode {kind} {key}: {message}")]
    Decode {
        /// The kind.
        kind: Kind,
        /// `namespace/name`.
        key: String,
        /// The decoder's complaint.
        message: String,
    },
}

impl ClientError {
    /// Whether the error means "the object does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound(_))
    }
}

/// The object API the controllers are written against (see the module documentation).
///
/// Every method is namespaced. Reads return objects with `metadata.resourceVersion`;
/// writes return the object as stored.
#[async_trait]
pub trait Objects: Send + Sync + 'static {
    /// Reads one object; `Ok(None)` when it does not exist.
    async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ClientError>;

    /// Lists the objects of `kind` in `namespace` (all namespaces when `None`) whose labels
    /// match `selector`.
    async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Listed, ClientError>;

    /// Creates an object in `namespace` (the server sets uid, generation, timestamps).
    async fn create(
        &self,
        kind: Kind,
        namespace: &str,
        object: Value,
    ) -> Result<Value, ClientError>;

    /// Replaces `part` of an object; `object` must carry the `metadata.resourceVersion` it
    /// was read at, otherwise [`ClientError::Conflict`].
    async fn update(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        part: Part,
        object: Value,
    ) -> Result<Value, ClientError>;

    /// Applies a JSON merge patch (RFC 7386) to `part` of an object. A
    /// `metadata.resourceVersion` in the patch is a precondition.
    async fn merge_patch(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        part: Part,
        patch: Value,
    ) -> Result<Value, ClientError>;

    /// Reads the object, lets `change` compute the desired `part`, and writes it with a
    /// compare-and-swap, re-reading and calling `change` again when another writer got in
    /// between. Nothing is written when `change` returns `Ok(None)` or the desired object
    /// equals the current one. Returns the object as stored afterwards.
    async fn modify(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        part: Part,
        change: Change<'_>,
    ) -> Result<Value, ClientError>;

    /// Deletes an object: at once without finalizers, otherwise by marking it for deletion.
    async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<(), ClientError>;

    /// Streams every change of `kind`, in all namespaces, with a revision greater than
    /// `after`. Fails (at once or as a stream item) with [`ClientError::Expired`] when the
    /// history no longer reaches back that far.
    async fn watch(&self, kind: Kind, after: Revision) -> Result<EventStream, ClientError>;

    /// [`Objects::modify`] of an object that may have been deleted meanwhile: `Ok(None)`
    /// when it does not exist (there is nothing left to change), otherwise the object as
    /// stored.
    async fn modify_if_present(
        &self,
        kind: Kind,
        key: &ObjectKey,
        part: Part,
        change: Change<'_>,
    ) -> Result<Option<Value>, ClientError> {
        match self
            .modify(kind, &key.namespace, &key.name, part, change)
            .await
        {
            Ok(object) => Ok(Some(object)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Objects::delete`] that treats "already gone" as success.
    async fn delete_if_present(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<(), ClientError> {
        match self.delete(kind, namespace, name).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
