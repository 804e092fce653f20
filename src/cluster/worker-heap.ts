/**
 * @module
 * The V8 heap settings of a data-plane worker, chosen for its RSS under load (issue 7's
 * target: ≤ 120 MB per worker with 10,000 hosts; bench/README "Memory results").
 *
 * - **Worker: young generation 2 × 8 MB** (`--max-semi-space-size=8`, V8's default is 2 × 16 MB).
 *   A busy worker grows its young generation to the maximum within seconds and keeps it
 *   committed, so this takes ~16 MB off a loaded worker (10,000 hosts: ~126–131 → ~110–116
 *   MB). It costs ~1.5–3% of throughput (more, shorter scavenges of the same survivors;
 *   measured with both settings side by side on one core, each in both positions). V8
 *   reads it only when the heap is set up, so the primary puts it on the worker's command
 *   line ({@link workerExecArgv}).
 * - **Worker: old generation growing by 25%** between full collections (`--heap-growing-percent=25`).
 *   With V8's default a worker serving 10,000 hosts rose from ~117 MB idle to ~170 MB in its
 *   first 20–25 s of load before a full collection brought it back: after the start-up
 *   collection V8 lets the old generation grow to several times its live size (promoted
 *   request state).
 *
 * A single process (`--workers 1`) keeps V8's defaults. Letting its old generation grow by
 * 300% shortened its p99 (bench/README "The single process's old generation"), but made it
 * hold more memory and a stalled-client backpressure test flaky, so that stays an
 * operator's choice: `node --heap-growing-percent=300 dist/cli.js serve --workers 1`.
 *
 * V8 reads the growing factor at each full collection, so the process sets it itself at
 * start ({@link applyHeapGrowing}; `v8.setFlagsFromString` ignores an unknown flag, where a
 * command line would stop the process).
 *
 * An operator's own value wins: neither is applied when node's command line (or, for the
 * young generation, `NODE_OPTIONS`, which the workers inherit) sets it, in either spelling
 * (`node --max-semi-space-size=16 dist/cli.js serve`: V8's default young generation).
 */
import { setFlagsFromString } from 'node:v8';

export const WORKER_HEAP_GROWING_PERCENT = 25;
/** The most MB of one of the young generation's two semi-spaces (V8 rounds it to a power of two). */
export const WORKER_SEMI_SPACE_MB = 8;

/** Whether `args` set V8 flag `name` (`--name=…` or `--name …`, dashes or underscores). */
function setsFlag(args: readonly string[], name: string): boolean {
  return args.some((a) => {
    const flag = a.replaceAll('_', '-');
    return flag === name || flag.startsWith(`${name}=`);
  });
}

/** In a worker, at start ({@link WORKER_HEAP_GROWING_PERCENT}): the old generation's growing factor, unless node's command line set one. */
export function applyHeapGrowing(execArgv: readonly string[], setFlags: (flags: string) => void = setFlagsFromString): void {
  if (setsFlag(execArgv, '--heap-growing-percent')) return;
  setFlags(`--heap-growing-percent=${WORKER_HEAP_GROWING_PERCENT}`);
}

/**
 * In the primary: the node flags a worker starts with — the primary's own (`execArgv`, as
 * node:cluster would pass them) plus the young generation's cap, unless they or
 * `nodeOptions` (the `NODE_OPTIONS` the worker inherits) set one.
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const own = [...execArgv];
  if (setsFlag(own, '--max-semi-space-size') || setsFlag((nodeOptions ?? '').split(/\s+/), '--max-semi-space-size')) return own;
  return [...own, `--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`];
}
