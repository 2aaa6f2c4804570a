//! The agent's main loop: identity, configuration sync, workloads, heartbeats, disconnect.
//!
//! Each round (every poll period): renew the certificate if due, poll `control/in`
//! (`disconnect` → wipe and stop), poll `data/in` with `If-None-Match` (a new configuration
//! is applied, then persisted atomically), restart crashed workloads with back-off, and
//! send a heartbeat when its period is due. When the server is unreachable the round fails
//! and the agent sleeps a capped, jittered back-off (workloads keep running); on the first
//! success after failures the latest heartbeat is sent without events, then the queued
//! events follow. A 401 triggers renewal. Limits: one request at a time; the playbook,
//! metrics, log and OS-update components of Flotta's worker are not implemented.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use flotta_api::edge::{
    COMMAND_DISCONNECT, DeviceConfigurationMessage, EVENT_TYPE_INFO, EVENT_TYPE_WARN,
    EnrolmentFeatures, EnrolmentInfo, EventInfo, HEARTBEAT_STATUS_UP, HardwareInfo, Heartbeat,
    RegistrationInfo, Workload, WorkloadStatus,
};
use tokio::time::Instant;

use crate::client::{ClientError, ConfigPoll, EdgeClient};
use crate::config::Settings;
use crate::hardware;
use crate::identity::{Identity, IdentityError};
use crate::runtime::{ContainerRuntime, WorkloadPhase};
use crate::state::{StateDir, StateError};

/// At most this many undelivered events are kept; the oldest are dropped first.
pub const EVENT_QUEUE_CAPACITY: usize = 100;
/// Heartbeat period when the configuration gives none.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
/// Longest back-off between failed rounds.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Workload monitoring period when the configuration gives none (Flotta's 15 s).
pub const DEFAULT_MONITORING: Duration = Duration::from_secs(15);
/// Longest back-off between restarts of one crashed workload.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(300);

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Identity files could not be read, made or stored.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// State files could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A client could not be built (bad TLS material).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How the agent's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server sent `disconnect`; the state was wiped.
    Disconnected,
    /// Shutdown was requested.
    Shutdown,
}

/// The device agent.
pub struct Agent<R> {
    settings: Settings,
    state: StateDir,
    runtime: R,
    ca_pem: String,
    bootstrap: Identity,
    identity: Option<Identity>,
    client: Option<EdgeClient>,
    applied: Option<DeviceConfigurationMessage>,
    etag: Option<String>,
    events: VecDeque<EventInfo>,
    hardware_sent: Option<HardwareInfo>,
    next_heartbeat: Instant,
    failures: u32,
    restarts: BTreeMap<String, (u32, Instant)>,
    next_monitor: Instant,
    reported: Vec<(String, WorkloadPhase)>,
}

impl<R: ContainerRuntime> Agent<R> {
    /// An agent with `settings` running workloads on `runtime`. Reads the CA and bootstrap
    /// files (a missing one is named in the error), the stored identity, configuration and
    /// events.
    pub fn new(settings: Settings, runtime: R) -> Result<Self, AgentError> {
        let ca_pem =
            std::fs::read_to_string(&settings.ca_cert).map_err(|source| AgentError::Read {
                path: settings.ca_cert.clone(),
                source,
            })?;
        let bootstrap = Identity::load(&settings.cert, &settings.key)?;
        let state = StateDir::new(&settings.data_dir);
        let identity = Identity::stored(&state)?;
        let applied = state.read_json(&state.configuration_path())?;
        let events: VecDeque<EventInfo> =
            state.read_json(&state.events_path())?.unwrap_or_default();
        Ok(Self {
            settings,
            state,
            runtime,
            ca_pem,
            bootstrap,
            identity,
            client: None,
            applied,
            etag: None,
            events,
            hardware_sent: None,
            next_heartbeat: Instant::now(),
            failures: 0,
            restarts: BTreeMap::new(),
            next_monitor: Instant::now(),
            reported: Vec::new(),
        })
    }

    /// The configuration applied last.
    pub fn applied(&self) -> Option<&DeviceConfigurationMessage> {
        self.applied.as_ref()
    }

