//! The standalone PKI on disk: creation, reuse, reissue, file modes and the kubeconfig.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flotta_apiserver::pki::{self, Kubeconfig, PkiError};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use x509_parser::extensions::ParsedExtension;

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

#[test]
fn pki_is_created_then_reused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let first = pki::ensure(&dir, "127.0.0.1").expect("first ensure");
    for name in [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "admin.crt",
        "admin.key",
    ] {
        assert!(dir.join(name).is_file(), "{name} missing");
    }
    for key in ["ca.key", "apiserver.key", "admin.key"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key} mode");
    }
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(read(&dir, "ca.crt"), first.ca_cert_pem.as_bytes());

    let files_before: Vec<Vec<u8>> = ["ca.crt", "ca.key", "apiserver.crt", "admin.crt"]
        .iter()
        .map(|n| read(&dir, n))
        .collect();
    let second = pki::ensure(&dir, "127.0.0.1").expect("second ensure");
    assert_eq!(second.ca_cert_pem, first.ca_cert_pem, "CA regenerated");
    assert_eq!(second.serving_cert_pem, first.serving_cert_pem);
    assert_eq!(second.admin_cert_pem, first.admin_cert_pem);
    let files_after: Vec<Vec<u8>> = ["ca.crt", "ca.key", "apiserver.crt", "admin.crt"]
        .iter()
        .map(|n| read(&dir, n))
        .collect();
    assert_eq!(files_before, files_after, "files rewritten on reuse");
}

#[test]
fn serving_certificate_covers_loopback_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = pki::ensure(tmp.path(), "127.0.0.1").expect("ensure");
    let sans = pki::subject_alt_names(&pki.serving_cert_pem).expect("SANs");
    for host in ["localhost", "127.0.0.1", "::1"] {
        assert!(sans.iter().any(|s| s == host), "{host} not in {sans:?}");
    }

    let cert_der = der(&pki.serving_cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).expect("x509");
    let eku = cert
        .extended_key_usage()
        .expect("EKU parses")
        .expect("EKU present");
    assert!(eku.value.server_auth);
    assert!(!cert.is_ca());
    let ca_der = der(&pki.ca_cert_pem);
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("x509");
    assert!(ca.is_ca());
    assert_eq!(cert.issuer(), ca.subject());
    // ECDSA P-256 keys everywhere.
    assert_eq!(
        cert.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1"
    );
}

#[test]
fn admin_certificate_is_a_system_masters_client() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = pki::ensure(tmp.path(), "127.0.0.1").expect("ensure");
    let cert_der = der(&pki.admin_cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).expect("x509");
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("utf8"))
        .collect();
    let orgs: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().expect("utf8"))
        .collect();
    assert_eq!(cn, ["admin"]);
    assert_eq!(orgs, ["system:masters"]);
    let eku = cert
        .extended_key_usage()
        .expect("EKU parses")
        .expect("EKU present");
    assert!(eku.value.client_auth);
    assert!(!eku.value.server_auth);
    let has_aki = cert.extensions().iter().any(|e| {
        matches!(
            e.parsed_extension(),
            ParsedExtension::AuthorityKeyIdentifier(_)
        )
    });
    assert!(has_aki, "leaf certificates name their issuer key");
}

#[test]
fn new_bind_address_reissues_only_the_serving_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = pki::ensure(tmp.path(), "127.0.0.1").expect("ensure");
    assert!(
        !pki::subject_alt_names(&first.serving_cert_pem)
            .expect("SANs")
            .contains(&"10.11.12.13".to_owned())
    );

    let moved = pki::ensure(tmp.path(), "10.11.12.13").expect("ensure with new address");
    assert_eq!(moved.ca_cert_pem, first.ca_cert_pem);
    assert_eq!(moved.admin_cert_pem, first.admin_cert_pem);
    assert_ne!(moved.serving_cert_pem, first.serving_cert_pem);
    let sans = pki::subject_alt_names(&moved.serving_cert_pem).expect("SANs");
    assert!(sans.contains(&"10.11.12.13".to_owned()), "{sans:?}");
    assert!(sans.contains(&"localhost".to_owned()), "{sans:?}");

    let hostname = pki::ensure(tmp.path(), "edge-api.example").expect("ensure with a name");
    let sans = pki::subject_alt_names(&hostname.serving_cert_pem).expect("SANs");
    assert!(sans.contains(&"edge-api.example".to_owned()), "{sans:?}");
}

