//! The standalone-mode PKI: a serving CA, the API's serving certificate, an admin client
//! certificate, and the admin kubeconfig that ties them together.
//!
//! [`ensure`] creates in `<data-dir>/pki/` (mode 0700), all ECDSA P-256:
//! - `ca.crt` / `ca.key`: a self-signed CA (`CN=flotta-serving-ca@<unix time>`, 10 years);
//! - `apiserver.crt` / `apiserver.key`: the serving certificate (1 year, capped at the CA's
//!   expiry), SANs `localhost`, `127.0.0.1`, `::1`, the bind address when it is another
//!   IP or host name, and the machine's host name when binding a wildcard address;
//! - `admin.crt` / `admin.key`: a client certificate `CN=admin, O=system:masters`.
//!
//! Keys are written with mode 0600, certificates 0644; every file is written atomically
//! (temporary file, fsync, rename, fsync of the directory), so a crash never leaves a torn
//! file, and a crash between a key and its certificate is repaired on the next start
//! because the pair no longer matches.
//!
//! On restart everything usable is reused. A leaf certificate is reissued from the same CA
//! when it is missing, unreadable, not issued by the CA, not matching its key, lacking a
//! required SAN (for example after `--bind-address` changed), or within 30 days of expiry.
//! The CA itself is regenerated (and with it both leaves) only when `ca.crt` is missing or
//! within 30 days of expiry; a `ca.crt` without its `ca.key` is an error rather than a
//! silent new trust root.
//!
//! Limits: this CA serves the Kubernetes API only and lives in files of one replica; the
//! device CA (which lives in the store so replicas share it) is a separate concern. There
//! is no revocation of the admin certificate other than deleting `pki/` and restarting.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use crate::x509::{self, IssuedCertificate, Validity};

/// File names inside the PKI directory.
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVING_CERT: &str = "apiserver.crt";
const SERVING_KEY: &str = "apiserver.key";
const ADMIN_CERT: &str = "admin.crt";
const ADMIN_KEY: &str = "admin.key";

/// The admin client certificate's user name and group.
pub const ADMIN_USER: &str = "admin";
/// The group of the admin client certificate (the Kubernetes superuser group).
pub const ADMIN_GROUP: &str = "system:masters";
/// The names used in the kubeconfig for the cluster and context.
pub const KUBECONFIG_CLUSTER: &str = "flotta";

const CA_VALIDITY_YEARS: i16 = 10;
const LEAF_VALIDITY_YEARS: i16 = 1;
/// Certificates closer than this to expiry are replaced at start.
const RENEW_BEFORE_SECONDS: i64 = 30 * 24 * 3600;

/// What can go wrong creating or loading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Generating a key or signing a certificate failed.
    #[error("generating {what}: {source}")]
    Generate {
        /// Which item.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM file could not be parsed.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA certificate exists but its key does not, so nothing can be signed. Restore
    /// the key, or delete the PKI directory to start over with a new CA.
    #[error(
        "{} exists but its key {} is missing; restore it or remove the PKI directory",
        cert.display(),
        key.display()
    )]
    MissingCaKey {
        /// The CA certificate.
        cert: PathBuf,
        /// The missing key.
        key: PathBuf,
    },
    /// The kubeconfig could not be rendered.
    #[error("rendering the kubeconfig: {0}")]
    Kubeconfig(#[from] serde_saphyr::SerializeError),
}

/// The PEM material of a standalone server, as on disk after [`ensure`].
#[derive(Clone)]
pub struct Pki {
    /// The PKI directory.
    pub dir: PathBuf,
    /// The serving CA certificate.
    pub ca_cert_pem: String,
    /// The serving certificate of the API.
    pub serving_cert_pem: String,
    /// The serving certificate's private key (PKCS#8).
    pub serving_key_pem: String,
    /// The admin client certificate.
    pub admin_cert_pem: String,
    /// The admin client certificate's private key (PKCS#8).
    pub admin_key_pem: String,
}

