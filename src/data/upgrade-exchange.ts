/**
 * @module
 * One Upgrade request (WebSocket, `h2c`, any protocol) after the data plane routed it:
 * a fresh TCP connection to an endpoint of the chosen version, the request head sent
 * there, and then either a tunnel or a relayed answer.
 *
 * - The endpoint answers `101`: its head goes to the client (hop-by-hop headers dropped
 *   except `Connection` and `Upgrade`; HSTS, the sticky cookie and the router's request
 *   ID headers added as on any response), then bytes are piped both ways with
 *   backpressure (a slow reader stops the other side from being read: the router holds
 *   at most a socket buffer per direction), unparsed. Half-closes are passed on. The
 *   tunnel keeps its endpoint whatever later snapshots say: reloads and weight changes
 *   only affect new requests.
 * - The endpoint answers anything else: relayed as a normal response, then the client
 *   connection is closed (the HTTP parser let go of the connection at the upgrade).
 * - No endpoint answers: retried on another endpoint when the connection was refused or
 *   timed out (as for any request: the app's attempts and retry budget,
 *   {@link AppRoute.retryTarget}), else the error page: `502`/`504`. Outlier detection
 *   hears of every attempt as it does for other requests (a 5xx or no answer: a failure).
 *
 * Timeouts: connecting, the app's connect timeout; the 101 (or other answer), the app's
 * headers timeout; a tunnel with no byte either way for the app's `upgradeIdleTimeout`
 * is closed, both connections at once. Once one side closed, the other has the shorter
 * of that and 30 s of silence to finish what it is sending.
 *
 * Lifecycle: `start()` once (the exchange joins the data plane's set of tunnels until it
 * is over); `#finish()` runs exactly once and writes the one access-log line (for a
 * tunnel, when both sockets have closed, with its duration and bytes). `close()` at
 * shutdown ends a tunnel with a FIN both ways (no WebSocket close frame: the router does
 * not parse the protocol) and destroys what is left after 1 s.
 *
 * Counters: `upgrades.upgraded/declined/failed` and `active` of the version, bytes after
 * the 101 live; a relayed or failed answer is also an ordinary request (status and
 * duration), a tunnel is not (its duration is the connection's life, not a latency).
 */
import { request as httpRequest, ServerResponse, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorCode } from '../errors.js';
import type { UpstreamErrorReason } from '../observability/request-stats.js';
import type { ExchangeContext, ForwardRequest } from './proxy-exchange.js';
import type { AppRoute, VersionRoute } from './route-table.js';
import type { Upstream } from './upstream-registry.js';

/** Response headers not relayed on a 101: hop-by-hop ones except Connection and Upgrade. */
const HOP_BY_HOP_101 = new Set(['keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'content-length']);
/** Response headers not relayed on other answers (the client connection closes after them). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);
/** Not relayed with `disableServerTokens`. */
const SERVER_TOKENS = new Set(['server', 'x-powered-by']);
/** Connection errors where the request cannot have reached the endpoint (retried elsewhere). */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const RESET = new Set(['ECONNRESET', 'EPIPE']);
/** After one side of a tunnel closed, the other's silence is cut at this, ms. */
const CLOSING_IDLE = 30_000;
/** At shutdown, what a tunnel has left after its FINs before it is destroyed, ms. */
const SHUTDOWN_GRACE = 1_000;

type Phase = 'connecting' | 'waiting' | 'relaying' | 'tunnel' | 'done';
/** Why a tunnel ended (the access log's `closedBy`). */
type ClosedBy = 'client' | 'upstream' | 'idle' | 'shutdown' | 'error';

/**
 * The hop-by-hop headers an Upgrade request is sent on with, to append to the forwarded
 * ones (which have none): `Connection: upgrade` and the client's `Upgrade` value, and for
 * `h2c` the client's `HTTP2-Settings` (RFC 9113 §3.2 needs it, named in `Connection`).
 */
export function upgradeRequestHeaders(raw: readonly string[], protocol: string): string[] {
  const headers = ['connection', 'upgrade', 'upgrade', protocol];
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'http2-settings') {
      headers[1] = 'upgrade, http2-settings';
      headers.push('http2-settings', raw[i + 1]!);
      break;
    }
  }
  return headers;
}

/** Set on the request objects of Upgrade requests (see {@link isUpgrade}). */
const UPGRADE = Symbol('fairway.upgrade');

/** Whether `req` came through the listeners' `upgrade` event (see {@link responseForUpgrade}). */
export function isUpgrade(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { [UPGRADE]?: true })[UPGRADE] === true;
}

