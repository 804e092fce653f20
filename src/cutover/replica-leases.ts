/**
 * @module
 * Replica discovery in Kubernetes mode without new broad RBAC: each replica keeps a
 * Lease `fairway-replica-<identity>` in the router's namespace, labelled
 * `fairway.io/replica: "true"` and annotated `fairway.io/admin-url: http://<pod IP>:<admin
 * port>`, renewed every `renewMs`; the live ones (renewed within their duration) are the
 * replicas ({@link peers}). A {@link ReplicaDirectory} for the cutover's
 * {@link ReplicaStatsSource}.
 *
 * Contract:
 * - `start(adminUrl)` creates this replica's Lease (in the background, retrying every
 *   `renewMs` until the API server accepts it) and keeps it: a Lease found gone or taken
 *   (an API server restored from a backup, someone deleting it) is created again.
 * - `peers()` lists the replica Leases (one LIST with the label selector, reused for
 *   `cacheMs`), and answers the other replicas whose Lease is live and names an admin URL.
 *   If the LIST fails it answers the last list it got (and logs FW_LEASE_IO once per
 *   streak). Leases that expired more than `forgetAfterMs` ago (replicas that died
 *   without `stop()`) are deleted on the way, with a uid + resourceVersion precondition.
 * - `stop()` deletes this replica's Lease.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KubeConfig, V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.js';
import { HeldLease, leaseContext, leaseExpiry, tryAcquireLease, type LeaseClaim, type LeaseContext } from '../providers/kubernetes/held-lease.js';
import { ADMIN_URL_ANNOTATION } from './cutover-lease.js';
import type { ReplicaDirectory, ReplicaPeer } from './replica-stats-source.js';

export const REPLICA_LABEL = 'fairway.io/replica';

export interface ReplicaLeasesOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** This replica's name: its Lease is `fairway-replica-<identity>` (see {@link replicaIdentity}). */
  readonly identity: string;
  readonly logger: Logger;
  /** How long a Lease counts as live after a renewal, ms (default 15 s; rounded up to whole seconds). */
  readonly durationMs?: number;
  /** How often this replica renews its Lease, ms (default 5 s). */
  readonly renewMs?: number;
  /** How long `peers()` reuses a list, ms (default 1 s). */
  readonly cacheMs?: number;
  /** Delete other replicas' Leases expired for this long, ms (default 10 min). */
  readonly forgetAfterMs?: number;
  /** Per request to the API server, ms (default 10 s). */
  readonly requestTimeoutMs?: number;
}

/**
 * A replica name fit for a Lease name: `$POD_NAME` or the host name (the pod's name in a
 * pod), lower-cased and cut to 40 characters, plus a random suffix: each process is a
 * new replica (a restarted container's counters start again).
 */
export function replicaIdentity(base = process.env.POD_NAME ?? hostname()): string {
  const clean = base.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 40).replace(/^-+|-+$/g, '') || 'fairway';
  return `${clean}-${randomBytes(3).toString('hex')}`;
}

export class ReplicaLeases implements ReplicaDirectory {
  readonly identity: string;
  readonly #o: ReplicaLeasesOptions;
  readonly #ctx: LeaseContext;
  readonly #durationSeconds: number;
  readonly #renewMs: number;
  #claim: LeaseClaim | undefined;
  #held: HeldLease | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #failing = false;
  #listed: { at: number; peers: ReplicaPeer[] } | undefined;
  #listing: Promise<ReplicaPeer[]> | undefined;
  #listFailing = false;

  constructor(options: ReplicaLeasesOptions) {
    this.#o = options;
    this.identity = options.identity;
    this.#durationSeconds = Math.max(1, Math.ceil((options.durationMs ?? 15_000) / 1000));
    this.#renewMs = options.renewMs ?? 5_000;
    this.#ctx = leaseContext({ kubeConfig: options.kubeConfig, namespace: options.namespace, identity: options.identity, requestTimeoutMs: options.requestTimeoutMs ?? 10_000, code: 'FW_LEASE_IO' });
  }

