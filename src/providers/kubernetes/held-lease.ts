/**
 * @module
 * `coordination.k8s.io` Leases as Fairway uses them: taken with {@link tryAcquireLease},
 * then kept by a {@link HeldLease} (a heartbeat renewing it) until released or lost.
 * Shared by the Secret storage's locks (one Lease per lock), the cutover leadership
 * (`fairway-cutovers`) and the replica Leases (`fairway-replica-<identity>`).
 *
 * Contract:
 * - A Lease is held by `spec.holderIdentity` until `renewTime + leaseDurationSeconds`
 *   (by the reader's clock); times are V1MicroTimes with six fractional digits, as the
 *   API requires.
 * - Acquire = create the Lease. If it exists and its holder is empty or it has expired,
 *   take it over by an update carrying the resourceVersion read, with
 *   `leaseTransitions` + 1: of several contenders only one update succeeds, the others get
 *   409 Conflict and see it held. A Lease held by this very identity is taken back at once
 *   when the claim says `reclaimOwn` (a holder that stepped down but left its Lease).
 * - While held, an unref'd heartbeat updates `renewTime` every `renewMs` (with the
 *   resourceVersion). A heartbeat that finds the Lease gone or held by someone else marks
 *   it lost; so does `deadlineMs` without a successful renewal (the holder must stop acting
 *   on it before another replica may take it over: keep `deadlineMs` below the Lease's
 *   duration). A failed heartbeat is otherwise retried at the next tick.
 * - `release()` stops the heartbeat and deletes the Lease with a uid + resourceVersion
 *   precondition, so it never deletes a Lease someone else has taken over. Safe to call
 *   twice; after a loss it touches nothing.
 */