/**
 * The response object for an Upgrade request, on its raw socket: the router's own answers
 * (error pages, redirects) and relayed non-101 answers are written through it like any
 * response, with `Connection: close`, and the socket is closed once it is sent. Marks
 * `req` for {@link isUpgrade}.
 */
export function responseForUpgrade(req: IncomingMessage, socket: Socket): ServerResponse {
  (req as IncomingMessage & { [UPGRADE]?: true })[UPGRADE] = true;
  // Node's HTTP server removed its listeners from the socket at the upgrade.
  socket.on('error', () => socket.destroy());
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', () => socket.destroySoon());
  return res;
}

export class UpgradeExchange {
  readonly #res: ServerResponse;
  readonly #client: Socket;
  readonly #fwd: ForwardRequest;
  readonly #protocol: string;
  readonly #app: AppRoute;
  readonly #ctx: ExchangeContext;
  readonly #started: number;
  readonly #tunnels: Set<UpgradeExchange>;
  #version: VersionRoute;
  #upstream: Upstream | undefined;
  #tried: Upstream[] | undefined;
  #req: ClientRequest | undefined;
  #upSocket: Socket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #phase: Phase = 'connecting';
  #upstreamStarted = 0;
  /** When the 101 was relayed (the tunnel's `upstreamDuration` is up to here). */
  #upgradedAt = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #closedBy: ClosedBy | undefined;

  /**
   * `res` comes from {@link responseForUpgrade} on `client`; `protocol` is the request's
   * `Upgrade` value; `tunnels` holds the live exchanges of the data plane (for shutdown).
   */
  constructor(
    res: ServerResponse, client: Socket, fwd: ForwardRequest, protocol: string, app: AppRoute, version: VersionRoute,
    ctx: ExchangeContext, tunnels: Set<UpgradeExchange>, started: number,
  ) {
    this.#res = res;
    this.#client = client;
    this.#fwd = fwd;
    this.#protocol = protocol;
    this.#app = app;
    this.#version = version;
    this.#ctx = ctx;
    this.#tunnels = tunnels;
    this.#started = started;
  }

  start(): void {
    this.#tunnels.add(this);
    this.#client.once('close', this.#onClientGone);
    // pickVersion only returns versions with endpoints, so this is always set.
    this.#app.retryBudget?.request();
    this.#dispatch(this.#version.pickUpstream()!);
  }

