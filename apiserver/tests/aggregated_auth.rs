//! Aggregated mode end to end, in-process: `flotta-apiserver --mode aggregated` against a
//! test double of the Kubernetes API (see `aggregated_support`), called the way the
//! kube-apiserver aggregator calls it (front-proxy client certificate + `X-Remote-*`
//! headers, serving certificate verified for `flotta-apiserver.flotta.svc`), by end users
//! with x509 certificates, by ServiceAccount tokens and anonymously.

mod aggregated_support;

use std::time::Duration;

use aggregated_support::{
    Answer, GROUP, KubeDouble, SA_TOKEN, SA_USER, Server, TestCa, authentication_data,
    wait_for_async,
};
use reqwest::Method;
use serde_json::{Value, json};

const DEVICES: &str = "/apis/management.project-flotta.io/v1alpha1/namespaces/default/edgedevices";

/// The cluster's CAs and the certificates its parts hold.
struct Cluster {
    client_ca: TestCa,
    front_proxy_ca: TestCa,
    front_proxy: aggregated_support::Issued,
}

impl Cluster {
    fn new() -> Self {
        let front_proxy_ca = TestCa::new("front-proxy-ca");
        let front_proxy = front_proxy_ca.client("front-proxy-client", &[]);
        Cluster {
            client_ca: TestCa::new("kubernetes-ca"),
            front_proxy_ca,
            front_proxy,
        }
    }

    fn data(&self) -> std::collections::BTreeMap<String, String> {
        authentication_data(&self.client_ca.pem, &self.front_proxy_ca.pem)
    }
}

/// The aggregator's identity headers for its own probes.
const AGGREGATOR: &[(&str, &str)] = &[
    ("X-Remote-User", "system:kube-aggregator"),
    ("X-Remote-Group", "system:masters"),
];

fn device(name: &str) -> Value {
    json!({
        "apiVersion": "management.project-flotta.io/v1alpha1",
        "kind": "EdgeDevice",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"requestTime": "2026-11-21T10:00:00Z"},
    })
}

/// Allows alice to read, nothing else.
fn alice_reads(spec: &Value) -> Result<Answer, reqwest::StatusCode> {
    let verb = spec["resourceAttributes"]["verb"].as_str().unwrap_or("");
    let allowed = spec["user"] == "alice" && matches!(verb, "get" | "list" | "watch");
    Ok(Answer {
        allowed,
        denied: false,
        reason: String::new(),
    })
}

async fn start() -> (Cluster, KubeDouble, Server) {
    aggregated_support::init();
    let cluster = Cluster::new();
    let double = KubeDouble::start(Some(cluster.data())).await;
    let server = Server::start(&double, &[]).await;
    server.wait_ready().await;
    (cluster, double, server)
}

