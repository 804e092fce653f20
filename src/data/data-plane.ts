/**
 * @module
 * The data plane: the HTTP and HTTPS listeners and the per-request path up to the proxy
 * exchange. It holds no state beyond the live {@link RouteTable}, the certificate store,
 * pending ACME challenge answers, the upstream pools and counters.
 *
 * `apply(snapshot)` compiles a new table off to the side, swaps the one reference, and
 * then retires pools the new table no longer uses. A request reads the reference once
 * when it arrives and keeps that table to its end, so a swap never disturbs a request in
 * flight. The hot path reads memory only; so does the TLS handshake (SNI and ALPN
 * callbacks read the certificate store and the challenge answers).
 *
 * Per request: ACME HTTP-01 answer (plain HTTP, before any routing) → request ID (with
 * `requestIDs`, the Deis way: {@link stampRequestIds}) → host match (a host no app serves:
 * the default app, if any) → app policy (allow list: 403; maintenance: 503) → HTTPS
 * redirect (`sslEnforce`, plain HTTP) → version pick → limits (the app's body size) →
 * response coding negotiated (when the app compresses) → proxy exchange. The router's own
 * answers use the app's error pages once the app is known, else the router-wide ones.
 *
 * Upgrade requests (WebSocket and others) arrive on the listeners' `upgrade` event with
 * a raw socket; they get a response object on that socket ({@link responseForUpgrade})
 * and take the same path, ending in an {@link UpgradeExchange} (the tunnel) instead of a
 * proxy exchange. Tunnels outlive table swaps; `close()` ends them after the drain time.
 *
 * HTTP/2 (`tls.http2`): the HTTPS listener's connections whose ALPN chose `h2` are
 * sessions of {@link Http2Sessions}; the head of each of their requests is put in HTTP/1.1
 * form ({@link translateHttp2Head}) and the request takes the same path, answered through
 * an {@link Http2Response}. Draining sends them GOAWAY; the drain deadline cuts their streams.
 *
 * Draining ({@link DrainingListener}, driven by the shutdown sequence): `beginDrain()`
 * turns keep-alive off — every response from then on, and every response in flight whose
 * head is not sent yet, goes out with `Connection: close` (one boolean read per request)
 * — while the listeners keep accepting; `close(timeoutMs)` stops accepting, closes idle
 * connections (and each one as it turns idle), gives requests in flight and tunnels
 * `timeoutMs`, then cuts what is left and says how much that was. The connections that
 * carry HTTP are followed for this, per connection (a set entry), never per request.
 *
 * Every finished request and tunnel makes one access-log entry, fanned out by
 * {@link AccessLog} to stdout and the sinks given at construction (per-app logs, shipper).
 *
 * Version pick, first that applies: `X-Fairway-Version` when the app accepts it from this
 * client (an unknown version: 404 `FW_VERSION_NOT_FOUND`; one without endpoints: 503
 * `FW_NO_ENDPOINTS`; weight does not matter); the sticky cookie when the app is sticky and
 * the cookie is valid and its version has weight > 0 and endpoints; the weights. The
 * header is never forwarded; the cookie is (it is opaque to the app). The key signing
 * sticky cookies is a constructor input, replaced with {@link DataPlane.setStickyKey}.
 *
 * The client address is decided once per request, by the rules of `client-address.ts`
 * (the connection's peer — PROXY-declared when the listener reads the PROXY protocol —
 * or, from a trusted proxy, what its `X-Forwarded-For` says), and that one value feeds the
 * allow list, the version header's client list and the access log; `X-Forwarded-For` sent
 * upstream is the honoured chain plus the peer (Upgrade requests take the same path).
 *
 * Hostile input (README "Hostile input and limits"): both listeners serve HTTP/1.1 with
 * the router's own server ({@link Http1Server}, {@link Https1Server}), whose strict parser
 * (never more lenient than Node's; NODE_OPTIONS cannot loosen it) answers ambiguous
 * framing and malformed syntax with 400 in {@link #onClientError} before any routing; {@link #route} adds what the parser lets through — more than one
 * Host, a transfer coding other than `chunked`, `Transfer-Encoding` in HTTP/1.0 — and the
 * URL length limit. Such requests are never forwarded
 * and their connection is closed. A chunked body is dispatched upstream only once its
 * first chunk (or its end) was parsed, so a malformed first chunk never reaches an
 * endpoint; a malformed later chunk aborts the upstream request (the endpoint sees an
 * incomplete body). Slow clients: `timeouts.clientHeaders` and `timeouts.clientRequest`
 * bound the request head and the whole request (checked every
 * {@link CONNECTIONS_CHECK_MS}); `timeouts.clientIdle` bounds each pause of a request
 * body here (socket inactivity while the body is read) and each stall of a response in
 * the exchange; {@link ClientConnectionLimit} bounds connections per client address.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Http2ServerRequest, constants as http2Constants, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext, TlsOptions, TLSSocket } from 'node:tls';
import type { Snapshot } from '../model.js';
import { AccessLog, type AccessLogSink } from '../observability/access-log.js';
import type { Logger } from '../observability/logger.js';
import type { RequestStats, UnroutedReason, VersionStats } from '../observability/request-stats.js';
import { FairwayError, type ErrorCode } from '../errors.js';
import { http1ResponseOn } from '../http1/http1-connection.js';
import type { Http1Request } from '../http1/http1-request.js';
import type { Http1Response } from '../http1/http1-response.js';
import { Http1Server, Https1Server } from '../http1/http1-server.js';
import { ACME_TLS_ALPN, AcmeChallenges, HTTP01_PREFIX } from '../tls/acme-challenges.js';
import type { PemPair } from '../tls/acme-challenges.js';
import type { CertificateStore } from '../tls/certificate-store.js';
import { adoptProxiedAddresses, peerAddressOf } from './client-address.js';
import { ClientConnectionLimit } from './client-connection-limit.js';
import { CUT_GRACE_MS, NOTHING_CUT, settlesWithin, type DrainCut, type DrainingListener } from './draining-listener.js';
import { EndpointHealth } from './endpoint-health.js';
import { BUILTIN_PAGES } from './error-pages.js';
import type { Http2Response } from './http2-response.js';
import { Http2Sessions } from './http2-sessions.js';
import { BodyLimit, ProxyExchange, type ExchangeContext, type ForwardRequest, type VersionPickReason } from './proxy-exchange.js';
import { ProxyProtocolGate } from './proxy-protocol-gate.js';
import { normalizeHost, RouteTable, type VersionRoute } from './route-table.js';
import { stampRequestIds } from './stamp-request-ids.js';
import { translateHttp2Head } from './translate-http2-head.js';
import { isUpgrade, responseForUpgrade, upgradeRequestHeaders, UpgradeExchange } from './upgrade-exchange.js';
import { TunnelSet } from './tunnel-set.js';
import { UpstreamDeadlines } from './upstream-deadlines.js';
import { UpstreamRegistry } from './upstream-registry.js';

/** Request headers not forwarded: hop-by-hop ones, `expect` (answered here), and the ones the router sets itself. */
const DROPPED_REQUEST_HEADERS = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect', 'http2-settings',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-request-id',
  'x-fairway-version',
]);
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;
const SAFE_METHODS = new Set(['GET', 'HEAD']);
/** Sent with `FW_APP_MAINTENANCE`: when a client may try again, in seconds. */
const MAINTENANCE_HEADERS: readonly string[] = ['retry-after', '60'];
/**
 * How often the listeners check their connections against `timeouts.clientHeaders` and
 * `timeouts.clientRequest` (Node's `connectionsCheckingInterval`, 30 s by default): the
 * granularity of those timeouts. A connection without a request in progress is skipped at once.
 */
