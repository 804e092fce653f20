/**
 * @module
 * One cutover of one app: the state machine that walks the plan's steps.
 *
 * Lifecycle of a step: the record is saved with the new step index (the intent), the
 * step's weights are set through {@link WeightControl.setWeights} (live when it
 * resolves, in file and Kubernetes mode alike), the counters of both versions are read
 * (the window starts), a `step` decision is recorded, and the hold begins. During the
 * hold an evaluation tick (every holdMs/10, between 50 ms and 1 s) judges the window so
 * far and rolls back at once on a breach; when the hold ends the window is judged once
 * more and the cutover goes on (`pass` → next step or `complete`), or follows
 * `onNoTraffic` when the new version served fewer than `minRequests`.
 *
 * Readings come from a {@link StatsSource} (in Kubernetes mode: every replica's counters,
 * read over the network), so reading is asynchronous; `status()` shows the open window as
 * last judged (by the latest tick or decision, at most one tick old).
 *
 * Every live snapshot is checked too: the new version without endpoints (or removed)
 * rolls back at once; the app gone, the old version gone, or the two versions' weights
 * changed by someone else (a config edit, `fairway weights`) stop the cutover in state
 * `failed`, leaving the weights as they are.
 *
 * All work (ticks, hold ends, snapshot checks, operator actions) runs one at a time
 * through a queue, so a decision is always taken on the state the previous one left.
 * Timers are unref'd; `close()` stops them without changing the recorded state (a
 * router that stops mid-cutover resumes it at the next start).
 */
import { FairwayError } from '../errors.js';
import type { AppSpec, Snapshot } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { stepWeights, type CutoverPlan } from './cutover-plan.js';
import { CUTOVER_STATES, isActive, type CutoverDecision, type CutoverRecord, type CutoverState, type CutoverStore, type JudgedWindow, type RollbackCause } from './cutover-store.js';
import { judgeWindow, percent, type Verdict } from './judge-window.js';
import { windowOf, type StatsReading, type StatsSource } from './measurement-window.js';

/** What a cutover needs of the control plane: the live snapshot and the one way to change weights. */
export interface WeightControl {
  readonly snapshot: Snapshot | undefined;
  /** Sets some versions' weights and resolves once they are live (ControlPlane.setWeights). */
  setWeights(app: string, weights: Record<string, number>): Promise<unknown>;
}

export type CutoverMetrics = Pick<Metrics, 'cutoverState' | 'cutoverPercent' | 'cutoverSteps' | 'cutoverRollbacks' | 'cutoverDecisions'>;

export interface RunContext {
  readonly weights: WeightControl;
  readonly stats: StatsSource;
  readonly store: CutoverStore;
  readonly metrics: CutoverMetrics;
  readonly logger: Logger;
  readonly onDecision: (record: CutoverRecord, decision: CutoverDecision) => void;
  readonly onProgress: (progress: CutoverProgress) => void;
  /** This replica's name, recorded on its decisions (several replicas only). */
  readonly replica?: string;
}

/** A live reading of an active cutover, sent on every evaluation tick (not recorded). */
export interface CutoverProgress {
  readonly app: string;
  readonly id: string;
  readonly at: string;
  readonly state: CutoverState;
  readonly step: number;
  readonly steps: number;
  readonly percent: number;
  readonly weights: Readonly<Record<string, number>>;
  readonly window: JudgedWindow;
  /** Time left in the hold, ms; null while paused or waiting for traffic. */
  readonly holdLeftMs: number | null;
  readonly waitingForTraffic: boolean;
}

