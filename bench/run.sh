#!/usr/bin/env bash
# Fairway's proxy benchmark (`npm run bench`). See bench/README.md.
#
# Loopback only. Starts an origin (nginx `return 200`, or a minimal Node server when
# nginx is missing), then the proxies under test, each on its own port and each proxying
# to the origin over keep-alive connections:
#   direct        wrk straight to the origin (the ceiling of this machine's setup)
#   nginx         nginx, 1 worker, proxy_pass to an upstream block with keepalive 64
#   haproxy       HAProxy, 1 thread, round-robin 9:1 with connection reuse
#   caddy         Caddy, GOMAXPROCS=1, reverse_proxy to the origin
#   fairway       Fairway, one process, bench/fairway-bench.yaml (90/10 weighted versions)
#   fairway-10k   the same Fairway config plus 9,999 other apps (10,000 hosts in the table)
#   undici-min    node:http + undici Pool.dispatch and nothing else (the floor of a Node proxy)
#   undici-stream node:http + undici Pool.stream
#   node-http     node:http + http.request with a keep-alive agent, piped
#   http-proxy-3  a bare http-proxy-3 proxy with a keep-alive agent (bench/peers/)
# and measures each with `wrk -t1 -c64 --latency`, repetitions interleaved (rep 1 of
# every proxy, then rep 2, ...), each after a short warm-up. The proxy under test runs on
# CPU 0, origin and wrk on CPU 1. Prints a table of medians and PASS/FAIL lines for the
# targets; writes every raw number to bench/results/<UTC time>/.
#
# Tunables (environment):
#   BENCH_DURATION=10      seconds measured per proxy and rep
#   BENCH_WARMUP=2         seconds of warm-up load before each measurement (0: none)
#   BENCH_REPS=3           repetitions (interleaved)
#   BENCH_CONNECTIONS=64   wrk connections (-c)
#   BENCH_THREADS=1        wrk threads (-t)
#   BENCH_PROXIES="direct nginx haproxy caddy fairway fairway-10k undici-min undici-stream node-http http-proxy-3"
#                          which to measure, in this order; also available: fairway-nolog (a
#                          second Fairway with the access log off, to measure what the access
#                          log costs) and fairway-b (a second Fairway for A/B comparisons, run
#                          with BENCH_B_NODE_FLAGS and from BENCH_B_DIST, see below). A peer
#                          that is not installed (and cannot be installed)
#                          is skipped and named in the report.
#   BENCH_PATH=/           the path requested: / answers 100 bytes, /1mb answers 1 MiB
#   BENCH_PORT_BASE=18080  ports used: base, base+1 (origin), base+10/+11 (fairway http/admin),
#                          base+12/+13 (fairway-nolog), base+14/+15 (fairway-10k), base+16/+17
#                          (fairway-b), base+20 (nginx
#                          proxy), base+30 (http-proxy-3), base+40/41/42 (undici-min, undici-stream,
#                          node-http), base+50 (haproxy), base+60 (caddy)
#   BENCH_PROXY_CPU=0 BENCH_LOAD_CPU=1   CPUs for the proxy under test / origin + wrk
#   BENCH_NGINX_ACCESS_LOG=on   nginx proxy writes a buffered access log to /dev/null,
#                          as Fairway writes its access log to /dev/null (off: no log)
#   BENCH_PROFILE=1        run Fairway under `node --cpu-prof` and summarise the profile
#                          (its numbers then include the profiler's overhead)
#   BENCH_NODE_FLAGS=      extra node flags for the fairway, fairway-nolog and fairway-10k rows
#   BENCH_B_NODE_FLAGS=    node flags for the fairway-b row (e.g. --max-semi-space-size=32)
#   BENCH_B_DIST=dist      the build the fairway-b row runs (e.g. the dist/ of a git worktree at an
#                          older commit, to compare two builds in one interleaved run)
#   BENCH_RATE=auto        after the wrk reps, the latency of BENCH_RATE_PROXIES at one equal load
#                          (h2load --rps from nghttp2-client, 64 connections, BENCH_DURATION per rep):
#                          auto = half of Fairway's median req/s, or a number of req/s (rounded down
#                          to a multiple of BENCH_CONNECTIONS); 0: skip the step. Not for BENCH_PATH=/1mb.
#   BENCH_RATE_PROXIES="nginx fairway undici-min"   measured at the equal load (those also in BENCH_PROXIES)
#   BENCH_STRICT=1         exit 3 when a target fails (default: report only, exit 0)
#   BENCH_NO_INSTALL=1     never apt-get install missing tools
#   BENCH_NGINX=PATH       the nginx binary to use ("none": run as if nginx were missing)
#
#   BENCH_MODE=tls         run the HTTPS benchmark instead (bench/tls.sh; see bench/README.md)
#   BENCH_MODE=kubernetes  run the Kubernetes benchmark instead (bench/kubernetes.sh: change-to-live
#                          latency and 10,000-Service scale; see bench/README.md)
#   BENCH_MODE=proxy-protocol  what the PROXY protocol costs (bench/proxy-protocol.sh: the same wrk
#                          load through HAProxy with and without send-proxy; see bench/README.md)
#   BENCH_MODE=compression  what response compression costs (bench/compression.sh: a 2 KB JSON
#                          answer with and without Accept-Encoding gzip / br; see bench/README.md)
#   BENCH_MODE=workers     Fairway with 1 and 2 workers against nginx with 1 and 2 workers (bench/workers.sh:
#                          plain HTTP, HTTPS keep-alive, resumed TLS connections; see bench/README.md)
#   BENCH_MODE=memory      RSS of Fairway with 10,000 hosts and --workers 2, idle and under load,
#                          next to nginx with 10,000 server_names (bench/memory.sh; see bench/README.md)
#   BENCH_MODE=paired      each proxy measured at the same time as nginx on the same CPU, compared by CPU
#                          per request: ratios without the drift between rows (bench/paired.sh; see bench/README.md)
#   BENCH_MODE=all         the plain bench, 1 MiB answers, tls, workers and memory one after the other, and
#                          their verdicts together (bench/all.sh; see bench/README.md)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")

