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
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { Snapshot } from '../model.js';
import { AccessLog, type AccessLogSink } from '../observability/access-log.js';
import type { Logger } from '../observability/logger.js';
import type { RequestStats, UnroutedReason, VersionStats } from '../observability/request-stats.js';
import type { ErrorCode } from '../errors.js';
import { ACME_TLS_ALPN, AcmeChallenges, HTTP01_PREFIX } from '../tls/acme-challenges.js';
import type { CertificateStore } from '../tls/certificate-store.js';
import { adoptProxiedAddresses, peerAddressOf } from './client-address.js';
import { BUILTIN_PAGES } from './error-pages.js';
import { BodyLimit, ProxyExchange, type ExchangeContext, type ForwardRequest, type VersionPickReason } from './proxy-exchange.js';
import { ProxyProtocolGate } from './proxy-protocol-gate.js';
import { normalizeHost, RouteTable, type VersionRoute } from './route-table.js';
import { stampRequestIds } from './stamp-request-ids.js';
import { isUpgrade, responseForUpgrade, upgradeRequestHeaders, UpgradeExchange } from './upgrade-exchange.js';
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
const EMPTY = Buffer.alloc(0);
/** Set on a TLS socket whose ALPN callback chose `acme-tls/1`, for the SNI callback that follows. */
const ALPN_CHALLENGE = Symbol('fairway.alpnChallenge');

export interface DataPlaneOptions {
  readonly stats: RequestStats;
  readonly logger: Logger;
  /** Limits fixed for the listener's life (Node applies them at creation). */
  readonly maxHeaderSize: number;
  readonly certificates: CertificateStore;
  readonly challenges: AcmeChallenges;
  /**
   * Signs sticky-version cookies; must be the same on every replica and across restarts
   * for cookies to stay valid. Absent: a random key for this process until
   * {@link DataPlane.setStickyKey}.
   */
  readonly stickyKey?: Buffer;
  /** Where access-log entries go besides stdout (per-app logs, the log shipper); each is skipped while inactive. */
  readonly accessLogSinks?: readonly AccessLogSink[];
}

