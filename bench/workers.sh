#!/usr/bin/env bash
# Fairway with 1 and 2 workers against nginx with 1 and 2 workers (`BENCH_MODE=workers npm
# run bench`, or `bash bench/workers.sh`). See bench/README.md, "Workers benchmark".
#
# Loopback only. The plain bench's origin, then four servers, each listening for plain HTTP
# and for HTTPS (the TLS bench's throwaway ECDSA P-256 certificate for bench.example.test)
# and proxying to the origin over keep-alive connections:
#   nginx-1w    nginx, worker_processes 1: run.sh's proxy server and tls.sh's TLS server
#   fairway-1w  `fairway serve --workers 1`: bench/fairway-bench.yaml + listen.https + the certificate
#   nginx-2w    the same nginx with worker_processes 2
#   fairway-2w  the same Fairway with --workers 2 (a primary and 2 data-plane workers)
# in three scenarios, the servers interleaved within every rep (rep 1 of each, then rep 2...):
#   http      plain HTTP keep-alive: wrk -t1 -c64 --latency (run.sh's load)
#   https     HTTPS keep-alive: the same over https (tls.sh's keepalive scenario)
#   resumed   a new TLS connection per request, session resumed: the same wrk with
#             `Connection: close` (tls.sh's resumed scenario); each server's own count of
#             resumed handshakes (Fairway: /metrics; nginx: $ssl_session_reused in a log)
# Pinning, on this 2-CPU machine: the 1-worker servers on CPU 0, origin and wrk on CPU 1
# (as run.sh); the 2-worker servers unpinned, so they share CPU 1 with origin and wrk:
# their figures, and the 2w ÷ 1w scaling, are a floor, not what 2 workers do on 2 free
# cores. Prints a table of medians with each server's ratio to nginx of the same worker
# count and its 2w ÷ 1w scaling, the CPU each side used and how the 2 workers shared it,
# the resumed share of handshakes and a check that sessions resume across Fairway's 2
# workers; writes every raw number to bench/results/workers-<UTC time>/.
#
# Tunables, besides the plain bench's BENCH_DURATION, BENCH_WARMUP, BENCH_REPS,
# BENCH_CONNECTIONS, BENCH_THREADS, BENCH_PROXY_CPU, BENCH_LOAD_CPU, BENCH_NGINX_ACCESS_LOG,
# BENCH_NODE_FLAGS, BENCH_STRICT, BENCH_NO_INSTALL, BENCH_NGINX:
#   BENCH_PORT_BASE=18300  ports (apart from the other benches'): base, base+1 (origin),
#                          base+10/+11/+12 (fairway-1w http/admin/https), base+13/+14/+15
#                          (fairway-2w), base+20/+21 (nginx-1w http/https), base+22/+23 (nginx-2w)
#   BENCH_WORKERS_SCENARIOS="http https resumed"   which scenarios, in this order
#   BENCH_WORKERS_SERVERS="nginx-1w fairway-1w nginx-2w fairway-2w"   which servers, in this order
#   BENCH_WORKERS_DIST=    the Fairway build to run (a dist/ directory), used as it is; by
#                          default dist/, rebuilt first when it is older than src/ (as run.sh)
set -euo pipefail

WORKERS_BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Ports of its own: run.sh derives its ports from BENCH_PORT_BASE when sourced.
BENCH_PORT_BASE=${BENCH_PORT_BASE:-18300}
# The TLS bench's functions (its certificate, readiness probe) and, through it, the plain
# bench's (origin, nginx boilerplate, CPU accounting, process bookkeeping and cleanup on
# exit); neither main runs when sourced.
# shellcheck source=tls.sh
source "$WORKERS_BENCH_DIR/tls.sh"

