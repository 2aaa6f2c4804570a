//! Runs Flotta's controllers (`flotta_controllers`) in this process, against the same
//! store and with the same object semantics as the Kubernetes API: [`StoreObjects`]
//! implements the controllers' [`Objects`] client over the REST layer's
//! [`Collection`]s (so uid, generation, resourceVersion, validation, finalizers and watch
//! events are exactly what kubectl sees) and over the store's watch, decoded as the REST
//! watch decodes it.
//!
//! Limits: controller writes are not authorised (they are the server's own); presenters
//! (volatile state such as liveness) are not applied to what the controllers read.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use flotta_api::selector::Selector;
use flotta_api::store::{Event, EventKind, Revision, Store, StoreError};
use flotta_controllers::{
    Change, ClientError, Config, Controllers, EventStream, EventType, Kind, Listed, Objects, Part,
    WatchEvent,
};
use futures::StreamExt;
use serde_json::Value;

use crate::election::{Election, Leadership};
use crate::rest::collection::{Collection, DeleteOptions, decode_at};
use crate::rest::error::ApiError;
use crate::rest::filter::Filter;
use crate::rest::patch::Patch;
use crate::rest::request::QueryOptions;
use crate::rest::resource::{ResourceDef, ResourceRegistry};

/// The `fieldManager` of the controllers' writes.
const FIELD_MANAGER: &str = "flotta-controllers";

/// Starts the controllers over `store`, using the kinds `registry` defines, on the
/// current tokio runtime. Stop them with [`Controllers::shutdown`].
pub fn start(store: Arc<dyn Store>, registry: &ResourceRegistry, config: Config) -> Controllers {
    flotta_controllers::start(Arc::new(StoreObjects::new(store, registry)), config)
}

/// Runs the controllers until `shutdown` completes, then stops them: all the time, or,
/// with an `election` (a store shared by several replicas), only while this replica leads.
/// `running` is true while they run here.
pub async fn run(
    store: Arc<dyn Store>,
    registry: &ResourceRegistry,
    config: Config,
    election: Option<Election>,
    running: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
) {
    let objects: Arc<dyn Objects> = Arc::new(StoreObjects::new(store, registry));
    let Some(election) = election else {
        let controllers = flotta_controllers::start(objects, config);
        running.store(true, Ordering::SeqCst);
        shutdown.await;
        controllers.shutdown().await;
        running.store(false, Ordering::SeqCst);
        return;
    };
    let lead = move |mut leading: tokio::sync::watch::Receiver<Leadership>| {
        let controllers = flotta_controllers::start(objects.clone(), config.clone());
        let running = running.clone();
        running.store(true, Ordering::SeqCst);
        async move {
            while *leading.borrow_and_update() == Leadership::Leading {
                if leading.changed().await.is_err() {
                    break;
                }
            }
            // A lost lease must stop the writes before the next leader can start.
            let end = *leading.borrow();
            match end {
                Leadership::Stopping => controllers.shutdown().await,
                Leadership::Leading | Leadership::Lost => controllers.abort().await,
            }
            running.store(false, Ordering::SeqCst);
        }
    };
    election.run(lead, shutdown).await;
}

/// The controllers' [`Objects`] client over a [`Store`] and the REST layer.
pub struct StoreObjects {
    store: Arc<dyn Store>,
    defs: HashMap<Kind, Arc<ResourceDef>>,
}

impl StoreObjects {
    /// A client for the Flotta kinds `registry` defines (a kind it lacks answers every call
    /// with [`ClientError::Unavailable`]).
    pub fn new(store: Arc<dyn Store>, registry: &ResourceRegistry) -> Self {
        let defs = Kind::ALL
            .into_iter()
            .filter_map(|kind| {
                registry
                    .find(
                        flotta_api::v1alpha1::GROUP,
                        flotta_api::v1alpha1::VERSION,
                        kind.plural(),
                    )
                    .map(|def| (kind, def.clone()))
            })
            .collect();
        StoreObjects { store, defs }
    }

    fn def(&self, kind: Kind) -> Result<&ResourceDef, ClientError> {
        self.defs
            .get(&kind)
            .map(AsRef::as_ref)
            .ok_or_else(|| ClientError::Unavailable(format!("{kind} is not served")))
    }

    fn collection(&self, kind: Kind) -> Result<Collection<'_>, ClientError> {
        Ok(Collection::new(self.store.as_ref(), self.def(kind)?))
    }
}

fn write_options() -> QueryOptions {
    QueryOptions {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..QueryOptions::default()
    }
}

fn subresource(part: Part) -> Option<&'static str> {
    match part {
        Part::Main => None,
        Part::Status => Some("status"),
    }
}