export class DataPlane {
  readonly #registry = new UpstreamRegistry();
  readonly #stats: RequestStats;
  readonly #logger: Logger;
  readonly #accessLog: Logger;
  readonly #certificates: CertificateStore;
  readonly #challenges: AcmeChallenges;
  readonly #accessLogSinks: readonly AccessLogSink[];
  /** Upgrade requests being answered and open tunnels (they left the HTTP server's books at the upgrade). */
  readonly #tunnels = new Set<UpgradeExchange>();
  readonly #server: Server;
  /** PROXY protocol on the HTTP and HTTPS listeners (`proxyProtocol.http` / `.https`). */
  readonly #httpGate: ProxyProtocolGate;
  readonly #httpsGate: ProxyProtocolGate;
  #https: HttpsServer | undefined;
  #table: RouteTable | undefined;
  #stickyKey: Buffer;
  #ctx: ExchangeContext;
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
    this.#ctx = { accessLog: new AccessLog(this.#accessLog, this.#accessLogSinks) };
    this.#server = createServer({ maxHeaderSize: options.maxHeaderSize, requireHostHeader: false }, this.#onRequest);
    this.#server.on('clientError', this.#onClientError);
    this.#server.on('upgrade', this.#onUpgrade);
    this.#httpGate = new ProxyProtocolGate('http', options.stats.forProxyProtocol('http'), options.logger);
    this.#httpsGate = new ProxyProtocolGate('https', options.stats.forProxyProtocol('https'), options.logger);
    this.#httpGate.guard(this.#server, true);
  }

  /** The live table (undefined until the first snapshot). */
  get table(): RouteTable | undefined {
    return this.#table;
  }

  /** Compiles `snapshot` and makes it live at once. */
  apply(snapshot: Snapshot): void {
    const table = new RouteTable(snapshot, this.#registry, this.#stats, this.#stickyKey, this.#table);
    const s = snapshot.settings;
    this.#server.keepAliveTimeout = s.timeouts.clientKeepAlive;
    this.#server.headersTimeout = s.timeouts.clientHeaders;
    this.#server.maxHeadersCount = s.limits.maxHeadersCount + 1;
    this.#httpGate.configure(s.proxyProtocol?.http ?? false, s.proxyProtocol?.headerTimeout ?? 5000);
    this.#httpsGate.configure(s.proxyProtocol?.https ?? false, s.proxyProtocol?.headerTimeout ?? 5000);
    const sinks = this.#accessLogSinks;
    this.#ctx = { accessLog: s.accessLog || sinks.length > 0 ? new AccessLog(s.accessLog ? this.#accessLog : undefined, sinks) : undefined };
    // A default app the snapshot does not have: unknown hosts get 404 (said once per change).
    const before = this.#table;
    if (s.defaultApp !== undefined && table.defaultApp === undefined && (before === undefined || before.defaultApp !== undefined || before.snapshot.settings.defaultApp !== s.defaultApp)) {
      this.#logger.warn({ code: 'FW_APP_NOT_FOUND', app: s.defaultApp }, 'defaultService names an app that is not serving; unknown hosts get 404');
    }
    this.#table = table;
    this.#registry.retainOnly(table.upstreams);
  }

  /**
   * Replaces the key that signs sticky-version cookies (the composition root's hook for a
   * key that is configured, or shared through storage). The live table is recompiled with
   * it at once; cookies signed with the old key are ignored from then on (their clients
   * are picked by weight once and get a new cookie). The same key again changes nothing.
   */
  setStickyKey(key: Buffer): void {
    if (key.equals(this.#stickyKey)) return;
    this.#stickyKey = Buffer.from(key);
    const live = this.#table;
    if (live === undefined) return;
    const table = new RouteTable(live.snapshot, this.#registry, this.#stats, this.#stickyKey);
    this.#table = table;
    this.#registry.retainOnly(table.upstreams);
  }

  /** Opens the plain HTTP listener. */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const address = await listenOn(this.#server, host, port);
    this.#port = String(address.port);
    return address;
  }

  /**
   * Opens the HTTPS listener: certificates by SNI from the store, `http/1.1` by ALPN,
   * and `acme-tls/1` answered with the challenge certificate while a TLS-ALPN-01
   * challenge for that name is pending.
   */
  async listenHttps(host: string, port: number, maxHeaderSize: number): Promise<AddressInfo> {
    const store = this.#certificates;
    const challenges = this.#challenges;
    const stats = this.#stats.tls;
    const server = createHttpsServer({
      ...store.serverOptions(),
      maxHeaderSize,
      requireHostHeader: false,
      // Both callbacks are called with the TLS socket as `this`; ALPN runs first (Node 20).
      ALPNCallback(this: TLSSocket, { servername, protocols }: { servername: string; protocols: string[] }) {
        if (protocols.includes(ACME_TLS_ALPN) && (challenges.alpn(servername) || challenges.shared)) {
          (this as TLSSocket & { [ALPN_CHALLENGE]?: true })[ALPN_CHALLENGE] = true;
          return ACME_TLS_ALPN;
        }
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
    } as Parameters<typeof createHttpsServer>[0], this.#onRequest);
    server.on('clientError', this.#onClientError);
    server.on('upgrade', this.#onUpgrade);
    // The PROXY header precedes the ClientHello: read from the raw socket, then handed to TLS.
    this.#httpsGate.guard(server, false);
    server.prependListener('secureConnection', adoptProxiedAddresses);
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
    const address = await listenOn(server, host, port);
    this.#httpsPort = String(address.port);
    this.#httpsPortSuffix = address.port === 443 ? '' : `:${address.port}`;
    return address;
  }

  /** Re-reads the default certificate (unknown or missing SNI) from the store. */
  refreshDefaultCertificate(): void {
    this.#https?.setSecureContext(this.#certificates.serverOptions());
  }

  /**
   * Stops accepting, lets requests in flight finish (up to `timeoutMs`), then closes
   * every connection and upstream pool.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    const servers: Server[] = this.#https ? [this.#server, this.#https] : [this.#server];
    const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
    // Connections still sending their PROXY header have sent no request yet.
    this.#httpGate.destroyPending();
    this.#httpsGate.destroyPending();
    // Connections turn idle as their last response ends: close them as they do.
    const sweep = setInterval(() => servers.forEach((s) => s.closeIdleConnections()), 100);
    const deadline = setTimeout(() => {
      servers.forEach((s) => s.closeAllConnections());
      // Upgraded connections are not the HTTP server's to close (but its close waits for them).
      for (const tunnel of this.#tunnels) tunnel.close();
    }, timeoutMs);
    await closed;
    clearInterval(sweep);
    clearTimeout(deadline);
    await this.#registry.close();
  }

  /**
   * An Upgrade request (WebSocket and others): routed like any request — by
   * {@link #onRequest}, with a response object on its raw socket for the router's own
   * answers — and then handed to an {@link UpgradeExchange} instead of a proxy exchange.
   */
  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Bytes the client sent after the request head stay in the socket, for the tunnel.
    if (head.length > 0) socket.unshift(head);
    // A pipelined upgrade: the response to the request before it goes out first.
    const earlier = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (earlier) {
      earlier.once('finish', () => setImmediate(() => this.#onUpgrade(req, socket, EMPTY)));
      return;
    }
    this.#onRequest(req, responseForUpgrade(req, socket as Socket));
  };

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    const https = (req.socket as TLSSocket).encrypted === true;
    // ACME HTTP-01 answers come before any routing or HTTPS redirect.
    if (!https && req.url!.charCodeAt(1) === 46 /* "/." */) {
      const token = AcmeChallenges.tokenOf(req.url!);
      if (token !== undefined && this.#answerChallenge(req, res, started, token)) return;
    }
    this.#route(req, res, started, https);
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
      (answer) => (answer === undefined ? this.#route(req, res, started, false) : send(answer)),
      () => this.#route(req, res, started, false),
    );
    return true;
  }

  #route(req: IncomingMessage, res: ServerResponse, started: number, https: boolean): void {
    // The connection's peer (PROXY-declared or TCP); the request's client is decided once the headers are read.
    const peer = peerAddressOf(req.socket);
    const table = this.#table;
    if (table === undefined) return this.#answer(req, res, started, peer, 'FW_NOT_READY', 'not_ready');
    const limits = table.snapshot.settings.limits;
    const raw = req.rawHeaders;
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
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      const lower = name.toLowerCase();
      if (DROPPED_REQUEST_HEADERS.has(lower)) {
        if (lower === 'transfer-encoding') chunked = true;
        else if (lower === 'x-request-id') requestId = value;
        else if (lower === 'connection') connection = value;
        else if (lower === 'upgrade') upgrade = value;
        else if (lower === 'x-fairway-version') versionHeader = value;
        else if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff},${value}`;
        continue;
      }
      if (lower === 'host') host = value;
      else if (lower === 'content-length') contentLength = value;
      else if (lower === 'cookie') cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      else if (lower === 'accept-encoding') acceptEncoding = acceptEncoding === undefined ? value : `${acceptEncoding}, ${value}`;
      headers.push(name, value);
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
    if (path.charCodeAt(0) !== 47 /* / */ && path !== '*') {
      // Absolute-form target (`GET http://host/path`): forward origin-form.
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
      body = req.pipe(new BodyLimit(app.maxBodySize));
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
      https, pick, stick: app.sticky !== undefined && pick !== 'header', pinned,
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
    new ProxyExchange(res, fwd, app, version, this.#ctx, started).start();
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
    });
  }

  readonly #onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    const pending = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
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

function listenOn(server: Server, host: string, port: number): Promise<AddressInfo> {
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
