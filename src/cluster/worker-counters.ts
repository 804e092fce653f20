/**
 * @module
 * One data-plane worker's counters as the primary folds them: each report of the worker
 * is cumulative (everything it counted since it started), and what it adds to the
 * primary's {@link RequestStats} and {@link EndpointHealthStats} is the difference from
 * its previous report. So the primary's counters are the sum over every worker that ever
 * ran: a worker that dies leaves what it counted ({@link WorkerCounters.retire} takes only
 * its gauges back out), and its replacement, a new `WorkerCounters`, starts from zero.
 *
 * Lifecycle: one per worker process, from its fork to its exit.
 */
import type { EndpointHealthCounterData, EndpointHealthStats } from '../observability/endpoint-health-stats.js';
import { withoutGauges, type RequestCounterData, type RequestStats, type VersionCounterData } from '../observability/request-stats.js';

export class WorkerCounters {
  readonly #stats: RequestStats;
  readonly #health: EndpointHealthStats;
  /** The latest report (its `versions`: only those of that report; see {@link #versions}). */
  #counters: RequestCounterData | undefined;
  #healthCounters: EndpointHealthCounterData | undefined;
  /** The latest counters of every version the worker ever reported. */
  readonly #versions = new Map<string, VersionCounterData>();
  #retired = false;

  /** `stats` and `health`: the primary's counters, which this worker's are folded into. */
  constructor(stats: RequestStats, health: EndpointHealthStats) {
    this.#stats = stats;
    this.#health = health;
  }

  /** Adds what the worker counted since its previous report (`counters`: versions that did not change may be left out). */
  fold(counters: RequestCounterData, health: EndpointHealthCounterData): void {
    if (this.#retired) return;
    this.#stats.add(counters, this.#counters, (app, version) => this.#versions.get(versionKey(app, version)));
    this.#counters = counters;
    for (const [app, version, v] of counters.versions) this.#versions.set(versionKey(app, version), v);
    this.#health.add(health, this.#healthCounters);
    this.#healthCounters = health;
  }

  /** The worker exited: what it counted stays counted; what it had open (upgraded connections, TCP) is not open any more. */
  retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    const last = this.#counters;
    if (!last) return;
    const all: RequestCounterData = { ...last, versions: [...this.#versions].map(([key, v]) => [...splitKey(key), v] as const) };
    this.#stats.add(withoutGauges(all), all, (app, version) => this.#versions.get(versionKey(app, version)));
  }
}

function versionKey(app: string, version: string): string {
  return `${app}\u0000${version}`;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('\u0000');
  return [key.slice(0, i), key.slice(i + 1)];
}
