/**
 * Fairway's strict HTTP/1.x request parser (src/http1/parse-request-head.ts) and chunked
 * body decoder (src/http1/chunked-decoder.ts): their contract as unit tests, then a
 * differential test against Node's own parser (llhttp, `insecureHTTPParser: false`) over
 * a hand-written corpus and a seeded mutation fuzz. The rule of the differential test:
 * whatever head Fairway accepts, Node accepts too and reads the same method, target,
 * version and fields. Fairway may refuse more than Node (it is meant to be stricter);
 * those cases are listed as comments.
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ChunkedDecoder } from '../src/http1/chunked-decoder.js';
import { HeadPrefixCheck } from '../src/http1/head-prefix-check.js';
import {
  findHeadEnd,
  Http1ParseError,
  isFieldValue,
  isToken,
  MAX_LEADING_EMPTY_LINES,
  parseRequestHead,
  skipEmptyLines,
  type HeadLimits,
  type RequestHead,
} from '../src/http1/parse-request-head.js';

/** Node's defaults (`--max-http-header-size` 16 KiB, `server.maxHeadersCount` 2000). */
const LIMITS: HeadLimits = { maxHeaderSize: 16 * 1024, maxHeadersCount: 2000 };

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Bytes readable in a test message: printable ASCII as is, everything else escaped (`\r`, `\x00`, `\x80`). */
function show(bytes: Buffer | string): string {
  const s = typeof bytes === 'string' ? bytes : bytes.toString('latin1');
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 13) out += '\\r';
    else if (c === 10) out += '\\n';
    else if (c === 9) out += '\\t';
    else if (c === 92) out += '\\\\';
    else if (c === 34) out += '\\"';
    else if (c < 0x20 || c > 0x7e) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += s[i];
  }
  return `"${out}"`;
}

type FairwayOutcome =
  | { readonly kind: 'accepted'; readonly head: RequestHead; readonly headEnd: number }
  | { readonly kind: 'refused'; readonly code: string; readonly bytesParsed: number }
  | { readonly kind: 'incomplete' };

/**
 * What Fairway's server makes of `bytes` arriving at once on a fresh connection, by the
 * steps Http1Connection takes: skip the empty lines (too many: HPE_INVALID_METHOD), find
 * the head's end (none: still waiting), parse.
 */
function fairway(bytes: Buffer, limits: HeadLimits = LIMITS): FairwayOutcome {
  const start = skipEmptyLines(bytes, 0, bytes.length);
  if (start === -1) return { kind: 'refused', code: 'HPE_INVALID_METHOD', bytesParsed: 0 };
  if (start === bytes.length) return { kind: 'incomplete' };
  const headEnd = findHeadEnd(bytes, start, bytes.length, start);
  if (headEnd === -1) return { kind: 'incomplete' };
  try {
    return { kind: 'accepted', head: parseRequestHead(bytes, start, headEnd, limits), headEnd };
  } catch (err) {
    if (!(err instanceof Http1ParseError)) throw err;
    return { kind: 'refused', code: err.code, bytesParsed: err.bytesParsed };
  }
}

/** The head Fairway reads from `s`; throws when it is not accepted. */
function head(s: string, limits: HeadLimits = LIMITS): RequestHead {
  const o = fairway(latin1(s), limits);
  if (o.kind !== 'accepted') throw new Error(`${show(s)} not accepted: ${JSON.stringify(o)}`);
  return o.head;
}

/** Fairway's error code for `s`, or `accepted` / `incomplete`. */
function verdict(s: string, limits: HeadLimits = LIMITS): string {
  const o = fairway(latin1(s), limits);
  return o.kind === 'refused' ? o.code : o.kind;
}

const GET = 'GET / HTTP/1.1\r\n';
const H = 'Host: app.test\r\n';

// ---------------------------------------------------------------------------------------
// parseRequestHead: the contract

t.test('the request line is read in all four target forms: origin, absolute, asterisk, and authority for CONNECT', async (t) => {
  const origin = head(`GET /a/b?c=d&e=%20#frag HTTP/1.1\r\n${H}\r\n`);
  t.match(origin, { method: 'GET', url: '/a/b?c=d&e=%20#frag', versionMajor: 1, versionMinor: 1, upgrade: false });
  t.equal(head(`GET http://app.test:8080/x?y HTTP/1.1\r\n${H}\r\n`).url, 'http://app.test:8080/x?y', 'absolute form');
  t.match(head(`OPTIONS * HTTP/1.1\r\n${H}\r\n`), { method: 'OPTIONS', url: '*' }, 'asterisk form');
  t.match(head('CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n'), { method: 'CONNECT', url: 'app.test:443', upgrade: true }, 'authority form');
  t.equal(head(`PROPFIND /dav HTTP/1.1\r\n${H}\r\n`).method, 'PROPFIND', 'any token is a method');
});

t.test('size is the bytes of the head with its final empty line, the empty lines before it not included', async (t) => {
  const text = `GET / HTTP/1.1\r\n${H}X: y\r\n\r\n`;
  t.equal(head(text).size, text.length);
  t.equal(head(`\r\n\r\n${text}`).size, text.length);
  t.equal(head(`${GET}\r\n`).size, GET.length + 2, 'a head without fields');
});

t.test('HTTP/1.0 and HTTP/1.1 are read; a lowercase, missing, multi-digit, padded or non-digit version is HPE_INVALID_VERSION', async (t) => {
  t.match(head('GET / HTTP/1.0\r\n\r\n'), { versionMajor: 1, versionMinor: 0 });
  t.match(head('GET / HTTP/1.1\r\n\r\n'), { versionMajor: 1, versionMinor: 1 });
  for (const version of ['http/1.1', 'HTTP/11', 'HTTP/1.10', 'HTTP/1', 'HTTP/1.1 ', 'HTTP/a.1', 'HTTP/1.x', 'HTTP 1.1', 'HTTP/1,1', 'HTTP/1.1\t', '']) {
    t.equal(verdict(`GET / ${version}\r\n${H}\r\n`), 'HPE_INVALID_VERSION', show(version));
  }
});

t.test('keepAlive: HTTP/1.1 by default, not with Connection: close; HTTP/1.0 only with keep-alive; close wins over keep-alive', async (t) => {
  const ka = (version: string, fields = '') => head(`GET / HTTP/${version}\r\n${H}${fields}\r\n`).keepAlive;
  t.equal(ka('1.1'), true, 'HTTP/1.1 persists by default');
  t.equal(ka('1.1', 'Connection: keep-alive\r\n'), true);
  t.equal(ka('1.1', 'Connection: close\r\n'), false, 'Connection: close');
  t.equal(ka('1.1', 'Connection: CLOSE\r\n'), false, 'the token is case-insensitive');
  t.equal(ka('1.1', 'Connection: x-foo ,  close\r\n'), false, 'close among other tokens, with OWS');
  t.equal(ka('1.1', 'Connection: closed\r\n'), true, 'only the whole token counts');
  t.equal(ka('1.0'), false, 'HTTP/1.0 closes by default');
  t.equal(ka('1.0', 'Connection: keep-alive\r\n'), true, 'HTTP/1.0 with keep-alive');
  t.equal(ka('1.0', 'Connection: Keep-Alive\r\n'), true);
  t.equal(ka('1.1', 'Connection: keep-alive, close\r\n'), false, 'close wins over keep-alive in one field');
  t.equal(ka('1.0', 'Connection: close, keep-alive\r\n'), false, 'close wins in HTTP/1.0 too');
  t.equal(ka('1.1', 'Connection: keep-alive\r\nConnection: close\r\n'), false, 'close wins across two Connection fields');
});

t.test('upgrade needs both a Connection: upgrade token and an Upgrade field; CONNECT always upgrades', async (t) => {
  const up = (fields: string, method = 'GET') => head(`${method} / HTTP/1.1\r\n${H}${fields}\r\n`).upgrade;
  t.equal(up('Connection: Upgrade\r\nUpgrade: websocket\r\n'), true);
  t.equal(up('Upgrade: websocket\r\nConnection: keep-alive, upgrade\r\n'), true, 'in either order, among other tokens');
  t.equal(up('Connection: keep-alive\r\nconnection: UPGRADE\r\nupgrade: h2c\r\n'), true, 'across Connection fields, names in any case');
  t.equal(up('Upgrade: websocket\r\n'), false, 'an Upgrade field alone');
  t.equal(up('Connection: upgrade\r\n'), false, 'a Connection: upgrade token alone');
  t.equal(up('Connection: upgraded\r\nUpgrade: websocket\r\n'), false, 'only the whole token counts');
  t.equal(up(''), false);
  t.equal(head('CONNECT app.test:443 HTTP/1.1\r\n\r\n').upgrade, true, 'CONNECT without any field');
});

