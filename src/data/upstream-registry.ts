/**
 * @module
 * One undici `Pool` per endpoint, shared by every route table that names the endpoint,
 * so a snapshot swap keeps warm keep-alive connections. Lifecycle: `acquire()` while
 * compiling a table; after the swap, `retainOnly()` closes the pools that the live table
 * no longer uses. Closing is graceful (undici `close()`): requests in flight finish,
 * then the connections go — the endpoint is drained, not cut.
 *
 * A pool is created on the endpoint's first request, not when a table names it: an
 * undici Pool costs ~19 KB before it holds a connection, and a cluster of 10,000 apps
 * names 30,000 endpoints most of which a given replica may rarely reach.
 *
 * An Upstream also carries its endpoint's health, so that it survives table swaps: the
 * outlier detector's count of failures in a row and ejection (see `outlier-detector.ts`),
 * and how many active health checks find it failing (see `health-checker.ts`). Pickers
 * read one boolean, {@link Upstream.available}; timers, not the hot path, change it.
 */
import { Pool } from 'undici';
import { endpointKey, type EndpointSpec } from '../model.js';

/** An endpoint as the data plane sees it: a pool (made on first use) and how busy it is. */
export class Upstream {
  readonly key: string;
  /** The pool's TCP connect timeout, ms (apps with different connect timeouts get different pools). */
  readonly connectTimeout: number;
  /** Requests dispatched to this endpoint and not yet finished (least-outstanding picks). */
  outstanding = 0;
  /** False while ejected or failing an active health check: it gets no new requests (unless none of its version's is available). */
  available = true;
  /** Outlier detection: failures in a row; any other response resets it. */
  consecutiveFailures = 0;
  /** Outlier detection: ejected until the ejection timer readmits it. */
  ejected = false;
  /** Outlier detection: the ejection multiplier (times ejected, less one per healthy `baseEjectionTime` after readmission). */
  ejections = 0;
  /** Active health checks that find the endpoint unhealthy now (several apps may check one endpoint). */
  failingChecks = 0;
  /** The ejection timer while ejected, then the multiplier's decay timer while `ejections > 0`. */
  #timer: NodeJS.Timeout | undefined;
  #pool: Pool | undefined;
  #closed = false;

  constructor(key: string, connectTimeout: number) {
    this.key = key;
    this.connectTimeout = connectTimeout;
  }

  /** The endpoint's connection pool, created on first use. */
  get pool(): Pool {
    if (this.#pool === undefined) {
      this.#pool = new Pool(`http://${this.key}`, {
        connect: { timeout: this.connectTimeout },
        // Timeouts are set per request from the snapshot; these only bound idle sockets.
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
        pipelining: 1,
      });
      // Connection failures are reported to the request that triggered them.
      this.#pool.on('connectionError', () => {});
      // A request that still held a retired upstream drains the pool it made.
      if (this.#closed) void this.#pool.close().catch(() => {});
    }
    return this.#pool;
  }

  /**
   * Ejects the endpoint for `ms` (an unref'd timer), counting the ejection. Readmitted at
   * the timer, it calls `onReadmit`; then each `decayMs` it is not ejected again takes one
   * off the multiplier.
   */
  eject(ms: number, decayMs: number, onReadmit: () => void): void {
    clearTimeout(this.#timer);
    this.ejected = true;
    this.ejections++;
    this.consecutiveFailures = 0;
    this.#refresh();
    this.#timer = setTimeout(() => {
      this.ejected = false;
      this.#refresh();
      this.#decay(decayMs);
      onReadmit();
    }, ms).unref();
  }

  #decay(decayMs: number): void {
    this.#timer = this.ejections <= 0 ? undefined : setTimeout(() => {
      this.ejections--;
      this.#decay(decayMs);
    }, decayMs).unref();
  }

  /** One more (`+1`) or one fewer (`-1`) active health check finds the endpoint unhealthy. */
  checkFailing(delta: 1 | -1): void {
    this.failingChecks += delta;
    this.#refresh();
  }

  /** Sets the count of failing checks (a worker's marks from the primary's health checks). */
  setFailingChecks(n: number): void {
    if (n === this.failingChecks) return;
    this.failingChecks = n;
    this.#refresh();
  }

  #refresh(): void {
    this.available = !this.ejected && this.failingChecks === 0;
  }

  /** Closes the pool, if one was made: gracefully, or aborting in-flight requests with `force`. */
  async close(force = false): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const pool = this.#pool;
    if (pool) await (force ? pool.destroy() : pool.close()).catch(() => {});
  }
}

export interface UpstreamPoolOptions {
  /** TCP connect timeout, ms. */
  readonly connectTimeout: number;
}

export class UpstreamRegistry {
  readonly #byKey = new Map<string, Upstream>();

  /** The upstream for `spec` with these pool options, created if new. */
  acquire(spec: EndpointSpec, options: UpstreamPoolOptions): Upstream {
    const key = endpointKey(spec);
    const id = `${key}|${options.connectTimeout}`;
    let u = this.#byKey.get(id);
    if (!u) {
      u = new Upstream(key, options.connectTimeout);
      this.#byKey.set(id, u);
    }
    return u;
  }

  /** Gracefully closes every pool not in `keep`. */
  retainOnly(keep: ReadonlySet<Upstream>): void {
    for (const [id, u] of this.#byKey) {
      if (!keep.has(u)) {
        this.#byKey.delete(id);
        void u.close();
      }
    }
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Closes every pool; with `force`, in-flight requests are aborted. */
  async close(force = false): Promise<void> {
    const all = [...this.#byKey.values()];
    this.#byKey.clear();
    await Promise.all(all.map((u) => u.close(force)));
  }
}
