/**
 * @module
 * The cutover controller: the control-plane component that owns every app's latest
 * cutover ({@link CutoverRun}), starts new ones (one per app at a time), applies operator
 * actions, resumes active cutovers after a restart, and publishes what happens:
 * `decision` events (recorded, durable) and `progress` events (live readings, not
 * recorded) for the admin API's watch stream.
 *
 * It changes weights only through {@link WeightControl} (the control plane's
 * `setWeights`), so it works unchanged whether the weights live in the file-mode state
 * file or in Kubernetes annotations; it reads measurements only through a
 * {@link StatsSource} and keeps cutovers only through a {@link CutoverStore}.
 *
 * Lifecycle: `start()` once the first snapshot is live (loads the store and resumes
 * running and paused cutovers), `close()` at shutdown (stops timers, keeps state).
 */
import { EventEmitter } from 'node:events';
import { FairwayError } from '../errors.js';
import type { Snapshot } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { parseCutoverPlan } from './cutover-plan.js';
import { CutoverRun, formatWeights, type CutoverMetrics, type CutoverProgress, type CutoverStatus, type RunContext, type WeightControl } from './cutover-run.js';
import { isActive, type CutoverDecision, type CutoverStore } from './cutover-store.js';
import type { StatsSource } from './measurement-window.js';

export type { CutoverProgress, CutoverStatus, WeightControl } from './cutover-run.js';

/** A decision as published: the decision plus which cutover it belongs to. */
export type CutoverDecisionEvent = CutoverDecision & { readonly app: string; readonly id: string };

export interface CutoverControllerOptions {
  /** The control plane; `snapshot` events trigger the live checks. */
  readonly control: WeightControl & {
    on(event: 'snapshot', listener: (s: Snapshot) => void): unknown;
    off(event: 'snapshot', listener: (s: Snapshot) => void): unknown;
  };
  readonly stats: StatsSource;
  readonly store: CutoverStore;
  readonly metrics: CutoverMetrics;
  readonly logger: Logger;
}

interface CutoverEvents {
  decision: [CutoverDecisionEvent];
  progress: [CutoverProgress];
}

export type CutoverAction = 'pause' | 'resume' | 'promote' | 'abort';

export class CutoverController extends EventEmitter<CutoverEvents> {
  readonly #options: CutoverControllerOptions;
  readonly #runs = new Map<string, CutoverRun>();
  readonly #ctx: RunContext;
  #started = false;

  constructor(options: CutoverControllerOptions) {
    super();
    this.setMaxListeners(0); // one listener per watching client
    this.#options = options;
    this.#ctx = {
      weights: options.control,
      stats: options.stats,
      store: options.store,
      metrics: options.metrics,
      logger: options.logger,
      onDecision: (record, decision) => this.emit('decision', { app: record.plan.app, id: record.id, ...decision }),
      onProgress: (progress) => this.emit('progress', progress),
    };
  }

  /**
   * Loads the store and resumes its running and paused cutovers. A store that cannot be
   * read is logged (FW_STATE_READ) and treated as empty.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#options.control.on('snapshot', this.#onSnapshot);
    let records;
    try {
      records = await this.#options.store.load();
    } catch (err) {
      this.#options.logger.error({ code: (err as FairwayError).code, err: (err as Error).message }, 'ignoring the cutover state file: cutovers recorded in it are not resumed');
      return;
    }
    for (const record of records) {
      const run = CutoverRun.restore(record, this.#ctx);
      this.#runs.set(record.plan.app, run);
      if (isActive(record.state)) await run.resumeAfterRestart();
    }
  }

  /**
   * Starts a cutover of `appName` from a plan body; resolves once the first step's
   * weights are live. FW_APP_NOT_FOUND, FW_VERSION_NOT_FOUND, FW_CUTOVER_INVALID,
   * FW_CUTOVER_ACTIVE (one is running or paused).
   */
  async begin(appName: string, body: unknown): Promise<CutoverStatus> {
    const current = this.#runs.get(appName);
    if (current && isActive(current.state)) {
      const r = current.record;
      throw new FairwayError(
        'FW_CUTOVER_ACTIVE',
        `app ${appName} already has a cutover ${r.state}: ${r.plan.from} → ${r.plan.to}, step ${r.step + 1}/${r.plan.steps.length} (${formatWeights(current.status().weights)}); ${r.state === 'paused' ? 'resume it with --resume' : 'wait for it'}, or end it with --promote, --abort or fairway rollback ${appName}`,
        { id: r.id, state: r.state },
      );
    }
    const app = this.#options.control.snapshot?.apps.find((a) => a.name === appName);
    if (!app) throw new FairwayError('FW_APP_NOT_FOUND', `no app named "${appName}"`);
    const plan = parseCutoverPlan(body, app);
    const run = CutoverRun.create(plan, app, this.#ctx);
    // Registered before anything is awaited, so a concurrent second start is refused.
    this.#runs.set(appName, run);
    current?.close();
    await run.begin();
    return run.status();
  }

  /** The app's latest cutover. FW_CUTOVER_NOT_FOUND if it never had one. */
  status(appName: string): CutoverStatus {
    return this.#run(appName).status();
  }

  /** Applies an operator action and answers the new status. FW_CUTOVER_NOT_FOUND, FW_CUTOVER_STATE. */
  async act(appName: string, action: CutoverAction): Promise<CutoverStatus> {
    const run = this.#run(appName);
    await run[action]();
    return run.status();
  }

  /**
   * All traffic of the app's latest cutover back on its `from` version at once, whatever
   * the cutover's state (also after it completed). FW_CUTOVER_NOT_FOUND without one.
   */
  async rollback(appName: string): Promise<CutoverStatus> {
    const run = this.#run(appName);
    await run.rollback();
    return run.status();
  }

  /** Stops every cutover's timers; their recorded state is kept for the next start. */
  close(): void {
    this.#options.control.off('snapshot', this.#onSnapshot);
    for (const run of this.#runs.values()) run.close();
  }

  #run(appName: string): CutoverRun {
    const run = this.#runs.get(appName);
    if (!run && !this.#options.control.snapshot?.apps.some((a) => a.name === appName)) throw new FairwayError('FW_APP_NOT_FOUND', `no app named "${appName}"`);
    if (!run) throw new FairwayError('FW_CUTOVER_NOT_FOUND', `app "${appName}" has no cutover (start one with fairway cutover ${appName} --to VERSION)`);
    return run;
  }

  readonly #onSnapshot = (): void => {
    for (const run of this.#runs.values()) run.onSnapshot();
  };
}
