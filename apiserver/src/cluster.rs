//! Running inside a Kubernetes cluster: the `--mode` flag and everything aggregated mode
//! needs besides the REST layer — the cluster client, the serving certificate from files
//! (reloaded on change), delegated authentication and authorization
//! ([`crate::auth::delegated`]) fed by the watched `extension-apiserver-authentication`
//! ConfigMap, the watch-backed cache of referenced ConfigMaps and Secrets, device events
//! as Kubernetes Events, and the device CA in the `flotta-ca` Secret.
//!
//! Modes: `standalone` (the default; no cluster), `aggregated` (behind the kube-apiserver
//! aggregation layer), or `auto` (aggregated when `KUBERNETES_SERVICE_HOST` is set, as it
//! is in every pod; standalone otherwise).
//!
//! Flag names follow kube-apiserver's where one exists. The cluster client comes from
//! `--kubeconfig`, or the pod's service account when it is absent; TokenReviews and
//! SubjectAccessReviews use `--authentication-kubeconfig` / `--authorization-kubeconfig`
//! when given, else the same source (Go falls back to the in-cluster config only).
//!
//! Limits: no `--authentication-skip-lookup`/`--authorization-always-allow-paths`; without
//! `--tls-cert-file` the server falls back to its self-made serving certificate from the
//! data directory, which the aggregator accepts only with `insecureSkipTLSVerify`.

pub mod authentication_source;
pub mod device_ca;
pub mod events;
pub mod references;
pub mod serving_certificate;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use clap::{Args, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rustls::ServerConfig;
use tokio::task::JoinHandle;

use crate::auth::authentication_config::{AuthenticationConfig, ConfigError};
use crate::auth::client_certificate::{CertificatePool, RequestClientCertificate};
use crate::auth::delegated::{self, CacheTtls, DelegatedAuth};
use crate::auth::delegation::KubeReviewer;
use crate::auth::requestheader::{
    DEFAULT_EXTRA_HEADER_PREFIXES, DEFAULT_GROUP_HEADERS, DEFAULT_USERNAME_HEADERS,
    RequestHeaderConfig,
};
use crate::pki::{self, PkiError};
use crate::tls::crypto_provider;
use references::ClusterReferences;
use serving_certificate::{CertificateError, ServingCertificate};

/// How long TokenReview and SubjectAccessReview calls may take (Go's webhook timeout).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// The `--mode` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// No cluster: own CA, own client certificates, every authenticated user is admin.
    Standalone,
    /// Behind the kube-apiserver aggregation layer, with delegated authn/authz.
    Aggregated,
    /// Aggregated inside a pod (`KUBERNETES_SERVICE_HOST` set), standalone elsewhere.
    Auto,
}

/// A Go-style duration flag value (`10s`, `1m30s`, `500ms`, `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

/// A duration flag that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. 10s, 1m30s or 500ms")]
pub struct InvalidDuration(String);

impl FromStr for GoDuration {
    type Err = InvalidDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration(s.to_owned());
        if s.trim() == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        let signed: jiff::SignedDuration = s.trim().parse().map_err(|_| invalid())?;
        Duration::try_from(signed)
            .map(GoDuration)
            .map_err(|_| invalid())
    }
}

/// The flags of cluster operation (flattened into [`crate::config::Options`]).
#[derive(Debug, Clone, Args)]
pub struct ClusterOptions {
    /// Where the server runs: `standalone` (no cluster), `aggregated` (behind the
    /// kube-apiserver aggregation layer), or `auto` (aggregated when running in a pod).
    #[arg(long, env = "FLOTTA_MODE", value_enum, default_value_t = Mode::Standalone)]
    pub mode: Mode,

    /// Kubeconfig of the cluster (aggregated mode); the pod's service account when absent.
    #[arg(long, env = "FLOTTA_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig used for TokenReviews (and to read the
    /// extension-apiserver-authentication ConfigMap); defaults to `--kubeconfig`.
    #[arg(long, env = "FLOTTA_AUTHENTICATION_KUBECONFIG")]
    pub authentication_kubeconfig: Option<PathBuf>,

    /// Kubeconfig used for SubjectAccessReviews; defaults to `--kubeconfig`.
    #[arg(long, env = "FLOTTA_AUTHORIZATION_KUBECONFIG")]
    pub authorization_kubeconfig: Option<PathBuf>,

