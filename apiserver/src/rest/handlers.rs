//! HTTP glue: turns requests into calls on [`Collection`](super::collection::Collection),
//! discovery and OpenAPI, and their results into responses. No API semantics live here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::RestState;
use super::collection::{Collection, DeleteOptions, Deleted, Written};
use super::discovery;
use super::error::{ApiError, Target};
use super::filter::Filter;
use super::negotiate::{self, Representation};
use super::patch::Patch;
use super::render;
use super::request::{QueryOptions, ResourcePath};
use super::resource::ResourceDef;
use super::watch::{self, WatchRequest};

fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response();
    for w in warnings {
        let text = format!("299 - {}", json!(w));
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Serves a cached document with its ETag, answering `If-None-Match` with 304.
fn cached(headers: &HeaderMap, body: &Bytes, etag: &str, immutable: bool) -> Response {
    if header_str(headers, header::IF_NONE_MATCH) == Some(etag) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        body.clone(),
    )
        .into_response()
}

/// `GET /version`.
pub async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "32",
            "gitVersion": concat!("v", env!("CARGO_PKG_VERSION"), "-flotta"),
            "gitCommit": "",
            "gitTreeState": "",
            "buildDate": "",
            "goVersion": "",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }),
        &[],
    )
}

/// `GET /healthz`, `/livez`: the process answers.
pub async fn alive() -> &'static str {
    "ok"
}

/// `GET /readyz`: the store answers.
pub async fn ready(State(state): State<RestState>) -> Response {
    match state.store.ready().await {
        Ok(()) => "ok".into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[-]store failed: {e}\nreadyz check failed\n"),
        )
            .into_response(),
    }
}

/// `GET /api`.
pub async fn core_versions(State(state): State<RestState>) -> Response {
    json_response(
        StatusCode::OK,
        &discovery::api_versions(&state.registry),
        &[],
    )
}

/// `GET /apis`.
pub async fn groups(State(state): State<RestState>) -> Response {
    json_response(
        StatusCode::OK,
        &discovery::api_group_list(&state.registry),
        &[],
    )
}

/// `GET /apis/{group}`.
pub async fn group(State(state): State<RestState>, Path(group): Path<String>) -> Response {
    match discovery::api_group(&state.registry, &group) {
        Some(doc) => json_response(StatusCode::OK, &doc, &[]),
        None => not_found_path(),
    }
}

/// `GET /apis/{group}/{version}` and `GET /api/{version}`.
pub async fn resources(State(state): State<RestState>, uri: Uri) -> Response {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let doc = match segments.as_slice() {
        ["apis", g, v] => discovery::api_resource_list(&state.registry, g, v),
        ["api", v] => discovery::api_resource_list(&state.registry, "", v),
        _ => None,
    };
    match doc {
        Some(doc) => json_response(StatusCode::OK, &doc, &[]),
        None => not_found_path(),
    }
}

/// `GET /openapi/v2`.
pub async fn openapi_v2(State(state): State<RestState>, headers: HeaderMap) -> Response {
    // kubectl asks for the protobuf form first; answering JSON to it breaks its decoder.
    if let Err(e) = negotiate::representation(header_str(&headers, header::ACCEPT)) {
        return e.into_response();
    }
    let (body, etag) = state.openapi.v2();
    cached(&headers, body, etag, false)
}

/// `GET /openapi/v3`.
pub async fn openapi_v3_root(State(state): State<RestState>, headers: HeaderMap) -> Response {
    let (body, etag) = state.openapi.v3_root();
    cached(&headers, body, etag, false)
}

/// `GET /openapi/v3/{path}`: one group-version document.
pub async fn openapi_v3_group_version(
    State(state): State<RestState>,
    Path(path): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = path.trim_matches('/');
    match state.openapi.v3_group_version(path) {
        Some((body, etag)) => {
            let immutable = params.get("hash").map(String::as_str) == state.openapi.v3_hash(path);
            cached(&headers, body, etag, immutable)
        }
        None => not_found_path(),
    }
}

fn not_found_path() -> Response {
    let err = ApiError::NotFound(Target::default());
    let mut status = err.to_status();
    status["message"] = json!("the server could not find the requested resource");
    json_response(StatusCode::NOT_FOUND, &status, &[])
}

