import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { startRouterProcess } from './helpers/router-process.js';
import { routerStarter, waitForLog, type TestRouter } from './helpers/test-router.js';
import { upstreamStarter, type TestUpstream } from './helpers/upstreams.js';
import { rawExchange, startRawUpstream } from './helpers/raw-http.js';

const router = routerStarter(t);
const upstream = upstreamStarter(t);

/** Connections the origin accepted, whatever came on them. */
let originConnections = 0;
const origin: TestUpstream = await upstream('origin');
origin.server.on('connection', () => originConnections++);

const r: TestRouter = await router(`
limits: { maxHeaderSize: 4kb, maxUrlLength: 1kb }
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["${origin.address}"] } }
`);
const port = Number(new URL(r.http).port);

/** Everything the server sends on `socket` until it closes the connection. */
function answerOf(socket: Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  return new Promise((resolve) => socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
}

const H = 'Host: app.test\r\n';
const POST = `POST / HTTP/1.1\r\n${H}`;
const CHUNKED = `${POST}Transfer-Encoding: chunked\r\n\r\n`;

/**
 * Each request is one smuggling or parsing vector: it must get `status` (400 unless
 * said), have its connection closed by the router, and never reach the endpoint.
 */
const vectors: [name: string, bytes: string, status?: number][] = [
  // Framing: Content-Length and Transfer-Encoding
  ['Content-Length then Transfer-Encoding', `${POST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding then Content-Length', `${POST}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding with Content-Length: 0', `${POST}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n`],
  ['duplicate Content-Length, same value', `${POST}Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd`],
  ['duplicate Content-Length, different values', `${POST}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde`],
  ['Content-Length as a list', `${POST}Content-Length: 4, 4\r\n\r\nabcd`],
  ['Content-Length with a sign', `${POST}Content-Length: +4\r\n\r\nabcd`],
  ['negative Content-Length', `${POST}Content-Length: -1\r\n\r\nabcd`],
  ['Content-Length beyond 64 bits', `${POST}Content-Length: 99999999999999999999999\r\n\r\nabcd`],
  ['Transfer-Encoding: chunked, identity', `${POST}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding: identity, chunked', `${POST}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding: gzip, chunked', `${POST}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding: xchunked', `${POST}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding: chunked, chunked', `${POST}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding: chunked twice', `${POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding in an HTTP/1.0 request', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['whitespace between Transfer-Encoding and the colon', `${POST}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`],
  // Chunk sizes and extensions
  ['a chunk size that is not hex', `${CHUNKED}zz\r\nabcd\r\n0\r\n\r\n`],
  ['a chunk size that overflows', `${CHUNKED}FFFFFFFFFFFFFFFFFF\r\nabcd\r\n0\r\n\r\n`],
  ['a negative chunk size', `${CHUNKED}-4\r\nabcd\r\n0\r\n\r\n`],
  ['a chunk size with 0x', `${CHUNKED}0x4\r\nabcd\r\n0\r\n\r\n`],
  ['a chunk size followed by a space', `${CHUNKED}4 \r\nabcd\r\n0\r\n\r\n`],
  ['chunk data longer than its size', `${CHUNKED}4\r\nabcdXX\r\n0\r\n\r\n`],
  ['a chunk size line ending in a bare LF', `${CHUNKED}4\nabcd\n0\n\n`],
  ['a bare LF inside a chunk extension', `${CHUNKED}4;a\nb\r\nabcd\r\n0\r\n\r\n`],
  ['a NUL inside a quoted chunk extension', `${CHUNKED}4;a="\0"\r\nabcd\r\n0\r\n\r\n`],
  ['20 kB of chunk extensions', `${CHUNKED}4;${'a'.repeat(20_000)}\r\nabcd\r\n0\r\n\r\n`],
  ['a malformed trailer', `${CHUNKED}0\r\nX A: b\r\n\r\n`],
  // Header syntax
  ['an obs-folded header (space)', `GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`],
  ['an obs-folded header (tab)', `GET / HTTP/1.1\r\n${H}X-A: b\r\n\tc\r\n\r\n`],
  ['a NUL in a header value', `GET / HTTP/1.1\r\n${H}X-A: b\0c\r\n\r\n`],
  ['a bare CR in a header value', `GET / HTTP/1.1\r\n${H}X-A: b\rc\r\n\r\n`],
  ['a bare LF in a header value', `GET / HTTP/1.1\r\n${H}X-A: b\nc\r\n\r\n`],
  ['a control character in a header value', `GET / HTTP/1.1\r\n${H}X-A: b\x01c\r\n\r\n`],
  ['whitespace before a colon', `GET / HTTP/1.1\r\n${H}X-A : b\r\n\r\n`],
  ['a space inside a header name', `GET / HTTP/1.1\r\n${H}X A: b\r\n\r\n`],
  ['an empty header name', `GET / HTTP/1.1\r\n${H}: b\r\n\r\n`],
  ['bare LF line endings', `GET / HTTP/1.1\n${H.replace('\r', '')}\n`],
  ['a bare LF among CRLF line endings', `GET / HTTP/1.1\r\nHost: app.test\nX-A: b\r\n\r\n`],
  ['bare CR line endings', 'GET / HTTP/1.1\rHost: app.test\r\r'],
  ['two Host headers', `GET / HTTP/1.1\r\n${H}Host: other.test\r\n\r\n`],
  // Request line
  ['a tab after the method', `GET\t/ HTTP/1.1\r\n${H}\r\n`],
  ['a lower-case method', `get / HTTP/1.1\r\n${H}\r\n`],
  ['a method with a non-token character', `G@T / HTTP/1.1\r\n${H}\r\n`],
  ['HTTP/0.9 (no version)', 'GET /\r\n\r\n'],
  ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`],
  ['HTTP/2.0 in an HTTP/1 request line', `GET / HTTP/2.0\r\n${H}\r\n`],
  ['the asterisk form (OPTIONS *)', `OPTIONS * HTTP/1.1\r\n${H}\r\n`],
  ['a space inside the target', `GET /a b HTTP/1.1\r\n${H}\r\n`],
  ['a control character in the target', `GET /a\x01b HTTP/1.1\r\n${H}\r\n`],
  ['a NUL in the target', `GET /a\0b HTTP/1.1\r\n${H}\r\n`],
  ['a non-ASCII byte in the target', `GET /\xe9 HTTP/1.1\r\n${H}\r\n`],
  ['a space after the version', `GET / HTTP/1.1 \r\n${H}\r\n`],
  // Limits
  ['a target longer than limits.maxUrlLength', `GET /${'a'.repeat(1100)} HTTP/1.1\r\n${H}\r\n`, 414],
  ['a header block larger than limits.maxHeaderSize', `GET / HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(5000)}\r\n\r\n`, 431],
];

for (const [name, bytes, status = 400] of vectors) {
  t.test(`${name}: ${status}, the connection is closed, nothing reaches the endpoint`, async (t) => {
    const answer = await rawExchange(port, bytes, 5000);
    t.equal(answer.status, status, `status (got ${JSON.stringify(answer.text.split('\r\n')[0])})`);
    t.ok(answer.closed, 'the router closed the connection');
    t.equal(origin.hits, 0, 'no request reached the endpoint');
    t.equal(originConnections, 0, 'no connection was even opened to the endpoint');
  });
}

t.test('a well-formed request on the same router still reaches the endpoint (the cases above are not vacuous)', async (t) => {
  const answer = await rawExchange(port, `${CHUNKED}4\r\nabcd\r\n0\r\n\r\n`.replace('HTTP/1.1\r\n', 'HTTP/1.1\r\nConnection: close\r\n'), 5000);
  t.equal(answer.status, 200);
  t.equal(origin.hits, 1);
});

t.test('a chunked request is dispatched only once its first chunk is parsed: a bad first chunk sent late never reaches the endpoint', async (t) => {
  const before = originConnections;
  const hits = origin.hits;
  const socket = connect(port, '127.0.0.1');
  const answer = answerOf(socket);
  socket.write(CHUNKED);
  // Absence cannot be awaited: give a dispatch time to happen, then send the bad chunk.
  await sleep(300);
  t.equal(originConnections, before, 'nothing was dispatched for the head alone');
  socket.write('zz\r\n');
  const text = await answer;
  t.match(text, /^HTTP\/1\.1 400 /);
  t.equal(origin.hits, hits, 'no request at the endpoint');
  t.equal(originConnections, before, 'no connection to the endpoint');
});

t.test('a malformed chunk later in a body aborts the upstream request: the endpoint sees an incomplete body, never a complete request', async (t) => {
  let received = '';
  let outcome: 'complete' | 'aborted' | undefined;
  let onFirstChunk!: () => void;
  const firstChunk = new Promise<void>((resolve) => (onFirstChunk = resolve));
  let onOutcome!: () => void;
  const settled = new Promise<void>((resolve) => (onOutcome = resolve));
  const late = await upstream('late-bad', (req, res) => {
    req.on('data', (d: Buffer) => {
      received += d.toString();
      onFirstChunk();
    });
    req.on('end', () => {
      outcome ??= 'complete';
      res.end('should not happen');
      onOutcome();
    });
    req.on('error', () => {
      outcome ??= 'aborted';
      onOutcome();
    });
  });
  const lr = await router(`
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["${late.address}"] } }
`);
  const socket = connect(Number(new URL(lr.http).port), '127.0.0.1');
  const answer = answerOf(socket);
  socket.write(`${CHUNKED}4\r\nabcd\r\n`);
  await firstChunk;
  socket.write('zz\r\nmore\r\n0\r\n\r\n');
  const [text] = await Promise.all([answer, settled]);
  t.equal(received, 'abcd', 'the endpoint got the chunk before the bad one');
  t.equal(outcome, 'aborted', 'and then an aborted request, not a complete one');
  t.match(text, /^HTTP\/1\.1 400 /, 'the client is answered 400 and the connection closed');
});

/**
 * Malformed responses from an endpoint speaking raw TCP: each one must give the client a
 * 502 (or cut its connection when the status line was already relayed), be logged with a
 * code, and leave the router serving.
 */
const badResponses: [name: string, write: (s: Socket) => void, expect: 502 | 'cut'][] = [
  ['a garbage status line', (s) => s.end('HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n'), 502],
  ['not HTTP at all', (s) => s.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'), 502],
  ['a NUL in a header value', (s) => s.end('HTTP/1.1 200 OK\r\nX-A: b\0c\r\nContent-Length: 0\r\n\r\n'), 502],
  ['an obs-folded header', (s) => s.end('HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n'), 502],
  ['Content-Length with Transfer-Encoding', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'), 502],
  ['conflicting Content-Length headers', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde'), 502],
  ['a bad chunk size', (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'), 'cut'],
  ['the connection closed mid-headers', (s) => s.end('HTTP/1.1 200 OK\r\nX-A: '), 502],
  ['headers larger than 16 kB', (s) => s.end(`HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(20_000)}\r\nContent-Length: 0\r\n\r\n`), 502],
  ['a body shorter than its Content-Length', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc'), 'cut'],
];

for (const [name, write, expect] of badResponses) {
  t.test(`an endpoint answering with ${name}: ${expect === 502 ? '502' : 'the client connection is cut'}, logged with a code, the router keeps serving`, async (t) => {
    const bad = await startRawUpstream(write);
    t.teardown(() => bad.close());
    const good = await upstream('good');
    const br = await router(`
