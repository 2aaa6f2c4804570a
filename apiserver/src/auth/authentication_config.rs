//! What aggregated-mode authentication trusts: the client CA for end-user certificates and
//! the request-header (front proxy) settings, as published by kube-apiserver in the
//! ConfigMap `kube-system/extension-apiserver-authentication` (`kube-api-contract.md`
//! §2.1), optionally overridden by command-line flags.
//!
//! ConfigMap keys: `client-ca-file` and `requestheader-client-ca-file` (PEM bundles),
//! `requestheader-allowed-names`, `requestheader-username-headers`,
//! `requestheader-uid-headers`, `requestheader-group-headers` and
//! `requestheader-extra-headers-prefix` (JSON arrays stored as strings; an empty string
//! means an empty list). A missing or empty CA key switches that authenticator off.
//!
//! This module only parses; loading and watching the ConfigMap is
//! `crate::cluster::authentication_source`'s job.

use std::collections::BTreeMap;

use super::client_certificate::{CertificatePool, PoolError};
use super::requestheader::RequestHeaderConfig;

/// Namespace of the ConfigMap kube-apiserver publishes its authentication settings in.
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
/// Name of that ConfigMap.
pub const CONFIG_MAP_NAME: &str = "extension-apiserver-authentication";

/// Why the published authentication settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A CA bundle is unusable.
    #[error("{key}: {source}")]
    Pool {
        /// The ConfigMap key or flag.
        key: String,
        /// The cause.
        #[source]
        source: PoolError,
    },
    /// A list value is not a JSON array of strings.
    #[error("{key}: not a JSON array of strings: {source}")]
    List {
        /// The ConfigMap key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The settings authentication works with; replaced as a whole when they change.
#[derive(Debug, Clone, Default)]
pub struct AuthenticationConfig {
    /// CA that end-user client certificates must chain to (user = CN, groups = O).
    pub client_ca: Option<CertificatePool>,
    /// How to recognise and read the front proxy.
    pub request_header: Option<RequestHeaderConfig>,
}

impl AuthenticationConfig {
    /// Parses the `data` of the `extension-apiserver-authentication` ConfigMap.
    pub fn from_config_map_data(data: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let client_ca = pool(data, "client-ca-file")?;
        let request_header = match pool(data, "requestheader-client-ca-file")? {
            None => None,
            Some(ca) => Some(RequestHeaderConfig::new(
                ca,
                list(data, "requestheader-allowed-names")?,
                &list(data, "requestheader-username-headers")?,
                &list(data, "requestheader-uid-headers")?,
                &list(data, "requestheader-group-headers")?,
                &list(data, "requestheader-extra-headers-prefix")?,
            )),
        };
        Ok(AuthenticationConfig {
            client_ca,
            request_header,
        })
    }

    /// This configuration with the parts `overrides` sets replaced.
    pub fn with_overrides(mut self, overrides: &AuthenticationConfig) -> Self {
        if let Some(client_ca) = &overrides.client_ca {
            self.client_ca = Some(client_ca.clone());
        }
        if let Some(request_header) = &overrides.request_header {
            self.request_header = Some(request_header.clone());
        }
        self
    }

    /// Whether both parts are set, so that nothing needs to be read from the cluster.
    pub fn is_complete(&self) -> bool {
        self.client_ca.is_some() && self.request_header.is_some()
    }
}

fn pool(
    data: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<CertificatePool>, ConfigError> {
    match data.get(key).map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(pem) => CertificatePool::from_pem(pem.as_bytes())
            .map(Some)
            .map_err(|source| ConfigError::Pool {
                key: key.to_owned(),
                source,
            }),
    }
}

fn list(data: &BTreeMap<String, String>, key: &str) -> Result<Vec<String>, ConfigError> {
    match data.get(key).map(|s| s.trim()) {
        None | Some("") => Ok(Vec::new()),
        Some(json) => serde_json::from_str::<Option<Vec<String>>>(json)
            .map(Option::unwrap_or_default)
            .map_err(|source| ConfigError::List {
                key: key.to_owned(),
                source,
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_what_kube_apiserver_publishes() {
        let client_ca = ca_pem();
        let proxy_ca = format!("{}{}", ca_pem(), ca_pem());
        let config = AuthenticationConfig::from_config_map_data(&data(&[
            ("client-ca-file", &client_ca),
            ("requestheader-client-ca-file", &proxy_ca),
            ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-uid-headers", ""),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
        ]))
        .unwrap();
        assert_eq!(config.client_ca.as_ref().unwrap().roots().len(), 1);
        let rh = config.request_header.as_ref().unwrap();
        assert_eq!(rh.ca.roots().len(), 2);
        assert_eq!(rh.allowed_names, ["front-proxy-client"]);
        assert_eq!(rh.username_headers, ["x-remote-user"]);
        assert!(rh.uid_headers.is_empty());
        assert_eq!(rh.group_headers, ["x-remote-group"]);
        assert_eq!(rh.extra_prefixes, ["x-remote-extra-"]);
        assert!(config.is_complete());
    }

    #[test]
    fn missing_parts_switch_authenticators_off() {
        let config = AuthenticationConfig::from_config_map_data(&data(&[
            ("client-ca-file", &ca_pem()),
            ("requestheader-allowed-names", "null"),
        ]))
        .unwrap();
        assert!(config.client_ca.is_some());
        assert!(config.request_header.is_none());
        assert!(!config.is_complete());

        let overridden = config.with_overrides(&AuthenticationConfig {
            client_ca: None,
            request_header: AuthenticationConfig::from_config_map_data(&data(&[(
                "requestheader-client-ca-file",
                &ca_pem(),
            )]))
            .unwrap()
            .request_header,
        });
        assert!(overridden.is_complete());
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            AuthenticationConfig::from_config_map_data(&data(&[(
                "requestheader-client-ca-file",
                "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
            )])),
            Err(ConfigError::Pool { .. })
        ));
        assert!(matches!(
            AuthenticationConfig::from_config_map_data(&data(&[
                ("requestheader-client-ca-file", &ca_pem()),
                ("requestheader-allowed-names", "front-proxy-client"),
            ])),
            Err(ConfigError::List { .. })
        ));
    }
}
