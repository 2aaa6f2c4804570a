#!/usr/bin/env bash
# Runs every check of the project on a fresh Debian machine that has cargo (rustup) and
# kubectl: installs missing Debian packages with apt-get, then cargo fmt, clippy with
# -D warnings, a build of flotta-apiserver, and the whole test suite (the end-to-end tests
# in tests/ drive that binary with the real kubectl). Runnable from any directory.
# Called by .ci/run. Environment: KUBECTL names another kubectl binary.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

section() {
  printf '\n==== %s ====\n' "$*"
}

die() {
  printf 'hack/test.sh: %s\n' "$*" >&2
  exit 1
}

section "Prerequisites"

# Debian packages the checks need, as "command:package"; a package is installed only when
# its command is missing.
required=(
  "git:git"
  "cc:build-essential"
  "make:build-essential"
  # The aggregated manifests test runs hack/apiservice-certs.sh.
  "openssl:openssl"
  # The etcd store tests (apiserver/tests/store_etcd.rs) start a real etcd.
  "etcd:etcd-server"
  # The agent's podman tests (agent/tests): podman with runc, its pause binary, and the
  # static busybox the test image is imported from.
  "podman:podman"
  "runc:runc"
  "catatonit:catatonit"
  "busybox:busybox-static"
)

missing=()
add_missing() {
  local package="$1" listed
  for listed in "${missing[@]+"${missing[@]}"}"; do
    [[ "$listed" == "$package" ]] && return 0
  done
  missing+=("$package")
}

for pair in "${required[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || add_missing "${pair#*:}"
done
# ca-certificates has no command to look for: the TLS clients need its bundle.
if ! dpkg-query -W -f='${Status}' ca-certificates 2>/dev/null | grep -q 'install ok installed'; then
  add_missing ca-certificates
fi

if ((${#missing[@]})); then
  echo "installing missing Debian packages: ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 ||
    die "missing packages (${missing[*]}) and no apt-get to install them"
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 ||
      die "missing packages (${missing[*]}); run as root or install sudo"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]+"${sudo[@]}"}" apt-get update
  "${sudo[@]+"${sudo[@]}"}" apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "all Debian packages present"
fi

command -v cargo >/dev/null 2>&1 ||
  die "cargo is required (install the Rust toolchain with rustup)"
cargo fmt --version >/dev/null 2>&1 ||
  die "rustfmt is required: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 ||
  die "clippy is required: rustup component add clippy"

kubectl="${KUBECTL:-$(command -v kubectl || true)}"
if [[ -z "$kubectl" || ! -x "$kubectl" ]]; then
  die "kubectl is required: the end-to-end tests drive the real kubectl (v1.32). It is part of
the machine image, and Debian has no package for it. Install kubectl v1.32 on PATH, or set
KUBECTL=/path/to/kubectl."
fi
export KUBECTL="$kubectl"

cargo --version
rustc --version
kubectl_version="$("$kubectl" version --client 2>&1 || true)"
echo "kubectl: ${kubectl_version%%$'\n'*}"

section "cargo fmt"
cargo fmt --all --check

section "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "Build flotta-apiserver"
cargo build --locked -p flotta-apiserver --bin flotta-apiserver
# Where cargo put it (honours CARGO_TARGET_DIR and .cargo/config.toml).
target_dir="$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[[ -n "$target_dir" ]] || target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
export FLOTTA_APISERVER_BIN="$target_dir/debug/flotta-apiserver"
[[ -x "$FLOTTA_APISERVER_BIN" ]] || die "built binary not found at $FLOTTA_APISERVER_BIN"
echo "FLOTTA_APISERVER_BIN=$FLOTTA_APISERVER_BIN"

section "cargo test"
cargo test --workspace --locked --no-fail-fast

section "All checks passed"
