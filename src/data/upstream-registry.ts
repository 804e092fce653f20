/**
 * @module
 * One undici `Pool` per endpoint, shared by every route table that names the endpoint,
 * so a snapshot swap keeps warm keep-alive connections. Lifecycle: `acquire()` while
 * compiling a table; after the swap, `retainOnly()` closes the pools that the live table
 * no longer uses. Closing is graceful (undici `close()`): requests in flight finish,
 * then the connections go — the endpoint is drained, not cut.
 */
import { Pool } from 'undici';
import { endpointKey, type EndpointSpec } from '../model.js';

/** An endpoint as the data plane sees it: a pool and how busy it is. */
export class Upstream {
  readonly key: string;
  readonly pool: Pool;
  /** The pool's TCP connect timeout, ms (apps with different connect timeouts get different pools). */
  readonly connectTimeout: number;
  /** Requests dispatched to this endpoint and not yet finished (least-outstanding picks). */
  outstanding = 0;

  constructor(key: string, pool: Pool, connectTimeout: number) {
    this.key = key;
    this.pool = pool;
    this.connectTimeout = connectTimeout;
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
      const pool = new Pool(`http://${key}`, {
        connect: { timeout: options.connectTimeout },
        // Timeouts are set per request from the snapshot; these only bound idle sockets.
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
        pipelining: 1,
      });
      // Connection failures are reported to the request that triggered them.
      pool.on('connectionError', () => {});
      u = new Upstream(key, pool, options.connectTimeout);
      this.#byKey.set(id, u);
    }
    return u;
  }

  /** Gracefully closes every pool not in `keep`. */
  retainOnly(keep: ReadonlySet<Upstream>): void {
    for (const [id, u] of this.#byKey) {
      if (!keep.has(u)) {
        this.#byKey.delete(id);
        u.pool.close().catch(() => {});
      }
    }
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Closes every pool; with `force`, in-flight requests are aborted. */
  async close(force = false): Promise<void> {
    const pools = [...this.#byKey.values()].map((u) => u.pool);
    this.#byKey.clear();
    await Promise.all(pools.map((p) => (force ? p.destroy() : p.close()).catch(() => {})));
  }
}