export const CONNECTIONS_CHECK_MS = 1000;
/** The listeners: the router's own HTTP/1.1 server, plain and over TLS (which also hands `h2` connections to HTTP/2). */
type HttpListener = Http1Server | Https1Server;
/** Set on a TLS socket whose ALPN callback chose `acme-tls/1`, for the SNI callback that follows. */
const ALPN_CHALLENGE = Symbol('fairway.alpnChallenge');

export interface DataPlaneOptions {
  readonly stats: RequestStats;
  readonly logger: Logger;
  /** Limits fixed for the listener's life (Node applies them at creation). */
  readonly maxHeaderSize: number;
  /** What the handshake reads: the primary's store, or a worker's (which holds only PEM pairs). */
  readonly certificates: Pick<CertificateStore<PemPair>, 'lookup' | 'serverOptions' | 'sessionTickets'>;
  readonly challenges: AcmeChallenges;
  /**
   * Signs sticky-version cookies; must be the same on every replica and across restarts
   * for cookies to stay valid. Absent: a random key for this process until
   * {@link DataPlane.setStickyKey}.
   */
  readonly stickyKey?: Buffer;
  /** Where access-log entries go besides stdout (per-app logs, the log shipper); each is skipped while inactive. */
  readonly accessLogSinks?: readonly AccessLogSink[];
  /** Active health checks run elsewhere (a worker's primary), their marks come through `endpointHealth.applyHealthMarks()`. */
  readonly remoteHealthChecks?: boolean;
  /**
   * `false`: the snapshots applied are copies made for this data plane (a worker's,
   * deserialised from IPC), so the route table keeps none of their AppSpecs (see
   * {@link RouteTable}); a new sticky key then takes effect at the next {@link DataPlane.apply}.
   * Default `true`.
   */
  readonly keepSnapshots?: boolean;
}

export class DataPlane implements DrainingListener {
  readonly #registry = new UpstreamRegistry();
  /** Endpoint health that outlives tables: outlier events, health checks, retry budgets. */
  readonly #health: EndpointHealth;
  readonly #stats: RequestStats;
  readonly #logger: Logger;
  /** Said once: {@link SessionTickets.install} found no hook. */
  #ticketHookMissing = false;
  readonly #accessLog: Logger;
  readonly #certificates: DataPlaneOptions['certificates'];
  readonly #challenges: AcmeChallenges;
  readonly #accessLogSinks: readonly AccessLogSink[];
  /** Upgrade requests being answered and open tunnels (they left the HTTP server's books at the upgrade). */
  readonly #tunnels = new TunnelSet<UpgradeExchange>();
  /**
   * The open connections that carry HTTP (the TCP socket on the HTTP listener, the TLS
   * socket on the HTTPS one), from accept to close or upgrade: draining reaches their
   * responses in flight, and the drain deadline counts the requests it cuts.
   */
  readonly #connections = new Set<Socket>();
  /** Set once by {@link beginDrain}: every response from then on closes its connection. */
  #draining = false;
  #closing: Promise<DrainCut> | undefined;
  readonly #server: Http1Server;
  /** PROXY protocol on the HTTP and HTTPS listeners (`proxyProtocol.http` / `.https`). */
  readonly #httpGate: ProxyProtocolGate;
  readonly #httpsGate: ProxyProtocolGate;
  /** `limits.maxConnectionsPerClient` on the HTTP and HTTPS listeners (behind the PROXY protocol gates). */
  readonly #httpLimit: ClientConnectionLimit;
  readonly #httpsLimit: ClientConnectionLimit;
  /** `timeouts.clientIdle`, ms: the longest pause of a request body. */
  #clientIdle = 60_000;
  #https: Https1Server | undefined;
  /** The HTTPS listener's HTTP/2 connections (with the listener). */
  #http2: Http2Sessions | undefined;
  /** `tls.http2`: ALPN may choose `h2` (read at each handshake). */
  #offerHttp2 = true;
  #table: RouteTable | undefined;
  readonly #keepSnapshots: boolean;
  #stickyKey: Buffer;
  #ctx: ExchangeContext;
  /** The upstream waits of every exchange, whichever snapshot it started under. */
  readonly #deadlines = new UpstreamDeadlines();
  #port = '';
  #httpsPort = '';
  /** `:port` for redirect targets, empty for 443. */
  #httpsPortSuffix = '';

