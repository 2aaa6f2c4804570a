//! The serving certificate of aggregated mode, reloaded when its files change
//! (`--tls-cert-file`, `--tls-private-key-file`).
//!
//! [`ServingCertificate`] is a rustls certificate resolver: every handshake gets the
//! certificate current at that moment, so a rotated certificate (cert-manager renewing
//! it, a re-created Secret volume) is served to new connections without a restart; open
//! connections keep the one they negotiated. [`ServingCertificate::watch`] polls both files
//! and swaps in the new pair once both parse and match; a broken or half-written pair is
//! logged and the previous certificate stays in service. Files are compared by content
//! (a SHA-256), not by modification time, because Kubernetes updates Secret volumes by
//! swapping a symlink.
//!
//! Limits: polling, not inotify (a change is picked up within the poll interval); the
//! certificate is never stapled with OCSP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

use crate::tls::crypto_provider;

/// How often [`ServingCertificate::watch`] looks at the files by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("{}: no PEM certificate: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key file holds no usable PEM private key.
    #[error("{}: no usable PEM private key: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key does not belong to the certificate, or rustls cannot use it.
    #[error("the private key does not match the certificate: {0}")]
    Mismatch(#[source] rustls::Error),
}

/// Where the pair comes from.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

/// A server certificate that can be replaced while serving (see the module docs).
#[derive(Debug)]
pub struct ServingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<Files>,
    digest: RwLock<[u8; 32]>,
}

impl ServingCertificate {
    /// Loads the pair from PEM files; [`watch`](Self::watch) keeps it current.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<Self>, CertificateError> {
        let files = Files {
            cert: cert.to_owned(),
            key: key.to_owned(),
        };
        let (certified, digest) = load(&files)?;
        Ok(Arc::new(ServingCertificate {
            current: RwLock::new(Arc::new(certified)),
            files: Some(files),
            digest: RwLock::new(digest),
        }))
    }

    /// A fixed pair (never reloaded).
    pub fn fixed(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<Self>, CertificateError> {
        let certified = CertifiedKey::from_der(chain, key, &crypto_provider())
            .map_err(CertificateError::Mismatch)?;
        Ok(Arc::new(ServingCertificate {
            current: RwLock::new(Arc::new(certified)),
            files: None,
            digest: RwLock::new([0; 32]),
        }))
    }

    /// The certificate chain served now.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current().cert.clone()
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files and swaps the pair in if they changed and are valid. Returns
    /// whether a new pair is now served.
    pub fn reload_if_changed(&self) -> Result<bool, CertificateError> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        let digest = file_digest(files)?;
        if digest
            == *self
                .digest
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            return Ok(false);
        }
        let (certified, digest) = load(files)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(certified);
        *self
            .digest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = digest;
        Ok(true)
    }

    /// Polls the files every `interval` until the returned task is aborted (nothing to do
    /// for a fixed pair).
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            if this.files.is_none() {
                return;
            }
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let this = this.clone();
                let result = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
                match result {
                    Ok(Ok(true)) => tracing::info!("serving certificate reloaded"),
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "serving certificate not reloaded; keeping the current one");
                    }
                    Err(error) => tracing::warn!(%error, "serving certificate reload task failed"),
                }
            }
        })
    }
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|source| CertificateError::Read {
        path: path.to_owned(),
        source,
    })
}

fn file_digest(files: &Files) -> Result<[u8; 32], CertificateError> {
    let mut hasher = Sha256::new();
    hasher.update(read(&files.cert)?);
    hasher.update([0]);
    hasher.update(read(&files.key)?);
    Ok(hasher.finalize().into())
}

fn load(files: &Files) -> Result<(CertifiedKey, [u8; 32]), CertificateError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertificateError::Certificate {
            path: files.cert.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertificateError::Certificate {
            path: files.cert.clone(),
            reason: "the file holds no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| CertificateError::Key {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, key, &crypto_provider())
        .map_err(CertificateError::Mismatch)?;
    let mut hasher = Sha256::new();
    hasher.update(&cert_pem);
    hasher.update([0]);
    hasher.update(&key_pem);
    Ok((certified, hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn reloads_only_valid_changed_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("tls.crt");
        let key_path = dir.path().join("tls.key");
        let (cert_a, key_a) = pair("a.example");
        std::fs::write(&cert_path, &cert_a).unwrap();
        std::fs::write(&key_path, &key_a).unwrap();
        let serving = ServingCertificate::from_files(&cert_path, &key_path).unwrap();
        let first = serving.chain();
        assert!(!serving.reload_if_changed().unwrap());

        // Half-written rotation: new certificate, old key → rejected, old pair kept.
        let (cert_b, key_b) = pair("b.example");
        std::fs::write(&cert_path, &cert_b).unwrap();
        assert!(matches!(
            serving.reload_if_changed(),
            Err(CertificateError::Mismatch(_))
        ));
        assert_eq!(serving.chain(), first);

        std::fs::write(&key_path, &key_b).unwrap();
        assert!(serving.reload_if_changed().unwrap());
        assert_ne!(serving.chain(), first);
        assert!(!serving.reload_if_changed().unwrap());

        std::fs::write(&cert_path, "garbage").unwrap();
        assert!(serving.reload_if_changed().is_err());
        assert!(ServingCertificate::from_files(&cert_path, &key_path).is_err());
    }
}