/** `GET /v1/apps/{app}/cutover`. */
export interface CutoverStatus {
  readonly app: string;
  readonly id: string;
  readonly state: CutoverState;
  readonly plan: CutoverPlan;
  readonly total: number;
  readonly before: Readonly<Record<string, number>>;
  /** Index of the current (or last) step; -1 before the first. */
  readonly step: number;
  readonly steps: number;
  /** Percent of the two versions' traffic on `to` now. */
  readonly percent: number;
  /** Live weights of `from` and `to`. */
  readonly weights: Readonly<Record<string, number>>;
  /** The current step's hold, while running or paused. */
  readonly hold: { readonly startedAt: string; readonly elapsedMs: number; readonly leftMs: number | null; readonly waitingForTraffic: boolean } | null;
  /** The current step's window so far, while running or paused. */
  readonly window: JudgedWindow | null;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly endedAt?: string;
  readonly reason?: string;
  readonly history: readonly CutoverDecision[];
}

interface OpenWindow {
  readonly started: number;
  readonly startedAt: string;
  /** Both versions' counters on every replica when the window started. */
  readonly reading: StatsReading;
}

interface Judged {
  readonly window: JudgedWindow;
  readonly verdict: Verdict;
}

type DecisionInput = Pick<CutoverDecision, 'kind' | 'message'> & Partial<Pick<CutoverDecision, 'window' | 'cause' | 'action' | 'percent'>>;

export class CutoverRun {
  #record: CutoverRecord;
  readonly #ctx: RunContext;
  #queue: Promise<void> = Promise.resolve();
  #hold: NodeJS.Timeout | undefined;
  #tick: NodeJS.Timeout | undefined;
  #tickQueued = false;
  #holdEndsAt: number | undefined;
  #window: OpenWindow | undefined;
  /** The open window as last judged (by a tick or a decision); what `status()` shows. */
  #judged: Judged | undefined;
  #waiting = false;
  #applying = false;
  #closed = false;
  /** A resumed cutover whose app is not in the snapshot yet (Kubernetes still syncing). */
  #awaitingApp = false;
  #resumeWhy: string | undefined;

  private constructor(record: CutoverRecord, ctx: RunContext) {
    this.#record = record;
    this.#ctx = ctx;
  }

  /** A new cutover of `app` (not started: call {@link begin}). */
  static create(plan: CutoverPlan, app: AppSpec, ctx: RunContext): CutoverRun {
    const weightOf = (name: string) => app.versions.find((v) => v.name === name)!.weight;
    const before = { [plan.from]: weightOf(plan.from), [plan.to]: weightOf(plan.to) };
    const sum = before[plan.from]! + before[plan.to]!;
    const now = new Date();
    const record: CutoverRecord = {
      id: `${plan.app}-${now.getTime().toString(36)}`,
      plan,
      state: 'running',
      step: -1,
      total: sum > 0 ? sum : 100,
      before,
      startedAt: now.toISOString(),
      updatedAt: now.toISOString(),
      history: [],
    };
    return new CutoverRun(record, ctx);
  }

  /** A cutover loaded from the store (call {@link resumeAfterRestart} if active). */
  static restore(record: CutoverRecord, ctx: RunContext): CutoverRun {
    const run = new CutoverRun(record, ctx);
    run.#gauge();
    return run;
  }

  get record(): CutoverRecord {
    return this.#record;
  }

  get state(): CutoverState {
    return this.#record.state;
  }

  get plan(): CutoverPlan {
    return this.#record.plan;
  }

