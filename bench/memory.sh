#!/usr/bin/env bash
# Fairway's memory benchmark (`BENCH_MODE=memory npm run bench`, or `bash bench/memory.sh`).
# See bench/README.md, "Memory benchmark".
#
# Loopback only. The plain bench's origin, then, one after the other (each stopped before
# the next starts, so no two share the machine):
#   fairway-10k    Fairway with 10,000 hosts (the plain bench's fairway-10k config: the bench
#                  app plus 9,999 apps of one host each) and `serve --workers 2`: a primary
#                  and two data-plane workers
#   nginx-1w       nginx, 1 worker, the same 10,000 hosts as 10,000 `server` blocks (one
#                  `server_name` each) proxying to the origin, the plain bench's proxy settings
#   nginx-2w       the same nginx with 2 workers
# For each: the RSS (VmRSS) of the primary (nginx: master) and of each worker once it
# serves and has been idle BENCH_MEMORY_SETTLE seconds, then the highest RSS seen while
# `wrk -t1 -c64` loads one host for BENCH_DURATION seconds (sampled every second); the same
# for PSS (smaps_rollup: shared pages divided among the processes sharing them, which is
# what nginx's forked workers really add, since they share the master's parsed config).
# Prints a table, the ratios of Fairway's figures to nginx's, and PASS/FAIL for the target
# "RSS per worker <= BENCH_MEMORY_TARGET_MB (120) MB, idle and under load" (issue 7).
# Writes bench/results/memory-<UTC time>/.
#
# The server under test runs on CPU 0 (both Fairway workers too), origin and wrk on CPU 1,
# as in the plain bench: memory under load depends on the request rate, which is then the
# same as the other benches'.
#
# Tunables, besides the plain bench's BENCH_DURATION (10), BENCH_CONNECTIONS, BENCH_THREADS,
# BENCH_PORT_BASE, BENCH_PROXY_CPU, BENCH_LOAD_CPU, BENCH_NO_INSTALL, BENCH_NGINX, BENCH_STRICT:
#   BENCH_MEMORY_SERVERS="fairway-10k nginx-1w nginx-2w"   which servers, in this order
#   BENCH_MEMORY_SETTLE=3        seconds idle before the idle reading
#   BENCH_MEMORY_TARGET_MB=120   the per-worker target
# Ports: base (origin), base+14/+15 (Fairway http/admin), base+20 (nginx).
set -euo pipefail

MEM_BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The plain bench's settings and functions (origin, Fairway 10k config, nginx boilerplate,
# process bookkeeping and cleanup on exit); its main does not run when sourced.
# shellcheck source=run.sh
source "$MEM_BENCH_DIR/run.sh"

MEM_SERVERS=${BENCH_MEMORY_SERVERS:-"fairway-10k nginx-1w nginx-2w"}
SETTLE=${BENCH_MEMORY_SETTLE:-3}
TARGET_MB=${BENCH_MEMORY_TARGET_MB:-120}
HOSTS=10000

RESULTS="$BENCH_DIR/results/memory-$STAMP"
LOGS="$RESULTS/logs"
ROWS="$RESULTS/rows.txt"   # one line per process: server role idle_rss load_rss req/s idle_pss load_pss (MB)

mem_check_settings() {
  check_settings
  local name value s
  for name in SETTLE TARGET_MB; do
    value=${!name}
    [[ "$value" =~ ^[0-9]+$ ]] || die "BENCH_MEMORY_$name must be a whole number (got '$value')"
  done
  for s in $MEM_SERVERS; do
    case "$s" in fairway-10k | nginx-1w | nginx-2w) ;; *) die "unknown server '$s' in BENCH_MEMORY_SERVERS (fairway-10k nginx-1w nginx-2w)" ;; esac
  done
  [ -n "$MEM_SERVERS" ] || die "nothing to measure"
}

mem_check_ports() {
  local port
  for port in "$ORIGIN_A_PORT" "$ORIGIN_B_PORT" "$FAIRWAY_10K_PORT" "$FAIRWAY_10K_ADMIN_PORT" "$NGINX_PORT"; do
    port_free "$port" || die "127.0.0.1:$port is already in use (another bench running?); set BENCH_PORT_BASE"
  done
}

