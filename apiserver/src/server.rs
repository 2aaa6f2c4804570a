//! The standalone server: wires the data directory, PKI, store, the HTTPS Kubernetes API
//! and the plain-HTTP health/metrics listener together, and shuts them down gracefully.
//!
//! Start-up order: data directory (mode 0700) → PKI (`<data-dir>/pki`) → store → bind the
//! listeners → write `<data-dir>/ports.json` (`{"secure":N,"metrics":M,"device":D}`,
//! `metrics` and `device` are `null` when disabled) and `<data-dir>/kubeconfig` → serve. `ports.json` is written only
//! once the listeners accept connections, so its appearance means "up".
//!
//! The metrics listener serves `/healthz` (process and store), `/livez` (process),
//! `/readyz` (process, store, not shutting down; `?verbose` lists the checks, `/readyz/<check>`
//! runs one) and `/metrics` (Prometheus text format, process, store and connection figures
//! read when scraped).
//!
//! Shutdown on SIGTERM or SIGINT: `/readyz` starts failing, the secure listener stops
//! accepting and drains within `--shutdown-timeout`, then the metrics listener stops. A
//! second signal stops at once.
//!
//! The device-facing Edge API (`--device-port`, mutual TLS, see [`crate::edge`]) is served
//! unless `--device-port off`: its CA comes from `--device-ca-cert`/`--device-ca-key` or the
//! store, the bootstrap certificate is written to `<data-dir>/device-bootstrap/`, and the
//! bound port is `device` in `ports.json` (`null` when off). The store device backend and
//! its liveness table run in either case, so that EdgeDevices show last-seen and online
//! state.
//!
//! In aggregated mode (`--mode aggregated`, see [`crate::cluster`]) the secure port serves
//! only the Flotta group, with the serving certificate from `--tls-cert-file` and
//! delegated authentication and authorization instead of the standalone CA; `/readyz` also
//! waits for the cluster's authentication configuration (check `authentication`); the
//! device CA is the cluster Secret `flotta-ca` unless `--device-ca-cert` is given; no
//! admin kubeconfig is written.
//!
//! Limits: there is no request logging yet.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flotta_api::store::{Store, StoreError};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::auth;
use crate::cluster::events::{DeviceEventSink, LogEvents};
use crate::cluster::references::{ReferenceSource, StoreReferences};
use crate::config::Options;
use crate::edge::backend::BackendError;
use crate::edge::backend::store::StoreBackend;
use crate::edge::handlers::{EdgeState, router as edge_router};
use crate::edge::listener::{CaSource, DeviceListener, DevicePki};
use crate::edge::liveness::{Liveness, LivenessConfig};
use crate::edge::metrics::EdgeMetrics;
use crate::election::{Election, ElectionConfig, LEASE_KEY, process_identity};
use crate::pki::{self, PkiError};
use crate::rest::{self, RestState};
use crate::store;
use crate::tls::{self, ConnectionStats, TlsError, TlsServer};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created.
    #[error("creating the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The PKI could not be created or loaded.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// The device API's PKI or TLS configuration could not be set up.
    #[error(transparent)]
    DeviceApi(#[from] crate::edge::listener::ListenerError),
    /// The device backend could not be built.
    #[error("device backend: {0}")]
    DeviceBackend(#[from] crate::edge::backend::BackendError),
    /// A listener could not be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// `host:port`.
        address: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A state file (`ports.json`) could not be written.
    #[error("writing {}: {source}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// SIGTERM/SIGINT handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] io::Error),
    /// Aggregated mode could not start (cluster client, certificates, authentication).
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A start-up task panicked or was cancelled.
    #[error("start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs the standalone server until SIGTERM or SIGINT, then shuts down gracefully (a
/// second signal stops at once).
pub async fn run(opts: Options) -> Result<(), ServerError> {
    let mut signals = Signals::install()?;
    let (first_signal_tx, first_signal_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = pin!(run_until(opts, async move {
        let _ = first_signal_rx.await;
    }));
    tokio::select! {
        result = &mut server => return result,
        name = signals.next() => {
            tracing::info!(signal = name, "shutting down gracefully; send the signal again to stop at once");
            let _ = first_signal_tx.send(());
        }
    }
    tokio::select! {
        result = &mut server => result,
        name = signals.next() => {
            tracing::warn!(signal = name, "second signal: stopping without waiting for in-flight requests");
            Ok(())
        }
    }
}

/// Runs the standalone server until `shutdown` completes, then drains and returns. For
/// embedding and tests; [`run`] is this plus signal handling.
pub async fn run_until(
    opts: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let data_dir = opts.data_dir.clone();
    create_private_dir(&data_dir)?;
    // Aggregated mode: cluster client, serving certificate, delegated authn/authz.
    let aggregated = match opts.cluster.resolved_mode() {
        crate::cluster::Mode::Aggregated => Some(Arc::new(
            crate::cluster::Aggregated::start(&opts.cluster, &opts.pki_dir(), &opts.bind_address)
                .await?,
        )),
        _ => None,
    };

    let pki = {
        let dir = opts.pki_dir();
        let bind = opts.bind_address.clone();
        tokio::task::spawn_blocking(move || pki::ensure(&dir, &bind)).await??
    };
    let tls_config = match &aggregated {
        Some(aggregated) => aggregated.tls_config.clone(),
        None => tls::server_config(
            &[pki.ca_certificate()?],
            pki.serving_chain()?,
            pki.serving_key()?,
        )?,
    };

    let store = store::open(&opts.store_options()).await?;

    // The device API's PKI before any listener is bound, so that a bad CA fails start-up
    // before anything is announced.
    let device_pki = match opts.device_port.bind_port() {
        Some(_) => {
            let source = match (&opts.device_ca_cert, &opts.device_ca_key, &aggregated) {
                (Some(cert), Some(key), _) => CaSource::Files(cert.clone(), key.clone()),
                // In a cluster the CA is the Secret `flotta-ca` (Flotta's layout).
                (_, _, Some(aggregated)) => {
                    let namespace = aggregated.ca_secret_namespace(&opts.cluster);
                    let ca = crate::cluster::device_ca::load_or_create(
                        aggregated.client.clone(),
                        namespace,
                    )
                    .await
                    .map_err(crate::cluster::ClusterError::from)?;
                    tracing::info!(
                        %namespace,
                        name = crate::cluster::device_ca::CA_SECRET_NAME,
                        "device CA loaded from the cluster"
                    );
                    CaSource::Loaded(Arc::new(ca))
                }
                _ => CaSource::Store,
            };
            Some(
                DevicePki::prepare(
                    &source,
                    store.as_ref(),
                    &opts.bind_address,
                    &opts.device_server_names,
                    &opts.device_bootstrap_dir(),
                )
                .await?,
            )
        }
        None => None,
    };

    let secure_listener = bind(&opts.bind_address, opts.secure_port).await?;
    let secure_addr = local_addr(&secure_listener, &opts.bind_address)?;
    let metrics_listener = match opts.metrics_port.bind_port() {
        Some(port) => Some(bind(&opts.bind_address, port).await?),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(listener) => Some(local_addr(listener, &opts.bind_address)?),
        None => None,
    };
    let device_listener = match opts.device_port.bind_port() {
        Some(port) => Some(bind(&opts.bind_address, port).await?),
        None => None,
    };
    let device_addr = match &device_listener {
        Some(listener) => Some(local_addr(listener, &opts.bind_address)?),
        None => None,
    };

    let kubeconfig_path = opts.kubeconfig_path();
    let server_url = pki::server_url(&opts.bind_address, secure_addr.port());
    // In aggregated mode clients come through the cluster; an admin kubeconfig of this
    // server's own CA would not be accepted.
    if aggregated.is_none() {
        let pki = pki.clone();
        let path = kubeconfig_path.clone();
        let url = server_url.clone();
        tokio::task::spawn_blocking(move || pki.write_kubeconfig(&path, &url)).await??;
    }
    let ports = serde_json::json!({
        "secure": secure_addr.port(),
        "metrics": metrics_addr.map(|a| a.port()),
        "device": device_addr.map(|a| a.port()),
    });
    let ports_path = opts.ports_path();
    write_state_file(&ports_path, ports.to_string().into_bytes()).await?;

    tracing::info!(address = %secure_addr, url = %server_url, "serving the Kubernetes API (HTTPS)");
    match metrics_addr {
        Some(address) => {
            tracing::info!(%address, "serving /healthz, /livez, /readyz and /metrics (HTTP)");
        }
        None => tracing::info!("metrics listener disabled"),
    }
    match (device_addr, &device_pki) {
        (Some(address), Some(device_pki)) => tracing::info!(
            %address,
            bootstrap = %device_pki.bootstrap.dir.display(),
            "serving the device Edge API (mutual TLS); devices install the bootstrap directory's ca.pem, cert.pem and key.pem"
        ),
        _ => tracing::info!("device Edge API disabled"),
    }
    tracing::info!(path = %ports_path.display(), ports = %ports, "wrote bound ports");
    let kubeconfig_shown = std::path::absolute(&kubeconfig_path).unwrap_or(kubeconfig_path);
    if aggregated.is_none() {
        tracing::info!(
            "ready: kubectl --kubeconfig {} get edgedevices",
            kubeconfig_shown.display()
        );
    }

    let tls_server = TlsServer::new(tls_config).with_drain_timeout(opts.shutdown_timeout());
    let shutting_down = Arc::new(AtomicBool::new(false));
    let controllers_running = Arc::new(AtomicBool::new(false));
    let health = HealthState {
        store: store.clone(),
        controllers_running: controllers_running.clone(),
        connections: tls_server.stats(),
        shutting_down: shutting_down.clone(),
        started_at: jiff::Timestamp::now().as_second(),
        readiness: aggregated
            .iter()
            .map(|aggregated| -> ReadinessCheck {
                let aggregated = aggregated.clone();
                ("authentication", Arc::new(move || aggregated.ready()))
            })
            .collect(),
    };
    // With a shared store the replicas elect one to run the controllers.
    let election = opts.store_is_shared().then(|| {
        Election::new(
            store.clone(),
            LEASE_KEY,
            ElectionConfig::new(
                process_identity(),
                std::time::Duration::from_secs(opts.leader_elect_lease_duration),
            ),
        )
    });
    let controllers_registry = crate::resources::flotta();
    let controllers_store = store.clone();
    // Only the Flotta group is served behind the aggregator; ConfigMaps and Secrets are the
    // cluster's own.
    let mut registry = match &aggregated {
        Some(_) => crate::resources::flotta(),
        None => crate::resources::standalone(),
    };
    // Liveness (last seen, online) lives in memory and is merged into EdgeDevices as they
    // are served.
    let liveness = Arc::new(Liveness::new(LivenessConfig {
        missed_periods: opts.device_offline_after_missed,
        checkpoint_interval: std::time::Duration::from_secs(opts.device_last_seen_checkpoint),
        shared: opts.store_is_shared(),
        ..LivenessConfig::default()
    }));
    registry.set_presenter(
        flotta_api::v1alpha1::GROUP,
        "edgedevices",
        liveness.presenter(),
    );
    let edge_metrics = Arc::new(EdgeMetrics::new());
    // Configurations read ConfigMaps/Secrets and device events go where the mode keeps
    // them: this server's store and log, or the cluster.
    let (references, device_events): (Arc<dyn ReferenceSource>, Arc<dyn DeviceEventSink>) =
        match &aggregated {
            Some(aggregated) => (
                aggregated.references(),
                Arc::new(aggregated.device_events()),
            ),
            None => (
                Arc::new(
                    StoreReferences::new(store.clone(), &registry).ok_or_else(|| {
                        BackendError::Internal(
                            "ConfigMaps and Secrets are not registered".to_owned(),
                        )
                    })?,
                ),
                Arc::new(LogEvents),
            ),
        };
    let device_backend = Arc::new(StoreBackend::new(
        store.clone(),
        &registry,
        references,
        device_events,
        liveness,
        edge_metrics.clone(),
    )?);
    let app = match &aggregated {
        Some(aggregated) => aggregated.secure_app(rest::router(RestState::new(store, registry))),
        None => secure_app(RestState::new(store, registry)),
    };

    let (stop_secure_tx, stop_secure_rx) = watch::channel(false);
    let controllers_run = crate::controllers::run(
        controllers_store,
        &controllers_registry,
        opts.controllers(),
        election,
        controllers_running,
        stopped(stop_secure_rx.clone()),
    );
    let device_backend_run = {
        let backend = device_backend.clone();
        let stop = stop_secure_rx.clone();
        async move { backend.run(stopped(stop)).await }
    };
    let stop_device_rx = stop_secure_rx.clone();
    let device = async {
        let (Some(listener), Some(device_pki)) = (device_listener, device_pki) else {
            return;
        };
        let state = EdgeState {
            backend: device_backend.clone(),
            ca: device_pki.ca,
            device_cert_validity: opts.device_cert_validity.0,
            observer: edge_metrics.clone(),
        };
        DeviceListener::new(device_pki.tls, opts.shutdown_timeout())
            .serve(listener, edge_router(state), stopped(stop_device_rx))
            .await;
        tracing::info!("device API listener stopped");
    };
    let (stop_metrics_tx, stop_metrics_rx) = watch::channel(false);
    let drain_timeout = opts.shutdown_timeout();

    let trigger = async {
        shutdown.await;
        shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("stopping: no new connections; draining in-flight requests");
        let _ = stop_secure_tx.send(true);
    };
    let secure = async {
        if aggregated.is_some() {
            let peer = crate::auth::client_certificate::PeerCertificates::from_chain;
            tls_server
                .serve_with(secure_listener, app, stopped(stop_secure_rx), peer)
                .await;
        } else {
            tls_server
                .serve(secure_listener, app, stopped(stop_secure_rx))
                .await;
        }
        tracing::info!("Kubernetes API listener stopped");
        let _ = stop_metrics_tx.send(true);
    };
    let metrics = async {
        let Some(listener) = metrics_listener else {
            return;
        };
        let app = health_router(health).layer(axum::Extension(edge_metrics.clone()));
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(stopped(stop_metrics_rx.clone()));
        let deadline = async {
            stopped(stop_metrics_rx).await;
            tokio::time::sleep(drain_timeout).await;
        };
        tokio::select! {
            result = serve => {
                if let Err(error) = result {
                    tracing::error!(%error, "metrics listener failed");
                }
            }
            () = deadline => tracing::warn!("metrics listener did not drain in time"),
        }
    };
    tokio::join!(
        trigger,
        secure,
        metrics,
        device,
        device_backend_run,
        controllers_run
    );
    tracing::info!("shutdown complete");
    Ok(())
}

/// The secure-port application: the REST router behind authentication.
pub fn secure_app(state: RestState) -> Router {
    rest::router(state).layer(axum::middleware::from_fn(auth::authenticate))
}

/// Resolves once the flag in `rx` turns true (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn create_private_dir(path: &Path) -> Result<(), ServerError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| ServerError::DataDir {
            path: path.to_owned(),
            source,
        })
}

