//! `flotta-agent`: the device agent. Settings come from `--config FILE` (TOML) with flag
//! overrides; see the crate documentation and `docs/agent.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use flotta_agent::agent::{Agent, Outcome};
use flotta_agent::config::{MACHINE_ID_FILE, PartialSettings};
use flotta_agent::runtime::host::{HostCommand, HostFeatures, SystemCommand};
use flotta_agent::runtime::nftables::NftRules;
use flotta_agent::runtime::podman::Podman;
use flotta_agent::runtime::systemd::SystemdUnits;
use flotta_agent::state::StateDir;

/// The Flotta device agent.
#[derive(Debug, Parser)]
#[command(version, about, args_override_self = true)]
struct Cli {
    /// TOML configuration file (keys as the long flags, e.g. `ca-cert`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Base URL of the device API, e.g. https://edge.example:8043.
    #[arg(long)]
    server: Option<String>,
    /// Device id (default: the content of /etc/machine-id).
    #[arg(long)]
    device_id: Option<String>,
    /// CA certificate of the server (PEM).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Bootstrap client certificate (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Bootstrap client key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// State directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Target namespace requested at enrolment.
    #[arg(long)]
    namespace: Option<String>,
    /// Log filter (error, warn, info, debug, trace or a tracing directive).
    #[arg(long)]
    log_level: Option<String>,
    /// Poll period of data/in and control/in, seconds (default 5).
    #[arg(long)]
    poll_seconds: Option<u64>,
    /// podman executable.
    #[arg(long)]
    podman: Option<PathBuf>,
    /// systemd units for workloads: true or false (default: when systemd is PID 1).
    #[arg(long)]
    systemd_units: Option<bool>,
    /// nftables rules for host ports: true or false (default: when `nft` is on PATH).
    #[arg(long)]
    nftables: Option<bool>,
    /// Directory of the workload units (default /etc/systemd/system).
    #[arg(long)]
    unit_dir: Option<PathBuf>,
    /// `--network` passed to `podman kube play` (e.g. `none`).
    #[arg(long)]
    podman_network: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flotta-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => PartialSettings::from_file(path)?,
        None => PartialSettings::default(),
    };
    let flags = PartialSettings {
        server: cli.server,
        device_id: cli.device_id,
        ca_cert: cli.ca_cert,
        cert: cli.cert,
        key: cli.key,
        data_dir: cli.data_dir,
        namespace: cli.namespace,
        log_level: cli.log_level,
        poll_seconds: cli.poll_seconds,
        podman: cli.podman,
        systemd_units: cli.systemd_units,
        nftables: cli.nftables,
        unit_dir: cli.unit_dir,
    };
    let settings = file
        .merge(flags)
        .resolve(std::path::Path::new(MACHINE_ID_FILE))?;
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_level)
        .map_err(|e| anyhow::anyhow!("invalid log level {:?}: {e}", settings.log_level))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let mut podman = Podman::new(
        &settings.podman,
        StateDir::new(&settings.data_dir),
        &settings.device_id,
    );
    podman.network = cli.podman_network;
    let features = settings.host_features(HostFeatures::detect());
    tracing::info!(
        systemd_units = features.systemd,
        nftables = features.nftables,
        "host integration"
    );
    let host: Arc<dyn HostCommand> = Arc::new(SystemCommand);
    if features.systemd {
        podman = podman.with_systemd(SystemdUnits::new(&settings.unit_dir, host.clone()));
    }
    if features.nftables {
        podman = podman.with_nftables(NftRules::new(host));
    }
    let agent = Agent::new(settings, podman)?;
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    match agent.run(shutdown).await? {
        Outcome::Disconnected => tracing::warn!("disconnected by the server; state wiped, exiting"),
        Outcome::Shutdown => tracing::info!("shutting down"),
    }
    Ok(())
}
