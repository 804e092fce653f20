/**
 * @module
 * How many data-plane workers `fairway serve --workers N|auto` runs. `auto` is the CPUs
 * this process may use: `os.availableParallelism()` (the CPU affinity), lowered to the
 * cgroup's CPU quota when one is set (a container limited to 2 CPUs on a 64-core node
 * gets 2 workers, not 64), rounded up, at least 1. Read once, at start.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** The most workers `--workers` accepts. */
export const MAX_WORKERS = 256;

/** Where `auto` looks (the defaults: this machine; tests give their own). */
export interface WorkerCountHost {
  /** CPUs this process may run on (default `os.availableParallelism()`). */
  readonly cpus?: number;
  /** A cgroup file's text, undefined when it cannot be read (default: read from disk). */
  readonly readFile?: (file: string) => string | undefined;
}

/** `auto` or a whole number from 1 to {@link MAX_WORKERS}; undefined for anything else. */
export function parseWorkerCount(text: string, host?: WorkerCountHost): number | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'auto') return autoWorkerCount(host);
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n >= 1 && n <= MAX_WORKERS ? n : undefined;
}

/** See the module comment. */
export function autoWorkerCount(host: WorkerCountHost = {}): number {
  const quota = cgroupCpuQuota(host.readFile ?? readText);
  const cpus = host.cpus ?? availableParallelism();
  return Math.max(1, quota === undefined ? cpus : Math.min(cpus, Math.ceil(quota)));
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** CPUs the cgroup allows (quota / period), or undefined when unlimited or unknown. */
function cgroupCpuQuota(readFile: (file: string) => string | undefined): number | undefined {
  const read = (file: string) => readFile(file)?.trim();
  // cgroup v2: "max 100000" or "<quota> <period>".
  const v2 = read('/sys/fs/cgroup/cpu.max')?.split(/\s+/);
  if (v2 && v2.length === 2) return v2[0] === 'max' ? undefined : ratio(Number(v2[0]), Number(v2[1]));
  // cgroup v1: a quota of -1 means none.
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  return quota > 0 ? ratio(quota, period) : undefined;
}

function ratio(quota: number, period: number): number | undefined {
  return quota > 0 && period > 0 ? quota / period : undefined;
}