async fn bind(host: &str, port: u16) -> Result<TcpListener, ServerError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    TcpListener::bind((host, port))
        .await
        .map_err(|source| ServerError::Bind {
            address: format!("{host}:{port}"),
            source,
        })
}

fn local_addr(listener: &TcpListener, host: &str) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Bind {
        address: host.to_owned(),
        source,
    })
}

async fn write_state_file(path: &Path, contents: Vec<u8>) -> Result<(), ServerError> {
    let target = path.to_owned();
    tokio::task::spawn_blocking(move || pki::write_atomically(&target, &contents, 0o644))
        .await?
        .map_err(|source| ServerError::WriteFile {
            path: path.to_owned(),
            source,
        })
}

/// SIGTERM and SIGINT, installed before serving so none is missed.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> Result<Self, ServerError> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).map_err(ServerError::Signals)?,
            interrupt: signal(SignalKind::interrupt()).map_err(ServerError::Signals)?,
        })
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// What the health and metrics listener reads.
#[derive(Clone)]
pub struct HealthState {
    /// The store whose readiness and revisions are reported.
    pub store: Arc<dyn Store>,
    /// Connection counters of the secure listener.
    pub connections: Arc<ConnectionStats>,
    /// True while this process runs the controllers (always with an unshared store; on
    /// the elected replica with a shared one).
    pub controllers_running: Arc<AtomicBool>,
    /// Set when shutdown has begun; `/readyz` fails from then on.
    pub shutting_down: Arc<AtomicBool>,
    /// When the server started (Unix seconds).
    pub started_at: i64,
    /// Further checks of `/readyz` (e.g. aggregated mode's authentication configuration).
    pub readiness: Vec<ReadinessCheck>,
}

