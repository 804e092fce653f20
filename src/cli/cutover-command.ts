/**
 * @module
 * `fairway cutover APP …` and `fairway rollback APP`: turn the flags into a plan body or
 * an action, call the admin API, and with `--wait` follow the cutover's event stream to
 * its end. Resolves with the exit code (0 completed or done, 3 rolled back, 4 aborted,
 * 1 failed, 2 bad usage); admin API errors are thrown as FairwayError for the CLI's
 * common handling.
 */
import { parseDuration } from '../config/units.js';
import type { CutoverStatus } from '../cutover/cutover-run.js';
import { FairwayError } from '../errors.js';
import { adminRequest, type AdminTarget } from './admin-client.js';
import { formatDecision, formatStatus } from './cutover-format.js';
import { CutoverProgressView, type Output, type ViewMode } from './cutover-progress-view.js';
import { watchCutover } from './cutover-watch.js';

export interface CutoverFlags {
  readonly admin: AdminTarget;
  readonly to?: string;
  readonly from?: string;
  readonly steps?: string;
  readonly hold?: string;
  readonly maxErrorRate?: string;
  readonly maxP99?: string;
  readonly minRequests?: string;
  readonly onNoTraffic?: string;
  readonly baseline?: string;
  readonly status?: boolean;
  readonly pause?: boolean;
  readonly resume?: boolean;
  readonly promote?: boolean;
  readonly abort?: boolean;
  readonly wait?: boolean;
  readonly json?: boolean;
}

const ACTIONS = ['status', 'pause', 'resume', 'promote', 'abort'] as const;
type Action = (typeof ACTIONS)[number];
const PLAN_FLAGS: readonly [keyof CutoverFlags, string][] = [
  ['to', '--to'], ['from', '--from'], ['steps', '--steps'], ['hold', '--hold'], ['maxErrorRate', '--max-error-rate'],
  ['maxP99', '--max-p99'], ['minRequests', '--min-requests'], ['onNoTraffic', '--on-no-traffic'], ['baseline', '--baseline'],
];
const EXIT_USAGE = 2;

export interface Terminal {
  readonly out: Output & { isTTY?: boolean };
  readonly err: Output;
}

const processTerminal: Terminal = { out: process.stdout, err: process.stderr };

export async function cutoverCommand(app: string, flags: CutoverFlags, term: Terminal = processTerminal): Promise<number> {
  const actions = ACTIONS.filter((a) => flags[a]);
  const planFlags = PLAN_FLAGS.filter(([key]) => flags[key] !== undefined).map(([, flag]) => flag);
  if (actions.length > 1) return usage(term, `give one of ${actions.map((a) => `--${a}`).join(', ')}, not several`);
  const action: Action | undefined = actions[0];
  if (action && planFlags.length > 0) return usage(term, `--${action} takes no plan options (${planFlags.join(', ')})`);
  if (!action && flags.to === undefined) return usage(term, `give --to VERSION to start a cutover of ${app}, or one of --status, --pause, --resume, --promote, --abort`);

  const path = `v1/apps/${encodeURIComponent(app)}/cutover`;
  let status: CutoverStatus;
  if (action === 'status') status = (await adminRequest(flags.admin, 'GET', path)) as CutoverStatus;
  else if (action) status = (await adminRequest(flags.admin, 'POST', `${path}/${action}`)) as CutoverStatus;
  else status = (await adminRequest(flags.admin, 'POST', path, planBody(flags))) as CutoverStatus;

  if (!flags.wait) {
    if (flags.json) term.out.write(JSON.stringify(status, null, 2) + '\n');
    else if (action === 'status') term.out.write(formatStatus(status));
    else if (action) term.out.write(formatDecision(status.history[status.history.length - 1]!, status.plan) + '\n');
    else {
      for (const d of status.history) term.out.write(formatDecision(d, status.plan) + '\n');
      term.out.write(`follow it with: fairway cutover ${app} --status --wait\n`);
    }
    return 0;
  }
  return follow(app, flags, status, term);
}

