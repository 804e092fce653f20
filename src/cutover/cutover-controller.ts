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
 * Several replicas (Kubernetes mode, with a {@link Leadership}): only the replica that
 * leads drives cutovers (runs their timers, judges, writes the store). The others
 * *follow*: they load the store again whenever it changes (`onChange`), answer status
 * from it, and publish the decisions they see in it as `decision` events (no `progress`
 * events: the live readings stay with the leader). An operator call on a follower
 * (start, pause, resume, promote, abort, rollback) is forwarded to the leader's admin
 * API ({@link ForwardRequest}) and answered once the follower's copy of the store shows
 * its outcome; with no leader it fails with FW_CUTOVER_NO_LEADER. When a replica becomes
 * the leader it loads the store (`fresh`: every save of the previous leader) and resumes
 * the running and paused cutovers (a `restart` decision), and goes on adopting records
 * it had not seen that show up in the store afterwards; when it stops leading it stops
 * their timers and follows. `role` events say when a switch is done.
 *
 * Lifecycle: `start()` once the first snapshot is live (without a leadership: loads the
 * store and resumes running and paused cutovers before resolving), `close()` at shutdown
 * (stops timers, keeps state; resolves once decisions being taken are recorded).
 */
import { EventEmitter } from 'node:events';
import { FairwayError } from '../errors.js';
import type { Snapshot } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { parseCutoverPlan } from './cutover-plan.js';
import { CutoverRun, formatWeights, type CutoverMetrics, type CutoverProgress, type CutoverStatus, type RunContext, type WeightControl } from './cutover-run.js';
import { isActive, type CutoverDecision, type CutoverRecord, type CutoverStore } from './cutover-store.js';
import type { StatsSource } from './measurement-window.js';

/** The replica that drives cutovers, as far as the Lease says. */
export interface LeaderInfo {
  readonly identity: string;
  /** Its admin API, as it advertised it (absent: it did not say). */
  readonly adminUrl: string | undefined;
}

/**
 * Which replica drives cutovers (Kubernetes: the holder of the cutover Lease). Emits
 * `change` with the new value of `leading` whenever it changes.
 */
export interface Leadership {
  readonly leading: boolean;
  /** This replica's name. */
  readonly identity: string;
  /** The replica that leads now, if any (reads the Lease). */
  leader(): Promise<LeaderInfo | undefined>;
  on(event: 'change', listener: (leading: boolean) => void): unknown;
  off(event: 'change', listener: (leading: boolean) => void): unknown;
}

/**
 * Sends an operator call to the leader's admin API and resolves with its JSON answer;
 * rejects with the leader's FairwayError, or FW_CUTOVER_NO_LEADER when it cannot be reached.
 */
export type ForwardRequest = (adminUrl: string, path: string, body?: unknown) => Promise<unknown>;

/** How an operator call reached this replica. */
export interface CallOrigin {
  /** Forwarded by another replica (never forwarded again). */
  readonly forwarded?: boolean;
}

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
  /** Several replicas: who drives cutovers. Without it this process drives every cutover. */
  readonly leadership?: Leadership;
  /** With `leadership`: how a follower sends operator calls to the leader. */
  readonly forward?: ForwardRequest;
  /** How long a follower waits for the store to show a forwarded call's outcome, ms (default 10 s). */
  readonly followTimeoutMs?: number;
}

interface CutoverEvents {
  decision: [CutoverDecisionEvent];
  progress: [CutoverProgress];
  /** With a leadership: this replica finished switching to leading (its cutovers resumed) or following. */
  role: ['leading' | 'following'];
}

export type CutoverAction = 'pause' | 'resume' | 'promote' | 'abort';

