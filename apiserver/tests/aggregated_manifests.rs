//! The deployment manifests of aggregated mode: `kubectl kustomize deploy/apiservice`
//! renders, and every object carries what the aggregation contract needs
//! (`kube-api-contract.md` §1.1–§1.3, §9 items 1, 2, 21); `hack/apiservice-certs.sh`
//! writes an overlay whose APIService `caBundle` verifies the serving certificate for
//! `flotta-apiserver.flotta.svc`, a certificate this server can load. The several-replica
//! manifests render too: `deploy/apiservice/overlays/etcd` (the base, the `etcd-replicas`
//! component and a bundled etcd whose names and ports agree with `--etcd-servers`), and
//! the certificate overlay extended with the components as docs/install.md says, for the
//! bundled and for an external etcd. Uses the real `kubectl` (its built-in kustomize) and
//! `openssl`; checks what renders, not what a cluster would do with it.

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

/// Everything namespaced is in `flotta`, except the reader binding that must live in
/// kube-system; cluster-scoped kinds carry no namespace.
fn assert_namespaces(objects: &[Value]) {
    find(objects, "Namespace", "flotta");
    for object in objects {
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
}

#[test]
fn base_renders_with_everything_the_aggregator_needs() {
    let objects = kustomize(&repo_root().join("deploy/apiservice"));
    // `deploy/apiservice` is the base in `base/`, unchanged (the overlays need it apart).
    assert_eq!(
        objects,
        kustomize(&repo_root().join("deploy/apiservice/base"))
    );

    assert_namespaces(&objects);

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

/// The container of `pod` named `name`.
fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["containers"]
        .as_array()
        .and_then(|containers| containers.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The number of the container port named `name`.
fn container_port(container: &Value, name: &str) -> i64 {
    container["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("no container port {name}"))
}

/// The value of `--flag=value` in `args`.
fn flag<'a>(args: &[&'a str], flag: &str) -> &'a str {
    args.iter()
        .find_map(|a| a.strip_prefix(flag)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {flag}= argument in {args:?}"))
}

/// Each flag at most once: a patch that adds a flag the base already has would make the
/// server refuse to start.
fn assert_flags_once(args: &[&str]) {
    for (i, arg) in args.iter().enumerate() {
        let name = arg.split('=').next().unwrap_or(arg);
        assert!(
            args[i + 1..]
                .iter()
                .all(|other| other.split('=').next() != Some(name)),
            "{name} given twice in {args:?}"
        );
    }
}

/// Whether a `matchLabels` map (or a Service selector) selects objects with `labels`.
fn selects(match_labels: &Value, labels: &Value) -> bool {
    match_labels
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &labels[k] == v))
}

/// The pod passes the namespace's Pod Security level `restricted`.
fn assert_restricted(pod: &Value) {
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    for container in pod["containers"].as_array().expect("containers") {
        let context = &container["securityContext"];
        assert_eq!(context["allowPrivilegeEscalation"], false);
        assert_eq!(context["readOnlyRootFilesystem"], true);
        assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]));
    }
}

/// The objects of `kind` whose selector selects pods labelled `labels`.
fn selecting<'a>(objects: &'a [Value], kind: &str, labels: &Value) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| {
            o["kind"] == kind
                && (selects(&o["spec"]["selector"]["matchLabels"], labels)
                    || selects(&o["spec"]["podSelector"]["matchLabels"], labels))
        })
        .collect()
}

/// How many pods a PodDisruptionBudget lets go at once, out of `replicas`.
fn disruptions_allowed(pdb: &Value, replicas: i64) -> i64 {
    assert_eq!(pdb["apiVersion"], "policy/v1");
    match (
        pdb["spec"]["maxUnavailable"].as_i64(),
        pdb["spec"]["minAvailable"].as_i64(),
    ) {
        (Some(max_unavailable), None) => max_unavailable,
        (None, Some(min_available)) => replicas - min_available,
        _ => panic!("a PDB with one integer bound: {pdb}"),
    }
}

/// An object's kind and name.
fn kind_and_name(object: &Value) -> (&str, &str) {
    (
        object["kind"].as_str().expect("kind"),
        object["metadata"]["name"].as_str().expect("name"),
    )
}

