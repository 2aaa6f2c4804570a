//! The deployment manifests of aggregated mode: `kubectl kustomize deploy/apiservice`
//! renders, and every object carries what the aggregation contract needs
//! (`kube-api-contract.md` §1.1–§1.3, §9 items 1, 2, 21); `hack/apiservice-certs.sh`
//! writes an overlay whose APIService `caBundle` verifies the serving certificate for
//! `flotta-apiserver.flotta.svc`, a certificate this server can load. Uses the real
//! `kubectl` (its built-in kustomize) and `openssl`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use flotta_apiserver::cluster::serving_certificate::ServingCertificate;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;

const SIX: [&str; 6] = [
    "edgedevices",
    "edgedevicesets",
    "edgeworkloads",
    "edgedevicesignedrequests",
    "edgeconfigs",
    "playbookexecutions",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn kustomize(dir: &Path) -> Vec<Value> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {kubectl} kustomize (is kubectl installed?): {e}"));
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    serde_saphyr::from_multiple::<Value>(&text).expect("rendered YAML parses")
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn binds_service_account(binding: &Value, role_kind: &str, role: &str) -> bool {
    binding["roleRef"]["kind"] == role_kind
        && binding["roleRef"]["name"] == role
        && binding["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
        && binding["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == "flotta-apiserver"
                    && s["namespace"] == "flotta"
            })
        })
}

/// Whether some rule of `role` grants every verb on every resource in `group`.
fn grants(role: &Value, group: &str, resources: &[&str], verbs: &[&str]) -> bool {
    resources.iter().all(|resource| {
        verbs.iter().all(|verb| {
            role["rules"].as_array().is_some_and(|rules| {
                rules.iter().any(|rule| {
                    strings(&rule["apiGroups"]).contains(&group)
                        && strings(&rule["resources"]).contains(resource)
                        && strings(&rule["verbs"]).contains(verb)
                        && rule.get("resourceNames").is_none()
                })
            })
        })
    })
}

#[test]
fn base_renders_with_everything_the_aggregator_needs() {
    let objects = kustomize(&repo_root().join("deploy/apiservice"));

    // Namespaces: everything in flotta, except the reader binding in kube-system.
    find(&objects, "Namespace", "flotta");
    for object in &objects {
        let namespace = object["metadata"]["namespace"].as_str();
        let kind = object["kind"].as_str().unwrap_or("");
        match kind {
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "APIService" => {
                assert_eq!(namespace, None, "{kind} is cluster-scoped")
            }
            "RoleBinding"
                if object["metadata"]["name"]
                    == "flotta-apiserver:extension-apiserver-authentication-reader" =>
            {
                assert_eq!(namespace, Some("kube-system"))
            }
            _ => assert_eq!(
                namespace,
                Some("flotta"),
                "{kind} {}",
                object["metadata"]["name"]
            ),
        }
    }

    // APIService (§1.1).
    let api_service = find(
        &objects,
        "APIService",
        "v1alpha1.management.project-flotta.io",
    );
    assert_eq!(api_service["apiVersion"], "apiregistration.k8s.io/v1");
    let spec = &api_service["spec"];
    assert_eq!(
        format!(
            "{}.{}",
            spec["version"].as_str().unwrap(),
            spec["group"].as_str().unwrap()
        ),
        "v1alpha1.management.project-flotta.io"
    );
    let group_priority = spec["groupPriorityMinimum"]
        .as_i64()
        .expect("groupPriorityMinimum");
    assert!((1..20000).contains(&group_priority));
    let version_priority = spec["versionPriority"].as_i64().expect("versionPriority");
    assert!((1..=1000).contains(&version_priority));
    assert!(
        spec.get("insecureSkipTLSVerify").is_none(),
        "the CA is pinned, never skipped"
    );
    assert_eq!(spec["service"]["namespace"], "flotta");
    let service_port = spec["service"]["port"].as_i64().unwrap_or(443);

    // The Service it names has that port, targeting the container's secure port.
    let service = find(
        &objects,
        "Service",
        spec["service"]["name"].as_str().unwrap(),
    );
    let port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"].as_i64() == Some(service_port))
        .expect("a Service port equal to spec.service.port");
    let deployment = find(&objects, "Deployment", "flotta-apiserver");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let container_port = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("container port {name}"))
    };
    let args = strings(&container["args"]);
    let arg = |flag: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{flag}=")))
            .unwrap_or_else(|| panic!("no {flag}= argument in {args:?}"))
    };
    let target = port["targetPort"].as_str().expect("named targetPort");
    assert_eq!(container_port(target).to_string(), arg("--secure-port"));
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[key], value, "the Service selects the pods");
    }

    // The device Service reaches the device port.
    let device = find(&objects, "Service", "flotta-edge-api");
    let device_target = device["spec"]["ports"][0]["targetPort"].as_str().unwrap();
    assert_eq!(
        container_port(device_target).to_string(),
        arg("--device-port")
    );

    // The Deployment: aggregated mode on all interfaces, serving certificate files from
    // the Secret, probes on the metrics port, one replica on a PVC, restricted context.
    assert_eq!(arg("--mode"), "aggregated");
    assert_eq!(arg("--bind-address"), "0.0.0.0");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(pod["serviceAccountName"], "flotta-apiserver");
    let metrics = container_port("metrics").to_string();
    assert_eq!(arg("--metrics-port"), metrics);
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/livez")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let volumes = pod["volumes"].as_array().unwrap();
    let claim = volumes
        .iter()
        .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .expect("a PVC volume");
    find(&objects, "PersistentVolumeClaim", claim);
    let serving_secret = volumes
        .iter()
        .find_map(|v| v["secret"]["secretName"].as_str())
        .expect("the serving Secret volume");
    assert_eq!(serving_secret, "flotta-apiserver-serving");
    let data_mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "data")
        .expect("data mount");
    assert_eq!(data_mount["mountPath"].as_str().unwrap(), arg("--data-dir"));
    assert!(arg("--tls-cert-file").starts_with("/etc/flotta/serving/"));
    assert!(arg("--tls-private-key-file").starts_with("/etc/flotta/serving/"));
    find(&objects, "ServiceAccount", "flotta-apiserver");

    // RBAC of delegation (§1.3).
    assert!(binds_service_account(
        find(
            &objects,
            "ClusterRoleBinding",
            "flotta-apiserver:system:auth-delegator"
        ),
        "ClusterRole",
        "system:auth-delegator"
    ));
    assert!(binds_service_account(
        find(
            &objects,
            "RoleBinding",
            "flotta-apiserver:extension-apiserver-authentication-reader"
        ),
        "Role",
        "extension-apiserver-authentication-reader"
    ));
    // What the server reads itself, bound to its ServiceAccount.
    let own = find(&objects, "ClusterRole", "flotta-apiserver");
    assert!(grants(
        own,
        "",
        &["configmaps", "secrets", "namespaces"],
        &["get", "list", "watch"]
    ));
    assert!(grants(
        own,
        "events.k8s.io",
        &["events"],
        &["create", "patch"]
    ));
    assert!(binds_service_account(
        find(&objects, "ClusterRoleBinding", "flotta-apiserver"),
        "ClusterRole",
        "flotta-apiserver"
    ));

    // User-facing roles aggregated into admin, edit and view.
    let group = "management.project-flotta.io";
    let status: Vec<String> = SIX.iter().map(|r| format!("{r}/status")).collect();
    let status: Vec<&str> = status.iter().map(String::as_str).collect();
    for (label, verbs) in [
        (
            "admin",
            &[
                "get",
                "list",
                "watch",
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection",
            ][..],
        ),
        (
            "edit",
            &[
                "get",
                "list",
                "watch",
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection",
            ][..],
        ),
        ("view", &["get", "list", "watch"][..]),
    ] {
        let key = format!("rbac.authorization.k8s.io/aggregate-to-{label}");
        let role = objects
            .iter()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["labels"][&key] == "true")
            .unwrap_or_else(|| panic!("no ClusterRole labelled {key}"));
        assert!(grants(role, group, &SIX, verbs), "{label}");
        assert!(
            grants(role, group, &status, &["get"]),
            "{label} reads status"
        );
    }
    let view = find(&objects, "ClusterRole", "flotta:aggregate-to-view");
    assert!(
        !grants(view, group, &["edgedevices"], &["delete"]),
        "view is read-only"
    );
}

