//! Waiting for a condition with a deadline instead of sleeping a fixed time.
//!
//! The probe is polled every few milliseconds until it is ready, fails for good, or the
//! deadline passes; the timeout error names what was awaited and the last reason it was not
//! ready yet. Limits: the probe runs on the calling thread, so a probe that blocks delays the
//! deadline check by that long.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// The default deadline for anything the suite waits on.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to pause between two probes; short, because probes are cheap local checks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What one poll of a condition found.
#[derive(Debug)]
pub enum Probe<T> {
    /// The condition holds; waiting ends with this value.
    Ready(T),
    /// Not yet; the text says what was seen, for the timeout message.
    Pending(String),
    /// The condition can never hold (e.g. the process died); waiting ends with this error.
    Failed(anyhow::Error),
}

/// Polls `probe` until it is ready, it fails, or `timeout` passes.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Probe<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Probe::Ready(value) => return Ok(value),
            Probe::Failed(error) => return Err(error.context(format!("while waiting for {what}"))),
            Probe::Pending(reason) => {
                if Instant::now() >= deadline {
                    bail!("timed out after {timeout:?} waiting for {what}; last seen: {reason}");
                }
            }
        }
        thread::sleep(POLL_INTERVAL);
    }
}