import { CoordinationV1Api, V1MicroTime, type ConfigurationOptions, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { FairwayError, type ErrorCode } from '../../errors.js';
import { apiFailure, statusOf, withTimeout } from './api-failure.js';

/** Immediate retries after a race (the object vanished or changed between two requests). */
const MAX_RACE_RETRIES = 5;

/** The API calls and error wording Lease operations need. */
export interface LeaseContext {
  readonly coordination: CoordinationV1Api;
  readonly namespace: string;
  /** This process's `holderIdentity`. */
  readonly identity: string;
  /** A renewal that takes longer than this has failed. */
  readonly heartbeatTimeoutMs: number;
  /** Per-request client options: a timeout of `timeoutMs` (default: the owner's request timeout). */
  call(timeoutMs?: number): ConfigurationOptions;
  ioError(action: string, err: unknown, details?: Record<string, unknown>): FairwayError;
}

/**
 * A {@link LeaseContext} for Leases in `namespace`: requests time out after
 * `requestTimeoutMs`, and failures are FairwayErrors with `code` naming the namespace,
 * the server and the API server's message.
 */
export function leaseContext(o: { kubeConfig: KubeConfig; namespace: string; identity: string; requestTimeoutMs: number; code: ErrorCode }): LeaseContext {
  const server = o.kubeConfig.getCurrentCluster()?.server ?? '(no current cluster)';
  return {
    coordination: o.kubeConfig.makeApiClient(CoordinationV1Api),
    namespace: o.namespace,
    identity: o.identity,
    heartbeatTimeoutMs: o.requestTimeoutMs,
    call: (ms = o.requestTimeoutMs) => withTimeout(ms),
    ioError(action, err, details = {}) {
      const failure = apiFailure(err, server, o.requestTimeoutMs);
      return new FairwayError(o.code, `${action}: ${failure.message}`, { namespace: o.namespace, server, status: failure.status, reason: failure.reason, ...details }, { cause: err });
    },
  };
}

/** What to hold, and how to name it in messages. */
export interface LeaseClaim {
  readonly name: string;
  readonly durationSeconds: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** The Lease in messages, e.g. `Lease deis/fairway-lock-x (lock "x")`. */
  readonly where: string;
  /** Added to error details. */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Take back at once a Lease this identity holds (see the module comment). */
  readonly reclaimOwn?: boolean;
}

/** `{ lease }`: ours now; `{ race }`: it changed under us, worth another look at once; `{ held }`: someone holds it. */
export type LeaseAttempt = { lease: V1Lease; race?: undefined; held?: undefined } | { race: true; lease?: undefined; held?: undefined } | { held: V1Lease; lease?: undefined; race?: undefined };

/** Milliseconds since the epoch of a Lease time (a V1MicroTime, a Date, or the string the client leaves it as). */
export function timeOf(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  return typeof value === 'string' ? Date.parse(value) : Number.NaN;
}

/** A Lease time as the API's text (six fractional digits). */
export function microTimeText(value: unknown): string | undefined {
  if (value instanceof Date) return new V1MicroTime(value.getTime()).toISOString();
  return typeof value === 'string' ? value : undefined;
}

/** When the Lease stops protecting its holder; -Infinity when it has none or cannot be judged. */
export function leaseExpiry(lease: V1Lease): number {
  const spec = lease.spec;
  if (!spec?.holderIdentity) return Number.NEGATIVE_INFINITY;
  const renewed = timeOf(spec.renewTime ?? spec.acquireTime);
  const seconds = spec.leaseDurationSeconds;
  if (!Number.isFinite(renewed) || typeof seconds !== 'number') return Number.NEGATIVE_INFINITY;
  return renewed + seconds * 1000;
}

/** One attempt at the Lease of `claim` (see the module comment). Errors are `ctx.ioError`s. */
export async function tryAcquireLease(ctx: LeaseContext, claim: LeaseClaim): Promise<LeaseAttempt> {
  const { coordination, namespace, identity } = ctx;
  const details = { ...claim.details };
  const now = new V1MicroTime();
  const spec = { holderIdentity: identity, leaseDurationSeconds: claim.durationSeconds, acquireTime: now, renewTime: now };
  try {
    const lease = await coordination.createNamespacedLease({
      namespace,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: claim.name, namespace, labels: { ...claim.labels }, annotations: { ...claim.annotations } },
        spec: { ...spec, leaseTransitions: 0 },
      },
    }, ctx.call());
    return { lease };
  } catch (err) {
    if (statusOf(err) !== 409) throw ctx.ioError(`cannot create ${claim.where}`, err, details);
  }
  let current: V1Lease;
  try {
    current = await coordination.readNamespacedLease({ name: claim.name, namespace }, ctx.call());
  } catch (err) {
    if (statusOf(err) === 404) return { race: true }; // released in between
    throw ctx.ioError(`cannot read ${claim.where}`, err, details);
  }
  const previous = current.spec?.holderIdentity;
  const ours = claim.reclaimOwn === true && previous === identity;
  if (!ours && leaseExpiry(current) >= Date.now()) return { held: current };
  // Abandoned (or ours): take it over, on the condition that nobody changed it since we read it.
  const taken = new V1MicroTime();
  const transitions = (current.spec?.leaseTransitions ?? 0) + (previous === identity ? 0 : 1);
  try {
    const lease = await coordination.replaceNamespacedLease({
      name: claim.name,
      namespace,
      body: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name: claim.name,
          namespace,
          resourceVersion: current.metadata?.resourceVersion,
          labels: { ...current.metadata?.labels, ...claim.labels },
          annotations: { ...current.metadata?.annotations, ...claim.annotations },
        },
        spec: { ...spec, acquireTime: taken, renewTime: taken, leaseTransitions: transitions },
      },
    }, ctx.call());
    return { lease };
  } catch (err) {
    const status = statusOf(err);
    if (status === 409) return { held: current }; // another contender won; it holds a fresh Lease now
    if (status === 404) return { race: true };
    throw ctx.ioError(`cannot take over ${claim.where}`, err, details);
  }
}

export interface HoldOptions {
  /** How often the Lease is renewed, ms. */
  readonly renewMs: number;
  /** Without a successful renewal for this long the Lease counts as lost, ms (default: never). */
  readonly deadlineMs?: number;
  /** Called once when the Lease is found lost (not after `release()`). */
  readonly onLost?: () => void;
  /** Called once when `release()` finished, whatever its outcome. */
  readonly onReleased?: () => void;
}

/** A held Lease: renewed by a heartbeat until released or lost. */
export class HeldLease {
  readonly #ctx: LeaseContext;
  readonly #where: string;
  readonly #details: Readonly<Record<string, unknown>>;
  readonly #options: HoldOptions;
  readonly #name: string;
  readonly #uid: string | undefined;
  readonly #acquireTime: string | undefined;
  readonly #timer: NodeJS.Timeout;
  #lease: V1Lease;
  #renewedAt = Date.now();
  #lost = false;
  #beat: Promise<void> | undefined;
  #releasing: Promise<void> | undefined;