impl std::fmt::Debug for Pki {
    // Keys stay out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// The CA certificate in DER form, as a trust root.
    pub fn ca_certificate(&self) -> Result<CertificateDer<'static>, PkiError> {
        parse_cert_pem(&self.ca_cert_pem, &self.dir.join(CA_CERT))
    }

    /// The serving certificate chain (leaf only; clients trust the CA directly).
    pub fn serving_chain(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        Ok(vec![parse_cert_pem(
            &self.serving_cert_pem,
            &self.dir.join(SERVING_CERT),
        )?])
    }

    /// The serving certificate's private key in DER form.
    pub fn serving_key(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.serving_key_pem.as_bytes()).map_err(|e| {
            PkiError::Invalid {
                path: self.dir.join(SERVING_KEY),
                reason: e.to_string(),
            }
        })
    }

    /// The admin kubeconfig for a server reachable at `server_url`.
    pub fn kubeconfig(&self, server_url: &str) -> Kubeconfig {
        let encode = |pem: &str| BASE64.encode(pem.as_bytes());
        Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: KUBECONFIG_CLUSTER.into(),
                cluster: Cluster {
                    server: server_url.into(),
                    certificate_authority_data: encode(&self.ca_cert_pem),
                },
            }],
            users: vec![NamedUser {
                name: ADMIN_USER.into(),
                user: AuthInfo {
                    client_certificate_data: encode(&self.admin_cert_pem),
                    client_key_data: encode(&self.admin_key_pem),
                },
            }],
            contexts: vec![NamedContext {
                name: KUBECONFIG_CLUSTER.into(),
                context: Context {
                    cluster: KUBECONFIG_CLUSTER.into(),
                    user: ADMIN_USER.into(),
                },
            }],
            current_context: KUBECONFIG_CLUSTER.into(),
        }
    }

    /// Writes the admin kubeconfig to `path` atomically, mode 0600 (it holds the admin
    /// key). Called on every start because the port may have changed.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), PkiError> {
        let yaml = serde_saphyr::to_string(&self.kubeconfig(server_url))?;
        write_atomically(path, yaml.as_bytes(), 0o600).map_err(|source| PkiError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// A kubeconfig file, just the fields this server writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `Config`.
    pub kind: String,
    /// The clusters (one: `flotta`).
    pub clusters: Vec<NamedCluster>,
    /// The users (one: `admin`).
    pub users: Vec<NamedUser>,
    /// The contexts (one: `flotta`).
    pub contexts: Vec<NamedContext>,
    /// The context kubectl uses.
    pub current_context: String,
}

/// A named cluster entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    /// The entry's name.
    pub name: String,
    /// The cluster.
    pub cluster: Cluster,
}

/// Where the server is and which CA it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    /// `https://host:port`.
    pub server: String,
    /// Base64 of the CA certificate PEM.
    pub certificate_authority_data: String,
}

/// A named user entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    /// The entry's name.
    pub name: String,
    /// The credentials.
    pub user: AuthInfo,
}

/// Client-certificate credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthInfo {
    /// Base64 of the client certificate PEM.
    pub client_certificate_data: String,
    /// Base64 of the client key PEM.
    pub client_key_data: String,
}

/// A named context entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    /// The entry's name.
    pub name: String,
    /// The context.
    pub context: Context,
}

/// A (cluster, user) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// The cluster entry's name.
    pub cluster: String,
    /// The user entry's name.
    pub user: String,
}

/// The URL clients should use for a server bound to `bind_host:port`: wildcard addresses
/// become loopback, IPv6 literals get brackets.
pub fn server_url(bind_host: &str, port: u16) -> String {
    let host = bind_host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => format!("https://127.0.0.1:{port}"),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => format!("https://[::1]:{port}"),
        Ok(IpAddr::V4(ip)) => format!("https://{ip}:{port}"),
        Ok(IpAddr::V6(ip)) => format!("https://[{ip}]:{port}"),
        Err(_) => format!("https://{host}:{port}"),
    }
}

/// The host names and addresses the serving certificate must cover for `bind_host`.
pub fn serving_hosts(bind_host: &str) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let host = bind_host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => {
            // A wildcard bind is reached by the machine's name from elsewhere.
            if let Some(name) = machine_host_name() {
                hosts.push(name);
            }
        }
        Ok(ip) => {
            if !hosts.iter().any(|h| h.parse::<IpAddr>().ok() == Some(ip)) {
                hosts.push(ip.to_string());
            }
        }
        Err(_) if host.is_empty() => {}
        Err(_) => {
            let name = host.to_ascii_lowercase();
            if !hosts.contains(&name) {
                hosts.push(name);
            }
        }
    }
    hosts
}

fn machine_host_name() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty() && name != "localhost").then_some(name)
}

