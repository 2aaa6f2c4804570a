//! Issuing X.509 certificates with rcgen, the way both certificate authorities of this
//! server do it (the standalone serving CA in [`crate::pki`] and the device CA in
//! [`crate::edge::ca`]): ECDSA P-256 keys, random positive 128-bit serial numbers,
//! self-signed CA certificates (path length 0), and leaf certificates (key usage
//! `digitalSignature`) signed by a CA with an authority key identifier, all within a
//! validity window given in Unix seconds; plus the checks that tie a parsed certificate to
//! its key and to its CA (key identifiers).
//!
//! Limits: only ECDSA P-256 keys are generated; a certificate's subject, SANs, extended
//! key usages and lifetime are the caller's decisions, as are loading a CA and reporting
//! errors (every function here returns the plain [`rcgen::Error`]). Nothing here touches
//! files.

use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::X509Certificate;

/// A certificate and its private key, in PEM (PKCS#8 key).
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl IssuedCertificate {
    fn new(cert: &Certificate, key: &KeyPair) -> Self {
        IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl std::fmt::Debug for IssuedCertificate {
    // Keys stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate").finish_non_exhaustive()
    }
}

/// When a certificate is valid: from `not_before` to `not_after`, both Unix seconds
/// (instants before the epoch are clamped to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    /// The first valid instant.
    pub(crate) not_before: i64,
    /// The last valid instant.
    pub(crate) not_after: i64,
}

/// A distinguished name made of `attributes`, in order.
pub(crate) fn distinguished_name(attributes: &[(DnType, &str)]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for (kind, value) in attributes {
        name.push(kind.clone(), *value);
    }
    name
}

/// A new self-signed CA certificate named `subject` with a new key: may sign leaves only
/// (path length 0), key usages `keyCertSign`, `cRLSign` and `digitalSignature`.
pub(crate) fn self_signed_ca(
    subject: &[(DnType, &str)],
    validity: Validity,
) -> Result<IssuedCertificate, rcgen::Error> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    set_validity(&mut params, validity);
    let cert = params.self_signed(&key)?;
    Ok(IssuedCertificate::new(&cert, &key))
}

/// The parameters of a leaf certificate named `subject`, for the SANs `hosts` (each an IP
/// address or a DNS name), with key usage `digitalSignature` and the extended key usages
/// `purposes`. Fails on a host that is neither.
pub(crate) fn leaf_params(
    subject: &[(DnType, &str)],
    hosts: &[String],
    purposes: &[ExtendedKeyUsagePurpose],
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name = distinguished_name(subject);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = purposes.to_vec();
    Ok(params)
}

/// A leaf certificate for a new key, signed by `issuer`: [`sign_leaf`] with a key made
/// here, returned with that key.
pub(crate) fn issue_with_new_key(
    issuer: &Issuer<'_, KeyPair>,
    params: CertificateParams,
    validity: Validity,
) -> Result<IssuedCertificate, rcgen::Error> {
    let key = new_key()?;
    let cert = sign_leaf(issuer, params, &key, validity)?;
    Ok(IssuedCertificate::new(&cert, &key))
}

/// Signs a leaf certificate for `public_key` with `issuer`: `params` as the caller made
/// them, plus a random serial number, the issuer's key identifier as authority key
/// identifier, and `validity`.
pub(crate) fn sign_leaf(
    issuer: &Issuer<'_, KeyPair>,
    mut params: CertificateParams,
    public_key: &impl PublicKeyData,
    validity: Validity,
) -> Result<Certificate, rcgen::Error> {
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, validity);
    params.signed_by(public_key, issuer)
}

/// Whether `cert` certifies `key` (their subject public key infos are equal).
pub(crate) fn certifies_key(cert: &X509Certificate<'_>, key: &impl PublicKeyData) -> bool {
    cert.public_key().raw == key.subject_public_key_info().as_slice()
}

