//! The device PKI: the device CA, the Edge API's server certificate, the bootstrap
//! ("registration") client certificate, and CSR signing for device certificates
//! (`flotta-inventory.md` §3.6).
//!
//! The CA (ECDSA P-256, `O=flotta-operator`, 10 years) is either supplied by the operator
//! as PEM files (`--device-ca-cert`/`--device-ca-key`; PKCS#8 keys, or SEC1 `EC PRIVATE
//! KEY` P-256 keys as Flotta writes them) or created on first start and kept in the store
//! under [`CA_STORE_KEY`], created only if absent, so that replicas racing at start agree
//! on one CA and every replica signs with it.
//!
//! Certificates issued here:
//! - the server certificate of the device listener, issued at every start and kept in
//!   memory only (1 year, capped at the CA's expiry; `serverAuth` and `clientAuth`, the
//!   latter for mTLS to a remote backend as in Flotta);
//! - the bootstrap client certificate `CN=register, O=flotta-operator` (`clientAuth`,
//!   1 year), written with the CA certificate to `<data-dir>/device-bootstrap/` as
//!   `ca.pem`, `cert.pem` and `key.pem` (what gets installed on a device, Flotta's
//!   `/etc/pki/consumer/`); it is reused on restart while it is this CA's, matches its key
//!   and has more than 30 days left;
//! - device certificates from CSRs: the CSR's signature is verified and only its public key
//!   is used; the subject is forced to `CN=<device id>, O=flotta-operator,
//!   OU=<namespace>`, extended key usages `clientAuth` and `serverAuth` (Flotta devices
//!   verify with Go's defaults, which need `serverAuth`), not before one hour ago (clock
//!   drift), not after the configured validity (capped at the CA's expiry).
//!
//! Limits: the private key of a store-kept CA is stored unencrypted (like Flotta's Secret);
//! there is no revocation list and no CA rotation; RSA keys in PKCS#1 form are not
//! accepted (convert them to PKCS#8); the server certificate is not renewed while the
//! process runs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotta_api::store::{Store, StoreError};
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, Issuer,
    KeyPair,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::X509Certificate;

pub use crate::x509::IssuedCertificate;
use crate::x509::{self, Validity};

/// Store key of the device CA (not an API object; never served).
pub const CA_STORE_KEY: &str = "/registry/flotta.internal/pki/device-ca";
/// Common name of the bootstrap (registration) client certificate.
pub const BOOTSTRAP_COMMON_NAME: &str = "register";
/// Organization of every certificate of the device PKI, as in Flotta.
pub const ORGANIZATION: &str = "flotta-operator";
/// Name of the bootstrap directory inside the data directory.
pub const BOOTSTRAP_DIR: &str = "device-bootstrap";
/// Default validity of device certificates.
pub const DEFAULT_DEVICE_CERT_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A reused bootstrap certificate must have at least this much validity left.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Device certificates are valid from this long before signing (device clock drift).
const BACKDATE: Duration = Duration::from_secs(3600);