/// Creates or reuses the PKI in `dir` (see the module documentation) for a server bound to
/// `bind_host`. Blocking: call it from `spawn_blocking` in async code.
pub fn ensure(dir: &Path, bind_host: &str) -> Result<Pki, PkiError> {
    create_private_dir(dir)?;
    let now = jiff::Timestamp::now().as_second();
    let hosts = serving_hosts(bind_host);

    let ca = load_or_create_ca(dir, now)?;

    let serving_cert_path = dir.join(SERVING_CERT);
    let serving_key_path = dir.join(SERVING_KEY);
    let serving = match leaf_problem(
        &serving_cert_path,
        &serving_key_path,
        &ca,
        now,
        &LeafExpectation::Serving { hosts: &hosts },
    ) {
        None => read_pair(&serving_cert_path, &serving_key_path)?,
        Some(reason) => {
            tracing::info!(cert = %serving_cert_path.display(), %reason, "issuing serving certificate");
            let pair = issue_serving(&ca, &hosts, now)?;
            write_pair(&serving_cert_path, &serving_key_path, &pair)?;
            pair
        }
    };

    let admin_cert_path = dir.join(ADMIN_CERT);
    let admin_key_path = dir.join(ADMIN_KEY);
    let admin = match leaf_problem(
        &admin_cert_path,
        &admin_key_path,
        &ca,
        now,
        &LeafExpectation::Admin,
    ) {
        None => read_pair(&admin_cert_path, &admin_key_path)?,
        Some(reason) => {
            tracing::info!(cert = %admin_cert_path.display(), %reason, "issuing admin client certificate");
            let pair = issue_admin(&ca, now)?;
            write_pair(&admin_cert_path, &admin_key_path, &pair)?;
            pair
        }
    };

    Ok(Pki {
        dir: dir.to_owned(),
        ca_cert_pem: ca.cert_pem,
        serving_cert_pem: serving.cert_pem,
        serving_key_pem: serving.key_pem,
        admin_cert_pem: admin.cert_pem,
        admin_key_pem: admin.key_pem,
    })
}

/// The loaded CA: what is needed to sign and to check leaves.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's subject key identifier, which leaves must carry as their AKI.
    key_id: Vec<u8>,
    /// The CA's expiry (Unix seconds); leaves never outlive it.
    not_after: i64,
}

fn load_or_create_ca(dir: &Path, now: i64) -> Result<Ca, PkiError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let cert_exists = exists(&cert_path)?;
    let key_exists = exists(&key_path)?;
    if cert_exists && !key_exists {
        return Err(PkiError::MissingCaKey {
            cert: cert_path,
            key: key_path,
        });
    }
    if cert_exists {
        let pair = read_pair(&cert_path, &key_path)?;
        let ca = load_ca(&cert_path, pair)?;
        if ca.not_after - now > RENEW_BEFORE_SECONDS {
            return Ok(ca);
        }
        tracing::warn!(cert = %cert_path.display(), "serving CA expires within 30 days; creating a new one (kubeconfig is rewritten)");
    }
    tracing::info!(dir = %dir.display(), "creating the serving CA");
    let pair = create_ca(now)?;
    write_pair(&cert_path, &key_path, &pair)?;
    load_ca(&cert_path, pair)
}

fn load_ca(cert_path: &Path, pair: IssuedCertificate) -> Result<Ca, PkiError> {
    let invalid = |reason: String| PkiError::Invalid {
        path: cert_path.to_owned(),
        reason,
    };
    let key = KeyPair::from_pem(&pair.key_pem).map_err(|e| PkiError::Invalid {
        path: cert_path.with_file_name(CA_KEY),
        reason: e.to_string(),
    })?;
    let der = parse_cert_pem(&pair.cert_pem, cert_path)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
    if !x509::certifies_key(&cert, &key) {
        return Err(invalid(format!(
            "does not match its key {}",
            cert_path.with_file_name(CA_KEY).display()
        )));
    }
    let key_id =
        x509::subject_key_id(&cert).ok_or_else(|| invalid("no subject key identifier".into()))?;
    let not_after = cert.validity().not_after.timestamp();
    let issuer = Issuer::from_ca_cert_der(&der, key)
        .map_err(|e| invalid(format!("unusable as a CA: {e}")))?;
    Ok(Ca {
        cert_pem: pair.cert_pem,
        issuer,
        key_id,
        not_after,
    })
}

fn create_ca(now: i64) -> Result<IssuedCertificate, PkiError> {
    let common_name = format!("flotta-serving-ca@{now}");
    x509::self_signed_ca(
        &[(DnType::CommonName, &common_name)],
        validity(now, CA_VALIDITY_YEARS, None),
    )
    .map_err(|source| PkiError::Generate {
        what: "serving CA",
        source,
    })
}

