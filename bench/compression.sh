#!/usr/bin/env bash
# What response compression costs Fairway (`BENCH_MODE=compression npm run bench`, or
# `bash bench/compression.sh`). See bench/README.md, "Compression benchmark".
#
# Loopback only. The plain bench's setup (bench/fairway-bench.yaml, wrk -t1 -c64, proxy on
# CPU 0, origin and wrk on CPU 1), with an origin answering a 2,048-byte JSON document
# (`Content-Type: application/json`, with Content-Length) instead of 100 bytes of text.
# Rows, interleaved within each rep:
#   fairway        Fairway, compression on (the default), wrk sends no Accept-Encoding: the plain figure
#   fairway-gzip   the same Fairway, wrk sends `Accept-Encoding: gzip` (level 5, the Deis default)
#   fairway-br     the same Fairway, wrk sends `Accept-Encoding: br` (quality 4)
#   fairway-off    a second Fairway with `compression: { enabled: false }`, wrk sends
#                  `Accept-Encoding: gzip, br`: what an app with compression off pays
#   nginx, nginx-gzip  (optional) nginx proxying the same origin with the Deis router's gzip
#                  settings, without / with `Accept-Encoding: gzip`, for reference
# Every row is checked before it is measured (the right Content-Encoding, the body intact
# once decoded). The table prints each row's req/s and CPU per request beside its server's
# plain figure. Writes bench/results/compression-<UTC time>/.
#
# Tunables, besides the plain bench's BENCH_DURATION, BENCH_WARMUP, BENCH_REPS,
# BENCH_CONNECTIONS, BENCH_THREADS, BENCH_PORT_BASE, BENCH_PROXY_CPU, BENCH_LOAD_CPU,
# BENCH_NO_INSTALL, BENCH_NGINX:
#   BENCH_COMPRESSION_ROWS="fairway fairway-gzip fairway-br fairway-off nginx nginx-gzip"
# Ports: base, base+1 (origin), base+10/+11 (Fairway), base+18/+19 (Fairway, compression
# off), base+20 (nginx).
set -euo pipefail

CB_BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The plain bench's settings and functions (nginx boilerplate, Fairway start, CPU
# accounting, process bookkeeping and cleanup on exit); its main does not run when sourced.
# shellcheck source=run.sh
source "$CB_BENCH_DIR/run.sh"

CB_ROWS=${BENCH_COMPRESSION_ROWS:-"fairway fairway-gzip fairway-br fairway-off nginx nginx-gzip"}
FAIRWAY_OFF_PORT=$((PORT_BASE + 18))
FAIRWAY_OFF_ADMIN_PORT=$((PORT_BASE + 19))
REPORT="$BENCH_DIR/lib/compression-report.mjs"

RESULTS="$BENCH_DIR/results/compression-$STAMP"
LOGS="$RESULTS/logs"
CB_MEASURED=()
# The Deis router's gzip settings (model.go newGzipConfig), for the nginx reference.
DEIS_GZIP_TYPES="application/atom+xml application/javascript application/json application/rss+xml application/vnd.ms-fontobject application/x-font-ttf application/x-web-app-manifest+json application/xhtml+xml application/xml font/opentype image/svg+xml image/x-icon text/css text/plain text/x-component"

cb_check_settings() {
  check_settings
  local r
  for r in $CB_ROWS; do
    case "$r" in fairway | fairway-gzip | fairway-br | fairway-off | nginx | nginx-gzip) ;;
      *) die "unknown row '$r' in BENCH_COMPRESSION_ROWS (fairway fairway-gzip fairway-br fairway-off nginx nginx-gzip)" ;; esac
  done
  [ -n "$CB_ROWS" ] || die "nothing to measure"
}

cb_check_ports() {
  local port
  for port in "$ORIGIN_A_PORT" "$ORIGIN_B_PORT" "$FAIRWAY_PORT" "$FAIRWAY_ADMIN_PORT" "$FAIRWAY_OFF_PORT" "$FAIRWAY_OFF_ADMIN_PORT" "$NGINX_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is already in use (another bench running?); set BENCH_PORT_BASE"
  done
}

