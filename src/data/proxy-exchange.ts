/**
 * @module
 * One proxied request: picks an endpoint, dispatches through its undici pool, streams
 * the response straight to the client, retries on another endpoint when the request
 * never reached an upstream, and records exactly one access-log line and one set of
 * counters when it ends.
 *
 * The class is its own undici dispatch handler, using the callback form that undici's
 * core calls directly (`onConnect`/`onHeaders`/`onData`/`onComplete`/`onError`): the
 * newer controller form is wrapped by undici in an adapter that parses every response's
 * headers into an object, a cost on every request that a proxy does not need.
 *
 * A sticky app's response carries the cookie of the version that actually served it
 * (after any retry on another version) unless the client's valid cookie already names
 * that version; a version chosen by `X-Fairway-Version` sets no cookie and is never
 * swapped for another version on retry.
 *
 * Response headers: hop-by-hop ones are never relayed; with `disableServerTokens` neither
 * are `Server` and `X-Powered-By`, and with request IDs on neither are the upstream's
 * `X-Request-Id` / `X-Correlation-Id` (the router's are on the response already). A
 * response to a request with a negotiated coding that the app's {@link CompressionPolicy}
 * selects is written by a {@link CompressionWriter}; any other goes straight to the client.
 *
 * Lifecycle: `start()` once; then undici calls the handler methods; `#finish()` runs
 * exactly once, after which the exchange holds no resources.
 */
import type { ServerResponse } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { errors, type Dispatcher } from 'undici';
import { FairwayError, type ErrorCode } from '../errors.js';
import type { AccessLog } from '../observability/access-log.js';
import type { UpstreamErrorReason } from '../observability/request-stats.js';
import type { Encoding } from './compression-policy.js';
import { CompressionWriter } from './compression-writer.js';
import type { AppRoute, VersionRoute } from './route-table.js';
import type { DeadlineHolder, UpstreamDeadlines } from './upstream-deadlines.js';
import type { Upstream } from './upstream-registry.js';

/** Response headers that describe the upstream connection, not the response. */
const HOP_BY_HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);
/** Not relayed either with `disableServerTokens`: what names the server software. */
const SERVER_TOKENS = ['server', 'x-powered-by'];
/** Not relayed either with request IDs on: the router returns its own. */
const REQUEST_ID_HEADERS = ['x-request-id', 'x-correlation-id'];
/** The response headers not relayed, by [app.anonymous][app.requestIds]. */
const DROPPED_RESPONSE = [false, true].map((anonymous) =>
  [false, true].map((ids) => new Set([...HOP_BY_HOP_RESPONSE, ...(anonymous ? SERVER_TOKENS : []), ...(ids ? REQUEST_ID_HEADERS : [])])),
);

/** Errors where the request cannot have reached the upstream application. */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** Errors where the connection broke before a response; safe to retry for idempotent requests without a body. */
const RESET = new Set(['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE', 'UND_ERR_CLOSED']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** How the request's version was chosen (the access log's `pick`). */
export type VersionPickReason = 'cookie' | 'header' | 'weight';

/** What the data plane parsed from the client request before routing. */
export interface ForwardRequest {
  readonly method: string;
  readonly path: string;
  /** Flat `[name, value, …]` headers to send upstream (hop-by-hop removed, X-Forwarded-* set). */
  readonly headers: string[];
  readonly host: string;
  readonly requestId: string;
  readonly clientIp: string;
  /** The request body stream, or null when the request has none. */
  readonly body: Readable | null;
  /** `Strict-Transport-Security` to add to the response (HTTPS requests of apps with HSTS). */
  readonly hsts: string | undefined;
  /** The request came over HTTPS (the sticky cookie gets `Secure`). */
  readonly https: boolean;
  readonly pick: VersionPickReason;
  /**
   * A sticky app's version not chosen by header: answer with the served version's cookie
   * unless it is `pinned`. False: never set a cookie.
   */
  readonly stick: boolean;
  /** The version the client's valid sticky cookie names and that was honoured, if any. */
  readonly pinned: VersionRoute | undefined;
  /** The coding to compress the response with, if it qualifies (the client accepts it and the app compresses). */
  readonly encoding?: Encoding;
  /** `h2` for an HTTP/2 request (the access log's `proto`); undefined for HTTP/1.x. */
  readonly proto?: 'h2' | undefined;
}

export interface ExchangeContext {
  /** The access log (stdout and the per-app and shipping sinks); undefined: every one is off. */
  readonly accessLog: AccessLog | undefined;
  /** `timeouts.clientIdle`, ms: a response the client does not read for this long is cut. */
  readonly clientIdle: number;
  /** Keeps the upstream waits (response headers, each pause of the body) of every exchange. */
  readonly deadlines: UpstreamDeadlines;
}

