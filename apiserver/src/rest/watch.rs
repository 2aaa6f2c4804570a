//! `WATCH`: a chunked stream of newline-delimited JSON events (ADDED, MODIFIED, DELETED,
//! BOOKMARK, ERROR) for one kind, from a resourceVersion, filtered by selectors with
//! transitions (an object that stops matching is sent as DELETED, one that starts
//! matching as ADDED), with bookmarks, `timeoutSeconds`, and the streaming-list form
//! (`sendInitialEvents=true`) that ends its initial events with an annotated bookmark.
//!
//! Bookmarks carry the revision of the last event this watch delivered (or its start),
//! never a store-wide revision whose events might still be in flight.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use flotta_api::store::{Event, EventKind, Revision, Store, StoreError};
use flotta_api::validation::{FieldError, FieldErrorKind};
use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::collection::{Collection, decode_at};
use super::error::ApiError;
use super::filter::Filter;
use super::list::parse_resource_version;
use super::negotiate::Representation;
use super::render;
use super::request::{IncludeObject, QueryOptions};
use super::resource::ResourceDef;

/// How often an idle watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// Without `timeoutSeconds` a watch ends after 30–60 minutes, so clients rebalance.
const DEFAULT_TIMEOUT_SECS: (u64, u64) = (1800, 3600);

/// Everything a watch needs, owned so the stream can outlive the request handler.
pub struct WatchRequest {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The kind.
    pub def: Arc<ResourceDef>,
    /// Namespace, or all.
    pub namespace: Option<String>,
    /// Query options.
    pub opts: QueryOptions,
    /// Selectors.
    pub filter: Filter,
    /// Output representation.
    pub repr: Representation,
}

fn watch_option_error(field: &str, kind: FieldErrorKind, message: &str) -> ApiError {
    ApiError::invalid_options("ListOptions", vec![FieldError::new(kind, field, message)])
}

