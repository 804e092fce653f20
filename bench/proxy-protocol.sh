#!/usr/bin/env bash
# What the PROXY protocol costs Fairway (`BENCH_MODE=proxy-protocol npm run bench`, or
# `bash bench/proxy-protocol.sh`). See bench/README.md, "PROXY protocol benchmark".
#
# Loopback only. The plain bench's origin and Fairway (bench/fairway-bench.yaml), plus a
# second Fairway with `proxyProtocol: { http: true }`, and HAProxy in TCP mode as the load
# balancer that sends the PROXY header (what one runs in front of a router). The load is the
# plain bench's client, wrk, in every row:
#   fairway        wrk -> Fairway                                    (the plain bench's row)
#   fairway-relay  wrk -> HAProxy (mode tcp) -> Fairway               (the same path as below, no header)
#   fairway-pp-v1  wrk -> HAProxy send-proxy    -> Fairway, proxyProtocol.http on
#   fairway-pp-v2  wrk -> HAProxy send-proxy-v2 -> Fairway, proxyProtocol.http on
#   nginx-relay, nginx-pp-v2  (optional) the same for nginx (`listen ... proxy_protocol`,
#                  realip from the header), for reference
# in two scenarios, rows interleaved within each rep:
#   keepalive  wrk -t1 -c64 keep-alive: one header per connection (HAProxy keeps one server
#              connection per client connection)
#   close      the same with `Connection: close`: a new connection, so a new header, per request
# The server under test runs on CPU 0; origin, HAProxy and wrk on CPU 1. The cost of the
# header is a PROXY row against the relay row (same path, same hops). Each PROXY row also
# reports how many headers Fairway read during it (fairway_proxy_protocol_connections_total),
# to show the header really was parsed. Writes bench/results/pp-<UTC time>/.
#
# Tunables, besides the plain bench's BENCH_DURATION, BENCH_WARMUP, BENCH_REPS,
# BENCH_CONNECTIONS, BENCH_THREADS, BENCH_PORT_BASE, BENCH_PROXY_CPU, BENCH_LOAD_CPU,
# BENCH_NO_INSTALL, BENCH_NGINX:
#   BENCH_PP_SCENARIOS="keepalive close"   which scenarios, in this order
#   BENCH_PP_ROWS="fairway fairway-relay fairway-pp-v1 fairway-pp-v2"   which rows; also
#                          nginx-relay, nginx-pp-v2
# Ports: base, base+1 (origin), base+10/+11 (Fairway), base+16/+17 (Fairway with the PROXY
# protocol), base+20/+22 (nginx plain / proxy_protocol), base+50..+54 (HAProxy frontends).
set -euo pipefail

PP_BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The plain bench's settings and functions (origin, nginx boilerplate, CPU accounting,
# process bookkeeping and cleanup on exit); its main does not run when sourced.
# shellcheck source=run.sh
source "$PP_BENCH_DIR/run.sh"

PP_SCENARIOS=${BENCH_PP_SCENARIOS:-"keepalive close"}
PP_ROWS=${BENCH_PP_ROWS:-"fairway fairway-relay fairway-pp-v1 fairway-pp-v2"}
FAIRWAY_PP_PORT=$((PORT_BASE + 16))
FAIRWAY_PP_ADMIN_PORT=$((PORT_BASE + 17))
NGINX_PP_PORT=$((PORT_BASE + 22))
RELAY_FAIRWAY_PORT=$((PORT_BASE + 50))
RELAY_FAIRWAY_V1_PORT=$((PORT_BASE + 51))
RELAY_FAIRWAY_V2_PORT=$((PORT_BASE + 52))
RELAY_NGINX_PORT=$((PORT_BASE + 53))
RELAY_NGINX_V2_PORT=$((PORT_BASE + 54))

RESULTS="$BENCH_DIR/results/pp-$STAMP"
LOGS="$RESULTS/logs"
PP_MEASURED=()

pp_check_settings() {
  check_settings
  local s
  for s in $PP_SCENARIOS; do
    case "$s" in keepalive | close) ;; *) die "unknown scenario '$s' in BENCH_PP_SCENARIOS (keepalive close)" ;; esac
  done
  for s in $PP_ROWS; do
    case "$s" in fairway | fairway-relay | fairway-pp-v1 | fairway-pp-v2 | nginx-relay | nginx-pp-v2) ;;
      *) die "unknown row '$s' in BENCH_PP_ROWS (fairway fairway-relay fairway-pp-v1 fairway-pp-v2 nginx-relay nginx-pp-v2)" ;; esac
  done
  [ -n "$PP_SCENARIOS" ] && [ -n "$PP_ROWS" ] || die "nothing to measure"
}

