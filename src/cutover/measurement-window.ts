/**
 * @module
 * A per-version measurement window: the difference between two readings of a version's
 * request counters ({@link VersionStats}, kept for the process lifetime), turned into the
 * numbers a cutover is judged on.
 *
 * What counts (the definition README "Cutover" documents):
 * - **requests** = attempts on the version: responses it finished (any status, the
 *   router's own 502/504 after failed attempts included) plus failed attempts on it that
 *   the router sent again to another endpoint (`retries`). A request that failed on the
 *   new version and was then served by the old one is one request of each.
 * - **errors** = responses with a 5xx status finished on the version (from the app, or
 *   the router's 502/504 when every attempt failed) plus those retried failed attempts
 *   (connection refused, reset, timeout). Each failed attempt is counted once: a final
 *   failed attempt is its 5xx answer, an earlier one is a retry.
 * - Not errors: 4xx (client aborts, logged as 499, included), 1xx–3xx.
 * - **p99** = the 99th percentile of the end-to-end duration (request received → response
 *   finished) of responses finished on the version, from the fine log histogram: the
 *   upper bound of the bucket holding the 99th percentile, so it overstates by < 9%.
 *   `null` when the window holds no finished response.
 *
 * With several replicas a window is the sum of each replica's own difference, with
 * restarts detected ({@link windowOf}).
 *
 * The hot path is untouched: a reading copies a few small arrays, taken by the cutover
 * controller once per evaluation tick.
 */
import { FINE_BUCKETS, fineBucketUpperBound, type RequestStats } from '../observability/request-stats.js';

/** One reading of a version's counters. */
export interface VersionCounters {
  /** Responses by status class, index 1 = 1xx … 5 = 5xx. */
  readonly byClass: readonly number[];
  readonly retries: number;
  /** Fine latency histogram counts (non-cumulative). */
  readonly fine: readonly number[];
}

/**
 * The counters of one replica (one router process) at one moment, for the versions asked.
 */
export interface ReplicaCounters {
  /** Changes when the process restarts (its counters then start again from zero). */
  readonly start: string;
  /** When that process started, ms since the epoch (its own clock). */
  readonly startedAt: number;
  readonly versions: Readonly<Record<string, VersionCounters>>;
}

/** A replica that was known but not read. */
export interface MissingReplica {
  readonly replica: string;
  readonly reason: string;
}

/** One reading of an app's counters across every replica a source knows. */
export interface StatsReading {
  /** When it was taken, ms since the epoch. */
  readonly at: number;
  /** By replica name. */
  readonly replicas: Readonly<Record<string, ReplicaCounters>>;
  /** Replicas known to exist that could not be read (down, unreachable, answering errors). */
  readonly unreachable: readonly MissingReplica[];
}

/**
 * Where readings come from. In-process: the data plane's {@link RequestStats}
 * ({@link localStatsSource}). With several replicas, an implementation reads every
 * replica's counters (`ReplicaStatsSource`), so a window judges all the app's traffic.
 * `read()` never rejects: a replica it cannot read is listed in `unreachable`.
 */
export interface StatsSource {
  read(app: string, versions: readonly string[]): Promise<StatsReading>;
}

/** What a window counted: which replicas, and which were left out and why (see {@link windowOf}). */
export interface WindowReplicas {
  readonly counted: readonly string[];
  readonly missing: readonly MissingReplica[];
}

/** The numbers of one version over a window. */
export interface WindowNumbers {
  readonly requests: number;
  readonly errors: number;
  /** errors / requests, 0 when there were no requests. */
  readonly errorRate: number;
  /** Milliseconds; null without finished responses. */
  readonly p99Ms: number | null;
}

/** The counters of `app`/`version` in `stats` now (copies). */
export function versionCounters(stats: RequestStats, app: string, version: string): VersionCounters {
  const s = stats.forVersion(app, version);
  return { byClass: s.byClass.slice(), retries: s.retries, fine: s.fine.slice() };
}

/** This process as a replica: its name, the id of this process start, and when it started. */
export interface LocalReplica {
  readonly name: string;
  readonly start: string;
  readonly startedAt: number;
}

