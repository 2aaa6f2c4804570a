//! The podman runtime against the real `podman` (Debian's podman with runc), with an image
//! imported locally from Debian's `busybox-static` (no registry is reachable) and the
//! project's `agent/containers.conf` through `CONTAINERS_CONF`.
//!
//! The tests skip only when `podman` is not on PATH; with podman present every failure is
//! a failure. Each test uses its own workload names, ports and state directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step fails the test

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use flotta_agent::runtime::podman::Podman;
use flotta_agent::runtime::{ContainerRuntime, WorkloadPhase};
use flotta_agent::state::StateDir;
use flotta_api::edge::{Secret, Workload};

mod support;
use support::{ENV, IMAGE, podman, podman_ready};

fn runtime(state: &Path) -> Podman {
    // The runtime inherits CONTAINERS_CONF through a wrapper script when the test set it.
    let program = match ENV.get() {
        Some((key, value)) => {
            let script = state.join("podman-wrapper");
            std::fs::create_dir_all(state).unwrap();
            std::fs::write(
                &script,
                format!("#!/bin/sh\n{key}={value} exec podman \"$@\"\n"),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            script
        }
        None => "podman".into(),
    };
    Podman::new(program, StateDir::new(state.join("data")), "dev-7")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A web workload serving `text` followed by its DEVICE_ID on `port`.
fn web(name: &str, port: u16, text: &str) -> Workload {
    Workload {
        name: Some(name.to_owned()),
        labels: [("app".to_owned(), name.to_owned())].into(),
        specification: Some(format!(
            "containers:\n- name: web\n  image: {IMAGE}\n  command: [\"/bin/sh\", \"-c\", \
             \"mkdir -p /www; echo {text}-$DEVICE_ID > /www/index.html; \
             echo x > /export/proof; exec httpd -f -p 8080 -h /www\"]\n  ports:\n  \
             - containerPort: 8080\n    hostPort: {port}\n"
        )),
        ..Workload::default()
    }
}

fn http_get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn phase(runtime: &Podman, name: &str) -> Option<WorkloadPhase> {
    runtime
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|state| state.name == name)
        .map(|state| state.phase)
}

#[tokio::test]
async fn workload_starts_answers_is_replaced_restarted_and_removed() {
    if !podman_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let name = format!("wl-{}", std::process::id());
    let port = free_port();

    runtime
        .apply(&web(&name, port, "one"), "dev-7")
        .await
        .unwrap();
    let body = wait_for("the workload's port", || {
        http_get(port).filter(|b| b.contains("one-dev-7"))
    });
    assert!(body.contains("one-dev-7"), "{body}");
    assert_eq!(phase(&runtime, &name).await, Some(WorkloadPhase::Running));
    let export = dir
        .path()
        .join("data")
        .join("volumes")
        .join(&name)
        .join("proof");
    assert!(export.exists(), "/export is the volume under the data dir");

    // A changed workload replaces the old one.
    runtime
        .apply(&web(&name, port, "two"), "dev-7")
        .await
        .unwrap();
    wait_for("the replaced workload", || {
        http_get(port).filter(|b| b.contains("two-dev-7"))
    });

    // A killed container is noticed and restarted.
    let status = podman()
        .args(["kill", &format!("{name}-web")])
        .status()
        .unwrap();
    assert!(status.success());
    let mut seen = None;
    for _ in 0..50 {
        seen = phase(&runtime, &name).await;
        if seen.is_some_and(WorkloadPhase::needs_restart) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen.is_some_and(WorkloadPhase::needs_restart), "{seen:?}");
    runtime.restart(&name).await.unwrap();
    wait_for("the restarted workload", || {
        http_get(port).filter(|b| b.contains("two-dev-7"))
    });

    // Removal tears it down.
    runtime.remove(&name).await.unwrap();
    assert_eq!(phase(&runtime, &name).await, None);
    assert!(http_get(port).is_none(), "the port is closed");
    runtime.remove(&name).await.unwrap();
}

#[tokio::test]
async fn secrets_follow_the_configuration() {
    if !podman_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let name = format!("sec-{}", std::process::id());
    let secret = Secret {
        name: Some(name.clone()),
        data: Some(r#"{"k":"dg=="}"#.to_owned()),
    };
    let exists = |name: &str| {
        podman()
            .args(["secret", "inspect", name])
            .output()
            .unwrap()
            .status
            .success()
    };
    runtime
        .sync_secrets(std::slice::from_ref(&secret))
        .await
        .unwrap();
    assert!(exists(&name));
    runtime.sync_secrets(&[secret]).await.unwrap();
    assert!(exists(&name), "a re-sync replaces, not removes");
    runtime.sync_secrets(&[]).await.unwrap();
    assert!(!exists(&name));
}