# bench/tls.sh sources this file for its functions: only a direct run dispatches or runs main.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${BENCH_MODE:-http}" in
    http | "") ;;
    tls) exec bash "$BENCH_DIR/tls.sh" "$@" ;;
    kubernetes) exec bash "$BENCH_DIR/kubernetes.sh" "$@" ;;
    proxy-protocol) exec bash "$BENCH_DIR/proxy-protocol.sh" "$@" ;;
    compression) exec bash "$BENCH_DIR/compression.sh" "$@" ;;
    workers) exec bash "$BENCH_DIR/workers.sh" "$@" ;;
    memory) exec bash "$BENCH_DIR/memory.sh" "$@" ;;
    paired) exec bash "$BENCH_DIR/paired.sh" "$@" ;;
    all) exec bash "$BENCH_DIR/all.sh" "$@" ;;
    *) printf 'bench: unknown BENCH_MODE %s (http, tls, kubernetes, proxy-protocol, compression, workers, memory, paired or all)\n' "$BENCH_MODE" >&2; exit 1 ;;
  esac
fi

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
REPS=${BENCH_REPS:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
PROXIES=${BENCH_PROXIES:-"direct nginx haproxy caddy fairway fairway-10k undici-min undici-stream node-http http-proxy-3"}
BENCH_PATH=${BENCH_PATH:-/}
PORT_BASE=${BENCH_PORT_BASE:-18080}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
NGINX_ACCESS_LOG=${BENCH_NGINX_ACCESS_LOG:-on}
PROFILE=${BENCH_PROFILE:-0}
RATE=${BENCH_RATE:-auto}
RATE_PROXIES=${BENCH_RATE_PROXIES:-"nginx fairway undici-min"}

HOST_HEADER=bench.example.test            # the domain of the app in fairway-bench.yaml
ORIGIN_A_PORT=$PORT_BASE                  # Fairway v1 (weight 90), nginx weight 9, http-proxy-3, direct
ORIGIN_B_PORT=$((PORT_BASE + 1))          # Fairway v2 (weight 10), nginx weight 1
FAIRWAY_PORT=$((PORT_BASE + 10))
FAIRWAY_ADMIN_PORT=$((PORT_BASE + 11))
FAIRWAY_NOLOG_PORT=$((PORT_BASE + 12))
FAIRWAY_NOLOG_ADMIN_PORT=$((PORT_BASE + 13))
FAIRWAY_B_PORT=$((PORT_BASE + 16))
FAIRWAY_B_ADMIN_PORT=$((PORT_BASE + 17))
NGINX_PORT=$((PORT_BASE + 20))
HP3_PORT=$((PORT_BASE + 30))
UNDICI_MIN_PORT=$((PORT_BASE + 40))
UNDICI_STREAM_PORT=$((PORT_BASE + 41))
NODE_HTTP_PORT=$((PORT_BASE + 42))
FAIRWAY_10K_PORT=$((PORT_BASE + 14))
FAIRWAY_10K_ADMIN_PORT=$((PORT_BASE + 15))
HAPROXY_PORT=$((PORT_BASE + 50))
CADDY_PORT=$((PORT_BASE + 60))
# The origin's answer: 100 bytes (the same as bench/peers/node-origin.mjs).
ORIGIN_BODY='fairway bench origin: this response body is one hundred bytes long, padded with dots...............'

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$BENCH_DIR/results/$STAMP"
LOGS="$RESULTS/logs"   # stderr of every started process, nginx error logs, apt output
TMP=$(mktemp -d -t fairway-bench.XXXXXX)
PIDS=()            # every process this script started (stopped by cleanup)
NGINX=""           # path of nginx, empty when not found
ORIGIN_KIND=""     # nginx or node
MEASURED=()        # proxies that started and answered correctly
SKIPPED=()         # "name: reason" for the report

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- cleanup: stop every started process (TERM, then KILL after 10 s), remove temp dir ---
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid
  [ -n "${WRK_PID:-}" ] && kill -TERM "$WRK_PID" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# --- checks of the tunables ---
check_settings() {
  local name value
  for name in DURATION REPS CONNECTIONS THREADS PORT_BASE PROXY_CPU LOAD_CPU WARMUP; do
    value=${!name}
    [[ "$value" =~ ^[0-9]+$ ]] || die "BENCH_$name must be a whole number (got '$value')"
  done
  [ "$DURATION" -ge 1 ] && [ "$REPS" -ge 1 ] && [ "$CONNECTIONS" -ge "$THREADS" ] && [ "$THREADS" -ge 1 ] ||
    die "need BENCH_DURATION >= 1, BENCH_REPS >= 1, BENCH_THREADS >= 1 and BENCH_CONNECTIONS >= BENCH_THREADS"
  local p
  for p in $PROXIES; do
    case "$p" in
      direct | nginx | haproxy | caddy | fairway | fairway-10k | fairway-nolog | fairway-b | http-proxy-3 | undici-min | undici-stream | node-http) ;;
      *) die "unknown proxy '$p' in BENCH_PROXIES" ;;
    esac
  done
  [[ "$BENCH_PATH" == / || "$BENCH_PATH" == /1mb ]] || die "BENCH_PATH must be / or /1mb (got '$BENCH_PATH')"
  [[ "$RATE" == auto || "$RATE" =~ ^[0-9]+$ ]] || die "BENCH_RATE must be auto or a whole number of requests per second (got '$RATE')"
  [ "$BENCH_PATH" = / ] || RATE=0
}

# Whether this run measures a peer (never when another bench sources this file for its functions).
RUN_SH_MAIN=0
[[ "${BASH_SOURCE[0]}" == "$0" ]] && RUN_SH_MAIN=1
wanted() { [ "$RUN_SH_MAIN" = 1 ] && [[ " $PROXIES " == *" $1 "* ]]; }

