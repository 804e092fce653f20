/**
 * @module
 * Writes one proxied response body to the client compressed — or as it is, when it turns
 * out shorter than the policy's `minLength`. Used by the proxy exchange for a response the
 * {@link CompressionPolicy} selected; it owns the moment the response head is written.
 *
 * Lifecycle, by what is known of the body's length when its headers arrive:
 * - `Content-Length` above {@link ONE_SHOT_LIMIT}: the head (compressed, chunked) is
 *   written at once and the body streams through an encoder that flushes after every
 *   chunk; the encoder's output is piped to the client, so a client that stops reading
 *   stops the encoder, whose full input buffer makes {@link write} return false, which
 *   pauses the upstream (backpressure end to end, bounded memory).
 * - `Content-Length` up to that limit: the body (which undici holds to that length) is
 *   collected, compressed in one go at its end and sent with its compressed length.
 * - no `Content-Length`: up to `minLength` bytes are held; a body that ends before that
 *   is sent as it is (with a `Content-Length`), a longer one streams as above. Only those
 *   few bytes wait for more; what follows flows as it arrives.
 * The encoder is destroyed if the client connection closes first.
 */
import { validateHeaderName, validateHeaderValue, type ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import { compressedHeaders, type CompressionPolicy, type Encoding } from './compression-policy.js';

/** Bodies with a `Content-Length` up to this are compressed in one go rather than streamed. */
export const ONE_SHOT_LIMIT = 16 * 1024;

export class CompressionWriter {
  readonly #res: ServerResponse;
  readonly #policy: CompressionPolicy;
  /** The coding actually used; undefined while undecided or when sent as it is. */
  #encoding: Encoding | undefined;
  readonly #wanted: Encoding;
  readonly #status: number;
  readonly #statusText: string | undefined;
  readonly #headers: string[];
  /** The upstream's Content-Length, −1 when it sent none. */
  readonly #length: number;
  #held: Buffer[] | undefined = [];
  #heldBytes = 0;
  #encoder: Transform | undefined;

  /**
   * `headers` are the response's flat headers (already given `Vary` by the policy);
   * `length` what {@link CompressionPolicy.select} returned. Throws, as `writeHead` would,
   * on a header Node will not send.
   */
  constructor(res: ServerResponse, policy: CompressionPolicy, encoding: Encoding, status: number, statusText: string | undefined, headers: string[], length: number) {
    this.#res = res;
    this.#policy = policy;
    this.#wanted = encoding;
    this.#status = status;
    this.#statusText = statusText;
    this.#headers = headers;
    this.#length = length;
    if (length > ONE_SHOT_LIMIT) {
      this.#stream();
      return;
    }
    // The head is written later: check now what writeHead would refuse then.
    for (let i = 0; i < headers.length; i += 2) {
      validateHeaderName(headers[i]!);
      validateHeaderValue(headers[i]!, headers[i + 1]!);
    }
  }

  /** The coding the body is sent with, once decided (undefined: as it is, or not yet). */
  get encoding(): Encoding | undefined {
    return this.#encoding;
  }

  /** Writes a body chunk. False: the client is behind; `resume` is called when more may be written. */
  write(chunk: Buffer, resume: () => void): boolean {
    const encoder = this.#encoder;
    if (encoder !== undefined) {
      if (encoder.write(chunk)) return true;
      encoder.once('drain', resume);
      return false;
    }
    this.#held!.push(chunk);
    this.#heldBytes += chunk.length;
    const streamNow = this.#length < 0 ? this.#heldBytes >= this.#policy.minLength : this.#heldBytes > ONE_SHOT_LIMIT;
    if (!streamNow) return true;
    const held = this.#held!;
    this.#held = undefined;
    const out = this.#stream();
    let ok = true;
    for (const c of held) ok = out.write(c);
    if (!ok) out.once('drain', resume);
    return ok;
  }

  /** The body is complete. */
  end(): void {
    if (this.#encoder !== undefined) {
      this.#encoder.end();
      return;
    }
    const held = this.#held!;
    this.#held = undefined;
    const body = held.length === 1 ? held[0]! : Buffer.concat(held, this.#heldBytes);
    const res = this.#res;
    if (res.destroyed) return;
    const headers = this.#headers;
    if (body.length < this.#policy.minLength) {
      if (this.#length < 0) headers.push('content-length', String(body.length));
      res.writeHead(this.#status, this.#statusText, headers);
      res.end(body);
      return;
    }
    const encoding = this.#wanted;
    const out = this.#policy.compress(encoding, body);
    compressedHeaders(headers, encoding);
    headers.push('content-length', String(out.length));
    this.#encoding = encoding;
    res.writeHead(this.#status, this.#statusText, headers);
    res.end(out);
  }

  /** Writes the compressed head and starts the encoder, piped to the client. */
  #stream(): Transform {
    const encoding = this.#wanted;
    const res = this.#res;
    compressedHeaders(this.#headers, encoding);
    res.writeHead(this.#status, this.#statusText, this.#headers);
    const encoder = this.#policy.encoder(encoding);
    this.#encoder = encoder;
    this.#encoding = encoding;
    encoder.on('error', () => res.destroy());
    res.once('close', () => encoder.destroy());
    encoder.pipe(res);
    return encoder;
  }
}
