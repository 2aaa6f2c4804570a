//! Devices against the real `flotta-apiserver`: a Rust test device ([`DeviceClient`], mutual
//! TLS, one HTTP/1.1 keep-alive connection) speaking Flotta's wire protocol on the device
//! port, and the real kubectl on the API port.
//!
//! - the whole life of a device (issue 3, item 8): enrol → signed request pending → approve
//!   with `kubectl patch` → register → configuration → heartbeat → status in `kubectl get`
//!   → a selected EdgeWorkload appears in the configuration → relabelling removes it →
//!   deletion → `disconnect`;
//! - steady-state heartbeats write nothing: the store revision and the device backend's
//!   store-write counter (`/metrics`) do not move over many identical heartbeats;
//! - the authorization matrix cells that need real certificates and a real listener.
//!
//! Each test starts its own server; the harness binds the device API to a free port.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use flotta_api::edge::{EnrolmentFeatures, EnrolmentInfo, Heartbeat};
use flotta_e2e::device::{
    self, ConfigPoll, DeviceClient, DeviceEndpoint, Enrolment, Identity, data_in_path,
    data_out_path, sample_hardware,
};
use flotta_e2e::{DEFAULT_TIMEOUT, Server, Table, tls_client};
use http::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

/// How often a condition is re-checked.
const POLL: Duration = Duration::from_millis(50);

/// A deadline for an async condition: [`Deadline::tick`] waits a little, or fails with
/// what was last seen once the time is up.
struct Deadline {
    what: String,
    until: Instant,
}

impl Deadline {
    fn new(what: &str) -> Self {
        Self {
            what: what.to_owned(),
            until: Instant::now() + DEFAULT_TIMEOUT,
        }
    }

    async fn tick(&self, last_seen: impl std::fmt::Display) -> Result<()> {
        if Instant::now() >= self.until {
            bail!(
                "timed out after {DEFAULT_TIMEOUT:?} waiting for {}; last seen: {last_seen}",
                self.what
            );
        }
        tokio::time::sleep(POLL).await;
        Ok(())
    }
}

/// Starts a server with `extra` flags (the harness puts the device API on a free port).
fn start(extra: &[&str]) -> Result<(Server, DeviceEndpoint)> {
    let server = Server::start_with(extra)?;
    let endpoint = DeviceEndpoint::from_data_dir(&server.data_dir())?;
    Ok((server, endpoint))
}

/// kubectl from async code: the blocking call gives up its runtime worker meanwhile.
fn kubectl(server: &Server, args: &[&str]) -> Result<String> {
    tokio::task::block_in_place(|| server.run_ok(args))
}

fn kubectl_stdin(server: &Server, args: &[&str], input: &str) -> Result<String> {
    tokio::task::block_in_place(|| server.run_ok_stdin(args, input))
}

fn kubectl_json(server: &Server, args: &[&str]) -> Result<Value> {
    tokio::task::block_in_place(|| server.get_json(args))
}

fn kubectl_fails(server: &Server, args: &[&str]) -> Result<String> {
    tokio::task::block_in_place(|| server.run_err(args))
}

fn enrolment(id: &str) -> EnrolmentInfo {
    EnrolmentInfo {
        features: Some(EnrolmentFeatures {
            model_name: Some("e2e-device".into()),
            hardware: Some(sample_hardware(id)),
        }),
        target_namespace: None,
    }
}

/// A device that enrolled with the bootstrap certificate, was approved automatically and
/// registered: it now presents its own certificate.
async fn joined_device(
    server: &Server,
    endpoint: &DeviceEndpoint,
    id: &str,
) -> Result<DeviceClient> {
    let bootstrap = Identity::bootstrap(&server.data_dir())?;
    let mut device = DeviceClient::new(endpoint, id, Some(bootstrap))?;
    device
        .join(
            &enrolment(id),
            Some(sample_hardware(id)),
            POLL,
            DEFAULT_TIMEOUT,
        )
        .await
        .with_context(|| format!("joining {id}"))?;
    Ok(device)
}