# RSS and PSS of a process in MB ("0 0" once it is gone).
mem_mb() {
  local rss pss
  rss=$(awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || true)
  pss=$(awk '/^Pss:/ { printf "%d", $2 / 1024 }' "/proc/$1/smaps_rollup" 2>/dev/null || true)
  echo "${rss:-0} ${pss:-0}"
}

# --- nginx with the 10,000 hosts: one server block per host, proxying to the origin ---
# Usage: start_nginx_10k WORKERS
start_nginx_10k() {
  local workers=$1
  [ -n "$NGINX" ] || return 1
  {
    nginx_common nginx "$workers"
    cat <<EOF
http {
  access_log /dev/null combined buffer=64k flush=1s;
$(nginx_http_common nginx)
  server_names_hash_max_size 32768;
  server_names_hash_bucket_size 128;
$(nginx_upstream)
  server {
    listen 127.0.0.1:$NGINX_PORT;
    server_name $HOST_HEADER;
$(nginx_proxy_location)
  }
EOF
    # The 9,999 other hosts, as Fairway's config has them.
    awk -v port="$NGINX_PORT" -v n="$HOSTS" -v loc="$(nginx_proxy_location)" \
      'BEGIN { for (i = 1; i < n; i++) printf "  server {\n    listen 127.0.0.1:%s;\n    server_name app-%d.bench.test;\n%s\n  }\n", port, i, loc }'
    echo "}"
  } >"$TMP/nginx-10k.conf"
  spawn nginx /dev/null "${PIN_PROXY[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx-10k.conf" -e "$LOGS/nginx.error.log"
  wait_ready nginx "$NGINX_PORT"
}

# Stops a server this script started (TERM, then KILL after 10 s) and forgets its pid.
stop_server() {
  local pid=$1 waited=0
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

# The worker processes of a primary / nginx master, in pid order.
workers_of() { pgrep -P "$1" 2>/dev/null | sort -n | tr '\n' ' '; }

# Measures one server: idle readings, then the highest readings under a bounded wrk load.
# Usage: mem_measure SERVER PID PORT EXPECTED_WORKERS
mem_measure() {
  local server=$1 pid=$2 port=$3 expected=$4 workers w i
  # Fairway's workers listen once started; nginx forks its workers at once. Wait for all.
  for i in $(seq 1 100); do
    workers=$(workers_of "$pid")
    [ "$(wc -w <<<"$workers")" -ge "$expected" ] && break
    sleep 0.1
  done
  [ "$(wc -w <<<"$workers")" -ge "$expected" ] || die "$server: expected $expected workers, found: ${workers:-none}"
  sleep "$SETTLE"
  declare -A idle peak idle_pss peak_pss
  for w in "$pid" $workers; do
    read -r "idle[$w]" "idle_pss[$w]" <<<"$(mem_mb "$w")"
    peak[$w]=0
    peak_pss[$w]=0
  done
  local out="$RESULTS/wrk-$server.txt"
  "${PIN_LOAD[@]}" wrk "-t$THREADS" "-c$CONNECTIONS" "-d${DURATION}s" -H "Host: $HOST_HEADER" "http://127.0.0.1:$port/" >"$out" 2>&1 &
  WRK_PID=$!
  # Sample every second while wrk runs (the last sample is at most a second before its end).
  while kill -0 "$WRK_PID" 2>/dev/null; do
    for w in "$pid" $workers; do
      local rss pss
      read -r rss pss <<<"$(mem_mb "$w")"
      [ "$rss" -gt "${peak[$w]}" ] && peak[$w]=$rss
      [ "$pss" -gt "${peak_pss[$w]}" ] && peak_pss[$w]=$pss
    done
    sleep 1
  done
  wait "$WRK_PID" || { log "wrk failed against $server: $(tr '\n' ' ' <"$out")"; check_alive; die "load on $server failed"; }
  WRK_PID=""
  local rate
  rate=$(awk '/^Requests\/sec/ { printf "%d", $2 }' "$out")
  [ -n "$rate" ] && [ "$rate" -gt 0 ] || die "$server served no requests under load (see ${out#"$ROOT"/})"
  log "$(printf '%-12s' "$server") $rate req/s under load"
  for w in "$pid" $workers; do
    echo "$server $([ "$w" = "$pid" ] && echo primary || echo worker) ${idle[$w]} ${peak[$w]} $rate ${idle_pss[$w]} ${peak_pss[$w]}" >>"$ROWS"
  done
}

mem_run_server() {
  local server=$1
  case "$server" in
    fairway-10k)
      FAIRWAY_10K_WORKERS=2
      if ! start_fairway_10k; then SKIPPED+=("fairway-10k: did not start (see above)"); return 0; fi
      mem_measure fairway-10k "$PID_fairway_10k" "$FAIRWAY_10K_PORT" 2
      stop_server "$PID_fairway_10k"
      ;;
    nginx-1w | nginx-2w)
      local n=${server#nginx-}
      n=${n%w}
      if ! start_nginx_10k "$n"; then
        [ -n "$NGINX" ] && SKIPPED+=("$server: did not start (see above)") || SKIPPED+=("$server: nginx not installed")
        return 0
      fi
      mem_measure "$server" "$PID_nginx" "$NGINX_PORT" "$n"
      stop_server "$PID_nginx"
      ;;
  esac
}

mem_report() {
  write_meta
  echo
  echo "Fairway memory bench $BENCH_META_DATE: $HOSTS hosts, wrk -t$THREADS -c$CONNECTIONS ${DURATION}s on one host, idle reading after ${SETTLE}s; nproc $BENCH_META_NPROC; pinning: $BENCH_META_PINNING"
  echo "node $BENCH_META_NODE, nginx $BENCH_META_NGINX, wrk $BENCH_META_WRK; origin: $ORIGIN_KIND; machine busy before start: $BENCH_META_BUSY_BEFORE"
  local s
  for s in "${SKIPPED[@]}"; do echo "SKIPPED $s"; done
  echo
  {
    printf '%-12s %-8s %12s %14s %12s %14s %10s\n' server process "idle RSS MB" "load RSS MB" "idle PSS MB" "load PSS MB" "req/s"
    awk '{ printf "%-12s %-8s %12d %14d %12d %14d %10d\n", $1, $2, $3, $4, $6, $7, $5 }' "$ROWS"
    echo
    # Per server: the largest worker figure (idle or under load), the sum of all processes (PSS: what the server takes).
    awk -v target="$TARGET_MB" '
      { rss = ($3 > $4 ? $3 : $4); pss = ($6 > $7 ? $6 : $7); all[$1] += pss }
      $2 == "worker" { if (rss > worst[$1]) worst[$1] = rss }
      $2 == "primary" { primary[$1] = rss }
      END {
        for (s in worst) printf "%-12s largest worker RSS %d MB, primary/master RSS %d MB, all processes PSS %d MB\n", s, worst[s], primary[s], all[s]
        if ("fairway-10k" in worst) {
          for (s in worst) if (s != "fairway-10k") printf "ratio fairway-10k / %s: largest worker RSS %.2f, all processes PSS %.2f\n", s, worst["fairway-10k"] / worst[s], all["fairway-10k"] / all[s]
          printf "%s RSS per worker <= %d MB, idle and under load (fairway-10k, --workers 2): largest %d MB\n", (worst["fairway-10k"] <= target ? "PASS" : "FAIL"), target, worst["fairway-10k"]
        }
      }' "$ROWS"
  } | tee "$RESULTS/table.txt"
  echo
  echo "raw results: ${RESULTS#"$ROOT"/}/ (rows.txt, wrk outputs, table.txt, logs/)"
  ln -sfn "memory-$STAMP" "$BENCH_DIR/results/latest-memory"
  if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q '^FAIL' "$RESULTS/table.txt"; then return 3; fi
  return 0
}

mem_main() {
  mem_check_settings
  prepare_bench mem_check_ports
  : >"$ROWS"
  start_origin
  local s
  for s in $MEM_SERVERS; do mem_run_server "$s"; done
  mem_report
}

mem_main "$@"