  /** Records `start` and sets the first step; resolves once its weights are live. */
  begin(): Promise<void> {
    return this.#enqueue(async () => {
      const { plan } = this.#record;
      this.#gauge();
      try {
        await this.#decide({
          kind: 'start',
          percent: this.#beforePercent(),
          message: `cutover of ${plan.app} from ${plan.from} to ${plan.to}: steps ${plan.steps.join(',')}%, hold ${plan.holdMs} ms, max error rate ${percent(plan.maxErrorRate)}, max p99 ${plan.maxP99Ms === null ? 'none' : `${plan.maxP99Ms} ms`}, min requests ${plan.minRequests}, on no traffic ${plan.onNoTraffic}, baseline ${plan.baseline}`,
        });
        await this.#enterStep(0);
      } catch (err) {
        // The caller gets the cause (e.g. FW_STATE_WRITE); the cutover is recorded as failed.
        await this.#fail((err as Error).message);
        throw err;
      }
    });
  }

  /**
   * Picks up a running or paused cutover after a router restart (or when another replica
   * takes over driving it): its current step's weights are set again and its hold starts
   * over. `why` completes the `restart` decision's message ("resumed <why>: …").
   */
  resumeAfterRestart(why = 'after a router restart'): Promise<void> {
    return this.#enqueue(() => this.#guard(async () => {
      if (!isActive(this.#record.state) || this.#closed) return;
      if (!this.#liveApp()) {
        this.#awaitingApp = true;
        this.#resumeWhy = why;
        this.#ctx.logger.info({ app: this.plan.app, cutover: this.#record.id }, 'cutover waits for its app to be served before resuming');
        return;
      }
      this.#awaitingApp = false;
      const step = Math.max(this.#record.step, 0);
      const n = this.plan.steps.length;
      if (this.#record.state === 'running') {
        await this.#decide({ kind: 'restart', percent: this.plan.steps[step], message: `resumed ${why}: step ${step + 1}/${n} starts its hold again` });
        await this.#enterStep(step);
      } else {
        await this.#apply(stepWeights(this.plan, this.#record.total, this.plan.steps[step]!));
        await this.#startWindow();
        this.#startTicks();
        await this.#decide({ kind: 'restart', percent: this.plan.steps[step], message: `resumed ${why}, still paused at step ${step + 1}/${n}` });
        await this.#checkLive();
      }
    }));
  }

  /** Stops advancing; the guardrails keep being checked on the step's window. FW_CUTOVER_STATE unless running. */
  pause(): Promise<void> {
    return this.#enqueue(async () => {
      this.#require('pause', ['running']);
      clearTimeout(this.#hold);
      this.#hold = undefined;
      this.#holdEndsAt = undefined;
      this.#setState('paused');
      await this.#decide({ kind: 'pause', window: (await this.#judge())?.window, message: `paused at step ${this.#record.step + 1}/${this.plan.steps.length}` });
    });
  }

  /** Goes on: the current step's hold starts over with a fresh window. FW_CUTOVER_STATE unless paused. */
  resume(): Promise<void> {
    return this.#enqueue(async () => {
      this.#require('resume', ['paused']);
      this.#setState('running');
      this.#waiting = false;
      await this.#startWindow();
      await this.#decide({ kind: 'resume', message: `resumed: step ${this.#record.step + 1}/${this.plan.steps.length} holds again for ${this.plan.holdMs} ms` });
      this.#startHold();
    });
  }

  /** Jumps to 100%: all traffic on `to`, completed without judging. FW_CUTOVER_STATE unless running or paused. */
  promote(): Promise<void> {
    return this.#enqueue(async () => {
      this.#require('promote', ['running', 'paused']);
      // If the weights cannot be set, the action fails and the cutover goes on as it was.
      await this.#apply(stepWeights(this.plan, this.#record.total, 100));
      this.#stopTimers();
      this.#record = { ...this.#record, step: this.plan.steps.length - 1 };
      await this.#decide({ kind: 'promote', percent: 100, window: (await this.#judge())?.window, message: `promoted: all traffic on ${this.plan.to}` });
      await this.#complete();
    });
  }

  /** Stops and puts back the two versions' weights from before the cutover. FW_CUTOVER_STATE unless running or paused. */
  abort(): Promise<void> {
    return this.#enqueue(async () => {
      this.#require('abort', ['running', 'paused']);
      const window = (await this.#judge())?.window;
      await this.#apply(this.#existing({ ...this.#record.before }));
      this.#stopTimers();
      this.#setState('aborted');
      await this.#decide({ kind: 'abort', window, percent: this.#beforePercent(), message: `aborted: weights back to ${formatWeights(this.#record.before)} as before the cutover` });
    });
  }

  /** Puts all of the two versions' traffic on `from` at once, in any state. */
  rollback(): Promise<void> {
    return this.#enqueue(async () => this.#rollback('manual', `rolled back by an operator: all traffic on ${this.plan.from}`, (await this.#judge())?.window));
  }

  /** Level-triggered check of the live snapshot (endpoints, weights, the app itself). */
  onSnapshot(): void {
    if (!isActive(this.#record.state) || this.#closed) return;
    if (this.#awaitingApp) {
      if (this.#liveApp()) {
        this.#awaitingApp = false;
        this.resumeAfterRestart(this.#resumeWhy).catch(() => {});
      }
      return;
    }
    void this.#enqueue(() => this.#guard(() => this.#checkLive())).catch(() => {});
  }

  /** Stops the timers; the recorded state is kept (a restarted router resumes an active cutover). */
  close(): void {
    this.#closed = true;
    this.#stopTimers();
  }

  /** Resolves once the work queued so far (a decision being taken) has finished. */
  idle(): Promise<void> {
    return this.#queue;
  }

  status(): CutoverStatus {
    const r = this.#record;
    const active = isActive(r.state) && this.#window !== undefined;
    const judged = active ? this.#judged : undefined;
    const now = Date.now();
    return {
      app: r.plan.app,
      id: r.id,
      state: r.state,
      plan: r.plan,
      total: r.total,
      before: r.before,
      step: r.step,
      steps: r.plan.steps.length,
      percent: this.#percentNow(),
      weights: this.#liveWeights(),
      hold: active
        ? { startedAt: this.#window!.startedAt, elapsedMs: now - this.#window!.started, leftMs: this.#holdLeft(now), waitingForTraffic: this.#waiting }
        : null,
      window: judged?.window ?? null,
      startedAt: r.startedAt,
      updatedAt: r.updatedAt,
      endedAt: r.endedAt,
      reason: r.reason,
      history: r.history,
    };
  }

  // ---- steps ----

  async #enterStep(i: number): Promise<void> {
    const { plan } = this.#record;
    this.#waiting = false;
    this.#record = { ...this.#record, step: i };
    await this.#ctx.store.save(this.#record);
    const weights = stepWeights(plan, this.#record.total, plan.steps[i]!);
    await this.#apply(weights);
    await this.#startWindow();
    this.#ctx.metrics.cutoverSteps.inc({ app: plan.app });
    await this.#decide({ kind: 'step', percent: plan.steps[i], message: `step ${i + 1}/${plan.steps.length}: ${plan.to} at ${plan.steps[i]}% (${formatWeights(weights)}), holding ${plan.holdMs} ms` });
    this.#startHold();
    await this.#checkLive();
  }

  async #ticked(): Promise<void> {
    this.#tickQueued = false;
    if (!isActive(this.#record.state) || this.#closed) return;
    const judged = await this.#judge();
    if (!judged || !isActive(this.#record.state) || this.#closed) return;
    if (judged.verdict.breach) return this.#rollback(judged.verdict.breach.cause, judged.verdict.breach.message, judged.window);
    if (this.#record.state === 'running' && this.#waiting && judged.verdict.enoughTraffic) return this.#pass(judged.window);
    this.#progress(judged.window);
  }

  async #holdEnded(): Promise<void> {
    this.#hold = undefined;
    if (this.#record.state !== 'running' || this.#closed) return;
    const judged = await this.#judge();
    if (!judged || this.#record.state !== 'running' || this.#closed) return;
    const { verdict, window } = judged;
    if (verdict.breach) return this.#rollback(verdict.breach.cause, verdict.breach.message, window);
    if (verdict.enoughTraffic) return this.#pass(window);
    const { plan } = this.#record;
    const n = window.new.requests;
    if (plan.onNoTraffic === 'proceed') {
      await this.#decide({ kind: 'no_traffic', action: 'proceed', window, message: `only ${n} of ${plan.minRequests} requests on ${plan.to} in the hold: going on unjudged (on no traffic: proceed)` });
      return this.#advance();
    }
    this.#waiting = true;
    await this.#decide({ kind: 'no_traffic', action: 'hold', window, message: `only ${n} of ${plan.minRequests} requests on ${plan.to} in the hold: holding until there are enough (on no traffic: hold)` });
  }

  async #pass(window: JudgedWindow): Promise<void> {
    const { plan } = this.#record;
    const next = window.new;
    await this.#decide({
      kind: 'pass',
      window,
      message: `step ${this.#record.step + 1}/${plan.steps.length} passed: ${plan.to} ${next.requests} requests, ${percent(next.errorRate)} errors, p99 ${next.p99Ms ?? '-'} ms`,
    });
    return this.#advance();
  }

  async #advance(): Promise<void> {
    if (this.#record.step >= this.plan.steps.length - 1) return this.#complete();
    return this.#enterStep(this.#record.step + 1);
  }

  async #complete(): Promise<void> {
    this.#stopTimers();
    this.#setState('completed');
    await this.#decide({ kind: 'complete', percent: 100, message: `completed: all traffic on ${this.plan.to} (${formatWeights(this.#liveWeights())})` });
  }

  async #rollback(cause: RollbackCause, message: string, window?: JudgedWindow): Promise<void> {
    const { plan } = this.#record;
    const live = this.#liveApp();
    if (!live?.versions.some((v) => v.name === plan.from)) {
      if (cause === 'manual') throw new FairwayError('FW_VERSION_NOT_FOUND', `cannot roll back ${plan.app}: version ${plan.from} is no longer served`);
      return this.#fail(`cannot roll back (${message}): version ${plan.from} is no longer served`);
    }
    // Timers that fire meanwhile only queue work, which finds the cutover ended.
    await this.#apply(this.#existing({ [plan.from]: this.#record.total, [plan.to]: 0 }));
    this.#stopTimers();
    this.#setState('rolled_back');
    this.#ctx.metrics.cutoverRollbacks.inc({ app: plan.app, cause });
    await this.#decide({ kind: 'rollback', cause, window, percent: 0, message: cause === 'manual' ? message : `rolled back: ${message}` });
  }

  async #fail(message: string): Promise<void> {
    this.#stopTimers();
    this.#setState('failed');
    try {
      await this.#decide({ kind: 'fail', message: `failed: ${message}` });
    } catch (err) {
      this.#ctx.logger.error({ app: this.plan.app, cutover: this.#record.id, err: (err as Error).message }, 'cannot record the cutover failure');
    }
  }

  /** Snapshot checks: see the module comment. */
  async #checkLive(): Promise<void> {
    if (!isActive(this.#record.state) || this.#closed) return;
    const { plan } = this.#record;
    const app = this.#liveApp();
    if (!app) return this.#fail(`app ${plan.app} is no longer served (removed or disabled); weights left as they are`);
    const to = app.versions.find((v) => v.name === plan.to);
    if (!to) return this.#rollback('no_endpoints', `version ${plan.to} was removed`, (await this.#judge())?.window);
    if (to.endpoints.length === 0) return this.#rollback('no_endpoints', `version ${plan.to} has no endpoints`, (await this.#judge())?.window);
    if (!app.versions.some((v) => v.name === plan.from)) return this.#fail(`version ${plan.from} was removed; weights left as they are`);
    if (this.#applying || this.#record.step < 0) return;
    const expected = stepWeights(plan, this.#record.total, plan.steps[this.#record.step]!);
    const live = this.#liveWeights();
    if (live[plan.from] !== expected[plan.from] || live[plan.to] !== expected[plan.to]) {
      return this.#fail(`the weights of ${plan.from} and ${plan.to} were changed outside the cutover (now ${formatWeights(live)}, the cutover had set ${formatWeights(expected)}); weights left as they are`);
    }
  }

  // ---- helpers ----

  /** Runs internal work; any failure (a weight or state write refused) stops the cutover in `failed`. */
  async #guard(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      const e = err as Error;
      this.#ctx.logger.error({ app: this.plan.app, cutover: this.#record.id, code: (err as FairwayError).code, err: e.message }, 'cutover step failed');
      if (isActive(this.#record.state)) await this.#fail(e.message);
    }
  }

  #enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.then(() => undefined, () => undefined);
    return run;
  }

  #require(action: string, states: CutoverState[]): void {
    if (!states.includes(this.#record.state)) {
      throw new FairwayError('FW_CUTOVER_STATE', `cannot ${action} the cutover of ${this.plan.app}: it is ${this.#record.state.replace('_', ' ')} (${action} needs ${states.join(' or ')})`);
    }
  }

  async #apply(weights: Record<string, number>): Promise<void> {
    this.#applying = true;
    try {
      await this.#ctx.weights.setWeights(this.plan.app, weights);
    } finally {
      this.#applying = false;
    }
  }

  /** `weights` without versions the live app no longer has. */
  #existing(weights: Record<string, number>): Record<string, number> {
    const names = new Set(this.#liveApp()?.versions.map((v) => v.name));
    return Object.fromEntries(Object.entries(weights).filter(([name]) => names.has(name)));
  }

  /** Reads both versions' counters (on every replica the stats source knows): the window starts. */
  async #startWindow(): Promise<void> {
    const { app, from, to } = this.plan;
    const now = Date.now();
    const reading = await this.#ctx.stats.read(app, [from, to]);
    this.#window = { started: now, startedAt: new Date(now).toISOString(), reading };
    this.#judged = this.#judgeBetween(this.#window, reading);
  }

  /** Reads the counters again and judges the open window so far. */
  async #judge(): Promise<Judged | undefined> {
    const w = this.#window;
    if (!w) return undefined;
    const reading = await this.#ctx.stats.read(this.plan.app, [this.plan.from, this.plan.to]);
    // A step may have begun while reading: judge only the window that is still open.
    if (this.#window !== w) return this.#judged;
    this.#judged = this.#judgeBetween(w, reading);
    return this.#judged;
  }

  #judgeBetween(w: OpenWindow, reading: StatsReading): Judged {
    const { from, to } = this.plan;
    const next = windowOf(w.reading, reading, to);
    const old = windowOf(w.reading, reading, from);
    const verdict = judgeWindow(this.plan, next.numbers, old.numbers);
    const { counted, missing } = next.replicas;
    const replicas = counted.length > 1 || missing.length > 0 ? { replicas: next.replicas } : {};
    return { verdict, window: { elapsedMs: Math.max(0, reading.at - w.started), new: next.numbers, old: old.numbers, limits: verdict.limits, ...replicas } };
  }

  #startHold(): void {
    if (this.#closed) return;
    clearTimeout(this.#hold);
    const ms = this.plan.holdMs;
    this.#holdEndsAt = Date.now() + ms;
    this.#hold = setTimeout(() => void this.#enqueue(() => this.#guard(() => this.#holdEnded())).catch(() => {}), ms);
    this.#hold.unref();
    this.#startTicks();
  }

  #startTicks(): void {
    if (this.#tick || this.#closed) return;
    const every = Math.min(1000, Math.max(50, Math.round(this.plan.holdMs / 10)));
    this.#tick = setInterval(() => {
      if (this.#tickQueued) return;
      this.#tickQueued = true;
      void this.#enqueue(() => this.#guard(() => this.#ticked())).catch(() => {});
    }, every);
    this.#tick.unref();
  }

  #stopTimers(): void {
    clearTimeout(this.#hold);
    clearInterval(this.#tick);
    this.#hold = undefined;
    this.#tick = undefined;
    this.#holdEndsAt = undefined;
  }

  #holdLeft(now: number): number | null {
    if (this.#record.state !== 'running' || this.#waiting || this.#holdEndsAt === undefined) return null;
    return Math.max(0, this.#holdEndsAt - now);
  }

  #setState(state: CutoverState): void {
    const now = new Date().toISOString();
    this.#record = { ...this.#record, state, updatedAt: now, endedAt: isActive(state) ? undefined : now };
    if (!isActive(state)) {
      this.#window = undefined;
      this.#judged = undefined;
    }
    this.#gauge();
  }

  async #decide(input: DecisionInput): Promise<void> {
    const r = this.#record;
    const decision: CutoverDecision = {
      index: r.history.length,
      at: new Date().toISOString(),
      kind: input.kind,
      state: r.state,
      step: r.step,
      percent: input.percent ?? this.#percentNow(),
      weights: this.#liveWeights(),
      ...(input.window ? { window: input.window } : {}),
      ...(input.cause ? { cause: input.cause } : {}),
      ...(input.action ? { action: input.action } : {}),
      message: input.message,
      ...(this.#ctx.replica ? { replica: this.#ctx.replica } : {}),
    };
    this.#record = { ...r, history: [...r.history, decision], updatedAt: decision.at, reason: isActive(r.state) ? r.reason : decision.message };
    const { metrics, logger } = this.#ctx;
    metrics.cutoverDecisions.inc({ app: r.plan.app, decision: decision.kind });
    metrics.cutoverPercent.set({ app: r.plan.app }, decision.percent);
    const level = decision.kind === 'rollback' || decision.kind === 'fail' ? 'warn' : 'info';
    logger[level]({ app: r.plan.app, cutover: r.id, decision: decision.kind, state: decision.state, step: decision.step, percent: decision.percent, weights: decision.weights, window: decision.window, cause: decision.cause, action: decision.action }, decision.message);
    await this.#ctx.store.save(this.#record);
    this.#ctx.onDecision(this.#record, decision);
  }

  #progress(window: JudgedWindow): void {
    const r = this.#record;
    this.#ctx.onProgress({
      app: r.plan.app,
      id: r.id,
      at: new Date().toISOString(),
      state: r.state,
      step: r.step,
      steps: r.plan.steps.length,
      percent: this.#percentNow(),
      weights: this.#liveWeights(),
      window,
      holdLeftMs: this.#holdLeft(Date.now()),
      waitingForTraffic: this.#waiting,
    });
  }

  #gauge(): void {
    for (const s of CUTOVER_STATES) this.#ctx.metrics.cutoverState.set({ app: this.plan.app, state: s }, s === this.#record.state ? 1 : 0);
  }

  #liveApp(): AppSpec | undefined {
    return this.#ctx.weights.snapshot?.apps.find((a) => a.name === this.plan.app);
  }

  #liveWeights(): Record<string, number> {
    const app = this.#liveApp();
    const out: Record<string, number> = {};
    for (const name of [this.plan.from, this.plan.to]) {
      const v = app?.versions.find((x) => x.name === name);
      if (v) out[name] = v.weight;
    }
    return out;
  }

  #percentNow(): number {
    const w = this.#liveWeights();
    const from = w[this.plan.from] ?? 0;
    const to = w[this.plan.to] ?? 0;
    return from + to > 0 ? Math.round((to / (from + to)) * 10000) / 100 : 0;
  }

  #beforePercent(): number {
    const b = this.#record.before;
    const sum = b[this.plan.from]! + b[this.plan.to]!;
    return sum > 0 ? Math.round((b[this.plan.to]! / sum) * 10000) / 100 : 0;
  }
}

/** `{v1: 95, v2: 5}` → `v1=95 v2=5`. */
export function formatWeights(weights: Readonly<Record<string, number>>): string {
  return Object.entries(weights).map(([v, w]) => `${v}=${w}`).join(' ');
}