fn issue_serving(ca: &Ca, hosts: &[String], now: i64) -> Result<IssuedCertificate, PkiError> {
    x509::leaf_params(
        &[(DnType::CommonName, "flotta-apiserver")],
        hosts,
        &[ExtendedKeyUsagePurpose::ServerAuth],
    )
    .and_then(|params| issue_leaf(ca, params, now))
    .map_err(|source| PkiError::Generate {
        what: "serving certificate",
        source,
    })
}

fn issue_admin(ca: &Ca, now: i64) -> Result<IssuedCertificate, PkiError> {
    x509::leaf_params(
        &[
            (DnType::CommonName, ADMIN_USER),
            (DnType::OrganizationName, ADMIN_GROUP),
        ],
        &[],
        &[ExtendedKeyUsagePurpose::ClientAuth],
    )
    .and_then(|params| issue_leaf(ca, params, now))
    .map_err(|source| PkiError::Generate {
        what: "admin client certificate",
        source,
    })
}

/// A leaf certificate of `ca` for a new key, valid for a year from `now` but not after the
/// CA.
fn issue_leaf(
    ca: &Ca,
    params: CertificateParams,
    now: i64,
) -> Result<IssuedCertificate, rcgen::Error> {
    x509::issue_with_new_key(
        &ca.issuer,
        params,
        validity(now, LEAF_VALIDITY_YEARS, Some(ca.not_after)),
    )
}

/// From yesterday midnight UTC (tolerating clock skew) to `years` from today, but not
/// later than the day before `cap` (Unix seconds).
fn validity(now: i64, years: i16, cap: Option<i64>) -> Validity {
    let today = date_of(now);
    let start = today.yesterday().unwrap_or(today);
    let mut end = today
        .checked_add(jiff::Span::new().years(years))
        .unwrap_or(today);
    if let Some(cap) = cap {
        let cap = date_of(cap);
        if cap < end {
            end = cap.yesterday().unwrap_or(cap);
        }
    }
    Validity {
        not_before: midnight_utc(start),
        not_after: midnight_utc(end),
    }
}

/// The Unix time of the start of `date` in UTC.
fn midnight_utc(date: jiff::civil::Date) -> i64 {
    // Only dates beyond jiff's range (year 9999) fail, and certificates never reach them.
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map_or(0, |midnight| midnight.timestamp().as_second())
}

fn date_of(unix_seconds: i64) -> jiff::civil::Date {
    jiff::Timestamp::from_second(unix_seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// What a leaf certificate must be to be reused.
enum LeafExpectation<'a> {
    /// The serving certificate: covers every host.
    Serving { hosts: &'a [String] },
    /// The admin client certificate: `CN=admin, O=system:masters`.
    Admin,
}

/// Why the leaf at `cert_path` cannot be reused, or `None` when it can.
fn leaf_problem(
    cert_path: &Path,
    key_path: &Path,
    ca: &Ca,
    now: i64,
    expect: &LeafExpectation<'_>,
) -> Option<String> {
    let pair = match read_pair(cert_path, key_path) {
        Ok(pair) => pair,
        Err(PkiError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Some("not present".into());
        }
        Err(e) => return Some(e.to_string()),
    };
    let der = match parse_cert_pem(&pair.cert_pem, cert_path) {
        Ok(der) => der,
        Err(e) => return Some(e.to_string()),
    };
    let cert = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) => cert,
        Err(e) => return Some(format!("not an X.509 certificate: {e}")),
    };
    let key = match KeyPair::from_pem(&pair.key_pem) {
        Ok(key) => key,
        Err(e) => return Some(format!("unreadable key: {e}")),
    };
    if !x509::certifies_key(&cert, &key) {
        return Some("does not match its key".into());
    }
    if x509::authority_key_id(&cert).as_deref() != Some(ca.key_id.as_slice()) {
        return Some("not issued by the current CA".into());
    }
    let validity = cert.validity();
    if validity.not_before.timestamp() > now {
        return Some("not valid yet".into());
    }
    if validity.not_after.timestamp() - now <= RENEW_BEFORE_SECONDS {
        return Some("expires within 30 days".into());
    }
    match expect {
        LeafExpectation::Serving { hosts } => {
            let sans = san_entries(&cert);
            let missing: Vec<&str> = hosts
                .iter()
                .filter(|host| !sans.contains(&SanEntry::of_host(host)))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Some(format!("lacks SANs {missing:?}"));
            }
        }
        LeafExpectation::Admin => {
            let subject = cert.subject();
            let cn: Vec<&str> = subject
                .iter_common_name()
                .filter_map(|a| a.as_str().ok())
                .collect();
            let orgs: Vec<&str> = subject
                .iter_organization()
                .filter_map(|a| a.as_str().ok())
                .collect();
            if cn != [ADMIN_USER] || orgs != [ADMIN_GROUP] {
                return Some(format!("unexpected subject {subject}"));
            }
        }
    }
    None
}

