/**
 * @module
 * The response to one {@link Http1Request}: what the router writes of Node's
 * `ServerResponse` — `writeHead(status, [reason], headers)` with a flat array or an
 * object, `setHeader`/`getHeader`/`removeHeader`/`getHeaderNames`, `write` returning
 * false under backpressure then `'drain'`, `end`, `destroy`, `headersSent`,
 * `shouldKeepAlive`, `'finish'` and `'close'` — written straight to the socket. It is an
 * event emitter, not a writable stream, so it costs no stream state per request; a
 * readable can still be piped to it.
 *
 * The head follows Node's rules, so a client sees the same response whichever server
 * wrote it:
 * - headers given to `writeHead` replace earlier `setHeader` ones of the same name;
 *   names must be tokens and values free of control characters (else it throws
 *   `ERR_INVALID_HTTP_TOKEN` / `ERR_INVALID_CHAR`, as Node does);
 * - `Date` is added unless present; `Connection: keep-alive` plus `Keep-Alive:
 *   timeout=N` when the connection persists, `Connection: close` when it will not
 *   (a response without a length to an HTTP/1.0 client ends with the connection);
 * - a body without `Content-Length` is sent chunked; `end(data)` without an earlier head
 *   sets `Content-Length`; responses to HEAD, 1xx, 204 and 304 carry no body.
 * The head is sent with the first body bytes (or at `end`), in one write.
 *
 * Lifecycle: `end()` hands the last bytes to the socket; on the next tick `'finish'` is
 * emitted, the connection goes on (next request, or close), then `'close'`. A socket that
 * closes first makes the response `destroyed` and emits `'close'`.
 */
import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Http1Request } from './http1-request.js';
import { isFieldValue, isToken } from './parse-request-head.js';

/** What the response needs of its connection. */
export interface ResponseOwner {
  /** `timeouts.clientKeepAlive`, ms (the `Keep-Alive: timeout` sent), read when the head is made. */
  readonly keepAliveTimeout: number;
  /** The response was handed to the socket whole; `close`: the connection must end after it. */
  responseEnded(res: Http1Response, close: boolean): void;
}

type HeaderValue = string | number | readonly string[];

let dateSecond = -1;
let dateText = '';
/** The `Date` field value, formatted once per second. */
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
/** Fields of the head that its framing depends on, as bits of `#seen`. */
const SEEN_LENGTH = 1;
const SEEN_DATE = 2;
const SEEN_CONNECTION = 4;
const SEEN_TRANSFER_ENCODING = 8;
const LAST_CHUNK = '0\r\n\r\n';
/** Largest first body chunk sent in one buffer with the head (copying more costs more than the writev it saves). */
const JOIN_HEAD_LIMIT = 16 * 1024;

export class Http1Response extends EventEmitter {
  readonly req: Http1Request;
  readonly socket: Socket;
  statusCode = 200;
  statusMessage: string | undefined;
  /** The connection may carry another request after this response; false before the head: it says `Connection: close`. */
  shouldKeepAlive: boolean;
  sendDate = true;
  /** `writeHead` was called (the head may still wait for the first body bytes). */
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  readonly #owner: ResponseOwner;
  /** Headers set with `setHeader` before the head, by lowercased name. */
  #set: Map<string, [string, HeaderValue]> | undefined;
  /** The head, until written with the first bytes after it. */
  #head: string | undefined;
  #hasBody: boolean;
  #chunked = false;
  /** The connection ends after this response. */
  #last = false;
  #needDrain = false;
  /** The framing fields met while the head is made (SEEN_… bits). */
  #seen = 0;

  constructor(req: Http1Request, socket: Socket, keepAlive: boolean, owner: ResponseOwner) {
    super();
    this.req = req;
    this.socket = socket;
    this.shouldKeepAlive = keepAlive;
    this.#owner = owner;
    this.#hasBody = req.method !== 'HEAD';
  }

  get connection(): Socket {
    return this.socket;
  }

  get finished(): boolean {
    return this.writableEnded;
  }

  get writableNeedDrain(): boolean {
    return this.#needDrain;
  }

