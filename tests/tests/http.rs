//! Raw HTTPS against a real `flotta-apiserver`: authentication, Status errors, patch media
//! types, dryRun, paging snapshots, watch resume and expiry (410), streaming lists, Table and
//! PartialObjectMetadata content negotiation. Each test starts its own server.
//!
//! EdgeDeviceSets are used where exact event and revision sequences matter, because no
//! controller writes to them.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow, ensure};
use flotta_e2e::{
    API_VERSION, ApiClient, DEFAULT_TIMEOUT, GROUP, Server, WatchStream, collection_path,
    json_response, object_path,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SETS: &str = "edgedevicesets";
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const METADATA_LIST_ACCEPT: &str =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

fn set(name: &str) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "EdgeDeviceSet",
        "metadata": {"name": name, "labels": {"fleet": "test"}},
        "spec": {"heartbeat": {"periodSeconds": 60}}
    })
}

fn device(name: &str) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "EdgeDevice",
        "metadata": {"name": name},
        "spec": {"heartbeat": {"periodSeconds": 30}}
    })
}

fn rv_of(object: &Value) -> Result<u64> {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .ok_or_else(|| anyhow!("no numeric metadata.resourceVersion in {object}"))
}

async fn create(api: &ApiClient, plural: &str, body: Value) -> Result<Value> {
    let (status, object) = api.post(&collection_path("default", plural), &body).await?;
    ensure!(
        status == StatusCode::CREATED,
        "create answered {status}: {object}"
    );
    Ok(object)
}

/// Merge-patches a label on a set, returning the new object.
async fn relabel(api: &ApiClient, name: &str, value: &str) -> Result<Value> {
    let patch = json!({"metadata": {"labels": {"step": value}}}).to_string();
    let (status, object) = api
        .patch(
            &object_path("default", SETS, name),
            "application/merge-patch+json",
            &patch,
        )
        .await?;
    ensure!(
        status == StatusCode::OK,
        "merge patch answered {status}: {object}"
    );
    Ok(object)
}

fn assert_status(body: &Value, code: u16) {
    assert_eq!(body["kind"], "Status", "not a Status: {body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].is_string(),
        "Status without message: {body}"
    );
}

fn names_of(list: &Value) -> Result<Vec<String>> {
    list["items"]
        .as_array()
        .ok_or_else(|| anyhow!("no items array in {list}"))?
        .iter()
        .map(|item| {
            item["metadata"]["name"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("item without name: {item}"))
        })
        .collect()
}

#[tokio::test]
async fn request_without_client_certificate_gets_401_status() -> Result<()> {
    let server = Server::start()?;
    let anonymous = ApiClient::new(server.http_client_without_cert()?, server.base_url());
    let (status, body) = anonymous
        .get(&collection_path("default", "edgedevices"))
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_status(&body, 401);
    assert_eq!(body["reason"], "Unauthorized", "{body}");

    let (status, body) = server
        .api()?
        .get(&collection_path("default", "edgedevices"))
        .await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "the admin certificate is refused: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_resource_and_object_get_404_status() -> Result<()> {
    let server = Server::start()?;
    let api = server.api()?;
    let (status, body) = api.get(&collection_path("default", "widgets")).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_status(&body, 404);

    let (status, body) = api
        .get(&object_path("default", "edgedevices", "nope"))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_status(&body, 404);
    assert_eq!(body["reason"], "NotFound", "{body}");
    assert_eq!(body["details"]["name"], "nope", "{body}");
    assert_eq!(body["details"]["group"], GROUP, "{body}");
    Ok(())
}