WB_SCENARIOS=${BENCH_WORKERS_SCENARIOS:-"http https resumed"}
WB_SERVERS=${BENCH_WORKERS_SERVERS:-"nginx-1w fairway-1w nginx-2w fairway-2w"}
WB_DIST=${BENCH_WORKERS_DIST:-}
REPORT="$BENCH_DIR/lib/workers-report.mjs"

RESULTS="$BENCH_DIR/results/workers-$STAMP"
LOGS="$RESULTS/logs"
CERT_DIR="$TMP/tls"
WB_MEASURED=()      # servers that started and answered correctly on both listeners
SESSION_PROBES=()   # "server: F2 R1 ..." (probe.mjs tls-sessions)
PIN=()              # set by pin_of

# Usage: wb_port SERVER http|https|admin
wb_port() {
  case "$1:$2" in
    fairway-1w:http) echo $((PORT_BASE + 10)) ;;
    fairway-1w:admin) echo $((PORT_BASE + 11)) ;;
    fairway-1w:https) echo $((PORT_BASE + 12)) ;;
    fairway-2w:http) echo $((PORT_BASE + 13)) ;;
    fairway-2w:admin) echo $((PORT_BASE + 14)) ;;
    fairway-2w:https) echo $((PORT_BASE + 15)) ;;
    nginx-1w:http) echo $((PORT_BASE + 20)) ;;
    nginx-1w:https) echo $((PORT_BASE + 21)) ;;
    nginx-2w:http) echo $((PORT_BASE + 22)) ;;
    nginx-2w:https) echo $((PORT_BASE + 23)) ;;
    *) die "no $2 port for $1" ;;
  esac
}
# The worker count in a server's name: nginx-2w -> 2.
workers_of() { local n=${1##*-}; echo "${n%w}"; }
# The CPUs a server runs on: the 1-worker servers on the proxy CPU (as run.sh), the
# 2-worker servers on every CPU, shared with the origin and wrk. Sets PIN.
pin_of() { if [ "$(workers_of "$1")" = 1 ]; then PIN=("${PIN_PROXY[@]}"); else PIN=(); fi; }
pid_of() { local var="PID_${1//-/_}"; echo "${!var:-}"; }

wb_check_settings() {
  check_settings
  local s
  for s in $WB_SCENARIOS; do
    case "$s" in http | https | resumed) ;; *) die "unknown scenario '$s' in BENCH_WORKERS_SCENARIOS (http https resumed)" ;; esac
  done
  for s in $WB_SERVERS; do
    case "$s" in nginx-1w | fairway-1w | nginx-2w | fairway-2w) ;;
      *) die "unknown server '$s' in BENCH_WORKERS_SERVERS (nginx-1w fairway-1w nginx-2w fairway-2w)" ;; esac
  done
  [ -n "$WB_SCENARIOS" ] && [ -n "$WB_SERVERS" ] || die "nothing to measure"
  [ -z "$WB_DIST" ] || [ -f "$WB_DIST/cli.js" ] || die "BENCH_WORKERS_DIST=$WB_DIST has no cli.js (give a built dist/ directory)"
}

wb_check_ports() {
  local port s kind
  for port in "$ORIGIN_A_PORT" "$ORIGIN_B_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is already in use (another bench running?); set BENCH_PORT_BASE"
  done
  for s in $WB_SERVERS; do
    for kind in http https admin; do
      [ "$kind" = admin ] && [[ "$s" != fairway-* ]] && continue
      port=$(wb_port "$s" "$kind")
      port_free "$port" || die "127.0.0.1:$port is already in use (another bench running?); set BENCH_PORT_BASE"
    done
  done
}

