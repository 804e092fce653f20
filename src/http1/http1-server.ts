/**
 * @module
 * Fairway's own HTTP/1.1 server, for the HTTP listener ({@link Http1Server}, over
 * `net.Server`) and HTTP/1.1 on the HTTPS one ({@link Https1Server}, over `tls.Server`):
 * Node's `http.Server` interface as the data plane uses it — the `upgrade`, `connect`,
 * `clientError` and `connection` events, `keepAliveTimeout`, `headersTimeout`,
 * `requestTimeout`, `maxHeadersCount`, `close`, `closeIdleConnections` and
 * `closeAllConnections` — without Node's generic HTTP machinery.
 *
 * Why: a request through `node:http` builds a readable and a writable stream and runs
 * their state machines, though a proxy streams bodies itself; the router's own
 * connection ({@link Http1Connection}), request ({@link Http1Request}) and response
 * ({@link Http1Response}) do what a proxy needs, with parsing at least as strict
 * ({@link parseRequestHead}). bench/README "Own HTTP/1.1 server" has the measurements.
 *
 * Differences from `node:http`, all deliberate:
 * - requests on one connection are parsed one at a time: a pipelined request's head is
 *   read once the response before it has ended (Node parses ahead and queues answers);
 * - the request handler is given at construction: there is no `request` event;
 * - the parser refuses a few heads Node's accepts (see parse-request-head.ts);
 * - `req.headers` has no prototype.
 *
 * Lifecycle: `listen` as a `net.Server`; `close(cb)` stops accepting and closes idle
 * connections (Node 20's behaviour), `cb` runs once every connection has ended.
 */
import { Server as NetServer, type Socket } from 'node:net';
import { Server as TlsServer, type TlsOptions } from 'node:tls';
import { Http1Connection, type ConnectionHost } from './http1-connection.js';
import type { Http1Request } from './http1-request.js';
import type { Http1Response } from './http1-response.js';

export interface Http1ServerOptions {
  /** Most bytes of a request head (request line and fields); 16 KiB as Node's default. */
  readonly maxHeaderSize?: number;
  /** How often request timeouts are checked, ms (Node's `connectionsCheckingInterval`). */
  readonly connectionsCheckingInterval?: number;
}

export type RequestHandler = (req: Http1Request, res: Http1Response) => void;

type ServerClass = new (...args: any[]) => NetServer;

/**
 * The HTTP/1.1 service on a server class: `NetServer` for plain HTTP (connections from
 * `connection`), `TlsServer` for HTTPS (from `secureConnection`, after the handshake).
 */
function http1On<Base extends ServerClass>(Base: Base, acceptEvent: 'connection' | 'secureConnection') {
  return class Http1Service extends Base implements ConnectionHost {
    readonly maxHeaderSize: number;
    /** Fields kept per request; 0: all (the others are parsed and checked, not kept). */
    maxHeadersCount = 2000;
    /** Idle time allowed between requests, ms. */
    keepAliveTimeout = 5000;
    /** Time from a request's first byte to the end of its head, ms; 0: none. */
    headersTimeout = 60_000;
    /** Time from a request's first byte to the end of its body, ms; 0: none. */
    requestTimeout = 300_000;
    readonly #handler: RequestHandler;
    readonly #connections = new Set<Http1Connection>();
    readonly #checkEvery: number;
    #checker: NodeJS.Timeout | undefined;

    constructor(...args: any[]) {
      const [serverOptions, options, handler] = args as [object, Http1ServerOptions, RequestHandler];
      // Half-open: a client that sends its FIN after its request still gets the response.
      super({ ...serverOptions, allowHalfOpen: true, noDelay: true });
      this.maxHeaderSize = options.maxHeaderSize ?? 16 * 1024;
      this.#checkEvery = options.connectionsCheckingInterval ?? 30_000;
      this.#handler = handler;
      this.on(acceptEvent, this.#accept);
      this.on('listening', () => {
        this.#checker = setInterval(this.#check, this.#checkEvery).unref();
      });
      this.on('close', () => clearInterval(this.#checker));
    }

    readonly #accept = (socket: Socket): void => {
      socket.setNoDelay(true);
      this.#connections.add(new Http1Connection(socket, this));
    };

    request(req: Http1Request, res: Http1Response): void {
      this.#handler(req, res);
    }

    upgrade(req: Http1Request, socket: Socket, head: Buffer): boolean {
      const event = req.method === 'CONNECT' ? 'connect' : 'upgrade';
      return this.emit(event, req, socket, head);
    }

    clientError(err: Error & { code?: string }, socket: Socket): void {
      if (!this.emit('clientError', err, socket)) socket.destroy();
    }

    closed(connection: Http1Connection): void {
      this.#connections.delete(connection);
    }

    override close(callback?: (err?: Error) => void): this {
      super.close(callback);
      this.closeIdleConnections();
      return this;
    }

    /** Closes the connections with no request in flight. */
    closeIdleConnections(): void {
      for (const connection of this.#connections) if (connection.idle) connection.destroy();
    }

    /** Closes every HTTP connection (upgraded ones are no longer this server's). */
    closeAllConnections(): void {
      for (const connection of this.#connections) connection.destroy();
    }

    readonly #check = (): void => {
      const now = performance.now();
      for (const connection of this.#connections) connection.expire(now, this.headersTimeout, this.requestTimeout);
    };
  };
}

/** A mixin's constructor is typed `(...args: any[])`; this is the one it actually has. */
type ServiceOn<B extends ServerClass> = new (serverOptions: object, options: Http1ServerOptions, handler: RequestHandler) => InstanceType<ReturnType<typeof http1On<B>>>;
const PlainService = http1On(NetServer, 'connection') as unknown as ServiceOn<typeof NetServer>;
const TlsService = http1On(TlsServer, 'secureConnection') as unknown as ServiceOn<typeof TlsServer>;

/** Plain HTTP/1.1. */
export class Http1Server extends PlainService {
  constructor(options: Http1ServerOptions, handler: RequestHandler) {
    super({}, options, handler);
  }
}

/**
 * HTTP/1.1 over TLS: a `tls.Server` (SNI, ALPN, tickets as its options say) whose
 * connections, once their handshake is done, are served as on {@link Http1Server}.
 */
export class Https1Server extends TlsService {
  constructor(tlsOptions: TlsOptions, options: Http1ServerOptions, handler: RequestHandler) {
    super(tlsOptions, options, handler);
  }
}
