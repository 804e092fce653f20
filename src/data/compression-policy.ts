/**
 * @module
 * Response compression, compiled once per route table from the router-wide
 * {@link CompressionSettings}: which coding a client gets (`Accept-Encoding`, q-values
 * honoured), which responses qualify, the header rewrite of a compressed response, and
 * the encoders. The hot path reads memory only: a client's `Accept-Encoding` and a
 * response's `Content-Type` are parsed once per distinct value and remembered in small
 * bounded maps (browsers send a handful of distinct values).
 *
 * Negotiation (RFC 9110 §12.5.3): each offered coding (`br`, `gzip`; `x-gzip` is
 * `gzip`) gets the q-value the client gave it, else the q of `*`, else 0; the highest q
 * above 0 wins, ties going to the earlier coding in `encodings` (`br` first by default).
 * No acceptable coding: the response is sent as it is (`identity;q=0` does not turn that
 * into a 406). Malformed q-values drop their entry.
 *
 * A response qualifies when its status has a body (not 204, 206 or 304), the upstream
 * did not encode it (`Content-Encoding` absent or `identity`), it does not say
 * `Cache-Control: no-transform`, its media type is listed (or the list has `*`) and is
 * not a type that is compressed already (images other than SVG and icons, audio, video,
 * WOFF fonts, archives), and its `Content-Length`, when given, is at least `minLength`.
 * For a client that accepts a coding, a qualifying type gets `Vary: Accept-Encoding`,
 * compressed or not (a response to other clients is left as it is). A compressed
 * response loses `Content-Length` and `Accept-Ranges`, gets `Content-Encoding`, and a
 * strong `ETag` becomes weak (`W/"…"`): the bytes differ from the upstream's.
 */
import { constants, createBrotliCompress, createGzip, brotliCompressSync, gzipSync, type BrotliOptions, type ZlibOptions } from 'node:zlib';
import type { Transform } from 'node:stream';
import type { CompressionSettings } from '../model.js';

export type Encoding = 'br' | 'gzip';

/** Distinct `Accept-Encoding` / `Content-Type` values remembered; a memo starts over when full. */
const MEMO_LIMIT = 256;
/** brotli window: 2^19 = 512 KB per stream (ngx_brotli's default), instead of brotli's 4 MB. */
const BROTLI_WINDOW = 19;
const BROTLI_MIN_WINDOW = 10;
const GZIP_MIN_WINDOW = 9;
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/** Media types that are compressed already: compressing them again only costs CPU. */
const PRECOMPRESSED = new Set([
  'application/zip', 'application/gzip', 'application/x-gzip', 'application/x-bzip2', 'application/x-xz', 'application/zstd',
  'application/x-7z-compressed', 'application/x-rar-compressed', 'application/vnd.rar', 'application/x-compress',
  'application/x-brotli', 'font/woff', 'font/woff2', 'application/font-woff',
]);
/** Image types that are not compressed already. */
const PLAIN_IMAGES = new Set(['image/svg+xml', 'image/x-icon', 'image/vnd.microsoft.icon', 'image/bmp']);

/** Whether `type` (lower case, no parameters) is compressed already. */
export function precompressed(type: string): boolean {
  if (PRECOMPRESSED.has(type)) return true;
  if (type.startsWith('image/')) return !PLAIN_IMAGES.has(type);
  return type.startsWith('video/') || type.startsWith('audio/');
}

/**
 * The coding of `offered` that `acceptEncoding` (an `Accept-Encoding` value) prefers, or
 * undefined when none is acceptable. See the module comment for the rules.
 */
export function negotiate(acceptEncoding: string, offered: readonly Encoding[]): Encoding | undefined {
  let star = -1;
  let br = -1;
  let gzip = -1;
  for (const part of acceptEncoding.split(',')) {
    const semi = part.indexOf(';');
    const name = (semi < 0 ? part : part.slice(0, semi)).trim().toLowerCase();
    if (name === '') continue;
    let q = 1;
    if (semi >= 0) {
      const params = part.slice(semi + 1).split(';');
      let valid = true;
      for (const param of params) {
        const eq = param.indexOf('=');
        if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'q') continue;
        const value = param.slice(eq + 1).trim();
        if (QVALUE.test(value)) q = Number(value);
        else valid = false;
      }
      if (!valid) continue;
    }
    if (name === 'br') br = Math.max(br, q);
    else if (name === 'gzip' || name === 'x-gzip') gzip = Math.max(gzip, q);
    else if (name === '*') star = Math.max(star, q);
  }
  let best: Encoding | undefined;
  let bestQ = 0;
  for (const coding of offered) {
    const listed = coding === 'br' ? br : gzip;
    const q = listed >= 0 ? listed : star >= 0 ? star : 0;
    if (q > bestQ) {
      best = coding;
      bestQ = q;
    }
  }
  return best;
}

/** The media type of a `Content-Type` value: lower case, without parameters. */
function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

export class CompressionPolicy {
  /** Bodies shorter than this are sent as they are. */
  readonly minLength: number;
  readonly #offered: readonly Encoding[];
  readonly #types: ReadonlySet<string>;
  readonly #anyType: boolean;
  /** One-shot options by window size (index: log2 of the window), sized to the body: a smaller window costs less to set up. */
  readonly #gzip: ZlibOptions[] = [];
  readonly #gzipStream: ZlibOptions;
  readonly #brotli: BrotliOptions[] = [];
  readonly #brotliStream: BrotliOptions;
  readonly #negotiated = new Map<string, Encoding | null>();
  readonly #compressible = new Map<string, boolean>();