# --- nginx with N workers: run.sh's plain proxy server and tls.sh's TLS server in one
# process, both through run.sh's upstream (keepalive 64, weights 9:1). Requests tagged
# X-Bench-Tag log whether their session was resumed. ---
start_nginx_workers() {
  local name=$1 workers http https
  [ -n "$NGINX" ] || return 1
  workers=$(workers_of "$name")
  http=$(wb_port "$name" http)
  https=$(wb_port "$name" https)
  local access_log=""
  # "access_log off" would also turn off the session log, so "off" just leaves it out.
  [ "$NGINX_ACCESS_LOG" = on ] && access_log="access_log /dev/null combined buffer=64k flush=1s;"
  {
    nginx_common "$name" "$workers"
    cat <<EOF
http {
  $access_log
  log_format benchtls '\$http_x_bench_tag \$ssl_session_reused';
  map \$http_x_bench_tag \$bench_tagged { "" 0; default 1; }
  access_log $LOGS/$name.sessions.log benchtls buffer=32k flush=1s if=\$bench_tagged;
$(nginx_http_common "$name")
$(nginx_upstream)
  server {
    listen 127.0.0.1:$http;
$(nginx_proxy_location)
  }
$(nginx_tls_server "$https")
}
EOF
  } >"$TMP/$name.conf"
  pin_of "$name"
  spawn "$name" /dev/null "${PIN[@]}" "$NGINX" -p "$TMP/$name" -c "$TMP/$name.conf" -e "$LOGS/$name.error.log"
  wait_ready "$name" "$http" && wait_tls_ready "$name" "$https"
}

# --- Fairway with N workers: the plain bench's config + listen.https and the certificate
# (relative paths, beside the copied config; the weights state file lands there too). ---
start_fairway_workers() {
  local name=$1 workers http admin https dir="$TMP/$1"
  workers=$(workers_of "$name")
  http=$(wb_port "$name" http)
  admin=$(wb_port "$name" admin)
  https=$(wb_port "$name" https)
  mkdir -p "$dir"
  cp "$CERT_DIR/cert.pem" "$CERT_DIR/key.pem" "$dir/"
  sed -e "s/127\.0\.0\.1:18080/127.0.0.1:$ORIGIN_A_PORT/; s/127\.0\.0\.1:18081/127.0.0.1:$ORIGIN_B_PORT/" \
    -e "s/127\.0\.0\.1:18090/127.0.0.1:$http/; s/127\.0\.0\.1:18091/127.0.0.1:$admin/" \
    -e "s/^\(  admin: .*\)$/\1\n  https: 127.0.0.1:$https/" \
    "$BENCH_DIR/fairway-bench.yaml" >"$dir/fairway.yaml"
  printf 'tls:\n  certificates: [{ cert: cert.pem, key: key.pem }]\n' >>"$dir/fairway.yaml"
  grep -q "https: 127.0.0.1:$https" "$dir/fairway.yaml" || die "could not add listen.https to $name's config"
  local node_flags=()
  [ -z "${BENCH_NODE_FLAGS:-}" ] || read -r -a node_flags <<<"$BENCH_NODE_FLAGS"
  pin_of "$name"
  # stdout (the JSON logs, the workers' access log included) goes to /dev/null; stderr is kept.
  spawn "$name" /dev/null "${PIN[@]}" node "${node_flags[@]}" "$DIST/cli.js" serve --workers "$workers" --config "$dir/fairway.yaml"
  wait_ready "$name" "$http" && wait_tls_ready "$name" "$https"
}

# The processes a server runs under its first: nginx's workers, Fairway's data-plane workers.
children_of() { pgrep -P "$1" 2>/dev/null | tr '\n' ' ' || true; }