    /// Runs until `disconnect` or until `shutdown` completes.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<Outcome, AgentError> {
        tokio::pin!(shutdown);
        // Resume: bring the workloads of the stored configuration back without the server.
        if let Some(configuration) = self.applied.clone() {
            tracing::info!(version = ?configuration.version, "resuming the stored configuration");
            // Running workloads are left alone; missing ones are created again.
            self.reconcile(&configuration, &configuration).await;
        }
        loop {
            // Shutdown also interrupts a round (e.g. a long wait for enrolment approval);
            // state files are written atomically, so an interrupted round leaves them whole.
            let result = tokio::select! {
                result = self.round() => result,
                () = &mut shutdown => return Ok(Outcome::Shutdown),
            };
            let delay = match result {
                Ok(Some(outcome)) => return Ok(outcome),
                Ok(None) => {
                    self.failures = 0;
                    self.settings.poll
                }
                Err(error) => {
                    self.failures = self.failures.saturating_add(1);
                    let delay = backoff(self.settings.poll, self.failures);
                    tracing::warn!(%error, failures = self.failures, ?delay, "sync round failed");
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut shutdown => return Ok(Outcome::Shutdown),
            }
        }
    }

    /// One round; `Some` when the agent must stop.
    async fn round(&mut self) -> Result<Option<Outcome>, AgentError> {
        let reconnecting = self.failures > 0;
        let client = match self.ensure_identity().await {
            Ok(client) => client,
            Err(error) => {
                self.restart_crashed().await;
                return Err(error);
            }
        };
        let result = self.sync(&client, reconnecting).await;
        if result.is_err() {
            // Offline: workloads are still looked after (rate-limited by the period).
            self.restart_crashed().await;
        }
        match result {
            Err(AgentError::Client(error)) if error.is_unauthorized() => {
                tracing::warn!(%error, "certificate refused; renewing");
                self.client = None;
                self.renew().await?;
                Err(AgentError::Client(error))
            }
            other => other,
        }
    }

    async fn sync(
        &mut self,
        client: &EdgeClient,
        reconnecting: bool,
    ) -> Result<Option<Outcome>, AgentError> {
        if let Some(command) = client.control().await? {
            if command.command == COMMAND_DISCONNECT {
                self.disconnect().await?;
                return Ok(Some(Outcome::Disconnected));
            }
            tracing::info!(command = %command.command, "ignoring an unknown command");
        }
        if let ConfigPoll::Changed(configuration, etag) =
            client.configuration(self.etag.as_deref()).await?
        {
            self.apply(*configuration).await?;
            self.etag = etag;
            self.next_monitor = Instant::now();
        }
        self.restart_crashed().await;
        if reconnecting || Instant::now() >= self.next_heartbeat {
            if reconnecting {
                // Latest state first, queued events after.
                client.heartbeat(&self.heartbeat(false).await).await?;
            }
            let heartbeat = self.heartbeat(true).await;
            let sent = heartbeat.events.len();
            client.heartbeat(&heartbeat).await?;
            if heartbeat.hardware.is_some() {
                self.hardware_sent = Some(hardware::full());
            }
            if sent > 0 {
                self.events.drain(..sent.min(self.events.len()));
                self.state
                    .write_json(&self.state.events_path(), &self.events)?;
            }
            self.next_heartbeat = Instant::now() + self.heartbeat_period();
        }
        Ok(None)
    }

    fn heartbeat_period(&self) -> Duration {
        self.applied
            .as_ref()
            .and_then(|c| c.configuration.as_ref())
            .and_then(|c| c.heartbeat.as_ref())
            .and_then(|h| h.period_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_HEARTBEAT, Duration::from_secs)
    }