/// Seconds in a kubectl age such as `45s`, `2m10s` or `3h`; `None` if it is not one.
fn age_seconds(age: &str) -> Option<u64> {
    let mut total = 0;
    let mut number = String::new();
    for c in age.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'y' => 365 * 86_400,
            _ => return None,
        };
        total += number.parse::<u64>().ok()? * unit;
        number.clear();
    }
    number.is_empty().then_some(total)
}

/// Whether an RFC 3339 time is within `limit` of now.
fn is_recent(time: &str, limit: Duration) -> Result<bool> {
    let at: jiff::Timestamp = time
        .parse()
        .with_context(|| format!("{time:?} is not an RFC 3339 time"))?;
    let age = jiff::Timestamp::now().duration_since(at);
    Ok(age.unsigned_abs() <= limit)
}

fn workload_names(configuration: &flotta_api::edge::DeviceConfigurationMessage) -> Vec<String> {
    configuration
        .workloads
        .iter()
        .filter_map(|workload| workload.name.clone())
        .collect()
}

/// Polls the device's configuration until `accept` holds for it; returns it.
async fn configuration_until(
    device: &mut DeviceClient,
    what: &str,
    accept: impl Fn(&flotta_api::edge::DeviceConfigurationMessage) -> bool,
) -> Result<flotta_api::edge::DeviceConfigurationMessage> {
    let deadline = Deadline::new(what);
    let mut last: Option<flotta_api::edge::DeviceConfigurationMessage> = None;
    loop {
        if let ConfigPoll::Changed(configuration) = device.configuration().await? {
            if accept(&configuration) {
                return Ok(*configuration);
            }
            last = Some(*configuration);
        }
        deadline
            .tick(format!("workloads {:?}", last.as_ref().map(workload_names)))
            .await?;
    }
}

const WORKLOAD: &str = "\
apiVersion: management.project-flotta.io/v1alpha1
kind: EdgeWorkload
metadata:
  name: web