#[tokio::test]
async fn front_proxy_identity_is_trusted_and_authorized_by_access_review() {
    let (cluster, double, server) = start().await;
    double.set_policy(alice_reads);
    let proxy = server.client(Some(&cluster.front_proxy));

    // The aggregator's availability probe and writes as system:masters: no review.
    let (code, body) = proxy
        .send(
            Method::GET,
            "/apis/management.project-flotta.io/v1alpha1",
            AGGREGATOR,
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "APIResourceList");
    let (code, body) = proxy
        .send(Method::POST, DEVICES, AGGREGATOR, Some(device("dev1")))
        .await;
    assert_eq!(code, 201, "{body}");
    assert!(
        double.access_reviews().is_empty(),
        "system:masters is never reviewed"
    );

    // alice through the proxy, with groups (one per header line) and an extra.
    let alice = [
        ("X-Remote-User", "alice"),
        ("X-Remote-Group", "devs"),
        ("X-Remote-Group", "qa,ops"),
        ("X-Remote-Extra-Scopes", "s1"),
        (
            "X-Remote-Extra-Authentication.kubernetes.io%2fpod-Name",
            "pod-7",
        ),
    ];
    let (code, body) = proxy
        .send(Method::GET, &format!("{DEVICES}/dev1/status"), &alice, None)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["name"], "dev1");
    let reviews = double.access_reviews();
    assert_eq!(reviews.len(), 1);
    assert_eq!(
        reviews[0],
        json!({
            "user": "alice",
            "groups": ["devs", "qa,ops", "system:authenticated"],
            "extra": {
                "authentication.kubernetes.io/pod-name": ["pod-7"],
                "scopes": ["s1"],
            },
            "resourceAttributes": {
                "namespace": "default", "verb": "get", "group": GROUP,
                "version": "v1alpha1", "resource": "edgedevices",
                "subresource": "status", "name": "dev1",
            },
        })
    );

    // A list pinned to one name, and a watch, map like kube-apiserver's request info.
    let (code, _) = proxy
        .send(
            Method::GET,
            &format!("{DEVICES}?fieldSelector=metadata.name%3Ddev1"),
            &alice,
            None,
        )
        .await;
    assert_eq!(code, 200);
    let watch = proxy
        .request(
            Method::GET,
            "/apis/management.project-flotta.io/v1alpha1/edgedevices?watch=true&timeoutSeconds=1",
            &alice,
        )
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status(), 200);
    drop(watch);
    let reviews = double.access_reviews();
    assert_eq!(
        reviews[1]["resourceAttributes"],
        json!({"namespace": "default", "verb": "list", "group": GROUP, "version": "v1alpha1",
               "resource": "edgedevices", "name": "dev1"})
    );
    assert_eq!(
        reviews[2]["resourceAttributes"],
        json!({"verb": "watch", "group": GROUP, "version": "v1alpha1", "resource": "edgedevices"})
    );

    // The same answer again comes from the cache.
    let (code, _) = proxy
        .send(Method::GET, &format!("{DEVICES}/dev1/status"), &alice, None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(double.access_reviews().len(), 3);

    // Non-resource paths are reviewed with nonResourceAttributes.
    let (code, _) = proxy.send(Method::GET, "/openapi/v2", &alice, None).await;
    assert_eq!(code, 403);
    assert_eq!(
        double.access_reviews()[3]["nonResourceAttributes"],
        json!({"path": "/openapi/v2", "verb": "get"})
    );
}

#[tokio::test]
async fn denial_is_a_forbidden_status_in_kube_apiserver_words() {
    let (cluster, double, server) = start().await;
    double.set_policy(alice_reads);
    let proxy = server.client(Some(&cluster.front_proxy));
    let alice = [("X-Remote-User", "alice")];

    let (code, body) = proxy
        .send(Method::DELETE, &format!("{DEVICES}/dev1"), &alice, None)
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        body,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "edgedevices.management.project-flotta.io \"dev1\" is forbidden: User \"alice\" cannot delete resource \"edgedevices\" in API group \"management.project-flotta.io\" in the namespace \"default\"",
            "reason": "Forbidden",
            "details": {"name": "dev1", "group": GROUP, "kind": "edgedevices"},
            "code": 403,
        })
    );

    // deletecollection, with the cluster's reason appended.
    double.set_policy(|_| {
        Ok(Answer {
            allowed: false,
            denied: true,
            reason: "denied by policy".into(),
        })
    });
    let (code, body) = proxy.send(Method::DELETE, DEVICES, &alice, None).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "edgedevices.management.project-flotta.io is forbidden: User \"alice\" cannot deletecollection resource \"edgedevices\" in API group \"management.project-flotta.io\" in the namespace \"default\": denied by policy"
    );

    // A review that fails is a denial (fail closed).
    double.set_policy(|_| Err(reqwest::StatusCode::INTERNAL_SERVER_ERROR));
    let (code, body) = proxy
        .send(
            Method::GET,
            "/apis/management.project-flotta.io/v1alpha1/edgedevicesets",
            &alice,
            None,
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
}

