/**
 * @module
 * Which replica drives cutovers, in Kubernetes mode: the holder of the Lease
 * `fairway-cutovers` in the router's namespace (one Lease for every app: one replica
 * drives them all). A {@link Leadership} for the cutover controller.
 *
 * Lifecycle and contract:
 * - `start(adminUrl)` (once the admin API listens) tries to take the Lease at once and
 *   then every `retryMs` (plus up to 50% jitter) while another replica holds it. The
 *   Lease is annotated `fairway.io/admin-url: <adminUrl>`, which is where the other
 *   replicas forward operator calls ({@link leader}).
 * - The holder renews it every `renewMs` (Lease mechanics: `held-lease.ts`). It stops
 *   leading (`change` → false) when a renewal finds the Lease gone or taken, or when no
 *   renewal succeeded for `durationMs − renewMs`: before the others may take it over
 *   (`durationMs` after the last renewal, whole seconds), so two replicas never drive at
 *   once as long as their clocks agree within `renewMs`. Then it tries again like the
 *   others.
 * - `stop()` stops trying and, if it leads, deletes the Lease (with a uid and
 *   resourceVersion precondition), so another replica takes over within `retryMs`
 *   instead of waiting for it to expire. A replica that dies without `stop()` is
 *   replaced `durationMs` after its last renewal.
 * - API failures are logged (FW_LEASE_IO, once per streak) and retried; they never throw
 *   out of `start()`.
 */
import { EventEmitter } from 'node:events';
import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.js';
import { statusOf } from '../providers/kubernetes/api-failure.js';
import { HeldLease, leaseContext, leaseExpiry, tryAcquireLease, type LeaseClaim, type LeaseContext } from '../providers/kubernetes/held-lease.js';
import type { LeaderInfo, Leadership } from './cutover-controller.js';

export const ADMIN_URL_ANNOTATION = 'fairway.io/admin-url';
export const CUTOVER_LEASE = 'fairway-cutovers';

export interface CutoverLeaseOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** This replica's `holderIdentity`. */
  readonly identity: string;
  readonly logger: Logger;
  /** How long the Lease protects its holder after a renewal, ms (default 15 s; rounded up to whole seconds). */
  readonly durationMs?: number;
  /** How often the holder renews it, ms (default 5 s); below `durationMs`. */
  readonly renewMs?: number;
  /** How often a replica that does not hold it tries to take it, ms (default 2 s). */
  readonly retryMs?: number;
  /** Per request to the API server, ms (default 10 s). */
  readonly requestTimeoutMs?: number;
}

export class CutoverLease extends EventEmitter<{ change: [boolean] }> implements Leadership {
  readonly identity: string;
  readonly #o: CutoverLeaseOptions;
  readonly #ctx: LeaseContext;
  readonly #durationSeconds: number;
  readonly #renewMs: number;
  readonly #retryMs: number;
  #adminUrl: string | undefined;
  #held: HeldLease | undefined;
  #timer: NodeJS.Timeout | undefined;
  #attempting = false;
  #stopped = false;
  #failing = false;

  constructor(options: CutoverLeaseOptions) {
    super();
    this.#o = options;
    this.identity = options.identity;
    this.#durationSeconds = Math.max(1, Math.ceil((options.durationMs ?? 15_000) / 1000));
    this.#renewMs = options.renewMs ?? 5_000;
    this.#retryMs = options.retryMs ?? 2_000;
    if (!(this.#renewMs > 0 && this.#renewMs < this.#durationSeconds * 1000)) throw new RangeError(`CutoverLease: renewMs (${this.#renewMs}) must be above 0 and below the duration (${this.#durationSeconds * 1000} ms)`);
    this.#ctx = leaseContext({ kubeConfig: options.kubeConfig, namespace: options.namespace, identity: options.identity, requestTimeoutMs: options.requestTimeoutMs ?? 10_000, code: 'FW_LEASE_IO' });
  }

  get leading(): boolean {
    return this.#held !== undefined && !this.#held.lost;
  }

  /** Starts competing for the Lease, advertising `adminUrl` while holding it. */
  start(adminUrl: string): void {
    this.#adminUrl = adminUrl;
    void this.#attempt();
  }

  async leader(): Promise<LeaderInfo | undefined> {
    let lease: V1Lease;
    try {
      lease = await this.#ctx.coordination.readNamespacedLease({ name: CUTOVER_LEASE, namespace: this.#o.namespace }, this.#ctx.call());
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.#ctx.ioError(`cannot read ${this.#where}`, err);
    }
    const holder = lease.spec?.holderIdentity;
    if (!holder || leaseExpiry(lease) < Date.now()) return undefined;
    return { identity: holder, adminUrl: lease.metadata?.annotations?.[ADMIN_URL_ANNOTATION] };
  }

  /** Stops competing; if this replica leads, gives the Lease up for another to take. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const held = this.#held;
    if (!held) return;
    const wasLeading = !held.lost;
    try {
      await held.release();
      if (wasLeading) this.#o.logger.info({ lease: this.#where }, 'gave up driving cutovers (stopping)');
    } catch (err) {
      this.#o.logger.warn({ code: 'FW_LEASE_IO', err: (err as Error).message }, 'could not give the cutover Lease up; another replica takes it when it expires');
    }
  }

  get #where(): string {
    return `Lease ${this.#o.namespace}/${CUTOVER_LEASE}`;
  }

  async #attempt(): Promise<void> {
    if (this.#stopped || this.#attempting || this.leading) return;
    this.#attempting = true;
    const claim: LeaseClaim = {
      name: CUTOVER_LEASE,
      durationSeconds: this.#durationSeconds,
      labels: { 'app.kubernetes.io/managed-by': 'fairway' },
      annotations: { [ADMIN_URL_ANNOTATION]: this.#adminUrl ?? '' },
      where: this.#where,
      reclaimOwn: true,
    };
    try {
      for (let races = 0; races < 5; races++) {
        const attempt = await tryAcquireLease(this.#ctx, claim);
        if (attempt.race) continue;
        if (attempt.lease) {
          if (this.#stopped) {
            await new HeldLease(this.#ctx, attempt.lease, claim, { renewMs: this.#renewMs }).release().catch(() => {});
            return;
          }
          this.#held = new HeldLease(this.#ctx, attempt.lease, claim, {
            renewMs: this.#renewMs,
            deadlineMs: this.#durationSeconds * 1000 - this.#renewMs,
            onLost: () => this.#lost(),
          });
          this.#failing = false;
          this.#o.logger.info({ lease: this.#where, identity: this.identity }, 'this replica drives cutovers now');
          this.emit('change', true);
          return;
        }
        break;
      }
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) this.#o.logger.warn({ code: 'FW_LEASE_IO', err: (err as Error).message }, 'cannot take part in choosing the replica that drives cutovers; retrying');
      this.#failing = true;
    } finally {
      this.#attempting = false;
    }
    this.#retry();
  }

  #lost(): void {
    this.#held = undefined;
    this.#o.logger.warn({ lease: this.#where, identity: this.identity }, 'this replica no longer drives cutovers (its Lease was lost or could not be renewed in time)');
    this.emit('change', false);
    this.#retry();
  }

  #retry(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#attempt(), this.#retryMs * (1 + Math.random() * 0.5));
    this.#timer.unref();
  }
}