pp_check_ports() {
  local port
  for port in "$ORIGIN_A_PORT" "$ORIGIN_B_PORT" "$FAIRWAY_PORT" "$FAIRWAY_ADMIN_PORT" "$FAIRWAY_PP_PORT" "$FAIRWAY_PP_ADMIN_PORT" \
    "$NGINX_PORT" "$NGINX_PP_PORT" "$RELAY_FAIRWAY_PORT" "$RELAY_FAIRWAY_V1_PORT" "$RELAY_FAIRWAY_V2_PORT" "$RELAY_NGINX_PORT" "$RELAY_NGINX_V2_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is already in use (another bench running?); set BENCH_PORT_BASE"
  done
}

find_haproxy() {
  if ! command -v haproxy >/dev/null && [ "$(id -u)" = 0 ] && [ "${BENCH_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null; then
    log "installing haproxy with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >>"$LOGS/apt.log" 2>&1 || true
  fi
  command -v haproxy >/dev/null || die "haproxy not found ('apt-get install haproxy'): it is the load balancer that sends the PROXY header"
}

# --- Fairway with the PROXY protocol on its HTTP listener: the bench config + proxyProtocol ---
start_fairway_pp() {
  local dir="$TMP/fairway-pp"
  mkdir -p "$dir"
  sed -e "s/127\.0\.0\.1:18080/127.0.0.1:$ORIGIN_A_PORT/; s/127\.0\.0\.1:18081/127.0.0.1:$ORIGIN_B_PORT/" \
    -e "s/127\.0\.0\.1:18090/127.0.0.1:$FAIRWAY_PP_PORT/; s/127\.0\.0\.1:18091/127.0.0.1:$FAIRWAY_PP_ADMIN_PORT/" \
    "$BENCH_DIR/fairway-bench.yaml" >"$dir/fairway.yaml"
  printf 'proxyProtocol: { http: true }\n' >>"$dir/fairway.yaml"
  spawn fairway-pp /dev/null "${PIN_PROXY[@]}" node "$ROOT/dist/cli.js" serve --workers 1 --config "$dir/fairway.yaml"
}

# --- nginx: the plain bench's proxy, plus a server that reads the PROXY header ---
start_nginx_pp() {
  [ -n "$NGINX" ] || return 1
  {
    nginx_common nginx
    cat <<EOF
http {
  access_log /dev/null combined buffer=64k flush=1s;
$(nginx_http_common nginx)
$(nginx_upstream)
  server {
    listen 127.0.0.1:$NGINX_PORT;
$(nginx_proxy_location)
  }
  server {
    listen 127.0.0.1:$NGINX_PP_PORT proxy_protocol;
    set_real_ip_from 127.0.0.1;
    real_ip_header proxy_protocol;
$(nginx_proxy_location)
  }
}
EOF
  } >"$TMP/nginx.conf"
  spawn nginx /dev/null "${PIN_PROXY[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx.conf" -e "$LOGS/nginx.error.log"
}

# --- HAProxy, mode tcp, one thread on the load CPU: a frontend per relayed row ---
start_haproxy() {
  cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 90s
  timeout server 90s
frontend fairway-relay
  bind 127.0.0.1:$RELAY_FAIRWAY_PORT
  default_backend fairway-relay
backend fairway-relay
  server fairway 127.0.0.1:$FAIRWAY_PORT
frontend fairway-pp-v1
  bind 127.0.0.1:$RELAY_FAIRWAY_V1_PORT
  default_backend fairway-pp-v1
backend fairway-pp-v1
  server fairway 127.0.0.1:$FAIRWAY_PP_PORT send-proxy
frontend fairway-pp-v2
  bind 127.0.0.1:$RELAY_FAIRWAY_V2_PORT
  default_backend fairway-pp-v2
backend fairway-pp-v2
  server fairway 127.0.0.1:$FAIRWAY_PP_PORT send-proxy-v2
frontend nginx-relay
  bind 127.0.0.1:$RELAY_NGINX_PORT
  default_backend nginx-relay
backend nginx-relay
  server nginx 127.0.0.1:$NGINX_PORT
frontend nginx-pp-v2
  bind 127.0.0.1:$RELAY_NGINX_V2_PORT
  default_backend nginx-pp-v2
backend nginx-pp-v2
  server nginx 127.0.0.1:$NGINX_PP_PORT send-proxy-v2
EOF
  spawn haproxy /dev/null "${PIN_LOAD[@]}" haproxy -db -f "$TMP/haproxy.cfg"
}

pp_port_of() {
  case "$1" in
    fairway) echo "$FAIRWAY_PORT" ;;
    fairway-relay) echo "$RELAY_FAIRWAY_PORT" ;;
    fairway-pp-v1) echo "$RELAY_FAIRWAY_V1_PORT" ;;
    fairway-pp-v2) echo "$RELAY_FAIRWAY_V2_PORT" ;;
    nginx-relay) echo "$RELAY_NGINX_PORT" ;;
    nginx-pp-v2) echo "$RELAY_NGINX_V2_PORT" ;;
  esac
}
# The server process a row measures.
pp_pid_of() {
  case "$1" in
    fairway | fairway-relay) echo "${PID_fairway:-}" ;;
    fairway-pp-*) echo "${PID_fairway_pp:-}" ;;
    nginx-*) echo "${PID_nginx:-}" ;;
  esac
}

