/**
 * @module
 * A TCP passthrough listener (the Deis builder's git-over-SSH port, `tcp:` in the
 * config): each accepted connection is joined to one endpoint and bytes flow both ways
 * with backpressure, unparsed.
 *
 * Contracts: endpoints are tried in rotation; a refused or timed-out connect moves on
 * to the next endpoint (each endpoint once), and when all fail the client connection is
 * closed. A connection with no byte either way for `idleTimeout` is closed. `update()`
 * swaps the endpoints and timeouts for new connections; open connections keep theirs.
 * `close()` stops accepting, lets open sessions run until `timeoutMs`, then cuts them.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { endpointKey, type TcpRoute } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { TcpStats } from '../observability/request-stats.js';

export class TcpProxy {
  readonly #server: Server;
  readonly #logger: Logger;
  readonly #sessions = new Set<Socket>();
  readonly stats: TcpStats;
  #route: TcpRoute;
  #next = 0;

  constructor(route: TcpRoute, stats: TcpStats, logger: Logger) {
    this.#route = route;
    this.stats = stats;
    this.#logger = logger;
    this.#server = createServer({ pauseOnConnect: true }, (client) => this.#accept(client));
  }

  update(route: TcpRoute): void {
    this.#route = route;
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host, port }, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  async close(timeoutMs = 10_000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const deadline = setTimeout(() => {
      for (const s of this.#sessions) s.destroy();
    }, timeoutMs);
    await closed;
    clearTimeout(deadline);
  }

  #accept(client: Socket): void {
    const route = this.#route;
    this.stats.accepted++;
    this.stats.active++;
    this.#sessions.add(client);
    client.once('close', () => {
      this.stats.active--;
      this.#sessions.delete(client);
    });
    client.on('error', () => client.destroy());
    const n = route.endpoints.length;
    const start = this.#next++ % Math.max(n, 1);
    const attempt = (i: number): void => {
      if (client.destroyed) return;
      if (i >= n) {
        this.stats.failed++;
        this.#logger.warn({ route: route.name, endpoints: n }, 'TCP connection closed: no endpoint could be reached');
        client.destroy();
        return;
      }
      const endpoint = route.endpoints[(start + i) % n]!;
      const upstream = connect({ host: endpoint.host, port: endpoint.port });
      const timer = setTimeout(() => upstream.destroy(new Error('connect timeout')), route.connectTimeout);
      let joined = false;
      upstream.once('connect', () => {
        clearTimeout(timer);
        joined = true;
        this.#join(client, upstream, route.idleTimeout);
      });
      upstream.once('error', (err) => {
        clearTimeout(timer);
        if (joined) return; // #join handles errors of a joined session
        this.#logger.debug({ route: route.name, endpoint: endpointKey(endpoint), err: err.message }, 'TCP endpoint unreachable; trying the next');
        attempt(i + 1);
      });
    };
    attempt(0);
  }

  /** Pipes both ways (with backpressure) and closes both sides together. */
  #join(client: Socket, upstream: Socket, idleTimeout: number): void {
    const stats = this.stats;
    client.on('data', (c: Buffer) => (stats.bytesIn += c.length));
    upstream.on('data', (c: Buffer) => (stats.bytesOut += c.length));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', end);
    upstream.on('close', end);
    client.on('close', end);
    client.setTimeout(idleTimeout, end);
    upstream.setTimeout(idleTimeout, end);
    client.resume();
  }
}
