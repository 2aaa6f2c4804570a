//! kubectl v1.32 against a real `flotta-apiserver`: discovery, CRUD, printer columns, watch,
//! client-side apply, diff, patch types, selectors, finalizers, explain, optimistic
//! concurrency and validation. Each test starts its own server.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, ensure};
use flotta_e2e::{DEFAULT_TIMEOUT, GROUP, Probe, Server, Table, fixture, wait_for};
use serde_json::Value;

/// The six kinds: (plural, kind, fixture, object name in the fixture).
const KINDS: [(&str, &str, &str, &str); 6] = [
    ("edgedevices", "EdgeDevice", "edgedevice.yaml", "dev1"),
    (
        "edgedevicesets",
        "EdgeDeviceSet",
        "edgedeviceset.yaml",
        "set1",
    ),
    ("edgeworkloads", "EdgeWorkload", "edgeworkload.yaml", "wl1"),
    (
        "edgedevicesignedrequests",
        "EdgeDeviceSignedRequest",
        "edsr.yaml",
        "device-7f3a",
    ),
    ("edgeconfigs", "EdgeConfig", "edgeconfig.yaml", "cfg1"),
    (
        "playbookexecutions",
        "PlaybookExecution",
        "playbookexecution.yaml",
        "dev1-cfg1",
    ),
];

fn path_of(name: &str) -> Result<String> {
    fixture(name)
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("fixture path is not UTF-8"))
}

