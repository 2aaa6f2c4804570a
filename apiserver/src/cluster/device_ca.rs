//! The device CA kept in the cluster (aggregated mode): the Secret `flotta-ca` in the
//! server's namespace, with keys `ca.crt` and `ca.key` — the layout Flotta's operator uses
//! (`flotta-inventory.md` §3.6), so a cluster migrating from Flotta keeps its CA and its
//! devices keep their certificates.
//!
//! If the Secret is absent a new CA is generated and the Secret *created* (never
//! replaced); when several replicas race, one create wins and the others read the
//! winner's CA, so every replica signs with the same key.
//!
//! Limits: the key is stored unencrypted in the Secret (protect it with RBAC and
//! encryption at rest); a changed Secret is read at the next start only.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use crate::edge::ca::{CaError, DeviceCa, IssuedCertificate};

/// Name of the Secret holding the device CA.
pub const CA_SECRET_NAME: &str = "flotta-ca";
/// Key of the CA certificate (PEM) in that Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
/// Key of the CA private key (PEM) in that Secret.
pub const CA_KEY_KEY: &str = "ca.key";

/// Why the device CA Secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceCaError {
    /// The cluster could not be asked.
    #[error("reading or creating Secret {namespace}/{CA_SECRET_NAME}: {source}")]
    Kube {
        /// The namespace.
        namespace: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The Secret lacks a key or is not UTF-8 PEM.
    #[error("Secret {namespace}/{CA_SECRET_NAME}: {reason}")]
    Malformed {
        /// The namespace.
        namespace: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA in the Secret (or a new one) is unusable.
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// Loads the device CA from the `flotta-ca` Secret in `namespace`, creating the Secret
/// with a new CA first if there is none (see the module docs).
pub async fn load_or_create(
    client: kube::Client,
    namespace: &str,
) -> Result<DeviceCa, DeviceCaError> {
    let pem = load_or_create_pem(client, namespace).await?;
    Ok(DeviceCa::from_pem(
        &pem.cert_pem,
        &pem.key_pem,
        &format!("Secret {namespace}/{CA_SECRET_NAME}"),
    )?)
}

/// Like [`load_or_create`], but returns the checked PEM certificate and key.
pub async fn load_or_create_pem(
    client: kube::Client,
    namespace: &str,
) -> Result<IssuedCertificate, DeviceCaError> {
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let kube_error = |source| DeviceCaError::Kube {
        namespace: namespace.to_owned(),
        source,
    };
    if let Some(secret) = secrets.get_opt(CA_SECRET_NAME).await.map_err(kube_error)? {
        return from_secret(&secret, namespace);
    }
    let generated = DeviceCa::generate()?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(CA_SECRET_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "flotta".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                CA_CERT_KEY.to_owned(),
                ByteString(generated.cert_pem.clone().into_bytes()),
            ),
            (
                CA_KEY_KEY.to_owned(),
                ByteString(generated.key_pem.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(%namespace, name = CA_SECRET_NAME, "created the device CA Secret");
            Ok(generated)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = secrets.get(CA_SECRET_NAME).await.map_err(kube_error)?;
            from_secret(&existing, namespace)
        }
        Err(error) => Err(kube_error(error)),
    }
}

/// Reads the CA out of a `flotta-ca` Secret, checking that it is a usable CA.
pub fn from_secret(secret: &Secret, namespace: &str) -> Result<IssuedCertificate, DeviceCaError> {
    let malformed = |reason: String| DeviceCaError::Malformed {
        namespace: namespace.to_owned(),
        reason,
    };
    let value = |key: &str| -> Result<String, DeviceCaError> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .ok_or_else(|| malformed(format!("no key {key:?}")))?;
        String::from_utf8(bytes.0.clone())
            .map_err(|_| malformed(format!("{key:?} is not PEM text")))
    };
    let pem = IssuedCertificate {
        cert_pem: value(CA_CERT_KEY)?,
        key_pem: value(CA_KEY_KEY)?,
    };
    DeviceCa::from_pem(
        &pem.cert_pem,
        &pem.key_pem,
        &format!("Secret {namespace}/{CA_SECRET_NAME}"),
    )?;
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flotta_layout() {
        let generated = DeviceCa::generate().unwrap();
        let secret = Secret {
            data: Some(BTreeMap::from([
                (
                    CA_CERT_KEY.to_owned(),
                    ByteString(generated.cert_pem.clone().into_bytes()),
                ),
                (
                    CA_KEY_KEY.to_owned(),
                    ByteString(generated.key_pem.into_bytes()),
                ),
            ])),
            ..Secret::default()
        };
        let pem = from_secret(&secret, "flotta").unwrap();
        assert_eq!(pem.cert_pem, generated.cert_pem);
        let missing = Secret::default();
        assert!(matches!(
            from_secret(&missing, "flotta"),
            Err(DeviceCaError::Malformed { .. })
        ));
    }
}