# Usage: cb_wait NAME PORT [ACCEPT_ENCODING EXPECTED_CODING]
cb_wait() {
  local name=$1 port=$2
  shift 2
  if ! node "$REPORT" wait "http://127.0.0.1:$port/" "$HOST_HEADER" 15 "$@" 2>"$TMP/$name.probe"; then
    log "$name did not answer as expected on 127.0.0.1:$port: $(cat "$TMP/$name.probe")"
    [ -s "$LOGS/$name.err" ] && log "$name stderr: $(tail -n 5 "$LOGS/$name.err" | tr '\n' ' ')"
    return 1
  fi
}

# --- the origin: the JSON document with Content-Length, nginx `return 200` on two ports ---
start_json_origin() {
  node "$REPORT" body >"$TMP/body.json"
  if [ -n "$NGINX" ]; then
    ORIGIN_KIND=nginx
    {
      nginx_common origin
      cat <<EOF
http {
  access_log off;
$(nginx_http_common origin)
  server {
    listen 127.0.0.1:$ORIGIN_A_PORT;
    listen 127.0.0.1:$ORIGIN_B_PORT;
    location / { default_type application/json; return 200 '$(cat "$TMP/body.json")'; }
  }
}
EOF
    } >"$TMP/origin.conf"
    spawn origin /dev/null "${PIN_LOAD[@]}" "$NGINX" -p "$TMP/origin" -c "$TMP/origin.conf" -e "$LOGS/origin.error.log"
  else
    ORIGIN_KIND=node
    cat >"$TMP/json-origin.mjs" <<'EOF'
import http from 'node:http';
import { readFileSync } from 'node:fs';
const body = readFileSync(process.argv[2]);
const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };
for (const port of process.argv.slice(3)) {
  const s = http.createServer((req, res) => { req.resume(); res.writeHead(200, headers); res.end(body); });
  s.keepAliveTimeout = 75_000;
  s.listen(Number(port), '127.0.0.1');
}
process.on('SIGTERM', () => process.exit(0));
EOF
    spawn origin /dev/null "${PIN_LOAD[@]}" node "$TMP/json-origin.mjs" "$TMP/body.json" "$ORIGIN_A_PORT" "$ORIGIN_B_PORT"
  fi
  cb_wait origin "$ORIGIN_A_PORT" && cb_wait origin "$ORIGIN_B_PORT" || die "the origin ($ORIGIN_KIND) did not start"
  log "origin ($ORIGIN_KIND) answering $(wc -c <"$TMP/body.json") bytes of JSON on 127.0.0.1:$ORIGIN_A_PORT and :$ORIGIN_B_PORT"
}

# --- Fairway with compression off router-wide: the bench config + compression ---
start_fairway_off() {
  local dir="$TMP/fairway-off"
  mkdir -p "$dir"
  sed -e "s/127\.0\.0\.1:18080/127.0.0.1:$ORIGIN_A_PORT/; s/127\.0\.0\.1:18081/127.0.0.1:$ORIGIN_B_PORT/" \
    -e "s/127\.0\.0\.1:18090/127.0.0.1:$FAIRWAY_OFF_PORT/; s/127\.0\.0\.1:18091/127.0.0.1:$FAIRWAY_OFF_ADMIN_PORT/" \
    "$BENCH_DIR/fairway-bench.yaml" >"$dir/fairway.yaml"
  printf 'compression: { enabled: false }\n' >>"$dir/fairway.yaml"
  spawn fairway-off /dev/null "${PIN_PROXY[@]}" node "$ROOT/dist/cli.js" serve --workers 1 --config "$dir/fairway.yaml"
}

