/**
 * @module
 * A cutover plan: which app, from which version to which, the steps of traffic to move,
 * how long to hold each step, and the guardrails the new version is judged on. Validated
 * once against the live app when a cutover starts ({@link parseCutoverPlan}), then
 * frozen; the admin API takes and answers the same JSON keys.
 *
 * The steps are percentages of the traffic that `from` and `to` carry together: at a
 * step of p%, `to` gets p% of their combined weight and `from` the rest. Other versions
 * of the app keep their weights. The combined weight is the sum of the two versions'
 * weights when the cutover starts (100 when both are 0).
 */
import { FairwayError } from '../errors.js';
import type { AppSpec } from '../model.js';

export type OnNoTraffic = 'hold' | 'proceed';
/** `old`: the new version is judged against the old one in the same window too; `none`: thresholds only. */
export type Baseline = 'old' | 'none';

export interface CutoverPlan {
  readonly app: string;
  readonly from: string;
  readonly to: string;
  /** Percent of the two versions' traffic on `to`, strictly increasing, each in (0, 100], the last 100. */
  readonly steps: readonly number[];
  /** How long each step is held and judged, ms. */
  readonly holdMs: number;
  /** Highest error rate (fraction, 0.01 = 1%) the new version may show above the baseline. */
  readonly maxErrorRate: number;
  /** Highest p99 latency of the new version, ms (null: no latency guardrail). */
  readonly maxP99Ms: number | null;
  /** Requests the new version must serve in a step's window before it is judged. */
  readonly minRequests: number;
  /** When a step's hold ends with fewer than `minRequests`: keep holding, or go on unjudged. */
  readonly onNoTraffic: OnNoTraffic;
  readonly baseline: Baseline;
}

export const PLAN_DEFAULTS = {
  steps: [5, 25, 50, 100],
  holdMs: 30_000,
  maxErrorRate: 0.01,
  maxP99Ms: 500,
  minRequests: 50,
  onNoTraffic: 'hold',
  baseline: 'old',
} as const satisfies Omit<CutoverPlan, 'app' | 'from' | 'to'>;

const KEYS = new Set(['to', 'from', 'steps', 'holdMs', 'maxErrorRate', 'maxP99Ms', 'minRequests', 'onNoTraffic', 'baseline']);
const MAX_HOLD_MS = 24 * 3_600_000;
const MAX_STEPS = 20;

/**
 * Validates a plan body (`POST /v1/apps/{app}/cutover`) against the live `app`, filling
 * defaults. `from` defaults to the version other than `to` with the highest weight.
 * Throws FW_VERSION_NOT_FOUND for an unknown version, FW_CUTOVER_INVALID otherwise.
 */
export function parseCutoverPlan(body: unknown, app: AppSpec): CutoverPlan {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalid('the plan must be a JSON object like {"to":"v2","steps":[5,25,50,100]}');
  }
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!KEYS.has(key)) throw invalid(`unknown key "${key}" (keys: ${[...KEYS].join(', ')})`);
  const names = app.versions.map((v) => v.name);
  const version = (key: 'to' | 'from', value: unknown): string => {
    if (typeof value !== 'string' || value === '') throw invalid(`"${key}" must be a version name`);
    if (!names.includes(value)) throw new FairwayError('FW_VERSION_NOT_FOUND', `app "${app.name}" has no version "${value}" (versions: ${names.join(', ')})`);
    return value;
  };
  const to = version('to', b.to);
  let from: string;
  if (b.from === undefined) {
    const others = app.versions.filter((v) => v.name !== to);
    if (others.length === 0) throw invalid(`app "${app.name}" has only version "${to}": nothing to cut over from`);
    from = others.reduce((best, v) => (v.weight > best.weight ? v : best)).name;
  } else {
    from = version('from', b.from);
  }
  if (from === to) throw invalid(`"from" and "to" are both "${to}"`);
  const toSpec = app.versions.find((v) => v.name === to)!;
  if (toSpec.endpoints.length === 0) throw invalid(`version "${to}" of "${app.name}" has no endpoints: a cutover to it would roll back at once`);

  const steps = b.steps === undefined ? [...PLAN_DEFAULTS.steps] : b.steps;
  if (!Array.isArray(steps) || steps.length === 0 || steps.length > MAX_STEPS) throw invalid(`"steps" must be a list of 1 to ${MAX_STEPS} percentages, like [5,25,50,100]`);
  steps.forEach((s: unknown, i) => {
    if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0 || s > 100) throw invalid(`step ${i + 1} (${JSON.stringify(s)}) must be a percentage > 0 and <= 100`);
    if (i > 0 && s <= (steps[i - 1] as number)) throw invalid(`steps must increase: ${steps.join(',')}`);
  });
  if (steps[steps.length - 1] !== 100) throw invalid(`the last step must be 100 (all traffic on "${to}"): ${steps.join(',')}`);

  const number = (key: string, fallback: number, min: number, max: number, integer = false): number => {
    const v = b[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      throw invalid(`"${key}" must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
    return v;
  };
  const holdMs = number('holdMs', PLAN_DEFAULTS.holdMs, 0, MAX_HOLD_MS, true);
  const maxErrorRate = number('maxErrorRate', PLAN_DEFAULTS.maxErrorRate, 0, 1);
  const maxP99Ms = b.maxP99Ms === null ? null : number('maxP99Ms', PLAN_DEFAULTS.maxP99Ms, 1, 3_600_000);
  const minRequests = number('minRequests', PLAN_DEFAULTS.minRequests, 0, 1e9, true);
  const onNoTraffic = b.onNoTraffic ?? PLAN_DEFAULTS.onNoTraffic;
  if (onNoTraffic !== 'hold' && onNoTraffic !== 'proceed') throw invalid('"onNoTraffic" must be "hold" or "proceed"');
  const baseline = b.baseline ?? PLAN_DEFAULTS.baseline;
  if (baseline !== 'old' && baseline !== 'none') throw invalid('"baseline" must be "old" or "none"');
  return { app: app.name, from, to, steps: steps as number[], holdMs, maxErrorRate, maxP99Ms, minRequests, onNoTraffic, baseline };
}

/** The weights of `from` and `to` at `percent` of a combined weight `total` (3 decimals). */
export function stepWeights(plan: CutoverPlan, total: number, percent: number): Record<string, number> {
  const to = Math.round(total * percent * 10) / 1000;
  return { [plan.from]: Math.round((total - to) * 1000) / 1000, [plan.to]: to };
}

function invalid(message: string): FairwayError {
  return new FairwayError('FW_CUTOVER_INVALID', message);
}
