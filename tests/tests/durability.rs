//! Crash safety of the default (embedded) store and reuse of the PKI across restarts: the
//! server is SIGKILLed (no shutdown path runs) and started again on the same data directory.
//!
//! The contract under test: every create the server acknowledged with 201 is there after the
//! crash with the same uid and resourceVersion; revisions keep increasing after a restart; the
//! CA, admin certificate and kubeconfig of the first run still work.

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow, ensure};
use flotta_e2e::{API_VERSION, ApiClient, Server, collection_path, object_path, tls_client};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

const SETS: &str = "edgedevicesets";

/// What the server acknowledged for one create: uid and resourceVersion.
type Acknowledged = BTreeMap<String, (String, String)>;

fn set(name: &str, index: usize) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "EdgeDeviceSet",
        "metadata": {"name": name, "labels": {"batch": "durability"}},
        "spec": {"heartbeat": {"periodSeconds": index + 1}}
    })
}

/// Creates `set-<index>` and reports `(name, uid, resourceVersion)` when acknowledged.
async fn create_one(api: ApiClient, index: usize) -> Result<(String, String, String)> {
    let name = format!("set-{index:04}");
    let (status, object) = api
        .post(&collection_path("default", SETS), &set(&name, index))
        .await?;
    ensure!(
        status == StatusCode::CREATED,
        "create {name} answered {status}: {object}"
    );
    let field = |field: &str| {
        object["metadata"][field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no metadata.{field} in {object}"))
    };
    Ok((name, field("uid")?, field("resourceVersion")?))
}

/// Checks that every acknowledged object is stored with its uid and spec and a revision
/// no older than the acknowledged one; returns the highest revision.
async fn verify(api: &ApiClient, acknowledged: &Acknowledged) -> Result<u64> {
    let mut highest = 0;
    for (name, (uid, rv)) in acknowledged {
        let (status, object) = api.get(&object_path("default", SETS, name)).await?;
        ensure!(
            status == StatusCode::OK,
            "acknowledged {name} is lost after the crash: {status} {object}"
        );
        ensure!(
            object["metadata"]["uid"] == uid.as_str(),
            "{name} changed uid across the crash: {uid} → {}",
            object["metadata"]["uid"]
        );
        // The in-process controllers may write the object's status after the create (the
        // set controller counts members), so the stored revision may be newer, never older.
        let acknowledged_rv: u64 = rv.parse().context("resourceVersion is not an integer")?;
        let stored_rv: u64 = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("{name} has no resourceVersion after the crash: {object}"))?;
        ensure!(
            stored_rv >= acknowledged_rv,
            "{name} went back in time across the crash: resourceVersion {acknowledged_rv} → {stored_rv}"
        );
        let index: u64 = name
            .trim_start_matches("set-")
            .parse()
            .context("parsing the set index")?;
        ensure!(
            object["spec"]["heartbeat"]["periodSeconds"] == index + 1,
            "{name} spec changed across the crash: {object}"
        );
        highest = highest.max(stored_rv);
    }
    Ok(highest)
}

