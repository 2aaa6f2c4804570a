//! Running the real `kubectl` against a test server, with a deadline on every invocation.
//!
//! [`Kubectl`] pins a kubeconfig and a private discovery cache directory (so parallel tests
//! and the developer's `~/.kube` never mix), captures both output streams, and reports
//! failures with the command line, the exit status and both streams. [`LineStream`] runs a
//! long-lived kubectl (`get -w`) and hands its stdout out line by line.
//! Limits: output is read as UTF-8 (lossily); a command that outlives its deadline is killed.

use std::env;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::deadline::{DEFAULT_TIMEOUT, Probe, wait_for};

/// The kubectl binary: `$KUBECTL`, else `/usr/bin/kubectl`, else `kubectl` from `PATH`.
pub fn kubectl_binary() -> PathBuf {
    if let Some(path) = env::var_os("KUBECTL") {
        return PathBuf::from(path);
    }
    let system = Path::new("/usr/bin/kubectl");
    if system.is_file() {
        return system.to_path_buf();
    }
    PathBuf::from("kubectl")
}

/// The captured result of one finished command.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl CmdOutput {
    /// Whether the process exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, if the process exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout if the command succeeded, else an error showing everything.
    pub fn ok(self) -> Result<String> {
        if self.success() {
            Ok(self.stdout)
        } else {
            Err(anyhow!("expected success, but it failed: {self}"))
        }
    }

    /// Stderr if the command failed, else an error showing everything.
    pub fn err(self) -> Result<String> {
        if self.success() {
            Err(anyhow!("expected failure, but it succeeded: {self}"))
        } else {
            Ok(self.stderr)
        }
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// A kubectl bound to one kubeconfig and cache directory, plus optional global flags.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
    global_args: Vec<String>,
    timeout: Duration,
}

impl Kubectl {
    /// A kubectl using `kubeconfig` and keeping its discovery cache in `cache_dir`.
    pub fn new(kubeconfig: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            kubeconfig: kubeconfig.into(),
            cache_dir: cache_dir.into(),
            global_args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same kubectl with extra flags before every command (e.g. `--server=…`).
    pub fn with_global_args(mut self, args: &[&str]) -> Self {
        self.global_args
            .extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    /// The kubeconfig this kubectl uses.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_binary());
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(&self.global_args)
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("KUBECTL_EXTERNAL_DIFF");
        command
    }

    /// Runs `kubectl <args>` to completion (or the deadline).
    pub fn run(&self, args: &[&str]) -> Result<CmdOutput> {
        run_command(self.command(args), None, self.timeout)
    }

    /// Runs `kubectl <args>` with `input` on stdin (for `-f -`).
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Result<CmdOutput> {
        run_command(self.command(args), Some(input), self.timeout)
    }

    /// Runs `kubectl <args>`, expects success, returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> Result<String> {
        self.run(args)?.ok()
    }

    /// Runs `kubectl <args>`, expects failure, returns stderr.
    pub fn run_err(&self, args: &[&str]) -> Result<String> {
        self.run(args)?.err()
    }

    /// Like [`Kubectl::run_ok`] with `input` on stdin.
    pub fn run_ok_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        self.run_stdin(args, input)?.ok()
    }

    /// Like [`Kubectl::run_err`] with `input` on stdin.
    pub fn run_err_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        self.run_stdin(args, input)?.err()
    }

    /// Starts a long-running `kubectl <args>` (e.g. `get -w`) and streams its stdout lines.
    pub fn spawn_lines(&self, args: &[&str]) -> Result<LineStream> {
        let mut command = self.command(args);
        let description = describe(&command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting `{description}`"))?;
        let stdout = child
            .stdout
            .take()
            .context("kubectl stdout was not captured")?;
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut buffer = [0_u8; 4096];
                while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                    if let Ok(mut text) = sink.lock() {
                        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                    }
                }
            });
        }
        Ok(LineStream {
            child,
            description,
            lines,
            seen: Vec::new(),
            stderr,
        })
    }
}

/// A running command whose stdout is consumed line by line; killed on drop.
#[derive(Debug)]
pub struct LineStream {
    child: Child,
    description: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl LineStream {
    /// Reads lines until one satisfies `matches`, and returns it. Lines read on the way are
    /// consumed (a later call only sees later lines). Fails on the deadline or at end of output.
    pub fn expect_line(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(remaining) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "timed out after {timeout:?} waiting for {what} from `{}`\n{}",
                        self.description,
                        self.transcript()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "`{}` closed its output (exit status {status:?}) before {what}\n{}",
                        self.description,
                        self.transcript()
                    )
                }
            }
        }
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    fn transcript(&self) -> String {
        let stderr = self
            .stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default();
        format!(
            "--- stdout so far ---\n{}\n--- stderr so far ---\n{stderr}",
            self.seen.join("\n")
        )
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        // The process may already have exited; either way it must not outlive the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to completion with optional stdin, killing it after `timeout`.
pub fn run_command(
    mut command: Command,
    input: Option<&str>,
    timeout: Duration,
) -> Result<CmdOutput> {
    let description = describe(&command);
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting `{description}`"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let text = text.to_owned();
        // A separate thread, so a child that does not read stdin cannot block us.
        thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let waited = wait_for(
        &format!("`{description}` to exit"),
        timeout,
        || match child.try_wait() {
            Ok(Some(status)) => Probe::Ready(status),
            Ok(None) => Probe::Pending("still running".to_owned()),
            Err(error) => Probe::Failed(error.into()),
        },
    );
    let status = match waited {
        Ok(status) => status,
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error.context(format!(
                "--- stdout ---\n{}\n--- stderr ---\n{}",
                join(stdout),
                join(stderr)
            )));
        }
    };
    Ok(CmdOutput {
        command: description,
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

fn collect(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

fn join(reader: Option<JoinHandle<String>>) -> String {
    reader
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}