  setHeader(name: string, value: HeaderValue): this {
    if (this.headersSent) throw codeError(Error, 'ERR_HTTP_HEADERS_SENT', 'Cannot set headers after they are sent to the client');
    checkHeader(name, value);
    (this.#set ??= new Map()).set(name.toLowerCase(), [name, value]);
    return this;
  }

  getHeader(name: string): HeaderValue | undefined {
    return this.#set?.get(name.toLowerCase())?.[1];
  }

  hasHeader(name: string): boolean {
    return this.#set?.has(name.toLowerCase()) ?? false;
  }

  getHeaderNames(): string[] {
    return this.#set === undefined ? [] : [...this.#set.keys()];
  }

  removeHeader(name: string): void {
    if (this.headersSent) throw codeError(Error, 'ERR_HTTP_HEADERS_SENT', 'Cannot remove headers after they are sent to the client');
    this.#set?.delete(name.toLowerCase());
  }

  writeContinue(): void {
    if (!this.headersSent) this.socket.write(CONTINUE, 'latin1');
  }

  writeHead(statusCode: number, reason?: string | readonly string[] | Record<string, HeaderValue | undefined>, fields?: readonly string[] | Record<string, HeaderValue | undefined>): this {
    if (this.headersSent) throw codeError(Error, 'ERR_HTTP_HEADERS_SENT', 'Cannot write headers after they are sent to the client');
    if (typeof reason !== 'string') {
      fields = reason;
      reason = undefined;
    }
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 999) {
      throw codeError(RangeError, 'ERR_HTTP_INVALID_STATUS_CODE', `Invalid status code: ${statusCode}`);
    }
    const text = reason ?? this.statusMessage ?? STATUS_CODES[statusCode] ?? 'unknown';
    if (!isFieldValue(text)) throw codeError(TypeError, 'ERR_INVALID_CHAR', 'Invalid character in statusMessage');
    this.statusCode = statusCode;
    this.statusMessage = text;
    if (statusCode === 204 || statusCode === 304 || statusCode < 200) this.#hasBody = false;

    this.#head = `HTTP/1.1 ${statusCode} ${text}\r\n`;
    this.#seen = 0;
    // setHeader's fields first, less those the given fields replace.
    const set = this.#set;
    if (set !== undefined) {
      const replaced = new Set<string>();
      if (Array.isArray(fields)) for (let i = 0; i < fields.length; i += 2) replaced.add((fields[i] as string).toLowerCase());
      else if (fields !== undefined) for (const name in fields) replaced.add(name.toLowerCase());
      for (const [lower, [name, value]] of set) if (!replaced.has(lower)) this.#fieldValues(name, value);
    }
    if (Array.isArray(fields)) {
      const flat = fields as readonly string[];
      if (flat.length % 2 !== 0) throw codeError(TypeError, 'ERR_INVALID_ARG_VALUE', 'The argument \'headers\' must be an array of name and value pairs');
      for (let i = 0; i < flat.length; i += 2) this.#field(flat[i]!, String(flat[i + 1]));
    } else if (fields !== undefined) {
      const object = fields as Record<string, HeaderValue | undefined>;
      for (const name in object) this.#fieldValues(name, object[name]);
    }

    const seen = this.#seen;
    let head = this.#head;
    if (this.sendDate && (seen & SEEN_DATE) === 0) head += `Date: ${httpDate()}\r\n`;
    const http11 = this.req.httpVersionMinor >= 1 || this.req.httpVersionMajor > 1;
    if ((seen & (SEEN_LENGTH | SEEN_TRANSFER_ENCODING)) === 0 && this.#hasBody) {
      // No length: chunked for HTTP/1.1, delimited by the connection's end for HTTP/1.0.
      if (http11) {
        this.#chunked = true;
        head += 'Transfer-Encoding: chunked\r\n';
      } else this.#last = true;
    }
    if ((seen & SEEN_CONNECTION) === 0) {
      if (this.shouldKeepAlive && !this.#last) {
        head += 'Connection: keep-alive\r\n';
        const timeout = this.#owner.keepAliveTimeout;
        if (timeout > 0) head += `Keep-Alive: timeout=${Math.floor(timeout / 1000)}\r\n`;
      } else {
        this.#last = true;
        head += 'Connection: close\r\n';
      }
    }
    this.#head = `${head}\r\n`;
    this.headersSent = true;
    return this;
  }