/// What can go wrong creating, loading or using the device CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Generating a key or signing a certificate failed.
    #[error("generating {what}: {source}")]
    Generate {
        /// Which item.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// CA material (from files or the store) is unusable.
    #[error("device CA {origin}: {reason}")]
    Invalid {
        /// Where it came from.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The store failed.
    #[error("device CA in the store: {0}")]
    Store(#[from] StoreError),
}

/// Why a CSR could not be signed. Always the device's fault (→ 400), except `Sign`.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// Not a PEM CSR, an unsupported key or extension, or a bad signature.
    #[error("invalid certificate signing request: {0}")]
    Invalid(String),
    /// Signing failed on our side.
    #[error("signing the device certificate: {0}")]
    Sign(#[source] rcgen::Error),
}

/// The CA material as kept in the store.
#[derive(Serialize, Deserialize)]
struct StoredCa {
    certificate: String,
    #[serde(rename = "privateKey")]
    private_key: String,
}

/// The device CA: signs the server, bootstrap and device certificates.
pub struct DeviceCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    not_after: i64,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCa")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl DeviceCa {
    /// A new self-signed CA, as PEM certificate and PKCS#8 key.
    pub fn generate() -> Result<IssuedCertificate, CaError> {
        let now = now_unix();
        let common_name = format!("flotta-device-ca@{now}");
        let subject = [
            (DnType::CommonName, common_name.as_str()),
            (DnType::OrganizationName, ORGANIZATION),
        ];
        let validity = Validity {
            not_before: now - seconds(BACKDATE),
            not_after: now.saturating_add(seconds(CA_VALIDITY)),
        };
        x509::self_signed_ca(&subject, validity).map_err(|source| CaError::Generate {
            what: "device CA",
            source,
        })
    }

    /// Loads a CA from PEM text; `origin` names the source in errors.
    pub fn from_pem(cert_pem: &str, key_pem: &str, origin: &str) -> Result<Self, CaError> {
        let invalid = |reason: String| CaError::Invalid {
            origin: origin.to_owned(),
            reason,
        };
        let key = parse_private_key(key_pem).map_err(invalid)?;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| invalid(format!("certificate: {e}")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        if !x509::certifies_key(&cert, &key) {
            return Err(invalid("the certificate does not match the key".into()));
        }
        if !cert.is_ca() {
            return Err(invalid("the certificate is not a CA".into()));
        }
        let not_after = cert.validity().not_after.timestamp();
        if not_after <= now_unix() {
            return Err(invalid("the CA certificate has expired".into()));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| invalid(format!("unusable as a CA: {e}")))?;
        Ok(DeviceCa {
            cert_pem: cert_pem.to_owned(),
            cert_der: cert_der.into_owned(),
            issuer,
            not_after,
        })
    }

    /// Loads the operator-supplied CA from a certificate and a key file.
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<Self, CaError> {
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| CaError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        Self::from_pem(
            &cert_pem,
            &key_pem,
            &format!("{} / {}", cert_path.display(), key_path.display()),
        )
    }

    /// Loads the CA kept in `store`, creating it first if there is none. Two replicas
    /// racing here agree: only one `create` succeeds and the other loads the winner's CA.
    pub async fn load_or_create(store: &dyn Store) -> Result<Self, CaError> {
        if let Some(kv) = store.get(CA_STORE_KEY).await? {
            return Self::from_stored(&kv.value);
        }
        let generated = Self::generate()?;
        let stored = StoredCa {
            certificate: generated.cert_pem,
            private_key: generated.key_pem,
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| CaError::Invalid {
            origin: "generated".into(),
            reason: e.to_string(),
        })?;
        match store.create(CA_STORE_KEY, bytes).await {
            Ok(_) => {
                tracing::info!(key = CA_STORE_KEY, "created the device CA in the store");
                Self::from_pem(&stored.certificate, &stored.private_key, CA_STORE_KEY)
            }
            Err(StoreError::AlreadyExists(_)) => {
                let kv = store
                    .get(CA_STORE_KEY)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(CA_STORE_KEY.to_owned()))?;
                Self::from_stored(&kv.value)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn from_stored(value: &[u8]) -> Result<Self, CaError> {
        let stored: StoredCa = serde_json::from_slice(value).map_err(|e| CaError::Invalid {
            origin: CA_STORE_KEY.into(),
            reason: e.to_string(),
        })?;
        Self::from_pem(&stored.certificate, &stored.private_key, CA_STORE_KEY)
    }

    /// The CA certificate in PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate in DER, as a trust root.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// When the CA expires (Unix seconds).
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Whether `cert_der` is a certificate signed by this CA (signature only; validity
    /// dates are not checked).
    pub fn signed(&self, cert_der: &[u8]) -> bool {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
            return false;
        };
        self.signed_parsed(&cert)
    }

    fn signed_parsed(&self, cert: &X509Certificate<'_>) -> bool {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&self.cert_der) else {
            return false;
        };
        cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// A server certificate for the device listener covering `hosts` (DNS names or IP
    /// addresses).
    pub fn issue_server_certificate(&self, hosts: &[String]) -> Result<IssuedCertificate, CaError> {
        x509::leaf_params(
            &[
                (DnType::CommonName, "flotta-edge-api"),
                (DnType::OrganizationName, ORGANIZATION),
            ],
            hosts,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
        .and_then(|params| self.issue_with_new_key(params, LEAF_VALIDITY))
        .map_err(|source| CaError::Generate {
            what: "device API server certificate",
            source,
        })
    }

    /// A new bootstrap client certificate (`CN=register`).
    pub fn issue_bootstrap_certificate(&self) -> Result<IssuedCertificate, CaError> {
        x509::leaf_params(
            &[
                (DnType::CommonName, BOOTSTRAP_COMMON_NAME),
                (DnType::OrganizationName, ORGANIZATION),
            ],
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
        )
        .and_then(|params| self.issue_with_new_key(params, LEAF_VALIDITY))
        .map_err(|source| CaError::Generate {
            what: "bootstrap client certificate",
            source,
        })
    }

    fn issue_with_new_key(
        &self,
        params: CertificateParams,
        validity: Duration,
    ) -> Result<IssuedCertificate, rcgen::Error> {
        x509::issue_with_new_key(&self.issuer, params, self.leaf_validity(validity))
    }

    /// From [`BACKDATE`] ago to `validity` from now, but not after the CA.
    fn leaf_validity(&self, validity: Duration) -> Validity {
        let now = now_unix();
        Validity {
            not_before: now - seconds(BACKDATE),
            not_after: now
                .saturating_add(seconds(validity))
                .min(self.not_after.saturating_sub(1)),
        }
    }

    /// Signs a device CSR (PEM): the CSR's signature is verified and only its public key is
    /// kept; the subject becomes `CN=<device_id>, O=flotta-operator, OU=<namespace>`.
    /// Returns the certificate in PEM.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        device_id: &str,
        namespace: &str,
        validity: Duration,
    ) -> Result<String, CsrError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CsrError::Invalid(e.to_string()))?;
        let cert = x509::leaf_params(
            &[
                (DnType::CommonName, device_id),
                (DnType::OrganizationName, ORGANIZATION),
                (DnType::OrganizationalUnitName, namespace),
            ],
            &[],
            &[
                ExtendedKeyUsagePurpose::ClientAuth,
                ExtendedKeyUsagePurpose::ServerAuth,
            ],
        )
        .and_then(|params| {
            x509::sign_leaf(
                &self.issuer,
                params,
                &csr.public_key,
                self.leaf_validity(validity),
            )
        })
        .map_err(CsrError::Sign)?;
        Ok(cert.pem())
    }
}

/// Where the bootstrap material was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapFiles {
    /// The directory (`<data-dir>/device-bootstrap`).
    pub dir: PathBuf,
    /// The CA certificate (`ca.pem`).
    pub ca: PathBuf,
    /// The bootstrap client certificate (`cert.pem`).
    pub cert: PathBuf,
    /// Its key (`key.pem`, mode 0600).
    pub key: PathBuf,
}

/// Writes (or keeps) the bootstrap client certificate and the CA certificate in `dir`
/// (see the module documentation). Blocking: call it from `spawn_blocking` in async code.
pub fn ensure_bootstrap(ca: &DeviceCa, dir: &Path) -> Result<BootstrapFiles, CaError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| CaError::Io { path, source }
    };
    {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
    }
    let files = BootstrapFiles {
        dir: dir.to_owned(),
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    if fs::read_to_string(&files.ca).ok().as_deref() != Some(ca.certificate_pem()) {
        crate::pki::write_atomically(&files.ca, ca.certificate_pem().as_bytes(), 0o644)
            .map_err(io_error(&files.ca))?;
    }
    match bootstrap_problem(ca, &files) {
        None => {}
        Some(reason) => {
            tracing::info!(cert = %files.cert.display(), %reason, "issuing the bootstrap client certificate");
            let issued = ca.issue_bootstrap_certificate()?;
            // Key first: a crash in between leaves a mismatched pair, repaired next start.
            crate::pki::write_atomically(&files.key, issued.key_pem.as_bytes(), 0o600)
                .map_err(io_error(&files.key))?;
            crate::pki::write_atomically(&files.cert, issued.cert_pem.as_bytes(), 0o644)
                .map_err(io_error(&files.cert))?;
        }
    }
    Ok(files)
}

