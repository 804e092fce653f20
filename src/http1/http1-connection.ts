/**
 * @module
 * One client connection of an {@link Http1Server}: reads request heads and bodies from
 * the socket, hands each request to the server's handler with its response, and keeps
 * the connection for the next request or closes it.
 *
 * Requests are answered one at a time, in order: bytes of a pipelined request wait in
 * the buffer until the response before it has ended (and the socket stops being read
 * when more than {@link MAX_BUFFERED} bytes wait). A request's body is fed to its
 * request stream as it arrives, the socket paused while the reader is behind. A
 * response that ends before its request's body was read whole discards the rest of the
 * body (a response that says `Connection: close` closes instead).
 *
 * Closing after an answer that says `Connection: close`: when the client asked for it and
 * nothing was sent after the request, the socket is closed as soon as the answer is written
 * (as nginx and node:http close it). Otherwise (the router chose to close a keep-alive
 * connection, or bytes are unread) it is half-closed (FIN) and read until the client closes
 * or sends nothing for {@link LINGER_MS} (nginx's lingering close): closing with bytes unread,
 * or on their way, sends a reset, which can destroy the answer before the client reads it.
 *
 * Faults in a head or a chunked body are handed to the server's `clientError` event
 * with the socket, which answers and closes; so are socket errors. An `Upgrade` request
 * (or `CONNECT`) takes the socket out of HTTP: the server's `upgrade` (`connect`) event
 * gets the request, the socket (not flowing: what arrives waits for its new reader's first
 * `'data'` listener or pipe) and the bytes after the head, and this object lets go of it.
 *
 * Timeouts: the server calls {@link Http1Connection.expire} periodically (Node's
 * `headersTimeout` and `requestTimeout`: from a request's first byte to the end of its
 * head, and to the end of its body). Between requests the socket's idle timeout is the
 * keep-alive timeout; a socket whose idle timeout fires is destroyed.
 */
import type { Socket } from 'node:net';
import { ChunkedDecoder } from './chunked-decoder.js';
import { Http1Request } from './http1-request.js';
import { Http1Response, type ResponseOwner } from './http1-response.js';
import { HeadPrefixCheck } from './head-prefix-check.js';
import { findHeadEnd, Http1ParseError, parseRequestHead, skipEmptyLines, type RequestHead } from './parse-request-head.js';

/** What a connection needs of its server. */
export interface ConnectionHost {
  readonly maxHeaderSize: number;
  readonly maxHeadersCount: number;
  readonly keepAliveTimeout: number;
  request(req: Http1Request, res: Http1Response): void;
  /** The socket left HTTP (`upgrade`/`connect`): false when nobody took it (then it is destroyed). */
  upgrade(req: Http1Request, socket: Socket, head: Buffer): boolean;
  clientError(err: Error & { code?: string }, socket: Socket): void;
  closed(connection: Http1Connection): void;
}

/** Bytes of later requests buffered while a response is being written, before the socket is paused. */
const MAX_BUFFERED = 64 * 1024;
const EMPTY = Buffer.alloc(0);
/** How long a half-closed connection waits, idle, for the client to close (nginx's `lingering_timeout`). */
const LINGER_MS = 5_000;

/** Where the connection is in the current request. */
const IDLE = 0;
const BODY_LENGTH = 1;
const BODY_CHUNKED = 2;
/** The request was received whole; its response is being written. */
const RESPONDING = 3;
/** Out of HTTP: upgraded, failed or closed. */
const GONE = 4;

const connections = new WeakMap<Socket, Http1Connection>();

/** The response being written on `socket` by an {@link Http1Server}, if a request is in flight. */
export function http1ResponseOn(socket: Socket): Http1Response | undefined {
  return connections.get(socket)?.response;
}

