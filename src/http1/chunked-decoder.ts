/**
 * @module
 * The chunked transfer coding of a request body (RFC 9112 §7.1), decoded as bytes
 * arrive, strictly: a chunk size is 1–15 hex digits followed by optional extensions
 * (`;…`, skipped) and CRLF; each chunk's data is followed by CRLF; the last chunk
 * (size 0) is followed by trailer fields (`name: value`, checked as header fields), which
 * are read and dropped (RFC 9110 §6.5: a proxy may discard them), and an empty line.
 * Any other byte where one of these is expected is an {@link Http1ParseError}, as are
 * extensions (`HPE_CHUNK_EXTENSIONS_OVERFLOW`, Node's code) or trailers
 * (`HPE_HEADER_OVERFLOW`) longer than the limit the decoder was made with.
 *
 * Lifecycle: one decoder per request body; {@link ChunkedDecoder.decode} as bytes
 * arrive until {@link ChunkedDecoder.done}; what follows the body in the same buffer
 * (a pipelined request) is left unconsumed.
 */
import { Http1ParseError, isFieldValueCode, isTokenCode } from './parse-request-head.js';

// Where the decoder is in the coding.
const SIZE = 0;
const EXTENSION = 1;
const SIZE_LF = 2;
const DATA = 3;
const DATA_CR = 4;
const DATA_LF = 5;
/** At the start of a trailer line (or of the final empty line). */
const TRAILER_START = 6;
/** In a trailer field's name, up to its colon. */
const TRAILER = 7;
const TRAILER_LF = 8;
/** In a trailer field's value. */
const TRAILER_VALUE = 11;
const FINAL_LF = 9;
const DONE = 10;

/** Most hex digits of a chunk size: 15 keep it below 2^60, safe as a double only up to 2^53 (checked). */
const MAX_SIZE_DIGITS = 15;

export class ChunkedDecoder {
  #state = SIZE;
  #size = 0;
  #digits = 0;
  #remaining = 0;
  /** Bytes of chunk extensions so far, and of trailer fields (each bounded by `#maxMetaBytes`). */
  #extensionBytes = 0;
  #meta = 0;
  /** Bytes of the current trailer field's name. */
  #nameBytes = 0;
  readonly #maxMetaBytes: number;
  /** Bytes consumed by earlier calls, for errors' `bytesParsed`. */
  #consumed: number;

  /** `maxMetaBytes`: most bytes of chunk extensions, and of trailer fields (the head's limit, as Node). */
  constructor(maxMetaBytes: number, consumed = 0) {
    this.#maxMetaBytes = maxMetaBytes;
    this.#consumed = consumed;
  }

  /** The body's last chunk and trailers were read. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /**
   * Decodes `buf[start..end)`, calling `onData` with each piece of chunk data (views of
   * `buf`, valid until `buf` is reused), and returns the index after the last byte that
   * belonged to the body: `end`, unless the body ended before. Throws {@link Http1ParseError}.
   */
  decode(buf: Buffer, start: number, end: number, onData: (data: Buffer) => void): number {
    let p = start;
    while (p < end && this.#state !== DONE) {
      const c = buf[p]!;
      switch (this.#state) {
        case SIZE: {
          const d = hexValue(c);
          if (d !== -1) {
            if (++this.#digits > MAX_SIZE_DIGITS) this.#fail('HPE_INVALID_CHUNK_SIZE', 'chunk size too large', p, start);
            this.#size = this.#size * 16 + d;
            p++;
            break;
          }
          if (this.#digits === 0) this.#fail('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size', p, start);
          if (this.#size > Number.MAX_SAFE_INTEGER) this.#fail('HPE_INVALID_CHUNK_SIZE', 'chunk size too large', p, start);
          if (c === 59 /* ; */) this.#state = EXTENSION;
          else if (c === 13) this.#state = SIZE_LF;
          else this.#fail('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size', p, start);
          p++;
          break;
        }
        case EXTENSION:
          // Extensions are skipped, but only visible characters, SP and HTAB may be in them.
          if (c === 13) this.#state = SIZE_LF;
          else if (!isFieldValueCode(c)) this.#fail('HPE_INVALID_CHUNK_SIZE', 'invalid character in a chunk extension', p, start);
          else if (++this.#extensionBytes > this.#maxMetaBytes) this.#fail('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'chunk extensions larger than the limit', p, start);
          p++;
          break;
        case SIZE_LF:
          if (c !== 10) this.#fail('HPE_STRICT', 'chunk size line not ended by CRLF', p, start);
          p++;
          this.#digits = 0;
          if (this.#size === 0) this.#state = TRAILER_START;
          else {
            this.#remaining = this.#size;
            this.#size = 0;
            this.#state = DATA;
          }
          break;
        case DATA: {
          const n = Math.min(this.#remaining, end - p);
          onData(buf.subarray(p, p + n));
          p += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = DATA_CR;
          break;
        }
        case DATA_CR:
          if (c !== 13) this.#fail('HPE_STRICT', 'chunk data not followed by CRLF', p, start);
          this.#state = DATA_LF;
          p++;
          break;
        case DATA_LF:
          if (c !== 10) this.#fail('HPE_STRICT', 'chunk data not followed by CRLF', p, start);
          this.#state = SIZE;
          p++;
          break;
        case TRAILER_START:
          if (c === 13) this.#state = FINAL_LF;
          else if (c === 32 || c === 9) this.#fail('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding in a trailer field', p, start);
          else {
            this.#state = TRAILER;
            this.#nameBytes = 0;
            continue; // the byte is the trailer line's first
          }
          p++;
          break;
        case TRAILER:
          // A field name (a token), then its colon; the first byte was checked not to be the colon.
          if (c === 58 /* : */ && this.#nameBytes > 0) this.#state = TRAILER_VALUE;
          else if (!isTokenCode(c)) this.#fail('HPE_INVALID_HEADER_TOKEN', 'invalid trailer field name', p, start);
          else this.#nameBytes++;
          this.#countMeta(p, start);
          p++;
          break;
        case TRAILER_VALUE:
          if (c === 13) this.#state = TRAILER_LF;
          else if (!isFieldValueCode(c)) this.#fail('HPE_INVALID_HEADER_TOKEN', 'invalid character in a trailer field', p, start);
          else this.#countMeta(p, start);
          p++;
          break;
        case TRAILER_LF:
          if (c !== 10) this.#fail('HPE_STRICT', 'trailer field not ended by CRLF', p, start);
          this.#state = TRAILER_START;
          p++;
          break;
        case FINAL_LF:
          if (c !== 10) this.#fail('HPE_STRICT', 'chunked body not ended by CRLF', p, start);
          this.#state = DONE;
          p++;
          break;
      }
    }
    this.#consumed += p - start;
    return p;
  }

  #countMeta(p: number, start: number): void {
    if (++this.#meta > this.#maxMetaBytes) this.#fail('HPE_HEADER_OVERFLOW', 'trailer fields larger than the limit', p, start);
  }

  #fail(code: string, message: string, p: number, start: number): never {
    throw new Http1ParseError(code, message, this.#consumed + (p - start));
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
