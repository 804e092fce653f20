#!/usr/bin/env bash
# Fairway's HTTPS benchmark (`BENCH_MODE=tls npm run bench`, or `bash bench/tls.sh`).
# See bench/README.md, "TLS benchmark".
#
# Loopback only. Makes a throwaway ECDSA P-256 certificate for bench.example.test with
# openssl (in the temp dir), starts the plain bench's origin, then the HTTPS servers under
# test, all with that certificate, each proxying to the origin over keep-alive connections:
#   nginx       1 worker, TLS 1.2/1.3, ssl_session_cache shared:SSL:10m, session tickets on,
#               Fairway's cipher/curve profile, upstream keepalive 64 (weights 9:1)
#   fairway     Fairway, one process, bench/fairway-bench.yaml + listen.https + tls.certificates,
#               access log on (stdout to /dev/null)
#   fairway-nolog  (optional) the same Fairway with the access log off
#   undici-min  (optional) node:https + undici Pool.dispatch, no SNI/ALPN callbacks, no logic
# and measures three scenarios, each server interleaved within every rep:
#   keepalive   HTTPS keep-alive requests/s: wrk -t1 -c64 --latency over https
#   resumed     a new TLS connection per request with session resumption: the same wrk with
#               `Connection: close` (wrk resumes sessions on reconnect); each server's own count
#               of resumed handshakes is reported (Fairway: /metrics; nginx: $ssl_session_reused)
#   full        full handshakes, no resumption: bench/lib/tls-full-client.c (C, OpenSSL, epoll;
#               built here with cc) or its Node fallback, one GET per new connection
#   reuse       (optional, no target) the same client offering its first session on every
#               connection: every handshake resumes, whether or not the server renews tickets
# The server under test runs on CPU 0; origin and load generator on CPU 1. Prints a table of
# medians with ratios to nginx (rate and server CPU per request/connection/handshake), the
# resumption counts, PASS/FAIL lines for the targets ("client-bound" when the load CPU, not
# the server, set the rate: then the target is judged on CPU per unit); writes every raw
# number to bench/results/tls-<UTC time>/.
#
# Tunables (environment), besides the plain bench's BENCH_DURATION, BENCH_WARMUP, BENCH_REPS,
# BENCH_CONNECTIONS, BENCH_THREADS, BENCH_PORT_BASE, BENCH_PROXY_CPU, BENCH_LOAD_CPU,
# BENCH_NGINX_ACCESS_LOG, BENCH_PROFILE, BENCH_STRICT, BENCH_NO_INSTALL, BENCH_NGINX:
#   BENCH_TLS_SCENARIOS="keepalive resumed full"   which scenarios, in this order; also reuse
#   BENCH_TLS_SERVERS="nginx fairway"              which servers; also fairway-nolog (access log
#                          off) and undici-min
#   BENCH_TLS_CLIENT=auto  full-handshake client: c (build bench/lib/tls-full-client.c; needs
#                          cc and OpenSSL headers, apt-get installs gcc libssl-dev as root),
#                          node (bench/lib/tls-full-client.mjs), auto (c, else node)
#   BENCH_TLS_FULL_CONNECTIONS=$BENCH_CONNECTIONS   handshakes in flight in the full scenario
#   BENCH_TLS_RETRIES=2    measure again when processes the bench did not start used > 5% of a
#                          CPU meanwhile (after waiting up to BENCH_TLS_QUIET_WAIT=120 s for
#                          quiet); 0: never (the report then only WARNs, as the plain bench does)
# Ports: base, base+1 (origin), base+10/+11/+14 (Fairway http/admin/https), base+12/+13/+15
# (fairway-nolog), base+21 (nginx https), base+41 (undici-min https).
set -euo pipefail

TLS_BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The plain bench's settings and functions (origin, nginx boilerplate, CPU accounting,
# process bookkeeping and cleanup on exit); its main does not run when sourced.
# shellcheck source=run.sh
source "$TLS_BENCH_DIR/run.sh"

