//! Loads and keeps watching `kube-system/extension-apiserver-authentication`, the
//! ConfigMap in which kube-apiserver publishes the CAs and header names of its
//! authentication (`kube-api-contract.md` §2.1), and publishes the parsed
//! [`AuthenticationConfig`] to the request path.
//!
//! The list and the watch are field-selected by name (`metadata.name=…`), because the
//! `extension-apiserver-authentication-reader` role grants access to that one object only.
//! Every change replaces the configuration as a whole, so a rotated front-proxy or client
//! CA is used by the next request, without a restart. A ConfigMap that does not parse is
//! logged and ignored (the previous configuration stays); a deleted ConfigMap also leaves
//! the last configuration in force. Flag overrides (`--client-ca-file`,
//! `--requestheader-client-ca-file`, …) replace the corresponding part of whatever the
//! cluster publishes; when both parts are overridden the ConfigMap is not read at all.
//!
//! Until a configuration is loaded the receiver holds `None`, which keeps `/readyz`
//! failing and the secure port answering 503.

use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use crate::auth::authentication_config::{
    AuthenticationConfig, CONFIG_MAP_NAME, CONFIG_MAP_NAMESPACE,
};
use crate::auth::delegated::ConfigReceiver;

/// Starts publishing the authentication configuration: from `overrides` alone when they
/// are complete, else from the ConfigMap read through `client` with `overrides` applied.
/// The returned task runs until aborted.
pub fn spawn(
    client: kube::Client,
    overrides: AuthenticationConfig,
) -> (ConfigReceiver, tokio::task::JoinHandle<()>) {
    if overrides.is_complete() {
        tracing::info!(
            "authentication configured by flags; not reading {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}"
        );
        let (_tx, rx) = watch::channel(Some(Arc::new(overrides)));
        return (rx, tokio::spawn(async {}));
    }
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(run(client, overrides, tx));
    (rx, task)
}

async fn run(
    client: kube::Client,
    overrides: AuthenticationConfig,
    tx: watch::Sender<Option<Arc<AuthenticationConfig>>>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, CONFIG_MAP_NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP_NAME}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut seen_in_listing = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => seen_in_listing = false,
            Ok(Event::InitApply(config_map)) => {
                seen_in_listing = true;
                apply(&config_map, &overrides, &tx);
            }
            Ok(Event::Apply(config_map)) => apply(&config_map, &overrides, &tx),
            Ok(Event::InitDone) if !seen_in_listing => {
                tracing::warn!(
                    "ConfigMap {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} not found: requests \
                     through the aggregation layer cannot be authenticated until it exists"
                );
            }
            Ok(Event::InitDone) => {}
            Ok(Event::Delete(_)) => tracing::warn!(
                "ConfigMap {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} was deleted; keeping the last authentication configuration"
            ),
            Err(error) => tracing::warn!(
                %error,
                "watching {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME} failed; retrying"
            ),
        }
    }
}

fn apply(
    config_map: &ConfigMap,
    overrides: &AuthenticationConfig,
    tx: &watch::Sender<Option<Arc<AuthenticationConfig>>>,
) {
    let data = config_map.data.clone().unwrap_or_default();
    match AuthenticationConfig::from_config_map_data(&data) {
        Ok(config) => {
            let config = config.with_overrides(overrides);
            tracing::info!(
                resource_version = config_map
                    .metadata
                    .resource_version
                    .as_deref()
                    .unwrap_or(""),
                client_ca = config.client_ca.is_some(),
                request_header = config.request_header.is_some(),
                "loaded the authentication configuration"
            );
            tx.send_replace(Some(Arc::new(config)));
        }
        Err(error) => tracing::error!(
            %error,
            "ignoring an unusable {CONFIG_MAP_NAMESPACE}/{CONFIG_MAP_NAME}; keeping the previous configuration"
        ),
    }
}
