/**
 * @module
 * Text for `fairway cutover` and `fairway rollback`: one line per recorded decision, the
 * live line of the step being held, and the `--status` block. Pure functions of the
 * admin API's answers.
 */
import type { CutoverDecision } from '../cutover/cutover-store.js';
import type { CutoverPlan } from '../cutover/cutover-plan.js';
import type { CutoverProgress, CutoverStatus } from '../cutover/cutover-run.js';
import type { WindowNumbers } from '../cutover/measurement-window.js';

/** 450 → `450ms`, 30000 → `30s`, 1500 → `1.5s`, 150000 → `2m30s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return s === 0 ? `${m}m` : `${m}m${s}s`;
}

/** 0.0123 → `1.23%`. */
export function formatRate(rate: number): string {
  return `${(Math.round(rate * 10000) / 100).toFixed(2)}%`;
}

/** 4.757 → `4.8ms`, 512.3 → `512ms`, null → `-`. */
export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 10 ? `${Math.round(ms * 10) / 10}ms` : `${Math.round(ms)}ms`;
}

export function formatWeights(weights: Readonly<Record<string, number>>): string {
  return Object.entries(weights).map(([v, w]) => `${v}=${w}`).join(' ');
}

/** `v2 512 req, 0.00% errors, p99 4.8ms`. */
export function formatWindow(version: string, w: WindowNumbers): string {
  return `${version} ${w.requests} req, ${formatRate(w.errorRate)} errors, p99 ${formatMs(w.p99Ms)}`;
}

/** The plan in one line. */
export function formatPlan(plan: CutoverPlan): string {
  return (
    `cutover ${plan.app}: ${plan.from} → ${plan.to}, steps ${plan.steps.join(',')}%, hold ${formatDuration(plan.holdMs)}, ` +
    `max error rate ${formatRate(plan.maxErrorRate)}, max p99 ${plan.maxP99Ms === null ? 'none' : formatMs(plan.maxP99Ms)}, ` +
    `min requests ${plan.minRequests}, on no traffic: ${plan.onNoTraffic}${plan.baseline === 'none' ? ', no baseline' : ''}`
  );
}

function stepLabel(d: { step: number }, plan: CutoverPlan): string {
  return `step ${d.step + 1}/${plan.steps.length}`;
}

/** `; not counted: fairway-b-1a2b3c (http://10.0.0.7:9090: no answer within 2000 ms)` for replicas left out of a window, else ''. */
export function formatMissingReplicas(d: Pick<CutoverDecision, 'window'>): string {
  const missing = d.window?.replicas?.missing ?? [];
  return missing.length === 0 ? '' : `; not counted: ${missing.map((m) => `${m.replica} (${m.reason})`).join(', ')}`;
}

/** One line for a recorded decision (plain output and the end of a live line). */
export function formatDecision(d: CutoverDecision, plan: CutoverPlan): string {
  const numbers = d.window ? `${formatWindow(plan.to, d.window.new)} | ${formatWindow(plan.from, d.window.old)}${formatMissingReplicas(d)}` : '';
  switch (d.kind) {
    case 'start':
      return formatPlan(plan);
    case 'step':
      return `${stepLabel(d, plan)}: ${formatWeights(d.weights)} (${d.percent}% on ${plan.to}), holding ${formatDuration(plan.holdMs)}`;
    case 'pass':
      return `${stepLabel(d, plan)} passed: ${numbers}`;
    case 'no_traffic':
      return `${stepLabel(d, plan)}: only ${d.window?.new.requests ?? 0} of ${plan.minRequests} requests on ${plan.to}, ${d.action === 'proceed' ? 'going on unjudged' : 'holding until there are enough'}`;
    case 'rollback':
      if (d.cause === 'manual') return `rolled back by an operator: all traffic on ${plan.from} (${formatWeights(d.weights)})`;
      return `ROLLED BACK${d.step >= 0 ? ` at ${stepLabel(d, plan)}` : ''}: ${d.message.replace(/^rolled back: /, '')}; now ${formatWeights(d.weights)}${numbers ? `\n  ${numbers}` : ''}`;
    case 'complete':
      return `completed: all traffic on ${plan.to} (${formatWeights(d.weights)})`;
    case 'abort':
      return `aborted: weights back to ${formatWeights(d.weights)} as before the cutover`;
    case 'fail':
      return `FAILED: ${d.message.replace(/^failed: /, '')}`;
    default:
      return d.message;
  }
}

/** The live line of the step being held (redrawn in place on a terminal). */
export function formatProgress(p: CutoverProgress, plan: CutoverPlan): string {
  const w = p.window.new;
  const tail = p.state === 'paused'
    ? 'paused'
    : p.waitingForTraffic
      ? `waiting for traffic (${w.requests}/${plan.minRequests} req)`
      : `${formatDuration(p.holdLeftMs ?? 0)} left`;
  return `${stepLabel(p, plan)}  ${formatWeights(p.weights)}  ${plan.to}: ${w.requests} req  ${formatRate(w.errorRate)} err  p99 ${formatMs(w.p99Ms)}  ${tail}`;
}

/** `fairway cutover APP --status`. */
export function formatStatus(s: CutoverStatus): string {
  const plan = s.plan;
  const lines = [
    `${s.app}: cutover ${plan.from} → ${plan.to} ${s.state.replace('_', ' ')}, step ${Math.max(s.step, 0) + 1}/${s.steps} (${s.percent}% on ${plan.to}), ${formatWeights(s.weights)}`,
    `  plan: steps ${plan.steps.join(',')}%, hold ${formatDuration(plan.holdMs)}, max error rate ${formatRate(plan.maxErrorRate)}, max p99 ${plan.maxP99Ms === null ? 'none' : formatMs(plan.maxP99Ms)}, min requests ${plan.minRequests}, on no traffic: ${plan.onNoTraffic}, baseline: ${plan.baseline}`,
  ];
  if (s.hold && s.window) {
    const left = s.hold.waitingForTraffic ? 'waiting for traffic' : s.hold.leftMs === null ? 'paused' : `${formatDuration(s.hold.leftMs)} left`;
    lines.push(`  hold: ${formatDuration(s.hold.elapsedMs)} in, ${left}`);
    lines.push(`  window: ${formatWindow(plan.to, s.window.new)} | ${formatWindow(plan.from, s.window.old)}`);
  }
  if (s.reason) lines.push(`  ended: ${s.reason}`);
  lines.push('  history:');
  for (const d of s.history) lines.push(`    ${d.at.slice(11, 19)}  ${formatDecision(d, plan).replace(/\n/g, '\n    ')}`);
  return lines.join('\n') + '\n';
}