/// The one mapping from the REST layer's errors to the controllers'.
fn client_error(error: ApiError) -> ClientError {
    let message = error.to_string();
    match error {
        ApiError::NotFound(_) => ClientError::NotFound(message),
        ApiError::AlreadyExists(_) => ClientError::AlreadyExists(message),
        ApiError::Conflict { .. } => ClientError::Conflict(message),
        ApiError::Invalid { .. }
        | ApiError::BadRequest(_)
        | ApiError::TooLarge(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::MethodNotAllowed
        | ApiError::NotAcceptable(_) => ClientError::Invalid(message),
        ApiError::Expired(_) | ApiError::ContinueExpired { .. } => ClientError::Expired(message),
        ApiError::TooLargeResourceVersion { .. }
        | ApiError::Unauthorized
        | ApiError::Internal(_) => ClientError::Unavailable(message),
    }
}

fn store_error(error: StoreError) -> ClientError {
    match error {
        StoreError::Compacted { .. } => ClientError::Expired(error.to_string()),
        StoreError::TooLarge(_) => ClientError::Invalid(error.to_string()),
        other => ClientError::Unavailable(other.to_string()),
    }
}

/// A store event as a watch event; `None` for a value that does not decode.
fn watch_event(event: &Event) -> Option<WatchEvent> {
    let revision = event.revision();
    let type_ = match (event.kind, &event.prev) {
        (EventKind::Put, None) => EventType::Added,
        (EventKind::Put, Some(_)) => EventType::Modified,
        (EventKind::Delete, _) => EventType::Deleted,
    };
    match decode_at(&event.kv, revision) {
        Ok(object) => Some(WatchEvent {
            type_,
            object,
            revision,
        }),
        Err(error) => {
            tracing::warn!(key = %event.kv.key, %error, "controllers: skipping an undecodable object");
            None
        }
    }
}

#[async_trait]
impl Objects for StoreObjects {
    async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ClientError> {
        match self.collection(kind)?.get(Some(namespace), name).await {
            Ok(object) => Ok(Some(object)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(error) => Err(client_error(error)),
        }
    }

    async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Listed, ClientError> {
        let opts = QueryOptions {
            label_selector: (!selector.is_empty()).then(|| selector.to_string()),
            ..QueryOptions::default()
        };
        let filter = Filter::from_options(&opts).map_err(client_error)?;
        let page = self
            .collection(kind)?
            .list(namespace, &QueryOptions::default(), &filter)
            .await
            .map_err(client_error)?;
        Ok(Listed {
            items: page.items,
            revision: page.revision,
        })
    }

    async fn create(
        &self,
        kind: Kind,
        namespace: &str,
        object: Value,
    ) -> Result<Value, ClientError> {
        self.collection(kind)?
            .create(Some(namespace), object, &write_options())
            .await
            .map(|written| written.object)
            .map_err(client_error)
    }

    async fn update(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        part: Part,
        object: Value,
    ) -> Result<Value, ClientError> {
        self.collection(kind)?
            .update(
                Some(namespace),
                name,
                subresource(part),
                object,
                &write_options(),
            )
            .await
            .map(|written| written.object)
            .map_err(client_error)
    }

    async fn merge_patch(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        part: Part,
        patch: Value,
    ) -> Result<Value, ClientError> {
        self.collection(kind)?
            .patch(
                Some(namespace),
                name,
                subresource(part),
                &Patch::Merge(patch),
                &write_options(),
            )
            .await
            .map(|written| written.object)
            .map_err(client_error)
    }

    async fn modify(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        part: Part,
        change: Change<'_>,
    ) -> Result<Value, ClientError> {
        let collection = self.collection(kind)?;
        let mut aborted: Option<ClientError> = None;
        let result = collection
            .update_with(
                Some(namespace),
                name,
                subresource(part),
                &write_options(),
                |current| match change(current) {
                    Ok(Some(desired)) => Ok(desired),
                    // The current object as the desired one: the REST layer writes nothing.
                    Ok(None) => Ok(current.clone()),
                    Err(error) => {
                        aborted = Some(error);
                        Err(ApiError::BadRequest("the change was aborted".to_owned()))
                    }
                },
            )
            .await;
        if let Some(error) = aborted {
            return Err(error);
        }
        result.map(|written| written.object).map_err(client_error)
    }

    async fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Result<(), ClientError> {
        self.collection(kind)?
            .delete(Some(namespace), name, &DeleteOptions::default(), false)
            .await
            .map(drop)
            .map_err(client_error)
    }

    async fn watch(&self, kind: Kind, after: Revision) -> Result<EventStream, ClientError> {
        let prefix = self.def(kind)?.key_prefix();
        let events = self
            .store
            .watch(&prefix, after)
            .await
            .map_err(store_error)?;
        Ok(events
            .filter_map(|item| {
                futures::future::ready(match item {
                    Ok(event) => watch_event(&event).map(Ok),
                    Err(error) => Some(Err(store_error(error))),
                })
            })
            .boxed())
    }
}