  /** Shutdown: a FIN both ways now, whatever is left destroyed after {@link SHUTDOWN_GRACE}. */
  close(): void {
    if (this.#phase === 'done') return;
    if (this.#phase !== 'tunnel') {
      this.#req?.destroy();
      this.#client.destroy();
      return;
    }
    this.#closedBy ??= 'shutdown';
    this.#client.end();
    this.#upSocket!.end();
    setTimeout(() => {
      this.#client.destroy();
      this.#upSocket!.destroy();
    }, SHUTDOWN_GRACE).unref();
  }

  #dispatch(upstream: Upstream): void {
    this.#upstream = upstream;
    upstream.outstanding++;
    this.#phase = 'connecting';
    this.#upstreamStarted = performance.now();
    const { host, port } = splitEndpoint(upstream.key);
    const fwd = this.#fwd;
    const req = httpRequest({ host, port, method: fwd.method, path: fwd.path, headers: fwd.headers, agent: false, setHost: false });
    // The head only: never a chunked body (an Upgrade request with a body was refused before).
    req.useChunkedEncodingByDefault = false;
    this.#req = req;
    this.#timer = setTimeout(() => req.destroy(codedError('connect timeout', 'UND_ERR_CONNECT_TIMEOUT')), upstream.connectTimeout);
    req.once('socket', (socket: Socket) => {
      const connected = () => {
        if (this.#req !== req || this.#phase !== 'connecting') return;
        this.#phase = 'waiting';
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => req.destroy(codedError('no answer to the upgrade request in time', 'UND_ERR_HEADERS_TIMEOUT')), this.#app.headersTimeout);
      };
      if (socket.connecting) socket.once('connect', connected);
      else connected();
    });
    req.on('upgrade', this.#onUpgrade);
    req.on('response', this.#onResponse);
    req.on('error', (err: Error) => this.#onError(req, err));
    req.flushHeaders();
  }

  readonly #onUpgrade = (upRes: IncomingMessage, upSocket: Socket, upHead: Buffer): void => {
    clearTimeout(this.#timer);
    const client = this.#client;
    if (this.#phase === 'done' || client.destroyed) {
      upSocket.destroy();
      return;
    }
    this.#phase = 'tunnel';
    this.#version.outliers.success(this.#upstream!);
    this.#upSocket = upSocket;
    this.#upgradedAt = performance.now();
    const stats = this.#version.stats.upgrades;
    stats.upgraded++;
    stats.active++;
    client.write(this.#head101(upRes));
    if (upHead.length > 0) {
      this.#bytesOut += upHead.length;
      stats.bytesOut += upHead.length;
      client.write(upHead);
    }
    // Half-closes travel through: each side's FIN ends the other's writing only.
    upSocket.allowHalfOpen = true;
    client.on('data', (chunk: Buffer) => {
      this.#bytesIn += chunk.length;
      stats.bytesIn += chunk.length;
    });
    upSocket.on('data', (chunk: Buffer) => {
      this.#bytesOut += chunk.length;
      stats.bytesOut += chunk.length;
    });
    const idle = this.#app.upgradeIdleTimeout;
    const onIdle = () => {
      this.#closedBy ??= 'idle';
      client.destroy();
      upSocket.destroy();
    };
    client.setTimeout(idle, onIdle);
    upSocket.setTimeout(idle, onIdle);
    const onError = () => {
      this.#closedBy ??= 'error';
      client.destroy();
      upSocket.destroy();
    };
    upSocket.on('error', onError);
    client.on('error', onError);
    let open = 2;
    const closedOne = (other: Socket, by: ClosedBy) => {
      this.#closedBy ??= by;
      if (--open === 0) return this.#finish(101, undefined);
      // The other side finishes what it was sending, within the closing idle time.
      other.end();
      other.setTimeout(idle === 0 ? CLOSING_IDLE : Math.min(idle, CLOSING_IDLE));
    };
    client.once('close', () => closedOne(upSocket, 'client'));
    upSocket.once('close', () => closedOne(client, 'upstream'));
    client.pipe(upSocket);
    upSocket.pipe(client);
  };

  readonly #onResponse = (upRes: IncomingMessage): void => {
    clearTimeout(this.#timer);
    const res = this.#res;
    if (this.#phase === 'done' || res.destroyed) {
      upRes.destroy();
      return;
    }
    this.#phase = 'relaying';
    // Outlier detection, as for any response: a 5xx is a failure of the endpoint.
    if (upRes.statusCode! >= 500) this.#version.outliers.failure(this.#upstream!);
    else this.#version.outliers.success(this.#upstream!);
    const headers = this.#relayedHeaders(upRes.rawHeaders, HOP_BY_HOP);
    try {
      res.writeHead(upRes.statusCode!, upRes.statusMessage || undefined, headers);
    } catch {
      // A header Node will not send (invalid characters): a malformed response.
      upRes.destroy();
      this.#req?.destroy();
      return this.#fail('FW_UPSTREAM_FAILED', 'failed', 'malformed upgrade answer');
    }
    this.#version.stats.upgrades.declined++;
    let bytes = 0;
    let broke = false;
    const upstreamBroke = () => {
      broke = true;
      res.destroy();
    };
    upRes.on('data', (chunk: Buffer) => (bytes += chunk.length));
    upRes.once('error', upstreamBroke);
    upRes.once('aborted', upstreamBroke);
    res.once('close', () => {
      this.#req?.destroy();
      this.#bytesOut = bytes;
      // Cut short: by the endpoint (502 in the log, as for any response) or by the client (499).
      if (res.writableFinished) this.#finish(upRes.statusCode!, undefined);
      else if (broke) this.#finish(502, 'upstream closed mid-answer');
      else this.#finish(499, undefined);
    });
    upRes.pipe(res);
  };

  #onError(req: ClientRequest, err: Error): void {
    if (req !== this.#req || (this.#phase !== 'connecting' && this.#phase !== 'waiting')) return;
    clearTimeout(this.#timer);
    if (this.#client.destroyed) return this.#finish(499, undefined);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const notSent = this.#phase === 'connecting' || NOT_SENT.has(code);
    const reason: UpstreamErrorReason = code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' ? 'timeout' : notSent ? 'refused' : RESET.has(code) ? 'reset' : 'failed';
    this.#version.stats.upstreamErrors[reason]++;
    this.#version.outliers.failure(this.#upstream!);
    if (notSent) {
      const failed = this.#upstream!;
      const next = this.#nextUpstream(failed);
      if (next) {
        failed.outstanding--;
        this.#version.stats.retries++;
        this.#dispatch(next);
        return;
      }
    }
    const errorCode: ErrorCode = reason === 'timeout' ? 'FW_UPSTREAM_TIMEOUT' : notSent ? 'FW_UPSTREAM_REFUSED' : 'FW_UPSTREAM_FAILED';
    this.#fail(errorCode, reason, err.message);
  }

  /** Answers with the app's error page; the socket closes after it. */
  #fail(code: ErrorCode, reason: UpstreamErrorReason, message: string): void {
    this.#version.stats.upgrades.failed++;
    const status = this.#app.pages.send(this.#res, code, true);
    this.#finish(status, reason === 'failed' ? message : reason);
  }

  /** The client went before the exchange reached a tunnel or a relayed answer's end. */
  readonly #onClientGone = (): void => {
    if (this.#phase === 'connecting' || this.#phase === 'waiting') {
      clearTimeout(this.#timer);
      this.#req?.destroy();
      this.#finish(499, undefined);
    }
  };

  /** The endpoint for the next attempt after `failed` ({@link AppRoute.retryTarget}); it may move the exchange to another version. */
  #nextUpstream(failed: Upstream): Upstream | undefined {
    const tried = (this.#tried ??= []);
    tried.push(failed);
    const next = this.#app.retryTarget(this.#version, tried, this.#fwd.pick === 'header');
    if (next === undefined) return undefined;
    this.#version = next.version;
    return next.upstream;
  }

  /** The 101 head for the client: the endpoint's, with the router's additions. */
  #head101(upRes: IncomingMessage): string {
    const headers = this.#relayedHeaders(upRes.rawHeaders, HOP_BY_HOP_101);
    let head = `HTTP/1.1 101 ${upRes.statusMessage || 'Switching Protocols'}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    return head + '\r\n';
  }

  /**
   * The endpoint's headers less `dropped` (and server tokens for anonymous apps), with
   * HSTS, the sticky cookie and the headers the data plane set on the response (request
   * IDs) added; those replace the endpoint's of the same name.
   */
  #relayedHeaders(raw: readonly string[], dropped: ReadonlySet<string>): string[] {
    const res = this.#res;
    const own = res.getHeaderNames();
    const anonymous = this.#app.anonymous;
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (dropped.has(lower) || (anonymous && SERVER_TOKENS.has(lower)) || own.includes(lower)) continue;
      headers.push(raw[i]!, raw[i + 1]!);
    }
    for (const name of own) {
      const value = res.getHeader(name)!;
      for (const v of Array.isArray(value) ? value : [String(value)]) headers.push(name, v);
      res.removeHeader(name);
    }
    const fwd = this.#fwd;
    if (fwd.hsts !== undefined) headers.push('strict-transport-security', fwd.hsts);
    if (fwd.stick && this.#version !== fwd.pinned) {
      const cookie = this.#app.sticky?.setCookie(this.#version, fwd.https);
      if (cookie !== undefined) headers.push('set-cookie', cookie);
    }
    return headers;
  }

  #finish(status: number, error: string | undefined): void {
    if (this.#phase === 'done') return;
    const tunnel = this.#phase === 'tunnel';
    this.#phase = 'done';
    clearTimeout(this.#timer);
    this.#tunnels.delete(this);
    const upstream = this.#upstream!;
    upstream.outstanding--;
    const now = performance.now();
    const seconds = (now - this.#started) / 1000;
    const stats = this.#version.stats;
    if (tunnel) stats.upgrades.active--;
    else stats.observe(status, seconds);
    const log = this.#ctx.accessLog;
    if (log) {
      const fwd = this.#fwd;
      log.info({
        reqId: fwd.requestId,
        app: this.#app.name,
        version: this.#version.name,
        pick: fwd.pick,
        endpoint: upstream.key,
        method: fwd.method,
        host: fwd.host,
        path: fwd.path,
        status,
        upgrade: this.#protocol,
        bytes: this.#bytesOut,
        bytesIn: tunnel ? this.#bytesIn : undefined,
        duration: Math.round(seconds * 1e6) / 1e3,
        upstreamDuration: Math.round(((tunnel ? this.#upgradedAt : now) - this.#upstreamStarted) * 1e3) / 1e3,
        clientIp: fwd.clientIp,
        attempts: (this.#tried?.length ?? 0) + 1,
        closedBy: tunnel ? this.#closedBy : undefined,
        error, // omitted from the line when undefined
      });
    }
  }
}

/** `host:port` or `[v6]:port` (an {@link Upstream} key) as connect options. */
function splitEndpoint(key: string): { host: string; port: number } {
  const colon = key.lastIndexOf(':');
  const host = key.slice(0, colon);
  return { host: host.charCodeAt(0) === 91 /* [ */ ? host.slice(1, -1) : host, port: Number(key.slice(colon + 1)) };
}

function codedError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}