fn read_fixture(name: &str) -> Result<String> {
    let path = fixture(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn create_fixture(server: &Server, name: &str) -> Result<String> {
    server.run_ok(&["create", "-f", &path_of(name)?])
}

/// `-o name` output as a set of object names (the part after the `/`).
fn names(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.rsplit('/').next().unwrap_or(line).trim().to_owned())
        .collect()
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn resource_version(object: &Value) -> Result<String> {
    object["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no metadata.resourceVersion in {object}"))
}

fn assert_not_found(server: &Server, args: &[&str]) -> Result<()> {
    let stderr = server.run_err(args)?;
    ensure!(
        stderr.contains("NotFound") || stderr.contains("not found"),
        "expected NotFound from {args:?}, got: {stderr}"
    );
    Ok(())
}

#[test]
fn api_resources_lists_the_six_kinds() -> Result<()> {
    let server = Server::start()?;
    let stdout = server.run_ok(&[
        "api-resources",
        &format!("--api-group={GROUP}"),
        "-o",
        "wide",
    ])?;
    let table = Table::parse(&stdout)?;
    table.require_columns(&[
        "NAME",
        "SHORTNAMES",
        "APIVERSION",
        "NAMESPACED",
        "KIND",
        "VERBS",
        "CATEGORIES",
    ])?;
    let listed: BTreeSet<String> = table.column_values("NAME")?.into_iter().collect();
    let expected: BTreeSet<String> = KINDS.iter().map(|kind| kind.0.to_owned()).collect();
    assert_eq!(listed, expected, "{stdout}");
    for (plural, kind, _, _) in KINDS {
        assert_eq!(table.cell(plural, "KIND")?, kind, "{stdout}");
        assert_eq!(table.cell(plural, "NAMESPACED")?, "true", "{stdout}");
        assert_eq!(
            table.cell(plural, "APIVERSION")?,
            format!("{GROUP}/v1alpha1"),
            "{stdout}"
        );
        let verbs = table.cell(plural, "VERBS")?;
        for verb in [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ] {
            assert!(
                // kubectl 1.32 prints `create,delete,…`; older ones `[create delete …]`.
                verbs
                    .split(|c: char| c == '[' || c == ']' || c == ',' || c.is_whitespace())
                    .any(|listed| listed == verb),
                "{plural} lacks verb {verb}: {verbs}"
            );
        }
        assert!(
            table.cell(plural, "CATEGORIES")?.contains("flotta"),
            "{plural} is not in category flotta:\n{stdout}"
        );
    }
    assert_eq!(
        table.cell("edgedevicesignedrequests", "SHORTNAMES")?,
        "edsr",
        "{stdout}"
    );
    Ok(())
}

#[test]
fn create_every_kind_and_read_server_metadata() -> Result<()> {
    // Manual approval: the signed request must stay as written (generation 1, not approved).
    let server = Server::start_with(&["--auto-approve=false"])?;
    for (plural, _, file, name) in KINDS {
        let stdout = create_fixture(&server, file)?;
        assert!(
            stdout.contains(&format!("{plural}.{GROUP}/{name} created"))
                || stdout.contains(&format!("/{name} created")),
            "unexpected create output: {stdout}"
        );
    }
    for (plural, kind, _, name) in KINDS {
        let yaml = server.run_ok(&["get", plural, name, "-o", "yaml"])?;
        let has_line = |prefix: &str| yaml.lines().any(|line| line.trim().starts_with(prefix));
        assert!(has_line(&format!("kind: {kind}")), "{yaml}");
        assert!(has_line(&format!("apiVersion: {GROUP}/v1alpha1")), "{yaml}");
        assert!(has_line("uid: "), "no uid:\n{yaml}");
        assert!(has_line("resourceVersion: "), "no resourceVersion:\n{yaml}");
        assert!(has_line("generation: 1"), "generation is not 1:\n{yaml}");
        assert!(
            has_line("creationTimestamp: "),
            "no creationTimestamp:\n{yaml}"
        );

        let object = server.get_json(&["get", plural, name])?;
        let metadata = &object["metadata"];
        assert_eq!(metadata["name"], name);
        assert_eq!(metadata["namespace"], "default");
        assert!(
            metadata["uid"].as_str().is_some_and(|uid| uid.len() >= 32),
            "uid is not a UUID: {metadata}"
        );
        let rv = resource_version(&object)?;
        assert!(
            rv.parse::<u64>().is_ok_and(|rv| rv > 0),
            "resourceVersion {rv:?} is not a positive integer"
        );
        assert_eq!(metadata["generation"], 1, "{metadata}");
        let created = metadata["creationTimestamp"].as_str().unwrap_or_default();
        assert!(
            created.len() == 20 && created.ends_with('Z') && created.contains('T'),
            "creationTimestamp {created:?} is not RFC 3339 at second precision"
        );
    }
    // The category lists every kind at once.
    let all = names(&server.run_ok(&["get", "flotta", "-o", "name"])?);
    let expected: BTreeSet<String> = KINDS.iter().map(|kind| kind.3.to_owned()).collect();
    assert_eq!(all, expected);
    // Creating the same object twice is refused.
    let stderr = server.run_err(&["create", "-f", &path_of("edgedevice.yaml")?])?;
    assert!(
        stderr.contains("AlreadyExists") || stderr.contains("already exists"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn edgedevice_printer_columns() -> Result<()> {
    let server = Server::start()?;
    create_fixture(&server, "edgedevice.yaml")?;
    let stdout = server.run_ok(&["get", "edgedevices"])?;
    let table = Table::parse(&stdout)?;
    table.require_columns(&["NAME", "PHASE", "LAST SEEN", "WORKLOADS", "AGE"])?;
    table.row("dev1")?;
    let wide = Table::parse(&server.run_ok(&["get", "edgedevices", "-o", "wide"])?)?;
    wide.require_columns(&["NAME", "PHASE", "LAST SEEN", "WORKLOADS", "AGE"])?;
    assert!(
        wide.columns().len() > table.columns().len(),
        "-o wide shows no more columns than the default:\n{}\n{}",
        table.text(),
        wide.text()
    );
    wide.row("dev1")?;
    Ok(())
}

#[test]
fn edgeworkload_and_edsr_printer_columns() -> Result<()> {
    // Manual approval: the signed request must stay as written (generation 1, not approved).
    let server = Server::start_with(&["--auto-approve=false"])?;
    create_fixture(&server, "edgeworkload.yaml")?;
    create_fixture(&server, "edsr.yaml")?;

    let stdout = server.run_ok(&["get", "edgeworkloads"])?;
    let table = Table::parse(&stdout)?;
    table.require_columns(&["NAME", "TYPE", "AGE"])?;
    let device_column = table
        .columns()
        .iter()
        .find(|column| column.eq_ignore_ascii_case("TARGET"))
        .ok_or_else(|| anyhow!("no TARGET (device or selector) column:\n{stdout}"))?
        .clone();
    assert_eq!(table.cell("wl1", "TYPE")?, "pod", "{stdout}");
    assert!(
        table.cell("wl1", &device_column)?.contains("dev1"),
        "{stdout}"
    );
    // A workload placed by selector shows its selector in the same column.
    let by_selector = read_fixture("edgeworkload.yaml")?
        .replace("  name: wl1\n", "  name: wl2\n")
        .replace(
            "  device: dev1\n",
            "  deviceSelector:\n    matchLabels:\n      env: prod\n",
        );
    server.run_ok_stdin(&["create", "-f", "-"], &by_selector)?;
    let stdout = server.run_ok(&["get", "edgeworkloads"])?;
    let table = Table::parse(&stdout)?;
    let selector = table.cell("wl2", &device_column)?;
    assert!(
        selector.contains("env") && selector.contains("prod"),
        "selector not shown: {stdout}"
    );

    let stdout = server.run_ok(&["get", "edsr"])?;
    let table = Table::parse(&stdout)?;
    table.require_columns(&["NAME", "TARGET NAMESPACE", "APPROVED", "STATE"])?;
    assert_eq!(
        table.cell("device-7f3a", "TARGET NAMESPACE")?,
        "default",
        "{stdout}"
    );
    assert_eq!(table.cell("device-7f3a", "APPROVED")?, "false", "{stdout}");
    Ok(())
}

#[test]
fn get_watch_sees_added_modified_deleted() -> Result<()> {
    let server = Server::start()?;
    let mut watch = server.kubectl_lines(&[
        "get",
        "edgedevices",
        "-w",
        "--output-watch-events",
        "-L",
        "watched",
    ])?;
    create_fixture(&server, "edgedevice.yaml")?;
    let is_event = |event: &'static str| {
        move |line: &str| {
            let mut words = line.split_whitespace();
            words.next() == Some(event) && words.next() == Some("dev1")
        }
    };
    watch.expect_line("ADDED dev1", DEFAULT_TIMEOUT, is_event("ADDED"))?;

    server.run_ok(&["label", "edgedevice", "dev1", "watched=yes-indeed"])?;
    watch.expect_line(
        "MODIFIED dev1 carrying the new label",
        DEFAULT_TIMEOUT,
        |line| is_event("MODIFIED")(line) && line.contains("yes-indeed"),
    )?;

    server.run_ok(&["delete", "edgedevice", "dev1", "--wait=false"])?;
    watch.expect_line("DELETED dev1", DEFAULT_TIMEOUT, is_event("DELETED"))?;
    Ok(())
}

#[test]
fn apply_creates_configures_and_is_unchanged() -> Result<()> {
    let server = Server::start()?;
    let original = read_fixture("edgedevice.yaml")?;

    let stdout = server.run_ok_stdin(&["apply", "-f", "-"], &original)?;
    assert!(stdout.contains("dev1 created"), "{stdout}");
    let object = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert!(
        object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string(),
        "client-side apply did not store last-applied-configuration: {object}"
    );

    // A label set out of band must survive the 3-way merge; a label removed from the
    // manifest must be removed from the object.
    server.run_ok(&["label", "edgedevice", "dev1", "owner=ops"])?;
    let changed = original
        .replace("periodSeconds: 30", "periodSeconds: 60")
        .replace("    env: prod\n", "    tier: edge\n");
    assert_ne!(changed, original, "fixture edit did not apply");
    let stdout = server.run_ok_stdin(&["apply", "-f", "-"], &changed)?;
    assert!(stdout.contains("dev1 configured"), "{stdout}");
    let object = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert_eq!(object["spec"]["heartbeat"]["periodSeconds"], 60, "{object}");
    assert_eq!(object["metadata"]["generation"], 2, "{object}");
    let labels = &object["metadata"]["labels"];
    assert_eq!(labels["tier"], "edge", "{labels}");
    assert_eq!(labels["owner"], "ops", "out-of-band label lost: {labels}");
    assert!(labels.get("env").is_none(), "removed label kept: {labels}");
    let rv = resource_version(&object)?;

    let stdout = server.run_ok_stdin(&["apply", "-f", "-"], &changed)?;
    assert!(stdout.contains("dev1 unchanged"), "{stdout}");
    let object = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert_eq!(resource_version(&object)?, rv, "no-op apply wrote");
    assert_eq!(object["metadata"]["generation"], 2);
    Ok(())
}

#[test]
fn diff_shows_change_without_writing() -> Result<()> {
    let server = Server::start()?;
    let original = read_fixture("edgedevice.yaml")?;
    server.run_ok_stdin(&["apply", "-f", "-"], &original)?;
    let before = server.get_json(&["get", "edgedevice", "dev1"])?;

    let same = server.kubectl_stdin(&["diff", "-f", "-"], &original)?;
    assert_eq!(same.code(), Some(0), "diff of the applied manifest: {same}");
    assert!(same.stdout.trim().is_empty(), "{same}");

    let changed = original.replace("periodSeconds: 30", "periodSeconds: 60");
    let diff = server.kubectl_stdin(&["diff", "-f", "-"], &changed)?;
    assert_eq!(
        diff.code(),
        Some(1),
        "diff with a change must exit 1: {diff}"
    );
    let lines: Vec<&str> = diff.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with('-') && line.contains("periodSeconds: 30")),
        "{diff}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with('+') && line.contains("periodSeconds: 60")),
        "{diff}"
    );
    assert!(
        !lines
            .iter()
            .any(|line| (line.starts_with('+') || line.starts_with('-'))
                && line.contains("resourceVersion")),
        "dry-run changed the resourceVersion: {diff}"
    );

    let after = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert_eq!(resource_version(&after)?, resource_version(&before)?);
    assert_eq!(after["spec"]["heartbeat"]["periodSeconds"], 30);
    Ok(())
}

#[test]
fn patch_merge_and_json_work_strategic_is_unsupported() -> Result<()> {
    let server = Server::start()?;
    create_fixture(&server, "edgedevice.yaml")?;

    let stdout = server.run_ok(&[
        "patch",
        "edgedevice",
        "dev1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"heartbeat":{"periodSeconds":45}},"metadata":{"labels":{"patched":"merge"}}}"#,
    ])?;
    assert!(stdout.contains("dev1 patched"), "{stdout}");
    let object = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert_eq!(object["spec"]["heartbeat"]["periodSeconds"], 45, "{object}");
    assert_eq!(
        object["spec"]["heartbeat"]["hardwareProfile"]["include"],
        true
    );
    assert_eq!(object["metadata"]["labels"]["patched"], "merge");
    assert_eq!(object["metadata"]["labels"]["env"], "prod");
    assert_eq!(object["metadata"]["generation"], 2);

    server.run_ok(&[
        "patch",
        "edgedevice",
        "dev1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/heartbeat/periodSeconds","value":15},{"op":"remove","path":"/metadata/labels/env"}]"#,
    ])?;
    let object = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert_eq!(object["spec"]["heartbeat"]["periodSeconds"], 15, "{object}");
    assert!(
        object["metadata"]["labels"].get("env").is_none(),
        "{object}"
    );
    let rv = resource_version(&object)?;

    // A failing JSON patch `test` op is refused and changes nothing.
    server.run_err(&[
        "patch",
        "edgedevice",
        "dev1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/spec/heartbeat/periodSeconds","value":99},{"op":"replace","path":"/spec/heartbeat/periodSeconds","value":99}]"#,
    ])?;

    let stderr = server.run_err(&[
        "patch",
        "edgedevice",
        "dev1",
        "-p",
        r#"{"metadata":{"labels":{"patched":"strategic"}}}"#,
    ])?;
    assert!(
        stderr.contains("application/strategic-merge-patch+json")
            || stderr.contains("UnsupportedMediaType")
            || stderr.contains("415"),
        "strategic merge patch did not fail as unsupported: {stderr}"
    );
    let object = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert_eq!(object["metadata"]["labels"]["patched"], "merge");
    assert_eq!(resource_version(&object)?, rv, "a refused patch wrote");
    Ok(())
}

