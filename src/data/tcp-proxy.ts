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
 * Draining ({@link DrainingListener}): `beginDrain()` changes nothing — raw TCP has no
 * way to ask a client to leave, so sessions go on through the shutdown delay and new ones
 * are accepted; `close()` stops accepting, lets open sessions run until `timeoutMs`, then
 * cuts them and says how many it cut.
 *
 * PROXY protocol: with `proxyProtocol.tcp` on (given to `update()`), a connection must
 * start with a PROXY header ({@link ProxyProtocolGate}), read before an endpoint is
 * chosen; the declared client is what the route passes on. A route with
 * `sendProxyProtocol` writes a v1 or v2 header to the endpoint as soon as it is connected,
 * before any of the client's bytes: the client's address (the declared one, else the TCP
 * peer) and the address it connected to.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { endpointKey, type ProxyProtocolSettings, type TcpRoute } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { TcpStats } from '../observability/request-stats.js';
import { connectionAddressesOf } from './client-address.js';
import { CUT_GRACE_MS, NOTHING_CUT, settlesWithin, type DrainCut, type DrainingListener } from './draining-listener.js';
import { encodeProxyHeader } from './proxy-protocol.js';
import type { ProxyProtocolGate } from './proxy-protocol-gate.js';

export class TcpProxy implements DrainingListener {
  readonly #server: Server;
  readonly #logger: Logger;
  readonly #sessions = new Set<Socket>();
  #closing: Promise<DrainCut> | undefined;
  readonly stats: TcpStats;
  #route: TcpRoute;
  #next = 0;
  /** Reads the PROXY header of each connection while `proxyProtocol.tcp` is on; none: never. */
  readonly #proxyProtocol: ProxyProtocolGate | undefined;

  constructor(route: TcpRoute, stats: TcpStats, logger: Logger, proxyProtocol?: ProxyProtocolGate) {
    this.#route = route;
    this.stats = stats;
    this.#logger = logger;
    this.#proxyProtocol = proxyProtocol;
    this.#server = createServer({ pauseOnConnect: true }, (client) => {
      const gate = this.#proxyProtocol;
      if (gate === undefined || !gate.enabled) return this.#accept(client);
      // Tracked while its header is read, so close() can cut it too.
      this.#sessions.add(client);
      client.once('close', () => this.#sessions.delete(client));
      gate.admit(client, (c) => this.#accept(c));
    });
  }

  /** New connections use `route`, and read a PROXY header when `proxyProtocol.tcp` is on. */
  update(route: TcpRoute, proxyProtocol?: ProxyProtocolSettings): void {
    this.#route = route;
    this.#proxyProtocol?.configure(proxyProtocol?.tcp ?? false, proxyProtocol?.headerTimeout ?? 5000);
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

  /** Nothing to do: see the module comment. */
  beginDrain(): void {}

  /**
   * Stops accepting; open sessions get up to `timeoutMs`, then those left are cut.
   * Resolves with what was cut once every session has ended. A second call gets the
   * first one's result.
   */
  close(timeoutMs = 10_000): Promise<DrainCut> {
    return (this.#closing ??= this.#close(timeoutMs));
  }

  async #close(timeoutMs: number): Promise<DrainCut> {
    // Resolves once every accepted connection has ended.
    const closed = new Promise<void>((resolve) => (this.#server.listening ? this.#server.close(() => resolve()) : resolve()));
    this.#proxyProtocol?.destroyPending();
    if (await settlesWithin(closed, timeoutMs)) return NOTHING_CUT;
    const tcpSessions = this.#sessions.size;
    for (const s of this.#sessions) s.destroy();
    await settlesWithin(closed, CUT_GRACE_MS);
    return { ...NOTHING_CUT, tcpSessions };
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
        if (route.sendProxyProtocol !== undefined) upstream.write(encodeProxyHeader(route.sendProxyProtocol, connectionAddressesOf(client)));
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
