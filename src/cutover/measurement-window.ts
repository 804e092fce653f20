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
 * Where readings come from. In-process: the data plane's {@link RequestStats}. With
 * several replicas (or worker processes) an implementation sums the counters of all of
 * them, so a window judges all the app's traffic.
 */
export interface StatsSource {
  counters(app: string, version: string): VersionCounters;
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

/** Readings of this process's own counters. */
export function localStatsSource(stats: RequestStats): StatsSource {
  return {
    counters(app, version) {
      const s = stats.forVersion(app, version);
      return { byClass: s.byClass.slice(), retries: s.retries, fine: s.fine.slice() };
    },
  };
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
