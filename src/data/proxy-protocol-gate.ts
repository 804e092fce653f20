/**
 * @module
 * The listener side of the PROXY protocol: a gate in front of one listener (HTTP, HTTPS or
 * a TCP passthrough route) that, while it is on, reads a PROXY header (v1 or v2, see
 * {@link parseProxyHeader}) from the raw socket of every new connection before anything
 * else sees a byte — before HTTP parsing, and before the TLS handshake (the header
 * precedes the ClientHello). The declared addresses are recorded on the socket
 * ({@link recordProxiedAddresses}); the bytes after the header are put back (`unshift`)
 * for whoever handles the connection next.
 *
 * Contracts:
 * - On: every connection must start with a valid header, received whole within
 *   `headerTimeout` of the accept (a wall-clock limit: a header dripped byte by byte does
 *   not extend it) and at most {@link MAX_HEADER_BYTES}. Anything else — garbage, a header
 *   cut short by the client closing, too large, too slow — closes the connection; nothing
 *   is answered (there is no protocol to answer in yet). Each outcome is counted per
 *   listener (`fairway_proxy_protocol_connections_total`) and a warning with code
 *   `FW_PROXY_PROTOCOL_INVALID` is logged at most once a minute per listener (with how
 *   many were closed since), since a balancer that does not send the header makes every
 *   connection fail. A connection closed before sending any byte (a TCP health check) is
 *   counted but not logged.
 * - Off: connections go straight to their handler; the gate costs one branch.
 * - {@link configure} applies to connections accepted afterwards; a connection being
 *   read keeps the settings it was accepted with.
 */
import type { Server, Socket } from 'node:net';
import type { Logger } from '../observability/logger.js';
import type { ProxyProtocolOutcome, ProxyProtocolStats } from '../observability/request-stats.js';
import { peerAddressOf, recordProxiedAddresses } from './client-address.js';
import { parseProxyHeader } from './proxy-protocol.js';

/** A warning about refused connections is logged at most this often per listener. */
const WARN_INTERVAL_MS = 60_000;

export class ProxyProtocolGate {
  readonly #listener: string;
  readonly #stats: ProxyProtocolStats;
  readonly #logger: Logger;
  #enabled = false;
  #headerTimeout = 5000;
  #lastWarning = -Infinity;
  #unreported = 0;
  /** Connections whose header is being read. */
  readonly #pending = new Set<Socket>();

  /** `listener` names the listener in metrics and logs: `http`, `https`, `tcp/<route>`. */
  constructor(listener: string, stats: ProxyProtocolStats, logger: Logger) {
    this.#listener = listener;
    this.#stats = stats;
    this.#logger = logger;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Turns the gate on or off and sets the header timeout (ms), for connections accepted from now on. */
  configure(enabled: boolean, headerTimeout: number): void {
    this.#enabled = enabled;
    this.#headerTimeout = Math.min(headerTimeout, 2 ** 31 - 1);
  }

  /** Closes the connections whose header is still being read (the listener is shutting down: none of them has sent a request yet). */
  destroyPending(): void {
    for (const socket of this.#pending) socket.destroy();
  }

  /**
   * Puts the gate in front of `server`'s own connection handling (its `connection`
   * listeners at the time of the call, e.g. Node's HTTP or TLS connection handler): they
   * get each connection after its header was read, the socket positioned after it.
   * `resume`: resume the socket after handing it over (an HTTP server reads through
   * `data` events; a TLS server must not be resumed: it reads the bytes put back itself).
   */
  guard(server: Server, resume: boolean): void {
    const own = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    const handOver = (socket: Socket): void => {
      for (const listener of own) listener.call(server, socket);
      if (resume) socket.resume();
    };
    server.on('connection', (socket: Socket) => {
      if (this.#enabled) this.admit(socket, handOver);
      else for (const listener of own) listener.call(server, socket);
    });
  }

  /**
   * Reads the PROXY header of a new connection, then calls `next(socket)` with the socket
   * paused and positioned after the header; or closes the connection. The socket may have
   * been accepted paused (`pauseOnConnect`): it is resumed to read.
   */
  admit(socket: Socket, next: (socket: Socket) => void): void {
    let received: Buffer | undefined;
    const done = (outcome: ProxyProtocolOutcome): void => {
      clearTimeout(timer);
      this.#pending.delete(socket);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      this.#stats[outcome]++;
    };
    const refuse = (outcome: ProxyProtocolOutcome): void => {
      done(outcome);
      if (outcome !== 'empty') this.#warn(outcome, socket, received?.length ?? 0);
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      received = received === undefined ? chunk : Buffer.concat([received, chunk]);
      const result = parseProxyHeader(received);
      if (result === 'incomplete') return;
      if (typeof result === 'string') return refuse(result);
      done(result.addresses ? 'accepted' : 'local');
      socket.pause();
      if (received.length > result.length) socket.unshift(received.subarray(result.length));
      if (result.addresses) recordProxiedAddresses(socket, result.addresses);
      next(socket);
    };
    const onEnd = (): void => refuse(received === undefined ? 'empty' : 'incomplete');
    const onError = (): void => refuse(received === undefined ? 'empty' : 'incomplete');
    const timer = setTimeout(() => refuse('timeout'), this.#headerTimeout);
    this.#pending.add(socket);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.on('error', onError);
    socket.resume();
  }

  #warn(outcome: ProxyProtocolOutcome, socket: Socket, bytes: number): void {
    const now = performance.now();
    if (now - this.#lastWarning < WARN_INTERVAL_MS) {
      this.#unreported++;
      return;
    }
    this.#logger.warn(
      {
        code: 'FW_PROXY_PROTOCOL_INVALID', listener: this.#listener, reason: outcome, peer: peerAddressOf(socket), bytes,
        alsoClosedSinceLastWarning: this.#unreported,
      },
      'connection closed: it did not start with a valid PROXY protocol header (is the load balancer sending one?)',
    );
    this.#lastWarning = now;
    this.#unreported = 0;
  }
}