export class CutoverController extends EventEmitter<CutoverEvents> {
  readonly #options: CutoverControllerOptions;
  readonly #runs = new Map<string, CutoverRun>();
  readonly #ctx: RunContext;
  #started = false;
  #closed = false;
  /** `following`: a replica that mirrors the store; `leading`: this one drives (always, without a leadership). */
  #mode: 'idle' | 'leading' | 'following' = 'idle';
  /** Mode changes and store reloads, one at a time. */
  #serial: Promise<void> = Promise.resolve();
  #mirrorScheduled = false;
  #unwatchStore: (() => void) | undefined;
  /** Called after every store reload of a follower (forwarded calls wait for their outcome). */
  readonly #mirrored = new Set<() => void>();

  constructor(options: CutoverControllerOptions) {
    super();
    this.setMaxListeners(0); // one listener per watching client
    if (options.leadership && (!options.forward || !options.store.onChange)) {
      throw new TypeError('CutoverController: a leadership needs a forward function and a store with onChange()');
    }
    this.#options = options;
    this.#ctx = {
      weights: options.control,
      stats: options.stats,
      store: options.store,
      metrics: options.metrics,
      logger: options.logger,
      onDecision: (record, decision) => this.emit('decision', { app: record.plan.app, id: record.id, ...decision }),
      onProgress: (progress) => this.emit('progress', progress),
      ...(options.leadership ? { replica: options.leadership.identity } : {}),
    };
  }

  /** True while this replica drives cutovers (always, without a leadership). */
  get leading(): boolean {
    return this.#mode === 'leading';
  }

  /**
   * Without a leadership: loads the store and resumes its running and paused cutovers (a
   * store that cannot be read is logged, FW_STATE_READ, and treated as empty). With one:
   * starts following or leading in the background, as the leadership says.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#options.control.on('snapshot', this.#onSnapshot);
    const leadership = this.#options.leadership;
    if (!leadership) {
      await this.#lead('after a router restart');
      return;
    }
    leadership.on('change', this.#onLeadership);
    this.#unwatchStore = this.#options.store.onChange!(() => this.#scheduleMirror());
    this.#onLeadership(leadership.leading);
  }

  /**
   * Starts a cutover of `appName` from a plan body; resolves once the first step's
   * weights are live. FW_APP_NOT_FOUND, FW_VERSION_NOT_FOUND, FW_CUTOVER_INVALID,
   * FW_CUTOVER_ACTIVE (one is running or paused); on a follower also FW_CUTOVER_NO_LEADER.
   */
  async begin(appName: string, body: unknown, origin: CallOrigin = {}): Promise<CutoverStatus> {
    return this.#leaderDoes(appName, 'cutover', body, origin, async () => {
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
    });
  }

  /** The app's latest cutover. FW_CUTOVER_NOT_FOUND if it never had one. */
  status(appName: string): CutoverStatus {
    return this.#run(appName).status();
  }

  /** Applies an operator action and answers the new status. FW_CUTOVER_NOT_FOUND, FW_CUTOVER_STATE. */
  async act(appName: string, action: CutoverAction, origin: CallOrigin = {}): Promise<CutoverStatus> {
    return this.#leaderDoes(appName, `cutover/${action}`, undefined, origin, async () => {
      const run = this.#run(appName);
      await run[action]();
      return run.status();
    });
  }

  /**
   * All traffic of the app's latest cutover back on its `from` version at once, whatever
   * the cutover's state (also after it completed). FW_CUTOVER_NOT_FOUND without one.
   */
  async rollback(appName: string, origin: CallOrigin = {}): Promise<CutoverStatus> {
    return this.#leaderDoes(appName, 'rollback', undefined, origin, async () => {
      const run = this.#run(appName);
      await run.rollback();
      return run.status();
    });
  }

  /**
   * Stops every cutover's timers (their recorded state is kept for the next start, or for
   * the replica that leads next); resolves once decisions being taken are recorded.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#options.control.off('snapshot', this.#onSnapshot);
    this.#options.leadership?.off('change', this.#onLeadership);
    this.#unwatchStore?.();
    for (const run of this.#runs.values()) run.close();
    return Promise.all([...this.#runs.values()].map((run) => run.idle())).then(() => undefined);
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

  // ---- leading and following ----

  readonly #onLeadership = (leading: boolean): void => {
    const identity = this.#options.leadership!.identity;
    this.#enqueue(() => (leading ? this.#lead(`by replica ${identity}, which took over driving cutovers`) : this.#follow()));
  };

  #enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.#serial.then(() => (this.#closed ? undefined : work()));
    this.#serial = run.catch((err: Error) => this.#options.logger.error({ err: err.message }, 'cutover controller: switching between leading and following failed'));
    return this.#serial;
  }

  /** Loads the store and resumes its running and paused cutovers; `why` ends up in their `restart` decisions. */
  async #lead(why: string): Promise<void> {
    const leadership = this.#options.leadership;
    const store = this.#options.store;
    const { logger } = this.#options;
    let records;
    try {
      records = await store.load({ fresh: true });
    } catch (err) {
      if (!leadership) {
        logger.error({ code: (err as FairwayError).code, err: (err as Error).message }, 'ignoring the cutover state file: cutovers recorded in it are not resumed');
      } else {
        logger.warn({ code: (err as FairwayError).code, err: (err as Error).message }, 'cannot read the cutovers afresh; resuming them from this replica\'s copy');
        records = await store.load().catch(() => undefined);
      }
    }
    if (leadership && !leadership.leading) return; // lost again while loading: the next change follows
    // Decisions the previous leader recorded that this replica has not shown yet.
    if (records && leadership) this.#mirror(records);
    this.#mode = 'leading';
    for (const record of records ?? []) await this.#adopt(record, why);
    if (leadership) this.emit('role', 'leading');
  }

  /** Drives `record` from now on (resuming it if it is running or paused). */
  async #adopt(record: CutoverRecord, why: string): Promise<void> {
    if (this.#closed) return; // closing while taking over: the next leader resumes it
    const run = CutoverRun.restore(record, this.#ctx);
    this.#runs.get(record.plan.app)?.close();
    this.#runs.set(record.plan.app, run);
    if (isActive(record.state)) await run.resumeAfterRestart(why);
  }

  /**
   * While leading: records of cutovers this replica does not drive, newer than its own
   * for their app, that showed up in the store (saves of the previous leader its watch
   * showed late) are adopted.
   */
  async #adoptUnseen(): Promise<void> {
    let records;
    try {
      records = await this.#options.store.load();
    } catch {
      return;
    }
    for (const record of records) {
      if (this.#mode !== 'leading') return;
      const current = this.#runs.get(record.plan.app)?.record;
      if (current && (current.id === record.id || current.startedAt >= record.startedAt)) continue;
      this.#options.logger.info({ app: record.plan.app, cutover: record.id }, 'found a cutover recorded by the previous leader; driving it from now on');
      this.#mirror([record]);
      await this.#adopt(record, `by replica ${this.#options.leadership!.identity}, which took over driving cutovers`);
    }
  }

  /** Stops driving (timers off) and mirrors the store from now on. */
  async #follow(): Promise<void> {
    this.#mode = 'following';
    for (const run of this.#runs.values()) run.close();
    await this.#reload(true);
    this.emit('role', 'following');
  }

  #scheduleMirror(): void {
    if (this.#mirrorScheduled || this.#mode === 'idle') return;
    this.#mirrorScheduled = true;
    setImmediate(() => {
      this.#mirrorScheduled = false;
      void this.#enqueue(() => (this.#mode === 'leading' ? this.#adoptUnseen() : this.#reload(false)));
    });
  }

  async #reload(all: boolean): Promise<void> {
    if (this.#mode !== 'following') return;
    try {
      this.#mirror(await this.#options.store.load(), all);
    } catch (err) {
      this.#options.logger.error({ code: (err as FairwayError).code, err: (err as Error).message }, 'cannot read the cutovers another replica drives');
    }
  }

  /**
   * Makes the runs copies of `records` that do nothing by themselves (closed), and
   * publishes the decisions not seen yet. `all`: replace every run, even unchanged ones
   * (after stepping down, the runs were live ones).
   */
  #mirror(records: readonly CutoverRecord[], all = false): void {
    for (const record of records) {
      const app = record.plan.app;
      const known = this.#runs.get(app)?.record;
      const same = known?.id === record.id;
      if (!all && same && known!.history.length === record.history.length && known!.updatedAt === record.updatedAt && known!.state === record.state) continue;
      if (same && record.history.length < known!.history.length) continue; // an older copy: keep the newer one
      const run = CutoverRun.restore(record, this.#ctx);
      run.close();
      this.#runs.get(app)?.close();
      this.#runs.set(app, run);
      const last = record.history.at(-1);
      if (last) this.#options.metrics.cutoverPercent.set({ app }, last.percent);
      for (const d of record.history.slice(same ? known!.history.length : 0)) this.emit('decision', { app, id: record.id, ...d });
    }
    for (const waiter of [...this.#mirrored]) waiter();
  }

  /**
   * Runs an operator call here when this replica leads, else forwards it to the leader
   * (`POST /v1/apps/{app}/<action>`) and answers once the store shows its outcome here too.
   */
  async #leaderDoes(app: string, action: string, body: unknown, origin: CallOrigin, here: () => Promise<CutoverStatus>): Promise<CutoverStatus> {
    const leadership = this.#options.leadership;
    if (!leadership) return here();
    await this.#serial;
    if (this.leading) return here();
    if (origin.forwarded) {
      throw new FairwayError('FW_CUTOVER_NO_LEADER', `replica ${leadership.identity} was asked by another replica to drive cutovers, but it does not lead (the cutover Lease changed hands); retry in a few seconds`);
    }
    let leader: LeaderInfo | undefined;
    try {
      leader = await leadership.leader();
    } catch (err) {
      throw new FairwayError('FW_CUTOVER_NO_LEADER', `cannot tell which replica drives cutovers: ${(err as Error).message}; retry in a few seconds`, undefined, { cause: err });
    }
    if (leader?.identity === leadership.identity) {
      // The Lease is ours already and the switch to leading is queued.
      await this.#serial;
      if (this.leading) return here();
    }
    if (!leader || leader.identity === leadership.identity || !leader.adminUrl) {
      throw new FairwayError('FW_CUTOVER_NO_LEADER', leader?.adminUrl === undefined && leader && leader.identity !== leadership.identity
        ? `replica ${leader.identity} drives cutovers but did not advertise its admin API; retry in a few seconds`
        : 'no replica drives cutovers right now (the cutover Lease is free or expired, and a replica takes it within seconds); retry in a few seconds');
    }
    const answer = (await this.#options.forward!(leader.adminUrl, `v1/apps/${encodeURIComponent(app)}/${action}`, body)) as CutoverStatus;
    await this.#caughtUp(app, answer.id, answer.history.length);
    return answer;
  }

  /** Resolves when this replica's copy of the app's cutover `id` has `decisions` decisions (or after `followTimeoutMs`). */
  #caughtUp(app: string, id: string, decisions: number): Promise<void> {
    const done = () => {
      const r = this.#runs.get(app)?.record;
      return r !== undefined && r.id === id && r.history.length >= decisions;
    };
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.#mirrored.delete(check);
        resolve();
      };
      const check = () => {
        if (done()) finish();
      };
      const timer = setTimeout(() => {
        this.#options.logger.warn({ app, cutover: id }, "this replica's copy of the cutover did not catch up with the leader in time; answering with the leader's status");
        finish();
      }, this.#options.followTimeoutMs ?? 10_000);
      this.#mirrored.add(check);
    });
  }
}