export class ProxyExchange implements Dispatcher.DispatchHandler, DeadlineHolder {
  /** {@link DeadlineHolder}: the exchange's slot in `ctx.deadlines` (-1: no wait armed). */
  deadlineSlot = -1;
  /** {@link DeadlineHolder}: when the armed wait ends, on the tracker's clock. */
  deadlineAt = 0;
  readonly #res: ServerResponse;
  readonly #fwd: ForwardRequest;
  readonly #app: AppRoute;
  readonly #ctx: ExchangeContext;
  readonly #started: number;
  #version: VersionRoute;
  #upstream: Upstream | undefined;
  #tried: Upstream[] | undefined;
  #upstreamStarted = 0;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #headersSent = false;
  #clientGone = false;
  #done = false;
  #bytes = 0;
  /** Paused because the client is not reading: the armed wait is `timeouts.clientIdle`, not the upstream's. */
  #paused = false;
  /** Made on the first backpressure only: most responses never need it. */
  #onDrain: (() => void) | undefined;
  /** The catalogue code of the failure answered (the access log's `code`), if any. */
  #errorCode: ErrorCode | undefined;
  /** The connection was cut by the send timeout (the access log says so). */
  #idleCut = false;
  /** Writes the body of a response selected for compression (else the body goes straight to `res`). */
  #writer: CompressionWriter | undefined;

  constructor(res: ServerResponse, fwd: ForwardRequest, app: AppRoute, version: VersionRoute, ctx: ExchangeContext, started: number) {
    this.#res = res;
    this.#fwd = fwd;
    this.#app = app;
    this.#version = version;
    this.#ctx = ctx;
    this.#started = started;
    res.once('close', this.#onClientClose);
  }

  start(): void {
    this.#app.retryBudget?.request();
    const upstream = this.#version.pickUpstream();
    // pickVersion only returns versions with endpoints, so this is always set.
    this.#dispatch(upstream!);
  }

  #dispatch(upstream: Upstream): void {
    this.#upstream = upstream;
    upstream.outstanding++;
    this.#upstreamStarted = performance.now();
    const app = this.#app;
    upstream.pool.dispatch(
      {
        path: this.#fwd.path,
        method: this.#fwd.method as Dispatcher.HttpMethod,
        headers: this.#fwd.headers,
        body: this.#fwd.body,
        // The waits are kept by `ctx.deadlines` (see onConnect), not by a timer of undici's per
        // request, but for the headers of a request with a body: undici knows when its upload
        // ends, and its wait for headers starts there (or when the upload stalls).
        headersTimeout: this.#fwd.body === null ? 0 : app.headersTimeout,
        bodyTimeout: 0,
      },
      this,
    );
  }

  /** Called by undici as the request is written to a connection: the wait for response headers starts. */
  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#clientGone) abort(new Error('client closed the connection'));
    else if (this.#fwd.body === null && this.#app.headersTimeout > 0) this.#ctx.deadlines.track(this, this.#app.headersTimeout);
  }

  /**
   * The armed wait ended. The client's (`timeouts.clientIdle`, nginx's send_timeout: it read
   * nothing for that long): its connection is cut, logged as 499 with error `client_idle`.
   * The upstream's: the request fails as undici's own timeouts fail it (a 504, or a cut response).
   */
  deadlinePassed(): void {
    if (this.#paused) {
      this.#idleCut = true;
      this.#res.destroy();
    } else this.#abort?.(this.#headersSent ? new errors.BodyTimeoutError() : new errors.HeadersTimeoutError());
  }