  /** Appends one field line to the head being made (checked first), and notes the fields the framing depends on. */
  #field(name: string, value: string): void {
    checkHeader(name, value);
    this.#head += `${name}: ${value}\r\n`;
    // Found by length first: most fields are none of them.
    const n = name.length;
    if (n === 14) {
      if (name.toLowerCase() === 'content-length') this.#seen |= SEEN_LENGTH;
    } else if (n === 4) {
      if (name.toLowerCase() === 'date') this.#seen |= SEEN_DATE;
    } else if (n === 10) {
      if (name.toLowerCase() === 'connection') {
        this.#seen |= SEEN_CONNECTION;
        if (/(?:^|,)\s*close\s*(?:,|$)/i.test(value)) this.#last = true;
      }
    } else if (n === 17 && name.toLowerCase() === 'transfer-encoding') {
      this.#seen |= SEEN_TRANSFER_ENCODING;
      if (/(?:^|,)\s*chunked\s*$/i.test(value)) this.#chunked = true;
    }
  }

  /** {@link #field} for a value given as `setHeader` and object headers take it: a string, a number or a list. */
  #fieldValues(name: string, value: HeaderValue | undefined): void {
    if (value === undefined) throw codeError(TypeError, 'ERR_HTTP_INVALID_HEADER_VALUE', `Invalid value "undefined" for header "${name}"`);
    if (Array.isArray(value)) for (const v of value as readonly string[]) this.#field(name, String(v));
    else this.#field(name, String(value));
  }

  /** Sends the head now, without waiting for the body. */
  flushHeaders(): void {
    if (!this.headersSent) this.writeHead(this.statusCode);
    const head = this.#head;
    if (head === undefined || this.destroyed) return;
    this.#head = undefined;
    this.socket.write(head, 'latin1');
  }

  write(chunk: Buffer | string, encoding?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): boolean {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.writableEnded || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (!this.#hasBody) {
      if (cb !== undefined) process.nextTick(cb);
      return true;
    }
    const socket = this.socket;
    const head = this.#head;
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length;
    if (size === 0 && head === undefined) {
      if (cb !== undefined) process.nextTick(cb);
      return true;
    }
    let ok: boolean;
    if (head !== undefined && !this.#chunked && typeof chunk !== 'string' && size <= JOIN_HEAD_LIMIT) {
      // A small first chunk goes out with the head in one buffer: one plain write, not a writev.
      this.#head = undefined;
      const joined = Buffer.allocUnsafe(head.length + size);
      joined.write(head, 0, 'latin1');
      chunk.copy(joined, head.length);
      ok = socket.write(joined, cb);
      if (!ok) this.#needDrain = true;
      return ok;
    }
    if (head === undefined && !this.#chunked && size > 0) {
      // One write: corking it would only turn it into a writev of one buffer.
      ok = socket.write(chunk, encoding as BufferEncoding, cb);
      if (!ok) this.#needDrain = true;
      return ok;
    }
    socket.cork();
    if (head !== undefined) {
      this.#head = undefined;
      socket.write(head, 'latin1');
    }
    if (size === 0) ok = socket.write('', 'latin1', cb);
    else if (this.#chunked) {
      socket.write(`${size.toString(16)}\r\n`, 'latin1');
      socket.write(chunk, encoding as BufferEncoding);
      ok = socket.write('\r\n', 'latin1', cb);
    } else ok = socket.write(chunk, encoding as BufferEncoding, cb);
    socket.uncork();
    if (!ok) this.#needDrain = true;
    return ok;
  }

  end(chunk?: Buffer | string | (() => void), encoding?: BufferEncoding | (() => void), cb?: () => void): this {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.writableEnded || this.destroyed) return this;
    if (!this.headersSent) {
      // A whole body given at once: its length is known (not sent for the statuses that have no body, RFC 9110 §8.6).
      const status = this.statusCode;
      const bodyAllowed = this.#hasBody && status >= 200 && status !== 204 && status !== 304;
      if (bodyAllowed && !this.hasHeader('content-length') && !this.hasHeader('transfer-encoding')) {
        const size = chunk === undefined ? 0 : typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding as BufferEncoding | undefined) : chunk.length;
        this.setHeader('Content-Length', size);
      }
      this.writeHead(this.statusCode);
    }
    const socket = this.socket;
    socket.cork();
    if (chunk !== undefined && chunk.length > 0) this.write(chunk, encoding as BufferEncoding | undefined);
    const head = this.#head;
    if (head !== undefined) {
      this.#head = undefined;
      socket.write(head, 'latin1');
    }
    if (this.#chunked && this.#hasBody) socket.write(LAST_CHUNK, 'latin1');
    socket.uncork();
    this.writableEnded = true;
    if (cb !== undefined) this.once('finish', cb);
    process.nextTick(ended, this);
    return this;
  }

  /** Cuts the response: the connection is closed at once (a client must never take a cut body for a whole one). */
  destroy(_err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.socket.destroy();
    return this;
  }

  /** The socket closed before the response ended (called by the connection). */
  socketClosed(): void {
    if (this.writableFinished) return;
    this.destroyed = true;
    this.emit('close');
  }

  /** The socket drained (called by the connection). */
  socketDrained(): void {
    if (!this.#needDrain) return;
    this.#needDrain = false;
    this.emit('drain');
  }

  /** Called on the tick after `end`: finish, the connection goes on, close. */
  static ended(res: Http1Response): void {
    if (res.destroyed) return;
    res.writableFinished = true;
    res.emit('finish');
    res.#owner.responseEnded(res, res.#last || !res.shouldKeepAlive);
    res.emit('close');
  }
}

const ended = Http1Response.ended;

function checkHeader(name: string, value: HeaderValue): void {
  if (!isToken(name)) throw codeError(TypeError, 'ERR_INVALID_HTTP_TOKEN', `Header name must be a valid HTTP token ["${name}"]`);
  if (typeof value === 'string' ? !isFieldValue(value) : Array.isArray(value) && !value.every((v) => isFieldValue(String(v)))) {
    throw codeError(TypeError, 'ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`);
  }
}

function codeError(Kind: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor, code: string, message: string): Error {
  return Object.assign(new Kind(message), { code });
}