#[tokio::test]
async fn identity_headers_are_ignored_unless_the_front_proxy_certificate_is_trusted() {
    let (cluster, double, server) = start().await;
    double.set_policy(alice_reads);
    let alice = [
        ("X-Remote-User", "alice"),
        ("X-Remote-Group", "system:masters"),
    ];
    let path = format!("{DEVICES}/dev1");

    // No certificate: the headers are stripped and the request is anonymous.
    let (code, body) = server
        .client(None)
        .send(Method::GET, &path, &alice, None)
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("User \"system:anonymous\" cannot get"),
        "{body}"
    );
    let review = double.access_reviews().pop().expect("a review");
    assert_eq!(review["user"], "system:anonymous");
    assert_eq!(review["groups"], json!(["system:unauthenticated"]));

    // A certificate of the request-header CA whose CN is not allowed: 401.
    let intruder = cluster.front_proxy_ca.client("intruder", &[]);
    let (code, body) = server
        .client(Some(&intruder))
        .send(Method::GET, &path, &alice, None)
        .await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["reason"], "Unauthorized");

    // A certificate from a CA the cluster does not publish: 401.
    let foreign = TestCa::new("front-proxy-ca").client("front-proxy-client", &[]);
    let (code, _) = server
        .client(Some(&foreign))
        .send(Method::GET, &path, &alice, None)
        .await;
    assert_eq!(code, 401);

    // A server-only certificate of the request-header CA (no clientAuth usage): 401.
    let server_only = cluster.front_proxy_ca.server(&["front-proxy-client"]);
    let (code, _) = server
        .client(Some(&server_only))
        .send(Method::GET, &path, &alice, None)
        .await;
    assert_eq!(code, 401);

    // An end user's own certificate (client CA): that user, not the headers.
    let carol = cluster.client_ca.client("carol", &["devs"]);
    let (code, _) = server
        .client(Some(&carol))
        .send(Method::GET, &path, &alice, None)
        .await;
    assert_eq!(code, 403);
    let review = double.access_reviews().pop().expect("a review");
    assert_eq!(review["user"], "carol");
    assert_eq!(review["groups"], json!(["devs", "system:authenticated"]));
    let credential = review["extra"]["authentication.kubernetes.io/credential-id"][0]
        .as_str()
        .expect("credential id");
    assert!(credential.starts_with("X509SHA256="), "{credential}");
}

#[tokio::test]
async fn bearer_tokens_are_reviewed_then_authorized() {
    let (_cluster, double, server) = start().await;
    double.set_policy(|spec| {
        Ok(Answer {
            allowed: spec["user"] == SA_USER,
            denied: false,
            reason: String::new(),
        })
    });
    let client = server.client(None);
    let bearer = format!("Bearer {SA_TOKEN}");
    let headers = [("Authorization", bearer.as_str())];
    let (code, body) = client.send(Method::GET, DEVICES, &headers, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "EdgeDeviceList");
    assert_eq!(double.token_reviews(), [json!({"token": SA_TOKEN})]);
    let review = double.access_reviews().pop().expect("a review");
    assert_eq!(review["user"], SA_USER);
    assert_eq!(review["uid"], "6f0c1b8e-0000-4000-8000-000000000002");
    assert_eq!(
        review["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:flotta",
            "system:authenticated"
        ])
    );
    assert_eq!(review["resourceAttributes"]["verb"], "list");

    // Cached: no second TokenReview within the TTL.
    let (code, _) = client.send(Method::GET, DEVICES, &headers, None).await;
    assert_eq!(code, 200);
    assert_eq!(double.token_reviews().len(), 1);

    // An unknown token is an authentication error, not anonymous.
    let (code, body) = client
        .send(
            Method::GET,
            DEVICES,
            &[("Authorization", "Bearer stolen")],
            None,
        )
        .await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(double.token_reviews().len(), 2);
}

