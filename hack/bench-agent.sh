#!/usr/bin/env bash
# Footprint of flotta-agent: stripped release binary size, and RSS and CPU of the agent
# while idle with 5 running podman workloads, sampled from /proc over a window.
#
# Usage: hack/bench-agent.sh [--minutes N]   (default 10)
# Needs: podman (+ runc, catatonit), busybox-static, kubectl, cargo. Uses the project
# agent/containers.conf unless CONTAINERS_CONF is set. Prints a markdown table.
# CPU is reported twice: the agent process alone, and agent plus the podman commands it
# ran and reaped (utime+stime+cutime+cstime), both as % of one core over the window.
set -euo pipefail

minutes=10
while (($#)); do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    *) echo "usage: $0 [--minutes N]" >&2; exit 2 ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo_root/agent/containers.conf}"
kubectl="${KUBECTL:-kubectl}"
image=localhost/flotta-busybox:test

cargo build --release -p flotta-agent --bin flotta-agent >&2
cargo build -p flotta-apiserver --bin flotta-apiserver >&2
target_dir="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
agent_bin="$target_dir/release/flotta-agent"
server_bin="$target_dir/debug/flotta-apiserver"

work="$(mktemp -d)"
server_pid="" agent_pid=""
cleanup() {
  [[ -n "$agent_pid" ]] && kill "$agent_pid" 2>/dev/null || true
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  for i in 1 2 3 4 5; do podman pod rm -f -t 0 "bench-$i" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cp "$agent_bin" "$work/flotta-agent.stripped"
strip "$work/flotta-agent.stripped"
size_bytes="$(stat -c %s "$work/flotta-agent.stripped")"

if ! podman image exists "$image"; then
  mkdir -p "$work/rootfs/bin"
  cp /bin/busybox "$work/rootfs/bin/busybox"
  ln -s busybox "$work/rootfs/bin/sh"
  ln -s busybox "$work/rootfs/bin/sleep"
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" bin
  podman import "$work/rootfs.tar" "$image" >/dev/null
fi

mkdir -p "$work/server"
"$server_bin" --data-dir "$work/server" --secure-port 0 --metrics-port auto --device-port 0 \
  >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
  grep -q '"device": *[1-9]' "$work/server/ports.json" 2>/dev/null && break
  sleep 0.2
done
device_port="$(sed -n 's/.*"device": *\([0-9]*\).*/\1/p' "$work/server/ports.json")"
k() { "$kubectl" --kubeconfig "$work/server/kubeconfig" --cache-dir "$work/kcache" "$@"; }
for _ in $(seq 100); do k get edgedevices >/dev/null 2>&1 && break; sleep 0.2; done

boot="$work/server/device-bootstrap"
"$agent_bin" --server "https://127.0.0.1:$device_port" --device-id bench-device \
  --ca-cert "$boot/ca.pem" --cert "$boot/cert.pem" --key "$boot/key.pem" \
  --data-dir "$work/agent" --log-level warn >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 300); do k get edgedevice bench-device >/dev/null 2>&1 && break; sleep 0.2; done
k label edgedevice bench-device bench=yes >/dev/null
for i in 1 2 3 4 5; do
  k apply -f - >/dev/null <<YAML
apiVersion: management.project-flotta.io/v1alpha1
kind: EdgeWorkload
metadata:
  name: bench-$i
spec:
  type: pod
  deviceSelector:
    matchLabels:
      bench: "yes"
  pod:
    spec:
      containers:
        - name: main
          image: $image
          command: ["/bin/sh", "-c", "exec sleep 100000"]
YAML
done
running=0
for _ in $(seq 600); do
  running="$(podman pod ps --filter label=flotta-agent=bench-device --format '{{.Status}}' | grep -c Running || true)"
  ((running == 5)) && break
  sleep 0.5
done
((running == 5)) || { echo "only $running of 5 workloads running" >&2; tail -20 "$work/agent.log" >&2; exit 1; }
# Let the first heartbeat and restart checks settle before measuring.
sleep 20

ticks="$(getconf CLK_TCK)"
cpu_fields() { awk '{print $14+$15, $14+$15+$16+$17}' "/proc/$agent_pid/stat"; }
read -r cpu0 cpuc0 < <(cpu_fields)
start="$(date +%s.%N)"
end_at=$(( $(date +%s) + minutes * 60 ))
max_rss=0 sum_rss=0 samples=0
while (( $(date +%s) < end_at )); do
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$agent_pid/status")"
  ((rss > max_rss)) && max_rss=$rss
  sum_rss=$((sum_rss + rss)); samples=$((samples + 1))
  sleep 5
done
read -r cpu1 cpuc1 < <(cpu_fields)
elapsed="$(echo "$(date +%s.%N) - $start" | bc -l)"
cpu_agent="$(echo "scale=3; 100 * ($cpu1 - $cpu0) / $ticks / $elapsed" | bc -l)"
cpu_total="$(echo "scale=3; 100 * ($cpuc1 - $cpuc0) / $ticks / $elapsed" | bc -l)"

printf '| metric | value | target |\n|---|---|---|\n'
printf '| stripped release binary | %.1f MB | <= 15 MB |\n' "$(echo "$size_bytes / 1048576" | bc -l)"
printf '| RSS, max over %s min (5 workloads) | %.1f MB | <= 15 MB |\n' "$minutes" "$(echo "$max_rss / 1024" | bc -l)"
printf '| RSS, mean | %.1f MB | |\n' "$(echo "$sum_rss / $samples / 1024" | bc -l)"
printf '| idle CPU, agent process | %.3f %% of a core | <= 0.5 %% |\n' "$cpu_agent"
printf '| idle CPU, agent + podman commands it ran | %.3f %% of a core | |\n' "$cpu_total"