/// Validates the options, reads the initial state if asked, and starts the stream.
/// Errors before the first byte are ordinary HTTP errors; a too-old resourceVersion is
/// reported as an ERROR event, as Kubernetes does once a watch is accepted.
pub async fn start(req: WatchRequest) -> Result<Body, ApiError> {
    let opts = &req.opts;
    match (
        opts.send_initial_events,
        opts.resource_version_match.as_deref(),
    ) {
        (None, Some(_)) => {
            return Err(watch_option_error(
                "resourceVersionMatch",
                FieldErrorKind::Forbidden,
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        (Some(_), m) if m != Some("NotOlderThan") => {
            return Err(watch_option_error(
                "resourceVersionMatch",
                FieldErrorKind::NotSupported,
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        (Some(true), _) if !opts.allow_watch_bookmarks => {
            return Err(watch_option_error(
                "allowWatchBookmarks",
                FieldErrorKind::Forbidden,
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
        _ => {}
    }
    let collection = Collection::new(req.store.as_ref(), req.def.as_ref());
    let requested = match opts.resource_version.as_deref() {
        None | Some("0") => None,
        Some(rv) => Some(parse_resource_version(rv)?),
    };
    let initial_wanted = opts.send_initial_events.unwrap_or(requested.is_none());
    let current = collection.current_revision().await?;
    if let Some(rv) = requested.filter(|rv| *rv > current) {
        return Err(ApiError::TooLargeResourceVersion {
            requested: rv,
            current,
        });
    }
    let (initial, after) = if initial_wanted {
        let list_opts = QueryOptions::default();
        let page = collection
            .list(req.namespace.as_deref(), &list_opts, &req.filter)
            .await?;
        (page.items, page.revision)
    } else {
        (Vec::new(), requested.unwrap_or(current))
    };
    let prefix = collection.prefix(req.namespace.as_deref());
    let events = match req.store.watch(&prefix, after).await {
        Ok(events) => Some(events),
        Err(StoreError::Compacted { .. }) => None,
        Err(e) => return Err(ApiError::from_store(e, &collection.target(""))),
    };
    let compacted = req.store.compacted_revision().await.unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let timeout = match opts.timeout_seconds {
        Some(s) => Duration::from_secs(s),
        None => Duration::from_secs(
            rand::rng().random_range(DEFAULT_TIMEOUT_SECS.0..DEFAULT_TIMEOUT_SECS.1),
        ),
    };
    let end_bookmark = opts.send_initial_events == Some(true);
    let pump = Pump {
        def: req.def.clone(),
        filter: req.filter,
        repr: req.repr,
        include: opts.include_object,
        bookmarks: opts.allow_watch_bookmarks,
        tx,
        sent_columns: false,
        last_revision: after,
    };
    tokio::spawn(pump.run(initial, end_bookmark, events, timeout, requested, compacted));
    Ok(Body::from_stream(ReceiverStream::new(rx)))
}

/// Turns store events into encoded watch events for one client.
struct Pump {
    def: Arc<ResourceDef>,
    filter: Filter,
    repr: Representation,
    include: IncludeObject,
    bookmarks: bool,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    sent_columns: bool,
    last_revision: Revision,
}

impl Pump {
    async fn run(
        mut self,
        initial: Vec<Value>,
        end_bookmark: bool,
        events: Option<flotta_api::store::WatchStream>,
        timeout: Duration,
        requested: Option<Revision>,
        compacted: Revision,
    ) {
        let Some(mut events) = events else {
            let err = ApiError::Expired(format!(
                "too old resource version: {} ({})",
                requested.unwrap_or_default(),
                compacted + 1
            ));
            let _ = self.send("ERROR", err.to_status()).await;
            return;
        };
        for obj in initial {
            if !self.send_object("ADDED", obj).await {
                return;
            }
        }
        if end_bookmark && !self.send_bookmark(true).await {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = ticker.tick(), if self.bookmarks => {
                    if !self.send_bookmark(false).await {
                        return;
                    }
                }
                next = events.next() => match next {
                    Some(Ok(event)) => {
                        if !self.forward(event).await {
                            return;
                        }
                    }
                    // A lagging or closed store watch ends the stream; the client
                    // re-watches from the last revision it saw.
                    Some(Err(_)) | None => return,
                }
            }
        }
    }

    /// Sends one store event, applying selector transitions; false when the client left.
    async fn forward(&mut self, event: Event) -> bool {
        let revision = event.revision();
        self.last_revision = revision;
        let new = match event.kind {
            EventKind::Put => decode_at(&event.kv, revision).ok(),
            EventKind::Delete => None,
        };
        let old = match event.kind {
            EventKind::Put => event
                .prev
                .as_ref()
                .and_then(|p| decode_at(p, revision).ok()),
            EventKind::Delete => decode_at(&event.kv, revision).ok(),
        };
        let new_matches = new.as_ref().is_some_and(|o| self.filter.matches(o));
        let old_matches = old.as_ref().is_some_and(|o| self.filter.matches(o));
        match (old, new, old_matches, new_matches) {
            (_, Some(n), false, true) => self.send_object("ADDED", n).await,
            (_, Some(n), true, true) => self.send_object("MODIFIED", n).await,
            (Some(o), _, true, false) => self.send_object("DELETED", o).await,
            _ => true,
        }
    }

    async fn send_object(&mut self, kind: &str, mut obj: Value) -> bool {
        self.def.present(&mut obj);
        let object = match self.repr {
            Representation::Object => obj,
            Representation::Metadata => render::partial(&obj),
            Representation::Table => {
                let rv = self.last_revision;
                let table = render::table(
                    &self.def,
                    std::slice::from_ref(&obj),
                    self.include,
                    rv,
                    None,
                    !self.sent_columns,
                );
                self.sent_columns = true;
                table
            }
        };
        self.send(kind, object).await
    }

    async fn send_bookmark(&mut self, initial_events_end: bool) -> bool {
        let mut meta = json!({"resourceVersion": self.last_revision.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = match self.repr {
            Representation::Metadata => json!({
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            }),
            Representation::Object | Representation::Table => json!({
                "kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta,
            }),
        };
        self.send("BOOKMARK", object).await
    }

    async fn send(&self, kind: &str, object: Value) -> bool {
        let mut line = json!({"type": kind, "object": object}).to_string();
        line.push('\n');
        self.tx.send(Ok(Bytes::from(line))).await.is_ok()
    }
}
