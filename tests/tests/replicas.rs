//! Several `flotta-apiserver` replicas on one real etcd (Debian's `etcd-server`, started on
//! loopback by the test), each a separate process with its own PKI and kubeconfig:
//!
//! - an object written through one replica is served by the other with the same uid and
//!   resourceVersion, and a watch on one replica from a revision listed on the other gets
//!   the other's writes (the revisions mean the same thing everywhere);
//! - exactly one replica runs the controllers (`flotta_controllers_leading` in `/metrics`),
//!   a signed request created through the standby is approved by the leader, and when the
//!   leader stops the standby takes over;
//! - a device heartbeating to one replica is shown online by the other, and its move to the
//!   other replica is seen as a claim;
//! - an object too large for etcd is refused with a 413 Status.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use flotta_api::edge::{EnrolmentFeatures, EnrolmentInfo};
use flotta_e2e::device::{DeviceClient, DeviceEndpoint, Identity, heartbeat, sample_hardware};
use flotta_e2e::etcd::EtcdServer;
use flotta_e2e::{DEFAULT_TIMEOUT, Server, WatchStream, fixture, tls_client};
use serde_json::Value;
use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(50);

/// Two replicas on `etcd`, with a short controller lease so handover is quick.
fn replicas(etcd: &EtcdServer, extra: &[&str]) -> Result<(Server, Server)> {
    let endpoint = etcd.endpoint();
    let mut args = vec![
        "--store",
        "etcd",
        "--etcd-servers",
        endpoint.as_str(),
        "--leader-elect-lease-duration",
        "2",
    ];
    args.extend_from_slice(extra);
    let a = Server::start_with(&args).context("starting replica a")?;
    let b = Server::start_with(&args).context("starting replica b")?;
    Ok((a, b))
}

fn kubectl_json(server: &Server, args: &[&str]) -> Result<Value> {
    tokio::task::block_in_place(|| server.get_json(args))
}

/// Whether `server` runs the controllers now, from its `/metrics`.
async fn leading(server: &Server) -> Result<bool> {
    let url = format!("http://127.0.0.1:{}/metrics", server.ports().metrics);
    let client = tls_client(&server.pki_dir().join("ca.crt"), None)?;
    let page = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    let line = page
        .lines()
        .find(|l| l.starts_with("flotta_controllers_leading "))
        .with_context(|| format!("no flotta_controllers_leading in /metrics:\n{page}"))?;
    Ok(line.ends_with(" 1"))
}