  /** (Re)arms the wait for the next body chunk, or disarms it when the app has none. */
  #awaitBody(): void {
    const ms = this.#app.bodyTimeout;
    if (ms > 0) this.#ctx.deadlines.track(this, ms);
    else this.#ctx.deadlines.untrack(this);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx interim responses are not relayed
    // Outlier detection: a 5xx is a failure of the endpoint; any other answer ends its run of failures.
    if (statusCode >= 500) this.#version.outliers.failure(this.#upstream!);
    else this.#version.outliers.success(this.#upstream!);
    const res = this.#res;
    if (this.#clientGone || res.destroyed) return false;
    const app = this.#app;
    const dropped = DROPPED_RESPONSE[app.anonymous ? 1 : 0]![app.requestIds ? 1 : 0]!;
    const headers: string[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1');
      if (dropped.has(name.toLowerCase())) continue;
      headers.push(name, rawHeaders[i + 1]!.toString('latin1'));
    }
    const fwd = this.#fwd;
    if (fwd.hsts !== undefined) headers.push('strict-transport-security', fwd.hsts);
    if (fwd.stick && this.#version !== fwd.pinned) {
      const cookie = this.#app.sticky?.setCookie(this.#version, fwd.https);
      if (cookie !== undefined) headers.push('set-cookie', cookie);
    }
    try {
      const encoding = fwd.encoding;
      const length = encoding === undefined ? undefined : app.compression!.select(statusCode, headers);
      if (length === undefined) res.writeHead(statusCode, statusText || undefined, headers);
      else this.#writer = new CompressionWriter(res, app.compression!, encoding!, statusCode, statusText || undefined, headers, length);
    } catch (err) {
      // A header Node will not send (invalid characters): a malformed response.
      this.#abort?.(err as Error);
      return false;
    }
    this.#resume = resume;
    this.#headersSent = true;
    this.#awaitBody();
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#bytes += chunk.length;
    const writer = this.#writer;
    // Backpressure: false pauses the upstream until the client has read what is buffered (then `#onDrain`).
    const ok = writer !== undefined ? writer.write(chunk, (this.#onDrain ??= this.#drained.bind(this))) : this.#res.write(chunk);
    if (ok) this.#awaitBody();
    else {
      // Paused for the client: the wait for the next chunk stops until it reads (undici's did
      // too), and the client has `timeouts.clientIdle` to read.
      this.#paused = true;
      this.#ctx.deadlines.track(this, this.#ctx.clientIdle);
      if (writer === undefined) this.#res.once('drain', (this.#onDrain ??= this.#drained.bind(this)));
    }
    return ok;
  }

  /** The client read what was buffered: the upstream may send again. */
  #drained(): void {
    this.#paused = false;
    if (!this.#done) this.#awaitBody();
    this.#resume!();
  }

  onComplete(): void {
    if (this.#writer !== undefined) this.#writer.end();
    else this.#res.end();
    this.#finish(this.#res.statusCode, undefined);
  }

  onError(err: Error): void {
    this.#ctx.deadlines.untrack(this);
    const upstream = this.#upstream!;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (this.#clientGone) {
      this.#finish(499, this.#idleCut ? 'client_idle' : undefined);
      return;
    }
    if (err instanceof FairwayError) {
      this.#fail(err.code, undefined, err);
      return;
    }
    const notSent = NOT_SENT.has(code);
    const reset = !notSent && RESET.has(code);
    const reason: UpstreamErrorReason = notSent
      ? code === 'UND_ERR_CONNECT_TIMEOUT' ? 'timeout' : 'refused'
      : code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' ? 'timeout' : reset ? 'reset' : 'failed';
    this.#version.stats.upstreamErrors[reason]++;
    // Outlier detection: a failure before the response (after it, the endpoint's status was counted).
    if (!this.#headersSent) this.#version.outliers.failure(upstream);
    if (!this.#headersSent && (notSent || (reset && this.#fwd.body === null && IDEMPOTENT.has(this.#fwd.method))) && this.#bodyReplayable()) {
      const next = this.#nextUpstream(upstream);
      if (next) {
        upstream.outstanding--;
        this.#version.stats.retries++;
        this.#dispatch(next);
        return;
      }
    }
    const errorCode: ErrorCode = reason === 'timeout' ? 'FW_UPSTREAM_TIMEOUT' : notSent ? 'FW_UPSTREAM_REFUSED' : 'FW_UPSTREAM_FAILED';
    this.#fail(errorCode, reason, err);
  }

  /** Answers with an error page if nothing was sent yet, else cuts the client connection. */
  #fail(code: ErrorCode, reason: UpstreamErrorReason | undefined, err: Error): void {
    const res = this.#res;
    this.#errorCode = code;
    if (this.#headersSent) {
      // The status line is gone; the only honest signal left is an incomplete response.
      // The log still records what the status would have been.
      res.destroy();
      this.#finish(reason === 'timeout' ? 504 : 502, reason ?? err.message);
      return;
    }
    const status = this.#app.pages.send(res, code, true);
    this.#finish(status, reason ?? err.message);
  }

  /** The endpoint for the next attempt after `failed` ({@link AppRoute.retryTarget}); it may move the exchange to another version. */
  #nextUpstream(failed: Upstream): Upstream | undefined {
    const tried = (this.#tried ??= []);
    tried.push(failed);
    const next = this.#app.retryTarget(this.#version, tried, this.#fwd.pick === 'header');
    if (next === undefined) return undefined;
    this.#version = next.version;
    return next.upstream;
  }

  #bodyReplayable(): boolean {
    const body = this.#fwd.body;
    return body === null || !body.readableDidRead;
  }

  readonly #onClientClose = (): void => {
    if (this.#done) return;
    this.#clientGone = true;
    this.#abort?.(new Error('client closed the connection'));
  };

  #finish(status: number, error: string | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#ctx.deadlines.untrack(this);
    const now = performance.now();
    const upstream = this.#upstream!;
    upstream.outstanding--;
    const seconds = (now - this.#started) / 1000;
    this.#version.stats.observe(status, seconds);
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
        bytes: this.#bytes,
        encoding: this.#writer?.encoding, // omitted when the body was sent as it is
        duration: Math.round(seconds * 1e6) / 1e3,
        upstreamDuration: Math.round((now - this.#upstreamStarted) * 1e3) / 1e3,
        clientIp: fwd.clientIp,
        attempts: (this.#tried?.length ?? 0) + 1,
        proto: fwd.proto, // omitted for HTTP/1.x
        error, // omitted from the line when undefined
        code: this.#errorCode, // likewise
      });
    }
  }
}

/**
 * A pass-through that fails once more than `limit` bytes went through; used for request
 * bodies without Content-Length (chunked), whose size is only known while streaming.
 */
export class BodyLimit extends Transform {
  readonly #limit: number;
  #seen = 0;

  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#limit) done(new FairwayError('FW_BODY_TOO_LARGE', `request body exceeds ${this.#limit} bytes`));
    else done(null, chunk);
  }
}