# --- nginx: the plain bench's proxy with the Deis router's gzip settings ---
start_nginx_gzip() {
  [ -n "$NGINX" ] || return 1
  {
    nginx_common nginx
    cat <<EOF
http {
  access_log /dev/null combined buffer=64k flush=1s;
$(nginx_http_common nginx)
  gzip on;
  gzip_comp_level 5;
  gzip_disable msie6;
  gzip_http_version 1.1;
  gzip_min_length 256;
  gzip_types $DEIS_GZIP_TYPES;
  gzip_proxied any;
  gzip_vary on;
$(nginx_upstream)
  server {
    listen 127.0.0.1:$NGINX_PORT;
$(nginx_proxy_location)
  }
}
EOF
  } >"$TMP/nginx.conf"
  spawn nginx /dev/null "${PIN_PROXY[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx.conf" -e "$LOGS/nginx.error.log"
}

cb_port_of() {
  case "$1" in
    fairway | fairway-gzip | fairway-br) echo "$FAIRWAY_PORT" ;;
    fairway-off) echo "$FAIRWAY_OFF_PORT" ;;
    nginx | nginx-gzip) echo "$NGINX_PORT" ;;
  esac
}
cb_pid_of() {
  case "$1" in
    fairway | fairway-gzip | fairway-br) echo "${PID_fairway:-}" ;;
    fairway-off) echo "${PID_fairway_off:-}" ;;
    nginx | nginx-gzip) echo "${PID_nginx:-}" ;;
  esac
}
# The Accept-Encoding a row's client sends, and the coding it must get back.
cb_accept_of() {
  case "$1" in
    fairway-gzip | nginx-gzip) echo "gzip" ;;
    fairway-br) echo "br" ;;
    fairway-off) echo "gzip, br" ;;
    *) echo "" ;;
  esac
}
cb_coding_of() {
  case "$1" in
    fairway-gzip | nginx-gzip) echo "gzip" ;;
    fairway-br) echo "br" ;;
    *) echo "identity" ;;
  esac
}

start_cb_servers() {
  local need_fairway=0 need_off=0 need_nginx=0 r
  for r in $CB_ROWS; do
    case "$r" in
      fairway | fairway-gzip | fairway-br) need_fairway=1 ;;
      fairway-off) need_off=1 ;;
      nginx*) need_nginx=1 ;;
    esac
  done
  # start_fairway's readiness probe wants the plain bench's 100-byte body: start it without.
  if [ "$need_fairway" = 1 ]; then
    mkdir -p "$TMP/fairway"
    sed -e "s/127\.0\.0\.1:18080/127.0.0.1:$ORIGIN_A_PORT/; s/127\.0\.0\.1:18081/127.0.0.1:$ORIGIN_B_PORT/" \
      -e "s/127\.0\.0\.1:18090/127.0.0.1:$FAIRWAY_PORT/; s/127\.0\.0\.1:18091/127.0.0.1:$FAIRWAY_ADMIN_PORT/" \
      "$BENCH_DIR/fairway-bench.yaml" >"$TMP/fairway/fairway.yaml"
    spawn fairway /dev/null "${PIN_PROXY[@]}" node "$ROOT/dist/cli.js" serve --workers 1 --config "$TMP/fairway/fairway.yaml"
  fi
  [ "$need_off" = 1 ] && start_fairway_off
  local nginx_ok=0
  if [ "$need_nginx" = 1 ]; then
    if start_nginx_gzip; then nginx_ok=1; else SKIPPED+=("nginx rows: nginx not installed"); fi
  fi
  for r in $CB_ROWS; do
    case "$r" in nginx*) [ "$nginx_ok" = 1 ] || continue ;; esac
    if cb_wait "$r" "$(cb_port_of "$r")" "$(cb_accept_of "$r")" "$(cb_coding_of "$r")"; then CB_MEASURED+=("$r")
    else SKIPPED+=("$r: did not answer as expected (see above)"); fi
  done
  [ "${#CB_MEASURED[@]}" -gt 0 ] || die "nothing to measure"
  log "measuring: ${CB_MEASURED[*]}"
}