# nginx from BENCH_NGINX (a path; "none" to run without nginx), PATH, or /usr/sbin.
find_nginx() {
  if [ -n "${BENCH_NGINX:-}" ]; then
    NGINX=""
    [ -x "$BENCH_NGINX" ] && NGINX=$BENCH_NGINX
  else
    NGINX=$(command -v nginx || true)
    if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
  fi
  return 0
}

# --- find (or install, as root) wrk and nginx; wrk is required, nginx is optional ---
find_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  find_nginx
  [ -n "$NGINX" ] || [ -n "${BENCH_NGINX:-}" ] || missing+=(nginx-light)
  if wanted haproxy && ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then missing+=(haproxy); fi
  if wanted caddy && ! command -v caddy >/dev/null; then missing+=(caddy); fi
  if [ "$RUN_SH_MAIN" = 1 ] && [ "$RATE" != 0 ] && ! command -v h2load >/dev/null; then missing+=(nghttp2-client); fi
  if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && [ "${BENCH_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]} with apt-get"
    # Install from the local package lists first; refresh them only if that fails.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$LOGS/apt.log" 2>&1; then
      log "apt-get install failed, running apt-get update first"
      DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$LOGS/apt.log" 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$LOGS/apt.log" 2>&1 ||
        log "apt-get install ${missing[*]} failed (last lines: $(tail -n 3 "$LOGS/apt.log" | tr '\n' ' '))"
    fi
  fi
  command -v wrk >/dev/null ||
    die "wrk not found (and could not be installed: run as root, or 'apt-get install wrk'); nothing can be measured without it"
  find_nginx
  if [ -z "$NGINX" ]; then
    log "nginx not found (${BENCH_NGINX:+BENCH_NGINX=$BENCH_NGINX; }apt-get install nginx-light): skipping the nginx peer; the origin will be a Node server"
    SKIPPED+=("nginx: nginx not installed")
  fi
  HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; } || true)
  CADDY=$(command -v caddy || true)
  if wanted haproxy && [ -z "$HAPROXY" ]; then log "haproxy not found (apt-get install haproxy): skipping it"; SKIPPED+=("haproxy: not installed"); fi
  if wanted caddy && [ -z "$CADDY" ]; then log "caddy not found (apt-get install caddy): skipping it"; SKIPPED+=("caddy: not installed"); fi
  if [ "$RUN_SH_MAIN" = 1 ] && [ "$RATE" != 0 ] && ! command -v h2load >/dev/null; then
    log "h2load not found (apt-get install nghttp2-client): skipping the latency at an equal load"
    SKIPPED+=("latency at an equal load: h2load not installed")
    RATE=0
  fi
  command -v taskset >/dev/null || die "taskset not found (util-linux)"
}

# --- pin: proxy on PROXY_CPU, origin + wrk on LOAD_CPU (no pinning with fewer than 2 CPUs) ---
PIN_PROXY=()
PIN_LOAD=()
setup_pinning() {
  local cpus
  cpus=$(nproc)
  if [ "$cpus" -ge 2 ] && [ "$PROXY_CPU" -lt "$cpus" ] && [ "$LOAD_CPU" -lt "$cpus" ]; then
    PIN_PROXY=(taskset -c "$PROXY_CPU")
    PIN_LOAD=(taskset -c "$LOAD_CPU")
    log "pinning: proxy under test on CPU $PROXY_CPU, origin and wrk on CPU $LOAD_CPU ($cpus CPUs)"
  else
    log "WARNING: $cpus CPU(s) (or CPU numbers out of range): running without pinning; figures are not comparable to pinned runs"
  fi
}