apps:
  bad:
    domains: [bad.test]
    versions: { v1: { weight: 1, endpoints: ["${bad.address}"] } }
  good:
    domains: [good.test]
    versions: { v1: { weight: 1, endpoints: ["${good.address}"] } }
`);
    const bport = Number(new URL(br.http).port);
    const answer = await rawExchange(bport, 'GET / HTTP/1.1\r\nHost: bad.test\r\nConnection: close\r\n\r\n', 10_000);
    t.ok(answer.closed, 'the connection ended');
    if (expect === 502) {
      t.equal(answer.status, 502);
      t.match(answer.text, /x-fairway-error: FW_UPSTREAM_FAILED/i);
    } else {
      // Node sends the status line with the first body bytes: a response that fails in its first packet is cut before it.
      t.ok(answer.status === undefined || answer.status === 200, 'nothing, or the status line the endpoint sent');
      t.notMatch(answer.text, /\r\n0\r\n\r\n$|abc.{97}$/s, 'never a complete response');
    }
    const line = await waitForLog(br, (l) => l.log === 'access' && l.host === 'bad.test');
    t.equal(line.code, 'FW_UPSTREAM_FAILED', 'the access log names the code');
    t.equal(line.status, 502);
    t.equal((await br.get('good.test')).status, 200, 'the router still serves');
  });
}

t.test('the listeners ignore NODE_OPTIONS=--insecure-http-parser: what the lenient parser admits still gets 400', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-insecure-'));
  const configFile = path.join(dir, 'fairway.yaml');
  writeFileSync(configFile, `
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["${origin.address}"] } }
`);
  const proc = await startRouterProcess(configFile, 'serve', { NODE_OPTIONS: '--insecure-http-parser' });
  t.teardown(() => proc.stop());
  const hits = origin.hits;
  const pport = Number(new URL(proc.http).port);
  for (const [name, bytes] of [
    ['Content-Length with Transfer-Encoding', `${POST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['an obs-folded header', `GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`],
    ['a NUL in a header value', `GET / HTTP/1.1\r\n${H}X-A: b\0c\r\n\r\n`],
    ['bare LF line endings', `GET / HTTP/1.1\n${H.replace('\r', '')}\n`],
  ] as const) {
    const answer = await rawExchange(pport, bytes, 5000);
    t.equal(answer.status, 400, name);
    t.ok(answer.closed, `${name}: the connection is closed`);
  }
  t.equal(origin.hits, hits, 'nothing reached the endpoint');
  const ok = await request(`${proc.http}/`, { headers: { host: 'app.test' } });
  await ok.body.text();
  t.equal(ok.statusCode, 200, 'a good request is served by that process');
});