/// After a restart, a new write gets a revision above everything stored before.
async fn assert_revisions_continue(api: &ApiClient, highest: u64) -> Result<()> {
    let (status, object) = api
        .post(&collection_path("default", SETS), &set("after-restart", 0))
        .await?;
    ensure!(
        status == StatusCode::CREATED,
        "create after restart: {status} {object}"
    );
    let rv: u64 = object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .ok_or_else(|| anyhow!("no resourceVersion in {object}"))?;
    ensure!(
        rv > highest,
        "revision went backwards after restart: new write at {rv}, stored up to {highest}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_sigkill() -> Result<()> {
    const COUNT: usize = 200;
    let mut server = Server::start()?;
    let api = server.api()?;
    let mut creates = JoinSet::new();
    for index in 0..COUNT {
        creates.spawn(create_one(api.clone(), index));
    }
    let mut acknowledged = Acknowledged::new();
    while let Some(joined) = creates.join_next().await {
        let (name, uid, rv) = joined.context("create task panicked")??;
        acknowledged.insert(name, (uid, rv));
    }
    assert_eq!(acknowledged.len(), COUNT);

    server.kill9()?;
    server.restart()?;
    let api = api.with_base(server.base_url());
    let highest = verify(&api, &acknowledged).await?;

    let (status, list) = api.get(&collection_path("default", SETS)).await?;
    ensure!(
        status == StatusCode::OK,
        "list after restart: {status} {list}"
    );
    let items = list["items"].as_array().map_or(0, Vec::len);
    assert_eq!(items, COUNT, "list after restart has {items} items");
    assert_revisions_continue(&api, highest).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_acknowledged_before_a_crash_mid_load_survive() -> Result<()> {
    const WORKERS: usize = 16;
    const MAX: usize = 5000;
    const KILL_AFTER: usize = 100;
    let mut server = Server::start()?;
    let api = server.api()?;
    let next = Arc::new(AtomicUsize::new(0));
    let (acks, mut received) = mpsc::unbounded_channel();
    let mut workers = JoinSet::new();
    // Workers keep creating until the server dies, so creates are in flight at the kill.
    for _ in 0..WORKERS {
        let (api, next, acks) = (api.clone(), Arc::clone(&next), acks.clone());
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= MAX {
                    break;
                }
                match create_one(api.clone(), index).await {
                    Ok(ack) => {
                        if acks.send(ack).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
    }
    drop(acks);

    let mut acknowledged = Acknowledged::new();
    while acknowledged.len() < KILL_AFTER {
        let (name, uid, rv) = received.recv().await.ok_or_else(|| {
            anyhow!(
                "creates ended with only {} acknowledged",
                acknowledged.len()
            )
        })?;
        acknowledged.insert(name, (uid, rv));
    }
    server.kill9()?;
    while workers.join_next().await.is_some() {}
    while let Ok((name, uid, rv)) = received.try_recv() {
        acknowledged.insert(name, (uid, rv));
    }
    let attempted = next.load(Ordering::Relaxed).min(MAX);
    ensure!(
        attempted > acknowledged.len(),
        "every create finished before the kill ({attempted}); the crash hit no write in flight"
    );

    server.restart()?;
    let api = api.with_base(server.base_url());
    let highest = verify(&api, &acknowledged).await?;
    assert_revisions_continue(&api, highest).await
}

#[tokio::test]
async fn restart_reuses_the_ca_and_admin_credentials() -> Result<()> {
    let mut server = Server::start()?;
    let pki = server.pki_dir();
    let saved = server.scratch_dir().join("first-run");
    fs::create_dir_all(&saved)?;
    for file in ["ca.crt", "admin.crt", "admin.key"] {
        fs::copy(pki.join(file), saved.join(file)).with_context(|| format!("saving {file}"))?;
    }
    fs::copy(server.kubeconfig(), saved.join("kubeconfig")).context("saving the kubeconfig")?;
    server.run_ok(&[
        "create",
        "-f",
        &flotta_e2e::fixture("edgedeviceset.yaml")
            .display()
            .to_string(),
    ])?;

    server.kill9()?;
    server.restart()?;

    assert_eq!(
        fs::read(pki.join("ca.crt"))?,
        fs::read(saved.join("ca.crt"))?,
        "the CA certificate changed across a restart"
    );
    // The first run's CA verifies the new run's serving certificate, and the first run's
    // admin certificate is still accepted.
    let old = tls_client(
        &saved.join("ca.crt"),
        Some((&saved.join("admin.crt"), &saved.join("admin.key"))),
    )?;
    let api = ApiClient::new(old, server.base_url());
    let (status, object) = api.get(&object_path("default", SETS, "set1")).await?;
    assert_eq!(status, StatusCode::OK, "old credentials refused: {object}");

    // The first run's kubeconfig works once pointed at the new port.
    let old_kubectl = flotta_e2e::Kubectl::new(saved.join("kubeconfig"), saved.join("cache"))
        .with_global_args(&[&format!("--server={}", server.base_url())]);
    let stdout = old_kubectl.run_ok(&["get", "edgedevicesets", "-o", "name"])?;
    assert!(stdout.contains("set1"), "{stdout}");
    // And the rewritten kubeconfig works as it is.
    let stdout = server.run_ok(&["get", "edgedevicesets", "-o", "name"])?;
    assert!(stdout.contains("set1"), "{stdout}");
    Ok(())
}