fn device(name: &str, namespace: &str, labels: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: {GROUP}/v1alpha1\nkind: EdgeDevice\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
    );
    if !labels.is_empty() {
        yaml.push_str("  labels:\n");
        for (key, value) in labels {
            yaml.push_str(&format!("    {key}: \"{value}\"\n"));
        }
    }
    yaml.push_str("spec:\n  heartbeat:\n    periodSeconds: 30\n");
    yaml
}

fn create_devices(server: &Server, devices: &[String]) -> Result<()> {
    server.run_ok_stdin(&["create", "-f", "-"], &devices.join("---\n"))?;
    Ok(())
}

#[test]
fn label_and_field_selectors() -> Result<()> {
    let server = Server::start()?;
    create_devices(
        &server,
        &[
            device("a", "default", &[("env", "prod")]),
            device("b", "default", &[("env", "stage")]),
            device("c", "default", &[("env", "stage"), ("legacy", "true")]),
            device("d", "default", &[("env", "dev")]),
            device("e", "default", &[]),
        ],
    )?;
    let get = |args: &[&str]| -> Result<BTreeSet<String>> {
        let mut full = vec!["get", "edgedevices", "-o", "name"];
        full.extend_from_slice(args);
        Ok(names(&server.run_ok(&full)?))
    };
    assert_eq!(
        get(&["-l", "env in (prod,stage),!legacy"])?,
        set_of(&["a", "b"])
    );
    assert_eq!(get(&["-l", "env=stage"])?, set_of(&["b", "c"]));
    assert_eq!(get(&["-l", "env notin (prod,stage)"])?, set_of(&["d", "e"]));
    assert_eq!(get(&["-l", "env,env!=dev"])?, set_of(&["a", "b", "c"]));
    assert_eq!(get(&["-l", "legacy"])?, set_of(&["c"]));
    assert_eq!(
        get(&["--field-selector", "metadata.name=b"])?,
        set_of(&["b"])
    );
    assert_eq!(
        get(&["--field-selector", "metadata.name!=b", "-l", "env"])?,
        set_of(&["a", "c", "d"])
    );

    let stderr = server.run_err(&["get", "edgedevices", "--field-selector", "spec.foo=bar"])?;
    assert!(
        stderr.contains("BadRequest") || stderr.contains("400"),
        "unknown field selector did not give 400: {stderr}"
    );
    assert!(
        stderr.contains("spec.foo"),
        "message does not name the field: {stderr}"
    );

    let stderr = server.run_err(&["get", "edgedevices", "-l", "env in (prod"])?;
    assert!(!stderr.is_empty(), "a malformed label selector must fail");
    Ok(())
}