/// Polls `check` until it returns `Some`, for at most [`DEFAULT_TIMEOUT`].
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {DEFAULT_TIMEOUT:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_serve_the_same_objects_revisions_and_watches() -> Result<()> {
    let etcd = EtcdServer::start()?;
    let (a, b) = replicas(&etcd, &[])?;

    let workload = fixture("edgeworkload.yaml");
    let workload = workload.to_str().context("fixture path")?;
    tokio::task::block_in_place(|| a.run_ok(&["apply", "-f", workload]))?;
    let on_a = kubectl_json(&a, &["get", "edgeworkload", "wl1", "-o", "json"])?;
    let on_b = kubectl_json(&b, &["get", "edgeworkload", "wl1", "-o", "json"])?;
    assert_eq!(on_a["metadata"]["uid"], on_b["metadata"]["uid"]);
    assert_eq!(
        on_a["metadata"]["resourceVersion"], on_b["metadata"]["resourceVersion"],
        "one object, one revision, whichever replica serves it"
    );

    // List on a, watch on b from that revision, write on a: b delivers a's write.
    let list = a
        .api()?
        .get("/apis/management.project-flotta.io/v1alpha1/namespaces/default/edgeworkloads")
        .await?
        .1;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .context("list resourceVersion")?
        .to_owned();
    let watch_url = b.url(&format!(
        "/apis/management.project-flotta.io/v1alpha1/namespaces/default/edgeworkloads?watch=1&resourceVersion={from}"
    ));
    let mut watch = WatchStream::new(b.http_client()?.get(&watch_url).send().await?).await?;
    tokio::task::block_in_place(|| a.run_ok(&["label", "edgeworkload", "wl1", "tier=front"]))?;
    let (event, _) = watch
        .until("b's watch to deliver a's label", DEFAULT_TIMEOUT, |e| {
            e["type"] == "MODIFIED" && e["object"]["metadata"]["labels"]["tier"] == "front"
        })
        .await?;
    let labelled = kubectl_json(&a, &["get", "edgeworkload", "wl1", "-o", "json"])?;
    assert_eq!(
        event["object"]["metadata"]["resourceVersion"],
        labelled["metadata"]["resourceVersion"]
    );

    // A conflicting write through b with a's old revision is refused.
    let stale = on_a["metadata"]["resourceVersion"]
        .as_str()
        .context("resourceVersion")?;
    let patch = format!(r#"{{"metadata":{{"resourceVersion":"{stale}","labels":{{"x":"y"}}}}}}"#);
    let refused = tokio::task::block_in_place(|| {
        b.run_err(&[
            "patch",
            "edgeworkload",
            "wl1",
            "--type",
            "merge",
            "-p",
            &patch,
        ])
    })?;
    ensure!(
        refused.contains("Conflict") || refused.contains("modified"),
        "{refused}"
    );

    // An object the API accepts but etcd cannot hold (over its 1.5 MiB request limit) is
    // refused with a 413 Status, not a 500.
    let big = serde_json::json!({
        "apiVersion": "management.project-flotta.io/v1alpha1",
        "kind": "EdgeWorkload",
        "metadata": {"name": "big"},
        "spec": {"type": "pod", "pod": {"spec": {"containers": [
            {"name": "c", "image": "quay.io/example/c:1", "args": ["x".repeat(1_600_000)]}
        ]}}},
    });
    let api = b.api()?;
    let (status, body) = api
        .send(
            "a 1.6 MB EdgeWorkload",
            api.request(
                reqwest::Method::POST,
                "/apis/management.project-flotta.io/v1alpha1/namespaces/default/edgeworkloads",
            )
            .json(&big),
        )
        .await?;
    assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["reason"], "RequestEntityTooLarge", "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_runs_the_controllers_and_the_other_takes_over() -> Result<()> {
    let etcd = EtcdServer::start()?;
    let (a, b) = replicas(&etcd, &[])?;
    let first = until("one replica to lead", async || {
        let (la, lb) = (leading(&a).await?, leading(&b).await?);
        ensure!(!(la && lb), "both replicas run the controllers");
        Ok(match (la, lb) {
            (true, false) => Some('a'),
            (false, true) => Some('b'),
            _ => None,
        })
    })
    .await?;
    let (mut leader, standby) = if first == 'a' { (a, b) } else { (b, a) };
    // Stable: still exactly one after a few renewals.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(leading(&leader).await? && !leading(&standby).await?);

    // A signed request created through the standby is approved by the leader's controller.
    let request = "\
apiVersion: management.project-flotta.io/v1alpha1
kind: EdgeDeviceSignedRequest
metadata:
  name: dev-x
spec:
  targetNamespace: default
  approved: true
  features:
    hardware:
      hostname: dev-x
";
    tokio::task::block_in_place(|| standby.run_ok_stdin(&["apply", "-f", "-"], request))?;
    until("the leader to create the approved device", async || {
        Ok(tokio::task::block_in_place(|| {
            standby.kubectl(&["get", "edgedevice", "dev-x", "-o", "name"])
        })?
        .success()
        .then_some(()))
    })
    .await?;

    // The leader stops (SIGTERM releases the lease): the standby leads.
    tokio::task::block_in_place(|| leader.terminate())?;
    until("the standby to take over", async || {
        Ok(leading(&standby).await?.then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_on_one_replica_is_online_on_the_other() -> Result<()> {
    let etcd = EtcdServer::start()?;
    let (a, b) = replicas(&etcd, &[])?;
    let endpoint = DeviceEndpoint::from_data_dir(&a.data_dir())?;
    let id = "dev-r";
    let mut device = DeviceClient::new(&endpoint, id, Some(Identity::bootstrap(&a.data_dir())?))?;
    let enrolment = EnrolmentInfo {
        features: Some(EnrolmentFeatures {
            model_name: Some("e2e-device".into()),
            hardware: Some(sample_hardware(id)),
        }),
        target_namespace: None,
    };
    device
        .join(&enrolment, Some(sample_hardware(id)), POLL, DEFAULT_TIMEOUT)
        .await
        .context("joining through replica a")?;
    device
        .heartbeat(&heartbeat(None, &[]))
        .await
        .context("heartbeat to a")?;
    let shown = until("b to show the device online", async || {
        let device = kubectl_json(&b, &["get", "edgedevice", id, "-o", "json"])?;
        Ok((device["status"]["online"] == true).then_some(device))
    })
    .await?;
    ensure!(shown["status"]["lastSeen"].is_string(), "{shown}");

    // The device moves to b with its own certificate (same CA, shared through etcd).
    let identity = device.identity().context("registered identity")?.clone();
    let endpoint_b = DeviceEndpoint::from_data_dir(&b.data_dir())?;
    let mut moved = DeviceClient::new(&endpoint_b, id, Some(identity))?;
    let before = kubectl_json(&a, &["get", "edgedevice", id, "-o", "json"])?["status"]["lastSeen"]
        .as_str()
        .context("lastSeen on a")?
        .parse::<jiff::Timestamp>()?;
    moved
        .heartbeat(&heartbeat(None, &[]))
        .await
        .context("heartbeat to b")?;
    // b claims the device with one lastSeen write, which a sees through etcd.
    let on_a = until("a to see b's claim", async || {
        let device = kubectl_json(&a, &["get", "edgedevice", id, "-o", "json"])?;
        let seen: jiff::Timestamp = device["status"]["lastSeen"]
            .as_str()
            .context("lastSeen")?
            .parse()?;
        Ok((seen > before).then_some(device))
    })
    .await?;
    assert_eq!(on_a["status"]["online"], true, "{on_a}");
    Ok(())
}