# Usage: cb_load ROW SECONDS OUT
cb_load() {
  local row=$1 seconds=$2 out=$3 accept
  accept=$(cb_accept_of "$row")
  local wrk=("${PIN_LOAD[@]}" wrk "-t$THREADS" "-c$CONNECTIONS" "-d${seconds}s" --latency -H "Host: $HOST_HEADER")
  [ -n "$accept" ] && wrk+=(-H "Accept-Encoding: $accept")
  run_wrk "$out" "${wrk[@]}" "http://127.0.0.1:$(cb_port_of "$row")/"
}

cb_measure() {
  local row=$1 rep=$2
  local out="$RESULTS/wrk-$row-rep$rep.txt"
  if [ "$WARMUP" -gt 0 ]; then
    cb_load "$row" "$WARMUP" "$TMP/warmup.txt" ||
      { log "warm-up of $row failed: $(tail -c 600 "$TMP/warmup.txt" | tr '\n' ' ')"; check_alive; die "warm-up of $row failed"; }
  fi
  local pid t0 t1 proxy_j0 load_j0 proxy_j1 load_j1 foreign0 foreign1
  pid=$(cb_pid_of "$row")
  t0=$(cpu_ticks "$pid")
  proxy_j0=$(cpu_jiffies "cpu$PROXY_CPU")
  load_j0=$(cpu_jiffies "cpu$LOAD_CPU")
  foreign0=$(foreign_ticks)
  if ! cb_load "$row" "$DURATION" "$out"; then
    log "wrk failed against $row: $(tail -c 600 "$out" | tr '\n' ' ')"
    check_alive
    die "measurement of $row failed (logs: ${LOGS#"$ROOT"/}/)"
  fi
  t1=$(cpu_ticks "$pid")
  foreign1=$(foreign_ticks)
  proxy_j1=$(cpu_jiffies "cpu$PROXY_CPU")
  load_j1=$(cpu_jiffies "cpu$LOAD_CPU")
  node "$REPORT" record "$out" "$row" "$rep" "$(cb_accept_of "$row")" \
    "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')" \
    "$(busy_between "$proxy_j0" "$proxy_j1")" "$(busy_between "$load_j0" "$load_j1")" \
    "$(awk -v d=$((foreign1 - foreign0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", d / hz }')" >>"$RESULTS/raw.jsonl"
  log "rep $rep/$REPS $(printf '%-13s' "$row") $(grep -E '^Requests/sec' "$out" | tr -s ' ') p99 $(grep -E '^ +99%' "$out" | awk '{print $2}')"
}

cb_report() {
  write_meta
  BENCH_META_COMMAND="$(env | awk '/^BENCH_[A-Z_]+=/ && !/^BENCH_(META_|MODE=)/' | sort | tr '\n' ' ')bash bench/compression.sh"
  echo
  echo "Fairway compression bench $BENCH_META_DATE: $BENCH_META_SETTINGS; nproc $BENCH_META_NPROC; pinning: $BENCH_META_PINNING"
  echo "node $BENCH_META_NODE, nginx $BENCH_META_NGINX, wrk $BENCH_META_WRK; origin: $ORIGIN_KIND, 2,048 bytes of JSON; machine busy before start: $BENCH_META_BUSY_BEFORE"
  local s
  for s in "${SKIPPED[@]}"; do echo "SKIPPED $s"; done
  echo
  node "$REPORT" summarize "$RESULTS/raw.jsonl" "$RESULTS/summary.json" | tee "$RESULTS/table.txt"
  echo
  echo "raw results: ${RESULTS#"$ROOT"/}/ (wrk outputs, raw.jsonl, summary.json, table.txt)"
  ln -sfn "compression-$STAMP" "$BENCH_DIR/results/latest-compression"
}

cb_main() {
  cb_check_settings
  prepare_bench cb_check_ports
  start_json_origin
  start_cb_servers
  local rep r
  for rep in $(seq 1 "$REPS"); do
    for r in "${CB_MEASURED[@]}"; do cb_measure "$r" "$rep"; done
  done
  cb_report
}

cb_main "$@"