# Says where a server runs and refuses to measure one with the wrong number of workers
# (nginx: N worker processes under the master; Fairway: N workers under the primary, or
# one process for --workers 1).
check_workers() {
  local name=$1 pid want children
  pid=$(pid_of "$name")
  want=$(workers_of "$name")
  children=$(children_of "$pid")
  local n
  n=$(wc -w <<<"$children")
  [[ "$name" == fairway-* ]] && [ "$want" = 1 ] && want=0
  if [ "$n" != "$want" ]; then
    log "$name runs $n worker process(es) ($children) under pid $pid, not $want"
    return 1
  fi
  pin_of "$name"
  log "$name: pid $pid$([ -z "$children" ] || echo ", workers ${children% }") on $([ "${#PIN[@]}" -gt 0 ] && echo "CPU $PROXY_CPU" || echo "every CPU (unpinned)")"
}

start_servers() {
  local s
  for s in $WB_SERVERS; do
    case "$s" in
      nginx-*) if start_nginx_workers "$s" && check_workers "$s"; then WB_MEASURED+=("$s"); elif [ -n "$NGINX" ]; then SKIPPED+=("$s: did not start (see above)"); else SKIPPED+=("$s: nginx not installed"); fi ;;
      fairway-*) if start_fairway_workers "$s" && check_workers "$s"; then WB_MEASURED+=("$s"); else SKIPPED+=("$s: did not start (see above)"); fi ;;
    esac
  done
  [ "${#WB_MEASURED[@]}" -gt 0 ] || die "no server started"
  log "measuring: ${WB_MEASURED[*]}; scenarios: $WB_SCENARIOS"
  write_sni_lua
}

# "PID:TICKS ..." (user+system CPU) of each worker process under PID.
child_ticks() {
  local p stat out=""
  for p in $(children_of "$1"); do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    out+="$p:$(awk '{print $12 + $13}' <<<"${stat##*) }") "
  done
  echo "$out"
}

# CPU ticks of the children this shell has waited for: the load's wrk (run_wrk waits for
# it) and the tiny command substitutions around it.
reaped_ticks() {
  local stat
  stat=$(cat "/proc/$$/stat")
  awk '{print $14 + $15}' <<<"${stat##*) }"
}

# Usage: wb_load SCENARIO URL SECONDS TAG OUT
wb_load() {
  local scenario=$1 url=$2 seconds=$3 tag=$4 out=$5
  local wrk=("${PIN_LOAD[@]}" wrk "-t$THREADS" "-c$CONNECTIONS" "-d${seconds}s" --latency -H "Host: $HOST_HEADER")
  case "$scenario" in
    http) run_wrk "$out" "${wrk[@]}" "$url" ;;
    https) run_wrk "$out" "${wrk[@]}" -s "$TMP/sni.lua" "$url" ;;
    resumed) run_wrk "$out" "${wrk[@]}" -s "$TMP/sni.lua" -H "Connection: close" -H "X-Bench-Tag: $tag" "$url" ;;
  esac
}