#[tokio::test]
async fn a_new_request_header_ca_is_used_without_a_restart() {
    let (cluster, double, server) = start().await;
    let proxy_before = server.client(Some(&cluster.front_proxy));
    let (code, _) = proxy_before
        .send(
            Method::GET,
            "/apis/management.project-flotta.io/v1alpha1",
            AGGREGATOR,
            None,
        )
        .await;
    assert_eq!(code, 200);

    // The cluster rotates its front-proxy CA: the ConfigMap is updated (a watch event).
    let rotated_ca = TestCa::new("front-proxy-ca-2");
    let rotated = rotated_ca.client("front-proxy-client", &[]);
    double.set_authentication_data(authentication_data(&cluster.client_ca.pem, &rotated_ca.pem));
    let proxy_after = server.client(Some(&rotated));
    let accepted = wait_for_async(Duration::from_secs(20), || async {
        let (code, _) = proxy_after
            .send(
                Method::GET,
                "/apis/management.project-flotta.io/v1alpha1",
                AGGREGATOR,
                None,
            )
            .await;
        (code == 200).then_some(())
    })
    .await;
    assert!(accepted.is_some(), "the rotated CA was never accepted");

    // The old front-proxy certificate no longer asserts identities, even on a connection
    // opened before the rotation.
    let (code, _) = proxy_before
        .send(
            Method::GET,
            "/apis/management.project-flotta.io/v1alpha1",
            AGGREGATOR,
            None,
        )
        .await;
    assert_eq!(code, 401);

    // The ConfigMap was listed and watched by name only (the reader role's limit).
    let calls: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/kube-system/configmaps")
        .collect();
    assert!(calls.iter().any(|r| !r.query.contains("watch=")));
    assert!(calls.iter().any(|r| r.query.contains("watch=true")));
    assert!(
        calls.iter().all(|r| r
            .query
            .contains("fieldSelector=metadata.name%3Dextension-apiserver-authentication")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn health_is_open_and_readiness_waits_for_the_authentication_configuration() {
    aggregated_support::init();
    let cluster = Cluster::new();
    let double = KubeDouble::start(None).await;
    let server = Server::start(&double, &[]).await;

    // No ConfigMap yet: not ready, and the API answers 503 — but health paths answer.
    let (code, body) = server.metrics_get("/readyz?verbose").await;
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("[-]authentication failed"), "{body}");
    let anonymous = server.client(None);
    let (code, body) = anonymous
        .send(
            Method::GET,
            "/apis/management.project-flotta.io/v1alpha1",
            &[],
            None,
        )
        .await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["reason"], "ServiceUnavailable");

    double.set_authentication_data(cluster.data());
    server.wait_ready().await;
    let (code, body) = server.metrics_get("/readyz?verbose").await;
    assert_eq!(code, 200);
    assert!(body.contains("[+]authentication ok"), "{body}");

    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = anonymous.send(Method::GET, path, &[], None).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    assert!(
        double.access_reviews().is_empty(),
        "health paths are never reviewed"
    );
}

#[tokio::test]
async fn sigterm_drains_and_closes_watches() {
    let (cluster, double, mut server) = start().await;
    let _ = &double;
    let proxy = server.client(Some(&cluster.front_proxy));
    let mut watch = proxy
        .request(Method::GET, &format!("{DEVICES}?watch=true"), AGGREGATOR)
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status(), 200);

    server.shutdown();
    // The watch ends (the stream closes) within the drain timeout, and the server stops.
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(_)) = watch.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the watch was not closed");
    let result = tokio::time::timeout(Duration::from_secs(15), &mut server.task)
        .await
        .expect("the server stopped")
        .expect("no panic");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn the_device_ca_is_kept_in_the_flotta_ca_secret() {
    let (_cluster, double, server) = start().await;
    let secret = double
        .secret("flotta", "flotta-ca")
        .expect("the server created flotta/flotta-ca");
    let decode = |key: &str| {
        let text = secret["data"][key].as_str().expect("key");
        String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text)
                .expect("base64"),
        )
        .expect("PEM text")
    };
    let ca_crt = decode("ca.crt");
    assert!(decode("ca.key").contains("PRIVATE KEY"));
    let bootstrap_ca = |server: &Server| {
        std::fs::read_to_string(server.data_dir.path().join("data/device-bootstrap/ca.pem"))
            .expect("bootstrap ca.pem")
    };
    assert_eq!(bootstrap_ca(&server), ca_crt, "devices get the Secret's CA");

    // Another replica (or a restart on a new volume) signs with the same CA.
    let second = Server::start(&double, &[]).await;
    second.wait_ready().await;
    assert_eq!(bootstrap_ca(&second), ca_crt);
}
