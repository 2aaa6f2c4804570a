//! Shared helpers of the podman-backed tests: detecting podman, the project
//! `containers.conf`, and the busybox image imported locally with `podman import`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code, not all users use all

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The image the workloads run, imported from the host's static busybox.
pub(crate) const IMAGE: &str = "localhost/flotta-busybox:test";

/// Whether podman is available; prepares the environment and the image once.
pub(crate) fn podman_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let on_path = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("podman").is_file())
        });
        if !on_path {
            eprintln!("SKIPPED: podman is not on PATH");
            return false;
        }
        if std::env::var_os("CONTAINERS_CONF").is_none() {
            // set_var is unsafe (and unsafe code is forbidden): podman children get the
            // project configuration through `podman()` and the runtime's wrapper script.
            let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("containers.conf");
            ENV.get_or_init(|| {
                (
                    "CONTAINERS_CONF".to_owned(),
                    conf.to_string_lossy().into_owned(),
                )
            });
        }
        import_image();
        true
    })
}

/// `CONTAINERS_CONF` for podman children, when the test process has none.
pub(crate) static ENV: OnceLock<(String, String)> = OnceLock::new();

pub(crate) fn podman() -> Command {
    let mut command = Command::new("podman");
    if let Some((key, value)) = ENV.get() {
        command.env(key, value);
    }
    command
}

fn import_image() {
    let exists = podman()
        .args(["image", "exists", IMAGE])
        .status()
        .unwrap()
        .success();
    if exists {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|path| Path::new(path).is_file())
        .expect("busybox-static must be installed (/bin/busybox)");
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep", "httpd", "mkdir", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let tar = root.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(&tar)
        .arg("bin")
        .status()
        .unwrap();
    assert!(status.success());
    let output = podman()
        .arg("import")
        .arg(&tar)
        .arg(IMAGE)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "podman import: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
