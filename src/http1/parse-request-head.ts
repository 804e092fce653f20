/**
 * @module
 * The head of an HTTP/1.x request (request line and header fields, RFC 9112 §2–§5),
 * parsed strictly: anything a recipient could read two ways is an error, never a guess.
 * Part of Fairway's own HTTP/1.1 server ({@link Http1Server}); a pure function of the
 * bytes, no I/O.
 *
 * Accepted:
 * - up to {@link MAX_LEADING_EMPTY_LINES} empty lines before the request line (RFC 9112
 *   §2.2; {@link skipEmptyLines});
 * - `method SP request-target SP HTTP/1.x CRLF`, single spaces: a method Node's parser
 *   knows (`http.METHODS`); a target of visible ASCII in one of the four forms (origin
 *   `/…`, absolute `scheme://…`, authority `host:port` for CONNECT only, asterisk);
 *   HTTP/1.0 or HTTP/1.1;
 * - fields `name ":" OWS value OWS CRLF`: the name a token, the value without control
 *   characters but HTAB;
 * - the head ends at the first empty line; every line ends with CRLF.
 *
 * Refused (a {@link Http1ParseError}, which the server answers 400 or 431 and then
 * closes the connection): anything else in the request line; a bare CR or LF;
 * whitespace before a field's colon; obs-fold (a line starting with SP or HTAB); more
 * than one `Content-Length`, one that is not digits, or a tab around it;
 * `Content-Length` together with `Transfer-Encoding`; a `Transfer-Encoding` whose last
 * coding is not `chunked` (RFC 9112 §6.3: the length cannot be known), that has
 * `chunked` twice, or has a tab around it; a head longer than `maxHeaderSize` bytes
 * (request line and fields).
 *
 * Never more lenient than Node's own parser (llhttp): test/http1-parser.test.ts sends
 * the same heads, valid and mutated, to both. The error codes are named as llhttp's
 * (`HPE_…`), so the router answers a bad request the same whichever server parsed it.
 */
import { METHODS } from 'node:http';

/** What the router reads of a request head. */
export interface RequestHead {
  readonly method: string;
  /** The request-target as sent (origin, absolute, authority or asterisk form). */
  readonly url: string;
  readonly versionMajor: number;
  readonly versionMinor: number;
  /** `[name, value, …]` as received (names in their case), at most `maxHeadersCount` fields. */
  readonly rawHeaders: string[];
  /** Bytes of the head, its final empty line included: where the body starts. */
  readonly size: number;
  /** The connection may carry another request after this one (HTTP/1.1 without `close`, or HTTP/1.0 with `keep-alive`). */
  readonly keepAlive: boolean;
  /** The body's length from `Content-Length`; -1 without one. */
  readonly contentLength: number;
  /** The body is chunked (`Transfer-Encoding` ending in `chunked`). */
  readonly chunked: boolean;
  /** `Connection: upgrade` with an `Upgrade` field: the connection is to be handed over. */
  readonly upgrade: boolean;
  /** The `Expect` field's value, lowercased, if any. */
  readonly expect: string | undefined;
}

/** A request head that cannot be parsed; `code` names the fault as Node's parser does (`HPE_…`). */
export class Http1ParseError extends Error {
  readonly code: string;
  /** Bytes of the connection's input consumed before the fault (for Node's `bytesParsed`). */
  readonly bytesParsed: number;

  constructor(code: string, message: string, bytesParsed: number) {
    super(message);
    this.name = 'Http1ParseError';
    this.code = code;
    this.bytesParsed = bytesParsed;
  }
}

export interface HeadLimits {
  /** Most bytes of request line and fields together (`--max-http-header-size`). */
  readonly maxHeaderSize: number;
  /** Most fields kept in `rawHeaders`; the others are parsed and checked, not kept (Node's `maxHeadersCount`). 0: no limit. */
  readonly maxHeadersCount: number;
}

/** Empty lines skipped before a request line (RFC 9112 §2.2 asks for at least one). */
export const MAX_LEADING_EMPTY_LINES = 8;

