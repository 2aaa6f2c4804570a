//! Client certificates in aggregated mode: asked for during the TLS handshake, verified
//! per request.
//!
//! Like the Kubernetes API server (`tls.RequestClientCert`, `kube-api-contract.md` §2.3),
//! the handshake *requests* a client certificate without requiring one and without
//! checking its chain: [`RequestClientCertificate`] only checks the handshake signature,
//! which proves the client holds the certificate's private key. The presented chain is
//! attached to every request of the connection as [`PeerCertificates`], and each request is
//! verified against the certificate pools in force *at that moment* ([`CertificatePool`]:
//! the request-header CA, the client CA). So one listener serves the front proxy,
//! end users with x509 certificates, token clients and anonymous kubelet probes; a
//! certificate from an unknown CA gets a 401 `Status` instead of a failed handshake; and a
//! CA rotation applies to open connections too, without a restart.
//!
//! Verification is webpki path validation (validity period, signatures, intermediates
//! taken from the presented chain, extended key usage `clientAuth` when the extension is
//! present). Limits: revocation lists are not checked; no CA names are hinted in the
//! certificate request.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};

use crate::tls::{ClientIdentity, crypto_provider};

/// The certificate chain a client presented in the TLS handshake (leaf first), attached
/// to each of its requests. Not verified: see [`CertificatePool::verify`].
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<[CertificateDer<'static>]>);

impl PeerCertificates {
    /// The identify function for [`crate::tls::TlsServer::serve_with`]: keeps the chain.
    pub fn from_chain(chain: &[CertificateDer<'static>]) -> Option<Self> {
        (!chain.is_empty()).then(|| PeerCertificates(chain.to_vec().into()))
    }

    /// The end-entity certificate.
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.0.first()
    }

    /// `X509SHA256=<hex SHA-256 of the leaf's DER>`, the credential id Kubernetes records
    /// for x509 users.
    pub fn credential_id(&self) -> Option<String> {
        let leaf = self.leaf()?;
        let digest = Sha256::digest(leaf.as_ref());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Some(format!("X509SHA256={hex}"))
    }

    /// The subject (`CN`, `O`s) of the leaf; `None` if it does not parse.
    pub fn subject(&self) -> Option<ClientIdentity> {
        ClientIdentity::from_certificate(self.leaf()?)
    }
}

/// A rustls client-certificate verifier that asks for a certificate, accepts none, and
/// leaves chain verification to per-request authentication (see the module docs).
#[derive(Debug)]
pub struct RequestClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCertificate {
    /// The verifier, with the signature algorithms of this crate's crypto provider.
    pub fn new() -> Self {
        RequestClientCertificate {
            algorithms: crypto_provider().signature_verification_algorithms,
        }
    }
}

impl Default for RequestClientCertificate {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deliberately deferred: every request verifies the chain against the CA pools
        // current at that time (PeerCertificates + CertificatePool::verify), and an
        // unverified chain authenticates nothing. The handshake signature below is still
        // checked, so the chain is at least the client's own.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a CA bundle could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The bundle holds no PEM certificate.
    #[error("no certificate in the CA bundle")]
    Empty,
    /// A PEM block could not be read.
    #[error("reading the CA bundle: {0}")]
    Pem(String),
    /// A certificate was rejected as a trust anchor.
    #[error("unusable CA certificate: {0}")]
    Root(#[source] rustls::Error),
    /// The verifier could not be built.
    #[error("building the certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A set of CA certificates that client certificates are verified against.
#[derive(Clone)]
pub struct CertificatePool {
    verifier: Arc<dyn ClientCertVerifier>,
    roots: Arc<[CertificateDer<'static>]>,
}

impl std::fmt::Debug for CertificatePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificatePool")
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl CertificatePool {
    /// A pool of every certificate in a PEM bundle (at least one).
    pub fn from_pem(pem: &[u8]) -> Result<Self, PoolError> {
        let roots = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PoolError::Pem(e.to_string()))?;
        Self::from_certificates(roots)
    }

    /// A pool of these CA certificates (at least one).
    pub fn from_certificates(roots: Vec<CertificateDer<'static>>) -> Result<Self, PoolError> {
        if roots.is_empty() {
            return Err(PoolError::Empty);
        }
        let mut store = RootCertStore::empty();
        for root in &roots {
            store.add(root.clone()).map_err(PoolError::Root)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(store), crypto_provider())
                .build()?;
        Ok(CertificatePool {
            verifier,
            roots: roots.into(),
        })
    }

    /// The CA certificates.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// Verifies a presented chain (leaf first) for client authentication, now.
    pub fn verify(&self, chain: &PeerCertificates) -> Result<(), rustls::Error> {
        let Some((leaf, intermediates)) = chain.0.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(ca: &Ca, cn: &str, usage: Option<ExtendedKeyUsagePurpose>) -> PeerCertificates {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "devs");
        params.extended_key_usages = usage.into_iter().collect();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        PeerCertificates::from_chain(&[cert.der().clone()]).unwrap()
    }

    #[test]
    fn verifies_against_the_pool_with_client_auth_usage() {
        let proxy_ca = ca("front-proxy-ca");
        let other_ca = ca("other");
        let pool = CertificatePool::from_pem(proxy_ca.pem.as_bytes()).unwrap();
        let good = leaf(
            &proxy_ca,
            "front-proxy-client",
            Some(ExtendedKeyUsagePurpose::ClientAuth),
        );
        pool.verify(&good).unwrap();
        assert_eq!(
            good.subject().unwrap().common_name.as_deref(),
            Some("front-proxy-client")
        );
        // Without the EKU extension at all: accepted, as Go's x509 does.
        pool.verify(&leaf(&proxy_ca, "x", None)).unwrap();
        // Server-only usage: rejected.
        assert!(
            pool.verify(&leaf(
                &proxy_ca,
                "x",
                Some(ExtendedKeyUsagePurpose::ServerAuth)
            ))
            .is_err()
        );
        // Another CA: rejected.
        assert!(
            pool.verify(&leaf(
                &other_ca,
                "front-proxy-client",
                Some(ExtendedKeyUsagePurpose::ClientAuth)
            ))
            .is_err()
        );
        let id = good.credential_id().unwrap();
        assert!(id.starts_with("X509SHA256=") && id.len() == 11 + 64, "{id}");
    }

    #[test]
    fn empty_bundles_are_rejected() {
        assert!(matches!(
            CertificatePool::from_pem(b"not pem"),
            Err(PoolError::Empty)
        ));
        assert!(PeerCertificates::from_chain(&[]).is_none());
    }
}