wb_check_alive() {
  local name pid
  for name in origin "${WB_MEASURED[@]}"; do
    pid=$(pid_of "$name")
    [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && log "$name (pid $pid) has exited"
  done
  return 0
}

# --- one measurement: warm-up, then wrk; its output kept, one JSON line to raw.jsonl ---
measure_wb() {
  local scenario=$1 server=$2 rep=$3 tag="$1-$3"
  local out="$RESULTS/$scenario-$server-rep$rep.txt" url
  case "$scenario" in
    http) url="http://127.0.0.1:$(wb_port "$server" http)/" ;;
    *) url="https://$HOST_HEADER:$(wb_port "$server" https)/" ;;
  esac
  if [ "$WARMUP" -gt 0 ]; then
    wb_load "$scenario" "$url" "$WARMUP" warmup "$TMP/warmup.txt" ||
      { log "warm-up of $scenario/$server failed: $(tail -c 600 "$TMP/warmup.txt" | tr '\n' ' ')"; wb_check_alive; die "warm-up of $scenario/$server failed"; }
  fi
  local pid admin="" hs0="- -" hs1="- -"
  pid=$(pid_of "$server")
  if [[ "$server" == fairway-* ]] && [ "$scenario" != http ]; then
    admin=$(wb_port "$server" admin)
    hs0=$(fairway_handshakes "$admin")
  fi
  local t0 t1 w0 w1 o0 o1 r0 r1 pj0 lj0 pj1 lj1 f0 f1
  t0=$(cpu_ticks "$pid")
  w0=$(child_ticks "$pid")
  o0=$(cpu_ticks "$PID_origin")
  pj0=$(cpu_jiffies "cpu$PROXY_CPU")
  lj0=$(cpu_jiffies "cpu$LOAD_CPU")
  f0=$(foreign_ticks)
  r0=$(reaped_ticks)
  if ! wb_load "$scenario" "$url" "$DURATION" "$tag" "$out"; then
    log "the load failed against $server ($scenario): $(tail -c 600 "$out" | tr '\n' ' ')"
    wb_check_alive
    die "measurement of $scenario/$server failed (logs: ${LOGS#"$ROOT"/}/)"
  fi
  r1=$(reaped_ticks)
  t1=$(cpu_ticks "$pid")
  w1=$(child_ticks "$pid")
  o1=$(cpu_ticks "$PID_origin")
  pj1=$(cpu_jiffies "cpu$PROXY_CPU")
  lj1=$(cpu_jiffies "cpu$LOAD_CPU")
  f1=$(foreign_ticks)
  [ -z "$admin" ] || hs1=$(fairway_handshakes "$admin")
  local hs_full=- hs_resumed=- a b c d
  read -r a b <<<"$hs0"
  read -r c d <<<"$hs1"
  if [[ "$a$b$c$d" =~ ^[0-9]+$ ]]; then hs_full=$((c - a)); hs_resumed=$((d - b)); fi
  pin_of "$server"
  local line
  line=$(node "$REPORT" record "file=$out" "scenario=$scenario" "server=$server" "rep=$rep" "tag=$tag" \
    "workers=$(workers_of "$server")" "runs_on=$([ "${#PIN[@]}" -gt 0 ] && echo "CPU $PROXY_CPU (alone)" || echo "every CPU (shared)")" "clk_tck=$CLK_TCK" \
    "server_ticks=$((t1 - t0))" "workers_before=$w0" "workers_after=$w1" "load_ticks=$((r1 - r0 + o1 - o0))" \
    "proxy_cpu_busy=$(busy_between "$pj0" "$pj1")" "load_cpu_busy=$(busy_between "$lj0" "$lj1")" \
    "foreign_ticks=$((f1 - f0))" "handshakes_full=$hs_full" "handshakes_resumed=$hs_resumed" 2>&1 >>"$RESULTS/raw.jsonl") ||
    die "could not record $scenario/$server rep $rep: $line"
  log "rep $rep/$REPS $(printf '%-8s %-10s' "$scenario" "$server") $line"
}

wb_write_meta() {
  export BENCH_META_DATE BENCH_META_COMMAND BENCH_META_NPROC BENCH_META_NODE BENCH_META_NODE_OPENSSL BENCH_META_NGINX \
    BENCH_META_WRK BENCH_META_KERNEL BENCH_META_CPU BENCH_META_SETTINGS BENCH_META_ORIGIN BENCH_META_SKIPPED \
    BENCH_META_PINNING BENCH_META_BUSY_BEFORE BENCH_META_DIST BENCH_META_SESSION_PROBES
  BENCH_META_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  BENCH_META_COMMAND="$(env | awk '/^BENCH_[A-Z_]+=/ && !/^BENCH_(META_|MODE=)/' | sort | tr '\n' ' ')bash bench/workers.sh"
  BENCH_META_NPROC=$(nproc)
  BENCH_META_NODE=$(node -v)
  BENCH_META_NODE_OPENSSL=$(node -p process.versions.openssl)
  BENCH_META_NGINX=$([ -n "$NGINX" ] && "$NGINX" -v 2>&1 | sed 's/^nginx version: //' || echo "not installed")
  BENCH_META_WRK=$( (wrk -v 2>&1 || true) | head -n 1 | awk '{print $1, $2}')
  BENCH_META_KERNEL=$(uname -r)
  BENCH_META_CPU=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown)
  BENCH_META_SETTINGS="duration=${DURATION}s warmup=${WARMUP}s reps=$REPS connections=$CONNECTIONS threads=$THREADS nginx_access_log=$NGINX_ACCESS_LOG"
  BENCH_META_ORIGIN=$ORIGIN_KIND
  BENCH_META_BUSY_BEFORE="${BUSY_BEFORE}%"
  BENCH_META_SKIPPED=$(IFS=';'; echo "${SKIPPED[*]:-}")
  if [ "${#PIN_PROXY[@]}" -gt 0 ]; then
    BENCH_META_PINNING="1-worker servers on CPU $PROXY_CPU, origin+wrk on CPU $LOAD_CPU, 2-worker servers unpinned (every CPU, shared with origin+wrk)"
  else
    BENCH_META_PINNING="none"
  fi
  BENCH_META_DIST=${DIST#"$ROOT"/}
  BENCH_META_SESSION_PROBES=$(IFS=';'; echo "${SESSION_PROBES[*]:-}")
}

