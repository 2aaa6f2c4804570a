#!/usr/bin/env bash
# Benchmarks the device-facing Edge API: builds flotta-apiserver and bench-devices in
# release mode, prints the machine and the date, then runs bench-devices, which for each
# fleet size (200 and 1,000 devices) starts the server on a temporary data directory under
# target/ (a real disk, so fsync is real), enrols and registers every simulated device with
# its own certificate and its own HTTP/1.1 keep-alive TLS connection, sends one heartbeat
# per device, and then measures, with 16 requests in flight and 60 s per run: identical
# heartbeats (and the store writes they cause: none allowed), unchanged-configuration polls
# (If-None-Match → 304) and status-changing heartbeats, with server CPU and memory. Figures
# are printed against the issue's targets and the original Flotta's.
#
# Extra arguments go to bench-devices, e.g. --quick (10 s runs), --duration 30,
# --devices 200, --in-flight 32, --store memory; see `target/release/bench-devices --help`.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

cargo build --release -p flotta-apiserver --bin flotta-apiserver -p flotta-bench --bin bench-devices

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
server_bin="$target_dir/release/flotta-apiserver"
bench_bin="$target_dir/release/bench-devices"

echo "== machine"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "cpus:    $(nproc) ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
echo "memory:  $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel:  $(uname -sr)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; the load generator shares the machine)"
echo "fds:     $(ulimit -n) open files allowed (each device holds one connection)"
echo "disk of the data directory ($target_dir):"
df -hT "$target_dir" | sed 's/^/  /'
echo "commit:  $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
echo

echo "== bench-devices"
exec "$bench_bin" --server-bin "$server_bin" --data-root "$target_dir" "$@"