#[test]
fn all_namespaces_lists_both_namespaces() -> Result<()> {
    let server = Server::start()?;
    create_devices(
        &server,
        &[
            device("north", "alpha", &[("site", "x")]),
            device("south", "beta", &[("site", "x")]),
        ],
    )?;
    let stdout = server.run_ok(&["get", "edgedevices", "-A"])?;
    let table = Table::parse(&stdout)?;
    table.require_columns(&["NAMESPACE", "NAME", "PHASE", "AGE"])?;
    assert_eq!(table.cell("north", "NAMESPACE")?, "alpha", "{stdout}");
    assert_eq!(table.cell("south", "NAMESPACE")?, "beta", "{stdout}");
    assert_eq!(table.rows().len(), 2, "{stdout}");

    assert_eq!(
        names(&server.run_ok(&["get", "edgedevices", "-n", "alpha", "-o", "name"])?),
        set_of(&["north"])
    );
    let stdout = server.run_ok(&["get", "edgedevices", "-n", "default", "-o", "name"])?;
    assert!(
        stdout.trim().is_empty(),
        "default namespace is not empty: {stdout}"
    );
    let all = server.get_json(&["get", "edgedevices", "--all-namespaces", "-l", "site=x"])?;
    let namespaces: BTreeSet<String> = all["items"]
        .as_array()
        .ok_or_else(|| anyhow!("no items in {all}"))?
        .iter()
        .filter_map(|item| item["metadata"]["namespace"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(namespaces, set_of(&["alpha", "beta"]));
    Ok(())
}

#[test]
fn delete_without_finalizer_removes_the_object() -> Result<()> {
    let server = Server::start()?;
    create_fixture(&server, "edgedeviceset.yaml")?;
    let stdout = server.run_ok(&["delete", "edgedeviceset", "set1"])?;
    assert!(
        stdout.contains("set1\" deleted") || stdout.contains("set1 deleted"),
        "{stdout}"
    );
    assert_not_found(&server, &["get", "edgedeviceset", "set1"])?;
    Ok(())
}

#[test]
fn delete_with_finalizer_waits_for_the_finalizer() -> Result<()> {
    let server = Server::start()?;
    let manifest = read_fixture("edgedeviceset.yaml")?.replace(
        "  name: set1\n",
        "  name: held\n  finalizers:\n    - example.com/hold\n",
    );
    server.run_ok_stdin(&["create", "-f", "-"], &manifest)?;

    server.run_ok(&["delete", "edgedeviceset", "held", "--wait=false"])?;
    let object = server.get_json(&["get", "edgedeviceset", "held"])?;
    assert!(
        object["metadata"]["deletionTimestamp"].is_string(),
        "no deletionTimestamp on a finalized object: {object}"
    );
    assert_eq!(object["metadata"]["finalizers"][0], "example.com/hold");

    server.run_ok(&[
        "patch",
        "edgedeviceset",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers/0"}]"#,
    ])?;
    wait_for(
        "the finalized object to disappear",
        DEFAULT_TIMEOUT,
        || match server.kubectl(&["get", "edgedeviceset", "held", "-o", "name"]) {
            Ok(output) if !output.success() && output.stderr.contains("NotFound") => {
                Probe::Ready(())
            }
            Ok(output) if !output.success() && output.stderr.contains("not found") => {
                Probe::Ready(())
            }
            Ok(output) => Probe::Pending(output.to_string()),
            Err(error) => Probe::Failed(error),
        },
    )?;
    Ok(())
}

#[test]
fn explain_describes_the_schema() -> Result<()> {
    let server = Server::start()?;
    let stdout = server.run_ok(&["explain", "edgedevice.spec"])?;
    for field in ["heartbeat", "osInformation", "metrics"] {
        assert!(
            stdout.contains(field),
            "explain edgedevice.spec lacks {field}:\n{stdout}"
        );
    }
    let stdout = server.run_ok(&["explain", "edgedevice.spec.heartbeat"])?;
    assert!(stdout.contains("periodSeconds"), "{stdout}");
    let stdout = server.run_ok(&["explain", "edgeworkload.spec.pod"])?;
    assert!(stdout.contains("spec"), "{stdout}");
    let stdout = server.run_ok(&["explain", "edgeworkload.spec.pod.spec.containers"])?;
    assert!(stdout.contains("image"), "{stdout}");
    Ok(())
}

#[test]
fn replace_with_stale_resource_version_conflicts() -> Result<()> {
    let server = Server::start()?;
    create_fixture(&server, "edgedevice.yaml")?;
    let mut stale = server.get_json(&["get", "edgedevice", "dev1"])?;
    server.run_ok(&["label", "edgedevice", "dev1", "bump=1"])?;

    stale["spec"]["heartbeat"]["periodSeconds"] = Value::from(90);
    let stderr = server.run_err_stdin(&["replace", "-f", "-"], &stale.to_string())?;
    assert!(
        stderr.contains("Conflict") || stderr.contains("the object has been modified"),
        "stale replace did not conflict: {stderr}"
    );
    let object = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert_eq!(object["spec"]["heartbeat"]["periodSeconds"], 30);

    // The same replace on the current version succeeds, so the conflict was about the version.
    let mut fresh = object;
    fresh["spec"]["heartbeat"]["periodSeconds"] = Value::from(90);
    let stdout = server.run_ok_stdin(&["replace", "-f", "-"], &fresh.to_string())?;
    assert!(stdout.contains("dev1 replaced"), "{stdout}");
    let object = server.get_json(&["get", "edgedevice", "dev1"])?;
    assert_eq!(object["spec"]["heartbeat"]["periodSeconds"], 90);
    assert_eq!(object["metadata"]["labels"]["bump"], "1");
    Ok(())
}

#[test]
fn workload_with_liveness_probe_is_rejected() -> Result<()> {
    let server = Server::start()?;
    let stderr = server.run_err(&["create", "-f", &path_of("edgeworkload-liveness.yaml")?])?;
    assert!(
        stderr.contains("spec.pod.spec.containers[0].livenessProbe"),
        "rejection does not name the field: {stderr}"
    );
    assert!(
        stderr.contains("Invalid") || stderr.contains("invalid"),
        "rejection is not a validation error: {stderr}"
    );
    assert_not_found(&server, &["get", "edgeworkload", "wl-probe"])?;
    // The same workload without the probe is accepted.
    let manifest = read_fixture("edgeworkload-liveness.yaml")?;
    let without_probe: String = manifest
        .split_inclusive('\n')
        .take_while(|line| !line.contains("livenessProbe"))
        .collect();
    server.run_ok_stdin(&["create", "-f", "-"], &without_probe)?;
    Ok(())
}