  constructor(settings: CompressionSettings) {
    this.minLength = settings.minLength;
    this.#offered = [...settings.encodings];
    this.#types = new Set(settings.types.map((t) => t.toLowerCase()));
    this.#anyType = this.#types.has('*');
    for (let bits = GZIP_MIN_WINDOW; bits <= 15; bits++) this.#gzip[bits] = { level: settings.gzipLevel, windowBits: bits };
    for (let bits = BROTLI_MIN_WINDOW; bits <= BROTLI_WINDOW; bits++) {
      this.#brotli[bits] = { params: { [constants.BROTLI_PARAM_QUALITY]: settings.brotliLevel, [constants.BROTLI_PARAM_LGWIN]: bits } };
    }
    // Streams flush after every chunk the upstream sends, so compression never holds back
    // a streamed response (a few bytes per flush; nothing for a body sent in one piece).
    this.#gzipStream = { level: settings.gzipLevel, flush: constants.Z_SYNC_FLUSH };
    this.#brotliStream = {
      params: { [constants.BROTLI_PARAM_QUALITY]: settings.brotliLevel, [constants.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW },
      flush: constants.BROTLI_OPERATION_FLUSH,
    };
  }

  /** The coding for a client's `Accept-Encoding`, or undefined (send as it is). */
  negotiate(acceptEncoding: string): Encoding | undefined {
    let known = this.#negotiated.get(acceptEncoding);
    if (known === undefined) {
      known = negotiate(acceptEncoding, this.#offered) ?? null;
      if (this.#negotiated.size >= MEMO_LIMIT) this.#negotiated.clear();
      this.#negotiated.set(acceptEncoding, known);
    }
    return known ?? undefined;
  }

  /** Whether a response with this `Content-Type` value is compressed (type listed, not compressed already). */
  compressible(contentType: string): boolean {
    let known = this.#compressible.get(contentType);
    if (known === undefined) {
      const type = mediaType(contentType);
      known = type !== '' && !precompressed(type) && (this.#types.has(type) || (this.#anyType && type !== 'application/octet-stream'));
      if (this.#compressible.size >= MEMO_LIMIT) this.#compressible.clear();
      this.#compressible.set(contentType, known);
    }
    return known;
  }

  /**
   * Decides for a response to a client that accepts a coding: `headers` are the flat
   * `[name, value, …]` headers about to be sent. Returns undefined when the response is
   * sent as it is, else its `Content-Length` (−1 when it has none). Adds
   * `Vary: Accept-Encoding` to `headers` when the type qualifies, whatever the answer.
   */
  select(status: number, headers: string[]): number | undefined {
    if (status === 204 || status === 206 || status === 304) return undefined;
    let type: string | undefined;
    let length = -1;
    let vary = -1;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      const value = headers[i + 1]!;
      if (name === 'content-type') type ??= value;
      else if (name === 'content-length') length = /^\d+$/.test(value.trim()) ? Number(value) : -1;
      else if (name === 'content-encoding') {
        const v = value.trim().toLowerCase();
        if (v !== '' && v !== 'identity') return undefined;
      } else if (name === 'cache-control') {
        if (value.toLowerCase().includes('no-transform')) return undefined;
      } else if (name === 'content-range') return undefined;
      else if (name === 'vary' && vary < 0) vary = i;
    }
    if (type === undefined || !this.compressible(type)) return undefined;
    if (vary < 0) headers.push('vary', 'Accept-Encoding');
    else {
      const v = headers[vary + 1]!;
      const lower = v.toLowerCase();
      if (!lower.includes('accept-encoding') && v.trim() !== '*') headers[vary + 1] = v.trim() === '' ? 'Accept-Encoding' : `${v}, Accept-Encoding`;
    }
    return length >= 0 && length < this.minLength ? undefined : length;
  }

  /** A streaming encoder for `encoding`, flushing after each write. */
  encoder(encoding: Encoding): Transform {
    return encoding === 'br' ? createBrotliCompress(this.#brotliStream) : createGzip(this.#gzipStream);
  }

  /** `body` compressed in one go (for bodies small enough to hold). */
  compress(encoding: Encoding, body: Buffer): Buffer {
    // The smallest window holding the whole body: the same output, less memory to set up.
    const bits = Math.ceil(Math.log2(Math.max(body.length, 2)));
    return encoding === 'br'
      ? brotliCompressSync(body, this.#brotli[Math.min(Math.max(bits, BROTLI_MIN_WINDOW), BROTLI_WINDOW)])
      : gzipSync(body, this.#gzip[Math.min(Math.max(bits, GZIP_MIN_WINDOW), 15)]);
  }
}

/**
 * Rewrites a qualifying response's headers for `encoding`: drops `Content-Length` and
 * `Accept-Ranges`, weakens a strong `ETag`, adds `Content-Encoding`.
 */
export function compressedHeaders(headers: string[], encoding: Encoding): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const name = headers[i]!.toLowerCase();
    if (name === 'content-length' || name === 'accept-ranges') headers.splice(i, 2);
    else if (name === 'etag') {
      const v = headers[i + 1]!.trim();
      if (v.startsWith('"')) headers[i + 1] = `W/${v}`;
    }
  }
  headers.push('content-encoding', encoding);
}
