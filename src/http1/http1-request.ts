/**
 * @module
 * A request received by {@link Http1Server}: what the router reads of Node's
 * `IncomingMessage` — `method`, `url`, `httpVersionMajor`/`Minor`, `rawHeaders`,
 * `headers`, `socket` — and the body as a readable stream, fed by the connection with
 * backpressure: when the reader falls behind, the connection stops reading the socket
 * until `_read` asks for more.
 *
 * Lifecycle: made by the connection once the head is parsed. A request without a body
 * is complete at once (its stream ends when read). A body ends with `push(null)`, or —
 * connection closed or body malformed before its end — with `'aborted'` and then an
 * `ECONNRESET` "aborted" error, as Node's request does.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { RequestHead } from './parse-request-head.js';

/** Fields of which Node's `req.headers` keeps only the first value (its `matchKnownFields`). */
const SINGLE_VALUED = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after',
  'server', 'user-agent',
]);

export class Http1Request extends Readable {
  readonly method: string;
  readonly url: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly rawHeaders: string[];
  readonly socket: Socket;
  /** The whole body was received (at once for a request without one). */
  complete: boolean;
  /** The connection ended before the body did. */
  aborted = false;
  /** Called when the reader wants more of the body (the connection resumes reading). */
  #onRead: (() => void) | undefined;
  #headers: Record<string, string | string[]> | undefined;
  /** `push(null)` was called. */
  #ended = false;

  constructor(head: RequestHead, socket: Socket, hasBody: boolean, onRead: (() => void) | undefined) {
    super();
    this.method = head.method;
    this.url = head.url;
    this.httpVersionMajor = head.versionMajor;
    this.httpVersionMinor = head.versionMinor;
    this.rawHeaders = head.rawHeaders;
    this.socket = socket;
    this.complete = !hasBody;
    this.#onRead = onRead;
  }

  get httpVersion(): string {
    return `${this.httpVersionMajor}.${this.httpVersionMinor}`;
  }

  /** The connection the request came on (Node's older name for `socket`). */
  get connection(): Socket {
    return this.socket;
  }

  /**
   * Fields by lowercased name, made on first use, by Node's rules: a repeated field keeps
   * its first value if it is one of {@link SINGLE_VALUED}, else the values are joined with
   * `, ` (`cookie` with `; `); `set-cookie` is an array. The object has no prototype, so a
   * field named `__proto__` is a field like any other.
   */
  get headers(): Record<string, string | string[]> {
    if (this.#headers !== undefined) return this.#headers;
    const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      const value = raw[i + 1]!;
      const seen = out[name];
      if (name === 'set-cookie') {
        if (seen === undefined) out[name] = [value];
        else (seen as string[]).push(value);
      } else if (seen === undefined) out[name] = value;
      else if (!SINGLE_VALUED.has(name)) out[name] = `${seen as string}${name === 'cookie' ? '; ' : ', '}${value}`;
    }
    return (this.#headers = out);
  }

  /** Part of the body (a view of bytes the socket delivered, never reused); false: stop until `_read`. */
  pushBody(data: Buffer): boolean {
    return this.push(data);
  }

  /** The body was received whole. */
  endBody(): void {
    this.complete = true;
    this.#ended = true;
    this.push(null);
  }

  /** The connection ended before the body did. */
  abort(): void {
    if (this.complete || this.aborted) return;
    this.aborted = true;
    this.emit('aborted');
    const err = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    this.destroy(err);
  }

  /** As Node's request: the error of a destroyed request is emitted only to listeners (an abort nobody watches is not a crash). */
  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    callback(this.listenerCount('error') > 0 ? err : null);
  }

  override _read(): void {
    // A request without a body ends when first read.
    if (this.#onRead === undefined) {
      if (!this.#ended) {
        this.#ended = true;
        this.push(null);
      }
      return;
    }
    this.#onRead();
  }
}