    async fn heartbeat(&self, with_events: bool) -> Heartbeat {
        let workloads = match self.runtime.list().await {
            Ok(states) => states
                .into_iter()
                .map(|state| WorkloadStatus {
                    name: Some(state.name),
                    status: Some(state.phase.as_str().to_owned()),
                    last_data_upload: None,
                })
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "listing workloads");
                Vec::new()
            }
        };
        let profile = self
            .applied
            .as_ref()
            .and_then(|c| c.configuration.as_ref())
            .and_then(|c| c.heartbeat.as_ref())
            .and_then(|h| h.hardware_profile.clone())
            .unwrap_or_default();
        let hardware = match (&self.hardware_sent, profile.include.unwrap_or(false)) {
            (None, _) => Some(hardware::full()),
            (Some(_), false) => None,
            (Some(previous), true) if profile.scope.as_deref() == Some("delta") => {
                hardware::delta(previous, &hardware::mutable())
            }
            (Some(_), true) => Some(hardware::mutable()),
        };
        Heartbeat {
            status: Some(HEARTBEAT_STATUS_UP.to_owned()),
            version: self.applied.as_ref().and_then(|c| c.version.clone()),
            workloads,
            hardware,
            events: if with_events {
                self.events.iter().cloned().collect()
            } else {
                Vec::new()
            },
            ..Heartbeat::default()
        }
    }

    fn push_event(&mut self, event_type: &str, reason: &str, message: String) {
        if self.events.len() >= EVENT_QUEUE_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(EventInfo {
            reason: Some(reason.to_owned()),
            message: Some(message),
            event_type: Some(event_type.to_owned()),
        });
        if let Err(error) = self
            .state
            .write_json(&self.state.events_path(), &self.events)
        {
            tracing::warn!(%error, "persisting events");
        }
    }

    /// A client with a device certificate, enrolling and registering first if needed.
    async fn ensure_identity(&mut self) -> Result<EdgeClient, AgentError> {
        if let (Some(client), Some(identity)) = (&self.client, &self.identity) {
            if jiff::Timestamp::now().as_second() < identity.renew_at() {
                return Ok(client.clone());
            }
            tracing::info!("certificate renewal due");
            self.renew().await?;
        }
        if self.identity.is_none() {
            self.join().await?;
        }
        let identity = self.identity.as_ref().unwrap_or(&self.bootstrap);
        let client = EdgeClient::new(
            &self.settings.server,
            &self.settings.device_id,
            &self.ca_pem,
            identity,
        )?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Enrols with the bootstrap certificate until approved (208), then registers.
    async fn join(&mut self) -> Result<(), AgentError> {
        let client = EdgeClient::new(
            &self.settings.server,
            &self.settings.device_id,
            &self.ca_pem,
            &self.bootstrap,
        )?;
        let info = EnrolmentInfo {
            features: Some(EnrolmentFeatures {
                model_name: None,
                hardware: Some(hardware::full()),
            }),
            target_namespace: Some(self.settings.namespace.clone()),
        };
        let mut attempt = 0;
        while !client.enrol(&info).await? {
            attempt += 1;
            let delay = backoff(Duration::from_secs(2), attempt).min(Duration::from_secs(30));
            tracing::info!(?delay, "enrolment pending approval");
            tokio::time::sleep(delay).await;
        }
        let bootstrap = self.bootstrap.clone();
        self.register_with(&client, &bootstrap).await
    }

    /// Renews the device certificate with the same key; falls back to joining anew with
    /// the bootstrap certificate if the device certificate is refused.
    async fn renew(&mut self) -> Result<(), AgentError> {
        let Some(identity) = self.identity.clone() else {
            return self.join().await;
        };
        let client = EdgeClient::new(
            &self.settings.server,
            &self.settings.device_id,
            &self.ca_pem,
            &identity,
        )?;
        match self.register_with(&client, &identity).await {
            Err(AgentError::Client(error)) if error.is_unauthorized() => {
                tracing::warn!(%error, "renewal refused; registering with the bootstrap certificate");
                self.identity = None;
                self.join().await
            }
            other => other,
        }
    }

    async fn register_with(
        &mut self,
        client: &EdgeClient,
        current: &Identity,
    ) -> Result<(), AgentError> {
        let (key_pem, csr) = current.csr(&self.settings.device_id)?;
        let cert_pem = client
            .register(&RegistrationInfo {
                hardware: Some(hardware::full()),
                certificate_request: Some(csr),
            })
            .await?;
        let identity = Identity::from_pem(cert_pem, key_pem, "the registration answer")?;
        identity.store(&self.state)?;
        tracing::info!(not_after = identity.not_after, "device certificate stored");
        self.identity = Some(identity);
        self.client = None;
        Ok(())
    }

    /// Applies `configuration`: reconciles workloads and secrets, then persists it.
    async fn apply(&mut self, configuration: DeviceConfigurationMessage) -> Result<(), AgentError> {
        let previous = self.applied.clone().unwrap_or_default();
        if previous.workloads != configuration.workloads
            || previous.secrets != configuration.secrets
        {
            self.reconcile(&previous, &configuration).await;
        }
        self.state
            .write_json(&self.state.configuration_path(), &configuration)?;
        tracing::info!(version = ?configuration.version, workloads = configuration.workloads.len(), "configuration applied");
        self.applied = Some(configuration);
        Ok(())
    }

    async fn reconcile(
        &mut self,
        previous: &DeviceConfigurationMessage,
        next: &DeviceConfigurationMessage,
    ) {
        if let Err(error) = self.runtime.sync_secrets(&next.secrets).await {
            self.push_event(EVENT_TYPE_WARN, "Failed", format!("secrets: {error}"));
        }
        let old: BTreeMap<&str, &Workload> = by_name(&previous.workloads);
        let new: BTreeMap<&str, &Workload> = by_name(&next.workloads);
        let running: Vec<String> = match self.runtime.list().await {
            Ok(states) => states.into_iter().map(|s| s.name).collect(),
            Err(_) => Vec::new(),
        };
        for name in old.keys().filter(|name| !new.contains_key(*name)) {
            match self.runtime.remove(name).await {
                Ok(()) => {
                    self.restarts.remove(*name);
                    self.push_event(
                        EVENT_TYPE_INFO,
                        "Removed",
                        format!("workload {name} removed"),
                    );
                }
                Err(error) => self.push_event(EVENT_TYPE_WARN, "Failed", error.to_string()),
            }
        }
        for (name, workload) in &new {
            let unchanged = old.get(name) == Some(workload) && running.iter().any(|r| r == name);
            if unchanged {
                continue;
            }
            match self.runtime.apply(workload, &self.settings.device_id).await {
                Ok(()) => {
                    self.restarts.remove(*name);
                    self.push_event(
                        EVENT_TYPE_INFO,
                        "Started",
                        format!("workload {name} started"),
                    );
                }
                Err(error) => self.push_event(EVENT_TYPE_WARN, "Failed", error.to_string()),
            }
        }
    }

    /// Every monitoring period: restarts stopped or crashed workloads of the applied
    /// configuration (with back-off), and brings the heartbeat forward when a phase changed.
    async fn restart_crashed(&mut self) {
        let now = Instant::now();
        if now < self.next_monitor {
            return;
        }
        let period = self
            .applied
            .as_ref()
            .and_then(|c| c.workloads_monitoring_interval)
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_MONITORING, Duration::from_secs);
        self.next_monitor = now + period;
        let Some(applied) = self.applied.clone() else {
            return;
        };
        if applied.workloads.is_empty() && self.reported.is_empty() {
            return;
        }
        let Ok(states) = self.runtime.list().await else {
            return;
        };
        let mut phases: Vec<(String, WorkloadPhase)> =
            states.iter().map(|s| (s.name.clone(), s.phase)).collect();
        phases.sort_by(|a, b| a.0.cmp(&b.0));
        if phases != self.reported {
            self.reported = phases;
            self.next_heartbeat = now;
        }
        for workload in &applied.workloads {
            let Some(name) = workload.name.as_deref() else {
                continue;
            };
            let phase = states.iter().find(|s| s.name == name).map(|s| s.phase);
            if !phase.is_none_or(WorkloadPhase::needs_restart) {
                continue;
            }
            let now = Instant::now();
            let (attempts, not_before) = self.restarts.get(name).copied().unwrap_or((0, now));
            if now < not_before {
                continue;
            }
            let result = match phase {
                Some(_) => self.runtime.restart(name).await,
                None => self.runtime.apply(workload, &self.settings.device_id).await,
            };
            let delay = backoff(Duration::from_secs(5), attempts + 1).min(MAX_RESTART_BACKOFF);
            self.restarts
                .insert(name.to_owned(), (attempts + 1, now + delay));
            match result {
                Ok(()) => self.push_event(
                    EVENT_TYPE_WARN,
                    "Restarted",
                    format!("workload {name} was {phase:?}; restarted"),
                ),
                Err(error) => self.push_event(EVENT_TYPE_WARN, "Failed", error.to_string()),
            }
        }
    }

    /// Removes every workload, secret, volume and the stored configuration; keeps the
    /// certificates.
    async fn disconnect(&mut self) -> Result<(), AgentError> {
        tracing::warn!("disconnect received: wiping workloads and configuration");
        let mut names: Vec<String> = self
            .applied
            .iter()
            .flat_map(|c| c.workloads.iter().filter_map(|w| w.name.clone()))
            .collect();
        if let Ok(states) = self.runtime.list().await {
            names.extend(states.into_iter().map(|s| s.name));
        }
        names.sort();
        names.dedup();
        for name in &names {
            if let Err(error) = self.runtime.remove(name).await {
                tracing::warn!(%error, workload = %name, "removing a workload");
            }
        }
        if let Err(error) = self.runtime.sync_secrets(&[]).await {
            tracing::warn!(%error, "removing secrets");
        }
        self.state.wipe_keeping_identity()?;
        self.applied = None;
        self.events.clear();
        Ok(())
    }
}

fn by_name(workloads: &[Workload]) -> BTreeMap<&str, &Workload> {
    workloads
        .iter()
        .filter_map(|w| w.name.as_deref().map(|name| (name, w)))
        .collect()
}

/// `base · 2^(attempt-1)` capped at [`MAX_BACKOFF`], with ±25 % jitter.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let raw = base.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let jitter: f64 = rand::random_range(0.75..1.25);
    raw.mul_f64(jitter).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let base = Duration::from_secs(2);
        for _ in 0..50 {
            let first = backoff(base, 1);
            assert!(first >= Duration::from_millis(1500) && first <= Duration::from_millis(2500));
            let third = backoff(base, 3);
            assert!(third >= Duration::from_secs(6) && third <= Duration::from_secs(10));
            assert!(backoff(base, 40) <= MAX_BACKOFF);
        }
    }
}