#[test]
fn damaged_or_foreign_leaves_are_reissued_from_the_same_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = pki::ensure(tmp.path(), "127.0.0.1").expect("ensure");

    // A torn write repaired by hand: a serving certificate whose key no longer matches.
    fs::copy(
        tmp.path().join("admin.key"),
        tmp.path().join("apiserver.key"),
    )
    .expect("copy");
    // An admin certificate from another CA.
    let other = tempfile::tempdir().expect("tempdir");
    pki::ensure(other.path(), "127.0.0.1").expect("other PKI");
    fs::copy(other.path().join("admin.crt"), tmp.path().join("admin.crt")).expect("copy");
    fs::copy(other.path().join("admin.key"), tmp.path().join("admin.key")).expect("copy");

    let repaired = pki::ensure(tmp.path(), "127.0.0.1").expect("ensure repairs");
    assert_eq!(repaired.ca_cert_pem, first.ca_cert_pem);
    assert_ne!(repaired.serving_cert_pem, first.serving_cert_pem);
    assert_ne!(
        repaired.admin_cert_pem,
        fs::read_to_string(other.path().join("admin.crt")).expect("read")
    );
    // The repaired files verify against our CA: reuse on the next start.
    let again = pki::ensure(tmp.path(), "127.0.0.1").expect("ensure");
    assert_eq!(again.serving_cert_pem, repaired.serving_cert_pem);
    assert_eq!(again.admin_cert_pem, repaired.admin_cert_pem);
}

#[test]
fn ca_certificate_without_its_key_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    pki::ensure(tmp.path(), "127.0.0.1").expect("ensure");
    fs::remove_file(tmp.path().join("ca.key")).expect("remove");
    let err = pki::ensure(tmp.path(), "127.0.0.1").expect_err("must refuse");
    assert!(matches!(err, PkiError::MissingCaKey { .. }), "{err}");
}

#[test]
fn kubeconfig_parses_and_carries_the_credentials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = pki::ensure(&tmp.path().join("pki"), "127.0.0.1").expect("ensure");
    let path = tmp.path().join("kubeconfig");
    let url = pki::server_url("127.0.0.1", 38443);
    pki.write_kubeconfig(&path, &url).expect("write");
    assert_eq!(mode(&path), 0o600);

    let text = fs::read_to_string(&path).expect("read");
    let parsed: Kubeconfig = serde_saphyr::from_str(&text).expect("kubeconfig YAML");
    assert_eq!(parsed.current_context, "flotta");
    assert_eq!(parsed.contexts[0].context.cluster, "flotta");
    assert_eq!(parsed.contexts[0].context.user, "admin");
    assert_eq!(parsed.clusters[0].cluster.server, "https://127.0.0.1:38443");

    // Also as untyped YAML, by the field names kubectl reads.
    let value: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
    let decode = |v: &serde_json::Value| {
        String::from_utf8(BASE64.decode(v.as_str().expect("string")).expect("base64"))
            .expect("utf8")
    };
    assert_eq!(
        decode(&value["clusters"][0]["cluster"]["certificate-authority-data"]),
        pki.ca_cert_pem
    );
    assert_eq!(
        decode(&value["users"][0]["user"]["client-certificate-data"]),
        pki.admin_cert_pem
    );
    assert_eq!(
        decode(&value["users"][0]["user"]["client-key-data"]),
        pki.admin_key_pem
    );
    assert_eq!(value["current-context"], "flotta");

    // Rewritten on the next start with the new port.
    pki.write_kubeconfig(&path, &pki::server_url("0.0.0.0", 1234))
        .expect("rewrite");
    let parsed: Kubeconfig =
        serde_saphyr::from_str(&fs::read_to_string(&path).expect("read")).expect("YAML");
    assert_eq!(parsed.clusters[0].cluster.server, "https://127.0.0.1:1234");
}
