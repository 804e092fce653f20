/**
 * @module
 * `limits.maxConnectionsPerClient` on one listener (HTTP or HTTPS): the open connections
 * of each client address are counted, and a new connection whose address already has the
 * limit open is closed at once — before any byte of it is parsed, without an answer (a
 * client opening connections in bulk would not read one anyway).
 *
 * Contracts:
 * - The address is the connection's peer as {@link peerAddressOf} gives it: the address a
 *   PROXY header declares when the listener reads the PROXY protocol (the limit is put
 *   behind the {@link ProxyProtocolGate}, so it sees the declared address), else the TCP
 *   source. `X-Forwarded-For` never counts: the decision is per connection, before any
 *   request.
 * - Connections are counted whatever the limit (0 is no limit), so a limit set by a reload
 *   applies at once to what is already open; {@link configure} takes effect for connections
 *   accepted afterwards, open connections are never closed by it.
 * - Each refusal is counted (`fairway_connections_refused_total{reason="per_client_limit"}`)
 *   and a warning with code `FW_CLIENT_CONNECTION_LIMIT` is logged at most once a minute per
 *   listener, with how many were refused since.
 * - Cost per connection: one map update on accept and one on close; nothing per request.
 */
import type { Server, Socket } from 'node:net';
import type { Logger } from '../observability/logger.js';
import type { ConnectionRefusedStats } from '../observability/request-stats.js';
import { peerAddressOf } from './client-address.js';

/** A warning about refused connections is logged at most this often per listener. */
const WARN_INTERVAL_MS = 60_000;

export class ClientConnectionLimit {
  readonly #listener: string;
  readonly #stats: ConnectionRefusedStats;
  readonly #logger: Logger;
  /** Open connections by client address; an address leaves the map with its last connection. */
  readonly #open = new Map<string, number>();
  #max = 0;
  #lastWarning = -Infinity;
  #unreported = 0;

  /** `listener` names the listener in metrics and logs: `http` or `https`. */
  constructor(listener: string, stats: ConnectionRefusedStats, logger: Logger) {
    this.#listener = listener;
    this.#stats = stats;
    this.#logger = logger;
  }

  /** Sets the most connections one address may have open; 0: no limit. */
  configure(max: number): void {
    this.#max = max;
  }

  /** Open connections of `address` now (for tests and diagnostics). */
  openOf(address: string): number {
    return this.#open.get(address) ?? 0;
  }

  /**
   * Puts the limit in front of `server`'s own connection handling (its `connection`
   * listeners at the time of the call): they get each connection that is admitted. Call
   * before {@link ProxyProtocolGate.guard}, which then hands its connections to this.
   */
  guard(server: Server): void {
    const own = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (this.admit(socket)) for (const listener of own) listener.call(server, socket);
    });
  }

  /** Counts `socket` against its address until it closes, or destroys it (false) when the address is at the limit. */
  admit(socket: Socket): boolean {
    const address = peerAddressOf(socket);
    const open = this.#open.get(address) ?? 0;
    if (this.#max > 0 && open >= this.#max) {
      this.#stats.per_client_limit++;
      this.#warn(address);
      socket.destroy();
      return false;
    }
    this.#open.set(address, open + 1);
    socket.once('close', () => {
      const left = this.#open.get(address)! - 1;
      if (left === 0) this.#open.delete(address);
      else this.#open.set(address, left);
    });
    return true;
  }

  #warn(address: string): void {
    const now = performance.now();
    if (now - this.#lastWarning < WARN_INTERVAL_MS) {
      this.#unreported++;
      return;
    }
    this.#logger.warn(
      { code: 'FW_CLIENT_CONNECTION_LIMIT', listener: this.#listener, client: address, limit: this.#max, alsoRefusedSinceLastWarning: this.#unreported },
      'connection closed: the client has limits.maxConnectionsPerClient connections open',
    );
    this.#lastWarning = now;
    this.#unreported = 0;
  }
}