# --- build dist/ when it is missing or older than a source or build file ---
ensure_build() {
  if [ ! -f "$ROOT/dist/cli.js" ] ||
    [ -n "$(find "$ROOT/src" "$ROOT/tsconfig.json" "$ROOT/tsconfig.build.json" "$ROOT/package.json" -newer "$ROOT/dist/cli.js" -print -quit)" ]; then
    log "dist/ is missing or stale: npm run build"
    (cd "$ROOT" && npm run build --silent) >&2 || die "npm run build failed"
    touch "$ROOT/dist/cli.js"   # tsc does not rewrite unchanged outputs; mark the build time
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# What every bench mode does once its settings are checked and before it starts a server:
# the results dir, the tools, CPU pinning, the build (unless the mode brings its own dist/),
# its ports free, an idle machine, and a temp dir that nginx's workers (user nobody when
# run as root) can reach.
# Usage: prepare_bench PORT_CHECK [--no-build]   (PORT_CHECK: the mode's function that dies on a busy port)
prepare_bench() {
  mkdir -p "$LOGS"
  find_tools
  setup_pinning
  [ "${2:-}" = --no-build ] || ensure_build
  "$1"
  check_idle
  chmod 755 "$TMP"
}

check_ports() {
  local port
  for port in "$ORIGIN_A_PORT" "$ORIGIN_B_PORT" "$FAIRWAY_PORT" "$FAIRWAY_ADMIN_PORT" "$FAIRWAY_NOLOG_PORT" \
    "$FAIRWAY_NOLOG_ADMIN_PORT" "$FAIRWAY_10K_PORT" "$FAIRWAY_10K_ADMIN_PORT" "$FAIRWAY_B_PORT" "$FAIRWAY_B_ADMIN_PORT" "$NGINX_PORT" "$HP3_PORT" \
    "$UNDICI_MIN_PORT" "$UNDICI_STREAM_PORT" "$NODE_HTTP_PORT" "$HAPROXY_PORT" "$CADDY_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is already in use (another bench running?); set BENCH_PORT_BASE"
  done
}

# Starts "$@" in the background, stdout/stderr to the given files, and records its pid.
# Usage: spawn NAME STDOUT_FILE COMMAND...
spawn() {
  local name=$1 out=$2
  shift 2
  "$@" >"$out" 2>"$LOGS/$name.err" &
  PIDS+=("$!")
  eval "PID_${name//-/_}=$!"
}

# Waits until a proxy (or the origin) answers 200 with the origin's 100 bytes, for up to
# SECONDS (default 15). Usage: wait_ready NAME PORT [SECONDS]
wait_ready() {
  local name=$1 port=$2 seconds=${3:-15}
  if ! node "$BENCH_DIR/lib/probe.mjs" wait "http://127.0.0.1:$port/" "$HOST_HEADER" "$seconds" 2>"$TMP/$name.probe"; then
    log "$name did not answer correctly on 127.0.0.1:$port: $(cat "$TMP/$name.probe")"
    [ -s "$LOGS/$name.err" ] && log "$name stderr: $(tail -n 5 "$LOGS/$name.err" | tr '\n' ' ')"
    return 1
  fi
}

# The top of an nginx config: one worker in the foreground (so its pid is the one we
# started), pid file and temp paths in the temp dir, error log with the run's logs.
# Usage: nginx_common NAME [WORKERS=1]
nginx_common() {
  local name=$1 workers=${2:-1}
  mkdir -p "$TMP/$name"
  cat <<EOF
worker_processes $workers;
daemon off;
master_process on;
pid $TMP/$name/nginx.pid;
error_log $LOGS/$name.error.log warn;
events { worker_connections 4096; }
EOF
}
# The origin upstream every nginx peer proxies to: weights 9:1, keep-alive.
nginx_upstream() {
  cat <<EOF
  upstream origin {
    server 127.0.0.1:$ORIGIN_A_PORT weight=9;
    server 127.0.0.1:$ORIGIN_B_PORT weight=1;
    keepalive 64;
    keepalive_requests 10000000;
  }
EOF
}
# What every nginx http block here has: temp paths in the run's dir, long client keep-alive.
nginx_http_common() {
  local name=$1
  cat <<EOF
  client_body_temp_path $TMP/$name/client_body;
  proxy_temp_path $TMP/$name/proxy;
  fastcgi_temp_path $TMP/$name/fastcgi;
  uwsgi_temp_path $TMP/$name/uwsgi;
  scgi_temp_path $TMP/$name/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
EOF
}

# --- the origin: nginx `return 200` on two ports, or the Node fallback ---
start_origin() {
  head -c 1048576 /dev/zero | tr '\0' x >"$TMP/1mb.bin"
  if [ -n "$NGINX" ]; then
    ORIGIN_KIND=nginx
    {
      nginx_common origin
      cat <<EOF
http {
  access_log off;
$(nginx_http_common origin)
  default_type text/plain;
  server {
    listen 127.0.0.1:$ORIGIN_A_PORT;
    listen 127.0.0.1:$ORIGIN_B_PORT;
    location / { return 200 "$ORIGIN_BODY\n"; }
    location = /1mb { alias $TMP/1mb.bin; }
  }
}
EOF
    } >"$TMP/origin.conf"
    spawn origin /dev/null "${PIN_LOAD[@]}" "$NGINX" -p "$TMP/origin" -c "$TMP/origin.conf" -e "$LOGS/origin.error.log"
  else
    ORIGIN_KIND=node
    spawn origin /dev/null "${PIN_LOAD[@]}" node "$BENCH_DIR/peers/node-origin.mjs" "$ORIGIN_A_PORT" "$ORIGIN_B_PORT"
  fi
  wait_ready origin "$ORIGIN_A_PORT" && wait_ready origin "$ORIGIN_B_PORT" || die "the origin ($ORIGIN_KIND) did not start"
  log "origin ($ORIGIN_KIND) on 127.0.0.1:$ORIGIN_A_PORT and :$ORIGIN_B_PORT"
}

# The nginx `location` that proxies to the origin with the headers Fairway sets too
# (shared by the plain and TLS benches, so both nginx peers do the same work).
nginx_proxy_location() {
  cat <<'NGINX'
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # The headers Fairway sets too.
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Id $request_id;
    }
NGINX
}

# --- proxy: nginx, 1 worker, weighted upstream 9:1 with keep-alive ---
start_nginx_proxy() {
  [ -n "$NGINX" ] || return 1
  local access_log="access_log off;"
  [ "$NGINX_ACCESS_LOG" = on ] && access_log="access_log /dev/null combined buffer=64k flush=1s;"
  {
    nginx_common nginx
    cat <<EOF
http {
  $access_log
$(nginx_http_common nginx)
$(nginx_upstream)
  server {
    listen 127.0.0.1:$NGINX_PORT;
$(nginx_proxy_location)
  }
}
EOF
  } >"$TMP/nginx.conf"
  spawn nginx /dev/null "${PIN_PROXY[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx.conf" -e "$LOGS/nginx.error.log"
  wait_ready nginx "$NGINX_PORT"
}

# --- proxy: Fairway, one process, the bench config with this run's ports ---
# Usage: start_fairway NAME HTTP_PORT ADMIN_PORT ACCESS_LOG(true|false) [NODE_FLAGS [DIST]]
start_fairway() {
  local name=$1 port=$2 admin=$3 access=$4 flags=${5-${BENCH_NODE_FLAGS:-}} dist=${6:-$ROOT/dist}
  # Copy the config into its own temp dir (the weights state file is written beside it).
  mkdir -p "$TMP/$name"
  sed -e "s/127\.0\.0\.1:18080/127.0.0.1:$ORIGIN_A_PORT/; s/127\.0\.0\.1:18081/127.0.0.1:$ORIGIN_B_PORT/" \
    -e "s/127\.0\.0\.1:18090/127.0.0.1:$port/; s/127\.0\.0\.1:18091/127.0.0.1:$admin/" \
    -e "s/^  access: true/  access: $access/" \
    "$BENCH_DIR/fairway-bench.yaml" >"$TMP/$name/fairway.yaml"
  local node_flags=()
  [ -z "$flags" ] || read -r -a node_flags <<<"$flags"
  if [ "$PROFILE" = 1 ]; then
    mkdir -p "$RESULTS/profile-$name"
    node_flags+=(--cpu-prof --cpu-prof-dir="$RESULTS/profile-$name")
  fi
  # stdout (the JSON logs, access log included) goes to /dev/null; stderr is kept.
  spawn "$name" /dev/null "${PIN_PROXY[@]}" node "${node_flags[@]}" "$dist/cli.js" serve --workers 1 --config "$TMP/$name/fairway.yaml"
  wait_ready "$name" "$port"
}