#[tokio::test]
async fn strategic_merge_patch_gets_415() -> Result<()> {
    let server = Server::start()?;
    let api = server.api()?;
    create(&api, "edgedevices", device("dev1")).await?;
    let (status, body) = api
        .patch(
            &object_path("default", "edgedevices", "dev1"),
            "application/strategic-merge-patch+json",
            r#"{"metadata":{"labels":{"a":"b"}}}"#,
        )
        .await?;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_status(&body, 415);
    assert_eq!(body["reason"], "UnsupportedMediaType", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("application/merge-patch+json")
            && message.contains("application/json-patch+json"),
        "message does not list the accepted patch types: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn dry_run_create_stores_nothing() -> Result<()> {
    let server = Server::start()?;
    let api = server.api()?;
    let path = format!("{}?dryRun=All", collection_path("default", SETS));
    let (status, object) = api.post(&path, &set("ghost")).await?;
    assert_eq!(status, StatusCode::CREATED, "{object}");
    assert_eq!(object["metadata"]["name"], "ghost", "{object}");
    assert!(
        object["metadata"]["resourceVersion"]
            .as_str()
            .is_none_or(str::is_empty),
        "dry-run create returned a resourceVersion: {object}"
    );

    let (status, body) = api.get(&object_path("default", SETS, "ghost")).await?;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "dry-run create was stored: {body}"
    );
    let (status, list) = api.get(&collection_path("default", SETS)).await?;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(names_of(&list)?, Vec::<String>::new(), "{list}");

    // A real create with the same name afterwards works.
    create(&api, SETS, set("ghost")).await?;
    Ok(())
}

