#!/usr/bin/env bash
# Fairway's Kubernetes benchmark (`BENCH_MODE=kubernetes npm run bench`, or
# `bash bench/kubernetes.sh`). See bench/README.md, "Kubernetes benchmark".
#
# Builds dist/ when it is stale (as the other benches do), then runs bench/kubernetes.ts
# with the TypeScript loader the tests use (tap's ts-node, transpile only). That script
# runs the test Kubernetes API server (test/helpers/kube-api-server.ts), the upstreams
# and the probe client in its own process, pinned to BENCH_LOAD_CPU (default 1), and the
# router (`node dist/cli.js serve --kubeconfig ... --config ...`) and its peer as child
# processes pinned to BENCH_PROXY_CPU (default 0). Two phases:
#   latency   change-to-live of 200 changes (new app, EndpointSlice move, weight swap)
#   scale     10,000 routable Services / EndpointSlices: spawn → ready, RSS, 1,000 changes,
#             next to a bare @kubernetes/client-node informer process (the peer)
# Loopback only; every child is stopped at exit; the whole run stops by itself (< 5 min).
#
# Tunables (environment): BENCH_PROXY_CPU / BENCH_LOAD_CPU (CPU of the router / of the bench
# process), BENCH_PROFILE=1 (routers under --cpu-prof, summarised), BENCH_STRICT=1 (exit 3
# when a target fails), and bench/kubernetes.ts's own BENCH_K8S_* variables (phases, counts,
# rates, timeouts; listed at the top of that file and in bench/README.md).
set -euo pipefail

K8S_BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The plain bench's helpers (log, die, ensure_build, check_idle, cleanup of started
# processes on exit); its main does not run when sourced.
# shellcheck source=run.sh
source "$K8S_BENCH_DIR/run.sh"

RESULTS="$BENCH_DIR/results/k8s-$STAMP"
LOGS="$RESULTS/logs"

k8s_main() {
  local p
  for p in PROXY_CPU LOAD_CPU; do [[ "${!p}" =~ ^[0-9]+$ ]] || die "BENCH_$p must be a whole number"; done
  mkdir -p "$LOGS"
  ensure_build
  local pin=() router_cpu=""
  if [ "$(nproc)" -ge 2 ] && [ "$PROXY_CPU" -lt "$(nproc)" ] && [ "$LOAD_CPU" -lt "$(nproc)" ] && command -v taskset >/dev/null; then
    pin=(taskset -c "$LOAD_CPU")
    router_cpu=$PROXY_CPU
    log "pinning: router and peer on CPU $PROXY_CPU; API server, upstreams and probe client on CPU $LOAD_CPU"
  else
    log "WARNING: fewer than 2 CPUs (or no taskset): running unpinned; figures are not comparable to pinned runs"
  fi
  check_idle
  # In the background and waited for, so that a signal reaches this script at once; the
  # cleanup trap (run.sh) then sends TERM, and bench/kubernetes.ts stops its children.
  (
    cd "$ROOT"
    export TS_NODE_TRANSPILE_ONLY=1 TS_NODE_PROJECT="$ROOT/tsconfig.json"
    export BENCH_K8S_RESULTS="$RESULTS" BENCH_K8S_ROUTER_CPU="$router_cpu" BENCH_K8S_BENCH_CPU="${pin[*]:+$LOAD_CPU}"
    export BENCH_K8S_COMMAND="${BENCH_K8S_COMMAND:-bash bench/kubernetes.sh}"
    exec "${pin[@]}" node --import @tapjs/typescript/import "$K8S_BENCH_DIR/kubernetes.ts"
  ) &
  local pid=$! status=0
  PIDS+=("$pid")
  wait "$pid" || status=$?
  if [ -d "$RESULTS" ]; then ln -sfn "k8s-$STAMP" "$BENCH_DIR/results/latest-k8s"; fi
  return "$status"
}

k8s_main "$@"