# --- proxy: bare http-proxy-3 with a keep-alive agent ---
start_http_proxy_3() {
  spawn http-proxy-3 /dev/null "${PIN_PROXY[@]}" node "$BENCH_DIR/peers/http-proxy-3-proxy.mjs" "$HP3_PORT" "http://127.0.0.1:$ORIGIN_A_PORT"
  wait_ready http-proxy-3 "$HP3_PORT"
}

# --- reference proxy: node:http + undici Pool.dispatch, nothing else ---
start_undici_min() {
  spawn undici-min /dev/null "${PIN_PROXY[@]}" node "$BENCH_DIR/peers/undici-dispatch-proxy.mjs" "$UNDICI_MIN_PORT" "http://127.0.0.1:$ORIGIN_A_PORT"
  wait_ready undici-min "$UNDICI_MIN_PORT"
}

# --- reference proxies: node:http + undici Pool.stream / + http.request ---
start_undici_stream() {
  spawn undici-stream /dev/null "${PIN_PROXY[@]}" node "$BENCH_DIR/peers/undici-stream-proxy.mjs" "$UNDICI_STREAM_PORT" "http://127.0.0.1:$ORIGIN_A_PORT"
  wait_ready undici-stream "$UNDICI_STREAM_PORT"
}
start_node_http() {
  spawn node-http /dev/null "${PIN_PROXY[@]}" node "$BENCH_DIR/peers/node-http-proxy.mjs" "$NODE_HTTP_PORT" "http://127.0.0.1:$ORIGIN_A_PORT"
  wait_ready node-http "$NODE_HTTP_PORT"
}

# --- proxy: HAProxy, 1 thread, the same 9:1 split and forwarded headers as nginx ---
start_haproxy() {
  [ -n "$HAPROXY" ] || return 1
  cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
  pidfile $TMP/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 60s
  timeout http-keep-alive 75s
  http-reuse always
  option forwardfor
frontend bench
  bind 127.0.0.1:$HAPROXY_PORT
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Port %[dst_port]
  http-request set-header X-Request-Id %[uuid]
  default_backend origin
backend origin
  balance roundrobin
  server a 127.0.0.1:$ORIGIN_A_PORT weight 9
  server b 127.0.0.1:$ORIGIN_B_PORT weight 1
EOF
  spawn haproxy /dev/null "${PIN_PROXY[@]}" "$HAPROXY" -db -f "$TMP/haproxy.cfg"
  wait_ready haproxy "$HAPROXY_PORT"
}

# --- proxy: Caddy on one core (GOMAXPROCS=1), reverse_proxy round-robin to the origin ---
start_caddy() {
  [ -n "$CADDY" ] || return 1
  mkdir -p "$TMP/caddy"
  cat >"$TMP/Caddyfile" <<EOF
{
  admin off
  auto_https off
}
http://:$CADDY_PORT {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:$ORIGIN_A_PORT 127.0.0.1:$ORIGIN_B_PORT {
    lb_policy round_robin
  }
}
EOF
  spawn caddy /dev/null env GOMAXPROCS=1 XDG_DATA_HOME="$TMP/caddy" XDG_CONFIG_HOME="$TMP/caddy" HOME="$TMP/caddy" \
    "${PIN_PROXY[@]}" "$CADDY" run --config "$TMP/Caddyfile" --adapter caddyfile
  wait_ready caddy "$CADDY_PORT"
}

# --- proxy: Fairway with 10,000 hosts: the bench app plus 9,999 apps of one host each ---
# One process (`--workers 1`), or FAIRWAY_10K_WORKERS data-plane workers (bench/memory.sh).
start_fairway_10k() {
  mkdir -p "$TMP/fairway-10k"
  {
    cat <<EOF
listen:
  http: 127.0.0.1:$FAIRWAY_10K_PORT
  admin: 127.0.0.1:$FAIRWAY_10K_ADMIN_PORT
log:
  level: info
  access: true
apps:
  bench:
    domains: [$HOST_HEADER]
    versions:
      v1: { weight: 90, endpoints: ["127.0.0.1:$ORIGIN_A_PORT"] }
      v2: { weight: 10, endpoints: ["127.0.0.1:$ORIGIN_B_PORT"] }
EOF
    awk -v a="$ORIGIN_A_PORT" 'BEGIN { for (i = 1; i < 10000; i++) printf "  app-%d:\n    domains: [app-%d.bench.test]\n    versions:\n      v1: { weight: 1, endpoints: [\"127.0.0.1:%s\"] }\n", i, i, a }'
  } >"$TMP/fairway-10k/fairway.yaml"
  local node_flags=()
  [ -z "${BENCH_NODE_FLAGS:-}" ] || read -r -a node_flags <<<"$BENCH_NODE_FLAGS"
  spawn fairway-10k /dev/null "${PIN_PROXY[@]}" node "${node_flags[@]}" "$ROOT/dist/cli.js" serve --workers "${FAIRWAY_10K_WORKERS:-1}" --config "$TMP/fairway-10k/fairway.yaml"
  # Parsing 10,000 apps takes seconds, more on a busy machine.
  wait_ready fairway-10k "$FAIRWAY_10K_PORT" 60
}