/// A SAN as compared for reuse: DNS names case-insensitively, IPs by value.
#[derive(Debug, PartialEq, Eq)]
enum SanEntry {
    Dns(String),
    Ip(IpAddr),
}

impl SanEntry {
    fn of_host(host: &str) -> Self {
        match host.parse::<IpAddr>() {
            Ok(ip) => SanEntry::Ip(ip),
            Err(_) => SanEntry::Dns(host.to_ascii_lowercase()),
        }
    }
}

fn san_entries(cert: &X509Certificate<'_>) -> Vec<SanEntry> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(SanEntry::Dns(dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(SanEntry::Ip),
            _ => None,
        })
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// The SAN values of a PEM certificate as strings (DNS names, and IPs in their usual
/// notation); for diagnostics and tests.
pub fn subject_alt_names(cert_pem: &str) -> Result<Vec<String>, PkiError> {
    let path = Path::new("<certificate>");
    let der = parse_cert_pem(cert_pem, path)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(san_entries(&cert)
        .into_iter()
        .map(|entry| match entry {
            SanEntry::Dns(name) => name,
            SanEntry::Ip(ip) => ip.to_string(),
        })
        .collect())
}

fn parse_cert_pem(pem: &str, path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<IssuedCertificate, PkiError> {
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|source| PkiError::Io {
            path: path.to_owned(),
            source,
        })
    };
    Ok(IssuedCertificate {
        cert_pem: read(cert_path)?,
        key_pem: read(key_path)?,
    })
}

/// Writes the key first: a crash before the certificate lands leaves a mismatched pair,
/// which the next start detects and reissues.
fn write_pair(cert_path: &Path, key_path: &Path, pair: &IssuedCertificate) -> Result<(), PkiError> {
    write_atomically(key_path, pair.key_pem.as_bytes(), 0o600).map_err(|source| PkiError::Io {
        path: key_path.to_owned(),
        source,
    })?;
    write_atomically(cert_path, pair.cert_pem.as_bytes(), 0o644).map_err(|source| PkiError::Io {
        path: cert_path.to_owned(),
        source,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Replaces `path` with `contents` atomically and durably: a temporary file in the same
/// directory with `mode`, fsync, rename over `path`, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The open mode only applies to a new file and is filtered by the umask.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_url_forms() {
        assert_eq!(server_url("127.0.0.1", 8443), "https://127.0.0.1:8443");
        assert_eq!(server_url("0.0.0.0", 1), "https://127.0.0.1:1");
        assert_eq!(server_url("::", 2), "https://[::1]:2");
        assert_eq!(server_url("::1", 3), "https://[::1]:3");
        assert_eq!(server_url("[fd00::5]", 4), "https://[fd00::5]:4");
        assert_eq!(server_url("api.example", 5), "https://api.example:5");
    }

    #[test]
    fn serving_hosts_add_bind_address_once() {
        assert_eq!(
            serving_hosts("127.0.0.1"),
            ["localhost", "127.0.0.1", "::1"]
        );
        assert_eq!(serving_hosts("::1").len(), 3);
        assert_eq!(serving_hosts("LOCALHOST").len(), 3);
        assert_eq!(
            serving_hosts("10.0.0.7").last().map(String::as_str),
            Some("10.0.0.7")
        );
        assert_eq!(
            serving_hosts("Edge.Example").last().map(String::as_str),
            Some("edge.example")
        );
        assert!(!serving_hosts("0.0.0.0").contains(&"0.0.0.0".to_owned()));
    }

    #[test]
    fn validity_runs_from_yesterday_midnight_and_stops_before_the_cap() {
        let unix = |text: &str| text.parse::<jiff::Timestamp>().expect("time").as_second();
        let now = unix("2024-03-10T15:04:05Z");
        assert_eq!(
            validity(now, 1, None),
            Validity {
                not_before: unix("2024-03-09T00:00:00Z"),
                not_after: unix("2025-03-10T00:00:00Z"),
            }
        );
        assert_eq!(
            validity(now, 1, Some(unix("2024-06-01T12:00:00Z"))).not_after,
            unix("2024-05-31T00:00:00Z")
        );
        assert_eq!(
            validity(now, 1, Some(unix("2030-01-01T00:00:00Z"))).not_after,
            unix("2025-03-10T00:00:00Z")
        );
    }

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        write_atomically(&path, b"one", 0o600).expect("write");
        write_atomically(&path, b"two", 0o600).expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != "secret")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}