TLS_SCENARIOS=${BENCH_TLS_SCENARIOS:-"keepalive resumed full"}
TLS_SERVERS=${BENCH_TLS_SERVERS:-"nginx fairway"}
TLS_CLIENT=${BENCH_TLS_CLIENT:-auto}
FULL_CONNECTIONS=${BENCH_TLS_FULL_CONNECTIONS:-$CONNECTIONS}
RETRIES=${BENCH_TLS_RETRIES:-2}
QUIET_WAIT=${BENCH_TLS_QUIET_WAIT:-120}
FAIRWAY_HTTPS_PORT=$((PORT_BASE + 14))
FAIRWAY_NOLOG_HTTPS_PORT=$((PORT_BASE + 15))
NGINX_TLS_PORT=$((PORT_BASE + 21))
UNDICI_TLS_PORT=$((PORT_BASE + 41))

RESULTS="$BENCH_DIR/results/tls-$STAMP"
LOGS="$RESULTS/logs"
SESSION_LOG="$LOGS/nginx-tls-sessions.log"   # nginx: "<tag> <$ssl_session_reused>" per tagged request
CERT_DIR="$TMP/tls"
CLIENT_CMD=()
CLIENT_KIND=""
TLS_MEASURED=()

tls_check_settings() {
  check_settings
  [[ "$FULL_CONNECTIONS" =~ ^[0-9]+$ ]] && [ "$FULL_CONNECTIONS" -ge 1 ] || die "BENCH_TLS_FULL_CONNECTIONS must be a whole number >= 1"
  [[ "$RETRIES" =~ ^[0-9]+$ ]] && [[ "$QUIET_WAIT" =~ ^[0-9]+$ ]] || die "BENCH_TLS_RETRIES and BENCH_TLS_QUIET_WAIT must be whole numbers"
  local s
  for s in $TLS_SCENARIOS; do
    case "$s" in keepalive | resumed | full | reuse) ;; *) die "unknown scenario '$s' in BENCH_TLS_SCENARIOS (keepalive resumed full reuse)" ;; esac
  done
  for s in $TLS_SERVERS; do
    case "$s" in nginx | fairway | fairway-nolog | undici-min) ;; *) die "unknown server '$s' in BENCH_TLS_SERVERS (nginx fairway fairway-nolog undici-min)" ;; esac
  done
  case "$TLS_CLIENT" in auto | c | node) ;; *) die "BENCH_TLS_CLIENT must be auto, c or node" ;; esac
  [ -n "$TLS_SCENARIOS" ] && [ -n "$TLS_SERVERS" ] || die "nothing to measure"
}

tls_check_ports() {
  local port
  for port in "$ORIGIN_A_PORT" "$ORIGIN_B_PORT" "$FAIRWAY_PORT" "$FAIRWAY_ADMIN_PORT" "$FAIRWAY_HTTPS_PORT" "$FAIRWAY_NOLOG_PORT" \
    "$FAIRWAY_NOLOG_ADMIN_PORT" "$FAIRWAY_NOLOG_HTTPS_PORT" "$NGINX_TLS_PORT" "$UNDICI_TLS_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is already in use (another bench running?); set BENCH_PORT_BASE"
  done
}

# --- the certificate: ECDSA P-256, self-signed, for bench.example.test ---
make_certificate() {
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  mkdir -p "$CERT_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$CERT_DIR/key.pem" -out "$CERT_DIR/cert.pem" -subj "/CN=$HOST_HEADER" \
    -addext "subjectAltName=DNS:$HOST_HEADER" >"$LOGS/openssl-req.log" 2>&1 ||
    die "openssl could not make the certificate: $(tail -n 3 "$LOGS/openssl-req.log" | tr '\n' ' ')"
  log "certificate: ECDSA P-256, CN/SAN $HOST_HEADER ($(openssl x509 -in "$CERT_DIR/cert.pem" -noout -fingerprint -sha256 | cut -c1-40)...)"
}