port_of() {
  case "$1" in
    direct) echo "$ORIGIN_A_PORT" ;;
    nginx) echo "$NGINX_PORT" ;;
    fairway) echo "$FAIRWAY_PORT" ;;
    fairway-nolog) echo "$FAIRWAY_NOLOG_PORT" ;;
    fairway-b) echo "$FAIRWAY_B_PORT" ;;
    http-proxy-3) echo "$HP3_PORT" ;;
    undici-min) echo "$UNDICI_MIN_PORT" ;;
    undici-stream) echo "$UNDICI_STREAM_PORT" ;;
    node-http) echo "$NODE_HTTP_PORT" ;;
    haproxy) echo "$HAPROXY_PORT" ;;
    caddy) echo "$CADDY_PORT" ;;
    fairway-10k) echo "$FAIRWAY_10K_PORT" ;;
  esac
}

# CPU time (user + system, in clock ticks) of a process and its children (nginx workers).
cpu_ticks() {
  local pid=$1 total=0 p stat
  for p in "$pid" $(pgrep -P "$pid" 2>/dev/null || true); do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    # Fields after the ")" that ends the command name: utime and stime are the 12th and 13th.
    total=$((total + $(awk '{print $12 + $13}' <<<"${stat##*) }")))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# "busy total" jiffies of a /proc/stat CPU line ("cpu" = all CPUs, "cpu0", ...); busy is
# everything but idle and iowait.
cpu_jiffies() {
  awk -v cpu="$1" '$1 == cpu { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat
}
# Busy percentage between two cpu_jiffies readings.
busy_between() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[2] - x[2]; printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }'
}

# CPU time (ticks: utime+stime+cutime+cstime) of every process on the machine except
# kernel threads, this script and what it started (and their children). Its growth during
# a measurement is load from elsewhere (another build or test run) that disturbs it.
foreign_ticks() {
  # A process can exit between the glob and cat's read: cat then fails, and with pipefail
  # (and set -e in the caller's assignment) that would end the whole bench, silently.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v ex=" $$ ${PIDS[*]} " '
    {
      pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
      ppid = f[2]
      if (pid == 2 || ppid == 2) next
      if (index(ex, " " pid " ") || index(ex, " " ppid " ")) next
      total += f[12] + f[13] + f[14] + f[15]
    }
    END { print total + 0 }'
}

# Warns when the machine is busy before the start: figures are only meaningful on an
# otherwise idle machine.
check_idle() {
  local a
  a=$(cpu_jiffies cpu)
  sleep 1
  BUSY_BEFORE=$(busy_between "$a" "$(cpu_jiffies cpu)")
  if [ "$BUSY_BEFORE" -gt 10 ]; then
    log "WARNING: the machine is ${BUSY_BEFORE}% busy before the bench starts (other processes:"
    ps -eo pid,pcpu,comm --sort=-pcpu | sed -n '2,4p' | sed 's/^/    /' >&2
    log "  ); results will be low and noisy. Compare only within this run."
  fi
}

start_proxies() {
  local p
  for p in $PROXIES; do
    case "$p" in
      direct) MEASURED+=(direct) ;;
      nginx) if start_nginx_proxy; then MEASURED+=(nginx); elif [ -n "$NGINX" ]; then SKIPPED+=("nginx: did not start (see above)"); fi ;;
      fairway)
        if start_fairway fairway "$FAIRWAY_PORT" "$FAIRWAY_ADMIN_PORT" true; then MEASURED+=(fairway)
        else SKIPPED+=("fairway: did not start (see above)"); fi ;;
      fairway-nolog)
        if start_fairway fairway-nolog "$FAIRWAY_NOLOG_PORT" "$FAIRWAY_NOLOG_ADMIN_PORT" false; then MEASURED+=(fairway-nolog)
        else SKIPPED+=("fairway-nolog: did not start (see above)"); fi ;;
      fairway-b)
        if start_fairway fairway-b "$FAIRWAY_B_PORT" "$FAIRWAY_B_ADMIN_PORT" true "${BENCH_B_NODE_FLAGS:-}" "${BENCH_B_DIST:-$ROOT/dist}"; then MEASURED+=(fairway-b)
        else SKIPPED+=("fairway-b: did not start (see above)"); fi ;;
      http-proxy-3) if start_http_proxy_3; then MEASURED+=(http-proxy-3); else SKIPPED+=("http-proxy-3: did not start (see above)"); fi ;;
      undici-min) if start_undici_min; then MEASURED+=(undici-min); else SKIPPED+=("undici-min: did not start (see above)"); fi ;;
      undici-stream) if start_undici_stream; then MEASURED+=(undici-stream); else SKIPPED+=("undici-stream: did not start (see above)"); fi ;;
      node-http) if start_node_http; then MEASURED+=(node-http); else SKIPPED+=("node-http: did not start (see above)"); fi ;;
      haproxy) if start_haproxy; then MEASURED+=(haproxy); elif [ -n "$HAPROXY" ]; then SKIPPED+=("haproxy: did not start (see above)"); fi ;;
      caddy) if start_caddy; then MEASURED+=(caddy); elif [ -n "$CADDY" ]; then SKIPPED+=("caddy: did not start (see above)"); fi ;;
      fairway-10k) if start_fairway_10k; then MEASURED+=(fairway-10k); else SKIPPED+=("fairway-10k: did not start (see above)"); fi ;;
    esac
  done
  [ "${#MEASURED[@]}" -gt 0 ] || die "nothing to measure"
  log "measuring: ${MEASURED[*]}"
}

# Runs wrk (the command given) with its output in OUT. In the background and waited for,
# so that a signal to this script is handled at once, not when wrk ends.
WRK_PID=""
run_wrk() {
  local out=$1 status=0
  shift
  "$@" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || status=$?
  WRK_PID=""
  return "$status"
}