# PROXY headers Fairway-with-the-protocol has read so far (accepted + local), from its /metrics.
pp_headers() {
  node -e '
    fetch(process.argv[1]).then((r) => r.text()).then((t) => {
      let n = 0;
      for (const m of t.matchAll(/^fairway_proxy_protocol_connections_total\{listener="http",outcome="(accepted|local)"\} (\d+)$/gm)) n += Number(m[2]);
      console.log(n);
    }, () => console.log("-"));' "http://127.0.0.1:$FAIRWAY_PP_ADMIN_PORT/metrics"
}

start_pp_servers() {
  local need_fairway=0 need_pp=0 need_nginx=0 need_haproxy=0 r
  for r in $PP_ROWS; do
    case "$r" in
      fairway) need_fairway=1 ;;
      fairway-relay) need_fairway=1; need_haproxy=1 ;;
      fairway-pp-*) need_pp=1; need_haproxy=1 ;;
      nginx-*) need_nginx=1; need_haproxy=1 ;;
    esac
  done
  [ "$need_haproxy" = 1 ] && find_haproxy
  [ "$need_fairway" = 1 ] && { start_fairway fairway "$FAIRWAY_PORT" "$FAIRWAY_ADMIN_PORT" true || die "fairway did not start"; }
  [ "$need_pp" = 1 ] && start_fairway_pp
  local nginx_ok=0
  if [ "$need_nginx" = 1 ]; then
    if start_nginx_pp; then nginx_ok=1; else SKIPPED+=("nginx rows: nginx not installed"); fi
  fi
  [ "$need_haproxy" = 1 ] && start_haproxy
  for r in $PP_ROWS; do
    case "$r" in nginx-*) [ "$nginx_ok" = 1 ] || continue ;; esac
    # Through HAProxy, a PROXY row's readiness probe carries the header too.
    if wait_ready "$r" "$(pp_port_of "$r")"; then PP_MEASURED+=("$r"); else SKIPPED+=("$r: did not answer (see above)"); fi
  done
  [ "${#PP_MEASURED[@]}" -gt 0 ] || die "nothing to measure"
  log "measuring: ${PP_MEASURED[*]}; scenarios: $PP_SCENARIOS"
}

# Usage: pp_load SCENARIO ROW SECONDS OUT
pp_load() {
  local scenario=$1 row=$2 seconds=$3 out=$4
  local wrk=("${PIN_LOAD[@]}" wrk "-t$THREADS" "-c$CONNECTIONS" "-d${seconds}s" --latency -H "Host: $HOST_HEADER")
  [ "$scenario" = close ] && wrk+=(-H "Connection: close")
  run_wrk "$out" "${wrk[@]}" "http://127.0.0.1:$(pp_port_of "$row")/"
}