/// Why the bootstrap pair on disk cannot be reused, or `None` if it can.
fn bootstrap_problem(ca: &DeviceCa, files: &BootstrapFiles) -> Option<String> {
    let cert_pem = match fs::read_to_string(&files.cert) {
        Ok(pem) => pem,
        Err(error) => return Some(format!("cert.pem: {error}")),
    };
    let key_pem = match fs::read_to_string(&files.key) {
        Ok(pem) => pem,
        Err(error) => return Some(format!("key.pem: {error}")),
    };
    let Ok(der) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return Some("cert.pem is not a PEM certificate".into());
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return Some("cert.pem is not an X.509 certificate".into());
    };
    if !ca.signed_parsed(&cert) {
        return Some("not issued by the device CA".into());
    }
    let Ok(key) = KeyPair::from_pem(&key_pem) else {
        return Some("key.pem is not a PKCS#8 key".into());
    };
    if !x509::certifies_key(&cert, &key) {
        return Some("cert.pem does not match key.pem".into());
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .find_map(|attr| attr.as_str().ok());
    if common_name != Some(BOOTSTRAP_COMMON_NAME) {
        return Some("not a bootstrap certificate".into());
    }
    if cert.validity().not_after.timestamp() < now_unix().saturating_add(seconds(RENEW_BEFORE)) {
        return Some("expires within 30 days".into());
    }
    None
}