/// A further readiness check: its name and a function that is `Err(reason)` while not
/// ready.
pub type ReadinessCheck = (
    &'static str,
    Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
);

/// The plain-HTTP health and metrics router (see the module documentation).
pub fn health_router(state: HealthState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/livez/{check}", get(livez_check))
        .route("/healthz", get(healthz))
        .route("/healthz/{check}", get(healthz_check))
        .route("/readyz", get(readyz))
        .route("/readyz/{check}", get(readyz_check))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Which probe is asked; each runs a prefix of the same checks.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Livez,
    Healthz,
    Readyz,
}

impl Probe {
    fn name(self) -> &'static str {
        match self {
            Probe::Livez => "livez",
            Probe::Healthz => "healthz",
            Probe::Readyz => "readyz",
        }
    }

    fn checks(self) -> &'static [&'static str] {
        match self {
            Probe::Livez => &["ping"],
            Probe::Healthz => &["ping", "store"],
            Probe::Readyz => &["ping", "store", "shutdown"],
        }
    }
}

/// Runs one named check; `Err` carries the reason (logged, not sent).
async fn run_check(state: &HealthState, check: &str) -> Result<(), String> {
    match check {
        "store" => state.store.ready().await.map_err(|e| e.to_string()),
        "shutdown" if state.shutting_down.load(Ordering::SeqCst) => {
            Err("server is shutting down".to_owned())
        }
        other => match state.readiness.iter().find(|(name, _)| *name == other) {
            Some((_, check)) => check(),
            None => Ok(()),
        },
    }
}