/** Readings of this process's own counters only (file mode, or a single replica). */
export function localStatsSource(stats: RequestStats, self: LocalReplica = { name: 'local', start: 'local', startedAt: 0 }): StatsSource & { counters(app: string, version: string): VersionCounters } {
  return {
    counters: (app, version) => versionCounters(stats, app, version),
    async read(app, versions) {
      return { at: Date.now(), replicas: { [self.name]: localReading(stats, self, app, versions) }, unreachable: [] };
    },
  };
}

/** This process's {@link ReplicaCounters} for `versions` of `app`. */
export function localReading(stats: RequestStats, self: LocalReplica, app: string, versions: readonly string[]): ReplicaCounters {
  return { start: self.start, startedAt: self.startedAt, versions: Object.fromEntries(versions.map((v) => [v, versionCounters(stats, app, v)])) };
}

const NO_COUNTERS: VersionCounters = { byClass: [0, 0, 0, 0, 0, 0], retries: 0, fine: [] };

/**
 * The numbers of `version` between two readings of several replicas: the sum, over the
 * replicas read at `end`, of each one's own difference.
 * - A replica read at both with the same `start`: end − start.
 * - A replica whose `start` changed (it restarted), or that was not read at `start` but
 *   started after `start.at`: everything it counted (end − 0).
 * - A replica not read at `start` that started before it (unreachable then, or not yet
 *   known): its share of the window is unknown; left out, listed in `missing`.
 * - A replica read at `start` but not at `end` (unreachable, or gone): left out, listed.
 */
export function windowOf(start: StatsReading, end: StatsReading, version: string): { numbers: WindowNumbers; replicas: WindowReplicas } {
  const byClass = [0, 0, 0, 0, 0, 0];
  let retries = 0;
  const fine = new Array<number>(FINE_BUCKETS).fill(0);
  const counted: string[] = [];
  const missing: MissingReplica[] = [...end.unreachable];
  for (const [name, e] of Object.entries(end.replicas).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const s = start.replicas[name];
    let base: VersionCounters;
    if (s && s.start === e.start) base = s.versions[version] ?? NO_COUNTERS;
    else if (s || e.startedAt >= start.at) base = NO_COUNTERS; // restarted, or new since the window began
    else {
      missing.push({ replica: name, reason: 'not read when the window started' });
      continue;
    }
    const now = e.versions[version] ?? NO_COUNTERS;
    for (let c = 0; c < 6; c++) byClass[c]! += (now.byClass[c] ?? 0) - (base.byClass[c] ?? 0);
    retries += now.retries - base.retries;
    for (let i = 0; i < FINE_BUCKETS; i++) fine[i]! += (now.fine[i] ?? 0) - (base.fine[i] ?? 0);
    counted.push(name);
  }
  for (const name of Object.keys(start.replicas)) {
    if (!(name in end.replicas) && !missing.some((m) => m.replica === name)) missing.push({ replica: name, reason: 'gone since the window started' });
  }
  return { numbers: windowBetween(NO_COUNTERS, { byClass, retries, fine }), replicas: { counted, missing } };
}

/** The numbers between reading `start` and reading `end` of the same version. */
export function windowBetween(start: VersionCounters, end: VersionCounters): WindowNumbers {
  let finished = 0;
  for (let c = 1; c <= 5; c++) finished += (end.byClass[c] ?? 0) - (start.byClass[c] ?? 0);
  const retried = end.retries - start.retries;
  const errors = (end.byClass[5] ?? 0) - (start.byClass[5] ?? 0) + retried;
  const requests = finished + retried;
  return { requests, errors, errorRate: requests > 0 ? errors / requests : 0, p99Ms: quantileMs(start.fine, end.fine, 0.99) };
}

/** The `q` quantile of the durations between two readings of the fine histogram, in ms (bucket upper bound). */
export function quantileMs(start: readonly number[], end: readonly number[], q: number): number | null {
  let total = 0;
  for (let i = 0; i < FINE_BUCKETS; i++) total += (end[i] ?? 0) - (start[i] ?? 0);
  if (total <= 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < FINE_BUCKETS; i++) {
    seen += (end[i] ?? 0) - (start[i] ?? 0);
    if (seen >= rank) return round3(fineBucketUpperBound(i) * 1000);
  }
  return round3(fineBucketUpperBound(FINE_BUCKETS - 1) * 1000);
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
