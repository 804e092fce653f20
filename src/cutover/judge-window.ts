/**
 * @module
 * The guardrails: how one step's window is judged. Pure; the controller calls it on
 * every evaluation tick and when the hold ends.
 *
 * - The new version is judged only once it served `minRequests` requests in the window
 *   (below that, {@link Verdict.enoughTraffic} is false and nothing is breached).
 * - Baseline (`baseline: old`, the default): the old version's numbers in the same window
 *   count when it served at least `max(minRequests, 1)` requests in it. The new version
 *   may then show an error rate up to the old one's plus `maxErrorRate`, and a p99 up to
 *   the larger of `maxP99Ms` and the old one's p99: a failure both versions share (a
 *   database down) is not the new version's fault, and rolling back would not fix it.
 *   Without a usable baseline the thresholds apply as they are.
 * - Error rate above its limit → `error_rate`; p99 above its limit → `p99` (error rate
 *   is checked first). Equal to the limit passes.
 */
import type { CutoverPlan } from './cutover-plan.js';
import type { WindowNumbers } from './measurement-window.js';

export type BreachCause = 'error_rate' | 'p99';

export interface Verdict {
  /** The new version served at least `minRequests` in the window. */
  readonly enoughTraffic: boolean;
  /** The limits this window was judged against (baseline included). */
  readonly limits: { readonly errorRate: number; readonly p99Ms: number | null };
  readonly breach?: { readonly cause: BreachCause; readonly message: string };
}

export function judgeWindow(plan: CutoverPlan, next: WindowNumbers, old: WindowNumbers): Verdict {
  const baseline = plan.baseline === 'old' && old.requests >= Math.max(plan.minRequests, 1);
  const errorRate = plan.maxErrorRate + (baseline ? old.errorRate : 0);
  const p99Ms = plan.maxP99Ms === null ? null : Math.max(plan.maxP99Ms, baseline && old.p99Ms !== null ? old.p99Ms : 0);
  const limits = { errorRate: round6(errorRate), p99Ms };
  const enoughTraffic = next.requests >= plan.minRequests;
  if (!enoughTraffic) return { enoughTraffic, limits };
  if (next.errorRate > errorRate) {
    return {
      enoughTraffic,
      limits,
      breach: { cause: 'error_rate', message: `error rate of ${plan.to} ${percent(next.errorRate)} (${next.errors}/${next.requests}) is above the limit ${percent(errorRate)}${baseline ? ` (${plan.from}: ${percent(old.errorRate)})` : ''}` },
    };
  }
  if (p99Ms !== null && next.p99Ms !== null && next.p99Ms > p99Ms) {
    return {
      enoughTraffic,
      limits,
      breach: { cause: 'p99', message: `p99 of ${plan.to} ${next.p99Ms} ms is above the limit ${p99Ms} ms${baseline && old.p99Ms !== null ? ` (${plan.from}: ${old.p99Ms} ms)` : ''}` },
    };
  }
  return { enoughTraffic, limits };
}

/** `0.0123` → `1.23%`. */
export function percent(rate: number): string {
  return `${(Math.round(rate * 10000) / 100).toFixed(2)}%`;
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
