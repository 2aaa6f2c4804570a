//! The Kubernetes REST layer: discovery, OpenAPI, CRUD, patch, watch and Table output for
//! every kind in a [`resource::ResourceRegistry`], over any [`flotta_api::store::Store`].

pub mod collection;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod handlers;
pub mod list;
pub mod negotiate;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod render;
pub mod request;
pub mod resource;
pub mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use flotta_api::store::Store;

/// Largest request body accepted (the Kubernetes limit).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What every REST handler shares.
#[derive(Clone)]
pub struct RestState {
    /// The object store.
    pub store: Arc<dyn Store>,
    /// The kinds served.
    pub registry: Arc<resource::ResourceRegistry>,
    /// OpenAPI documents, built once from the registry.
    pub openapi: Arc<openapi::OpenApiDocs>,
}

impl RestState {
    /// Builds the shared state.
    pub fn new(store: Arc<dyn Store>, registry: resource::ResourceRegistry) -> Self {
        let openapi = Arc::new(openapi::OpenApiDocs::build(&registry));
        RestState {
            store,
            registry: Arc::new(registry),
            openapi,
        }
    }
}

/// The router for every Kubernetes API path (`/api`, `/apis/...`, `/openapi/...`,
/// `/version`, health). Authentication is layered on by the caller.
pub fn router(state: RestState) -> Router {
    use handlers as h;
    Router::new()
        .route("/version", get(h::version))
        .route("/healthz", get(h::alive))
        .route("/livez", get(h::alive))
        .route("/readyz", get(h::ready))
        .route("/api", get(h::core_versions))
        .route("/api/{version}", get(h::resources))
        .route("/apis", get(h::groups))
        .route("/apis/{group}", get(h::group))
        .route("/apis/{group}/{version}", get(h::resources))
        .route("/openapi/v2", get(h::openapi_v2))
        .route("/openapi/v3", get(h::openapi_v3_root))
        .route("/openapi/v3/{*path}", get(h::openapi_v3_group_version))
        .fallback(h::resource)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
