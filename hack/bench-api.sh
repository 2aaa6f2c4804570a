#!/usr/bin/env bash
# Benchmarks the Flotta API server: builds flotta-apiserver and bench-api in release mode,
# prints the machine and the date, then runs bench-api, which starts the server on a
# temporary data directory under target/ (a real disk, so fsync is real), measures
# creates, lists, paging, watch fan-out and memory, and prints the figures against their
# targets. Extra arguments go to bench-api (e.g. --devices 2000, --store memory; see
# `target/release/bench-api --help`). With --store etcd, bench-api first starts the `etcd`
# on PATH (Debian's etcd-server: one member, plain HTTP on 127.0.0.1, etcd's default
# settings, fsync on) with its data directory under the same target/ directory, points the
# server at it with --etcd-servers, reports etcd's memory and CPU beside the server's, and
# stops etcd at the end.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

cargo build --release -p flotta-apiserver -p flotta-bench

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
server_bin="$target_dir/release/flotta-apiserver"
bench_bin="$target_dir/release/bench-api"

echo "== machine"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "cpus:    $(nproc) ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
echo "memory:  $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel:  $(uname -sr)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min)"
echo "disk of the data directory ($target_dir):"
df -hT "$target_dir" | sed 's/^/  /'
if command -v etcd >/dev/null; then
  echo "etcd:    $(etcd --version 2>/dev/null | head -n1)"
fi
echo "commit:  $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
echo

echo "== bench-api"
exec "$bench_bin" --server-bin "$server_bin" --data-root "$target_dir" "$@"
