//! The device's TLS identity: the bootstrap certificate it starts with, the device
//! certificate it obtains by registering, CSRs, and when to renew.
//!
//! A CSR carries `CN=<device id>` (the server sets O and OU). Holding the bootstrap
//! certificate (`CN=register`) the agent makes a new ECDSA P-256 key; holding a device
//! certificate it reuses that key (renewal). Renewal is due at two thirds of the
//! certificate's lifetime. Limits: only the leaf certificate of a chain is inspected.

use std::path::{Path, PathBuf};

use crate::state::{StateDir, StateError, write_atomic};

/// The common name of the shared bootstrap certificate.
pub const BOOTSTRAP_COMMON_NAME: &str = "register";

/// Why an identity could not be loaded, made or stored.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A certificate could not be parsed.
    #[error("invalid certificate {what}: {message}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// Why.
        message: String,
    },
    /// A key or CSR could not be made.
    #[error("making a CSR: {0}")]
    Csr(#[from] rcgen::Error),
    /// The identity could not be stored.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A client certificate (chain, PEM) with its private key (PEM) and what the leaf says.
#[derive(Clone)]
pub struct Identity {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
    /// The leaf's common name.
    pub common_name: Option<String>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("common_name", &self.common_name)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })
}

impl Identity {
    /// An identity from PEM texts; `what` names it in errors.
    pub fn from_pem(cert_pem: String, key_pem: String, what: &str) -> Result<Self, IdentityError> {
        let invalid = |message: String| IdentityError::Certificate {
            what: what.to_owned(),
            message,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| invalid(e.to_string()))?;
        let cert = pem.parse_x509().map_err(|e| invalid(e.to_string()))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        if !key_pem.contains("PRIVATE KEY") {
            return Err(invalid("the key file holds no PEM private key".into()));
        }
        Ok(Self {
            cert_pem,
            key_pem,
            common_name,
            not_before,
            not_after,
        })
    }

    /// Reads a certificate and key from files; errors name the file.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, IdentityError> {
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        Self::from_pem(cert_pem, key_pem, &cert.display().to_string())
    }

    /// The device identity stored in `state`, if there is one.
    pub fn stored(state: &StateDir) -> Result<Option<Self>, IdentityError> {
        if !state.cert_path().exists() || !state.key_path().exists() {
            return Ok(None);
        }
        Self::load(&state.cert_path(), &state.key_path()).map(Some)
    }

    /// Stores this identity in `state` atomically: the key first, then the certificate,
    /// so a crash in between leaves a certificate that still matches, or the new pair.
    pub fn store(&self, state: &StateDir) -> Result<(), IdentityError> {
        write_atomic(&state.key_path(), self.key_pem.as_bytes(), 0o600)?;
        write_atomic(&state.cert_path(), self.cert_pem.as_bytes(), 0o600)?;
        Ok(())
    }

    /// Whether this is the shared bootstrap certificate.
    pub fn is_bootstrap(&self) -> bool {
        self.common_name.as_deref() == Some(BOOTSTRAP_COMMON_NAME)
    }

    /// When renewal is due (Unix seconds): two thirds into the validity.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }

    /// A CSR for `CN=<device_id>` and the key it is for: a new P-256 key when this is the
    /// bootstrap identity, else this identity's key. Returns `(key_pem, csr_pem)`.
    pub fn csr(&self, device_id: &str) -> Result<(String, String), IdentityError> {
        let key = if self.is_bootstrap() {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?
        } else {
            rcgen::KeyPair::from_pem(&self.key_pem)?
        };
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, device_id);
        let csr = params.serialize_request(&key)?.pem()?;
        Ok((key.serialize_pem(), csr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(cn: &str) -> Identity {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        Identity::from_pem(cert.pem(), key.serialize_pem(), "test").unwrap()
    }

    #[test]
    fn bootstrap_gets_a_new_key_and_a_device_keeps_its_key() {
        let bootstrap = certificate(BOOTSTRAP_COMMON_NAME);
        assert!(bootstrap.is_bootstrap());
        let (key, csr) = bootstrap.csr("dev1").unwrap();
        assert_ne!(key, bootstrap.key_pem);
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
        let cn = parsed
            .params
            .distinguished_name
            .get(&rcgen::DnType::CommonName)
            .cloned();
        assert_eq!(cn, Some(rcgen::DnValue::Utf8String("dev1".into())));

        let device = certificate("dev1");
        assert!(!device.is_bootstrap());
        let (key, _) = device.csr("dev1").unwrap();
        assert_eq!(
            rcgen::KeyPair::from_pem(&key).unwrap().public_key_pem(),
            rcgen::KeyPair::from_pem(&device.key_pem)
                .unwrap()
                .public_key_pem()
        );
    }

    #[test]
    fn renewal_is_due_at_two_thirds() {
        let mut identity = certificate("dev1");
        identity.not_before = 0;
        identity.not_after = 300;
        assert_eq!(identity.renew_at(), 200);
    }

    #[test]
    fn store_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(Identity::stored(&state).unwrap().is_none());
        let identity = certificate("dev1");
        identity.store(&state).unwrap();
        let loaded = Identity::stored(&state).unwrap().unwrap();
        assert_eq!(loaded.cert_pem, identity.cert_pem);
        assert_eq!(loaded.common_name.as_deref(), Some("dev1"));
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = Identity::load(Path::new("/nope/cert.pem"), Path::new("/nope/key.pem"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nope/cert.pem"), "{error}");
    }
}