# Says which started process is gone (called when a measurement fails).
check_alive() {
  local name pidvar
  for name in origin nginx haproxy caddy fairway fairway-10k fairway-nolog fairway-b http-proxy-3 undici-min undici-stream node-http; do
    pidvar="PID_${name//-/_}"
    [ -n "${!pidvar:-}" ] || continue
    if ! kill -0 "${!pidvar}" 2>/dev/null; then
      wait "${!pidvar}" 2>/dev/null && log "$name (pid ${!pidvar}) has exited" || log "$name (pid ${!pidvar}) has exited with status $?"
    fi
  done
}

# --- one measurement: warm-up, then wrk --latency; raw output kept, parsed line appended ---
measure() {
  local name=$1 rep=$2 port out
  port=$(port_of "$name")
  out="$RESULTS/wrk-$name-rep$rep.txt"
  local wrk=("${PIN_LOAD[@]}" wrk "-t$THREADS" "-c$CONNECTIONS" -H "Host: $HOST_HEADER")
  if [ "$WARMUP" -gt 0 ]; then
    run_wrk "$TMP/warmup.txt" "${wrk[@]}" "-d${WARMUP}s" "http://127.0.0.1:$port$BENCH_PATH" ||
      { log "warm-up of $name failed: $(tr '\n' ' ' <"$TMP/warmup.txt")"; check_alive; die "warm-up of $name failed"; }
  fi
  # CPU time the proxy process (with its children) spends during the measurement.
  local pidvar="PID_${name//-/_}" t0=0 t1=0
  [ -n "${!pidvar:-}" ] && t0=$(cpu_ticks "${!pidvar}")
  local proxy_j0 load_j0 proxy_j1 load_j1
  proxy_j0=$(cpu_jiffies "cpu$PROXY_CPU")
  load_j0=$(cpu_jiffies "cpu$LOAD_CPU")
  local foreign0 foreign1
  foreign0=$(foreign_ticks)
  if ! run_wrk "$out" "${wrk[@]}" "-d${DURATION}s" --latency "http://127.0.0.1:$port$BENCH_PATH"; then
    log "wrk failed against $name: $(tr '\n' ' ' <"$out")"
    check_alive
    die "measurement of $name failed (logs: ${LOGS#"$ROOT"/}/)"
  fi
  [ -n "${!pidvar:-}" ] && t1=$(cpu_ticks "${!pidvar}")
  foreign1=$(foreign_ticks)
  proxy_j1=$(cpu_jiffies "cpu$PROXY_CPU")
  load_j1=$(cpu_jiffies "cpu$LOAD_CPU")
  local cpu_seconds
  cpu_seconds=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')
  [ -n "${!pidvar:-}" ] || cpu_seconds=-1   # direct: no proxy process
  node "$BENCH_DIR/lib/wrk.mjs" parse "$out" "$name" "$rep" "$cpu_seconds" \
    "$(busy_between "$proxy_j0" "$proxy_j1")" "$(busy_between "$load_j0" "$load_j1")" \
    "$(awk -v d=$((foreign1 - foreign0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')" >>"$RESULTS/raw.jsonl"
  log "rep $rep/$REPS $(printf '%-12s' "$name") $(grep -E '^Requests/sec' "$out" | tr -s ' ') p99 $(grep -E '^ +99%' "$out" | awk '{print $2}')"
}

# --- latency at an equal load (BENCH_RATE): every proxy of RATE_PROXIES at one fixed rate ---
# The wrk reps above are closed loops, where each proxy sets its own rate and so its own
# queueing (bench/lib/rate-latency.mjs); this runs h2load --rps at one rate for all of them.
measure_rates() {
  [ "$RATE" != 0 ] || return 0
  local rate=$RATE proxies=() p rep
  if [ "$rate" = auto ]; then
    rate=$(node -e '
      const rows = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse).filter((r) => r.proxy === "fairway");
      const s = rows.map((r) => r.rps).sort((a, b) => a - b);
      console.log(s.length ? Math.floor(s[s.length >> 1] / 2) : 0);' "$RESULTS/raw.jsonl")
    [ "$rate" -gt 0 ] || { log "latency at an equal load: no Fairway rate to take half of (BENCH_RATE=auto needs fairway in BENCH_PROXIES)"; return 0; }
  fi
  local per_connection=$((rate / CONNECTIONS > 0 ? rate / CONNECTIONS : 1))
  rate=$((per_connection * CONNECTIONS))
  for p in $RATE_PROXIES; do [[ " ${MEASURED[*]} " == *" $p "* ]] && proxies+=("$p"); done
  [ "${#proxies[@]}" -gt 0 ] || return 0
  log "latency at an equal load: ${proxies[*]} at $rate req/s ($CONNECTIONS connections x $per_connection/s, h2load --rps)"
  for rep in $(seq 1 "$REPS"); do
    for p in "${proxies[@]}"; do
      local port out="$RESULTS/h2load-$p-rep$rep"
      port=$(port_of "$p")
      if ! run_wrk "$out.txt" timeout $((DURATION + WARMUP + 30)) "${PIN_LOAD[@]}" h2load --h1 -c "$CONNECTIONS" --rps="$per_connection" \
        -D "$DURATION" --warm-up-time="$((WARMUP > 0 ? WARMUP : 1))" --log-file="$out.log" -H ":authority: $HOST_HEADER" "http://127.0.0.1:$port$BENCH_PATH"; then
        log "h2load failed against $p: $(tail -n 3 "$out.txt" | tr '\n' ' ')"
        check_alive
        continue
      fi
      node "$BENCH_DIR/lib/rate-latency.mjs" parse "$out.log" "$out.txt" "$p" "$rep" "$rate" >>"$RESULTS/rate.jsonl" || log "no latency read from $out.log"
      rm -f "$out.log" # one line per request: the JSON line keeps what the report needs
    done
  done
}