export class Http1Connection implements ResponseOwner {
  readonly socket: Socket;
  readonly #host: ConnectionHost;
  #state = IDLE;
  /** Unconsumed bytes, `#buf[#start..]`. */
  #buf: Buffer = EMPTY;
  #start = 0;
  /** Where the search for the head's end stopped. */
  #scanned = 0;
  /** When the current request's first byte arrived, or the connection was accepted (performance.now()); 0 between requests. */
  requestStarted = 0;
  /** The current request's head was read whole. */
  headComplete = false;
  #req: Http1Request | undefined;
  #res: Http1Response | undefined;
  #bodyLeft = 0;
  #chunks: ChunkedDecoder | undefined;
  /** The body's reader is behind: the socket is paused until it reads. */
  #bodyPaused = false;
  /** The response ended before the body did. */
  #responseDone = false;
  /** ... and nobody read the body: the rest is read and dropped. */
  #discardBody = false;
  /** The client sent its FIN: the connection ends after the response in flight. */
  #clientEnded = false;
  /** The current request asked for the connection to close after its answer (`Connection: close`, or HTTP/1.0 without keep-alive). */
  #clientCloses = false;
  /** `#process` is running (a response ended inside it continues its loop instead of recursing). */
  #processing = false;
  #keepAliveArmed = false;
  /** The checks of a head that arrives in pieces, and how many of its bytes they saw. */
  #prefix: HeadPrefixCheck | undefined;
  #fed = 0;
  /** Consumed bytes (for parse errors' `bytesParsed`). */
  #consumed = 0;