#[test]
fn etcd_overlay_runs_several_replicas_on_the_bundled_etcd() {
    let base = kustomize(&repo_root().join("deploy/apiservice"));
    let objects = kustomize(&repo_root().join("deploy/apiservice/overlays/etcd"));
    assert_namespaces(&objects);

    // Everything of the base, except the embedded store's claim: no PVC at all.
    for object in &base {
        let (kind, name) = kind_and_name(object);
        if kind != "PersistentVolumeClaim" {
            find(&objects, kind, name);
        }
    }
    assert!(
        objects.iter().all(|o| o["kind"] != "PersistentVolumeClaim"),
        "no PersistentVolumeClaim for the apiserver"
    );

    // Several replicas, replaced one at a time, on the etcd store.
    let deployment = find(&objects, "Deployment", "flotta-apiserver");
    let replicas = deployment["spec"]["replicas"].as_i64().expect("replicas");
    assert!(replicas > 1, "replicas {replicas}");
    let strategy = &deployment["spec"]["strategy"];
    assert_eq!(strategy["type"], "RollingUpdate");
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_restricted(pod);
    let apiserver = container(pod, "apiserver");
    let args = strings(&apiserver["args"]);
    assert_flags_once(&args);
    assert_eq!(flag(&args, "--mode"), "aggregated");
    assert_eq!(flag(&args, "--store"), "etcd");

    // The data directory is scratch: an emptyDir, no volume from a claim.
    let volumes = pod["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .all(|v| v.get("persistentVolumeClaim").is_none()),
        "{volumes:?}"
    );
    let data_mount = apiserver["volumeMounts"]
        .as_array()
        .and_then(|mounts| {
            mounts
                .iter()
                .find(|m| m["mountPath"].as_str() == Some(flag(&args, "--data-dir")))
        })
        .expect("a volume at --data-dir");
    let data = volumes
        .iter()
        .find(|v| v["name"] == data_mount["name"])
        .expect("the data volume");
    assert!(data["emptyDir"].is_object(), "{data}");
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "flotta-apiserver-serving")
    );

    // Preferably on different nodes.
    let preferred =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    let term = &preferred[0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert!(selects(&term["labelSelector"]["matchLabels"], pod_labels));

    // A device stays with one replica.
    let device = find(&objects, "Service", "flotta-edge-api");
    assert_eq!(device["spec"]["sessionAffinity"], "ClientIP");
    assert!(selects(&device["spec"]["selector"], pod_labels));

    // One disruption budget over the apiserver pods, leaving at least one running.
    let budgets = selecting(&objects, "PodDisruptionBudget", pod_labels);
    assert_eq!(budgets.len(), 1, "{budgets:?}");
    assert!((1..replicas).contains(&disruptions_allowed(budgets[0], replicas)));

    // The bundled etcd: a StatefulSet and its headless Service agree on names and ports.
    let etcd = find(&objects, "StatefulSet", "flotta-etcd");
    let etcd_name = etcd["metadata"]["name"].as_str().unwrap();
    let namespace = etcd["metadata"]["namespace"].as_str().unwrap();
    let members = etcd["spec"]["replicas"].as_i64().expect("etcd replicas");
    assert!(members % 2 == 1, "an odd number of etcd members: {members}");
    let service_name = etcd["spec"]["serviceName"].as_str().expect("serviceName");
    let service = find(&objects, "Service", service_name);
    assert_eq!(service["metadata"]["namespace"], namespace);
    assert_eq!(service["spec"]["clusterIP"], "None", "headless");
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
    let etcd_labels = &etcd["spec"]["template"]["metadata"]["labels"];
    assert!(selects(
        &etcd["spec"]["selector"]["matchLabels"],
        etcd_labels
    ));
    assert!(selects(&service["spec"]["selector"], etcd_labels));
    assert!(!selects(&service["spec"]["selector"], pod_labels));
    for name in ["flotta-apiserver", "flotta-edge-api"] {
        let selector = &find(&objects, "Service", name)["spec"]["selector"];
        assert!(!selects(selector, etcd_labels), "{name} selects etcd pods");
    }
    let etcd_pod = &etcd["spec"]["template"]["spec"];
    assert_restricted(etcd_pod);
    let etcd_container = container(etcd_pod, "etcd");
    let etcd_args = strings(&etcd_container["args"]);
    assert_flags_once(&etcd_args);
    let port = |name: &str| {
        let port = service["spec"]["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("no {name} port on Service {service_name}"));
        let target = port["targetPort"].as_str().expect("named targetPort");
        let number = port["port"].as_i64().expect("port");
        assert_eq!(container_port(etcd_container, target), number, "{name}");
        number
    };
    let (client, peer) = (port("client"), port("peer"));
    // Each member is named after its pod and advertises the DNS name the headless Service
    // gives it; the initial member list names exactly the StatefulSet's pods.
    let pod_name = etcd_container["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "POD_NAME"))
        .expect("POD_NAME");
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(flag(&etcd_args, "--name"), "$(POD_NAME)");
    let domain = format!("{service_name}.{namespace}.svc");
    assert_eq!(
        flag(&etcd_args, "--advertise-client-urls"),
        format!("http://$(POD_NAME).{domain}:{client}")
    );
    assert_eq!(
        flag(&etcd_args, "--initial-advertise-peer-urls"),
        format!("http://$(POD_NAME).{domain}:{peer}")
    );
    let member_host = |i: i64| format!("{etcd_name}-{i}.{domain}");
    let initial: Vec<String> = (0..members)
        .map(|i| format!("{etcd_name}-{i}=http://{}:{peer}", member_host(i)))
        .collect();
    assert_eq!(flag(&etcd_args, "--initial-cluster"), initial.join(","));
    assert_eq!(flag(&etcd_args, "--initial-cluster-state"), "new");
    // flotta-apiserver compacts (coordinated between replicas); etcd must not as well.
    assert!(
        etcd_args
            .iter()
            .all(|a| !a.starts_with("--auto-compaction"))
    );
    // The data directory is on the claim template's volume.
    let claim = etcd["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        .as_str()
        .expect("a volumeClaimTemplate");
    let etcd_mount = etcd_container["volumeMounts"]
        .as_array()
        .and_then(|mounts| mounts.iter().find(|m| m["name"] == claim))
        .expect("the claim mounted");
    let mount_path = etcd_mount["mountPath"].as_str().unwrap();
    assert!(
        flag(&etcd_args, "--data-dir").starts_with(&format!("{mount_path}/")),
        "{etcd_args:?}"
    );

    // flotta-apiserver talks to every member, by its DNS name, on the client port.
    let servers: Vec<&str> = flag(&args, "--etcd-servers").split(',').collect();
    let expected: Vec<String> = (0..members)
        .map(|i| format!("http://{}:{client}", member_host(i)))
        .collect();
    assert_eq!(servers, expected);

    // A drain keeps etcd's quorum.
    let etcd_budgets = selecting(&objects, "PodDisruptionBudget", etcd_labels);
    assert_eq!(etcd_budgets.len(), 1, "{etcd_budgets:?}");
    assert!((1..=(members - 1) / 2).contains(&disruptions_allowed(etcd_budgets[0], members)));

    // Only the apiserver and the members reach the client port.
    let policies = selecting(&objects, "NetworkPolicy", etcd_labels);
    assert_eq!(policies.len(), 1, "{policies:?}");
    let rules = policies[0]["spec"]["ingress"].as_array().expect("ingress");
    let client_rules: Vec<&Value> = rules
        .iter()
        // A rule without ports admits every port.
        .filter(|rule| {
            rule["ports"].as_array().is_none_or(|ports| {
                ports.iter().any(|p| p["port"] == "client" || p["port"] == client)
            })
        })
        .collect();
    assert!(!client_rules.is_empty());
    for rule in &client_rules {
        let from = rule["from"]
            .as_array()
            .expect("client port only from named pods");
        assert!(
            from.iter()
                .all(|peer| peer["podSelector"]["matchLabels"].is_object()
                    && peer.get("namespaceSelector").is_none())
        );
    }
    assert!(client_rules.iter().any(|rule| {
        rule["from"].as_array().is_some_and(|from| {
            from.iter()
                .any(|peer| selects(&peer["podSelector"]["matchLabels"], pod_labels))
        })
    }));
}

/// `to` as a path relative to the directory `from` (both absolute), as kustomize wants
/// its resources and components.
fn relative_path(from: &Path, to: &Path) -> String {
    let (from, to) = (
        from.canonicalize().expect("from"),
        to.canonicalize().expect("to"),
    );
    let (from, to): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Runs `hack/apiservice-certs.sh` into `out` and appends `extra` to the overlay it
/// wrote, as docs/install.md tells the operator to.
fn certificate_overlay_with(out: &Path, extra: &str) -> Vec<Value> {
    let status = Command::new("bash")
        .arg(repo_root().join("hack/apiservice-certs.sh"))
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run hack/apiservice-certs.sh (needs openssl)");
    assert!(status.success(), "hack/apiservice-certs.sh failed");
    let path = out.join("kustomization.yaml");
    let mut text = std::fs::read_to_string(&path).expect("kustomization.yaml");
    text.push_str(extra);
    std::fs::write(&path, text).expect("write kustomization.yaml");
    kustomize(out)
}

/// The `components:` lines naming `deploy/apiservice/components/<name>` from `out`.
fn components(out: &Path, names: &[&str]) -> String {
    let mut text = "components:\n".to_owned();
    for name in names {
        let component = repo_root().join("deploy/apiservice/components").join(name);
        text.push_str(&format!("  - {}\n", relative_path(out, &component)));
    }
    text
}

#[test]
fn certificate_overlay_with_the_etcd_components_is_the_etcd_overlay() {
    let out = tempfile::tempdir().expect("tempdir");
    let objects = certificate_overlay_with(
        out.path(),
        &components(out.path(), &["etcd-replicas", "bundled-etcd"]),
    );
    let overlay = kustomize(&repo_root().join("deploy/apiservice/overlays/etcd"));

    // The same objects as overlays/etcd, plus the serving Secret and the caBundle.
    assert_eq!(objects.len(), overlay.len() + 1);
    for object in &overlay {
        let (kind, name) = kind_and_name(object);
        let mut ours = find(&objects, kind, name).clone();
        if kind == "APIService" {
            assert!(ours["spec"]["caBundle"].is_string());
            ours["spec"]
                .as_object_mut()
                .expect("spec")
                .remove("caBundle");
        }
        assert_eq!(&ours, object, "{kind} {name}");
    }
    let secret = find(&objects, "Secret", "flotta-apiserver-serving");
    assert_eq!(secret["metadata"]["namespace"], "flotta");
}

#[test]
fn external_etcd_component_takes_servers_and_client_certificate_from_the_cluster() {
    let out = tempfile::tempdir().expect("tempdir");
    let servers = "https://etcd-0.example.com:2379,https://etcd-1.example.com:2379";
    let generator = format!(
        "configMapGenerator:\n  - name: flotta-etcd-servers\n    namespace: flotta\n    \
         literals:\n      - servers={servers}\n"
    );
    let objects = certificate_overlay_with(
        out.path(),
        &(components(out.path(), &["etcd-replicas", "external-etcd"]) + &generator),
    );
    assert_namespaces(&objects);
    assert!(
        objects
            .iter()
            .all(|o| o["kind"] != "StatefulSet" && o["kind"] != "PersistentVolumeClaim"),
        "neither a bundled etcd nor the embedded store's claim"
    );

    let deployment = find(&objects, "Deployment", "flotta-apiserver");
    assert!(deployment["spec"]["replicas"].as_i64().expect("replicas") > 1);
    let pod = &deployment["spec"]["template"]["spec"];
    let apiserver = container(pod, "apiserver");
    let args = strings(&apiserver["args"]);
    assert_flags_once(&args);
    assert_eq!(flag(&args, "--store"), "etcd");
    assert!(
        args.iter().all(|a| !a.starts_with("--etcd-servers")),
        "the servers come from the environment"
    );

    // FLOTTA_ETCD_SERVERS from the generated ConfigMap (kustomize renamed the reference).
    let env = apiserver["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "FLOTTA_ETCD_SERVERS"))
        .expect("FLOTTA_ETCD_SERVERS");
    let reference = &env["valueFrom"]["configMapKeyRef"];
    let config_map = find(
        &objects,
        "ConfigMap",
        reference["name"].as_str().expect("ConfigMap name"),
    );
    assert_eq!(config_map["metadata"]["namespace"], "flotta");
    let key = reference["key"].as_str().expect("key");
    assert_eq!(config_map["data"][key], servers);

    // The TLS files are the keys of the client Secret, where it is mounted.
    let volume = pod["volumes"]
        .as_array()
        .and_then(|volumes| {
            volumes
                .iter()
                .find(|v| v["secret"]["secretName"] == "flotta-etcd-client")
        })
        .expect("the flotta-etcd-client Secret volume");
    let mount = apiserver["volumeMounts"]
        .as_array()
        .and_then(|mounts| mounts.iter().find(|m| m["name"] == volume["name"]))
        .expect("the Secret mounted");
    assert_eq!(mount["readOnly"], true);
    let dir = mount["mountPath"].as_str().unwrap();
    for (option, key) in [
        ("--etcd-cafile", "ca.crt"),
        ("--etcd-certfile", "tls.crt"),
        ("--etcd-keyfile", "tls.key"),
    ] {
        assert_eq!(flag(&args, option), format!("{dir}/{key}"));
    }
}