# --- the full-handshake client: the C one when it builds, else the Node one ---
build_client() {
  [[ " $TLS_SCENARIOS " == *" full "* ]] || [[ " $TLS_SCENARIOS " == *" reuse "* ]] || return 0
  if [ "$TLS_CLIENT" != node ]; then
    local try
    for try in 1 2; do
      if cc -O2 -o "$TMP/tls-full-client" "$BENCH_DIR/lib/tls-full-client.c" -lssl -lcrypto >"$LOGS/tls-full-client.build.log" 2>&1; then
        CLIENT_CMD=("$TMP/tls-full-client")
        CLIENT_KIND=c
        break
      fi
      [ "$try" = 1 ] && [ "$(id -u)" = 0 ] && [ "${BENCH_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null || break
      log "cannot build bench/lib/tls-full-client.c: installing gcc libssl-dev with apt-get"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libssl-dev >>"$LOGS/apt.log" 2>&1 || true
    done
    if [ -z "$CLIENT_KIND" ]; then
      [ "$TLS_CLIENT" = c ] && die "bench/lib/tls-full-client.c did not build: $(tail -n 3 "$LOGS/tls-full-client.build.log" | tr '\n' ' ')"
      log "WARNING: bench/lib/tls-full-client.c did not build (see logs/tls-full-client.build.log): using the Node client, which costs more CPU per handshake, so the full scenario will be client-bound sooner"
    fi
  fi
  if [ -z "$CLIENT_KIND" ]; then
    CLIENT_CMD=(node "$BENCH_DIR/lib/tls-full-client.mjs")
    CLIENT_KIND=node
  fi
  log "full-handshake client: $CLIENT_KIND (${CLIENT_CMD[*]##*/})"
}

# The nginx TLS server on PORT: the bench certificate, TLS 1.2/1.3, a shared session cache
# and tickets, and Fairway's TLS profile (src/tls/certificate-store.ts TLS_PROFILE), so both
# negotiate the same; it proxies like the plain nginx peer.
nginx_tls_server() {
  local port=$1
  cat <<EOF
  server {
    listen 127.0.0.1:$port ssl;
    server_name $HOST_HEADER;
    ssl_certificate $CERT_DIR/cert.pem;
    ssl_certificate_key $CERT_DIR/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_prefer_server_ciphers on;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
$(nginx_proxy_location)
  }
EOF
}

# --- servers ---
start_nginx_tls() {
  [ -n "$NGINX" ] || return 1
  local access_log=""
  # "access_log off" would also turn off the session log below, so "off" just leaves it out.
  [ "$NGINX_ACCESS_LOG" = on ] && access_log="access_log /dev/null combined buffer=64k flush=1s;"
  {
    nginx_common nginx-tls
    cat <<EOF
http {
  $access_log
  # Requests tagged by the bench (X-Bench-Tag: scenario-rep.attempt) log whether their TLS session
  # was resumed: the nginx side of the "resumed" column.
  log_format benchtls '\$http_x_bench_tag \$ssl_session_reused';
  map \$http_x_bench_tag \$bench_tagged { "" 0; default 1; }
  access_log $SESSION_LOG benchtls buffer=32k flush=1s if=\$bench_tagged;
$(nginx_http_common nginx-tls)
$(nginx_upstream)
$(nginx_tls_server "$NGINX_TLS_PORT")
}
EOF
  } >"$TMP/nginx-tls.conf"
  spawn nginx-tls /dev/null "${PIN_PROXY[@]}" "$NGINX" -p "$TMP/nginx-tls" -c "$TMP/nginx-tls.conf" -e "$LOGS/nginx-tls.error.log"
  wait_tls_ready nginx-tls "$NGINX_TLS_PORT"
}

# Fairway: the plain bench's config + an HTTPS listener and the certificate (relative
# paths, beside the copied config). fairway-nolog: the same with the access log off.
# Usage: start_fairway_tls NAME HTTP_PORT ADMIN_PORT HTTPS_PORT ACCESS_LOG(true|false)
start_fairway_tls() {
  local name=$1 port=$2 admin=$3 https=$4 access=$5
  local dir="$TMP/$name-tls"
  mkdir -p "$dir"
  cp "$CERT_DIR/cert.pem" "$CERT_DIR/key.pem" "$dir/"
  sed -e "s/127\.0\.0\.1:18080/127.0.0.1:$ORIGIN_A_PORT/; s/127\.0\.0\.1:18081/127.0.0.1:$ORIGIN_B_PORT/" \
    -e "s/127\.0\.0\.1:18090/127.0.0.1:$port/; s/127\.0\.0\.1:18091/127.0.0.1:$admin/" \
    -e "s/^  access: .*/  access: $access/" \
    -e "s/^\(  admin: .*\)$/\1\n  https: 127.0.0.1:$https/" \
    "$BENCH_DIR/fairway-bench.yaml" >"$dir/fairway.yaml"
  printf 'tls:\n  certificates: [{ cert: cert.pem, key: key.pem }]\n' >>"$dir/fairway.yaml"
  grep -q "https: 127.0.0.1:$https" "$dir/fairway.yaml" || die "could not add listen.https to the Fairway config"
  local node_flags=()
  if [ "$PROFILE" = 1 ]; then
    mkdir -p "$RESULTS/profile-$name"
    node_flags=(--cpu-prof --cpu-prof-dir="$RESULTS/profile-$name")
  fi
  spawn "$name" /dev/null "${PIN_PROXY[@]}" node "${node_flags[@]}" "$ROOT/dist/cli.js" serve --workers 1 --config "$dir/fairway.yaml"
  wait_tls_ready "$name" "$https"
}

start_undici_tls() {
  spawn undici-min /dev/null "${PIN_PROXY[@]}" node "$BENCH_DIR/peers/undici-dispatch-proxy.mjs" "$UNDICI_TLS_PORT" \
    "http://127.0.0.1:$ORIGIN_A_PORT" "$CERT_DIR/cert.pem" "$CERT_DIR/key.pem"
  wait_tls_ready undici-min "$UNDICI_TLS_PORT"
}

wait_tls_ready() {
  local name=$1 port=$2
  if ! node "$BENCH_DIR/lib/probe.mjs" wait "https://127.0.0.1:$port/" "$HOST_HEADER" 15 2>"$TMP/$name.probe"; then
    log "$name did not answer correctly on https://127.0.0.1:$port: $(cat "$TMP/$name.probe")"
    [ -s "$LOGS/$name.err" ] && log "$name stderr: $(tail -n 5 "$LOGS/$name.err" | tr '\n' ' ')"
    return 1
  fi
}

tls_port_of() {
  case "$1" in
    nginx) echo "$NGINX_TLS_PORT" ;;
    fairway) echo "$FAIRWAY_HTTPS_PORT" ;;
    fairway-nolog) echo "$FAIRWAY_NOLOG_HTTPS_PORT" ;;
    undici-min) echo "$UNDICI_TLS_PORT" ;;
  esac
}
tls_pid_of() {
  case "$1" in
    nginx) echo "${PID_nginx_tls:-}" ;;
    fairway) echo "${PID_fairway:-}" ;;
    fairway-nolog) echo "${PID_fairway_nolog:-}" ;;
    undici-min) echo "${PID_undici_min:-}" ;;
  esac
}

