/**
 * @module
 * HTTP/2 on the HTTPS listener: the TLS connections whose ALPN chose `h2` are taken from
 * the listener's HTTP/1.1 handling ({@link guard}) and become sessions of a `node:http2`
 * server that never listens itself (TLS, SNI, ALPN, session tickets, the PROXY protocol
 * and the per-client connection limit stay the HTTPS listener's). Each stream is handed
 * to the data plane as a compatibility request and an {@link Http2Response}.
 *
 * Why not `http2.createSecureServer({ allowHTTP1: true })`: that server hands HTTP/1.1
 * connections to node:http's connection handler, not to the router's own HTTP/1.1 server
 * ({@link Https1Server}), and has no `closeIdleConnections`/`closeAllConnections`, which
 * draining uses. Here the HTTP/1.1 path is the listener's own; choosing the protocol costs
 * one comparison per connection and nothing per request.
 *
 * Limits (what a hardened server sets; the rest are Node's and nghttp2's defaults):
 * - {@link MAX_CONCURRENT_STREAMS} streams per session (Node's default is unlimited);
 *   streams over it are refused (RST_STREAM REFUSED_STREAM), and a session that keeps
 *   opening refused streams (100, `maxSessionRejectedStreams`) is closed.
 * - The header list (HPACK-decoded names and values, 32 bytes more per field, as the
 *   SETTINGS_MAX_HEADER_LIST_SIZE it announces) up to `limits.maxHeaderSize`; a larger
 *   one resets the stream (RST_STREAM ENHANCE_YOUR_CALM). The count of fields is bounded
 *   by that size only here, so the data plane's `limits.maxHeadersCount` answers 431.
 * - Node's defaults against floods: 1000 invalid frames per session
 *   (`maxSessionInvalidFrames`), 10 MB of session memory (`maxSessionMemory`, new streams
 *   refused beyond it), 32 settings per SETTINGS frame (`maxSettings`); nghttp2 1.61's:
 *   rapid reset (CVE-2023-44487: streams reset faster than 33/s after a burst of 1000 end
 *   the session with GOAWAY), CONTINUATION floods (CVE-2024-28182: at most 8 per header
 *   block), SETTINGS and PING floods (at most 1000 queued ACKs, then GOAWAY).
 * - Server push is never used; extended CONNECT (RFC 8441, WebSocket over HTTP/2) is not
 *   offered (`enableConnectProtocol` stays off), so WebSocket clients use HTTP/1.1.
 *
 * Lifecycle of a session: accepted with the `timeouts.clientKeepAlive` of that moment as
 * its idle timeout — a session without open streams and no frame for that long is closed
 * with GOAWAY (one with open streams is left to their own timeouts); `beginDrain()` sends
 * GOAWAY (NO_ERROR, last stream ID = the last one the client opened) to every session,
 * whose streams in flight finish before it closes, and a session accepted afterwards gets
 * its GOAWAY after its first stream; {@link cut} destroys what is left. Cost per stream:
 * a counter and one `'close'` listener.
 */
import { constants, createServer, type Http2ServerRequest, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { Server as NetServer } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Https1Server } from '../http1/http1-server.js';
import { Http2Response } from './http2-response.js';

/** SETTINGS_MAX_CONCURRENT_STREAMS announced to every client (nginx's default is 128, Go's 250). */
export const MAX_CONCURRENT_STREAMS = 128;

/** What a stream becomes: the data plane's handler of HTTP/2 requests. */
export type Http2RequestHandler = (req: Http2ServerRequest, res: Http2Response) => void;

export class Http2Sessions {
  /** The session server: connections are given to it, it never listens. */
  readonly #server: NetServer;
  /** Open sessions and their open streams. */
  readonly #sessions = new Map<Http2Session, number>();
  #idleTimeout = 75_000;
  #draining = false;

  /** `maxHeaderSize`: `limits.maxHeaderSize`, fixed for the listener's life (as on HTTP/1.1). */
  constructor(maxHeaderSize: number, onRequest: Http2RequestHandler) {
    const server = createServer({
      settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, maxHeaderListSize: maxHeaderSize, enableConnectProtocol: false },
      // Each field costs at least 32 bytes of the header list size: that bounds the count (the data plane's own limit answers 431 below it).
      maxHeaderListPairs: Math.max(128, Math.ceil(maxHeaderSize / 32)),
      Http2ServerResponse: Http2Response,
    });
    server.on('session', this.#onSession);
    server.on('stream', this.#onStream);
    // Node makes each response an Http2Response (the option above); its types cannot say so.
    server.on('request', onRequest as (req: Http2ServerRequest, res: unknown) => void);
    this.#server = server;
  }

  /**
   * Puts HTTP/2 in front of `server`'s own handling of TLS connections (its
   * `secureConnection` listeners at the time of the call: its HTTP/1.1 server's):
   * a connection whose ALPN chose `h2` becomes a session here, any other goes to them.
   * Call before adding listeners that should see every connection.
   */
  guard(server: TlsServer): void {
    const own = server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
    server.removeAllListeners('secureConnection');
    const sessions = this.#server;
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') sessions.emit('connection', socket);
      else for (const listener of own) listener.call(server, socket);
    });
  }

  /** `timeouts.clientKeepAlive`, ms, for sessions accepted from now on (0: none). */
  configure(idleTimeout: number): void {
    this.#idleTimeout = idleTimeout;
  }

  /** GOAWAY to every session: streams in flight finish, new ones go elsewhere. Sessions accepted later get theirs after their first stream. Irreversible. */
  beginDrain(): void {
    this.#draining = true;
    for (const session of this.#sessions.keys()) session.close();
  }

  /** Destroys every session still open (the drain deadline); returns how many streams that cut. */
  cut(): number {
    let streams = 0;
    for (const [session, open] of this.#sessions) {
      streams += open;
      session.destroy(undefined, constants.NGHTTP2_CANCEL);
    }
    return streams;
  }

  /** Sessions open now (for tests and diagnostics). */
  get size(): number {
    return this.#sessions.size;
  }

  readonly #onSession = (session: Http2Session): void => {
    const sessions = this.#sessions;
    sessions.set(session, 0);
    session.once('close', () => sessions.delete(session));
    if (this.#idleTimeout > 0) {
      session.setTimeout(this.#idleTimeout);
      session.on('timeout', () => {
        if (sessions.get(session) === 0) session.close();
      });
    }
  };

  readonly #onStream = (stream: ServerHttp2Stream): void => {
    const session = stream.session!;
    const sessions = this.#sessions;
    sessions.set(session, sessions.get(session)! + 1);
    stream.once('close', () => {
      const open = sessions.get(session);
      if (open !== undefined) sessions.set(session, open - 1);
    });
    if (this.#draining && !session.closed) session.close();
  };
}