/** tchar (RFC 9110 §5.6.2), by character code. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;
/** Characters of a request-target: visible ASCII (Node's parser refuses other bytes too). */
const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;
/** The methods Node's parser knows (llhttp's list); any other token is refused, as there. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);
/** The start of an absolute-form target: a scheme and `://` (RFC 3986 §3.1). */
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/** An authority-form target (CONNECT): host and port, nothing else. */
const AUTHORITY_FORM = /^[^/?#@\s]+:[0-9]+$/;
/** Characters of a field value: HTAB, SP, visible ASCII, obs-text. */
const FIELD_VALUE = new Uint8Array(256);
FIELD_VALUE[9] = 1;
for (let c = 0x20; c <= 0x7e; c++) FIELD_VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_VALUE[c] = 1;

/** True when the byte `c` is a token character (tchar, RFC 9110 §5.6.2). */
export function isTokenCode(c: number): boolean {
  return TOKEN[c] === 1;
}

/** True when the byte `c` may be in a request-target. */
export function isTargetCode(c: number): boolean {
  return TARGET[c] === 1;
}

/** True when the byte `c` may be in a field value. */
export function isFieldValueCode(c: number): boolean {
  return FIELD_VALUE[c] === 1;
}

/** True when `name` is a token (RFC 9110 §5.6.2). */
export function isToken(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c > 0xff || TOKEN[c] === 0) return false;
  }
  return true;
}

/** True when `value` may be sent as a field value (no control characters but HTAB, no characters above 0xff). */
export function isFieldValue(value: string): boolean {
  const n = value.length;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c > 0xff || FIELD_VALUE[c] === 0) return false;
  }
  return true;
}

/**
 * Where a request starts in `buf[start..end)`: after the empty lines that may precede it
 * (RFC 9112 §2.2). -1 when more than {@link MAX_LEADING_EMPTY_LINES} came; `end` when the
 * bytes so far are all empty lines (or a CR whose LF has not arrived).
 */
export function skipEmptyLines(buf: Buffer, start: number, end: number): number {
  let p = start;
  for (let lines = 0; p < end && buf[p] === 13; lines++) {
    if (p + 1 === end) return end;
    if (buf[p + 1] !== 10) return p; // a bare CR: the parser refuses it
    if (lines === MAX_LEADING_EMPTY_LINES) return -1;
    p += 2;
  }
  return p;
}

/**
 * Where the head that starts at `start` (after {@link skipEmptyLines}) ends in `buf`, up
 * to `end`: the index after its empty line; -1 when it has not all arrived. `from` is
 * where the previous search stopped, so bytes are not scanned twice as a head arrives in
 * pieces.
 */