start_tls_servers() {
  local s
  for s in $TLS_SERVERS; do
    case "$s" in
      nginx) if start_nginx_tls; then TLS_MEASURED+=(nginx); elif [ -n "$NGINX" ]; then SKIPPED+=("nginx: did not start (see above)"); fi ;;
      fairway)
        if start_fairway_tls fairway "$FAIRWAY_PORT" "$FAIRWAY_ADMIN_PORT" "$FAIRWAY_HTTPS_PORT" true; then TLS_MEASURED+=(fairway)
        else SKIPPED+=("fairway: did not start (see above)"); fi ;;
      fairway-nolog)
        if start_fairway_tls fairway-nolog "$FAIRWAY_NOLOG_PORT" "$FAIRWAY_NOLOG_ADMIN_PORT" "$FAIRWAY_NOLOG_HTTPS_PORT" false; then TLS_MEASURED+=(fairway-nolog)
        else SKIPPED+=("fairway-nolog: did not start (see above)"); fi ;;
      undici-min) if start_undici_tls; then TLS_MEASURED+=(undici-min); else SKIPPED+=("undici-min: did not start (see above)"); fi ;;
    esac
  done
  [ "${#TLS_MEASURED[@]}" -gt 0 ] || die "no HTTPS server started"
  log "measuring: ${TLS_MEASURED[*]} over https; scenarios: $TLS_SCENARIOS"
  write_sni_lua
}

# wrk takes SNI from the URL's host: $TMP/sni.lua resolves bench.example.test to 127.0.0.1
# in its Lua (no /etc/hosts change), so every server sees SNI bench.example.test, as a
# browser sends.
write_sni_lua() {
  cat >"$TMP/sni.lua" <<'EOF'
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end
EOF
}

