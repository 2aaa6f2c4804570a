//! The watch-backed cache of the cluster's ConfigMaps and Secrets used in aggregated mode
//! (`flotta_apiserver::cluster::references::ClusterReferences`), against the Kubernetes
//! API test double of `aggregated_support`: lookups answer from the cache once the
//! initial listing is done, changes and deletions arrive through the watch and are
//! announced on `changes()`.

mod aggregated_support;

use std::time::Duration;

use aggregated_support::{KubeDouble, wait_for_async};
use flotta_apiserver::cluster::references::{
    ClusterReferences, ReferenceChange, ReferenceKind, ReferenceSource as _,
};
use serde_json::json;

fn config_map(namespace: &str, name: &str, value: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                     "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        "data": {"key": value},
    })
}

#[tokio::test]
async fn lookups_follow_the_cluster() {
    aggregated_support::init();
    let double = KubeDouble::start(None).await;
    double.put_object("configmaps", config_map("fleet", "settings", "v1"));
    double.put_object(
        "secrets",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "registry", "namespace": "fleet"},
            "type": "Opaque",
            "data": {"token": "czNjcjN0"},
        }),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = double.write_kubeconfig(dir.path());
    let client = flotta_apiserver::cluster::client(Some(&kubeconfig), None)
        .await
        .expect("client");
    let references = ClusterReferences::start(&client);
    let mut changes = references.changes();

    let settings = references
        .config_map("fleet", "settings")
        .await
        .expect("lookup")
        .expect("the ConfigMap");
    assert!(references.is_ready());
    assert_eq!(settings.data.as_ref().unwrap()["key"], "v1");
    assert!(
        settings.metadata.managed_fields.is_none(),
        "managedFields are not kept"
    );
    let secret = references
        .secret("fleet", "registry")
        .await
        .expect("lookup")
        .expect("the Secret");
    assert_eq!(secret.data.as_ref().unwrap()["token"].0, b"s3cr3t");
    assert!(
        references
            .config_map("other", "settings")
            .await
            .expect("lookup")
            .is_none()
    );

    // A change arrives through the watch and is announced.
    double.put_object("configmaps", config_map("fleet", "settings", "v2"));
    let updated = wait_for_async(Duration::from_secs(10), || async {
        let current = references.config_map("fleet", "settings").await.ok()??;
        (current.data.as_ref()?["key"] == "v2").then_some(())
    })
    .await;
    assert!(updated.is_some(), "the cache never saw the change");
    let expected = ReferenceChange {
        kind: ReferenceKind::ConfigMap,
        namespace: "fleet".into(),
        name: "settings".into(),
    };
    let announced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if changes.recv().await.expect("open") == expected {
                return;
            }
        }
    })
    .await;
    assert!(announced.is_ok(), "the change was not announced");

    double.delete_object("configmaps", "fleet", "settings");
    let gone = wait_for_async(Duration::from_secs(10), || async {
        references
            .config_map("fleet", "settings")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "the deletion never reached the cache");

    // Cluster-wide list and watch, as the ClusterRole grants.
    let calls = double.requests();
    assert!(
        calls
            .iter()
            .any(|r| r.path == "/api/v1/secrets" && !r.query.contains("watch="))
    );
    assert!(
        calls
            .iter()
            .any(|r| r.path == "/api/v1/configmaps" && r.query.contains("watch=true"))
    );
}