spec:
  type: pod
  deviceSelector:
    matchLabels:
      site: lab
  pod:
    spec:
      containers:
        - name: web
          image: quay.io/example/web:1.0
          ports:
            - containerPort: 8080
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_lives_from_enrolment_to_disconnect() -> Result<()> {
    let (server, endpoint) = start(&["--auto-approve=false"])?;
    let id = "dev-e2e";

    // The bootstrap material the server wrote is what a device installs.
    let bootstrap = Identity::bootstrap(&server.data_dir())?;
    let subject = bootstrap.subject()?;
    assert_eq!(
        subject.common_name.as_deref(),
        Some("register"),
        "{subject:?}"
    );
    let mut device = DeviceClient::new(&endpoint, id, Some(bootstrap))?;

    // Enrolment: recorded, but pending until an operator approves.
    assert_eq!(device.enrol(&enrolment(id)).await?, Enrolment::Requested);
    assert_eq!(device.enrol(&enrolment(id)).await?, Enrolment::Requested);
    let table = Table::parse(&kubectl(&server, &["get", "edsr"])?)?;
    table.row(id)?;
    let request = kubectl_json(&server, &["get", "edsr", id])?;
    assert_eq!(request["spec"]["approved"], false, "{request}");
    assert_eq!(request["spec"]["targetNamespace"], "default", "{request}");
    assert_eq!(
        request["spec"]["features"]["hardware"]["hostname"], id,
        "the enrolment's hardware is kept: {request}"
    );
    // Registering before approval is refused without issuing anything.
    let early = device
        .post_directive(
            flotta_api::edge::DIRECTIVE_REGISTRATION,
            &flotta_api::edge::RegistrationInfo {
                hardware: None,
                certificate_request: Some(device::key_and_csr(id)?.1),
            },
        )
        .await?;
    assert_eq!(early.status, StatusCode::NOT_FOUND, "{}", early.text());
    kubectl_fails(&server, &["get", "edgedevice", id])?;

    // Approval with kubectl creates the device; enrolment then answers 208.
    kubectl(
        &server,
        &[
            "patch",
            "edsr",
            id,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"approved":true}}"#,
        ],
    )?;
    let deadline = Deadline::new("the approved device to exist (enrolment 208)");
    while device.enrol(&enrolment(id)).await? != Enrolment::Known {
        deadline.tick("enrolment still answers 200").await?;
    }

    // Registration: a certificate for CN=<id>, OU=<namespace>, signed from our CSR.
    let identity = device.register(Some(sample_hardware(id))).await?;
    let subject = identity.subject()?;
    assert_eq!(subject.common_name.as_deref(), Some(id), "{subject:?}");
    assert_eq!(subject.organizational_units, ["default"], "{subject:?}");
    assert_eq!(subject.organizations, ["flotta-operator"], "{subject:?}");
    let validity_days = (subject.not_after - jiff::Timestamp::now().as_second()) / 86_400;
    assert!(
        (29..=30).contains(&validity_days),
        "device certificates last 30 days by default: {subject:?}"
    );
    let connections = device.connections_opened();

    // Configuration, then the ETag extension.
    let configuration = device.full_configuration().await?;
    assert_eq!(configuration.device_id.as_deref(), Some(id));
    assert!(configuration.workloads.is_empty(), "{configuration:?}");
    let version = configuration
        .version
        .clone()
        .ok_or_else(|| anyhow!("the configuration has no version: {configuration:?}"))?;
    assert!(device.etag().is_some(), "data/in sends an ETag");
    assert_eq!(device.configuration().await?, ConfigPoll::NotModified);

    // A heartbeat makes the device visible as up, online and just seen.
    device
        .heartbeat(&device::heartbeat(Some(&version), &[]))
        .await?;
    let table = Table::parse(&kubectl(&server, &["get", "edgedevices"])?)?;
    table.require_columns(&["NAME", "PHASE", "ONLINE", "LAST SEEN", "WORKLOADS", "AGE"])?;
    assert_eq!(table.cell(id, "PHASE")?, "up", "{}", table.text());
    assert_eq!(table.cell(id, "ONLINE")?, "true", "{}", table.text());
    let last_seen = table.cell(id, "LAST SEEN")?;
    let recent = age_seconds(&last_seen)
        .map(|seconds| seconds <= 120)
        .or_else(|| is_recent(&last_seen, Duration::from_secs(120)).ok())
        .unwrap_or(false);
    assert!(
        recent,
        "LAST SEEN {last_seen:?} is not recent:\n{}",
        table.text()
    );
    let object = kubectl_json(&server, &["get", "edgedevice", id])?;
    let status = &object["status"];
    assert_eq!(status["phase"], "up", "{object}");
    assert_eq!(status["online"], true, "{object}");
    assert!(
        is_recent(
            status["lastSeen"].as_str().unwrap_or_default(),
            Duration::from_secs(60)
        )?,
        "{object}"
    );
    assert_eq!(
        status["lastSyncedResourceVersion"],
        version.as_str(),
        "{object}"
    );
    assert_eq!(status["hardware"]["hostname"], id, "{object}");
    assert_eq!(
        object["metadata"]["labels"]["device.hostname"], id,
        "registration adds the hardware labels: {object}"
    );
    assert!(
        object["metadata"]["labels"]
            .get("edgedeviceSignedRequest")
            .is_none(),
        "registration removes the signed-request label: {object}"
    );

    // A workload selecting the device's label appears in its configuration.
    kubectl(&server, &["label", "edgedevice", id, "site=lab"])?;
    kubectl_stdin(&server, &["apply", "-f", "-"], WORKLOAD)?;
    let configuration = configuration_until(&mut device, "workload web to be configured", |c| {
        workload_names(c) == ["web"]
    })
    .await?;
    let web = &configuration.workloads[0];
    assert_eq!(web.namespace.as_deref(), Some("default"));
    let specification = web.specification.as_deref().unwrap_or_default();
    assert!(
        specification.contains("quay.io/example/web:1.0"),
        "the PodSpec is sent as YAML: {specification}"
    );
    let version = configuration.version.clone().unwrap_or_default();
    device
        .heartbeat(&device::heartbeat(Some(&version), &[("web", "Running")]))
        .await?;
    let object = kubectl_json(&server, &["get", "edgedevice", id])?;
    let workloads = object["status"]["workloads"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(workloads.len(), 1, "{object}");
    assert_eq!(workloads[0]["name"], "web", "{object}");
    assert_eq!(workloads[0]["phase"], "Running", "{object}");

    // Relabelled away from the selector, the workload leaves the configuration.
    kubectl(
        &server,
        &["label", "edgedevice", id, "site=factory", "--overwrite"],
    )?;
    configuration_until(&mut device, "workload web to be removed", |c| {
        c.workloads.is_empty()
    })
    .await?;

    // All of that on one keep-alive connection since the certificate changed.
    assert_eq!(
        device.connections_opened(),
        connections + 1,
        "the device reconnected although nothing closed its connection"
    );

    // Deleting the device: the next control poll says `disconnect`.
    assert_eq!(
        device.control().await?,
        None,
        "a live device gets no command"
    );
    kubectl(&server, &["delete", "edgedevice", id, "--wait=false"])?;
    let deadline = Deadline::new("a disconnect command");
    loop {
        match device.control().await? {
            Some(command) if device::is_disconnect(&command) => break,
            other => deadline.tick(format!("{other:?}")).await?,
        }
    }
    // Once the device is gone (finalizer done), its signed request is cleaned up too and
    // the command stays `disconnect`.
    let deadline = Deadline::new("the device and its signed request to be deleted");
    loop {
        let device_gone = kubectl_fails(&server, &["get", "edgedevice", id]).is_ok();
        let request_gone = kubectl_fails(&server, &["get", "edsr", id]).is_ok();
        if device_gone && request_gone {
            break;
        }
        deadline
            .tick(format!(
                "device gone: {device_gone}, signed request gone: {request_gone}"
            ))
            .await?;
    }
    let command = device.control().await?;
    assert!(
        command.as_ref().is_some_and(device::is_disconnect),
        "{command:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline_and_its_next_heartbeat_brings_it_back() -> Result<()> {
    let (server, endpoint) = start(&["--device-offline-after-missed", "2"])?;
    let id = "dev-quiet";
    let mut device = joined_device(&server, &endpoint, id).await?;
    // A one-second heartbeat period: offline after two silent seconds.
    kubectl(
        &server,
        &[
            "patch",
            "edgedevice",
            id,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"heartbeat":{"periodSeconds":1}}}"#,
        ],
    )?;
    let configuration = configuration_until(&mut device, "a heartbeat period of 1 s", |c| {
        c.configuration
            .as_ref()
            .and_then(|c| c.heartbeat.as_ref())
            .and_then(|h| h.period_seconds)
            == Some(1)
    })
    .await?;
    let report = device::heartbeat(configuration.version.as_deref(), &[]);
    device.heartbeat(&report).await?;
    let online = |server: &Server| -> Result<Value> {
        Ok(kubectl_json(server, &["get", "edgedevice", id])?["status"]["online"].clone())
    };
    assert_eq!(online(&server)?, true);

    // The transition is a watch event, not only a value computed on read.
    let mut watch = tokio::task::block_in_place(|| {
        server.kubectl_lines(&[
            "get",
            "edgedevice",
            id,
            "--watch-only",
            "-o",
            "custom-columns=NAME:.metadata.name,ONLINE:.status.online",
        ])
    })?;
    let line = tokio::task::block_in_place(|| {
        watch.expect_line("the device to go offline", DEFAULT_TIMEOUT, |line| {
            line.split_whitespace().collect::<Vec<_>>() == [id, "false"]
        })
    })?;
    drop(watch);
    assert_eq!(online(&server)?, false, "watch said {line:?}");
    let table = Table::parse(&kubectl(&server, &["get", "edgedevices"])?)?;
    assert_eq!(table.cell(id, "ONLINE")?, "false", "{}", table.text());

    device.heartbeat(&report).await?;
    assert_eq!(online(&server)?, true, "a heartbeat brings the device back");
    Ok(())
}