/// Every resource path: `/apis/<g>/<v>/...` and `/api/v1/...`.
pub async fn resource(
    State(state): State<RestState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(path) = ResourcePath::parse(uri.path()) else {
        return not_found_path();
    };
    let Some(def) = state
        .registry
        .find(&path.group, &path.version, &path.resource)
        .cloned()
    else {
        return not_found_path();
    };
    match serve(&state, def, &path, method, &headers, &params, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn serve(
    state: &RestState,
    def: Arc<ResourceDef>,
    path: &ResourcePath,
    method: Method,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    if def.namespaced != path.namespace.is_some() && path.name.is_some() {
        return Ok(not_found_path());
    }
    match path.subresource.as_deref() {
        None => {}
        Some("status") if def.has_status => {}
        Some(_) => return Ok(not_found_path()),
    }
    let opts = QueryOptions::parse(params)?;
    let repr = negotiate::representation(header_str(headers, header::ACCEPT))?;
    let ns = path.namespace.as_deref();
    let collection = Collection::new(state.store.as_ref(), def.as_ref());
    let render_one = |obj: Value| render::object(&def, obj, repr, opts.include_object);
    let written =
        |code: StatusCode, w: Written| json_response(code, &render_one(w.object), &w.warnings);
    match (&method, path.name.as_deref()) {
        (&Method::GET, None) if opts.watch || path.watch_prefix => {
            let filter = Filter::from_options(&opts)?;
            watch_response(state, def.clone(), ns, opts, filter, repr).await
        }
        (&Method::GET, Some(name)) if opts.watch || path.watch_prefix => {
            let filter = Filter::from_options(&opts)?.with_name(name)?;
            watch_response(state, def.clone(), ns, opts, filter, repr).await
        }
        (&Method::GET, None) => {
            let filter = Filter::from_options(&opts)?;
            let page = collection.list(ns, &opts, &filter).await?;
            let body = render::list(
                &def,
                page.items,
                page.revision,
                page.continue_token.as_deref(),
                repr,
                opts.include_object,
            );
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        (&Method::GET, Some(name)) => {
            let obj = collection.get(ns, name).await?;
            Ok(json_response(StatusCode::OK, &render_one(obj), &[]))
        }
        (&Method::POST, None) => {
            if def.namespaced && ns.is_none() {
                return Err(ApiError::MethodNotAllowed);
            }
            let obj = negotiate::decode_body(header_str(headers, header::CONTENT_TYPE), body)?;
            let w = collection.create(ns, obj, &opts).await?;
            Ok(written(StatusCode::CREATED, w))
        }
        (&Method::PUT, Some(name)) => {
            let obj = negotiate::decode_body(header_str(headers, header::CONTENT_TYPE), body)?;
            let w = collection
                .update(ns, name, path.subresource.as_deref(), obj, &opts)
                .await?;
            Ok(written(StatusCode::OK, w))
        }
        (&Method::PATCH, Some(name)) => {
            let patch = Patch::decode(header_str(headers, header::CONTENT_TYPE), body)?;
            let w = collection
                .patch(ns, name, path.subresource.as_deref(), &patch, &opts)
                .await?;
            Ok(written(StatusCode::OK, w))
        }
        (&Method::DELETE, Some(name)) if path.subresource.is_none() => {
            let options = if body.is_empty() {
                DeleteOptions::default()
            } else {
                let v = negotiate::decode_body(header_str(headers, header::CONTENT_TYPE), body)?;
                DeleteOptions::parse(Some(&v))?
            };
            let dry_run = opts.dry_run || options.dry_run;
            match collection.delete(ns, name, &options, dry_run).await? {
                Deleted::Gone(obj) => Ok(json_response(
                    StatusCode::OK,
                    &render::delete_success(&def, &obj),
                    &[],
                )),
                Deleted::Pending(obj) => Ok(json_response(StatusCode::OK, &render_one(obj), &[])),
            }
        }
        (&Method::DELETE, None) => {
            let options = if body.is_empty() {
                DeleteOptions::default()
            } else {
                let v = negotiate::decode_body(header_str(headers, header::CONTENT_TYPE), body)?;
                DeleteOptions::parse(Some(&v))?
            };
            let filter = Filter::from_options(&opts)?;
            let page = collection
                .delete_collection(ns, &filter, opts.dry_run || options.dry_run)
                .await?;
            let body = render::list(
                &def,
                page.items,
                page.revision,
                None,
                repr,
                opts.include_object,
            );
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

async fn watch_response(
    state: &RestState,
    def: Arc<ResourceDef>,
    namespace: Option<&str>,
    opts: QueryOptions,
    filter: Filter,
    repr: Representation,
) -> Result<Response, ApiError> {
    let body: Body = watch::start(WatchRequest {
        store: state.store.clone(),
        def,
        namespace: namespace.map(str::to_string),
        opts,
        filter,
        repr,
    })
    .await?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response())
}