/** `fairway rollback APP`: all traffic back on the version that was live before the app's last cutover. */
export async function rollbackCommand(app: string, flags: { admin: AdminTarget; json?: boolean }, term: Terminal = processTerminal): Promise<number> {
  const status = (await adminRequest(flags.admin, 'POST', `v1/apps/${encodeURIComponent(app)}/rollback`)) as CutoverStatus;
  term.out.write(flags.json ? JSON.stringify(status, null, 2) + '\n' : formatDecision(status.history[status.history.length - 1]!, status.plan) + '\n');
  return 0;
}

/** Prints the cutover's decisions (recorded, then live) until it ends; answers the exit code. */
async function follow(app: string, flags: CutoverFlags, first: CutoverStatus, term: Terminal): Promise<number> {
  const mode: ViewMode = flags.json ? 'json' : term.out.isTTY ? 'tty' : 'plain';
  const view = new CutoverProgressView(term.out, mode, first.plan);
  let state = first.state;
  let id = first.id;
  const events = watchCutover(flags.admin, app, { after: -1, onReconnect: (why) => view.note(`(${why}; reconnecting)`) });
  for await (const e of events) {
    if (e.type === 'status') {
      state = e.state;
      id = e.id;
    } else if (e.type === 'decision') {
      view.decision(e);
      state = e.state;
    } else {
      view.progress(e);
    }
  }
  return view.finish(app, id, state);
}

/** The plan body of `POST /v1/apps/{app}/cutover` from the flags; FW_CUTOVER_INVALID for malformed values. */
export function planBody(flags: CutoverFlags): Record<string, unknown> {
  const body: Record<string, unknown> = { to: flags.to };
  if (flags.from !== undefined) body.from = flags.from;
  if (flags.steps !== undefined) {
    const text = flags.steps.replace(/[\s%]/g, '');
    if (!/^\d+(\.\d+)?(,\d+(\.\d+)?)*$/.test(text)) throw invalid(`--steps "${flags.steps}" must be percentages separated by commas, like 5,25,50,100`);
    body.steps = text.split(',').map(Number);
  }
  if (flags.hold !== undefined) body.holdMs = duration('--hold', flags.hold);
  if (flags.maxErrorRate !== undefined) body.maxErrorRate = rate(flags.maxErrorRate);
  if (flags.maxP99 !== undefined) body.maxP99Ms = flags.maxP99 === 'none' ? null : duration('--max-p99', flags.maxP99);
  if (flags.minRequests !== undefined) {
    if (!/^\d+$/.test(flags.minRequests)) throw invalid(`--min-requests "${flags.minRequests}" must be a whole number`);
    body.minRequests = Number(flags.minRequests);
  }
  if (flags.onNoTraffic !== undefined) body.onNoTraffic = flags.onNoTraffic;
  if (flags.baseline !== undefined) body.baseline = flags.baseline;
  return body;
}

function duration(flag: string, value: string): number {
  const ms = /^\d+$/.test(value.trim()) ? Number(value) : parseDuration(value);
  if (ms === undefined) throw invalid(`${flag} "${value}" must be a duration like 500ms, 30s or 2m`);
  return ms;
}

/** `1%` → 0.01; `0.01` → 0.01. */
function rate(value: string): number {
  const v = value.trim();
  const m = /^(\d+(?:\.\d+)?)%$/.exec(v);
  if (m) return Number(m[1]) / 100;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  throw invalid(`--max-error-rate "${value}" must be a percentage like 1% or 0.5%, or a fraction like 0.01`);
}

function invalid(message: string): FairwayError {
  return new FairwayError('FW_CUTOVER_INVALID', message);
}

function usage(term: Terminal, message: string): number {
  term.err.write(`fairway: ${message}\n`);
  return EXIT_USAGE;
}