t.test('expect is the Expect value lowercased, undefined without one', async (t) => {
  t.equal(head(`${GET}${H}Expect: 100-Continue\r\n\r\n`).expect, '100-continue');
  t.equal(head(`${GET}${H}expect:  FOO \r\n\r\n`).expect, 'foo');
  t.equal(head(`${GET}${H}\r\n`).expect, undefined);
});

t.test('framing: contentLength from Content-Length (-1 without), chunked when Transfer-Encoding ends in chunked', async (t) => {
  t.match(head(`${GET}${H}\r\n`), { contentLength: -1, chunked: false });
  t.match(head(`${GET}Content-Length: 0\r\n\r\n`), { contentLength: 0, chunked: false });
  t.match(head(`${GET}Content-Length:  42 \r\n\r\n`), { contentLength: 42 }, 'OWS around the value');
  t.equal(head(`${GET}content-length: 007\r\n\r\n`).contentLength, 7, 'any case, leading zeros');
  t.equal(head(`${GET}Content-Length: 999999999999999\r\n\r\n`).contentLength, 999999999999999, '15 digits');
  t.match(head(`${GET}Transfer-Encoding: chunked\r\n\r\n`), { contentLength: -1, chunked: true });
  t.equal(head(`${GET}Transfer-Encoding: gzip, chunked\r\n\r\n`).chunked, true, 'chunked last in a list');
  t.equal(head(`${GET}Transfer-Encoding: gzip\r\ntransfer-encoding: Chunked\r\n\r\n`).chunked, true, 'chunked last across two fields, any case');
});

t.test('rawHeaders keep names in their case and values with OWS trimmed, in order, repeated fields kept', async (t) => {
  const h = head(`${GET}HOST: app.test\r\nx-A:a\r\nX-b: \t b  c \t\r\nX-Empty:\r\nX-Blank:  \t \r\nx-a: 2\r\nX-Latin: caf\xe9 \x80\xff\r\n\r\n`);
  t.same(h.rawHeaders, ['HOST', 'app.test', 'x-A', 'a', 'X-b', 'b  c', 'X-Empty', '', 'X-Blank', '', 'x-a', '2', 'X-Latin', 'caf\xe9 \x80\xff']);
  const tchars = "!#$%&'*+-.^_`|~09azAZ";
  t.same(head(`${GET}${tchars}: v\r\n\r\n`).rawHeaders, [tchars, 'v'], 'every tchar is allowed in a name');
});

t.test('maxHeadersCount: only the first fields are kept, the others are still checked and still frame the request', async (t) => {
  const two: HeadLimits = { maxHeaderSize: 16 * 1024, maxHeadersCount: 2 };
  const first = `${GET}A: 1\r\nB: 2\r\n`;
  t.same(head(`${first}C: 3\r\nD: 4\r\n\r\n`, two).rawHeaders, ['A', '1', 'B', '2']);
  t.equal(head(`${first}Content-Length: 5\r\n\r\n`, two).contentLength, 5, 'Content-Length beyond the count');
  t.equal(head(`${first}Transfer-Encoding: chunked\r\n\r\n`, two).chunked, true, 'Transfer-Encoding beyond the count');
  t.equal(head(`${first}Connection: close\r\n\r\n`, two).keepAlive, false, 'Connection beyond the count');
  t.equal(head(`${first}Connection: upgrade\r\nUpgrade: websocket\r\n\r\n`, two).upgrade, true, 'an upgrade beyond the count');
  t.equal(head(`${first}Expect: 100-continue\r\n\r\n`, two).expect, '100-continue', 'Expect beyond the count');
  t.equal(verdict(`${first}C: \x00\r\n\r\n`, two), 'HPE_INVALID_HEADER_TOKEN', 'an invalid value beyond the count');
  t.equal(verdict(`${first}C : 3\r\n\r\n`, two), 'HPE_INVALID_HEADER_TOKEN', 'an invalid name beyond the count');
  t.equal(verdict(`${GET}Content-Length: 1\r\nB: 2\r\nContent-Length: 1\r\n\r\n`, two), 'HPE_UNEXPECTED_CONTENT_LENGTH', 'a second Content-Length beyond the count');
  t.equal(verdict(`${first}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`, two), 'HPE_INVALID_TRANSFER_ENCODING', 'Content-Length and Transfer-Encoding beyond the count');
  const many = Array.from({ length: 3000 }, (_, i) => `F${i}: ${i}\r\n`).join('');
  t.equal(head(`${GET}${many}\r\n`, { maxHeaderSize: 1 << 20, maxHeadersCount: 0 }).rawHeaders.length, 6000, '0 keeps every field');
});

t.test('maxHeaderSize bounds the request line and fields (the final CRLF CRLF not counted): over it is HPE_HEADER_OVERFLOW', async (t) => {
  const text = `${GET}${H}X: ${'v'.repeat(100)}\r\n\r\n`;
  const n = text.length - 4;
  t.equal(verdict(text, { maxHeaderSize: n, maxHeadersCount: 0 }), 'accepted', `${n} bytes with a limit of ${n}`);
  t.equal(verdict(text, { maxHeaderSize: n - 1, maxHeadersCount: 0 }), 'HPE_HEADER_OVERFLOW', `${n} bytes with a limit of ${n - 1}`);
  t.equal(verdict(`${GET}X: ${'v'.repeat(20_000)}\r\n\r\n`), 'HPE_HEADER_OVERFLOW', 'a 20 KB field with the default 16 KiB');
});

t.test('a bare LF is refused: ending the request line, ending a field, inside a value; a head of LF-only lines never ends (the connection refuses it early: HeadPrefixCheck)', async (t) => {
  t.equal(verdict(`GET / HTTP/1.1\n${H}\r\n`), 'HPE_INVALID_VERSION', 'ending the request line');
  t.equal(verdict(`${GET}Host: app.test\nX: y\r\n\r\n`), 'HPE_CR_EXPECTED', 'ending a field line');
  t.equal(verdict(`${GET}X: a\nb\r\n\r\n`), 'HPE_CR_EXPECTED', 'inside a value');
  t.equal(verdict(`${GET}X: a\r\n\n`), 'incomplete', 'a final empty line of a bare LF is no end');
  t.equal(verdict('GET / HTTP/1.1\nHost: app.test\n\n'), 'incomplete', 'LF-only lines: no CRLF CRLF, no head');
  t.equal(verdict('GET / HTTP/1.1\nHost: app.test\n\n\r\n\r\n'), 'HPE_INVALID_VERSION', '…refused once a CRLF CRLF arrives');
  t.equal(verdict(`\nGET / HTTP/1.1\r\n\r\n`), 'HPE_INVALID_METHOD', 'a bare LF as an empty line');
});

