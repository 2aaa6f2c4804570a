//! The core `v1` ConfigMap and Secret kinds served in standalone mode: through the REST
//! router (discovery, create with `stringData`, validation, Table columns, kubectl's
//! protobuf bodies) and through the real binary with the real kubectl
//! (`kubectl create configmap|secret`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use axum::body::Body;
use flotta_api::store::memory::MemoryStore;
use flotta_apiserver::resources;
use flotta_apiserver::rest::{self, RestState};
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

fn app() -> axum::Router {
    let store = std::sync::Arc::new(MemoryStore::new(1000));
    rest::router(RestState::new(store, resources::standalone()))
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    content_type: &str,
    accept: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .header("accept", accept)
        .body(Body::from(body))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

async fn json_call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Value,
) -> (StatusCode, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    call(
        app,
        method,
        uri,
        "application/json",
        "application/json",
        bytes,
    )
    .await
}

#[tokio::test]
async fn discovery_lists_core_v1_kinds() {
    let app = app();
    let (status, versions) = json_call(&app, "GET", "/api", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(versions["versions"], json!(["v1"]));
    let (status, list) = json_call(&app, "GET", "/api/v1", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        names.contains(&"configmaps") && names.contains(&"secrets"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.ends_with("/status")), "{names:?}");
    let (status, doc) = json_call(&app, "GET", "/openapi/v3/api/v1", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["components"]["schemas"]["io.k8s.api.core.v1.Secret"].is_object());
    assert!(doc["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"].is_object());
}

#[tokio::test]
async fn secret_string_data_is_stored_as_base64_data() {
    let app = app();
    let (status, created) = json_call(
        &app,
        "POST",
        "/api/v1/namespaces/default/secrets",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"user": "b2xk"},
            "stringData": {"user": "admin", "password": "s3cret"},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["data"],
        json!({"user": "YWRtaW4=", "password": "czNjcmV0"})
    );
    assert!(created.get("stringData").is_none());
    assert_eq!(created["type"], "Opaque");

    let (_, read) = json_call(
        &app,
        "GET",
        "/api/v1/namespaces/default/secrets/creds",
        Value::Null,
    )
    .await;
    assert_eq!(read["data"], created["data"]);
    assert!(read.get("stringData").is_none());

    // An update with stringData merges again.
    let request = Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/default/secrets/creds")
        .header("content-type", "application/merge-patch+json")
        .body(Body::from(
            json!({"stringData": {"token": "t"}}).to_string(),
        ))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let patched: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(patched["data"]["token"], "dA==");
    assert_eq!(patched["data"]["user"], "YWRtaW4=");
}

#[tokio::test]
async fn invalid_objects_get_422_with_field_causes() {
    let app = app();
    let (status, body) = json_call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "c"}, "data": {"bad key": "v"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["details"]["causes"][0]["field"], "data[bad key]");

    let (status, body) = json_call(
        &app,
        "POST",
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "r"}, "type": "kubernetes.io/dockerconfigjson", "data": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "data[.dockerconfigjson]"
    );
}

#[tokio::test]
async fn tables_show_type_and_data_count() {
    let app = app();
    let (status, _) = json_call(
        &app,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let (status, table) = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        table_accept,
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let headers: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(headers, ["Name", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][1], json!(3));

    let (status, _) = json_call(
        &app,
        "POST",
        "/api/v1/namespaces/default/secrets",
        json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, table) = call(
        &app,
        "GET",
        "/api/v1/namespaces/default/secrets",
        "application/json",
        table_accept,
        Vec::new(),
    )
    .await;
    let headers: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(headers, ["Name", "Type", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][1], "Opaque");
    assert_eq!(table["rows"][0]["cells"][2], json!(1));
}

#[tokio::test]
async fn kubectl_protobuf_bodies_are_decoded() {
    let app = app();
    // `kubectl create secret generic s --from-literal=k=v` (v1.32), byte for byte.
    let body = b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x1d\x0a\x11\x0a\x01s\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x06\x0a\x01k\x12\x01v\x1a\x00\x1a\x00\x22\x00";
    let (status, created) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/secrets?fieldManager=kubectl-create&fieldValidation=Strict",
        "application/vnd.kubernetes.protobuf",
        "application/vnd.kubernetes.protobuf,application/json",
        body.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"], json!({"k": "dg=="}));
    assert_eq!(created["metadata"]["namespace"], "default");

    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/secrets",
        "application/vnd.kubernetes.protobuf",
        "application/json",
        b"k8s\x00\x0a\x09\x0a\x02v1\x12\x03Pod".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// The real binary on free ports with an in-memory store; killed on drop.
struct Server {
    _child: tokio::process::Child,
    kubeconfig: std::path::PathBuf,
}

async fn start_binary(dir: &Path) -> Server {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotta-apiserver"))
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--secure-port",
            "0",
            "--metrics-port",
            "0",
            "--store",
            "memory",
            "--device-port",
            "off",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn flotta-apiserver");
    let ports = dir.join("ports.json");
    tokio::time::timeout(Duration::from_secs(60), async {
        while !ports.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server wrote ports.json");
    Server {
        _child: child,
        kubeconfig: dir.join("kubeconfig"),
    }
}

fn kubectl(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_creates_config_maps_and_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_binary(dir.path()).await;

    let (ok, out, err) = kubectl(&server, &["create", "configmap", "x", "--from-literal=a=b"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = kubectl(
        &server,
        &["create", "secret", "generic", "s", "--from-literal=k=v"],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = kubectl(
        &server,
        &[
            "create",
            "secret",
            "docker-registry",
            "reg",
            "--docker-server=registry.example.com",
            "--docker-username=u",
            "--docker-password=p",
        ],
    );
    assert!(ok, "{out}{err}");

    let (ok, data, err) = kubectl(
        &server,
        &["get", "configmap", "x", "-o", "jsonpath={.data.a}"],
    );
    assert!(ok, "{err}");
    assert_eq!(data, "b");
    let (ok, data, err) = kubectl(&server, &["get", "secret", "s", "-o", "jsonpath={.data.k}"]);
    assert!(ok, "{err}");
    assert_eq!(data, "dg==");
    let (ok, table, err) = kubectl(&server, &["get", "secrets"]);
    assert!(ok, "{err}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("reg ") && l.contains("kubernetes.io/dockerconfigjson")),
        "{table}"
    );

    let (ok, out, err) = kubectl(&server, &["delete", "configmap", "x"]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = kubectl(&server, &["get", "configmap", "x"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
}