    /// PEM serving certificate (chain) of the secure port in aggregated mode; reloaded
    /// when the file changes. Its SANs must include `<service>.<namespace>.svc`.
    #[arg(long, env = "FLOTTA_TLS_CERT_FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "FLOTTA_TLS_PRIVATE_KEY_FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// CA bundle for end-user client certificates; overrides the cluster's `client-ca-file`.
    #[arg(long, env = "FLOTTA_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// CA bundle of the front proxy; overrides the cluster's request-header settings
    /// (with the `--requestheader-*` flags below, which default as in Go).
    #[arg(long, env = "FLOTTA_REQUESTHEADER_CLIENT_CA_FILE")]
    pub requestheader_client_ca_file: Option<PathBuf>,

    /// Common names allowed for the front proxy's certificate (comma separated; empty
    /// allows any). Used with `--requestheader-client-ca-file`.
    #[arg(
        long,
        env = "FLOTTA_REQUESTHEADER_ALLOWED_NAMES",
        value_delimiter = ','
    )]
    pub requestheader_allowed_names: Vec<String>,

    /// Headers naming the user. Used with `--requestheader-client-ca-file`.
    #[arg(long, env = "FLOTTA_REQUESTHEADER_USERNAME_HEADERS", value_delimiter = ',', default_values = DEFAULT_USERNAME_HEADERS)]
    pub requestheader_username_headers: Vec<String>,

    /// Headers carrying the user's uid (none by default, as in Go). Used with
    /// `--requestheader-client-ca-file`.
    #[arg(long, env = "FLOTTA_REQUESTHEADER_UID_HEADERS", value_delimiter = ',')]
    pub requestheader_uid_headers: Vec<String>,

    /// Headers carrying groups. Used with `--requestheader-client-ca-file`.
    #[arg(long, env = "FLOTTA_REQUESTHEADER_GROUP_HEADERS", value_delimiter = ',', default_values = DEFAULT_GROUP_HEADERS)]
    pub requestheader_group_headers: Vec<String>,

    /// Prefixes of headers carrying extra attributes. Used with
    /// `--requestheader-client-ca-file`.
    #[arg(long, env = "FLOTTA_REQUESTHEADER_EXTRA_HEADERS_PREFIX", value_delimiter = ',', default_values = DEFAULT_EXTRA_HEADER_PREFIXES)]
    pub requestheader_extra_headers_prefix: Vec<String>,

    /// How long TokenReview answers are cached (Go duration, e.g. `10s`).
    #[arg(
        long,
        env = "FLOTTA_AUTHENTICATION_TOKEN_WEBHOOK_CACHE_TTL",
        default_value = "10s"
    )]
    pub authentication_token_webhook_cache_ttl: GoDuration,

    /// How long allowed SubjectAccessReview answers are cached.
    #[arg(
        long,
        env = "FLOTTA_AUTHORIZATION_WEBHOOK_CACHE_AUTHORIZED_TTL",
        default_value = "10s"
    )]
    pub authorization_webhook_cache_authorized_ttl: GoDuration,

    /// How long denied SubjectAccessReview answers are cached.
    #[arg(
        long,
        env = "FLOTTA_AUTHORIZATION_WEBHOOK_CACHE_UNAUTHORIZED_TTL",
        default_value = "10s"
    )]
    pub authorization_webhook_cache_unauthorized_ttl: GoDuration,

    /// Namespace of the `flotta-ca` Secret holding the device CA in aggregated mode;
    /// defaults to the server's own namespace.
    #[arg(long, env = "FLOTTA_CA_SECRET_NAMESPACE")]
    pub ca_secret_namespace: Option<String>,
}

impl ClusterOptions {
    /// The mode to run in, with `auto` decided from the environment.
    pub fn resolved_mode(&self) -> Mode {
        match self.mode {
            Mode::Auto if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => Mode::Aggregated,
            Mode::Auto => Mode::Standalone,
            mode => mode,
        }
    }

    /// The cache lifetimes of delegated answers.
    pub fn cache_ttls(&self) -> CacheTtls {
        CacheTtls {
            token: self.authentication_token_webhook_cache_ttl.0,
            authorized: self.authorization_webhook_cache_authorized_ttl.0,
            unauthorized: self.authorization_webhook_cache_unauthorized_ttl.0,
        }
    }

