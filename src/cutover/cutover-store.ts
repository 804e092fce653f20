/**
 * @module
 * What a cutover is as data (its plan, state, progress and history of decisions), and the
 * {@link CutoverStore} seam that keeps it across restarts.
 *
 * States: `running` (walking the steps) → `completed` | `rolled_back` | `aborted` |
 * `failed`; `running` ⇄ `paused`. A completed, aborted or failed cutover can still be
 * rolled back (`fairway rollback`), which moves it to `rolled_back`.
 */
import type { CutoverPlan } from './cutover-plan.js';
import type { BreachCause } from './judge-window.js';
import type { WindowNumbers, WindowReplicas } from './measurement-window.js';

export type CutoverState = 'running' | 'paused' | 'completed' | 'rolled_back' | 'aborted' | 'failed';
export const CUTOVER_STATES: readonly CutoverState[] = ['running', 'paused', 'completed', 'rolled_back', 'aborted', 'failed'];

/** States in which a cutover drives the app's weights (one per app at a time). */
export function isActive(state: CutoverState): boolean {
  return state === 'running' || state === 'paused';
}

/**
 * - `start`: the plan was accepted; `weights` are the two versions' weights before it.
 * - `step`: a step's weights are live and its hold begins.
 * - `pass`: the step's window was judged healthy when the hold ended.
 * - `no_traffic`: the hold ended with fewer than `minRequests`; `action` says what followed.
 * - `rollback`: all traffic went back to `from` (`cause` says why).
 * - `complete`: the last step passed (or `promote`): all traffic on `to`.
 * - `pause`, `resume`, `promote`, `abort`: operator actions.
 * - `restart`: a router restart found the cutover in progress and resumed it.
 * - `fail`: the cutover stopped without moving weights (see `message`).
 */
export type DecisionKind = 'start' | 'step' | 'pass' | 'no_traffic' | 'rollback' | 'complete' | 'pause' | 'resume' | 'promote' | 'abort' | 'restart' | 'fail';
export type RollbackCause = BreachCause | 'no_endpoints' | 'manual';

/** A step's window as judged: both versions' numbers, the limits, and how long it ran. */
export interface JudgedWindow {
  readonly elapsedMs: number;
  /** The new version (`to`). */
  readonly new: WindowNumbers;
  /** The old version (`from`). */
  readonly old: WindowNumbers;
  readonly limits: { readonly errorRate: number; readonly p99Ms: number | null };
  /**
   * Which replicas' traffic the numbers hold, and which were left out and why; present
   * when the window spans more than one replica or one could not be read.
   */
  readonly replicas?: WindowReplicas;
}

/** One entry of a cutover's history: what was decided, when, and on which numbers. */
export interface CutoverDecision {
  /** Position in the history, from 0. */
  readonly index: number;
  readonly at: string;
  readonly kind: DecisionKind;
  /** The cutover's state after this decision. */
  readonly state: CutoverState;
  /** Step index (0-based) the decision is about; -1 before the first step. */
  readonly step: number;
  /** Percent of the two versions' traffic on `to` after the decision. */
  readonly percent: number;
  /** Weights of `from` and `to` after the decision. */
  readonly weights: Readonly<Record<string, number>>;
  readonly window?: JudgedWindow;
  readonly cause?: RollbackCause;
  readonly action?: 'hold' | 'proceed';
  readonly message: string;
  /** The replica that took the decision (Kubernetes mode: the holder of the cutover Lease). */
  readonly replica?: string;
}

export interface CutoverRecord {
  /** Unique per cutover: `<app>-<start time in ms, base 36>`. */
  readonly id: string;
  readonly plan: CutoverPlan;
  readonly state: CutoverState;
  /** Index of the step whose weights are (or were last) set; -1 before the first. */
  readonly step: number;
  /** The combined weight of `from` and `to` that the steps divide. */
  readonly total: number;
  /** Weights of `from` and `to` before the cutover (what `abort` restores). */
  readonly before: Readonly<Record<string, number>>;
  readonly startedAt: string;
  readonly updatedAt: string;
  /** Set once the cutover reached a state other than running or paused. */
  readonly endedAt?: string;
  /** Why it ended, in words (the last decision's message). */
  readonly reason?: string;
  readonly history: readonly CutoverDecision[];
}

/**
 * Where cutovers are kept so that a restarted router resumes them.
 *
 * Contract (every implementation passes `test/cutover-store-contract.ts`):
 * - `load()` returns the latest record of every app that has one, whatever its state;
 *   an empty store returns `[]`.
 * - `save(record)` replaces the record of `record.plan.app`. When it resolves, the record
 *   is durable: a `load()` by this process or a later one returns it (or a later save).
 *   Concurrent saves are applied in call order; a failed save leaves the previous
 *   record in place and rejects with FW_STATE_WRITE.
 * - `load()` rejects with FW_STATE_READ when the stored data is unreadable. A store that
 *   keeps each app's record apart (Kubernetes: on the app's own Service, which the app's
 *   owners may edit) skips an unreadable record instead, logs it, and loads the others:
 *   one app's bad annotation must not stop every other app's cutover from resuming.
 * - Records are plain JSON; a store keeps them as given.
 * - Stores shared by several processes (Kubernetes) also implement `onChange()`: the
 *   listener is called (coalesced, possibly spuriously) when a record may have changed,
 *   whoever wrote it; it returns the function that unsubscribes. Replicas that do not
 *   drive cutovers follow them through it. Such a store may answer `load()` from a local
 *   copy that lags other processes' saves by a moment; `load({ fresh: true })` reads the
 *   shared data itself (what a replica about to drive cutovers needs: every save another
 *   process finished before it took over).
 *
 * Implementations: {@link MemoryCutoverStore} (no persistence), {@link FileCutoverStore}
 * (file mode), `KubernetesCutoverStore` (an annotation on the Service of the cutover's
 * `to` version; see its module comment for how it reads unreadable records).
 */
export interface CutoverStore {
  load(options?: { readonly fresh?: boolean }): Promise<CutoverRecord[]>;
  save(record: CutoverRecord): Promise<void>;
  onChange?(listener: () => void): () => void;
}