/// The subject key identifier of `cert`, if it has one.
pub(crate) fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

/// The key identifier in the authority key identifier of `cert` (the subject key
/// identifier of the CA that signed it), if it has one.
pub(crate) fn authority_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        })
}

/// A new ECDSA P-256 key.
pub(crate) fn new_key() -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive, non-zero DER integer of full length.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn set_validity(params: &mut CertificateParams, validity: Validity) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let at = |unix: i64| Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    params.not_before = epoch + at(validity.not_before);
    params.not_after = epoch + at(validity.not_after);
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

    use super::*;

    fn parsed<T>(pem: &str, inspect: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("X.509");
        inspect(&cert)
    }

    fn window(cert: &X509Certificate<'_>) -> (i64, i64) {
        let validity = cert.validity();
        (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        )
    }

    #[test]
    fn a_leaf_is_signed_by_its_ca_with_the_requested_names_and_windows() {
        let subject = [
            (DnType::CommonName, "test-ca"),
            (DnType::OrganizationName, "o"),
        ];
        let ca_window = Validity {
            not_before: 1_700_000_000,
            not_after: 2_000_000_000,
        };
        let ca = self_signed_ca(&subject, ca_window).expect("CA");
        let ca_key = KeyPair::from_pem(&ca.key_pem).expect("CA key");
        let ca_key_id = parsed(&ca.cert_pem, |cert| {
            assert!(cert.is_ca());
            assert!(certifies_key(cert, &ca_key));
            assert_eq!(cert.subject().to_string(), "CN=test-ca, O=o");
            assert_eq!(window(cert), (1_700_000_000, 2_000_000_000));
            subject_key_id(cert).expect("SKI")
        });

        let ca_der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).expect("PEM");
        let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key).expect("issuer");
        let params = leaf_params(
            &[(DnType::CommonName, "leaf")],
            &["edge.example".into(), "10.0.0.1".into()],
            &[ExtendedKeyUsagePurpose::ServerAuth],
        )
        .expect("params");
        let leaf_window = Validity {
            not_before: 1_800_000_000,
            not_after: 1_900_000_000,
        };
        let leaf = issue_with_new_key(&issuer, params, leaf_window).expect("leaf");
        let leaf_key = KeyPair::from_pem(&leaf.key_pem).expect("leaf key");
        parsed(&leaf.cert_pem, |cert| {
            assert!(certifies_key(cert, &leaf_key));
            assert!(!certifies_key(cert, &new_key().expect("key")));
            assert!(!cert.is_ca());
            assert_eq!(cert.subject().to_string(), "CN=leaf");
            assert_eq!(cert.issuer().to_string(), "CN=test-ca, O=o");
            assert_eq!(authority_key_id(cert), Some(ca_key_id));
            assert_eq!(window(cert), (1_800_000_000, 1_900_000_000));
            let eku = cert
                .extended_key_usage()
                .expect("EKU")
                .expect("EKU present")
                .value;
            assert!(eku.server_auth && !eku.client_auth);
            let serial = cert.raw_serial();
            assert_eq!(serial.len(), 16);
            assert!(
                serial[0] & 0x80 == 0 && serial[0] != 0,
                "positive, full length"
            );
        });
        let sans = crate::pki::subject_alt_names(&leaf.cert_pem).expect("SANs");
        assert_eq!(sans, ["edge.example", "10.0.0.1"]);
    }

    #[test]
    fn a_host_that_is_not_ascii_is_refused() {
        assert!(leaf_params(&[], &["bücher.example".into()], &[]).is_err());
    }

    #[test]
    fn instants_before_the_epoch_are_clamped() {
        let validity = Validity {
            not_before: -5,
            not_after: 86_400,
        };
        let ca = self_signed_ca(&[(DnType::CommonName, "old")], validity).expect("CA");
        assert_eq!(parsed(&ca.cert_pem, window), (0, 86_400));
    }
}