  constructor(ctx: LeaseContext, lease: V1Lease, claim: Pick<LeaseClaim, 'where' | 'details'>, options: HoldOptions) {
    this.#ctx = ctx;
    this.#where = claim.where;
    this.#details = { ...claim.details };
    this.#options = options;
    this.#lease = lease;
    this.#name = lease.metadata?.name ?? '';
    this.#uid = lease.metadata?.uid;
    this.#acquireTime = microTimeText(lease.spec?.acquireTime);
    this.#timer = setInterval(() => this.#heartbeat(), options.renewMs).unref();
  }

  /** True once the Lease was found gone, taken over, or not renewed within the deadline, or was released. */
  get lost(): boolean {
    return this.#lost;
  }

  /** The Lease as last written or read. */
  get lease(): V1Lease {
    return this.#lease;
  }

  /** Still this holder's Lease: same object, same holder, same acquisition. */
  #mine(lease: V1Lease): boolean {
    return lease.metadata?.uid === this.#uid && lease.spec?.holderIdentity === this.#ctx.identity && microTimeText(lease.spec?.acquireTime) === this.#acquireTime;
  }

  #heartbeat(): void {
    if (this.#lost || this.#releasing) return;
    if (this.#options.deadlineMs !== undefined && Date.now() - this.#renewedAt > this.#options.deadlineMs) return this.#stop(true);
    if (this.#beat) return;
    this.#beat = this.#renew()
      .catch(() => {}) // A failed heartbeat is retried at the next tick.
      .finally(() => (this.#beat = undefined));
  }

  async #renew(): Promise<void> {
    const { coordination, namespace } = this.#ctx;
    const lease = this.#lease;
    const started = Date.now();
    try {
      const renewed = await coordination.replaceNamespacedLease({
        name: this.#name,
        namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: {
            name: this.#name,
            namespace,
            uid: this.#uid,
            resourceVersion: lease.metadata?.resourceVersion,
            labels: lease.metadata?.labels,
            annotations: lease.metadata?.annotations,
          },
          // acquireTime stays the server's own text (six digits); renewTime is a V1MicroTime.
          spec: { ...lease.spec, renewTime: new V1MicroTime() },
        },
      }, this.#ctx.call(this.#ctx.heartbeatTimeoutMs));
      if (this.#lost) return;
      this.#lease = renewed;
      this.#renewedAt = started;
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) this.#stop(true);
      else if (status === 409) await this.#reread();
      else throw err;
    }
  }

  /** After a conflict: keep the fresh Lease if it is still ours (the next beat renews it), else it is lost. */
  async #reread(): Promise<void> {
    try {
      const fresh = await this.#ctx.coordination.readNamespacedLease({ name: this.#name, namespace: this.#ctx.namespace }, this.#ctx.call(this.#ctx.heartbeatTimeoutMs));
      if (this.#mine(fresh)) this.#lease = fresh;
      else this.#stop(true);
    } catch (err) {
      if (statusOf(err) === 404) this.#stop(true);
      else throw err;
    }
  }

  #stop(notify: boolean): void {
    if (this.#lost) return;
    this.#lost = true;
    clearInterval(this.#timer);
    if (notify && !this.#releasing) this.#options.onLost?.();
  }

  release(): Promise<void> {
    if (this.#releasing) return this.#releasing.catch(() => {});
    this.#releasing = (async () => {
      clearInterval(this.#timer);
      await this.#beat;
      try {
        if (!this.#lost) await this.#deleteLease();
      } finally {
        this.#lost = true;
        this.#options.onReleased?.();
      }
    })();
    return this.#releasing;
  }

  async #deleteLease(): Promise<void> {
    const { coordination, namespace } = this.#ctx;
    for (let attempt = 0; ; attempt++) {
      try {
        await coordination.deleteNamespacedLease({
          name: this.#name,
          namespace,
          body: { preconditions: { uid: this.#uid, resourceVersion: this.#lease.metadata?.resourceVersion } },
        }, this.#ctx.call());
        return;
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) return;
        if (status !== 409 || attempt >= MAX_RACE_RETRIES) throw this.#ctx.ioError(`cannot release ${this.#where}`, err, { ...this.#details });
      }
      // The Lease changed since we last saw it: delete it only if it is still ours.
      let fresh: V1Lease;
      try {
        fresh = await coordination.readNamespacedLease({ name: this.#name, namespace }, this.#ctx.call());
      } catch (err) {
        if (statusOf(err) === 404) return;
        throw this.#ctx.ioError(`cannot release ${this.#where}`, err, { ...this.#details });
      }
      if (!this.#mine(fresh)) return;
      this.#lease = fresh;
    }
  }
}