/// Parses a PKCS#8 private key, or a SEC1 (`EC PRIVATE KEY`) P-256 key as Flotta and Go
/// write them.
fn parse_private_key(pem: &str) -> Result<KeyPair, String> {
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    match key {
        rustls_pki_types::PrivateKeyDer::Pkcs8(der) => {
            KeyPair::try_from(der.secret_pkcs8_der()).map_err(|e| format!("private key: {e}"))
        }
        rustls_pki_types::PrivateKeyDer::Sec1(der) => {
            let pkcs8 = p256_sec1_to_pkcs8(der.secret_sec1_der());
            KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), &rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| format!("EC private key (only P-256 is supported): {e}"))
        }
        rustls_pki_types::PrivateKeyDer::Pkcs1(_) => Err(
            "RSA PRIVATE KEY (PKCS#1) is not supported; convert it with `openssl pkcs8 -topk8 -nocrypt`"
                .into(),
        ),
        _ => Err("unsupported private key format".into()),
    }
}

/// Wraps a SEC1 `ECPrivateKey` of curve P-256 into a PKCS#8 `PrivateKeyInfo`.
fn p256_sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { id-ecPublicKey, prime256v1 }
    const ALGORITHM: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(ALGORITHM);
    body.extend(der_tlv(0x04, sec1));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use base64::Engine as _;
    use flotta_api::store::memory::MemoryStore;
    use rcgen::PublicKeyData as _;
    use x509_parser::extensions::ParsedExtension;

    use super::*;
    use crate::x509::new_key;

    fn new_ca() -> DeviceCa {
        let generated = DeviceCa::generate().expect("CA");
        DeviceCa::from_pem(&generated.cert_pem, &generated.key_pem, "test").expect("loads")
    }

    fn csr_for(key: &KeyPair, common_name: &str) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name = x509::distinguished_name(&[
            (DnType::CommonName, common_name),
            (DnType::OrganizationalUnitName, "attacker-chosen"),
        ]);
        params
            .serialize_request(key)
            .expect("CSR")
            .pem()
            .expect("PEM")
    }

    /// A device certificate that `ca` signed for the CSR of a new key.
    fn device_certificate(ca: &DeviceCa) -> CertificateDer<'static> {
        let pem = ca
            .sign_csr(
                &csr_for(&new_key().expect("key"), "d"),
                "d",
                "default",
                DEFAULT_DEVICE_CERT_VALIDITY,
            )
            .expect("signed");
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM")
    }

    struct Parsed {
        common_name: String,
        organization: String,
        unit: String,
        not_before: i64,
        not_after: i64,
        client_auth: bool,
        server_auth: bool,
        spki: Vec<u8>,
    }

    fn parse(pem: &str) -> Parsed {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("X.509");
        fn first<'a>(
            mut iter: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
        ) -> String {
            iter.find_map(|a| a.as_str().ok())
                .unwrap_or_default()
                .to_owned()
        }
        let subject = cert.subject();
        let eku = cert
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::ExtendedKeyUsage(eku) => Some((eku.client_auth, eku.server_auth)),
                _ => None,
            })
            .unwrap_or((false, false));
        Parsed {
            common_name: first(subject.iter_common_name()),
            organization: first(subject.iter_organization()),
            unit: first(subject.iter_organizational_unit()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            client_auth: eku.0,
            server_auth: eku.1,
            spki: cert.public_key().raw.to_vec(),
        }
    }

    #[test]
    fn csr_subject_is_forced_and_validity_applied() {
        let ca = new_ca();
        let key = new_key().expect("key");
        let validity = Duration::from_secs(7 * 86_400);
        let pem = ca
            .sign_csr(&csr_for(&key, "someone-else"), "dev-1", "fleet-a", validity)
            .expect("signed");
        let cert = parse(&pem);
        assert_eq!(cert.common_name, "dev-1");
        assert_eq!(cert.organization, ORGANIZATION);
        assert_eq!(cert.unit, "fleet-a");
        assert!(cert.client_auth && cert.server_auth);
        assert_eq!(cert.spki, key.subject_public_key_info());
        let now = now_unix();
        assert!(
            (cert.not_before - (now - 3600)).abs() <= 5,
            "backdated one hour"
        );
        assert!((cert.not_after - (now + 7 * 86_400)).abs() <= 5);
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM");
        assert!(ca.signed(&der));
        assert!(!new_ca().signed(&der), "another CA did not sign it");
    }

    #[test]
    fn bad_csrs_are_invalid() {
        let ca = new_ca();
        let validity = DEFAULT_DEVICE_CERT_VALIDITY;
        assert!(matches!(
            ca.sign_csr("not a CSR", "d", "default", validity),
            Err(CsrError::Invalid(_))
        ));
        // Flip one bit of the signature: the CSR no longer verifies.
        let key = new_key().expect("key");
        let pem = csr_for(&key, "d");
        let mut der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
                .expect("PEM")
                .as_ref()
                .to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        assert!(matches!(
            ca.sign_csr(&tampered, "d", "default", validity),
            Err(CsrError::Invalid(_))
        ));
    }

    #[test]
    fn validity_is_capped_at_the_ca_expiry() {
        let ca = new_ca();
        let pem = ca
            .sign_csr(
                &csr_for(&new_key().expect("key"), "d"),
                "d",
                "default",
                Duration::from_secs(100 * 365 * 86_400),
            )
            .expect("signed");
        assert!(parse(&pem).not_after < ca.not_after());
    }

    #[test]
    fn server_and_bootstrap_certificates() {
        let ca = new_ca();
        let server = ca
            .issue_server_certificate(&["edge.example.com".into(), "127.0.0.1".into()])
            .expect("server");
        let parsed = parse(&server.cert_pem);
        assert!(parsed.server_auth);
        let sans = crate::pki::subject_alt_names(&server.cert_pem).expect("SANs");
        assert!(sans.contains(&"edge.example.com".to_owned()), "{sans:?}");
        assert!(sans.contains(&"127.0.0.1".to_owned()), "{sans:?}");

        let bootstrap = parse(
            &ca.issue_bootstrap_certificate()
                .expect("bootstrap")
                .cert_pem,
        );
        assert_eq!(bootstrap.common_name, BOOTSTRAP_COMMON_NAME);
        assert_eq!(bootstrap.organization, ORGANIZATION);
        assert!(bootstrap.client_auth && !bootstrap.server_auth);
    }

    #[tokio::test]
    async fn the_store_keeps_one_ca_for_every_replica() {
        let store = MemoryStore::new(100);
        let (a, b) = tokio::join!(
            DeviceCa::load_or_create(&store),
            DeviceCa::load_or_create(&store)
        );
        let (a, b) = (a.expect("first"), b.expect("second"));
        assert_eq!(a.certificate_pem(), b.certificate_pem());
        let again = DeviceCa::load_or_create(&store).await.expect("again");
        assert_eq!(again.certificate_pem(), a.certificate_pem());
        // What one replica signs, another verifies.
        assert!(b.signed(&device_certificate(&a)));
    }

    #[tokio::test]
    async fn a_corrupt_stored_ca_is_an_error_not_a_new_ca() {
        let store = MemoryStore::new(100);
        store
            .create(CA_STORE_KEY, b"{}".to_vec())
            .await
            .expect("create");
        assert!(matches!(
            DeviceCa::load_or_create(&store).await,
            Err(CaError::Invalid { .. })
        ));
    }

    #[test]
    fn operator_files_in_pkcs8_and_sec1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let generated = DeviceCa::generate().expect("CA");
        let cert_path = dir.path().join("ca.crt");
        let key_path = dir.path().join("ca.key");
        fs::write(&cert_path, &generated.cert_pem).expect("write");
        fs::write(&key_path, &generated.key_pem).expect("write");
        let pkcs8 = DeviceCa::from_files(&cert_path, &key_path).expect("PKCS#8 CA");

        // The same key as SEC1 `EC PRIVATE KEY` (what Go's x509.MarshalECPrivateKey
        // writes): the OCTET STRING inside the PKCS#8 structure.
        let der =
            rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(generated.key_pem.as_bytes())
                .expect("PKCS#8");
        let sec1 = inner_octet_string(der.secret_pkcs8_der());
        let sec1_pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(sec1)
        );
        fs::write(&key_path, sec1_pem).expect("write");
        let sec1_ca = DeviceCa::from_files(&cert_path, &key_path).expect("SEC1 CA");
        assert!(pkcs8.signed(&device_certificate(&sec1_ca)));

        // A key that does not belong to the certificate.
        fs::write(&key_path, DeviceCa::generate().expect("other").key_pem).expect("write");
        assert!(matches!(
            DeviceCa::from_files(&cert_path, &key_path),
            Err(CaError::Invalid { .. })
        ));
        assert!(matches!(
            DeviceCa::from_files(&dir.path().join("missing"), &key_path),
            Err(CaError::Io { .. })
        ));
    }

    /// The last top-level OCTET STRING of a PKCS#8 PrivateKeyInfo (the SEC1 key).
    fn inner_octet_string(pkcs8: &[u8]) -> Vec<u8> {
        let (_, content) = der_read(pkcs8);
        let mut rest = content;
        loop {
            let tag = rest[0];
            let (used, value) = der_read(rest);
            if tag == 0x04 {
                return value.to_vec();
            }
            rest = &rest[used..];
        }
    }

    /// Reads one DER TLV: (total length, value).
    fn der_read(input: &[u8]) -> (usize, &[u8]) {
        let first = usize::from(input[1]);
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        };
        (header + len, &input[header..header + len])
    }

    #[test]
    fn bootstrap_files_are_written_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bootstrap_dir = dir.path().join(BOOTSTRAP_DIR);
        let ca = new_ca();
        let files = ensure_bootstrap(&ca, &bootstrap_dir).expect("bootstrap");
        let mode = |path: &Path| fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(
            fs::read_to_string(&files.ca).expect("ca"),
            ca.certificate_pem()
        );
        let cert = fs::read_to_string(&files.cert).expect("cert");
        let cert_der = CertificateDer::from_pem_slice(cert.as_bytes()).expect("PEM");
        assert!(ca.signed(&cert_der));
        assert_eq!(parse(&cert).common_name, BOOTSTRAP_COMMON_NAME);

        // Restart with the same CA: reused as is.
        ensure_bootstrap(&ca, &bootstrap_dir).expect("again");
        assert_eq!(fs::read_to_string(&files.cert).expect("cert"), cert);

        // A mismatched key is repaired.
        fs::write(&files.key, new_key().expect("key").serialize_pem()).expect("write");
        ensure_bootstrap(&ca, &bootstrap_dir).expect("repair");
        assert_ne!(fs::read_to_string(&files.cert).expect("cert"), cert);

        // Another CA: everything is replaced.
        let other = new_ca();
        ensure_bootstrap(&other, &bootstrap_dir).expect("new CA");
        assert_eq!(
            fs::read_to_string(&files.ca).expect("ca"),
            other.certificate_pem()
        );
        let cert = fs::read_to_string(&files.cert).expect("cert");
        let cert_der = CertificateDer::from_pem_slice(cert.as_bytes()).expect("PEM");
        assert!(other.signed(&cert_der) && !ca.signed(&cert_der));
    }
}
