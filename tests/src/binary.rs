//! Locating the `flotta-apiserver` binary under test.
//!
//! `FLOTTA_APISERVER_BIN` wins (CI builds the binary once and exports it). Otherwise the first
//! caller in the test process runs `cargo build -p flotta-apiserver --bin flotta-apiserver`
//! in the workspace and every caller uses `<target-dir>/debug/flotta-apiserver`, where the
//! target dir is `CARGO_TARGET_DIR` or the workspace's `target/`. Limits: always the debug
//! profile; a failed build is reported to every caller, not retried.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

/// The outcome of locating the binary, shared by every test in the process.
static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The path of the `flotta-apiserver` binary, building it first if needed.
pub fn apiserver_binary() -> Result<PathBuf> {
    BINARY
        .get_or_init(|| locate().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(|error| anyhow!(error))
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

fn locate() -> Result<PathBuf> {
    if let Some(path) = env::var_os("FLOTTA_APISERVER_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "FLOTTA_APISERVER_BIN={} does not name a file",
                path.display()
            );
        }
        return Ok(path);
    }
    let root = workspace_root();
    let cargo = env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(OsString::from))
        .unwrap_or_else(|| OsString::from("cargo"));
    let output = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "flotta-apiserver",
            "--bin",
            "flotta-apiserver",
        ])
        .current_dir(&root)
        .output()
        .with_context(|| format!("running {} build", cargo.to_string_lossy()))?;
    if !output.status.success() {
        bail!(
            "cargo build -p flotta-apiserver failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    let path = target_dir.join("debug").join("flotta-apiserver");
    if !path.is_file() {
        bail!(
            "cargo build succeeded but {} does not exist",
            path.display()
        );
    }
    Ok(path)
}