/// The sum of every sample of metric `name` (all label sets) in a Prometheus text page.
fn metric_sum(page: &str, name: &str) -> Result<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in page.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = line
            .rsplit(' ')
            .next()
            .and_then(|value| value.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("unreadable sample {line:?}"))?;
        sum += value;
        found = true;
    }
    ensure!(found, "no metric {name} in /metrics:\n{page}");
    Ok(sum)
}

/// The figures of `/metrics` that say whether anything was written.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Writes {
    revision: f64,
    backend_writes: f64,
    heartbeats: f64,
    unchanged: f64,
}

async fn writes(client: &reqwest::Client, server: &Server) -> Result<Writes> {
    let url = format!("http://127.0.0.1:{}/metrics", server.ports().metrics);
    let page = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    Ok(Writes {
        revision: metric_sum(&page, "flotta_store_current_revision")?,
        backend_writes: metric_sum(&page, "flotta_edge_store_writes_total")?,
        heartbeats: metric_sum(&page, "flotta_api_edge_devices_heartbeat_total")?,
        unchanged: metric_sum(&page, "flotta_edge_heartbeats_unchanged_total")?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_heartbeats_write_nothing() -> Result<()> {
    const HEARTBEATS: u32 = 200;
    let (server, endpoint) = start(&[])?;
    let metrics = tls_client(&server.pki_dir().join("ca.crt"), None)?;
    let mut device = joined_device(&server, &endpoint, "dev-steady").await?;
    let version = device.full_configuration().await?.version;
    let report = device::heartbeat(version.as_deref(), &[]);
    // The first heartbeats record the status (phase, online, version): real changes.
    device.heartbeat(&report).await?;
    device.heartbeat(&report).await?;

    // Wait until nothing else (controllers reacting to registration) is writing.
    let deadline = Deadline::new("the store to become quiet");
    let mut before = writes(&metrics, &server).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = writes(&metrics, &server).await?;
        if now.revision == before.revision {
            break;
        }
        deadline
            .tick(format!("revision {} → {}", before.revision, now.revision))
            .await?;
        before = now;
    }

    for _ in 0..HEARTBEATS {
        device.heartbeat(&report).await?;
    }
    let after = writes(&metrics, &server).await?;
    assert_eq!(
        after.revision, before.revision,
        "identical heartbeats moved the store revision: {before:?} → {after:?}"
    );
    assert_eq!(
        after.backend_writes, before.backend_writes,
        "identical heartbeats were counted as store writes: {before:?} → {after:?}"
    );
    assert_eq!(after.heartbeats - before.heartbeats, f64::from(HEARTBEATS));
    assert_eq!(
        after.unchanged - before.unchanged,
        f64::from(HEARTBEATS),
        "every identical heartbeat is answered from memory: {before:?} → {after:?}"
    );

    // The counters do move when the status changes.
    let degraded = Heartbeat {
        status: Some(flotta_api::edge::HEARTBEAT_STATUS_DEGRADED.into()),
        ..report.clone()
    };
    device.heartbeat(&degraded).await?;
    let changed = writes(&metrics, &server).await?;
    assert!(
        changed.revision > after.revision && changed.backend_writes > after.backend_writes,
        "a changed status must be written: {after:?} → {changed:?}"
    );
    let object = kubectl_json(&server, &["get", "edgedevice", "dev-steady"])?;
    assert_eq!(object["status"]["phase"], "degraded", "{object}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_certificate_reaches_only_its_own_id() -> Result<()> {
    let (server, endpoint) = start(&[])?;
    let mut alice = joined_device(&server, &endpoint, "dev-alice").await?;
    let mut bob = joined_device(&server, &endpoint, "dev-bob").await?;
    bob.full_configuration().await?;

    let forbidden = |what: &str, status: StatusCode, body: String| -> Result<()> {
        ensure!(
            status == StatusCode::FORBIDDEN,
            "{what} with another device's certificate: expected 403, got {status}: {body}"
        );
        Ok(())
    };
    let reply = alice.get(&data_in_path("dev-bob"), None).await?;
    forbidden("GET data/dev-bob/in", reply.status, reply.text())?;
    let reply = alice.get(&device::control_in_path("dev-bob"), None).await?;
    forbidden("GET control/dev-bob/in", reply.status, reply.text())?;
    let body = alice.envelope(
        flotta_api::edge::DIRECTIVE_HEARTBEAT,
        &device::heartbeat(None, &[]),
    )?;
    let reply = alice.post(&data_out_path("dev-bob"), body).await?;
    forbidden("heartbeat for dev-bob", reply.status, reply.text())?;
    let body = alice.envelope(
        flotta_api::edge::DIRECTIVE_REGISTRATION,
        &flotta_api::edge::RegistrationInfo {
            hardware: None,
            certificate_request: Some(device::key_and_csr("dev-bob")?.1),
        },
    )?;
    let reply = alice.post(&data_out_path("dev-bob"), body).await?;
    forbidden("registration of dev-bob", reply.status, reply.text())?;

    // Its own id works on the same connection, and bob's status was not touched.
    alice.full_configuration().await?;
    let object = kubectl_json(&server, &["get", "edgedevice", "dev-bob"])?;
    assert!(object["status"].get("phase").is_none(), "{object}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_certificate_only_enrols_and_registers_once() -> Result<()> {
    let (server, endpoint) = start(&[])?;
    let id = "dev-boot";
    let mut registered = joined_device(&server, &endpoint, id).await?;
    registered.full_configuration().await?;
    let bootstrap = Identity::bootstrap(&server.data_dir())?;
    let mut device = DeviceClient::new(&endpoint, id, Some(bootstrap))?;

    for path in [data_in_path(id), device::control_in_path(id)] {
        let reply = device.get(&path, None).await?;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "GET {path}: {}",
            reply.text()
        );
    }
    let body = device.envelope("event", &json!({}))?;
    let reply = device.post(&device::control_out_path(id), body).await?;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "control/out: {}",
        reply.text()
    );
    let reply = device
        .post_directive(
            flotta_api::edge::DIRECTIVE_HEARTBEAT,
            &device::heartbeat(None, &[]),
        )
        .await?;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "heartbeat: {}",
        reply.text()
    );
    // The device has registered: the shared certificate cannot take it over again.
    let reply = device
        .post_directive(
            flotta_api::edge::DIRECTIVE_REGISTRATION,
            &flotta_api::edge::RegistrationInfo {
                hardware: None,
                certificate_request: Some(device::key_and_csr(id)?.1),
            },
        )
        .await?;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "re-registration: {}",
        reply.text()
    );
    // Enrolling is what it is for: the device exists, so 208.
    assert_eq!(device.enrol(&enrolment(id)).await?, Enrolment::Known);
    // The device's own certificate renews (registration with its own certificate).
    let renewed = registered.register(None).await?;
    assert_eq!(renewed.subject()?.common_name.as_deref(), Some(id));
    registered.full_configuration().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_device_certificate_or_with_bad_input_get_4xx() -> Result<()> {
    let (server, endpoint) = start(&[])?;
    // No client certificate: the TLS handshake is refused, so no request gets through.
    let mut anonymous = DeviceClient::new(&endpoint, "dev-anon", None)?;
    let result = anonymous.get(&data_in_path("dev-anon"), None).await;
    assert!(
        result.is_err(),
        "a request without a certificate was answered: {result:?}"
    );

    let mut device = joined_device(&server, &endpoint, "dev-input").await?;
    let path = data_out_path("dev-input");
    let cases: [(&str, Vec<u8>, StatusCode); 4] = [
        (
            "malformed JSON",
            b"{\"directive\":".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown directive",
            br#"{"type":"data","directive":"reboot","content":{}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "heartbeat content of the wrong shape",
            br#"{"type":"data","directive":"heartbeat","content":{"workloads":7}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a body over the limit",
            vec![b' '; 2 << 20],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, body, expected) in cases {
        // An oversized body may make the server close the connection after answering.
        let reply = device.post(&path, body.into()).await?;
        assert_eq!(reply.status, expected, "{what}: {}", reply.text());
    }
    // The device still works afterwards.
    device.full_configuration().await?;
    Ok(())
}

#[test]
fn ages_and_times() {
    assert_eq!(age_seconds("45s"), Some(45));
    assert_eq!(age_seconds("2m10s"), Some(130));
    assert_eq!(age_seconds("3h"), Some(10_800));
    assert_eq!(age_seconds("<unknown>"), None);
    assert_eq!(age_seconds("5"), None);
    assert!(is_recent(&jiff::Timestamp::now().to_string(), Duration::from_secs(5)).unwrap());
    assert!(!is_recent("2001-01-01T00:00:00Z", Duration::from_secs(5)).unwrap());
    let page = "# TYPE x counter\nx_total{reason=\"a\"} 2\nx_total{reason=\"b\"} 3\nx_totally 9\n";
    assert_eq!(metric_sum(page, "x_total").unwrap(), 5.0);
    assert!(metric_sum(page, "y").is_err());
}
