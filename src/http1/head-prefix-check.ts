/**
 * @module
 * The bytes of a request head that has not all arrived, checked as they come: a head that
 * can no longer become valid is refused at its first wrong byte — garbage, a TLS
 * ClientHello sent to the plain port, a bare LF — as Node's parser does, instead of
 * holding the connection until `timeouts.clientHeaders`.
 *
 * Only what each byte's place allows is checked (the request line's syntax and known
 * methods, field-name and field-value characters, CRLF line ends, no obs-fold); the head
 * as a whole (framing fields, forms of the target) is judged by {@link parseRequestHead}
 * once it is complete. A head that arrives in one piece never comes here.
 *
 * Lifecycle: one per request head; {@link HeadPrefixCheck.feed} with each new run of
 * bytes, in order. Linear in the head's size however it is split.
 */
import { METHODS } from 'node:http';
import { Http1ParseError, isFieldValueCode, isTargetCode, isTokenCode, KNOWN_METHODS } from './parse-request-head.js';

const METHOD = 0;
const TARGET = 1;
const VERSION = 2;
const LINE_START = 3;
const NAME = 4;
const VALUE = 5;
const LINE_LF = 6;
/** The empty line that ends the head began: the full parse takes over. */
const END = 7;

/** Every beginning of a known method: a method is refused at its first byte that leaves them. */
const METHOD_PREFIXES = new Set(METHODS.flatMap((m) => Array.from({ length: m.length }, (_, n) => m.slice(0, n + 1))));
/** What the version part of the request line must be, byte by byte; the digit after the dot is checked apart. */
const VERSION_PREFIX = 'HTTP/1.';

export class HeadPrefixCheck {
  #state = METHOD;
  #method = '';
  #partBytes = 0;
  #targetBytes = 0;
  /** Bytes checked so far (for errors' `bytesParsed`, from the head's start). */
  #offset = 0;

  /** Checks `buf[from..end)`, the bytes after those fed before. Throws {@link Http1ParseError} at the first that cannot belong to a valid head. */
  feed(buf: Buffer, from: number, end: number, consumed: number): void {
    const base = consumed + this.#offset - from;
    for (let i = from; i < end && this.#state !== END; i++) {
      const c = buf[i]!;
      const fail = (code: string, message: string): never => {
        throw new Http1ParseError(code, message, base + i);
      };
      switch (this.#state) {
        case METHOD:
          if (c === 32) {
            if (!KNOWN_METHODS.has(this.#method)) fail('HPE_INVALID_METHOD', 'invalid method');
            this.#state = TARGET;
          } else {
            this.#method += String.fromCharCode(c);
            if (!METHOD_PREFIXES.has(this.#method)) fail('HPE_INVALID_METHOD', 'invalid method');
          }
          break;
        case TARGET:
          if (c === 32) {
            if (this.#targetBytes === 0) fail('HPE_INVALID_URL', 'empty request target');
            this.#state = VERSION;
            this.#partBytes = 0;
          } else if (!isTargetCode(c)) fail('HPE_INVALID_URL', 'invalid character in the request target');
          else this.#targetBytes++;
          break;
        case VERSION: {
          const n = this.#partBytes++;
          if (n < VERSION_PREFIX.length) {
            if (c !== VERSION_PREFIX.charCodeAt(n)) fail('HPE_INVALID_VERSION', 'invalid HTTP version');
          } else if (n === VERSION_PREFIX.length) {
            if (c !== 48 && c !== 49) fail('HPE_INVALID_VERSION', 'unsupported HTTP version');
          } else if (c === 13) this.#state = LINE_LF;
          else fail('HPE_INVALID_VERSION', 'invalid HTTP version');
          break;
        }
        case LINE_LF:
          if (c !== 10) fail('HPE_LF_EXPECTED', 'a line not ended by CRLF');
          this.#state = LINE_START;
          break;
        case LINE_START:
          if (c === 13) this.#state = END;
          else if (c === 32 || c === 9) fail('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding in a header field');
          else if (!isTokenCode(c)) fail('HPE_INVALID_HEADER_TOKEN', 'invalid header field name');
          else this.#state = NAME;
          break;
        case NAME:
          if (c === 58 /* : */) this.#state = VALUE;
          else if (!isTokenCode(c)) fail('HPE_INVALID_HEADER_TOKEN', 'invalid header field name');
          break;
        case VALUE:
          if (c === 13) this.#state = LINE_LF;
          else if (c === 10) fail('HPE_CR_EXPECTED', 'a line not ended by CRLF');
          else if (!isFieldValueCode(c)) fail('HPE_INVALID_HEADER_TOKEN', 'invalid character in a header field value');
          break;
      }
    }
    this.#offset += end - from;
  }
}