/// Kubernetes-style probe answer: `ok`, or a check list with the failed checks marked.
async fn probe(state: &HealthState, probe: Probe, query: Option<&str>) -> Response {
    let verbose = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let mut lines = String::new();
    let mut failed = false;
    let further = match probe {
        Probe::Readyz => state.readiness.as_slice(),
        Probe::Livez | Probe::Healthz => &[],
    };
    let names = probe
        .checks()
        .iter()
        .copied()
        .chain(further.iter().map(|(name, _)| *name));
    for check in names {
        match run_check(state, check).await {
            Ok(()) => lines.push_str(&format!("[+]{check} ok\n")),
            Err(reason) => {
                failed = true;
                tracing::warn!(probe = probe.name(), check, %reason, "health check failed");
                lines.push_str(&format!("[-]{check} failed: reason withheld\n"));
            }
        }
    }
    let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if failed {
        lines.push_str(&format!("{} check failed\n", probe.name()));
        (StatusCode::INTERNAL_SERVER_ERROR, text_plain, lines).into_response()
    } else if verbose {
        lines.push_str(&format!("{} check passed\n", probe.name()));
        (StatusCode::OK, text_plain, lines).into_response()
    } else {
        (StatusCode::OK, text_plain, "ok").into_response()
    }
}

/// One check of a probe, at `/<probe>/<check>`.
async fn probe_one(state: &HealthState, probe: Probe, check: &str) -> Response {
    let text_plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    let further =
        matches!(probe, Probe::Readyz) && state.readiness.iter().any(|(n, _)| *n == check);
    if !probe.checks().contains(&check) && !further {
        return (StatusCode::NOT_FOUND, text_plain, "404 page not found\n").into_response();
    }
    match run_check(state, check).await {
        Ok(()) => (StatusCode::OK, text_plain, "ok").into_response(),
        Err(reason) => {
            tracing::warn!(probe = probe.name(), check, %reason, "health check failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                text_plain,
                format!("internal server error: {check} check failed\n"),
            )
                .into_response()
        }
    }
}

