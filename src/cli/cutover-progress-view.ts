/**
 * @module
 * How `fairway cutover --wait` shows a cutover as it goes:
 * - on a terminal (`tty`): one live line per step — weights, the new version's requests,
 *   error rate and p99, time left in the hold — redrawn in place with `\r` as progress
 *   arrives, and finished with the step's outcome;
 * - otherwise: one plain line per recorded decision (no progress lines, so CI logs stay
 *   short);
 * - `json`: one NDJSON line per decision event, then a `result` line.
 */
import type { CutoverDecisionEvent } from '../cutover/cutover-controller.js';
import type { CutoverPlan } from '../cutover/cutover-plan.js';
import type { CutoverProgress } from '../cutover/cutover-run.js';
import type { CutoverState } from '../cutover/cutover-store.js';
import { formatDecision, formatProgress, formatWeights, formatWindow } from './cutover-format.js';

export interface Output {
  write(text: string): unknown;
}

/** Exit codes of `fairway cutover --wait` by the state the cutover ended in. */
export const CUTOVER_EXIT: Readonly<Record<CutoverState, number>> = {
  completed: 0,
  rolled_back: 3,
  aborted: 4,
  failed: 1,
  // Not final: `--wait` only returns once the cutover ended.
  running: 1,
  paused: 1,
};

export type ViewMode = 'tty' | 'plain' | 'json';

export class CutoverProgressView {
  readonly #out: Output;
  readonly #mode: ViewMode;
  readonly #plan: CutoverPlan;
  /** A live line is drawn and not yet finished with a newline. */
  #open = false;

  constructor(out: Output, mode: ViewMode, plan: CutoverPlan) {
    this.#out = out;
    this.#mode = mode;
    this.#plan = plan;
  }

  decision(d: CutoverDecisionEvent): void {
    if (this.#mode === 'json') {
      this.#out.write(JSON.stringify({ type: 'decision', ...d }) + '\n');
      return;
    }
    const line = formatDecision(d, this.#plan);
    if (this.#mode === 'plain') {
      this.#out.write(line + '\n');
      return;
    }
    if (d.kind === 'step') {
      this.#close();
      this.#draw(line);
      return;
    }
    if (this.#open && (d.kind === 'pass' || d.kind === 'no_traffic') && d.window) {
      // Finish the step's live line with its outcome.
      const outcome = d.kind === 'pass' ? 'passed' : d.action === 'proceed' ? 'too little traffic: going on' : 'too little traffic: holding';
      this.#draw(`step ${d.step + 1}/${this.#plan.steps.length}  ${formatWeights(d.weights)}  ${formatWindow(this.#plan.to, d.window.new)}  ${outcome}`);
      if (d.kind === 'pass') this.#close();
      return;
    }
    this.#close();
    this.#out.write(line + '\n');
  }

  progress(p: CutoverProgress): void {
    if (this.#mode !== 'tty') return;
    this.#draw(formatProgress(p, this.#plan));
  }

  /** Prints the end (the `result` line in JSON mode) and answers the exit code. */
  finish(app: string, id: string, state: CutoverState): number {
    this.#close();
    const code = CUTOVER_EXIT[state];
    if (this.#mode === 'json') this.#out.write(JSON.stringify({ type: 'result', app, id, state, exitCode: code }) + '\n');
    return code;
  }

  note(text: string): void {
    if (this.#mode === 'json') return;
    this.#close();
    this.#out.write(text + '\n');
  }

  #draw(text: string): void {
    this.#out.write(`\r${text}\x1b[K`);
    this.#open = true;
  }

  #close(): void {
    if (!this.#open) return;
    this.#out.write('\n');
    this.#open = false;
  }
}