  constructor(socket: Socket, host: ConnectionHost) {
    this.socket = socket;
    this.#host = host;
    // The first request's time runs from the accept, as Node's: a connection that sends nothing meets the head timeout.
    this.requestStarted = performance.now();
    connections.set(socket, this);
    for (const [event, listener] of this.#socketListeners) socket.on(event, listener);
  }

  get keepAliveTimeout(): number {
    return this.#host.keepAliveTimeout;
  }

  /** The response being written, while a request is in flight. */
  get response(): Http1Response | undefined {
    return this.#res;
  }

  /** No request is in flight (nothing read of one, nothing being answered). */
  get idle(): boolean {
    return this.#state === IDLE && this.requestStarted === 0;
  }

  /**
   * Checks the request timeouts at `now`: a head not complete `headersTimeout` ms after the
   * request's first byte, or a request not received whole `requestTimeout` ms after it, is
   * refused (`clientError` with `ERR_HTTP_REQUEST_TIMEOUT`).
   */
  expire(now: number, headersTimeout: number, requestTimeout: number): void {
    const started = this.requestStarted;
    if (started === 0 || this.#state === RESPONDING || this.#state === GONE) return;
    const late = (!this.headComplete && headersTimeout > 0 && now - started > headersTimeout) || (requestTimeout > 0 && now - started > requestTimeout);
    if (!late) return;
    this.#fail(Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }));
  }

  /** Closes the connection now. */
  destroy(): void {
    this.socket.destroy();
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#state === GONE) return;
    if (this.#keepAliveArmed) {
      this.#keepAliveArmed = false;
      this.socket.setTimeout(0);
    }
    if (this.#start === this.#buf.length) {
      this.#buf = chunk;
      this.#start = 0;
      this.#scanned = 0;
    } else {
      this.#buf = Buffer.concat([this.#buf.subarray(this.#start), chunk]);
      this.#scanned -= this.#start;
      this.#start = 0;
    }
    this.#process();
  };

  /** Consumes what the buffer holds, as far as the current state allows. */
  #process(): void {
    if (this.#processing) return;
    this.#processing = true;
    try {
      while (this.#state !== GONE && this.#start < this.#buf.length) {
        const state = this.#state;
        if (state === IDLE) {
          if (!this.#readHead()) break;
        } else if (state === BODY_LENGTH || state === BODY_CHUNKED) {
          if (this.#bodyPaused) break;
          this.#readBody();
        } else {
          // RESPONDING: later requests wait; past the bound the socket stops being read.
          if (this.#buf.length - this.#start > MAX_BUFFERED && !this.socket.isPaused()) this.socket.pause();
          break;
        }
      }
    } catch (err) {
      if (!(err instanceof Http1ParseError)) throw err;
      this.#fail(err);
    } finally {
      this.#processing = false;
    }
  }

  /** Parses the next head if it has all arrived; false when it has not (or the connection left HTTP). */
  #readHead(): boolean {
    const buf = this.#buf;
    const end = buf.length;
    if (this.requestStarted === 0) this.requestStarted = performance.now();
    const start = skipEmptyLines(buf, this.#start, end);
    if (start === -1) throw new Http1ParseError('HPE_INVALID_METHOD', 'too many empty lines before the request line', this.#consumed);
    if (start === end) {
      this.#consume(start);
      // Only empty lines so far: not yet a request.
      this.requestStarted = 0;
      return false;
    }
    const headEnd = findHeadEnd(buf, start, end, this.#scanned);
    if (headEnd === -1) {
      // Not all here: what did arrive is checked now, so a head that cannot become valid is refused at once, not at the timeout.
      const check = (this.#prefix ??= new HeadPrefixCheck());
      check.feed(buf, start + this.#fed, end, this.#consumed + (start - this.#start));
      this.#fed = end - start;
      this.#scanned = end;
      if (end - start > this.#host.maxHeaderSize + 4) throw new Http1ParseError('HPE_HEADER_OVERFLOW', 'request head larger than the limit', this.#consumed);
      if (this.#start !== start) this.#consume(start);
      return false;
    }
    const head = parseRequestHead(buf, start, headEnd, this.#host, this.#consumed + (start - this.#start));
    this.#prefix = undefined;
    this.#fed = 0;
    this.#consume(headEnd);
    this.headComplete = true;
    this.#begin(head);
    return true;
  }

  #begin(head: RequestHead): void {
    const socket = this.socket;
    if (head.upgrade) {
      const req = new Http1Request(head, socket, false, undefined);
      this.#detach();
      const rest = this.#buf.subarray(this.#start);
      this.#buf = EMPTY;
      this.#start = 0;
      if (!this.#host.upgrade(req, socket, rest)) socket.destroy();
      return;
    }
    const hasBody = head.chunked || head.contentLength > 0;
    const req = new Http1Request(head, socket, hasBody, hasBody ? this.#resumeBody : undefined);
    const res = new Http1Response(req, socket, head.keepAlive, this);
    this.#clientCloses = !head.keepAlive;
    this.#req = req;
    this.#res = res;
    if (head.chunked) {
      this.#state = BODY_CHUNKED;
      this.#chunks = new ChunkedDecoder(this.#host.maxHeaderSize, this.#consumed);
    } else if (head.contentLength > 0) {
      this.#state = BODY_LENGTH;
      this.#bodyLeft = head.contentLength;
    } else this.#state = RESPONDING;
    if (this.#state === RESPONDING) this.requestStarted = 0;
    const expect = head.expect;
    if (expect !== undefined && head.versionMinor >= 1) {
      if (expect === '100-continue') res.writeContinue();
      else {
        // An expectation the router cannot meet (RFC 9110 §10.1.1).
        res.writeHead(417, ['content-length', '0', 'connection', 'close']);
        res.end();
        return;
      }
    }
    this.#host.request(req, res);
  }

  #readBody(): void {
    const req = this.#req!;
    const buf = this.#buf;
    const start = this.#start;
    const discard = this.#discardBody;
    if (this.#state === BODY_LENGTH) {
      const n = Math.min(this.#bodyLeft, buf.length - start);
      const piece = buf.subarray(start, start + n);
      this.#consume(start + n);
      this.#bodyLeft -= n;
      if (!discard && !req.pushBody(piece)) this.#pauseBody();
      if (this.#bodyLeft === 0) this.#bodyDone();
      return;
    }
    const decoder = this.#chunks!;
    const end = decoder.decode(buf, start, buf.length, this.#onChunkData);
    this.#consume(end);
    if (decoder.done) this.#bodyDone();
  }

  /** Data of a chunked body, as the decoder finds it. */
  readonly #onChunkData = (data: Buffer): void => {
    if (!this.#discardBody && !this.#req!.pushBody(data)) this.#pauseBody();
  };

  #pauseBody(): void {
    this.#bodyPaused = true;
    this.socket.pause();
  }

  readonly #resumeBody = (): void => {
    if (!this.#bodyPaused) return;
    this.#bodyPaused = false;
    this.socket.resume();
    this.#process();
  };

  #bodyDone(): void {
    this.#chunks = undefined;
    this.requestStarted = 0;
    if (!this.#discardBody) this.#req!.endBody();
    if (this.#responseDone) {
      // The response already ended: the connection goes on with the next request.
      this.#responseDone = false;
      this.#discardBody = false;
      this.#next();
    } else this.#state = RESPONDING;
  }

  /** The current response was handed to the socket whole. */
  responseEnded(res: Http1Response, close: boolean): void {
    if (res !== this.#res || this.#state === GONE) return;
    this.#res = undefined;
    if (close || this.#clientEnded) {
      // Closed at once, or half-closed and read until the client closes (see the module comment).
      const lastRequest = this.#clientCloses && (this.#state === RESPONDING || this.#state === IDLE) && this.#start >= this.#buf.length;
      this.#state = GONE;
      if (lastRequest) this.socket.destroySoon();
      else {
        this.socket.end();
        this.socket.setTimeout(LINGER_MS);
      }
      return;
    }
    if (this.#state === BODY_LENGTH || this.#state === BODY_CHUNKED) {
      // The body is still coming: its reader goes on reading it, or (nobody read it) it is dropped; then the next request.
      this.#responseDone = true;
      const req = this.#req!;
      if (!req.readableDidRead) {
        this.#discardBody = true;
        req.complete = true;
        if (this.#bodyPaused) this.#resumeBody();
        else this.#process();
      }
      return;
    }
    this.#next();
  }

  /** Ready for the next request: parse what is buffered, or wait (keep-alive timeout). */
  #next(): void {
    this.#state = IDLE;
    this.#req = undefined;
    this.#res = undefined;
    this.headComplete = false;
    this.requestStarted = 0;
    if (this.socket.isPaused()) this.socket.resume();
    if (this.#start < this.#buf.length) this.#process();
    if (this.#state === IDLE && this.requestStarted === 0 && !this.#keepAliveArmed) {
      const timeout = this.#host.keepAliveTimeout;
      if (timeout > 0) {
        this.#keepAliveArmed = true;
        this.socket.setTimeout(timeout);
      }
    }
  }

  /** A fault: the request is refused by the server's `clientError` (which answers and closes). */
  #fail(err: Error & { code?: string }): void {
    if (this.#state === GONE) return;
    const req = this.#req;
    this.#state = GONE;
    this.#buf = EMPTY;
    this.#start = 0;
    if (req !== undefined && !req.complete) req.abort();
    this.#host.clientError(err, this.socket);
  }

  #consume(to: number): void {
    this.#consumed += to - this.#start;
    this.#start = to;
    if (to === this.#buf.length) {
      this.#buf = EMPTY;
      this.#start = 0;
      this.#scanned = 0;
    }
  }

  /** Lets go of the socket (an upgrade): no listener of this connection stays on it. */
  #detach(): void {
    const socket = this.socket;
    this.#state = GONE;
    for (const [event, listener] of this.#socketListeners) socket.off(event, listener);
    if (this.#keepAliveArmed) socket.setTimeout(0);
    // Neither flowing nor paused, as Node leaves an upgraded socket: bytes that arrive before the new owner reads are
    // buffered for it (a flowing socket without a 'data' listener would drop them), and its first 'data' listener or pipe starts the flow.
    (socket as { readableFlowing: boolean | null }).readableFlowing = null;
    connections.delete(socket);
    this.#host.closed(this);
  }

  readonly #onEnd = (): void => {
    // The client sent all it will: a request cut short is aborted; a response in flight still goes out, then the connection ends.
    this.#clientEnded = true;
    const req = this.#req;
    if (req !== undefined && !req.complete) req.abort();
    if (this.#state !== GONE && this.#res !== undefined) return;
    this.#state = GONE;
    // Ending a socket already ended (the server closed after a `Connection: close` answer) makes Node
    // build an ERR_STREAM_ALREADY_FINISHED error and its stack, ~20 µs, only to drop it.
    if (!this.socket.writableEnded && !this.socket.destroyed) this.socket.end();
  };

  readonly #onClose = (): void => {
    this.#state = GONE;
    const req = this.#req;
    if (req !== undefined && !req.complete) req.abort();
    this.#res?.socketClosed();
    this.#res = undefined;
    this.#req = undefined;
    connections.delete(this.socket);
    this.#host.closed(this);
  };

  readonly #onError = (err: Error & { code?: string }): void => {
    if (this.#state === GONE) {
      this.socket.destroy();
      return;
    }
    this.#fail(err);
  };

  readonly #onDrain = (): void => {
    this.#res?.socketDrained();
  };

  readonly #onTimeout = (): void => {
    this.socket.destroy();
  };

  /** What this connection listens to on its socket, from the accept until it closes or lets go ({@link #detach}). */
  readonly #socketListeners: readonly (readonly [string, (...args: any[]) => void])[] = [
    ['data', this.#onData], ['end', this.#onEnd], ['close', this.#onClose], ['error', this.#onError], ['drain', this.#onDrain], ['timeout', this.#onTimeout],
  ];
}