wb_report() {
  local s pid
  # nginx writes its buffered session log when it stops: stop each gracefully now.
  for s in "${WB_MEASURED[@]}"; do
    [[ "$s" == nginx-* ]] || continue
    pid=$(pid_of "$s")
    kill -QUIT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for s in "${WB_MEASURED[@]}"; do
    [[ "$s" == fairway-* ]] || continue
    log "$s weighted split (admin /metrics): $(node "$BENCH_DIR/lib/probe.mjs" split "http://127.0.0.1:$(wb_port "$s" admin)/metrics" || echo unavailable)"
  done
  wb_write_meta
  echo
  echo "Fairway workers bench $BENCH_META_DATE: $BENCH_META_SETTINGS; nproc $BENCH_META_NPROC; Fairway build ${BENCH_META_DIST}"
  echo "node $BENCH_META_NODE (OpenSSL $BENCH_META_NODE_OPENSSL), nginx $BENCH_META_NGINX, wrk $BENCH_META_WRK; origin: $ORIGIN_KIND; machine busy before start: $BENCH_META_BUSY_BEFORE"
  echo "pinning: $BENCH_META_PINNING"
  for s in "${SKIPPED[@]}"; do echo "SKIPPED $s"; done
  for s in "${SESSION_PROBES[@]}"; do echo "TICKETS $s   (6 connections, each ticket used once: F=full R=resumed, digit=tickets the server sent)"; done
  echo
  local rc=0
  node "$REPORT" summarize "$RESULTS/raw.jsonl" "$RESULTS/summary.json" "$LOGS" | tee "$RESULTS/table.txt" || rc=$?
  echo
  echo "raw results: ${RESULTS#"$ROOT"/}/ (wrk outputs, raw.jsonl, summary.json, table.txt, logs/)"
  ln -sfn "workers-$STAMP" "$BENCH_DIR/results/latest-workers"
  return "$rc"
}

wb_main() {
  wb_check_settings
  if [ -n "$WB_DIST" ]; then
    DIST=$(cd "$WB_DIST" && pwd)
    prepare_bench wb_check_ports --no-build
  else
    DIST=$ROOT/dist
    prepare_bench wb_check_ports
  fi
  make_certificate
  start_origin
  start_servers
  if [[ " $WB_SCENARIOS " == *" resumed "* ]]; then
    local s probes=()
    for s in "${WB_MEASURED[@]}"; do probes+=("$s:$(wb_port "$s" https)"); done
    session_probe "${probes[@]}"
  fi
  local scenario rep s
  for scenario in $WB_SCENARIOS; do
    for rep in $(seq 1 "$REPS"); do
      for s in "${WB_MEASURED[@]}"; do measure_wb "$scenario" "$s" "$rep"; done
    done
  done
  wb_report
}

wb_main "$@"