#[tokio::test]
async fn list_pages_are_one_snapshot() -> Result<()> {
    let server = Server::start()?;
    let api = server.api()?;
    let mut expected = BTreeSet::new();
    for index in 0..7 {
        let name = format!("set-{index}");
        create(&api, SETS, set(&name)).await?;
        expected.insert(name);
    }

    let collection = collection_path("default", SETS);
    let (status, first) = api.get(&format!("{collection}?limit=3")).await?;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["kind"], "EdgeDeviceSetList", "{first}");
    let snapshot = first["metadata"]["resourceVersion"]
        .as_str()
        .ok_or_else(|| anyhow!("list without resourceVersion: {first}"))?
        .to_owned();
    let mut seen = names_of(&first)?;
    assert_eq!(seen.len(), 3, "limit=3 returned {seen:?}");

    // Changes after the first page must not show in later pages.
    create(&api, SETS, set("set-zz")).await?;
    let (status, body) = api.delete(&object_path("default", SETS, "set-6")).await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut token = first["metadata"]["continue"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut pages = 1;
    while !token.is_empty() {
        pages += 1;
        ensure!(pages <= 10, "paging does not end; seen {seen:?}");
        let (status, page) = api
            .get(&format!("{collection}?limit=3&continue={token}"))
            .await?;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            page["metadata"]["resourceVersion"], snapshot,
            "page {pages} is not at the first page's revision: {page}"
        );
        let names = names_of(&page)?;
        assert!(
            names.len() <= 3,
            "page {pages} exceeds the limit: {names:?}"
        );
        seen.extend(names);
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    assert_eq!(pages, 3, "7 items at limit 3 take 3 pages");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an item came twice: {seen:?}");
    assert_eq!(
        unique, expected,
        "pages are not the snapshot of the first page"
    );
    Ok(())
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() -> Result<()> {
    let server = Server::start()?;
    let api = server.api()?;
    let a = create(&api, SETS, set("a")).await?;
    let start = rv_of(&a)?;
    let modified = relabel(&api, "a", "one").await?;
    let b = create(&api, SETS, set("b")).await?;
    let (status, body) = api.delete(&object_path("default", SETS, "a")).await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    let collection = collection_path("default", SETS);
    let response = api
        .open(&format!("{collection}?watch=true&resourceVersion={start}"))
        .await?;
    let mut watch = WatchStream::new(response).await?;
    // The in-process controllers also write the sets' status (member counts); those
    // status-only MODIFIED events are not what this test is about, so they are skipped.
    let mut last_seen: BTreeMap<String, Value> = BTreeMap::new();
    last_seen.insert("a".to_owned(), a.clone());
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        let event = watch
            .next_event(DEFAULT_TIMEOUT)
            .await?
            .ok_or_else(|| anyhow!("watch ended after {replayed:#?}"))?;
        let name = event["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let status_only = event["type"] == "MODIFIED"
            && last_seen.get(&name).is_some_and(|previous| {
                previous["metadata"]["labels"] == event["object"]["metadata"]["labels"]
                    && previous["spec"] == event["object"]["spec"]
            });
        last_seen.insert(name, event["object"].clone());
        if !status_only {
            replayed.push(event);
        }
    }
    let summary: Vec<(String, String)> = replayed
        .iter()
        .map(|event| {
            (
                event["type"].as_str().unwrap_or_default().to_owned(),
                event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let expected = [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
        .map(|(kind, name)| (kind.to_owned(), name.to_owned()));
    assert_eq!(summary, expected, "{replayed:#?}");
    assert_eq!(rv_of(&replayed[0]["object"])?, rv_of(&modified)?);
    assert_eq!(rv_of(&replayed[1]["object"])?, rv_of(&b)?);
    assert!(rv_of(&replayed[2]["object"])? > rv_of(&b)?, "{replayed:#?}");
    for event in &replayed {
        assert_eq!(event["object"]["kind"], "EdgeDeviceSet", "{event}");
        assert_eq!(event["object"]["apiVersion"], API_VERSION, "{event}");
    }

    // The same stream carries live changes too.
    let c = create(&api, SETS, set("c")).await?;
    let (event, _) = watch
        .until("ADDED c", DEFAULT_TIMEOUT, |event| {
            event["type"] == "ADDED" && event["object"]["metadata"]["name"] == "c"
        })
        .await?;
    assert_eq!(rv_of(&event["object"])?, rv_of(&c)?);
    Ok(())
}

/// An expired watch is either an HTTP 410 Status or a 200 stream whose first event is an
/// ERROR carrying a 410 Status; both are what client-go accepts.
async fn assert_watch_expired(response: reqwest::Response) -> Result<()> {
    let status = response.status();
    if status == StatusCode::GONE {
        let (_, body) = json_response(response).await?;
        assert_status(&body, 410);
        return Ok(());
    }
    ensure!(
        status == StatusCode::OK,
        "watch from an expired revision answered {status}"
    );
    let mut watch = WatchStream::from_response(response);
    let event = watch
        .next_event(DEFAULT_TIMEOUT)
        .await?
        .ok_or_else(|| anyhow!("watch from an expired revision ended without an event"))?;
    assert_eq!(
        event["type"], "ERROR",
        "expected an ERROR event, got {event}"
    );
    assert_status(&event["object"], 410);
    Ok(())
}

#[tokio::test]
async fn watch_from_a_compacted_revision_gets_410() -> Result<()> {
    let server = Server::start_with(&["--store-history", "5"])?;
    let api = server.api()?;
    let old = rv_of(&create(&api, SETS, set("churn")).await?)?;
    let mut latest = old;
    for step in 0..20 {
        latest = rv_of(&relabel(&api, "churn", &format!("s{step}")).await?)?;
    }
    let collection = collection_path("default", SETS);
    let response = api
        .open(&format!("{collection}?watch=true&resourceVersion={old}"))
        .await?;
    assert_watch_expired(response).await?;

    // A recent revision is still inside the history and watches normally.
    let response = api
        .open(&format!("{collection}?watch=true&resourceVersion={latest}"))
        .await?;
    let mut watch = WatchStream::new(response).await?;
    let next = relabel(&api, "churn", "last").await?;
    let (event, _) = watch
        .until("MODIFIED churn", DEFAULT_TIMEOUT, |event| {
            event["type"] == "MODIFIED"
        })
        .await?;
    assert_eq!(rv_of(&event["object"])?, rv_of(&next)?);
    Ok(())
}

#[tokio::test]
async fn continue_token_from_a_compacted_revision_gets_410() -> Result<()> {
    let server = Server::start_with(&["--store-history", "5"])?;
    let api = server.api()?;
    for name in ["p1", "p2", "p3"] {
        create(&api, SETS, set(name)).await?;
    }
    let collection = collection_path("default", SETS);
    let (status, first) = api.get(&format!("{collection}?limit=1")).await?;
    assert_eq!(status, StatusCode::OK, "{first}");
    let token = first["metadata"]["continue"]
        .as_str()
        .filter(|token| !token.is_empty())
        .ok_or_else(|| anyhow!("no continue token: {first}"))?
        .to_owned();
    // The token works while its revision is still in the history.
    let (status, page) = api
        .get(&format!("{collection}?limit=1&continue={token}"))
        .await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "fresh continue token refused: {page}"
    );

    for step in 0..20 {
        relabel(&api, "p1", &format!("s{step}")).await?;
    }
    let (status, body) = api
        .get(&format!("{collection}?limit=1&continue={token}"))
        .await?;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_status(&body, 410);
    Ok(())
}

#[tokio::test]
async fn send_initial_events_is_refused_or_ends_with_a_bookmark() -> Result<()> {
    let server = Server::start()?;
    let api = server.api()?;
    create(&api, SETS, set("existing")).await?;
    let collection = collection_path("default", SETS);
    let response = api
        .open(&format!(
            "{collection}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await?;
    let status = response.status();
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        let (_, body) = json_response(response).await?;
        assert_status(&body, 422);
        assert_eq!(body["reason"], "Invalid", "{body}");
        return Ok(());
    }
    assert_eq!(status, StatusCode::OK, "streaming list answered {status}");
    let mut watch = WatchStream::from_response(response);
    let (bookmark, before) = watch
        .until(
            "the initial-events-end BOOKMARK",
            DEFAULT_TIMEOUT,
            |event| event["type"] == "BOOKMARK",
        )
        .await?;
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true",
        "{bookmark}"
    );
    rv_of(&bookmark["object"])?;
    let initial: Vec<&Value> = before
        .iter()
        .filter(|event| event["type"] == "ADDED")
        .collect();
    assert_eq!(initial.len(), 1, "{before:#?}");
    assert_eq!(initial[0]["object"]["metadata"]["name"], "existing");
    Ok(())
}

#[tokio::test]
async fn table_accept_returns_a_table() -> Result<()> {
    let server = Server::start()?;
    let api = server.api()?;
    create(&api, "edgedevices", device("dev1")).await?;
    create(&api, "edgedevices", device("dev2")).await?;
    let (status, table) = api
        .get_as(&collection_path("default", "edgedevices"), TABLE_ACCEPT)
        .await?;
    assert_eq!(status, StatusCode::OK, "{table}");
    assert_eq!(table["kind"], "Table", "{table}");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1", "{table}");
    rv_of(&table)?;
    let columns = table["columnDefinitions"]
        .as_array()
        .ok_or_else(|| anyhow!("no columnDefinitions: {table}"))?;
    let column_names: Vec<String> = columns
        .iter()
        .map(|column| column["name"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    assert_eq!(
        column_names.first().map(String::as_str),
        Some("name"),
        "{table}"
    );
    assert!(column_names.iter().any(|name| name == "age"), "{table}");
    for column in columns {
        let kind = column["type"].as_str().unwrap_or_default();
        assert!(
            ["string", "integer", "number", "boolean", "date"].contains(&kind),
            "bad column type in {column}"
        );
        assert!(column["priority"].is_number(), "no priority in {column}");
    }
    let rows = table["rows"]
        .as_array()
        .ok_or_else(|| anyhow!("no rows: {table}"))?;
    assert_eq!(rows.len(), 2, "{table}");
    for row in rows {
        let cells = row["cells"]
            .as_array()
            .ok_or_else(|| anyhow!("row without cells: {row}"))?;
        assert_eq!(cells.len(), columns.len(), "{row}");
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata", "{row}");
        assert_eq!(row["object"]["metadata"]["namespace"], "default", "{row}");
    }
    let first_cells: BTreeSet<&str> = rows
        .iter()
        .filter_map(|row| row["cells"][0].as_str())
        .collect();
    assert_eq!(first_cells, BTreeSet::from(["dev1", "dev2"]));
    Ok(())
}

#[tokio::test]
async fn partial_object_metadata_list() -> Result<()> {
    let server = Server::start()?;
    let api = server.api()?;
    create(&api, SETS, set("m1")).await?;
    create(&api, SETS, set("m2")).await?;
    let (status, list) = api
        .get_as(&collection_path("default", SETS), METADATA_LIST_ACCEPT)
        .await?;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["kind"], "PartialObjectMetadataList", "{list}");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1", "{list}");
    rv_of(&list)?;
    let items = list["items"]
        .as_array()
        .ok_or_else(|| anyhow!("no items: {list}"))?;
    assert_eq!(items.len(), 2, "{list}");
    for item in items {
        assert_eq!(item["kind"], "PartialObjectMetadata", "{item}");
        assert_eq!(item["apiVersion"], "meta.k8s.io/v1", "{item}");
        assert!(
            item.get("spec").is_none(),
            "metadata-only item has a spec: {item}"
        );
        assert!(item["metadata"]["uid"].is_string(), "{item}");
        assert_eq!(item["metadata"]["labels"]["fleet"], "test", "{item}");
    }
    Ok(())
}