# Session handling as a browser sees it (single-use TLS 1.3 tickets): F/R per connection
# with the number of tickets the server sent on it.
# Usage: session_probe SERVER:HTTPS_PORT ...
session_probe() {
  local entry s line
  for entry in "$@"; do
    s=${entry%:*}
    line=$(node "$BENCH_DIR/lib/probe.mjs" tls-sessions 127.0.0.1 "${entry##*:}" "$HOST_HEADER" 6 2>&1 || true)
    SESSION_PROBES+=("$s: $line")
    log "session tickets, used once each (F=full, R=resumed, digit=tickets sent): $s: $line"
  done
}
SESSION_PROBES=()

# Usage: fairway_handshakes ADMIN_PORT -> "FULL RESUMED"
fairway_handshakes() {
  node "$BENCH_DIR/lib/probe.mjs" tls-handshakes "http://127.0.0.1:$1/metrics" 2>/dev/null || echo "- -"
}
fairway_admin_of() {
  case "$1" in
    fairway) echo "$FAIRWAY_ADMIN_PORT" ;;
    fairway-nolog) echo "$FAIRWAY_NOLOG_ADMIN_PORT" ;;
  esac
}

# Runs one load command for SCENARIO against SERVER: wrk (keepalive, resumed) or the
# full-handshake client (full; reuse: the same client offering one session every time).
# Usage: load SCENARIO SERVER SECONDS TAG OUT
load() {
  local scenario=$1 server=$2 seconds=$3 tag=$4 out=$5 port
  port=$(tls_port_of "$server")
  local wrk=("${PIN_LOAD[@]}" wrk "-t$THREADS" "-c$CONNECTIONS" "-d${seconds}s" --latency -s "$TMP/sni.lua" -H "Host: $HOST_HEADER")
  case "$scenario" in
    keepalive) run_wrk "$out" "${wrk[@]}" "https://$HOST_HEADER:$port/" ;;
    resumed) run_wrk "$out" "${wrk[@]}" -H "Connection: close" -H "X-Bench-Tag: $tag" "https://$HOST_HEADER:$port/" ;;
    full) run_wrk "$out" "${PIN_LOAD[@]}" "${CLIENT_CMD[@]}" 127.0.0.1 "$port" "$HOST_HEADER" "$HOST_HEADER" "$FULL_CONNECTIONS" "$seconds" "$tag" ;;
    reuse) TLS_CLIENT_REUSE=1 run_wrk "$out" "${PIN_LOAD[@]}" "${CLIENT_CMD[@]}" 127.0.0.1 "$port" "$HOST_HEADER" "$HOST_HEADER" "$FULL_CONNECTIONS" "$seconds" "$tag" ;;
  esac
}

check_tls_alive() {
  local name pidvar
  for name in origin nginx_tls fairway fairway_nolog undici_min; do
    pidvar="PID_$name"
    [ -n "${!pidvar:-}" ] || continue
    kill -0 "${!pidvar}" 2>/dev/null || log "${name//_/-} (pid ${!pidvar}) has exited"
  done
}

# Waits (up to QUIET_WAIT seconds) until processes the bench did not start use less than
# 5% of a CPU over 2 s.
wait_quiet() {
  local waited=0 f0 f1
  while [ "$waited" -lt "$QUIET_WAIT" ]; do
    f0=$(foreign_ticks)
    sleep 2
    f1=$(foreign_ticks)
    [ $((f1 - f0)) -le $((CLK_TCK / 10)) ] && return 0
    waited=$((waited + 2))
  done
  log "other processes are still busy after ${QUIET_WAIT}s; measuring anyway"
}

# --- one measurement, measured again (up to RETRIES times) when other processes used more
# than 5% of a CPU meanwhile (the disturbed attempts go to disturbed.jsonl) ---
measure_tls() {
  local scenario=$1 server=$2 rep=$3 attempt
  for attempt in $(seq 0 "$RETRIES"); do
    measure_tls_once "$scenario" "$server" "$rep" "$scenario-$rep.$attempt"
    if node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      process.exit(r.foreign_cpu_seconds != null && r.foreign_cpu_seconds > 0.05 * r.duration_s ? 1 : 0);' "$TMP/record.json"; then
      break
    fi
    if [ "$attempt" -lt "$RETRIES" ]; then
      cat "$TMP/record.json" >>"$RESULTS/disturbed.jsonl"
      log "  other processes used $(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1])).foreign_cpu_seconds' "$TMP/record.json") s of CPU during that measurement: waiting for quiet, then measuring it again ($((attempt + 1))/$RETRIES)"
      wait_quiet
    fi
  done
  cat "$TMP/record.json" >>"$RESULTS/raw.jsonl"
}