  constructor(options: DataPlaneOptions) {
    this.#stats = options.stats;
    this.#logger = options.logger;
    this.#accessLog = options.logger.child({ log: 'access' });
    this.#certificates = options.certificates;
    this.#challenges = options.challenges;
    this.#accessLogSinks = options.accessLogSinks ?? [];
    this.#stickyKey = options.stickyKey ?? randomBytes(32);
    this.#keepSnapshots = options.keepSnapshots ?? true;
    this.#ctx = this.#exchangeContext(true, this.#clientIdle);
    this.#server = new Http1Server({ maxHeaderSize: options.maxHeaderSize, connectionsCheckingInterval: CONNECTIONS_CHECK_MS }, this.#onHttp1Request);
    this.#server.on('clientError', this.#onClientError);
    this.#server.on('upgrade', this.#onUpgrade);
    this.#httpGate = new ProxyProtocolGate('http', options.stats.forProxyProtocol('http'), options.logger);
    this.#httpsGate = new ProxyProtocolGate('https', options.stats.forProxyProtocol('https'), options.logger);
    this.#health = new EndpointHealth(options.logger.child({ component: 'endpoint-health' }), { remoteChecks: options.remoteHealthChecks });
    this.#httpLimit = new ClientConnectionLimit('http', options.stats.connectionsRefused.http, options.logger);
    this.#httpsLimit = new ClientConnectionLimit('https', options.stats.connectionsRefused.https, options.logger);
    // The gate reads the PROXY header first, so the limit counts the declared client.
    this.#httpLimit.guard(this.#server);
    this.#httpGate.guard(this.#server, true);
    // At accept, besides the guards above (a connection they close leaves the set at once).
    this.#server.on('connection', this.#track);
  }