write_meta() {
  export BENCH_META_DATE BENCH_META_COMMAND BENCH_META_NPROC BENCH_META_NODE BENCH_META_NGINX BENCH_META_HAPROXY BENCH_META_CADDY BENCH_META_WRK \
    BENCH_META_KERNEL BENCH_META_CPU BENCH_META_SETTINGS BENCH_META_ORIGIN BENCH_META_SKIPPED BENCH_META_PINNING BENCH_META_BUSY_BEFORE
  BENCH_META_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  BENCH_META_COMMAND="npm run bench"
  BENCH_META_NPROC=$(nproc)
  BENCH_META_NODE=$(node -v)
  BENCH_META_NGINX=$([ -n "$NGINX" ] && "$NGINX" -v 2>&1 | sed 's/^nginx version: //' || echo "not installed")
  BENCH_META_HAPROXY=$([ -n "${HAPROXY:-}" ] && { "$HAPROXY" -v 2>&1 || true; } | awk 'NR == 1 {print $3}' || echo "not installed")
  BENCH_META_CADDY=$([ -n "${CADDY:-}" ] && { "$CADDY" version 2>&1 || true; } | awk 'NR == 1 {print $1}' || echo "not installed")
  BENCH_META_WRK=$( (wrk -v 2>&1 || true) | head -n 1 | awk '{print $1, $2}')
  BENCH_META_KERNEL=$(uname -r)
  BENCH_META_CPU=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown)
  BENCH_META_SETTINGS="path=$BENCH_PATH duration=${DURATION}s warmup=${WARMUP}s reps=$REPS connections=$CONNECTIONS threads=$THREADS nginx_access_log=$NGINX_ACCESS_LOG profile=$PROFILE"
  BENCH_META_ORIGIN=$ORIGIN_KIND
  BENCH_META_BUSY_BEFORE="${BUSY_BEFORE}%"
  BENCH_META_SKIPPED=$(IFS=';'; echo "${SKIPPED[*]:-}")
  BENCH_META_PINNING=$([ "${#PIN_PROXY[@]}" -gt 0 ] && echo "proxy CPU $PROXY_CPU, origin+wrk CPU $LOAD_CPU" || echo none)
}

# --- after the reps: Fairway's weighted split, profile, the table ---
# Logs the weighted split a Fairway served (from its admin /metrics) and, with
# BENCH_PROFILE=1, stops it so its CPU profile is written and prints the top TOP functions.
fairway_split_and_profile() {
  local name=$1 admin=$2 top=$3 split pidvar prof
  split=$(node "$BENCH_DIR/lib/probe.mjs" split "http://127.0.0.1:$admin/metrics" || echo unavailable)
  log "$name weighted split (admin /metrics): $split"
  pidvar="PID_${name//-/_}"
  [ "$PROFILE" = 1 ] && [ -n "${!pidvar:-}" ] || return 0
  # The profile is written when Fairway exits: stop it now, gracefully.
  kill -TERM "${!pidvar}" 2>/dev/null || true
  wait "${!pidvar}" 2>/dev/null || true
  prof=$(ls -t "$RESULTS/profile-$name"/*.cpuprofile 2>/dev/null | head -n 1 || true)
  if [ -n "$prof" ]; then
    # The request count (from the split line) turns shares into µs per request.
    node "$BENCH_DIR/lib/profile-top.mjs" "$prof" "$top" "$(sed -n 's/.*(\([0-9]*\) requests).*/\1/p' <<<"$split")" |
      tee "$RESULTS/profile-top-$name.txt" >&2
  else
    log "no CPU profile was written for $name"
  fi
}

report() {
  local name admin
  for name in fairway fairway-nolog fairway-b fairway-10k; do
    [[ " ${MEASURED[*]} " == *" $name "* ]] || continue
    case "$name" in
      fairway) admin=$FAIRWAY_ADMIN_PORT ;;
      fairway-nolog) admin=$FAIRWAY_NOLOG_ADMIN_PORT ;;
      fairway-b) admin=$FAIRWAY_B_ADMIN_PORT ;;
      fairway-10k) admin=$FAIRWAY_10K_ADMIN_PORT ;;
    esac
    fairway_split_and_profile "$name" "$admin" 25
  done
  write_meta
  echo
  echo "Fairway bench $BENCH_META_DATE: $BENCH_META_SETTINGS; nproc $BENCH_META_NPROC; pinning: $BENCH_META_PINNING"
  echo "node $BENCH_META_NODE, nginx $BENCH_META_NGINX, haproxy $BENCH_META_HAPROXY, caddy $BENCH_META_CADDY, wrk $BENCH_META_WRK, origin: $ORIGIN_KIND; machine busy before start: $BENCH_META_BUSY_BEFORE"
  local s
  for s in "${SKIPPED[@]}"; do echo "SKIPPED $s"; done
  echo
  # The summarizer exits 3 on a failed target only with BENCH_STRICT=1 (pipefail keeps its status).
  local rc=0
  node "$BENCH_DIR/lib/wrk.mjs" summarize "$RESULTS/raw.jsonl" "$RESULTS/summary.json" | tee "$RESULTS/table.txt" || rc=$?
  if [ -s "$RESULTS/rate.jsonl" ]; then
    echo
    node "$BENCH_DIR/lib/rate-latency.mjs" summarize "$RESULTS/rate.jsonl" | tee -a "$RESULTS/table.txt"
  fi
  echo
  echo "raw results: ${RESULTS#"$ROOT"/}/ (wrk outputs, raw.jsonl, summary.json, table.txt)"
  ln -sfn "$STAMP" "$BENCH_DIR/results/latest"
  return "$rc"
}

main() {
  check_settings
  prepare_bench check_ports
  # Start everything once; the processes stay up through all reps.
  start_origin
  start_proxies
  local rep p
  for rep in $(seq 1 "$REPS"); do
    for p in "${MEASURED[@]}"; do measure "$p" "$rep"; done
  done
  measure_rates
  report
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