t.test('a bare CR is refused: in the request line, in a value, before the request line, ending a field line', async (t) => {
  t.equal(verdict(`GET /a\r HTTP/1.1\r\n\r\n`), 'HPE_INVALID_URL', 'in the target');
  t.equal(verdict(`GET\r/ HTTP/1.1\r\n\r\n`), 'HPE_INVALID_METHOD', 'in the method');
  t.equal(verdict(`${GET}X: a\rb\r\n\r\n`), 'HPE_LF_EXPECTED', 'in a value');
  t.equal(verdict(`${GET}X: a\r\r\n\r\n`), 'HPE_LF_EXPECTED', 'before a field line\'s CRLF');
  t.equal(verdict(`${GET}X\r: a\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', 'in a name');
  t.equal(verdict(`\rGET / HTTP/1.1\r\n\r\n`), 'HPE_INVALID_METHOD', 'as an empty line');
  t.equal(verdict(`\r\n\rGET / HTTP/1.1\r\n\r\n`), 'HPE_INVALID_METHOD', 'after an empty line');
});

t.test('whitespace before a field\'s colon is refused with HPE_INVALID_HEADER_TOKEN', async (t) => {
  t.equal(verdict(`${GET}Host : app.test\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', 'SP');
  t.equal(verdict(`${GET}Host\t: app.test\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', 'HTAB');
  t.equal(verdict(`${GET}Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', 'a smuggling shape: Transfer-Encoding<SP>:');
});

t.test('obs-fold (a field line starting with SP or HTAB) is refused with HPE_INVALID_HEADER_TOKEN', async (t) => {
  t.equal(verdict(`${GET}X: a\r\n b\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', 'SP');
  t.equal(verdict(`${GET}X: a\r\n\tb\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', 'HTAB');
  t.equal(verdict(`${GET} Host: app.test\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', 'the first field line');
  t.equal(verdict(`${GET}X: a\r\n Transfer-Encoding: chunked\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', 'a folded Transfer-Encoding');
});

t.test('a request with two Content-Length fields is refused with HPE_UNEXPECTED_CONTENT_LENGTH, equal or not', async (t) => {
  t.equal(verdict(`${GET}Content-Length: 5\r\nContent-Length: 5\r\n\r\n`), 'HPE_UNEXPECTED_CONTENT_LENGTH', 'equal');
  t.equal(verdict(`${GET}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`), 'HPE_UNEXPECTED_CONTENT_LENGTH', 'different');
  t.equal(verdict(`${GET}content-length: 5\r\nCONTENT-LENGTH: 5\r\n\r\n`), 'HPE_UNEXPECTED_CONTENT_LENGTH', 'names in different case');
});

t.test('a Content-Length that is not 1-15 digits is refused with HPE_INVALID_CONTENT_LENGTH', async (t) => {
  for (const value of ['', '-1', '+1', '1.0', '0x10', '1 2', '5, 5', '5,5', '1e3', 'five', '١', '1234567890123456', '5\x00']) {
    t.equal(verdict(`${GET}Content-Length: ${value}\r\n\r\n`), value === '5\x00' ? 'HPE_INVALID_HEADER_TOKEN' : 'HPE_INVALID_CONTENT_LENGTH', show(value));
  }
});

t.test('Content-Length together with Transfer-Encoding is refused with HPE_INVALID_TRANSFER_ENCODING, in either order', async (t) => {
  t.equal(verdict(`${GET}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n`), 'HPE_INVALID_TRANSFER_ENCODING', 'CL then TE');
  t.equal(verdict(`${GET}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n`), 'HPE_INVALID_TRANSFER_ENCODING', 'TE then CL');
  t.equal(verdict(`${GET}Content-Length: 0\r\nTransfer-Encoding: gzip\r\n\r\n`), 'HPE_INVALID_TRANSFER_ENCODING', 'with a TE that does not end in chunked');
});

t.test('a Transfer-Encoding whose last coding is not chunked is refused with HPE_INVALID_TRANSFER_ENCODING', async (t) => {
  for (const value of ['gzip', 'chunked, gzip', 'identity', 'xchunked', 'chunkedx', 'chunked;q=1', 'chunked,', '', 'chunked x']) {
    t.equal(verdict(`POST / HTTP/1.1\r\nTransfer-Encoding: ${value}\r\n\r\n`), 'HPE_INVALID_TRANSFER_ENCODING', show(value));
  }
  t.equal(verdict(`POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n`), 'HPE_INVALID_TRANSFER_ENCODING', 'chunked, then gzip in a second field');
});

t.test('a method that is not a token is refused with HPE_INVALID_METHOD', async (t) => {
  for (const method of ['GE(T', 'GET\x00', 'G\x80T', 'GE/T', '', 'GE\tT', 'GE:T']) {
    t.equal(verdict(`${method} / HTTP/1.1\r\n${H}\r\n`), 'HPE_INVALID_METHOD', show(method));
  }
  t.equal(verdict(`GET\r\n${H}\r\n`), 'HPE_INVALID_METHOD', 'a request line without spaces');
});

t.test('a request-target with a control character, SP, or nothing in it is refused with HPE_INVALID_URL', async (t) => {
  for (const target of ['/a\x00', '/a\x7f', '/a\tb', '/a\x0cb', '/a\x1bb', '\x00', '']) {
    t.equal(verdict(`GET ${target} HTTP/1.1\r\n${H}\r\n`), 'HPE_INVALID_URL', show(target));
  }
  t.equal(verdict(`GET /a b HTTP/1.1\r\n${H}\r\n`), 'HPE_INVALID_VERSION', 'SP inside the target leaves `b HTTP/1.1` where the version goes');
  t.equal(verdict(`GET /\r\n${H}\r\n`), 'HPE_INVALID_URL', 'a request line without a version (HTTP/0.9)');
});

t.test('a field name that is not a token, or a line without a colon, is refused with HPE_INVALID_HEADER_TOKEN', async (t) => {
  for (const line of [':a', 'X\x80: a', 'X(: a', 'X\x00: a', 'X/Y: a', 'NoColon', 'X;a: b', '"X": a']) {
    t.equal(verdict(`${GET}${line}\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', show(line));
  }
});

t.test('a field value with a control character other than HTAB is refused with HPE_INVALID_HEADER_TOKEN', async (t) => {
  for (const value of ['a\x00b', 'a\x7fb', 'a\x0bb', 'a\x0cb', 'a\x1bb', '\x00']) {
    t.equal(verdict(`${GET}X: ${value}\r\n\r\n`), 'HPE_INVALID_HEADER_TOKEN', show(value));
  }
  t.equal(verdict(`${GET}X: a\tb\r\n\r\n`), 'accepted', 'HTAB inside a value');
});

t.test('an error\'s bytesParsed is what the connection consumed before the faulty byte', async (t) => {
  // Two bytes of something else, then one empty line, then the head; 100 bytes consumed before the buffer.
  const buf = latin1(`xx\r\n${GET}X: a\x00\r\n\r\n`);
  const start = skipEmptyLines(buf, 2, buf.length);
  t.equal(start, 4);
  const end = findHeadEnd(buf, start, buf.length, start);
  const err = (() => {
    try {
      parseRequestHead(buf, start, end, LIMITS, 100 + (start - 2));
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.type(err, Http1ParseError);
  t.equal((err as Http1ParseError).code, 'HPE_INVALID_HEADER_TOKEN');
  t.equal((err as Http1ParseError).bytesParsed, 100 + 2 + GET.length + 'X: a'.length, 'consumed + empty line + request line + "X: a"');
  t.equal((err as Http1ParseError).name, 'Http1ParseError');
});

t.test('isToken and isFieldValue: the tchar set, and values without controls but HTAB, nothing above 0xff', async (t) => {
  t.equal(isToken("!#$%&'*+-.^_`|~09azAZ"), true);
  for (const s of ['', 'a b', 'a:b', 'a,b', 'a;b', '\x80', '\xe9', 'a\u0100', '(', '"', '\x7f']) t.equal(isToken(s), false, show(s));
  for (const s of ['', 'a\tb c', 'caf\xe9', '\x80\xff', '!~']) t.equal(isFieldValue(s), true, show(s));
  for (const s of ['a\rb', 'a\nb', '\x00', '\x7f', '\x1f', '\u0100', '\u2028']) t.equal(isFieldValue(s), false, show(s));
});

// ---------------------------------------------------------------------------------------
// skipEmptyLines and findHeadEnd

t.test('skipEmptyLines skips leading CRLFs, waits on a lone CR, stops at a bare CR or LF, refuses too many', async (t) => {
  t.ok(MAX_LEADING_EMPTY_LINES >= 1, 'at least one empty line is skipped (RFC 9112 §2.2)');
  const skip = (s: string, start = 0, end = s.length) => skipEmptyLines(latin1(s), start, end);
  t.equal(skip('GET / HTTP/1.1\r\n'), 0, 'nothing to skip');
  t.equal(skip('\r\n\r\nGET'), 4);
  t.equal(skip('xx\r\nGET', 2), 4, 'from `start`');
  t.equal(skip('\r\n\r'), 3, 'a CR whose LF has not arrived: `end`, wait');
  t.equal(skip('\r\n\r\n'), 4, 'only empty lines so far: `end`');
  t.equal(skip(''), 0, 'nothing at all: `end`');
  t.equal(skip('\r\n\r\nGET', 0, 2), 2, 'bytes after `end` are not looked at');
  t.equal(skip('\r\rGET'), 0, 'a bare CR is left for the parser to refuse');
  t.equal(skip('\r\n\nGET'), 2, 'a bare LF is left for the parser to refuse');
  const lines = (n: number) => '\r\n'.repeat(n);
  t.equal(skip(`${lines(MAX_LEADING_EMPTY_LINES)}GET`), 2 * MAX_LEADING_EMPTY_LINES, `${MAX_LEADING_EMPTY_LINES} empty lines are skipped`);
  t.equal(skip(`${lines(MAX_LEADING_EMPTY_LINES + 1)}GET`), -1, `${MAX_LEADING_EMPTY_LINES + 1} are too many`);
  t.equal(skip(`${lines(MAX_LEADING_EMPTY_LINES)}\r`), 2 * MAX_LEADING_EMPTY_LINES + 1, 'the one too many not complete yet: wait');
  t.equal(verdict(`${lines(MAX_LEADING_EMPTY_LINES)}GET / HTTP/1.1\r\n\r\n`), 'accepted');
  t.equal(verdict(`${lines(MAX_LEADING_EMPTY_LINES + 1)}GET / HTTP/1.1\r\n\r\n`), 'HPE_INVALID_METHOD', 'too many empty lines: refused as the connection does');
});

t.test('findHeadEnd finds the end after the empty line, within [start, end), incrementally with `from`', async (t) => {
  const text = `${GET}${H}X: y\r\n\r\n`;
  const buf = latin1(text);
  t.equal(findHeadEnd(buf, 0, buf.length, 0), text.length);
  t.equal(findHeadEnd(buf, 0, buf.length - 1, 0), -1, 'one byte short');
  t.equal(findHeadEnd(latin1(`${text}GET /2 HTTP/1.1\r\n\r\n`), 0, buf.length, 0), text.length, 'the first head of two');
  const two = latin1(`${text}GET /2 HTTP/1.1\r\n\r\n`);
  t.equal(findHeadEnd(two, text.length, two.length, text.length), two.length, 'the second head, from its start');
  t.equal(findHeadEnd(latin1(`${text}`), 0, text.length - 4, 0), -1, 'an end after `end` is not seen');

  // The head arriving one byte at a time: `end` grows, `from` is where the last search stopped.
  let from = 0;
  let found = -1;
  for (let end = 1; end <= buf.length; end++) {
    found = findHeadEnd(buf, 0, end, from);
    if (found !== -1) {
      t.equal(end, buf.length, 'found only once the last byte arrived');
      break;
    }
    from = end;
  }
  t.equal(found, text.length, 'byte by byte');
  // In two pieces, split at every point (the CRLF CRLF itself split across them).
  const bad: number[] = [];
  for (let split = 0; split < buf.length; split++) {
    if (findHeadEnd(buf, 0, split, 0) !== -1 || findHeadEnd(buf, 0, buf.length, split) !== text.length) bad.push(split);
  }
  t.same(bad, [], 'split anywhere, the second search (from the split) finds the same end');
});

// ---------------------------------------------------------------------------------------
// ChunkedDecoder

interface Decoded {
  readonly body: string;
  /** Where the body ended in the input (the last call's return value). */
  readonly end: number;
  readonly done: boolean;
  readonly error: Http1ParseError | undefined;
}

/** Decodes `input` fed in pieces ending at `cuts` (and at its end); the body's bytes as latin1. */
function decodeIn(input: Buffer, cuts: readonly number[], maxMetaBytes = 1024, consumed = 0): Decoded {
  const decoder = new ChunkedDecoder(maxMetaBytes, consumed);
  const pieces: Buffer[] = [];
  let end = 0;
  let from = 0;
  try {
    for (const cut of [...cuts, input.length]) {
      if (decoder.done) break;
      end = decoder.decode(input, from, cut, (d) => pieces.push(Buffer.from(d)));
      from = cut;
    }
  } catch (err) {
    if (!(err instanceof Http1ParseError)) throw err;
    return { body: Buffer.concat(pieces).toString('latin1'), end, done: decoder.done, error: err };
  }
  return { body: Buffer.concat(pieces).toString('latin1'), end, done: decoder.done, error: undefined };
}
const atOnce = (s: string, max?: number, consumed?: number) => decodeIn(latin1(s), [], max, consumed);
const byteByByte = (s: string, max?: number, consumed?: number) => decodeIn(latin1(s), Array.from({ length: s.length }, (_, i) => i + 1), max, consumed);

/** One chunk of the coding: size in hex, extensions, CRLF, data, CRLF. */
const chunk = (data: string, extensions = '') => `${data.length.toString(16)}${extensions}\r\n${data}\r\n`;

t.test('a chunked body decodes to the same bytes however it is split: at once, one byte at a time, at every split point', async (t) => {
  // Sizes "5", "6", "B" (uppercase hex: the data has no letters), "5", "12c"; two with extensions; CRLF and bytes 0x00, 0xff in the data.
  const pieces = ['hello', ' world', ', 0123\r\n456', '\x00\x01\r\n\xff', 'x'.repeat(300)];
  const body = chunk(pieces[0]!) + chunk(pieces[1]!, ';name=value;x') + chunk(pieces[2]!).toUpperCase() + chunk(pieces[3]!, ';q="a b"') + chunk(pieces[4]!) +
    '0\r\nTrailer: x\r\nT2: y\r\n\r\n';
  const next = 'GET /next HTTP/1.1\r\n\r\n';
  const input = body + next;
  const want = pieces.join('');
  t.same(atOnce(input), { body: want, end: body.length, done: true, error: undefined }, 'at once: the body, and the index where the pipelined request starts');
  t.same(byteByByte(input), { body: want, end: body.length, done: true, error: undefined }, 'one byte at a time');
  const bad: string[] = [];
  for (let split = 0; split <= input.length; split++) {
    const d = decodeIn(latin1(input), [split]);
    if (d.body !== want || d.end !== body.length || !d.done || d.error !== undefined) bad.push(`${split}: ${JSON.stringify(d)}`);
  }
  for (let a = 0; a <= body.length; a += 3) {
    for (let b = a; b <= body.length; b += 5) {
      const d = decodeIn(latin1(input), [a, b]);
      if (d.body !== want || d.end !== body.length || !d.done || d.error !== undefined) bad.push(`${a},${b}: ${JSON.stringify(d)}`);
    }
  }
  t.same(bad, [], 'every split point, and pairs of them');
});

t.test('chunk data is handed over as views of the input, and the decoder consumes nothing once done', async (t) => {
  const input = latin1('3\r\nabc\r\n0\r\n\r\nrest');
  const decoder = new ChunkedDecoder(64);
  const views: Buffer[] = [];
  const end = decoder.decode(input, 0, input.length, (d) => views.push(d));
  t.equal(end, input.length - 4);
  t.equal(decoder.done, true);
  t.equal(views.length, 1);
  t.equal(views[0]?.buffer, input.buffer, 'a view, not a copy');
  t.equal(views[0]?.toString('latin1'), 'abc');
  t.equal(decoder.decode(input, end, input.length, () => t.fail('no data after the end')), end, 'done: returns `start`');
  const empty = atOnce('0\r\n\r\n');
  t.same(empty, { body: '', end: 5, done: true, error: undefined }, 'an empty body');
  t.same(atOnce('5\r\nhel'), { body: 'hel', end: 6, done: false, error: undefined }, 'a body not all arrived: not done, everything consumed');
});

t.test('chunk sizes: hex in either case, leading zeros, up to 15 digits; extensions are skipped; trailers are dropped', async (t) => {
  t.equal(atOnce('a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n').body, '01234567890123456789a');
  t.equal(atOnce('000000000000005\r\nhello\r\n0\r\n\r\n').body, 'hello', '15 digits');
  t.equal(atOnce('5;a=b;c="d e";\tf\r\nhello\r\n0;last\r\n\r\n').body, 'hello', 'extensions, on the last chunk too');
  t.equal(atOnce('0\r\nA: b\r\nC: d\r\n\r\nX').end, '0\r\nA: b\r\nC: d\r\n\r\n'.length, 'trailers are read to the final empty line, not beyond');
  t.equal(atOnce('0\r\nA: b\r\nC: d\r\n\r\n').body, '', 'trailer bytes are not data');
});

t.test('a chunk size that is not 1-15 hex digits, or too large, is refused with HPE_INVALID_CHUNK_SIZE', async (t) => {
  const cases: [string, string][] = [
    ['x\r\n', 'not hex'],
    ['\r\n', 'empty'],
    [';ext\r\n', 'an extension without a size'],
    ['5 \r\nhello\r\n0\r\n\r\n', 'SP after the size'],
    [' 5\r\nhello\r\n0\r\n\r\n', 'SP before the size'],
    ['-5\r\n', 'negative'],
    ['0x5\r\nhello\r\n', '0x prefix'],
    ['5\nhello\r\n0\r\n\r\n', 'a bare LF after the size'],
    ['0000000000000005\r\nhello\r\n', '16 digits'],
    ['fffffffffffffff\r\n', '15 digits beyond 2^53'],
    ['5;a\x00\r\nhello\r\n', 'a NUL in an extension'],
    ['5;a\nb\r\nhello\r\n', 'a bare LF in an extension'],
    ['5;a\x7f\r\nhello\r\n', 'a DEL in an extension'],
  ];
  for (const [input, what] of cases) {
    t.equal(atOnce(input).error?.code, 'HPE_INVALID_CHUNK_SIZE', `${what}: ${show(input)}`);
    t.equal(byteByByte(input).error?.code, 'HPE_INVALID_CHUNK_SIZE', `${what}, byte by byte`);
  }
});

t.test('CRLF is required after the size line, after each chunk\'s data and after the trailers: else HPE_STRICT', async (t) => {
  const cases: [string, string][] = [
    ['5\rxhello\r\n', 'CR without LF after the size'],
    ['5\r\nhelloX\r\n0\r\n\r\n', 'data longer than its size'],
    ['5\r\nhello\n0\r\n\r\n', 'a bare LF after the data'],
    ['5\r\nhello\rX0\r\n\r\n', 'CR without LF after the data'],
    ['5\r\nhello0\r\n\r\n', 'no CRLF after the data'],
    ['0\r\n\rX', 'CR without LF at the end'],
    ['0\r\nA: b\rX\r\n\r\n', 'CR without LF after a trailer'],
  ];
  for (const [input, what] of cases) {
    t.equal(atOnce(input).error?.code, 'HPE_STRICT', `${what}: ${show(input)}`);
    t.equal(byteByByte(input).error?.code, 'HPE_STRICT', `${what}, byte by byte`);
  }
});

t.test('trailers: obs-fold and control characters are refused with HPE_INVALID_HEADER_TOKEN', async (t) => {
  for (const input of ['0\r\nA: b\r\n c\r\n\r\n', '0\r\n\tA: b\r\n\r\n', '0\r\nA: b\x00\r\n\r\n', '0\r\nA: b\nC: d\r\n\r\n', '0\r\n\n']) {
    t.equal(atOnce(input).error?.code, 'HPE_INVALID_HEADER_TOKEN', show(input));
  }
});

t.test('chunk extensions over the decoder\'s limit are refused with HPE_CHUNK_EXTENSIONS_OVERFLOW (Node\'s code), trailer fields with HPE_HEADER_OVERFLOW, each counted apart', async (t) => {
  const L = 20;
  const ext = (n: number) => `5;${'e'.repeat(n)}\r\nhello\r\n0\r\n\r\n`;
  t.equal(atOnce(ext(L), L).error, undefined, `${L} bytes of extension after the ";" with a limit of ${L}`);
  t.equal(atOnce(ext(L + 1), L).error?.code, 'HPE_CHUNK_EXTENSIONS_OVERFLOW', `${L + 1} bytes of extension`);
  const trailer = (n: number) => `0\r\nt: ${'v'.repeat(n - 3)}\r\n\r\n`;
  t.equal(atOnce(trailer(L), L).error, undefined, `${L} bytes of trailer field (CRLFs not counted)`);
  t.equal(atOnce(trailer(L + 1), L).error?.code, 'HPE_HEADER_OVERFLOW', `${L + 1} bytes of trailer field`);
  const spread = (trailerBytes: number) => `1;${'e'.repeat(8)}\r\na\r\n1;${'e'.repeat(8)}\r\nb\r\n0\r\nt: ${'v'.repeat(trailerBytes - 3)}\r\n\r\n`;
  t.equal(atOnce(spread(L), L).error, undefined, 'extensions and trailers are counted apart: 8 + 8 bytes of extensions and 20 of trailer are within a limit of 20');
  t.equal(atOnce(`1;${'e'.repeat(12)}\r\na\r\n1;${'e'.repeat(9)}\r\nb\r\n0\r\n\r\n`, L).error?.code, 'HPE_CHUNK_EXTENSIONS_OVERFLOW', 'the extensions of all chunks add up: 12 + 9 are over it');
  t.equal(byteByByte(ext(L + 1), L).error?.code, 'HPE_CHUNK_EXTENSIONS_OVERFLOW', 'byte by byte too');
  const long = byteByByte(`0\r\nt: ${'v'.repeat(10_000)}`, 1024);
  t.equal(long.error?.code, 'HPE_HEADER_OVERFLOW', 'an endless trailer is cut off at the limit');
  t.equal(long.error?.bytesParsed, 3 + 1024, 'right at the first byte over it');
});

t.test('a trailer field must be a token name and a colon: a malformed one is refused with HPE_INVALID_HEADER_TOKEN', async (t) => {
  for (const input of ['0\r\nX A: b\r\n\r\n', '0\r\n: b\r\n\r\n', '0\r\nnocolon\r\n\r\n', '0\r\nA\x00: b\r\n\r\n']) {
    t.equal(atOnce(input).error?.code, 'HPE_INVALID_HEADER_TOKEN', show(input));
    t.equal(byteByByte(input).error?.code, 'HPE_INVALID_HEADER_TOKEN', `${show(input)}, byte by byte`);
  }
  t.equal(atOnce('0\r\nA: b\r\nC:d\r\n\r\n').error, undefined, 'well-formed trailers are read and dropped');
});

t.test('a chunked error\'s bytesParsed counts from the decoder\'s `consumed`, the same at once and byte by byte', async (t) => {
  const input = '5\r\nhello\r\n3\r\nabcX\r\n0\r\n\r\n';
  const at = input.indexOf('X');
  const whole = atOnce(input, 64, 1000);
  const bytes = byteByByte(input, 64, 1000);
  t.equal(whole.error?.bytesParsed, 1000 + at);
  t.equal(bytes.error?.bytesParsed, 1000 + at);
  t.equal(whole.body, 'helloabc', 'the data before the fault was handed over');
});

// ---------------------------------------------------------------------------------------
// Differential test against node:http

/** What Node's server read of a request, as its handler reports it. */
interface NodeView {
  readonly event: 'request' | 'upgrade' | 'connect';
  /** `res.shouldKeepAlive` as the parser set it ('request' only). */
  readonly keepAlive: boolean | null;
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly rawHeaders: string[];
}

type NodeOutcome =
  | { readonly kind: 'accepted'; readonly view: NodeView }
  /** `afterHead`: the handler ran, then the parser refused what it had read (llhttp checks Transfer-Encoding after the head's callback). */
  | { readonly kind: 'refused'; readonly code: string; readonly afterHead: boolean }
  | { readonly kind: 'no answer'; readonly timedOut: boolean };

interface NodeServer {
  readonly port: number;
  /** Every `clientError` code, in order. */
  readonly errors: string[];
  close(): Promise<void>;
}

/** A node:http server with the strict parser that answers each request 200 with what it parsed, each parse error 400 with its code. */
async function startNodeServer(): Promise<NodeServer> {
  const server = createServer({ insecureHTTPParser: false, requireHostHeader: false });
  const errors: string[] = [];
  const describe = (req: IncomingMessage, event: NodeView['event'], keepAlive: boolean | null): string =>
    JSON.stringify({ event, keepAlive, method: req.method, url: req.url, httpVersion: req.httpVersion, rawHeaders: req.rawHeaders } satisfies Partial<NodeView>);
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const body = describe(req, 'request', res.shouldKeepAlive);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  };
  server.on('request', onRequest);
  server.on('checkContinue', onRequest);
  server.on('checkExpectation', onRequest);
  const onTunnel = (event: 'upgrade' | 'connect') => (req: IncomingMessage, socket: Duplex): void => {
    const body = Buffer.from(describe(req, event, null));
    socket.on('error', () => {});
    socket.end(Buffer.concat([latin1(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]));
  };
  server.on('upgrade', onTunnel('upgrade'));
  server.on('connect', onTunnel('connect'));
  server.on('clientError', (err: Error, socket: Duplex) => {
    const code = (err as Error & { code?: string }).code ?? err.message;
    errors.push(code);
    const body = JSON.stringify({ code, bytesParsed: (err as Error & { bytesParsed?: number }).bytesParsed });
    if (socket.writable) socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    else socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    errors,
    async close() {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

const PER_CONNECTION_MS = 2000;

/** Sends `bytes` on a fresh connection, half-closes it, and collects everything until the server closes (at most PER_CONNECTION_MS). */
function exchange(port: number, bytes: Buffer): Promise<{ data: Buffer; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, PER_CONNECTION_MS);
    socket.on('connect', () => socket.end(bytes));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {}); // a reset: what arrived before it is the answer
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), timedOut });
    });
  });
}

/** The responses in `data` (each with a Content-Length), status and body. */
function responses(data: Buffer): { status: number; body: string }[] {
  const out: { status: number; body: string }[] = [];
  let p = 0;
  while (p < data.length) {
    const e = data.indexOf('\r\n\r\n', p, 'latin1');
    if (e === -1) break;
    const headText = data.toString('latin1', p, e);
    const length = /\r\ncontent-length: *(\d+)/i.exec(headText);
    const n = length ? Number(length[1]) : 0;
    out.push({ status: Number(headText.slice(9, 12)), body: data.toString('utf8', e + 4, e + 4 + n) });
    p = e + 4 + n;
  }
  return out;
}

/** `text` parsed as JSON; {} when it is not (an answer Node's server wrote itself). */
function jsonOf(text: string): object {
  try {
    return JSON.parse(text) as object;
  } catch {
    return {};
  }
}

async function nodeOutcome(port: number, bytes: Buffer): Promise<NodeOutcome> {
  const { data, timedOut } = await exchange(port, bytes);
  const [first, ...later] = responses(data);
  if (first === undefined) return { kind: 'no answer', timedOut };
  const body = jsonOf(first.body) as Partial<NodeView> & { code?: string };
  if (first.status !== 200 || body.method === undefined) return { kind: 'refused', code: body.code ?? `HTTP ${first.status}`, afterHead: false };
  // An error after the answer refuses the head (Transfer-Encoding checks), unless it is the
  // end of input where a body was still expected (the client half-closed after the head).
  const late = later.map((r) => (jsonOf(r.body) as { code?: string }).code ?? `HTTP ${r.status}`).find((code) => code !== 'HPE_INVALID_EOF_STATE');
  if (late !== undefined) return { kind: 'refused', code: late, afterHead: true };
  return { kind: 'accepted', view: body as NodeView };
}

/** Runs `fn` over `items`, `width` at a time, results in order. */
async function pool<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}

interface Case {
  readonly name: string;
  readonly bytes: Buffer;
}

/** What a head Fairway accepts and Node does not is about: where Node's parser stopped. */
const CATEGORIES = {
  method: 'every method Fairway accepts, Node accepts',
  target: 'every request-target Fairway accepts, Node accepts',
  version: 'every HTTP version Fairway accepts, Node accepts',
  framing: 'every Content-Length and Transfer-Encoding Fairway accepts, Node accepts',
  other: 'no other head Fairway accepts is refused by Node',
  read: 'where both accept a head, they read the same method, target, version and fields',
} as const;
type Category = keyof typeof CATEGORIES;

function categoryOf(node: NodeOutcome): Category {
  if (node.kind !== 'refused') return node.kind === 'accepted' ? 'read' : 'other';
  switch (node.code) {
    case 'HPE_INVALID_METHOD':
      return 'method';
    case 'HPE_INVALID_URL':
      return 'target';
    case 'HPE_INVALID_VERSION':
    case 'HPE_INVALID_CONSTANT':
      return 'version';
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return 'framing';
    default:
      return 'other';
  }
}

interface Comparison {
  readonly cases: number;
  readonly fairwayAccepted: number;
  readonly bothAccepted: number;
  /** Fairway accepted, Node refused it or read it differently: the rule broken, by what it is about. */
  readonly violations: Record<Category, string[]>;
  /** Fairway refused (or kept waiting for more), Node accepted: allowed. */
  readonly stricter: string[];
  /** Both refused, with different codes (the module says its codes are Node's): `Fairway code / Node code` → cases. */
  readonly codeDifferences: Map<string, string[]>;
  /** Both accepted, but they differ on keep-alive or upgrade (not part of the rule). */
  readonly connectionDifferences: string[];
}

const fairwayText = (o: FairwayOutcome): string => (o.kind === 'refused' ? `refuses it (${o.code})` : o.kind === 'incomplete' ? 'keeps waiting (no CRLF CRLF)' : 'accepts it');
const nodeText = (o: NodeOutcome): string =>
  o.kind === 'refused' ? `refuses it (${o.code}${o.afterHead ? ', after its request handler ran' : ''})` : o.kind === 'no answer' ? `gives no answer${o.timedOut ? ' (timed out)' : ''}` : `accepts it (${o.view.event} event)`;

/** Both parsers over `cases`, and what the rule makes of their answers. */
async function compare(port: number, cases: readonly Case[]): Promise<Comparison> {
  const outcomes = await pool(cases, 16, async (c) => ({ c, fw: fairway(c.bytes), node: await nodeOutcome(port, c.bytes) }));
  const violations: Record<Category, string[]> = { method: [], target: [], version: [], framing: [], other: [], read: [] };
  const stricter: string[] = [];
  const codeDifferences = new Map<string, string[]>();
  const connectionDifferences: string[] = [];
  let fairwayAccepted = 0;
  let bothAccepted = 0;
  for (const { c, fw, node } of outcomes) {
    const what = `${c.name}: ${show(c.bytes)}`;
    if (fw.kind !== 'accepted') {
      if (node.kind === 'accepted') stricter.push(`${what}: Fairway ${fairwayText(fw)}, Node accepts it`);
      else if (fw.kind === 'refused' && node.kind === 'refused' && fw.code !== node.code) {
        const key = `Fairway ${fw.code} / Node ${node.code}`;
        codeDifferences.set(key, [...(codeDifferences.get(key) ?? []), what]);
      }
      continue;
    }
    fairwayAccepted++;
    if (fw.headEnd !== c.bytes.length) throw new Error(`the corpus has bytes after a head: ${what}`);
    if (node.kind !== 'accepted') {
      violations[categoryOf(node)].push(`${what}: Fairway accepts it, Node ${nodeText(node)}`);
      continue;
    }
    bothAccepted++;
    const h = fw.head;
    const v = node.view;
    const diffs: string[] = [];
    if (h.method !== v.method) diffs.push(`method ${JSON.stringify(h.method)} vs ${JSON.stringify(v.method)}`);
    if (h.url !== v.url) diffs.push(`url ${show(h.url)} vs ${show(v.url)}`);
    if (`${h.versionMajor}.${h.versionMinor}` !== v.httpVersion) diffs.push(`version ${h.versionMajor}.${h.versionMinor} vs ${v.httpVersion}`);
    if (JSON.stringify(h.rawHeaders) !== JSON.stringify(v.rawHeaders)) diffs.push(`fields ${show(JSON.stringify(h.rawHeaders))} vs ${show(JSON.stringify(v.rawHeaders))}`);
    if (diffs.length > 0) violations.read.push(`${what}: both accept it, Fairway vs Node differ on ${diffs.join('; ')}`);
    if (h.upgrade !== (v.event !== 'request')) connectionDifferences.push(`${what}: upgrade ${h.upgrade} in Fairway, Node emits '${v.event}'`);
    if (v.keepAlive !== null && h.keepAlive !== v.keepAlive) connectionDifferences.push(`${what}: keepAlive ${h.keepAlive} in Fairway, ${v.keepAlive} in Node`);
  }
  return { cases: cases.length, fairwayAccepted, bothAccepted, violations, stricter, codeDifferences, connectionDifferences };
}

/** The counts and the allowed differences as comments; the rule, one assertion per category. */
function judge(t: Test, label: string, r: Comparison): void {
  const broken = Object.values(r.violations).reduce((n, list) => n + list.length, 0);
  t.comment(`${label}: ${r.cases} cases; Fairway accepts ${r.fairwayAccepted}, Node accepts ${r.bothAccepted} of those; ` +
    `${r.stricter.length} accepted by Node only (Fairway stricter), ${broken} accepted by Fairway but refused or read differently by Node`);
  for (const s of r.stricter) t.comment(`stricter than Node: ${s}`);
  for (const [key, list] of r.codeDifferences) t.comment(`both refuse, codes differ (${key}): ${list.length} case(s), e.g. ${list[0]}`);
  for (const s of r.connectionDifferences) t.comment(`connection handling differs (allowed): ${s}`);
  for (const [category, spec] of Object.entries(CATEGORIES)) t.same(r.violations[category as Category], [], spec);
}

/** Hand-written heads: valid ones of every shape, and hostile ones (smuggling shapes, odd whitespace, control characters, obs-text). */
const CORPUS: readonly Case[] = ([
  // Valid.
  ['origin form with a query', 'GET /index.html?q=1&r=%2F HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['absolute form', 'GET http://app.test:8080/a/b?c HTTP/1.1\r\nHost: app.test:8080\r\n\r\n'],
  ['asterisk form', 'OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['authority form for CONNECT', 'CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n'],
  ['HTTP/1.0 without fields', 'GET / HTTP/1.0\r\n\r\n'],
  ['HTTP/1.0 with keep-alive', 'GET /a HTTP/1.0\r\nConnection: keep-alive\r\nHost: app.test\r\n\r\n'],
  ['POST with Content-Length', 'POST /form HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n'],
  ['POST chunked', 'POST /up HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ['gzip then chunked', 'POST /up HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'],
  ['gzip and chunked in two fields', 'POST /up HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ['a WebSocket upgrade', 'GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'],
  ['an Upgrade field without Connection: upgrade', 'GET / HTTP/1.1\r\nHost: app.test\r\nUpgrade: h2c\r\n\r\n'],
  ['Expect: 100-continue', 'PUT /f HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n'],
  ['OWS variations and an empty value', 'GET / HTTP/1.1\r\nHost:app.test\r\nX-A: \t a \t b \t\r\nX-Empty:\r\nX-Blank:   \r\n\r\n'],
  ['names in odd case, repeated fields', 'GET / HTTP/1.1\r\nhOsT: app.test\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n'],
  ['every tchar in a name', "GET / HTTP/1.1\r\nHost: app.test\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"],
  ['obs-text in a value', 'GET / HTTP/1.1\r\nHost: app.test\r\nX-Name: Ren\xe9e \x80\xff\r\n\r\n'],
  ['visible ASCII punctuation in the target', 'GET /a"<>\\^`{|}~!$&\'()*+,;=:@[]?x=%zz#f HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['one empty line before the request', '\r\nGET / HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  [`${MAX_LEADING_EMPTY_LINES} empty lines before the request`, `${'\r\n'.repeat(MAX_LEADING_EMPTY_LINES)}GET / HTTP/1.1\r\nHost: app.test\r\n\r\n`],
  ['Connection: close with keep-alive', 'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, close\r\n\r\n'],
  ['a WebDAV method', 'PROPFIND /dav HTTP/1.1\r\nHost: app.test\r\nDepth: 1\r\n\r\n'],
  ['Content-Length with leading zeros and OWS', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length:  0005 \r\n\r\n'],
  // Hostile: request smuggling shapes.
  ['CL.TE: Content-Length then Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ['TE.CL: Transfer-Encoding then Content-Length', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n'],
  ['two different Content-Length', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nContent-Length: 5\r\n\r\n'],
  ['two equal Content-Length', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n'],
  ['a Content-Length list', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5, 5\r\n\r\n'],
  ['a signed Content-Length', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: +5\r\n\r\n'],
  ['a hex Content-Length', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0x5\r\n\r\n'],
  ['Transfer-Encoding: chunked, gzip', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'],
  ['Transfer-Encoding: xchunked', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n\r\n'],
  ['Transfer-Encoding: identity', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: identity\r\n\r\n'],
  ['Transfer-Encoding with SP before the colon', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n'],
  ['Transfer-Encoding folded onto another field', 'POST / HTTP/1.1\r\nHost: app.test\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n'],
  ['Transfer-Encoding with a vertical tab', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding:\x0bchunked\r\n\r\n'],
  ['Transfer-Encoding with a NUL', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\x00\r\n\r\n'],
  ['Transfer-Encoding: chunked followed by HTAB', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\t\r\n\r\n'],
  ['Content-Length followed by SP', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5 \r\n\r\n'],
  ['Transfer-Encoding: chunked followed by SP', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked \r\n\r\n'],
  ['HTAB before the Transfer-Encoding value', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding:\tchunked\r\n\r\n'],
  ['Connection: close followed by HTAB', 'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\t\r\n\r\n'],
  ['Content-Length followed by HTAB', 'POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\t\r\n\r\n'],
  ['chunked twice in one field', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n'],
  ['chunked in two fields', 'POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ['an upgrade with a body', 'POST /ws HTTP/1.1\r\nHost: app.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\n'],
  // Hostile: line endings, whitespace, control characters.
  ['bare LF line endings', 'GET / HTTP/1.1\nHost: app.test\n\n'],
  ['bare LF ending one field', 'GET / HTTP/1.1\r\nHost: app.test\nX: y\r\n\r\n'],
  ['bare CR inside a value', 'GET / HTTP/1.1\r\nHost: app.test\r\nX: a\rb\r\n\r\n'],
  ['a bare LF before the request', '\nGET / HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  [`${MAX_LEADING_EMPTY_LINES + 1} empty lines before the request`, `${'\r\n'.repeat(MAX_LEADING_EMPTY_LINES + 1)}GET / HTTP/1.1\r\nHost: app.test\r\n\r\n`],
  ['two spaces after the method', 'GET  / HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['a space after the version', 'GET / HTTP/1.1 \r\nHost: app.test\r\n\r\n'],
  ['HTAB in the target', 'GET /a\tb HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['NUL in the target', 'GET /a\x00b HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['DEL in a value', 'GET / HTTP/1.1\r\nHost: app.test\r\nX: a\x7fb\r\n\r\n'],
  ['NUL in a value', 'GET / HTTP/1.1\r\nHost: app.test\r\nX: a\x00b\r\n\r\n'],
  ['obs-text in a name', 'GET / HTTP/1.1\r\nHost: app.test\r\nX\xe9: a\r\n\r\n'],
  ['a line without a colon', 'GET / HTTP/1.1\r\nHost: app.test\r\nNoColon\r\n\r\n'],
  ['an empty field name', 'GET / HTTP/1.1\r\nHost: app.test\r\n: a\r\n\r\n'],
  ['a lowercase version', 'GET / http/1.1\r\nHost: app.test\r\n\r\n'],
  ['HTTP/0.9 without a version', 'GET /\r\n\r\n'],
  ['a head over 16 KiB', `GET / HTTP/1.1\r\nHost: app.test\r\nX: ${'a'.repeat(17 * 1024)}\r\n\r\n`],
  // Hostile: what a token or a visible-character target lets through.
  ['obs-text in the target', 'GET /caf\xe9 HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['a lowercase method', 'get / HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['an unregistered method', 'FOO / HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['a target without a leading slash', 'GET index.html HTTP/1.1\r\nHost: app.test\r\n\r\n'],
  ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: app.test\r\n\r\n'],
] as const).map(([name, text]) => ({ name, bytes: latin1(text) }));

/** Valid heads the fuzz mutates. */
const SEEDS: readonly string[] = [
  'GET /index.html?q=1 HTTP/1.1\r\nHost: app.test\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n',
  'POST /submit HTTP/1.1\r\nHost: app.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n',
  'POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
  'GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET http://app.test/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  'CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\n\r\n',
  '\r\nPUT /x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
];
/** The bytes a mutation inserts or writes: delimiters, whitespace, controls, obs-text. */
const FUZZ_BYTES = [0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x00, 0x7f, 0x80, 0x2c, 0x3b];
/** HTTP1_FUZZ_SEED and HTTP1_FUZZ_CASES run another or a longer mutation fuzz (bench/README "Fuzzing"). */
const FUZZ_SEED = Number(process.env['HTTP1_FUZZ_SEED'] ?? 0x46a1e7);
const FUZZ_CASES = Number(process.env['HTTP1_FUZZ_CASES'] ?? 300);

/** mulberry32: a small seeded PRNG, an integer in [0, n). */
function prng(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    let z = (state = (state + 0x6d2b79f5) >>> 0);
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return Math.floor((((z ^ (z >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/**
 * FUZZ_CASES distinct heads, each a seed with one byte inserted, replaced or deleted.
 * Insertions go before an existing byte, never after the last, and a mutation that ends
 * the head early (a CRLF CRLF before the end) is skipped: no case has bytes after its head.
 */
function mutations(): Case[] {
  const int = prng(FUZZ_SEED);
  const seen = new Set<string>(SEEDS);
  const out: Case[] = [];
  for (let attempt = 0; out.length < FUZZ_CASES && attempt < FUZZ_CASES * 20; attempt++) {
    const seedIndex = int(SEEDS.length);
    const seed = SEEDS[seedIndex]!;
    const at = int(seed.length);
    const byte = String.fromCharCode(FUZZ_BYTES[int(FUZZ_BYTES.length)]!);
    const op = int(3);
    const text = op === 0 ? seed.slice(0, at) + byte + seed.slice(at) : op === 1 ? seed.slice(0, at) + byte + seed.slice(at + 1) : seed.slice(0, at) + seed.slice(at + 1);
    if (seen.has(text)) continue;
    seen.add(text);
    const end = text.indexOf('\r\n\r\n');
    if (end !== -1 && end + 4 !== text.length) continue;
    const verb = op === 0 ? `insert ${show(byte)} at` : op === 1 ? `replace with ${show(byte)} at` : 'delete at';
    out.push({ name: `seed ${seedIndex}, ${verb} ${at}`, bytes: latin1(text) });
  }
  return out;
}

/** What HeadPrefixCheck says of `bytes` fed one byte at a time (after the leading empty lines): the error code, or `ok`. */
function prefixVerdict(bytes: Buffer): string {
  const start = skipEmptyLines(bytes, 0, bytes.length);
  if (start <= 0 && start !== 0) return 'skipped';
  const check = new HeadPrefixCheck();
  try {
    for (let i = start; i < bytes.length; i++) check.feed(bytes, i, i + 1, 0);
    return 'ok';
  } catch (err) {
    if (!(err instanceof Http1ParseError)) throw err;
    return err.code;
  }
}

t.test('a head arriving in pieces is refused at its first byte that cannot belong to a valid head, before the head is complete', async (t) => {
  const cases: [string, string, number][] = [
    ['a TLS ClientHello sent to the plain port', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 0],
    ['binary garbage', '\x00\xff\xfeabc', 0],
    ['a lower-case method', 'get / HTTP/1.1', 0],
    ['an unknown method', 'FETCH / HTTP/1.1', 0],
    ['a known method continued', 'GETGETGETGETGETGETGETGETGET', 3],
    ['a known method\'s beginning alone', 'GE / HTTP/1.1', 2],
    ['a control character in the target', 'GET /a\x01b', 6],
    ['HTTP/2.0 in the request line', 'GET / HTTP/2', 11],
    ['HTTP/1.2', 'GET / HTTP/1.2', 13],
    ['a bare LF ending the request line', 'GET / HTTP/1.1\nHost', 14],
    ['a bare LF ending a field', 'GET / HTTP/1.1\r\nHost: a\nX', 23],
    ['a bare CR', 'GET / HTTP/1.1\r\nHost: a\rX', 24],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\n b', 25],
    ['a space before the colon', 'GET / HTTP/1.1\r\nHost : a', 20],
    ['a NUL in a value', 'GET / HTTP/1.1\r\nHost: a\x00', 23],
  ];
  for (const [what, text, at] of cases) {
    const bytes = latin1(text);
    for (const split of [1, bytes.length]) {
      const check = new HeadPrefixCheck();
      let error: Http1ParseError | undefined;
      try {
        for (let i = 0; i < bytes.length; i += split) check.feed(bytes, i, Math.min(bytes.length, i + split), 100);
      } catch (err) {
        error = err as Http1ParseError;
      }
      t.ok(error instanceof Http1ParseError, `${what}: refused (${split === 1 ? 'byte by byte' : 'at once'})`);
      t.equal(error?.bytesParsed, 100 + at, `${what}: at its first wrong byte`);
    }
  }
  t.equal(prefixVerdict(latin1('GET /index.html HTTP/1.1\r\nHost: app.test\r\nX-A: b\tc\r\n')), 'ok', 'a valid head cut anywhere is not refused');
});

t.test('the early check never refuses what the full parser accepts: every hand-written and mutated head the parser accepts passes it byte by byte, and what it refuses the parser refuses too', async (t) => {
  const all = [...SEEDS.map((seed, i) => ({ name: `seed ${i}`, bytes: latin1(seed) })), ...mutations()];
  let refusedEarly = 0;
  for (const c of all) {
    const full = fairway(c.bytes);
    const early = prefixVerdict(c.bytes);
    if (full.kind === 'accepted' && early !== 'ok') t.fail(`${c.name}: ${show(c.bytes)}: accepted by the parser, refused early (${early})`);
    if (early !== 'ok' && early !== 'skipped') {
      refusedEarly++;
      if (full.kind === 'accepted') continue;
    }
  }
  t.pass(`${all.length} heads checked; ${refusedEarly} refused before their end`);
  t.ok(refusedEarly > 0, 'the mutations include heads the early check refuses');
});

t.test('differential against node:http (llhttp, insecureHTTPParser: false)', async (t) => {
  const node = await startNodeServer();
  t.teardown(() => node.close());

  t.test('a sanity check of the harness: Node answers a good head with what it parsed, a bad one with its error code', async (t) => {
    const good = await nodeOutcome(node.port, latin1('GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n'));
    t.match(good, { kind: 'accepted', view: { event: 'request', method: 'GET', url: '/x', httpVersion: '1.1', rawHeaders: ['Host', 'app.test'], keepAlive: true } });
    t.match(await nodeOutcome(node.port, latin1('GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n')), { kind: 'refused', code: 'HPE_UNEXPECTED_CONTENT_LENGTH' });
    t.match(await nodeOutcome(node.port, latin1('GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n')), { kind: 'accepted', view: { event: 'upgrade' } });
    t.match(await nodeOutcome(node.port, latin1('POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n')), { kind: 'refused', code: 'HPE_INVALID_TRANSFER_ENCODING', afterHead: true }, 'a refusal after the handler ran counts as a refusal');
    t.ok(node.errors.includes('HPE_UNEXPECTED_CONTENT_LENGTH'), 'clientError recorded the code');
  });

  t.test(`whenever Fairway accepts one of ${CORPUS.length} hand-written heads, Node accepts it too and reads the same method, target, version and fields`, async (t) => {
    const r = await compare(node.port, CORPUS);
    t.ok(r.bothAccepted >= 20, `the corpus has heads both accept (${r.bothAccepted})`);
    t.ok(r.stricter.length > 0, 'and heads only Node accepts (listed below)');
    judge(t, 'hand-written corpus', r);
  });

  t.test(`whenever Fairway accepts one of ${FUZZ_CASES} mutated heads (seed ${FUZZ_SEED}), Node accepts it too and reads the same`, async (t) => {
    const cases = mutations();
    t.equal(cases.length, FUZZ_CASES, 'distinct mutations');
    const r = await compare(node.port, cases);
    t.ok(r.fairwayAccepted >= FUZZ_CASES / 10 && r.fairwayAccepted <= FUZZ_CASES * 0.9, `both outcomes occur: Fairway accepts ${r.fairwayAccepted} of ${FUZZ_CASES}`);
    judge(t, `mutation fuzz, seed ${FUZZ_SEED}`, r);
  });
});