# --- one measurement: warm-up, then the load; raw output kept, parsed line in record.json ---
measure_tls_once() {
  local scenario=$1 server=$2 rep=$3 tag=$4
  local out="$RESULTS/$scenario-$server-rep$rep.txt"
  if [ "$WARMUP" -gt 0 ]; then
    load "$scenario" "$server" "$WARMUP" warmup "$TMP/warmup.txt" ||
      { log "warm-up of $scenario/$server failed: $(tail -c 600 "$TMP/warmup.txt" | tr '\n' ' ')"; check_tls_alive; die "warm-up of $scenario/$server failed"; }
  fi
  local pid hs0="- -" hs1="- -"
  pid=$(tls_pid_of "$server")
  local admin
  admin=$(fairway_admin_of "$server")
  [ -n "$admin" ] && hs0=$(fairway_handshakes "$admin")
  local t0 t1 proxy_j0 load_j0 proxy_j1 load_j1 foreign0 foreign1
  t0=$(cpu_ticks "$pid")
  proxy_j0=$(cpu_jiffies "cpu$PROXY_CPU")
  load_j0=$(cpu_jiffies "cpu$LOAD_CPU")
  foreign0=$(foreign_ticks)
  if ! load "$scenario" "$server" "$DURATION" "$tag" "$out"; then
    log "the load failed against $server ($scenario): $(tail -c 600 "$out" | tr '\n' ' ')"
    check_tls_alive
    die "measurement of $scenario/$server failed (logs: ${LOGS#"$ROOT"/}/)"
  fi
  t1=$(cpu_ticks "$pid")
  foreign1=$(foreign_ticks)
  proxy_j1=$(cpu_jiffies "cpu$PROXY_CPU")
  load_j1=$(cpu_jiffies "cpu$LOAD_CPU")
  [ -n "$admin" ] && hs1=$(fairway_handshakes "$admin")
  local hs_full=- hs_resumed=- a b c d
  read -r a b <<<"$hs0"
  read -r c d <<<"$hs1"
  if [[ "$a$b$c$d" =~ ^[0-9]+$ ]]; then hs_full=$((c - a)); hs_resumed=$((d - b)); fi
  local kind=record-wrk
  case "$scenario" in full | reuse) kind=record-client ;; esac
  node "$BENCH_DIR/lib/tls-report.mjs" "$kind" "$out" "$scenario" "$server" "$rep" \
    "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')" \
    "$(busy_between "$proxy_j0" "$proxy_j1")" "$(busy_between "$load_j0" "$load_j1")" \
    "$(awk -v d=$((foreign1 - foreign0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')" \
    "$hs_full" "$hs_resumed" "$tag" >"$TMP/record.json"
  local line
  line=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const hs = r.handshakes_full == null ? "" : ` handshakes ${r.handshakes_full} full/${r.handshakes_resumed} resumed`;
    console.log(`${Math.round(r.rate)}/s p99 ${r.p99_ms.toFixed(2)} ms, ${r.cpu_us_per_unit?.toFixed(0)} µs CPU/unit, busy ${r.proxy_cpu_busy}%/${r.load_cpu_busy}%${hs}${r.errors ? `, ${r.errors} errors` : ""}`);' <"$TMP/record.json")
  log "rep $rep/$REPS $(printf '%-9s %-10s' "$scenario" "$server") $line"
}