#[test]
fn certificate_overlay_pins_the_serving_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let out = tempfile::tempdir().expect("tempdir");
    let script = repo_root().join("hack/apiservice-certs.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(out.path())
        .status()
        .expect("run hack/apiservice-certs.sh (needs openssl)");
    assert!(status.success(), "hack/apiservice-certs.sh failed");
    let objects = kustomize(out.path());

    let ca_pem = std::fs::read(out.path().join("ca.crt")).expect("ca.crt");
    let api_service = find(
        &objects,
        "APIService",
        "v1alpha1.management.project-flotta.io",
    );
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(api_service["spec"]["caBundle"].as_str().expect("caBundle"))
        .expect("base64");
    assert_eq!(
        bundle, ca_pem,
        "caBundle is the CA that signed the serving certificate"
    );

    let secret = find(&objects, "Secret", "flotta-apiserver-serving");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["namespace"], "flotta");
    // kustomize folds long values over lines; Kubernetes' base64 decoder skips newlines.
    let decode = |key: &str| {
        let text: String = secret["data"][key]
            .as_str()
            .expect("key in Secret")
            .split_whitespace()
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64")
    };
    let tls_crt = decode("tls.crt");
    assert_eq!(tls_crt, std::fs::read(out.path().join("tls.crt")).unwrap());

    // The aggregator's check: the serving certificate verifies against caBundle for
    // ServerName <service>.<namespace>.svc.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&bundle).expect("CA PEM"))
        .expect("root");
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        flotta_apiserver::tls::crypto_provider(),
    )
    .build()
    .expect("verifier");
    let leaf = CertificateDer::from_pem_slice(&tls_crt).expect("leaf");
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from("flotta-apiserver.flotta.svc").unwrap(),
            &[],
            UnixTime::now(),
        )
        .expect("the serving certificate is valid for flotta-apiserver.flotta.svc");
    assert!(
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from("other.flotta.svc").unwrap(),
                &[],
                UnixTime::now()
            )
            .is_err()
    );

    // And flotta-apiserver can serve it (--tls-cert-file/--tls-private-key-file).
    ServingCertificate::from_files(&out.path().join("tls.crt"), &out.path().join("tls.key"))
        .expect("the server loads the generated pair");

    // The Deployment still references that Secret by its fixed name.
    let deployment = find(&objects, "Deployment", "flotta-apiserver");
    assert!(
        deployment["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "flotta-apiserver-serving")
    );
}