async fn livez(State(state): State<HealthState>, RawQuery(query): RawQuery) -> Response {
    probe(&state, Probe::Livez, query.as_deref()).await
}

async fn healthz(State(state): State<HealthState>, RawQuery(query): RawQuery) -> Response {
    probe(&state, Probe::Healthz, query.as_deref()).await
}

async fn readyz(State(state): State<HealthState>, RawQuery(query): RawQuery) -> Response {
    probe(&state, Probe::Readyz, query.as_deref()).await
}

async fn livez_check(
    State(state): State<HealthState>,
    UrlPath(check): UrlPath<String>,
) -> Response {
    probe_one(&state, Probe::Livez, &check).await
}

async fn healthz_check(
    State(state): State<HealthState>,
    UrlPath(check): UrlPath<String>,
) -> Response {
    probe_one(&state, Probe::Healthz, &check).await
}

async fn readyz_check(
    State(state): State<HealthState>,
    UrlPath(check): UrlPath<String>,
) -> Response {
    probe_one(&state, Probe::Readyz, &check).await
}

/// Prometheus text exposition, built at scrape time from figures the process can read.
async fn metrics(
    State(state): State<HealthState>,
    edge: Option<axum::Extension<Arc<EdgeMetrics>>>,
) -> Response {
    let mut out = PrometheusText::default();
    if let Some(axum::Extension(edge)) = edge {
        out.0.push_str(&edge.encode());
    }
    out.gauge(
        "flotta_build_info",
        "Build of this server; the value is always 1.",
        &format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
        1,
    );
    out.gauge(
        "flotta_apiserver_start_time_seconds",
        "When this server started serving, in Unix seconds.",
        "",
        state.started_at,
    );
    if let Some(rss) = resident_memory_bytes() {
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "",
            rss,
        );
    }
    if let Some(fds) = open_fds() {
        out.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            "",
            fds,
        );
    }
    out.gauge(
        "flotta_store_ready",
        "1 when the store answers its readiness check, else 0.",
        "",
        i64::from(state.store.ready().await.is_ok()),
    );
    if let Ok(revision) = state.store.current_revision().await {
        out.gauge(
            "flotta_store_current_revision",
            "The store's newest revision.",
            "",
            revision,
        );
    }
    if let Ok(revision) = state.store.compacted_revision().await {
        out.gauge(
            "flotta_store_compacted_revision",
            "The newest store revision no longer readable; watches from before it get 410.",
            "",
            revision,
        );
    }
    out.gauge(
        "flotta_controllers_leading",
        "1 while this replica runs the controllers (with a shared store, the elected one).",
        "",
        i64::from(state.controllers_running.load(Ordering::SeqCst)),
    );
    out.counter(
        "flotta_apiserver_connections_accepted_total",
        "TCP connections accepted by the Kubernetes API listener.",
        state.connections.accepted(),
    );
    out.counter(
        "flotta_apiserver_tls_handshake_failures_total",
        "Connections to the Kubernetes API listener whose TLS handshake failed or timed out.",
        state.connections.handshake_failures(),
    );
    out.gauge(
        "flotta_apiserver_connections_open",
        "Connections currently open on the Kubernetes API listener.",
        "",
        state.connections.open(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.0,
    )
        .into_response()
}

/// A Prometheus text-format document under construction.
#[derive(Default)]
struct PrometheusText(String);

impl PrometheusText {
    fn gauge(&mut self, name: &str, help: &str, labels: &str, value: impl Into<i128>) {
        self.family(name, help, "gauge", labels, value.into());
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "counter", "", value.into());
    }

    fn family(&mut self, name: &str, help: &str, kind: &str, labels: &str, value: i128) {
        use std::fmt::Write as _;
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes (Linux only).
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Entries of `/proc/self/fd` (Linux only).
fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    u64::try_from(entries.count()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_shape() {
        let mut out = PrometheusText::default();
        out.gauge("a_b", "Help text.", "{x=\"1\"}", 3u64);
        out.counter("c_total", "More help.", 4);
        assert_eq!(
            out.0,
            "# HELP a_b Help text.\n# TYPE a_b gauge\na_b{x=\"1\"} 3\n\
             # HELP c_total More help.\n# TYPE c_total counter\nc_total 4\n"
        );
    }

    #[test]
    fn process_figures_are_readable_here() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
        assert!(open_fds().is_some_and(|n| n >= 3));
    }
}
