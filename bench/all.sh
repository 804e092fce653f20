#!/usr/bin/env bash
# Every figure of the performance issue in one command (`BENCH_MODE=all npm run bench`, or
# `bash bench/all.sh`). See bench/README.md, "Everything at once".
#
# Runs, one after the other (each a bench of its own, with its own results directory):
#   http     the plain bench: plain HTTP keep-alive, every peer, and 10,000 hosts (fairway-10k)
#   1mb      the plain bench with 1 MiB answers (BENCH_PATH=/1mb)
#   tls      HTTPS keep-alive, resumed connections, full handshakes (bench/tls.sh)
#   workers  Fairway with 1 and 2 workers against nginx with 1 and 2 workers (bench/workers.sh)
#   memory   RSS per worker with 10,000 hosts (bench/memory.sh)
# then prints the verdict lines of each (PASS, FAIL, SKIP, WARN, SKIPPED, SCALING, CLIENT-BOUND, LATENCY)
# under its name, and writes them to bench/results/all-<UTC time>/summary.txt with the path of
# each part's results. Every BENCH_* setting reaches every part (BENCH_DURATION=5 BENCH_REPS=1
# for a quick look); BENCH_ALL_PARTS="http tls" runs only those. Exits 0 when every part ran,
# 1 when one could not run (the others still run); with BENCH_STRICT=1, 3 when a target failed.
set -euo pipefail

ALL_BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PARTS=${BENCH_ALL_PARTS:-"http 1mb tls workers memory"}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ALL_BENCH_DIR/results/all-$STAMP"
mkdir -p "$OUT"

for part in $PARTS; do
  case "$part" in http | 1mb | tls | workers | memory) ;; *) printf 'bench: unknown part %s in BENCH_ALL_PARTS (http 1mb tls workers memory)\n' "$part" >&2; exit 1 ;; esac
done

# The results directory a part's run made: the `latest*` link it points at.
latest_of() {
  case "$1" in
    http | 1mb) echo latest ;;
    *) echo "latest-$1" ;;
  esac
}

failed_parts=()
strict_failed=0
for part in $PARTS; do
  printf '\n[bench all] === %s ===\n' "$part"
  mode=$part path=${BENCH_PATH:-/}
  [ "$part" != 1mb ] || { mode=http; path=/1mb; }
  # Each part alone decides PASS/FAIL; BENCH_STRICT is judged here, over all of them.
  if BENCH_MODE=$mode BENCH_PATH=$path BENCH_STRICT=0 bash "$ALL_BENCH_DIR/run.sh" 2>&1 | tee "$OUT/$part.log"; then
    dir=$(readlink -f "$ALL_BENCH_DIR/results/$(latest_of "$part")")
    {
      printf '== %s (%s)\n' "$part" "${dir#"$(dirname "$ALL_BENCH_DIR")"/}"
      grep -E '^(PASS|FAIL|SKIP|WARN|SKIPPED|SCALING|CLIENT-BOUND|LATENCY)' "$dir/table.txt" || echo '(no verdict lines)'
      echo
    } >>"$OUT/summary.txt"
    grep -q '^FAIL' "$dir/table.txt" && strict_failed=1
  else
    failed_parts+=("$part")
    printf '== %s: did not run to the end (see %s)\n\n' "$part" "$OUT/$part.log" >>"$OUT/summary.txt"
  fi
done

printf '\n[bench all] summary (%s)\n\n' "${OUT#"$(dirname "$ALL_BENCH_DIR")"/}/summary.txt"
cat "$OUT/summary.txt"
[ "${#failed_parts[@]}" -eq 0 ] || exit 1
if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$strict_failed" = 1 ]; then exit 3; fi
exit 0
