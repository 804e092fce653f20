#!/usr/bin/env bash
# Fairway's paired benchmark (`BENCH_MODE=paired npm run bench`, or `bash bench/paired.sh`).
# See bench/README.md, "Paired benchmark".
#
# The plain bench measures one proxy at a time, so its ratios compare figures taken tens of
# seconds apart, and this kind of VM changes speed by ±20–30% in that time (neighbours on
# the host). Here each proxy is measured *at the same time* as nginx: both pinned to the
# same CPU, each loaded by its own `wrk -t1 -c64` on the other CPU, for the same seconds.
# Whatever slows the machine slows both. The figure compared is CPU time per request of
# each process during that window (user + system, all threads; nginx: master + worker):
# nginx's CPU per request divided by the proxy's is the proxy's throughput ratio to nginx
# when each has a core to itself, the "req/s ÷ nginx" of the plain bench, without the
# drift between rows. But sharing a core costs both some cache and switching, not
# necessarily alike (both use 1.3–1.7× their CPU per request alone), so the ratio to nginx
# is an estimate: the plain bench stays the definition of the targets. Where this bench is precise (medians within ±1.5–2%; single reps up to ±5%) is
# between rows measured the same way: fairway ÷ undici-min, fairway-10k ÷ fairway, or a
# build against another (`fairway-b`, see bench/README.md).
#
# Loopback only. The plain bench's origin, nginx and peers (bench/run.sh), started once;
# then, for each rep and each proxy in BENCH_PAIRED_PROXIES: a warm-up of both, and one
# measurement of both. Prints a table (medians over reps, min–max of the ratio) and the
# plain bench's targets judged on these ratios; writes bench/results/paired-<UTC time>/.
#
# Tunables, besides the plain bench's BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_REPS (3),
# BENCH_CONNECTIONS, BENCH_PATH, BENCH_PORT_BASE, BENCH_PROXY_CPU, BENCH_LOAD_CPU,
# BENCH_NODE_FLAGS, BENCH_NO_INSTALL, BENCH_NGINX, BENCH_STRICT:
#   BENCH_PAIRED_PROXIES="fairway fairway-10k caddy http-proxy-3 undici-min"   measured against the reference, in this order
#   BENCH_PAIRED_REFERENCE=nginx   what each of them is measured beside. Another row instead (say `fairway`, with
#                                  BENCH_PAIRED_PROXIES=fairway-b) makes an A/B of two builds or node flag sets, each
#                                  rep in the same window on the same CPU; nginx's targets are then not judged.
set -euo pipefail

PAIRED_BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The plain bench's settings and functions (origin, peers, process bookkeeping and cleanup
# on exit); its main does not run when sourced.
# shellcheck source=run.sh
source "$PAIRED_BENCH_DIR/run.sh"

PAIRED=${BENCH_PAIRED_PROXIES:-"fairway fairway-10k caddy http-proxy-3 undici-min"}
REFERENCE=${BENCH_PAIRED_REFERENCE:-nginx}
# start_proxies starts what PROXIES names: the reference first.
PROXIES="$REFERENCE $PAIRED"
RUN_SH_MAIN=1   # `wanted` (find_tools: install HAProxy/Caddy when asked for) reads PROXIES as a run of its own would

RESULTS="$BENCH_DIR/results/paired-$STAMP"
LOGS="$RESULTS/logs"
ROWS="$RESULTS/rows.jsonl"   # one JSON line per proxy and rep

paired_check_settings() {
  check_settings
  local p
  [ "$REFERENCE" != direct ] && [[ "$REFERENCE" != *" "* ]] || die "BENCH_PAIRED_REFERENCE: '$REFERENCE' is not one proxy of the plain bench"
  for p in $PAIRED; do
    [ "$p" != "$REFERENCE" ] && [ "$p" != direct ] || die "BENCH_PAIRED_PROXIES: '$p' cannot be paired with $REFERENCE"
  done
  [ -n "$PAIRED" ] || die "nothing to measure"
}