  /** This replica's Lease name. */
  get leaseName(): string {
    return `fairway-replica-${this.identity}`;
  }

  start(adminUrl: string): void {
    this.#claim = {
      name: this.leaseName,
      durationSeconds: this.#durationSeconds,
      labels: { 'app.kubernetes.io/managed-by': 'fairway', [REPLICA_LABEL]: 'true' },
      annotations: { [ADMIN_URL_ANNOTATION]: adminUrl },
      where: `Lease ${this.#o.namespace}/${this.leaseName}`,
      reclaimOwn: true,
    };
    void this.#keep();
  }

  async peers(): Promise<ReplicaPeer[]> {
    const cached = this.#listed;
    if (cached && Date.now() - cached.at < (this.#o.cacheMs ?? 1_000)) return cached.peers;
    this.#listing ??= this.#list().finally(() => (this.#listing = undefined));
    return this.#listing;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#held?.release().catch((err: Error) => this.#o.logger.warn({ code: 'FW_LEASE_IO', err: err.message }, 'could not delete this replica\'s Lease; it expires by itself'));
  }

  async #keep(): Promise<void> {
    if (this.#stopped || (this.#held && !this.#held.lost)) return;
    const claim = this.#claim!;
    try {
      const attempt = await tryAcquireLease(this.#ctx, claim);
      if (attempt.lease) {
        const held = new HeldLease(this.#ctx, attempt.lease, claim, { renewMs: this.#renewMs, onLost: () => this.#retry() });
        if (this.#stopped) await held.release().catch(() => {});
        else this.#held = held;
        this.#failing = false;
        return;
      }
    } catch (err) {
      if (!this.#failing) this.#o.logger.warn({ code: 'FW_LEASE_IO', err: (err as Error).message }, 'cannot announce this replica to the others (its Lease); retrying');
      this.#failing = true;
    }
    this.#retry();
  }

  #retry(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#keep(), this.#renewMs);
    this.#timer.unref();
  }

  async #list(): Promise<ReplicaPeer[]> {
    let leases: V1Lease[];
    try {
      leases = (await this.#ctx.coordination.listNamespacedLease({ namespace: this.#o.namespace, labelSelector: `${REPLICA_LABEL}=true` }, this.#ctx.call())).items;
      this.#listFailing = false;
    } catch (err) {
      if (!this.#listFailing) this.#o.logger.warn({ code: 'FW_LEASE_IO', err: this.#ctx.ioError(`cannot list the replica Leases in ${this.#o.namespace}`, err).message }, 'using the last known replicas');
      this.#listFailing = true;
      return this.#listed?.peers ?? [];
    }
    const now = Date.now();
    const peers: ReplicaPeer[] = [];
    for (const lease of leases) {
      const identity = lease.spec?.holderIdentity;
      const adminUrl = lease.metadata?.annotations?.[ADMIN_URL_ANNOTATION];
      const expiry = leaseExpiry(lease);
      if (expiry < now - (this.#o.forgetAfterMs ?? 600_000)) this.#forget(lease);
      if (!identity || identity === this.identity || !adminUrl || expiry < now) continue;
      peers.push({ identity, adminUrl });
    }
    peers.sort((a, b) => (a.identity < b.identity ? -1 : 1));
    this.#listed = { at: now, peers };
    return peers;
  }

  #forget(lease: V1Lease): void {
    const name = lease.metadata?.name;
    if (!name) return;
    this.#ctx.coordination
      .deleteNamespacedLease({ name, namespace: this.#o.namespace, body: { preconditions: { uid: lease.metadata?.uid, resourceVersion: lease.metadata?.resourceVersion } } }, this.#ctx.call())
      .then(() => this.#o.logger.info({ lease: `${this.#o.namespace}/${name}` }, 'deleted the Lease of a replica that is gone'))
      .catch(() => {});
  }
}