tls_write_meta() {
  export BENCH_META_DATE BENCH_META_COMMAND BENCH_META_NPROC BENCH_META_NODE BENCH_META_NGINX BENCH_META_WRK BENCH_META_OPENSSL \
    BENCH_META_NODE_OPENSSL BENCH_META_KERNEL BENCH_META_CPU BENCH_META_SETTINGS BENCH_META_ORIGIN BENCH_META_SKIPPED \
    BENCH_META_PINNING BENCH_META_BUSY_BEFORE BENCH_META_CLIENT BENCH_META_SESSION_PROBES
  BENCH_META_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  BENCH_META_COMMAND="$(env | awk '/^BENCH_[A-Z_]+=/ && !/^BENCH_(META_|MODE=)/' | sort | tr '\n' ' ')bash bench/tls.sh"
  BENCH_META_NPROC=$(nproc)
  BENCH_META_NODE=$(node -v)
  BENCH_META_NODE_OPENSSL=$(node -p process.versions.openssl)
  BENCH_META_NGINX=$([ -n "$NGINX" ] && "$NGINX" -v 2>&1 | sed 's/^nginx version: //' || echo "not installed")
  BENCH_META_WRK=$( (wrk -v 2>&1 || true) | head -n 1 | awk '{print $1, $2}')
  BENCH_META_OPENSSL=$(openssl version)
  BENCH_META_KERNEL=$(uname -r)
  BENCH_META_CPU=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown)
  BENCH_META_SETTINGS="duration=${DURATION}s warmup=${WARMUP}s reps=$REPS connections=$CONNECTIONS threads=$THREADS full_connections=$FULL_CONNECTIONS retries=$RETRIES nginx_access_log=$NGINX_ACCESS_LOG profile=$PROFILE"
  BENCH_META_ORIGIN=$ORIGIN_KIND
  BENCH_META_BUSY_BEFORE="${BUSY_BEFORE}%"
  BENCH_META_SKIPPED=$(IFS=';'; echo "${SKIPPED[*]:-}")
  BENCH_META_PINNING=$([ "${#PIN_PROXY[@]}" -gt 0 ] && echo "server CPU $PROXY_CPU, origin+load CPU $LOAD_CPU" || echo none)
  BENCH_META_CLIENT="wrk (keepalive, resumed); ${CLIENT_KIND:-none} full-handshake client (full)"
  BENCH_META_SESSION_PROBES=$(IFS=';'; echo "${SESSION_PROBES[*]:-}")
}

tls_report() {
  local name admin
  # nginx writes its buffered session log when it stops; stop it gracefully now.
  if [ -n "${PID_nginx_tls:-}" ]; then
    kill -QUIT "$PID_nginx_tls" 2>/dev/null || true
    wait "$PID_nginx_tls" 2>/dev/null || true
  fi
  for name in fairway fairway-nolog; do
    [[ " ${TLS_MEASURED[*]} " == *" $name "* ]] || continue
    admin=$(fairway_admin_of "$name")
    fairway_split_and_profile "$name" "$admin" 30
  done
  tls_write_meta
  echo
  echo "Fairway TLS bench $BENCH_META_DATE: $BENCH_META_SETTINGS; nproc $BENCH_META_NPROC; pinning: $BENCH_META_PINNING"
  echo "node $BENCH_META_NODE (OpenSSL $BENCH_META_NODE_OPENSSL), nginx $BENCH_META_NGINX, $BENCH_META_OPENSSL, wrk $BENCH_META_WRK;" \
    "load: $BENCH_META_CLIENT; origin: $ORIGIN_KIND; machine busy before start: $BENCH_META_BUSY_BEFORE"
  local s
  for s in "${SKIPPED[@]}"; do echo "SKIPPED $s"; done
  for s in "${SESSION_PROBES[@]}"; do echo "TICKETS $s   (6 connections, each ticket used once: F=full R=resumed, digit=tickets the server sent)"; done
  echo
  local rc=0
  node "$BENCH_DIR/lib/tls-report.mjs" summarize "$RESULTS/raw.jsonl" "$RESULTS/summary.json" "$SESSION_LOG" | tee "$RESULTS/table.txt" || rc=$?
  echo
  echo "raw results: ${RESULTS#"$ROOT"/}/ (wrk and client outputs, raw.jsonl, summary.json, table.txt)"
  ln -sfn "tls-$STAMP" "$BENCH_DIR/results/latest-tls"
  return "$rc"
}

tls_main() {
  tls_check_settings
  prepare_bench tls_check_ports
  make_certificate
  build_client
  start_origin
  start_tls_servers
  local s probes=()
  for s in "${TLS_MEASURED[@]}"; do probes+=("$s:$(tls_port_of "$s")"); done
  session_probe "${probes[@]}"
  local scenario rep s
  for scenario in $TLS_SCENARIOS; do
    for rep in $(seq 1 "$REPS"); do
      for s in "${TLS_MEASURED[@]}"; do measure_tls "$scenario" "$s" "$rep"; done
    done
  done
  tls_report
}

# bench/workers.sh sources this file for its functions: only a direct run runs main.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  tls_main "$@"
fi
