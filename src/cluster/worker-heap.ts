/**
 * @module
 * The V8 heap setting of a data-plane worker, chosen for its RSS under load (bench/README
 * "Memory results"). With V8's defaults a worker serving 10,000 hosts rose from ~117 MB
 * idle to ~170 MB in its first 20–25 s of load, then settled at ~127 MB once a full
 * collection had run: after the start-up collection V8 lets the old generation grow to
 * several times its live size (promoted request state) before the next one. A heap
 * growing factor of 1.25 (`--heap-growing-percent=25`) makes that next collection come
 * early: the same worker stays at ~125–131 MB from the start of the load.
 *
 * It is set in the worker at start with `v8.setFlagsFromString` (V8 reads it at each full
 * collection; an unknown flag there is ignored, where on a command line it would stop the
 * process). An operator's own value wins: it is not applied when the flag is on node's
 * command line (`node --heap-growing-percent=0 dist/cli.js serve`: the workers inherit it;
 * `0` is V8's own behaviour). The young generation keeps V8's size: capping it
 * (`NODE_OPTIONS=--max-semi-space-size=8`) takes ~16 MB more off each worker for ~10% of
 * its throughput (README "Workers"). A single process (`--workers 1`) keeps V8's defaults.
 */
import { setFlagsFromString } from 'node:v8';

export const WORKER_HEAP_GROWING_PERCENT = 25;

/** In a worker, at start: the old generation's growing factor, unless node's command line set one (either spelling). */
export function applyWorkerHeapGrowing(execArgv: readonly string[], setFlags: (flags: string) => void = setFlagsFromString): void {
  if (execArgv.some((a) => a.replaceAll('_', '-').startsWith('--heap-growing-percent='))) return;
  setFlags(`--heap-growing-percent=${WORKER_HEAP_GROWING_PERCENT}`);
}