# One measurement of PROXY and the reference at once. Usage: measure_pair PROXY REP
measure_pair() {
  local name=$1 rep=$2 port ref_port
  port=$(port_of "$name")
  ref_port=$(port_of "$REFERENCE")
  local wrk=("${PIN_LOAD[@]}" wrk "-t$THREADS" "-c$CONNECTIONS" -H "Host: $HOST_HEADER")
  local out="$RESULTS/wrk-$name-rep$rep.txt" ref="$RESULTS/wrk-$REFERENCE-with-$name-rep$rep.txt"
  if [ "$WARMUP" -gt 0 ]; then
    "${wrk[@]}" "-d${WARMUP}s" "http://127.0.0.1:$ref_port$BENCH_PATH" >"$TMP/warmup-reference.txt" 2>&1 &
    WRK_PID=$!
    "${wrk[@]}" "-d${WARMUP}s" "http://127.0.0.1:$port$BENCH_PATH" >"$TMP/warmup.txt" 2>&1 ||
      { check_alive; die "warm-up of $name failed: $(tr '\n' ' ' <"$TMP/warmup.txt")"; }
    wait "$WRK_PID" || { check_alive; die "warm-up of $REFERENCE failed: $(tr '\n' ' ' <"$TMP/warmup-reference.txt")"; }
    WRK_PID=""
  fi
  local pid_p pid_r pidvar="PID_${name//-/_}" refvar="PID_${REFERENCE//-/_}"
  pid_p=${!pidvar}
  pid_r=${!refvar}
  local p0 r0 p1 r1 load0 load1 wrk_p
  p0=$(cpu_ticks "$pid_p")
  r0=$(cpu_ticks "$pid_r")
  load0=$(cpu_jiffies "cpu$LOAD_CPU")
  # The two loads start a moment apart; odd reps start the reference's first, even reps the
  # proxy's, so that whatever the first gains is shared out over the reps.
  if [ $((rep % 2)) = 1 ]; then
    "${wrk[@]}" "-d${DURATION}s" --latency "http://127.0.0.1:$ref_port$BENCH_PATH" >"$ref" 2>&1 &
    WRK_PID=$!
    "${wrk[@]}" "-d${DURATION}s" --latency "http://127.0.0.1:$port$BENCH_PATH" >"$out" 2>&1 &
    wrk_p=$!
  else
    "${wrk[@]}" "-d${DURATION}s" --latency "http://127.0.0.1:$port$BENCH_PATH" >"$out" 2>&1 &
    wrk_p=$!
    "${wrk[@]}" "-d${DURATION}s" --latency "http://127.0.0.1:$ref_port$BENCH_PATH" >"$ref" 2>&1 &
    WRK_PID=$!
  fi
  wait "$wrk_p" || { check_alive; die "wrk failed against $name: $(tr '\n' ' ' <"$out")"; }
  wait "$WRK_PID" || { check_alive; die "wrk failed against $REFERENCE: $(tr '\n' ' ' <"$ref")"; }
  WRK_PID=""
  p1=$(cpu_ticks "$pid_p")
  r1=$(cpu_ticks "$pid_r")
  load1=$(cpu_jiffies "cpu$LOAD_CPU")
  node "$BENCH_DIR/lib/paired-report.mjs" row "$name" "$REFERENCE" "$rep" "$out" "$ref" $((p1 - p0)) $((r1 - r0)) "$CLK_TCK" \
    "$DURATION" "$(busy_between "$load0" "$load1")" >>"$ROWS"
  log "rep $rep/$REPS $(tail -n 1 "$ROWS" | node "$BENCH_DIR/lib/paired-report.mjs" line)"
}

paired_main() {
  paired_check_settings
  prepare_bench check_ports
  [ "$REFERENCE" != nginx ] || [ -n "$NGINX" ] || die "nginx not found: the paired bench measures against nginx (apt-get install nginx-light)"
  [ "${#PIN_PROXY[@]}" -gt 0 ] || die "the paired bench needs two CPUs to pin to (proxies on one, load on the other)"
  start_origin
  start_proxies
  [[ " ${MEASURED[*]} " == *" $REFERENCE "* ]] || die "$REFERENCE did not start: nothing to pair with"
  local rep p
  for rep in $(seq 1 "$REPS"); do
    for p in "${MEASURED[@]}"; do
      [ "$p" = "$REFERENCE" ] || measure_pair "$p" "$rep"
    done
  done
  write_meta
  BENCH_META_COMMAND="BENCH_MODE=paired npm run bench"
  node "$BENCH_DIR/lib/paired-report.mjs" summary "$ROWS" | tee "$RESULTS/table.txt"
  log "raw results: ${RESULTS#"$ROOT"/}/ (wrk outputs, rows.jsonl, table.txt)"
  if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q '^FAIL' "$RESULTS/table.txt"; then exit 3; fi
}

paired_main "$@"