    /// The parts of the authentication configuration set by flags.
    pub fn authentication_overrides(&self) -> Result<AuthenticationConfig, ClusterError> {
        let pool = |path: &Path, flag: &str| -> Result<CertificatePool, ClusterError> {
            let pem = std::fs::read(path).map_err(|source| ClusterError::Read {
                path: path.to_owned(),
                source,
            })?;
            CertificatePool::from_pem(&pem).map_err(|source| {
                ClusterError::Authentication(ConfigError::Pool {
                    key: flag.to_owned(),
                    source,
                })
            })
        };
        let client_ca = match &self.client_ca_file {
            Some(path) => Some(pool(path, "--client-ca-file")?),
            None => None,
        };
        let request_header = match &self.requestheader_client_ca_file {
            Some(path) => Some(RequestHeaderConfig::new(
                pool(path, "--requestheader-client-ca-file")?,
                self.requestheader_allowed_names
                    .iter()
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .collect(),
                &self.requestheader_username_headers,
                &self.requestheader_uid_headers,
                &self.requestheader_group_headers,
                &self.requestheader_extra_headers_prefix,
            )),
            None => None,
        };
        Ok(AuthenticationConfig {
            client_ca,
            request_header,
        })
    }
}

/// Why aggregated mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A kubeconfig could not be read or used.
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig was given and the in-cluster configuration is unusable.
    #[error("no --kubeconfig and not running in a pod: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    /// The client could not be built from the configuration.
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An authentication flag is unusable.
    #[error(transparent)]
    Authentication(#[from] ConfigError),
    /// The serving certificate is unusable.
    #[error("serving certificate: {0}")]
    ServingCertificate(#[from] CertificateError),
    /// The fallback serving certificate could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The TLS configuration could not be built.
    #[error("building the TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// A start-up task failed.
    #[error("start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The device CA Secret could not be read, created or used.
    #[error(transparent)]
    DeviceCa(#[from] device_ca::DeviceCaError),
}

/// A Kubernetes client from a kubeconfig file, or from the pod's service account.
pub async fn client(
    kubeconfig: Option<&Path>,
    read_timeout: Option<Duration>,
) -> Result<kube::Client, ClusterError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kubeconfig_error = |source| ClusterError::Kubeconfig {
                path: path.to_owned(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(kubeconfig_error)?
        }
        None => kube::Config::incluster().map_err(ClusterError::InCluster)?,
    };
    if read_timeout.is_some() {
        config.read_timeout = read_timeout;
    }
    kube::Client::try_from(config).map_err(ClusterError::Client)
}

/// Everything aggregated mode adds to the server; dropping it stops its background tasks.
pub struct Aggregated {
    /// TLS configuration of the secure port: the serving certificate, client certificates
    /// requested and verified per request.
    pub tls_config: Arc<ServerConfig>,
    /// State of the authentication/authorization middleware.
    pub auth: DelegatedAuth,
    /// The cluster client (`--kubeconfig` or in-cluster).
    pub client: kube::Client,
    /// The server's namespace (the client's default namespace).
    pub namespace: String,
    /// The serving certificate.
    pub serving: Arc<ServingCertificate>,
    references: OnceLock<Arc<ClusterReferences>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Aggregated {
    /// Connects to the cluster and starts the background work of aggregated mode (see the
    /// module docs). `pki_dir`/`bind_address` locate the fallback serving certificate.
    pub async fn start(
        opts: &ClusterOptions,
        pki_dir: &Path,
        bind_address: &str,
    ) -> Result<Self, ClusterError> {
        let client = client(opts.kubeconfig.as_deref(), None).await?;
        let review_client = |path: &Option<PathBuf>| {
            let path = path.as_deref().or(opts.kubeconfig.as_deref());
            client_owned(path.map(Path::to_owned))
        };
        let authentication = review_client(&opts.authentication_kubeconfig).await?;
        let authorization = review_client(&opts.authorization_kubeconfig).await?;
        let watch_client = match &opts.authentication_kubeconfig {
            Some(path) => self::client(Some(path), None).await?,
            None => client.clone(),
        };

        let serving = match (&opts.tls_cert_file, &opts.tls_private_key_file) {
            (Some(cert), Some(key)) => ServingCertificate::from_files(cert, key)?,
            _ => {
                tracing::warn!(
                    "no --tls-cert-file: serving the self-made certificate of {}; the \
                     APIService then needs insecureSkipTLSVerify",
                    pki_dir.display()
                );
                let dir = pki_dir.to_owned();
                let bind = bind_address.to_owned();
                let pki = tokio::task::spawn_blocking(move || pki::ensure(&dir, &bind)).await??;
                ServingCertificate::fixed(pki.serving_chain()?, pki.serving_key()?)?
            }
        };
        let mut tls = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(ClusterError::Tls)?
            .with_client_cert_verifier(Arc::new(RequestClientCertificate::new()))
            .with_cert_resolver(serving.clone());
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let (config, watch_task) =
            authentication_source::spawn(watch_client, opts.authentication_overrides()?);
        let reviewer = Arc::new(KubeReviewer::new(authentication, authorization));
        let auth = DelegatedAuth::new(config, reviewer, opts.cache_ttls());
        let namespace = client.default_namespace().to_owned();
        tracing::info!(%namespace, "aggregated mode: delegating authentication and authorization to the cluster");
        Ok(Aggregated {
            tls_config: Arc::new(tls),
            auth,
            client,
            namespace,
            tasks: vec![
                watch_task,
                serving.watch(serving_certificate::DEFAULT_POLL_INTERVAL),
            ],
            serving,
            references: OnceLock::new(),
        })
    }

    /// `router` behind delegated authentication and authorization.
    pub fn secure_app(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.auth.clone(),
            delegated::delegated,
        ))
    }

    /// The readiness check of aggregated mode: the authentication configuration is loaded
    /// and, once started, the reference cache has synchronised.
    pub fn ready(&self) -> Result<(), String> {
        if !self.auth.is_configured() {
            return Err("the authentication configuration is not loaded yet".to_owned());
        }
        match self.references.get() {
            Some(references) if !references.is_ready() => {
                Err("the ConfigMap/Secret cache is not synchronised yet".to_owned())
            }
            _ => Ok(()),
        }
    }

    /// The watch-backed cache of the cluster's ConfigMaps and Secrets, started on first
    /// use (so a server that never renders configurations never caches Secrets).
    pub fn references(&self) -> Arc<ClusterReferences> {
        self.references
            .get_or_init(|| Arc::new(ClusterReferences::start(&self.client)))
            .clone()
    }

    /// The sink publishing device events as Kubernetes Events; `POD_NAME` (downward API)
    /// or `HOSTNAME` names this replica.
    pub fn device_events(&self) -> events::ClusterEvents {
        let instance = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .ok();
        events::ClusterEvents::new(self.client.clone(), instance)
    }

    /// The namespace of the `flotta-ca` Secret: `--ca-secret-namespace`, else the
    /// server's own.
    pub fn ca_secret_namespace<'a>(&'a self, opts: &'a ClusterOptions) -> &'a str {
        opts.ca_secret_namespace
            .as_deref()
            .unwrap_or(&self.namespace)
    }
}