export function findHeadEnd(buf: Buffer, start: number, end: number, from: number): number {
  const at = buf.indexOf(CRLFCRLF, Math.max(start, from - 3));
  if (at === -1 || at + 4 > end) return -1;
  return at + 4;
}
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * Parses the head in `buf[start..headEnd)`: `start` after {@link skipEmptyLines},
 * `headEnd` what {@link findHeadEnd} returned. Throws {@link Http1ParseError}. `consumed` is what the connection consumed
 * before `start` (for the error's `bytesParsed`).
 */
export function parseRequestHead(buf: Buffer, start: number, headEnd: number, limits: HeadLimits, consumed = 0): RequestHead {
  // Latin-1: one character per byte, so string offsets are byte offsets.
  const text = buf.toString('latin1', start, headEnd);
  const fail = (code: string, message: string, at: number): never => {
    throw new Http1ParseError(code, message, consumed + at);
  };
  // The head without its final CRLF CRLF must fit the limit.
  if (text.length - 4 > limits.maxHeaderSize) fail('HPE_HEADER_OVERFLOW', 'request head larger than the limit', 0);
  let p = 0;

  // Request line.
  const sp1 = text.indexOf(' ', p);
  const lineEnd = text.indexOf('\r\n', p);
  if (sp1 === -1 || sp1 > lineEnd) fail('HPE_INVALID_METHOD', 'request line without a target', p);
  const method = text.slice(p, sp1);
  if (!KNOWN_METHODS.has(method)) fail('HPE_INVALID_METHOD', 'invalid method', p);
  const targetStart = sp1 + 1;
  let q = targetStart;
  while (q < lineEnd && TARGET[text.charCodeAt(q)] === 1) q++;
  if (q === targetStart) fail('HPE_INVALID_URL', 'empty request target', q);
  if (q === lineEnd || text.charCodeAt(q) !== 32) fail('HPE_INVALID_URL', 'invalid character in the request target', q);
  const url = text.slice(targetStart, q);
  // One of the four forms (RFC 9112 §3.2): origin (`/…`), absolute (`scheme://…`), authority (CONNECT only), asterisk.
  const form = url.charCodeAt(0) === 47 ? true
    : method === 'CONNECT' ? AUTHORITY_FORM.test(url)
    : url === '*' || ABSOLUTE_FORM.test(url);
  if (!form) fail('HPE_INVALID_URL', 'request target in none of the four forms', targetStart);
  const v = q + 1;
  // "HTTP/1.1" or "HTTP/1.0", then the line's end: the versions this server speaks (others get 400, not a guess).
  if (lineEnd - v !== 8 || !text.startsWith('HTTP/1.', v)) fail('HPE_INVALID_VERSION', 'invalid HTTP version', v);
  const versionMajor = 1;
  const versionMinor = text.charCodeAt(v + 7) - 48;
  if (versionMinor !== 0 && versionMinor !== 1) fail('HPE_INVALID_VERSION', 'unsupported HTTP version', v);
  // A CR or LF inside the line was caught above: the target has neither, the method is a known token, the version fixed.

  // Header fields.
  const rawHeaders: string[] = [];
  const maxFields = limits.maxHeadersCount > 0 ? limits.maxHeadersCount : Infinity;
  let fields = 0;
  let contentLength = -1;
  let lengthSeen = false;
  let transferEncoding: string | undefined;
  let connection: string | undefined;
  let upgradeField = false;
  let expect: string | undefined;
  p = lineEnd + 2;
  const last = text.length - 2; // the final empty line's CRLF
  while (p < last) {
    const eol = text.indexOf('\r\n', p);
    const first = text.charCodeAt(p);
    if (first === 32 || first === 9) fail('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding in a header field', p);
    let c = p;
    while (c < eol && TOKEN[text.charCodeAt(c)] === 1) c++;
    if (c === p || c === eol || text.charCodeAt(c) !== 58) fail('HPE_INVALID_HEADER_TOKEN', 'invalid header field name', c);
    const name = text.slice(p, c);
    let a = c + 1;
    let b = eol;
    while (a < b && (text.charCodeAt(a) === 32 || text.charCodeAt(a) === 9)) a++;
    while (b > a && (text.charCodeAt(b - 1) === 32 || text.charCodeAt(b - 1) === 9)) b--;
    for (let i = a; i < b; i++) {
      const ch = text.charCodeAt(i);
      if (FIELD_VALUE[ch] === 0) {
        fail(ch === 10 ? 'HPE_CR_EXPECTED' : ch === 13 ? 'HPE_LF_EXPECTED' : 'HPE_INVALID_HEADER_TOKEN', 'invalid character in a header field value', i);
      }
    }
    const value = text.slice(a, b);
    // The fields that frame or hand over the connection, by length first (most fields are none of them).
    switch (name.length) {
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (text.slice(c + 1, eol).includes('\t')) fail('HPE_INVALID_CONTENT_LENGTH', 'a tab around Content-Length', c + 1);
          if (lengthSeen) fail('HPE_UNEXPECTED_CONTENT_LENGTH', 'more than one Content-Length', p);
          lengthSeen = true;
          if (value.length === 0 || value.length > 15) fail('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length', a);
          for (let i = 0; i < value.length; i++) {
            const d = value.charCodeAt(i);
            if (d < 48 || d > 57) fail('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length', a + i);
          }
          contentLength = Number(value);
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          if (text.slice(c + 1, eol).includes('\t')) fail('HPE_INVALID_TRANSFER_ENCODING', 'a tab around Transfer-Encoding', c + 1);
          transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
        }
        break;
      case 10:
        if (name.toLowerCase() === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') upgradeField = true;
        break;
      case 6:
        if (name.toLowerCase() === 'expect') expect = value.toLowerCase();
        break;
    }
    if (fields < maxFields) rawHeaders.push(name, value);
    fields++;
    p = eol + 2;
  }

  let chunked = false;
  if (transferEncoding !== undefined) {
    if (lengthSeen) fail('HPE_INVALID_TRANSFER_ENCODING', 'Content-Length together with Transfer-Encoding', 0);
    const codings = transferEncoding.split(',').map((coding) => coding.trim().toLowerCase());
    // chunked last (RFC 9112 §6.3) and once (§7: it must not be applied twice).
    if (codings[codings.length - 1] !== 'chunked' || codings.indexOf('chunked') !== codings.length - 1) {
      fail('HPE_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding whose last coding, and only that one, is not chunked', 0);
    }
    chunked = true;
  }
  let close = false;
  let keepAliveToken = false;
  let upgradeToken = false;
  if (connection !== undefined) {
    for (const token of connection.split(',')) {
      const t = token.trim().toLowerCase();
      if (t === 'close') close = true;
      else if (t === 'keep-alive') keepAliveToken = true;
      else if (t === 'upgrade') upgradeToken = true;
    }
  }
  // RFC 9112 §9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive`.
  const keepAlive = versionMajor === 1 && !close && (versionMinor >= 1 || keepAliveToken);
  const upgrade = (upgradeToken && upgradeField) || method === 'CONNECT';
  return {
    method, url, versionMajor, versionMinor, rawHeaders, size: headEnd - start, keepAlive, contentLength, chunked, upgrade, expect,
  };
}