pp_measure() {
  local scenario=$1 row=$2 rep=$3
  local out="$RESULTS/$scenario-$row-rep$rep.txt"
  if [ "$WARMUP" -gt 0 ]; then
    pp_load "$scenario" "$row" "$WARMUP" "$TMP/warmup.txt" ||
      { log "warm-up of $scenario/$row failed: $(tail -c 600 "$TMP/warmup.txt" | tr '\n' ' ')"; check_alive; die "warm-up of $scenario/$row failed"; }
  fi
  local pid t0 t1 proxy_j0 load_j0 proxy_j1 load_j1 foreign0 foreign1 h0=- h1=-
  pid=$(pp_pid_of "$row")
  [[ "$row" == fairway-pp-* ]] && h0=$(pp_headers)
  t0=$(cpu_ticks "$pid")
  proxy_j0=$(cpu_jiffies "cpu$PROXY_CPU")
  load_j0=$(cpu_jiffies "cpu$LOAD_CPU")
  foreign0=$(foreign_ticks)
  if ! pp_load "$scenario" "$row" "$DURATION" "$out"; then
    log "wrk failed against $row ($scenario): $(tail -c 600 "$out" | tr '\n' ' ')"
    check_alive
    die "measurement of $scenario/$row failed (logs: ${LOGS#"$ROOT"/}/)"
  fi
  t1=$(cpu_ticks "$pid")
  foreign1=$(foreign_ticks)
  proxy_j1=$(cpu_jiffies "cpu$PROXY_CPU")
  load_j1=$(cpu_jiffies "cpu$LOAD_CPU")
  [[ "$row" == fairway-pp-* ]] && h1=$(pp_headers)
  local headers=-
  [[ "$h0$h1" =~ ^[0-9]+$ ]] && headers=$((h1 - h0))
  node "$BENCH_DIR/lib/proxy-protocol-report.mjs" record "$out" "$scenario" "$row" "$rep" \
    "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')" \
    "$(busy_between "$proxy_j0" "$proxy_j1")" "$(busy_between "$load_j0" "$load_j1")" \
    "$(awk -v d=$((foreign1 - foreign0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')" "$headers" >>"$RESULTS/raw.jsonl"
  local read_note=""
  [ "$headers" = - ] || read_note=", PROXY headers read: $headers"
  log "rep $rep/$REPS $(printf '%-9s %-13s' "$scenario" "$row") $(grep -E '^Requests/sec' "$out" | tr -s ' ') p99 $(grep -E '^ +99%' "$out" | awk '{print $2}')$read_note"
}

pp_report() {
  write_meta
  BENCH_META_COMMAND="$(env | awk '/^BENCH_[A-Z_]+=/ && !/^BENCH_(META_|MODE=)/' | sort | tr '\n' ' ')bash bench/proxy-protocol.sh"
  export BENCH_META_HAPROXY
  BENCH_META_HAPROXY=$( (haproxy -v 2>/dev/null || echo "HAProxy none") | head -n 1 | awk '{print $3}')
  echo
  echo "Fairway PROXY protocol bench $BENCH_META_DATE: $BENCH_META_SETTINGS; nproc $BENCH_META_NPROC; pinning: $BENCH_META_PINNING"
  echo "node $BENCH_META_NODE, HAProxy $BENCH_META_HAPROXY (mode tcp, 1 thread, on the load CPU), nginx $BENCH_META_NGINX, wrk $BENCH_META_WRK; origin: $ORIGIN_KIND; machine busy before start: $BENCH_META_BUSY_BEFORE"
  local s
  for s in "${SKIPPED[@]}"; do echo "SKIPPED $s"; done
  echo
  node "$BENCH_DIR/lib/proxy-protocol-report.mjs" summarize "$RESULTS/raw.jsonl" "$RESULTS/summary.json" | tee "$RESULTS/table.txt"
  echo
  echo "raw results: ${RESULTS#"$ROOT"/}/ (wrk outputs, raw.jsonl, summary.json, table.txt)"
  ln -sfn "pp-$STAMP" "$BENCH_DIR/results/latest-pp"
}

pp_main() {
  pp_check_settings
  prepare_bench pp_check_ports
  start_origin
  start_pp_servers
  local scenario rep r
  for scenario in $PP_SCENARIOS; do
    for rep in $(seq 1 "$REPS"); do
      for r in "${PP_MEASURED[@]}"; do pp_measure "$scenario" "$r" "$rep"; done
    done
  done
  pp_report
}

pp_main "$@"