  /**
   * What the exchanges started from now on share: the access log (the stdout lines when
   * `stdout` is true, and the sinks; none when neither writes), the client idle wait, and the
   * one set of upstream deadlines.
   */
  #exchangeContext(stdout: boolean, clientIdle: number): ExchangeContext {
    const sinks = this.#accessLogSinks;
    const accessLog = stdout || sinks.length > 0 ? new AccessLog(stdout ? this.#accessLog : undefined, sinks) : undefined;
    return { accessLog, clientIdle, deadlines: this.#deadlines };
  }

  /** The live table (undefined until the first snapshot). */
  get table(): RouteTable | undefined {
    return this.#table;
  }

  /** Compiles `snapshot` and makes it live at once. */
  apply(snapshot: Snapshot): void {
    const table = new RouteTable(snapshot, this.#registry, this.#stats, this.#stickyKey, this.#table, this.#health, this.#keepSnapshots);
    const s = snapshot.settings;
    configureServer(this.#server, s);
    if (this.#https !== undefined) configureServer(this.#https, s);
    this.#http2?.configure(s.timeouts.clientKeepAlive);
    this.#offerHttp2 = s.tls.http2;
    this.#httpLimit.configure(s.limits.maxConnectionsPerClient);
    this.#httpsLimit.configure(s.limits.maxConnectionsPerClient);
    this.#clientIdle = s.timeouts.clientIdle;
    this.#httpGate.configure(s.proxyProtocol?.http ?? false, s.proxyProtocol?.headerTimeout ?? 5000);
    this.#httpsGate.configure(s.proxyProtocol?.https ?? false, s.proxyProtocol?.headerTimeout ?? 5000);
    this.#ctx = this.#exchangeContext(s.accessLog, s.timeouts.clientIdle);
    // A default app the snapshot does not have: unknown hosts get 404 (said once per change).
    const before = this.#table;
    if (s.defaultApp !== undefined && table.defaultApp === undefined && (before === undefined || before.defaultApp !== undefined || before.settings.defaultApp !== s.defaultApp)) {
      this.#logger.warn({ code: 'FW_APP_NOT_FOUND', app: s.defaultApp }, 'defaultService names an app that is not serving; unknown hosts get 404');
    }
    this.#table = table;
    this.#health.reconcile(table);
    this.#registry.retainOnly(table.upstreams);
  }

  /** Endpoint states, health checks, retry budgets and their metrics. */
  get endpointHealth(): EndpointHealth {
    return this.#health;
  }

  /**
   * Replaces the key that signs sticky-version cookies (the composition root's hook for a
   * key that is configured, or shared through storage). The live table is recompiled with
   * it at once; cookies signed with the old key are ignored from then on (their clients
   * are picked by weight once and get a new cookie). The same key again changes nothing.
   * Without {@link DataPlaneOptions.keepSnapshots}, the table has no AppSpec to recompile:
   * the key takes effect when the caller applies the snapshot again.
   */
  setStickyKey(key: Buffer): void {
    if (key.equals(this.#stickyKey)) return;
    this.#stickyKey = Buffer.from(key);
    const live = this.#table?.snapshot;
    if (live === undefined) return;
    const table = new RouteTable(live, this.#registry, this.#stats, this.#stickyKey, undefined, this.#health);
    this.#table = table;
    this.#health.reconcile(table);
    this.#registry.retainOnly(table.upstreams);
  }

  /** Opens the plain HTTP listener. */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const address = await listenOn(this.#server, host, port);
    this.#port = String(address.port);
    return address;
  }

  /**
   * Opens the HTTPS listener: certificates by SNI from the store; by ALPN `h2` when the
   * client offers it and `tls.http2` is on (an {@link Http2Sessions} session), else
   * `http/1.1`; and `acme-tls/1` answered with the challenge certificate while a
   * TLS-ALPN-01 challenge for that name is pending.
   */
  async listenHttps(host: string, port: number, maxHeaderSize: number): Promise<AddressInfo> {
    const store = this.#certificates;
    const challenges = this.#challenges;
    const stats = this.#stats.tls;
    // The callbacks' `this` is the TLS socket.
    const plane = this;
    const server = new Https1Server({
      ...store.serverOptions(),
      // Both callbacks are called with the TLS socket as `this`; ALPN runs first (Node 20).
      ALPNCallback(this: TLSSocket, { servername, protocols }: { servername: string; protocols: string[] }) {
        if (protocols.includes(ACME_TLS_ALPN) && (challenges.alpn(servername) || challenges.shared)) {
          (this as TLSSocket & { [ALPN_CHALLENGE]?: true })[ALPN_CHALLENGE] = true;
          return ACME_TLS_ALPN;
        }
        if (plane.#offerHttp2 && protocols.includes('h2')) return 'h2';
        return protocols.includes('http/1.1') ? 'http/1.1' : undefined;
      },
      SNICallback(this: TLSSocket, servername: string, done: (err: Error | null, ctx?: SecureContext) => void) {
        if (!(this as TLSSocket & { [ALPN_CHALLENGE]?: true })[ALPN_CHALLENGE]) return done(null, store.lookup(servername));
        // A TLS-ALPN-01 validation: only the challenge certificate will do.
        const local = challenges.alpn(servername);
        if (local) return done(null, local);
        const shared = challenges.shared;
        if (!shared) return done(new Error(`no TLS-ALPN-01 challenge pending for ${servername}`));
        shared.alpn(servername).then(
          (ctx) => (ctx ? done(null, ctx) : done(new Error(`no TLS-ALPN-01 challenge pending for ${servername}`))),
          (err: Error) => done(err),
        );
      },
    } as TlsOptions, { maxHeaderSize, connectionsCheckingInterval: CONNECTIONS_CHECK_MS }, this.#onHttp1Request);
    this.#renewSessionTickets(server);
    // First, so that it takes over the HTTP/1.1 server's handling of `h2` connections only.
    const http2 = new Http2Sessions(maxHeaderSize, this.#onHttp2Request);
    http2.guard(server);
    server.on('clientError', this.#onClientError);
    server.on('upgrade', this.#onUpgrade);
    // The PROXY header precedes the ClientHello: read from the raw socket, then handed to TLS.
    this.#httpsLimit.guard(server);
    this.#httpsGate.guard(server, false);
    server.prependListener('secureConnection', adoptProxiedAddresses);
    server.on('secureConnection', this.#track);
    server.on('secureConnection', (socket: TLSSocket) => {
      stats.handshakes++;
      if (socket.isSessionReused()) stats.resumed++;
      // A TLS-ALPN-01 validation only needs the handshake.
      if (socket.alpnProtocol === ACME_TLS_ALPN) socket.end();
    });
    server.on('tlsClientError', () => {
      stats.handshakeErrors++;
    });
    this.#https = server;
    this.#http2 = http2;
    if (this.#table !== undefined) {
      configureServer(server, this.#table.settings);
      http2.configure(this.#table.settings.timeouts.clientKeepAlive);
    }
    const address = await listenOn(server, host, port);
    this.#httpsPort = String(address.port);
    this.#httpsPortSuffix = address.port === 443 ? '' : `:${address.port}`;
    return address;
  }

  /** Re-reads the default certificate (unknown or missing SNI) from the store. */
  refreshDefaultCertificate(): void {
    if (this.#https === undefined) return;
    this.#https.setSecureContext(this.#certificates.serverOptions());
    this.#renewSessionTickets(this.#https);
  }

  /** Session tickets renewed on every resumption ({@link SessionTickets}) on `server`'s current context. */
  #renewSessionTickets(server: Https1Server): void {
    if (this.#certificates.sessionTickets.install(server) || this.#ticketHookMissing) return;
    this.#ticketHookMissing = true;
    this.#logger.warn('this Node has no TLS ticket key hook: resumed TLS connections get no new session ticket');
  }

  /**
   * Draining begins: from now on every response goes out with `Connection: close` — those
   * of requests in flight too, when their head is not sent yet — so keep-alive clients
   * leave after their current request. The listeners keep accepting. Irreversible.
   */
  beginDrain(): void {
    if (this.#draining) return;
    this.#draining = true;
    for (const socket of this.#connections) {
      const res = responseOn(socket);
      if (res !== undefined && !res.headersSent) res.shouldKeepAlive = false;
    }
    // HTTP/2's way of saying the same: GOAWAY (streams in flight finish).
    this.#http2?.beginDrain();
  }

  /**
   * Stops accepting (draining begins too, if it had not): idle connections are closed at
   * once and the others as their response ends; requests in flight and tunnels get up to
   * `timeoutMs`, then whatever is open is cut (tunnels get their FINs). Resolves with what
   * was cut once every connection has ended (at most {@link CUT_GRACE_MS} after the cut),
   * after closing the upstream pools. A second call gets the first one's result.
   */
  close(timeoutMs = 10_000): Promise<DrainCut> {
    return (this.#closing ??= this.#close(timeoutMs));
  }

  async #close(timeoutMs: number): Promise<DrainCut> {
    this.beginDrain();
    const servers: HttpListener[] = this.#https ? [this.#server, this.#https] : [this.#server];
    // Resolves once every connection of the listeners has ended (Node 20's close() also closes the idle ones), and then every tunnel.
    const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())))).then(() => this.#tunnels.whenEmpty());
    // Connections still sending their PROXY header have sent no request yet.
    this.#httpGate.destroyPending();
    this.#httpsGate.destroyPending();
    // A response whose head went out before draining began leaves its connection idle: close those as they turn so.
    const sweep = setInterval(() => servers.forEach((s) => s.closeIdleConnections()), 100);
    let cut = NOTHING_CUT;
    if (!(await settlesWithin(closed, timeoutMs))) {
      cut = this.#cut(servers);
      await settlesWithin(closed, CUT_GRACE_MS);
    }
    clearInterval(sweep);
    this.#health.close();
    await this.#registry.close();
    return cut;
  }

  /** The drain deadline: every connection and tunnel still open is closed; counts what that cut. */
  #cut(servers: readonly HttpListener[]): DrainCut {
    let requests = 0;
    for (const socket of this.#connections) if (responseOn(socket) !== undefined) requests++;
    requests += this.#http2?.cut() ?? 0;
    for (const s of servers) s.closeAllConnections();
    // Upgraded connections are not the HTTP server's to close (but its close waits for them).
    const tunnels = this.#tunnels.size;
    for (const tunnel of this.#tunnels) tunnel.close();
    return { requests, tunnels, tcpSessions: 0 };
  }

  /** Follows a connection that carries HTTP from its accept until it closes (or is upgraded: it is a tunnel's then). */
  readonly #track = (socket: Socket): void => {
    const connections = this.#connections;
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  };

  /**
   * An Upgrade request (WebSocket and others): routed like any request — by
   * {@link #onRequest}, with a response object on its raw socket for the router's own
   * answers — and then handed to an {@link UpgradeExchange} instead of a proxy exchange.
   */
  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Bytes the client sent after the request head stay in the socket, for the tunnel.
    if (head.length > 0) socket.unshift(head);
    // A pipelined upgrade comes only after the response before it ended (Http1Connection answers in order).
    // From here the connection is the upgrade's: a tunnel, or closed after the answer.
    this.#connections.delete(socket as Socket);
    this.#onRequest(req, responseForUpgrade(req, socket as Socket));
  };

  /**
   * A request of either listener's HTTP/1.1 server ({@link Http1Server}): its request and
   * response offer what the request path reads and writes of node:http's (see their
   * module comments), as HTTP/2's compatibility objects do.
   */
  readonly #onHttp1Request = (req: Http1Request, res: Http1Response): void => {
    this.#onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  };

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    if (this.#draining) res.shouldKeepAlive = false;
    const https = (req.socket as TLSSocket).encrypted === true;
    // ACME HTTP-01 answers come before any routing or HTTPS redirect.
    if (!https && req.url!.charCodeAt(1) === 46 /* "/." */) {
      const token = AcmeChallenges.tokenOf(req.url!);
      if (token !== undefined && this.#answerChallenge(req, res, started, token)) return;
    }
    this.#route(req, res, started, https, req.rawHeaders, undefined);
  };

  /**
   * An HTTP/2 request (a stream of an {@link Http2Sessions} session): its head in HTTP/1.1
   * form ({@link translateHttp2Head}), then the same path as any HTTPS request. Node's
   * compatibility request and the {@link Http2Response} offer what that path reads and
   * writes of node:http's request and response (see their module comments); the few
   * differences are decided by `proto` there, in branches an HTTP/1.1 request reaches only
   * with a body (or a version other than 1.x).
   */
  readonly #onHttp2Request = (req: Http2ServerRequest, res: Http2Response): void => {
    const started = performance.now();
    const raw = translateHttp2Head(req.rawHeaders, !req.stream.endAfterHeaders);
    this.#route(req as unknown as IncomingMessage, res as unknown as ServerResponse, started, true, raw, 'h2');
  };

  /** Answers an HTTP-01 validation from memory, or from shared storage; false if neither can have it. */
  #answerChallenge(req: IncomingMessage, res: ServerResponse, started: number, token: string): boolean {
    const send = (keyAuthorization: string) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(keyAuthorization) });
      res.end(keyAuthorization);
    };
    const local = this.#challenges.http01(token);
    if (local !== undefined) {
      send(local);
      return true;
    }
    const shared = this.#challenges.shared;
    if (!shared) return false;
    shared.http01(token).then(
      (answer) => (answer === undefined ? this.#route(req, res, started, false, req.rawHeaders, undefined) : send(answer)),
      () => this.#route(req, res, started, false, req.rawHeaders, undefined),
    );
    return true;
  }

  /** `raw`: the request's header fields as HTTP/1.1 carries them; `proto`: `h2` for HTTP/2 requests, undefined for HTTP/1.x. */
  #route(req: IncomingMessage, res: ServerResponse, started: number, https: boolean, raw: readonly string[], proto: 'h2' | undefined): void {
    // The connection's peer (PROXY-declared or TCP); the request's client is decided once the headers are read.
    const peer = peerAddressOf(req.socket);
    const table = this.#table;
    if (table === undefined) return this.#answer(req, res, started, peer, 'FW_NOT_READY', 'not_ready');
    const limits = table.settings.limits;
    // What the router does not forward: request lines of other versions (the HTTP/1.1 parser refuses them already; kept as a guard), over-long targets.
    if (req.httpVersionMajor !== 1 && proto === undefined) return this.#answer(req, res, started, peer, 'FW_BAD_REQUEST', 'bad_request', undefined, undefined, undefined, undefined, true);
    if (req.url!.length > limits.maxUrlLength) return this.#answer(req, res, started, peer, 'FW_URL_TOO_LONG', 'url_too_long', undefined, undefined, undefined, undefined, true);
    if (raw.length > limits.maxHeadersCount * 2) return this.#answer(req, res, started, peer, 'FW_HEADERS_TOO_LARGE', 'headers_too_large');

    // One pass over the raw headers: keep what is forwarded, note what routing needs.
    const headers: string[] = [];
    let host: string | undefined;
    let contentLength: string | undefined;
    let chunked = false;
    let requestId: string | undefined;
    let connection: string | undefined;
    let versionHeader: string | undefined;
    let cookie: string | undefined;
    let upgrade: string | undefined;
    let acceptEncoding: string | undefined;
    let xff: string | undefined;
    /** More than one Host, or a Transfer-Encoding other than one `chunked` (RFC 9112 §3.2, §6.1). */
    let ambiguous = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      const lower = name.toLowerCase();
      if (DROPPED_REQUEST_HEADERS.has(lower)) {
        if (lower === 'transfer-encoding') {
          // The parser frames by the last coding; `gzip, chunked` would lose its gzip here, so only `chunked` is accepted.
          if (chunked || value.length !== 7 || value.toLowerCase() !== 'chunked') ambiguous = true;
          chunked = true;
        }
        else if (lower === 'x-request-id') requestId = value;
        else if (lower === 'connection') connection = value;
        else if (lower === 'upgrade') upgrade = value;
        else if (lower === 'x-fairway-version') versionHeader = value;
        else if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff},${value}`;
        continue;
      }
      if (lower === 'host') {
        if (host !== undefined) ambiguous = true;
        host = value;
      } else if (lower === 'content-length') contentLength = value;
      else if (lower === 'cookie') cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      else if (lower === 'accept-encoding') acceptEncoding = acceptEncoding === undefined ? value : `${acceptEncoding}, ${value}`;
      headers.push(name, value);
    }
    // HTTP/1.0 has no chunked coding: a Transfer-Encoding there is faulty framing (RFC 9112 §6.1).
    if (ambiguous || (chunked && req.httpVersionMinor === 0 && proto === undefined)) {
      return this.#answer(req, res, started, peer, 'FW_BAD_REQUEST', 'bad_request', undefined, undefined, undefined, undefined, true);
    }
    // The client ({@link ClientAddress}): the peer, unless the peer is a trusted proxy and its X-Forwarded-For names another.
    let clientIp = peer;
    let forwardedFor = peer;
    if (table.clientAddress.trusts(peer)) ({ client: clientIp, forwardedFor } = table.clientAddress.resolve(peer, xff));
    // Deis request IDs: a new ID and a chained X-Correlation-Id, set on the answer too; else the client's ID if sane.
    if (table.requestIds) requestId = stampRequestIds(res, headers);
    else if (requestId === undefined || !REQUEST_ID.test(requestId)) requestId = randomUUID();
    if (host === undefined) return this.#answer(req, res, started, clientIp, 'FW_BAD_REQUEST', 'bad_request', requestId);
    // A host no app serves goes to the default app when one is set (the Deis default service).
    const app = table.match(host) ?? table.defaultApp;
    if (app === undefined) return this.#answer(req, res, started, clientIp, 'FW_NO_ROUTE', 'no_route', requestId, host);
    // App policy. A refused request's body is never read: its connection is closed instead.
    if (app.allowList !== undefined && !app.allowList.allows(clientIp)) {
      return this.#answer(req, res, started, clientIp, 'FW_CLIENT_FORBIDDEN', app.stats, requestId, host, app.name, undefined, hasBody(contentLength, chunked));
    }
    if (app.maintenance) {
      return this.#answer(req, res, started, clientIp, 'FW_APP_MAINTENANCE', app.stats, requestId, host, app.name, undefined, hasBody(contentLength, chunked), MAINTENANCE_HEADERS);
    }
    let path = req.url!;
    if (path.charCodeAt(0) !== 47 /* / */) {
      // Absolute-form target (`GET http://host/path`): forward origin-form. The asterisk form
      // (`OPTIONS *`) asks about the server, not a resource: no endpoint is asked (nginx answers 400 too).
      if (path === '*') return this.#answer(req, res, started, clientIp, 'FW_BAD_REQUEST', 'bad_request', requestId, host, undefined, undefined, true);
      try {
        const u = new URL(path);
        path = u.pathname + u.search;
      } catch {
        return this.#answer(req, res, started, clientIp, 'FW_BAD_REQUEST', 'bad_request', requestId, host);
      }
    }
    if (app.sslEnforce && !https && this.#https !== undefined && !path.startsWith(HTTP01_PREFIX)) {
      res.writeHead(SAFE_METHODS.has(req.method!) ? 301 : 308, { location: `https://${normalizeHost(host)}${this.#httpsPortSuffix}${path}`, 'content-length': 0 });
      res.end();
      return;
    }
    let version: VersionRoute | undefined;
    let pick: VersionPickReason = 'weight';
    let pinned: VersionRoute | undefined;
    if (versionHeader !== undefined && app.acceptsVersionHeader(clientIp)) {
      version = app.version(versionHeader);
      if (version === undefined) return this.#answer(req, res, started, clientIp, 'FW_VERSION_NOT_FOUND', app.stats, requestId, host, app.name, undefined, hasBody(contentLength, chunked));
      if (version.upstreams.length === 0) return this.#answer(req, res, started, clientIp, 'FW_NO_ENDPOINTS', version.stats, requestId, host, app.name, version.name, hasBody(contentLength, chunked));
      pick = 'header';
    } else {
      if (cookie !== undefined && app.sticky !== undefined) pinned = app.stickyVersion(cookie);
      if (pinned !== undefined) {
        version = pinned;
        pick = 'cookie';
      } else {
        version = app.pickVersion();
        if (version === undefined) return this.#answer(req, res, started, clientIp, 'FW_NO_ENDPOINTS', app.stats, requestId, host, app.name);
      }
    }
    // An upgrade is tunnelled as soon as the endpoint answers 101, so its request has no body to forward.
    if (isUpgrade(req) && hasBody(contentLength, chunked)) {
      return this.#answer(req, res, started, clientIp, 'FW_UPGRADE_WITH_BODY', version.stats, requestId, host, app.name, version.name, true);
    }
    let body: ForwardRequest['body'] = null;
    if (contentLength !== undefined && contentLength !== '0') {
      if (Number(contentLength) > app.maxBodySize) {
        return this.#answer(req, res, started, clientIp, 'FW_BODY_TOO_LARGE', version.stats, requestId, host, app.name, version.name);
      }
      body = req;
    } else if (chunked) {
      // Piped from the request once its first chunk is parsed (see the end of this method).
      body = new BodyLimit(app.maxBodySize);
    }
    if (body !== null) {
      if (proto === undefined) watchBodyIdle(req, this.#clientIdle);
      else watchStreamIdle(req as unknown as Http2ServerRequest, this.#clientIdle);
    }
    if (connection !== undefined) dropConnectionTokens(headers, connection);
    headers.push(
      'x-forwarded-for', forwardedFor,
      'x-forwarded-proto', https ? 'https' : 'http',
      'x-forwarded-host', host,
      'x-forwarded-port', https ? this.#httpsPort : this.#port,
      'x-request-id', requestId,
    );
    const fwd: ForwardRequest = {
      method: req.method!, path, headers, host, requestId, clientIp, body, hsts: https ? app.hsts : undefined,
      https, pick, stick: app.sticky !== undefined && pick !== 'header', pinned, proto,
      // A coding for the response when the app compresses and the client accepts one (never for HEAD or HTTP/1.0, as nginx's gzip_http_version 1.1).
      encoding: acceptEncoding !== undefined && app.compression !== undefined && req.method !== 'HEAD' && (req.httpVersionMinor > 0 || req.httpVersionMajor > 1)
        ? app.compression.negotiate(acceptEncoding) : undefined,
    };
    if (isUpgrade(req)) {
      // Hop-by-hop, so sent again by the router: the endpoint is asked to upgrade its own connection.
      for (const h of upgradeRequestHeaders(req.rawHeaders, upgrade ?? '')) headers.push(h);
      new UpgradeExchange(res, req.socket, fwd, upgrade ?? '', app, version, this.#ctx, this.#tunnels, started).start();
      return;
    }
    const exchange = new ProxyExchange(res, fwd, app, version, this.#ctx, started);
    if (!chunked) exchange.start();
    else if (proto === undefined) startOnFirstChunk(req, body as BodyLimit, exchange);
    else streamHttp2Body(req as unknown as Http2ServerRequest, body as BodyLimit, exchange);
  }

  /**
   * Answers a request the router does not proxy with the error page for `code`, counts
   * it (under `unrouted` reasons before an app is known, else under the app or version),
   * and writes its access-log line. Pages that leave a request body unread close the
   * connection (always for the size limits; with `close` for the others).
   */
  #answer(
    req: IncomingMessage, res: ServerResponse, started: number, clientIp: string, code: ErrorCode, counter: UnroutedReason | VersionStats,
    requestId?: string, host?: string, app?: string, version?: string, close = false, extraHeaders?: readonly string[],
  ): void {
    // The app's pages once the app is known, else the router-wide ones.
    const table = this.#table;
    const pages = (app !== undefined ? table?.app(app)?.pages : undefined) ?? table?.pages ?? BUILTIN_PAGES;
    const status = pages.send(res, code, close || code === 'FW_BODY_TOO_LARGE' || code === 'FW_HEADERS_TOO_LARGE', extraHeaders);
    const seconds = (performance.now() - started) / 1000;
    if (typeof counter === 'string') this.#stats.unrouted[counter]++;
    else {
      counter.observe(status, seconds);
      if (isUpgrade(req)) counter.upgrades.rejected++;
    }
    this.#ctx.accessLog?.info({
      reqId: requestId, app, version, method: req.method, host, path: req.url, status,
      duration: Math.round(seconds * 1e6) / 1e3, clientIp, error: code,
      proto: req instanceof Http2ServerRequest ? 'h2' : undefined, // omitted for HTTP/1.x
    });
  }

  readonly #onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    const pending = responseOn(socket);
    if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, text, code] =
      err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large', 'FW_HEADERS_TOO_LARGE']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout', 'FW_BAD_REQUEST']
      : [400, 'Bad Request', 'FW_BAD_REQUEST'];
    if (status === 431) this.#stats.unrouted.headers_too_large++;
    else this.#stats.unrouted.bad_request++;
    this.#logger.debug({ err: err.message, code: err.code }, 'client error');
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\nX-Fairway-Error: ${code}\r\n\r\n`);
  };
}

/** Removes the headers a `Connection` header names (RFC 9110 §7.6.1). */
function dropConnectionTokens(headers: string[], connection: string): void {
  const tokens = connection.toLowerCase().split(',').map((t) => t.trim()).filter((t) => t && t !== 'close' && t !== 'keep-alive');
  if (tokens.length === 0) return;
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (tokens.includes(headers[i]!.toLowerCase())) headers.splice(i, 2);
  }
}

/** What a reload changes on a listener (read for each connection or check). */
function configureServer(server: HttpListener, s: Snapshot['settings']): void {
  server.keepAliveTimeout = s.timeouts.clientKeepAlive;
  server.headersTimeout = s.timeouts.clientHeaders;
  server.requestTimeout = s.timeouts.clientRequest;
  server.maxHeadersCount = s.limits.maxHeadersCount + 1;
}

/**
 * Starts `exchange` once the first chunk of `req`'s chunked body, or its end, was parsed,
 * and streams the body to it through `limit`. A malformed first chunk — or a syntax error
 * in the bytes that arrived with it — makes the parser fail first (answered 400 by
 * `#onClientError`, which ends the connection): the exchange never starts. `pipe()` does
 * not pass errors on, so a body cut short or malformed later fails the upstream request
 * explicitly (its endpoint sees an incomplete body) instead of leaving it waiting.
 */
function startOnFirstChunk(req: IncomingMessage, limit: BodyLimit, exchange: ProxyExchange): void {
  // 'readable' can come while the bytes that brought the first chunk are still being parsed (Node runs
  // the tick queue between parser callbacks); a turn of the event loop later they all were, and a
  // syntax error among them was answered and the connection ended.
  req.once('readable', () => setImmediate(start));
  const start = (): void => {
    const socket = req.socket;
    if (socket.destroyed || socket.writableEnded) return;
    // undici listens to the body only once it writes it, and checks `errored` then: an error before must not go unheard.
    limit.on('error', ignore);
    req.once('error', () => limit.destroy(new FairwayError('FW_BAD_REQUEST', 'the request body was cut short or malformed')));
    req.pipe(limit);
    exchange.start();
  };
}

/**
 * Streams an HTTP/2 request body of unknown length to `exchange` through `limit`, and
 * starts the exchange at once (nghttp2 checked the framing: there is no first chunk to
 * wait for). A client that resets the stream ends the request readable as if the body
 * were complete: the upstream request is failed instead, so its endpoint sees a body cut
 * short, as on HTTP/1.1.
 */
function streamHttp2Body(req: Http2ServerRequest, limit: BodyLimit, exchange: ProxyExchange): void {
  limit.on('error', ignore);
  req.once('aborted', () => limit.destroy(new FairwayError('FW_BAD_REQUEST', 'the request body was cut short')));
  req.pipe(limit);
  exchange.start();
}

function ignore(): void {}

/**
 * `timeouts.clientIdle` for an HTTP/2 request body: the stream (not the connection, which
 * other streams share) is reset with CANCEL when no frame of it arrives or leaves for
 * `ms`. Off again at the body's end.
 */
function watchStreamIdle(req: Http2ServerRequest, ms: number): void {
  req.stream.setTimeout(ms, cancelStream);
  req.once('end', endStreamIdle);
}

function cancelStream(this: ServerHttp2Stream): void {
  this.close(http2Constants.NGHTTP2_CANCEL);
}

function endStreamIdle(this: Http2ServerRequest): void {
  this.stream?.setTimeout(0);
}

/**
 * `timeouts.clientIdle` for a request body: the socket is cut when no byte arrives for `ms`
 * while the body is read (Node destroys a server socket whose timeout fires unheard). Off
 * again at the body's end, unless the response already finished and Node set its keep-alive
 * timeout on the socket.
 */
function watchBodyIdle(req: IncomingMessage, ms: number): void {
  req.socket.setTimeout(ms);
  req.once('end', endBodyIdle);
}

function endBodyIdle(this: IncomingMessage): void {
  if (responseOn(this.socket) !== undefined) this.socket.setTimeout(0);
}

/** The response being written on an HTTP/1.1 connection of either listener, if any: a request in flight. */
function responseOn(socket: Socket): ServerResponse | undefined {
  return http1ResponseOn(socket) as ServerResponse | undefined;
}

function listenOn(server: HttpListener, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 1024 }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function hasBody(contentLength: string | undefined, chunked: boolean): boolean {
  return chunked || (contentLength !== undefined && contentLength !== '0');
}