/// [`client`] for review calls (bounded read timeout), taking an owned path.
async fn client_owned(path: Option<PathBuf>) -> Result<kube::Client, ClusterError> {
    client(path.as_deref(), Some(REVIEW_TIMEOUT)).await
}

impl Drop for Aggregated {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        cluster: ClusterOptions,
    }

    fn parse(args: &[&str]) -> ClusterOptions {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Flags::try_parse_from(argv).unwrap().cluster
    }

    #[test]
    fn defaults_are_standalone_and_go_like() {
        let opts = parse(&[]);
        assert_eq!(opts.mode, Mode::Standalone);
        assert_eq!(opts.resolved_mode(), Mode::Standalone);
        assert_eq!(opts.cache_ttls(), CacheTtls::default());
        assert_eq!(opts.requestheader_username_headers, ["X-Remote-User"]);
        assert_eq!(opts.requestheader_group_headers, ["X-Remote-Group"]);
        assert_eq!(opts.requestheader_extra_headers_prefix, ["X-Remote-Extra-"]);
        assert!(opts.requestheader_uid_headers.is_empty());
        let overrides = opts.authentication_overrides().unwrap();
        assert!(overrides.client_ca.is_none() && overrides.request_header.is_none());
    }

    #[test]
    fn aggregated_flags() {
        let opts = parse(&[
            "--mode",
            "aggregated",
            "--kubeconfig",
            "/k",
            "--tls-cert-file",
            "/c",
            "--tls-private-key-file",
            "/p",
            "--authentication-token-webhook-cache-ttl",
            "1m30s",
            "--authorization-webhook-cache-unauthorized-ttl",
            "500ms",
            "--authorization-webhook-cache-authorized-ttl",
            "0",
            "--requestheader-allowed-names",
            "front-proxy-client,aggregator",
        ]);
        assert_eq!(opts.resolved_mode(), Mode::Aggregated);
        assert_eq!(opts.kubeconfig.as_deref(), Some(Path::new("/k")));
        assert_eq!(
            opts.cache_ttls(),
            CacheTtls {
                token: Duration::from_secs(90),
                authorized: Duration::ZERO,
                unauthorized: Duration::from_millis(500),
            }
        );
        assert_eq!(
            opts.requestheader_allowed_names,
            ["front-proxy-client", "aggregator"]
        );
        assert!(
            Flags::try_parse_from(["test", "--tls-cert-file", "/c"]).is_err(),
            "a certificate without a key"
        );
        assert!("ten seconds".parse::<GoDuration>().is_err());
        assert!("-5s".parse::<GoDuration>().is_err());
    }
}
