//! Test harness for the end-to-end suite: starts the real `flotta-apiserver` binary on free
//! ports in a fresh data directory, drives it with the real `kubectl`, and talks raw HTTPS to
//! it with the admin client certificate.
//!
//! Every test starts its own [`Server`], so tests run in parallel without sharing state. The
//! binary is built at most once per test process (or taken from `FLOTTA_APISERVER_BIN`).
//! Every wait has a deadline ([`DEFAULT_TIMEOUT`] unless stated) and fails with a message that
//! says what was awaited, what was last seen, and the tail of the server's log.
//!
//! Limits: Linux/Unix only (SIGKILL through [`std::process::Child::kill`]); kubectl must be
//! installed (`KUBECTL` names another binary); the server is reached on `127.0.0.1` only.

pub mod binary;
pub mod deadline;
pub mod device;
pub mod etcd;
pub mod http;
pub mod kubectl;
pub mod server;
pub mod table;

pub use binary::apiserver_binary;
pub use deadline::{DEFAULT_TIMEOUT, Probe, wait_for};
pub use http::{ApiClient, WatchStream, json_response, tls_client};
pub use kubectl::{CmdOutput, Kubectl, LineStream, kubectl_binary};
pub use server::{Ports, Server};
pub use table::Table;

use std::path::PathBuf;

/// The API group every Flotta kind belongs to.
pub const GROUP: &str = "management.project-flotta.io";

/// The API version served for [`GROUP`].
pub const VERSION: &str = "v1alpha1";

/// `apiVersion` of every Flotta object: `management.project-flotta.io/v1alpha1`.
pub const API_VERSION: &str = "management.project-flotta.io/v1alpha1";

/// The path of a fixture manifest in `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The URL path of a namespaced collection, e.g. `/apis/management.project-flotta.io/v1alpha1/namespaces/default/edgedevices`.
pub fn collection_path(namespace: &str, plural: &str) -> String {
    format!("/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}")
}

/// The URL path of one namespaced object.
pub fn object_path(namespace: &str, plural: &str, name: &str) -> String {
    format!("{}/{name}", collection_path(namespace, plural))
}
