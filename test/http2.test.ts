/**
 * HTTP/2 on the HTTPS listener (README "HTTPS and certificates", "HTTP/2"): real TLS
 * handshakes on loopback with node:http2 client sessions against an in-process router,
 * HTTP/1.1 endpoints behind it.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { generateSelfSigned } from '../src/tls/self-signed.js';
import { MAX_CONCURRENT_STREAMS } from '../src/data/http2-sessions.js';
import { startRouterProcess } from './helpers/router-process.js';
import { startTestRouter, waitForLog, type TestRouter } from './helpers/test-router.js';
import { END_STREAM, errorCode, FRAME, RawHttp2 } from './helpers/raw-http2.js';
import { hello } from './helpers/tls-client.js';
import { bigAnswer, upstreamStarter, type TestUpstream } from './helpers/upstreams.js';

const upstream = upstreamStarter(t);
const cert = await generateSelfSigned({ names: ['*.h2.test'] });

/** A router with an HTTPS listener serving `*.h2.test`; `yaml` goes after `tls:` (more top-level keys, then apps). */
async function router(yaml: string): Promise<TestRouter> {
  const { dir, text } = configIn(yaml);
  const r = await startTestRouter(text, { dir });
  t.teardown(() => r.close());
  return r;
}

/** A temp dir with the certificate files, and the config text: HTTPS on, `yaml` after `tls:` (more top-level keys, then apps). */
function configIn(yaml: string): { dir: string; text: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-h2-'));
  writeFileSync(path.join(dir, 'h2.pem'), cert.certPem);
  writeFileSync(path.join(dir, 'h2.key'), cert.keyPem);
  return { dir, text: `listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:0 }\ntls:\n  certificates: [{ cert: h2.pem, key: h2.key }]\n${yaml}` };
}

const httpsPort = (r: TestRouter) => r.router.httpsAddress!.port;

/** An HTTP/2 session to the router (ALPN `h2` only), SNI `servername`. */
async function session(r: TestRouter | number, servername = 'web.h2.test'): Promise<ClientHttp2Session> {
  const port = typeof r === 'number' ? r : httpsPort(r);
  const s = connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername });
  s.on('error', () => {}); // a test that expects the session to end checks how
  await once(s, 'remoteSettings');
  return s;
}

interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The stream's RST_STREAM code (0: none or NO_ERROR). */
  rstCode: number;
}

/**
 * One request on `s`; `body` is sent as it is (a stream: without Content-Length unless
 * given). Resolves once the response ended and the stream closed.
 */
function h2(s: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | Readable): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':authority': 'web.h2.test', ...headers }, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let head: IncomingHttpHeaders = {};
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      if (head[':status'] === undefined) reject(new Error(`stream closed without a response (code ${stream.rstCode})`));
      else resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0 });
    };
    stream.on('response', (h) => (head = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('close', finish);
    // Node's client emits 'close' only once its own upload is done too: a stream the server reset after a complete
    // response (RST_STREAM NO_ERROR, to stop an upload) is closed but says nothing. Look for that once the response ended.
    stream.on('end', () => {
      let turns = 0;
      const check = () => {
        if (stream.closed) {
          finish();
          stream.destroy();
        } else if (++turns < 200 && !settled) setImmediate(check);
      };
      check();
    });
    stream.on('error', () => {}); // `finish` reports
    if (body instanceof Readable) body.pipe(stream);
    else if (body !== undefined) stream.end(body);
  });
}

const json = (a: H2Answer) => JSON.parse(a.body.toString('utf8')) as { upstream: string; method: string; url: string; headers: Record<string, string> };

t.test('ALPN chooses h2 when the client offers it and http/1.1 otherwise; tls.http2: false offers http/1.1 only (a reload applies to new handshakes)', async (t) => {
  const echo = await upstream('echo');
  const apps = `apps:\n  web: { domains: ["*.h2.test"], versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } } }\n`;
  const r = await router(apps);
  const port = httpsPort(r);
  t.equal((await hello(port, { servername: 'web.h2.test', ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'h2');
  t.equal((await hello(port, { servername: 'web.h2.test', ALPNProtocols: ['http/1.1', 'h2'] })).alpn, 'h2', 'the server prefers h2 whatever the client\'s order');
  t.equal((await hello(port, { servername: 'web.h2.test', ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1');
  t.equal((await hello(port, { servername: 'web.h2.test' })).alpn, false, 'no ALPN: no protocol chosen (HTTP/1.1 is spoken)');
  const resumed = await hello(port, { servername: 'web.h2.test', ALPNProtocols: ['h2'] });
  t.equal((await hello(port, { servername: 'web.h2.test', ALPNProtocols: ['h2'], session: resumed.session })).reused, true, 'sessions resume on h2 connections');

  // HTTP/1.1 over TLS is served as before, next to HTTP/2.
  const agent = new Agent({ connect: { rejectUnauthorized: false, servername: 'web.h2.test' } });
  t.teardown(() => agent.close());
  const h1 = await request(`https://127.0.0.1:${port}/`, { dispatcher: agent, headers: { host: 'web.h2.test' } });
  t.equal(h1.statusCode, 200);
  await h1.body.text();

  await r.rewrite(`listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:0 }\ntls:\n  certificates: [{ cert: h2.pem, key: h2.key }]\n  http2: false\n${apps}`);
  t.equal((await hello(port, { servername: 'web.h2.test', ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'http/1.1');
  await t.rejects(hello(port, { servername: 'web.h2.test', ALPNProtocols: ['h2'] }), 'a client that speaks only h2 fails the handshake (no_application_protocol)');
});

t.test('HTTP/2 requests are routed by :authority like Host: weights, X-Forwarded-*, request IDs, sticky cookies; no pseudo-header goes upstream', async (t) => {
  const v1 = await upstream('v1');
  const v2 = await upstream('v2');
  const r = await router(`
apps:
  web:
    domains: [web.h2.test]
    versions:
      v1: { weight: 1, endpoints: ["${v1.address}"] }
      v2: { weight: 3, endpoints: ["${v2.address}"] }
  sticky:
    domains: [sticky.h2.test]
    sticky: true
    versions:
      v1: { weight: 1, endpoints: ["${v1.address}"] }
      v2: { weight: 1, endpoints: ["${v2.address}"] }
`);
  const s = await session(r);
  t.teardown(() => s.close());
  const served = { v1: 0, v2: 0 };
  for (let i = 0; i < 40; i++) served[json(await h2(s, { ':path': `/p?i=${i}` })).upstream as 'v1' | 'v2']++;
  t.same(served, { v1: 10, v2: 30 }, 'weights 1:3 over 40 requests on one session');

  const a = await h2(s, { ':path': '/where?q=1', 'x-request-id': 'fwtest-h2-id', cookie: 'a=1' });
  const seen = json(a);
  t.equal(seen.url, '/where?q=1');
  t.equal(seen.headers.host, 'web.h2.test', ':authority becomes Host');
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal(seen.headers['x-forwarded-host'], 'web.h2.test');
  t.equal(seen.headers['x-forwarded-port'], String(httpsPort(r)));
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(seen.headers['x-request-id'], 'fwtest-h2-id');
  const last = (seen.upstream === 'v1' ? v1 : v2) as TestUpstream;
  t.same(last.lastRawHeaders.filter((_, i) => i % 2 === 0 && last.lastRawHeaders[i]!.startsWith(':')), [], 'no pseudo-header field is forwarded');

  // Cookies split into several fields (as HTTP/2 allows) reach the endpoint as one.
  const split = json(await h2(s, { ':path': '/', cookie: ['a=1', 'b=2'] }));
  t.equal(split.headers.cookie, 'a=1; b=2');

  // Unknown :authority: the 404 page; a Host naming another authority than :authority is refused.
  const miss = await h2(s, { ':authority': 'nobody.h2.test', ':path': '/' });
  t.equal(miss.status, 404);
  t.equal(miss.headers['x-fairway-error'], 'FW_NO_ROUTE');
  const twoHosts = await h2(s, { ':path': '/', host: 'other.h2.test' });
  t.equal(twoHosts.status, 400);
  t.equal(twoHosts.headers['x-fairway-error'], 'FW_BAD_REQUEST');

  // Sticky versions: the cookie set over h2 pins the next requests.
  const first = await h2(s, { ':authority': 'sticky.h2.test', ':path': '/' });
  const setCookie = String(first.headers['set-cookie']);
  t.match(setCookie, /Secure/, 'the sticky cookie is Secure on HTTPS');
  const pinned = json(first).upstream;
  const cookie = setCookie.split(';')[0]!;
  for (let i = 0; i < 6; i++) t.equal(json(await h2(s, { ':authority': 'sticky.h2.test', ':path': '/', cookie })).upstream, pinned);
});

t.test('behind the PROXY protocol, an HTTP/2 request\'s client is the declared address: allow list, X-Forwarded-For, access log', async (t) => {
  const echo = await upstream('echo');
  const r = await router(`proxyProtocol: { https: true }
apps:
  web: { domains: [web.h2.test], allow: ["203.0.113.0/24"], versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } } }
  other: { domains: [other.h2.test], allow: ["198.51.100.0/24"], versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } } }
`);
  const port = httpsPort(r);
  const s = connect(`https://127.0.0.1:${port}`, {
    createConnection: () => {
      const tcp = netConnect({ host: '127.0.0.1', port });
      tcp.write(`PROXY TCP4 203.0.113.7 192.0.2.1 56324 ${port}\r\n`);
      return tlsConnect({ socket: tcp, servername: 'web.h2.test', ALPNProtocols: ['h2'], rejectUnauthorized: false });
    },
  });
  t.teardown(() => s.close());
  const seen = json(await h2(s, { ':path': '/', 'x-request-id': 'fwtest-h2-proxied' }));
  t.equal(seen.headers['x-forwarded-for'], '203.0.113.7');
  t.equal((await waitForLog(r, (l) => l.reqId === 'fwtest-h2-proxied')).clientIp, '203.0.113.7');
  const refused = await h2(s, { ':authority': 'other.h2.test', ':path': '/' });
  t.equal(refused.status, 403);
  t.equal(refused.headers['x-fairway-error'], 'FW_CLIENT_FORBIDDEN');
});

t.test('a POST body of a few MB streams both ways over HTTP/2, with and without Content-Length', async (t) => {
  const received: { te?: string; length?: string }[] = [];
  const mirror = await upstream('mirror', (req, res) => {
    received.push({ te: req.headers['transfer-encoding'], length: req.headers['content-length'] });
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
  });
  const r = await router(`apps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${mirror.address}"] } } }\n`);
  const s = await session(r);
  t.teardown(() => s.close());
  const body = randomBytes(4 * 1024 * 1024 + 17);
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  const sized = await h2(s, { ':method': 'POST', ':path': '/up', 'content-length': String(body.length) }, body);
  t.equal(sized.status, 200);
  t.equal(sized.body.length, body.length);
  t.equal(digest(sized.body), digest(body));
  t.same(received[0], { te: undefined, length: String(body.length) }, 'forwarded with its Content-Length');

  // No Content-Length: sent in 64 kB pieces, forwarded chunked as it arrives.
  const pieces = Readable.from((function* () {
    for (let i = 0; i < body.length; i += 65536) yield body.subarray(i, i + 65536);
  })());
  const streamed = await h2(s, { ':method': 'POST', ':path': '/up' }, pieces);
  t.equal(streamed.status, 200);
  t.equal(digest(streamed.body), digest(body));
  t.same(received[1], { te: 'chunked', length: undefined }, 'forwarded chunked');
});

t.test('an upload over HTTP/2 is held back while the endpoint does not read it (flow control end to end), then completes', async (t) => {
  let resume!: () => void;
  let arrive!: () => void;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const sink = await upstream('sink', (req, res) => {
    req.pause();
    resume = () => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(String(n)));
      req.resume();
    };
    arrive();
  });
  const r = await router(`apps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${sink.address}"] } } }\n`);
  const s = await session(r);
  t.teardown(() => s.close());
  const total = 32 * 1024 * 1024;
  let pulled = 0;
  const chunk = Buffer.alloc(64 * 1024, 1);
  const body = new Readable({
    read() {
      if (pulled >= total) return void this.push(null);
      pulled += chunk.length;
      this.push(chunk);
    },
  });
  const answer = h2(s, { ':method': 'POST', ':path': '/', 'content-length': String(total) }, body);
  await arrived;
  // The endpoint reads nothing: what the client could send is bounded by windows and socket buffers, not by the body.
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.ok(pulled < 8 * 1024 * 1024, `${(pulled / 1048576).toFixed(1)} MB of 32 MB left the client while the endpoint read nothing`);
  resume();
  const done = await answer;
  t.equal(done.status, 200);
  t.equal(done.body.toString(), String(total), 'then the whole body arrived');
});

t.test('a client that stops reading an HTTP/2 response: the endpoint is paused, timeouts.clientIdle resets that stream (499 client_idle), the session goes on', async (t) => {
  const big = bigAnswer(64 * 1024 * 1024);
  const origin = await upstream('big', big.handler);
  const r = await router(`timeouts: { clientIdle: 1s }\napps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${origin.address}"] } } }\n`);
  const s = await session(r);
  t.teardown(() => s.close());
  const stream = s.request({ ':authority': 'web.h2.test', ':path': '/big', 'x-request-id': 'fwtest-h2-stalled' });
  stream.on('error', () => {});
  const [head] = (await once(stream, 'response')) as [IncomingHttpHeaders];
  t.equal(head[':status'], 200, 'the response started');
  stream.pause(); // reads nothing more: the stream's flow-control window runs out
  const started = performance.now();
  await big.closed;
  const cutAfter = performance.now() - started;
  t.ok(big.written() < 24 * 1024 * 1024, `the endpoint was paused by backpressure: ${(big.written() / 1048576).toFixed(1)} MB of 64 MB written`);
  t.ok(cutAfter >= 900 && cutAfter < 5000, `the idle timeout cut the exchange (${Math.round(cutAfter)} ms after the client stopped reading)`);
  const line = await waitForLog(r, (l) => l.reqId === 'fwtest-h2-stalled');
  t.equal(line.status, 499, 'logged as the client going away');
  t.equal(line.error, 'client_idle');
  t.equal(line.proto, 'h2');
  if (!stream.closed) await once(stream, 'close');
  t.equal(stream.rstCode, constants.NGHTTP2_CANCEL, 'the stream was reset with CANCEL: the response must not look complete');
  t.notOk(s.closed || s.destroyed, 'the session is still open');
  const next = await h2(s, { ':path': '/' });
  t.equal(next.status, 200, 'and serves the next request');
  t.equal(next.body.toString(), 'small');
});

t.test('an endpoint that dies mid-body of an answer without Content-Length: the HTTP/2 stream is reset with CANCEL, never ended as if complete; the log says 502', async (t) => {
  const broken = await upstream('broken', (req, res) => {
    if (req.url !== '/broken') return void res.end('fine');
    res.writeHead(200, { 'content-type': 'text/plain' }); // chunked: only the end of the body would tell its length
    res.write('partial');
    setImmediate(() => res.socket!.destroy());
  });
  const r = await router(`apps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${broken.address}"] } } }\n`);
  const s = await session(r);
  t.teardown(() => s.close());
  const cut = await h2(s, { ':path': '/broken', 'x-request-id': 'fwtest-h2-broken' });
  t.equal(cut.status, 200, 'the head had gone out');
  t.equal(cut.rstCode, constants.NGHTTP2_CANCEL, 'the stream was reset with CANCEL');
  t.equal(cut.body.toString(), 'partial', 'after the part that came');
  t.equal((await waitForLog(r, (l) => l.reqId === 'fwtest-h2-broken')).status, 502);
  const next = await h2(s, { ':path': '/' });
  t.equal(next.body.toString(), 'fine', 'the session serves the next request');
});

t.test('many concurrent streams on one session all complete; the session announces its stream limit', async (t) => {
  let open = 0;
  let most = 0;
  const slow = await upstream('slow', (req, res) => {
    open++;
    most = Math.max(most, open);
    // Answers once 50 requests are waiting together, or at once after that: the streams really overlap.
    const answer = () => {
      open--;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(req.url);
    };
    if (most >= 50) answer();
    else slow.server.once('fwtest-go', answer);
    if (most === 50) slow.server.emit('fwtest-go');
  });
  slow.server.setMaxListeners(100);
  const r = await router(`apps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${slow.address}"] } } }\n`);
  const s = await session(r);
  t.teardown(() => s.close());
  t.equal(s.remoteSettings.maxConcurrentStreams, MAX_CONCURRENT_STREAMS);
  const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => h2(s, { ':path': `/n/${i}` })));
  t.equal(answers.filter((a) => a.status === 200).length, 300, '300 requests, more than the stream limit, all answered (the client queues the excess)');
  t.ok(answers.every((a, i) => a.body.toString() === `/n/${i}`), 'each stream got its own answer');
  t.ok(most >= 50, `${most} requests were at the endpoint at once`);
});

t.test('HTTP/2 responses never carry connection-specific header fields; HSTS, compression and error pages apply as on HTTP/1.1', async (t) => {
  const hop = await upstream('hop', (_req, res) => {
    res.writeHead(200, {
      'content-type': 'text/plain', connection: 'keep-alive', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive',
      upgrade: 'fwtest/1', 'x-kept': 'yes',
    });
    res.write('chunked ');
    res.end('body'); // no Content-Length: Transfer-Encoding: chunked from the endpoint
  });
  const text = await upstream('text', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('compress me '.repeat(200));
  });
  const r = await router(`
apps:
  web:
    domains: [web.h2.test]
    tls: { hsts: { maxAge: 600 } }
    versions: { v1: { weight: 1, endpoints: ["${hop.address}"] } }
  text:
    domains: [text.h2.test]
    versions: { v1: { weight: 1, endpoints: ["${text.address}"] } }
  closed:
    domains: [closed.h2.test]
    maintenance: true
    versions: { v1: { weight: 1, endpoints: ["${hop.address}"] } }
  small:
    domains: [small.h2.test]
    bodySize: 1kb
    versions: { v1: { weight: 1, endpoints: ["${hop.address}"] } }
`);
  const s = await session(r);
  t.teardown(() => s.close());
  const a = await h2(s, { ':path': '/' });
  t.equal(a.status, 200);
  t.equal(a.body.toString(), 'chunked body');
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']) t.equal(a.headers[name], undefined, `no ${name}`);
  t.equal(a.headers['x-kept'], 'yes');
  t.equal(a.headers['strict-transport-security'], 'max-age=600');

  const zipped = await h2(s, { ':authority': 'text.h2.test', ':path': '/', 'accept-encoding': 'gzip' });
  t.equal(zipped.headers['content-encoding'], 'gzip');
  t.ok(zipped.body.length < 2400, 'the body is compressed');

  const maintenance = await h2(s, { ':authority': 'closed.h2.test', ':path': '/' });
  t.equal(maintenance.status, 503);
  t.equal(maintenance.headers['x-fairway-error'], 'FW_APP_MAINTENANCE');
  t.equal(maintenance.headers['retry-after'], '60');
  t.match(maintenance.body.toString(), /503 Service Unavailable/);

  // Over the app's body size: 413 at once with a Content-Length; when the body streams, 413 once it passes
  // the limit, and the client's upload is stopped with RST_STREAM NO_ERROR (the session stays usable).
  const big = randomBytes(64 * 1024);
  const declared = await h2(s, { ':authority': 'small.h2.test', ':method': 'POST', ':path': '/', 'content-length': String(big.length) }, big);
  t.equal(declared.status, 413);
  t.equal(declared.headers['x-fairway-error'], 'FW_BODY_TOO_LARGE');
  t.equal(declared.rstCode, constants.NGHTTP2_NO_ERROR, 'the unread upload is reset with NO_ERROR after the answer');
  const endless = new Readable({ read() { this.push(randomBytes(16 * 1024)); } });
  const streamed = await h2(s, { ':authority': 'small.h2.test', ':method': 'POST', ':path': '/' }, endless);
  endless.destroy();
  t.equal(streamed.status, 413);
  t.equal(streamed.rstCode, constants.NGHTTP2_NO_ERROR, 'the endless upload is reset with NO_ERROR after the answer');
  t.equal((await h2(s, { ':path': '/' })).status, 200, 'the session still serves');
});

t.test('header limits: more fields than limits.maxHeadersCount get 431, a header list over limits.maxHeaderSize resets the stream; the session goes on', async (t) => {
  const echo = await upstream('echo');
  const r = await router(`limits: { maxHeaderSize: 8kb, maxHeadersCount: 20 }\napps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } } }\n`);
  const s = await session(r);
  t.teardown(() => s.close());
  t.equal(s.remoteSettings.maxHeaderListSize, 8192, 'the header list size announced is limits.maxHeaderSize');
  const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-f${i}`, 'v']));
  t.equal((await h2(s, { ':path': '/', ...fields(19) })).status, 200, '20 fields pass (:authority counts, as Host does on HTTP/1.1)');
  const many = await h2(s, { ':path': '/', ...fields(20) });
  t.equal(many.status, 431);
  t.equal(many.headers['x-fairway-error'], 'FW_HEADERS_TOO_LARGE');
  await t.rejects(h2(s, { ':path': '/', 'x-big': 'a'.repeat(9000) }), /code 11/, 'RST_STREAM ENHANCE_YOUR_CALM, no response');
  t.equal((await h2(s, { ':path': '/', te: 'trailers' })).status, 200, 'te: trailers is allowed (and not forwarded)');
  t.equal(echo.lastHeaders.te, undefined);
});

t.test('a request with TE other than "trailers", or another connection-specific field, is reset with PROTOCOL_ERROR before routing; the session goes on', async (t) => {
  const echo = await upstream('echo', (req, res) => {
    req.resume();
    res.end(`served ${req.url}`);
  });
  const r = await router(`apps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } } }\n`);
  const raw = await RawHttp2.open(httpsPort(r), 'web.h2.test');
  t.teardown(() => raw.close());
  raw.get(1, 'web.h2.test', '/te', [['te', 'gzip']]);
  raw.get(3, 'web.h2.test', '/conn', [['connection', 'keep-alive']]);
  raw.get(5, 'web.h2.test', '/trailers', [['te', 'trailers']]);
  for (const stream of [1, 3]) {
    const reset = await raw.frame((f) => f.type === FRAME.RST_STREAM && f.stream === stream);
    t.equal(errorCode(reset), constants.NGHTTP2_PROTOCOL_ERROR, `stream ${stream} reset with PROTOCOL_ERROR`);
  }
  await raw.frame((f) => f.type === FRAME.DATA && f.stream === 5 && (f.flags & END_STREAM) !== 0);
  t.equal(raw.body(5), 'served /trailers', '"TE: trailers" is allowed and served, on the same session');
  t.equal(echo.hits, 1, 'the refused requests never reached the endpoint');
  t.notOk(raw.frames.some((f) => f.type === FRAME.GOAWAY), 'no GOAWAY: the connection was not closed');
});

t.test('the access log says proto h2 for HTTP/2 requests, proxied or answered by the router', async (t) => {
  const echo = await upstream('echo');
  const r = await router(`apps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } } }\n`);
  const s = await session(r);
  t.teardown(() => s.close());
  await h2(s, { ':path': '/logged', 'x-request-id': 'fwtest-h2-log' });
  await h2(s, { ':authority': 'nobody.h2.test', ':path': '/', 'x-request-id': 'fwtest-h2-404' });
  await r.get('web.h2.test', '/plain', { headers: { 'x-request-id': 'fwtest-h1-log' } });
  const proxied = await waitForLog(r, (l) => l.reqId === 'fwtest-h2-log');
  t.equal(proxied.proto, 'h2');
  t.equal(proxied.status, 200);
  const answered = await waitForLog(r, (l) => l.reqId === 'fwtest-h2-404');
  t.equal(answered.proto, 'h2');
  t.equal(answered.error, 'FW_NO_ROUTE');
  t.equal((await waitForLog(r, (l) => l.reqId === 'fwtest-h1-log')).proto, undefined, 'HTTP/1.x lines have no proto');
  const metrics = (await r.adminGet('/metrics')).body;
  t.match(metrics, /fairway_requests_total\{app="web",version="v1",status_class="2xx"\} 2\b/, 'the HTTP/2 request is counted like the HTTP/1.1 one');
});

t.test('draining: GOAWAY at once, the stream in flight completes, then the session closes', async (t) => {
  let release!: () => void;
  let arrive!: () => void;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const held = await upstream('held', (_req, res) => {
    release = () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('finished');
    };
    arrive();
  });
  const r = await router(`apps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${held.address}"] } } }\n`);
  const s = await session(r);
  const goaway = once(s, 'goaway');
  const closed = once(s, 'close');
  const inFlight = h2(s, { ':path': '/long' });
  await arrived;
  const stopped = r.router.close(5000);
  const [code] = (await goaway) as [number];
  t.equal(code, constants.NGHTTP2_NO_ERROR, 'GOAWAY with NO_ERROR while the stream is in flight');
  release();
  const answer = await inFlight;
  t.equal(answer.status, 200);
  t.equal(answer.body.toString(), 'finished');
  await closed;
  const report = await stopped;
  t.same(report.cut, { requests: 0, tunnels: 0, tcpSessions: 0 }, 'nothing was cut');
});

t.test('at the drain deadline, open streams are cut and counted', async (t) => {
  let arrive!: () => void;
  const bothArrived = new Promise<void>((resolve) => (arrive = resolve));
  const never = await upstream('never', (_req, _res, u) => {
    if (u.hits === 2) arrive();
  });
  const r = await router(`apps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${never.address}"] } } }\n`);
  const s = await session(r);
  const streams = [h2(s, { ':path': '/a' }), h2(s, { ':path': '/b' })].map((p) => p.catch((err: Error) => err));
  await bothArrived;
  const report = await r.router.close(200);
  t.equal(report.cut.requests, 2, 'both streams were cut');
  for (const result of await Promise.all(streams)) t.type(result, Error, 'the client sees each stream end without an answer');
});

t.test('timeouts.clientKeepAlive closes a session without open streams (GOAWAY), never one with a stream in flight', async (t) => {
  let answer!: () => void;
  let arrive!: () => void;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const held = await upstream('held', (_req, res) => {
    answer = () => res.end('late');
    arrive();
  });
  const r = await router(`timeouts: { clientKeepAlive: 300ms }\napps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${held.address}"] } } }\n`);
  const s = await session(r);
  let goawayAt = 0;
  s.once('goaway', () => (goawayAt = performance.now()));
  const closed = once(s, 'close');
  const pending = h2(s, { ':path': '/slow' });
  await arrived;
  // Silent longer than the idle timeout, but with a stream open: the session stays.
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.equal(goawayAt, 0, 'no GOAWAY while a stream is open');
  const answeredAt = performance.now();
  answer();
  t.equal((await pending).status, 200);
  await closed;
  t.ok(goawayAt - answeredAt >= 250, `GOAWAY ${Math.round(goawayAt - answeredAt)} ms after the session turned idle`);
});

t.test('a session accepted while draining gets its GOAWAY after its first request, which is served', async (t) => {
  const echo = await upstream('echo');
  const r = await router(`shutdown: { delay: 1s, drainTimeout: 5s }\napps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } } }\n`);
  const stopped = r.router.drain('fwtest');
  // During shutdown.delay the listener still accepts.
  const s = await session(r);
  const goaway = once(s, 'goaway');
  const closed = once(s, 'close');
  const first = await h2(s, { ':path': '/first' });
  t.equal(first.status, 200, 'the first request is served');
  const [code, lastStreamId] = (await goaway) as [number, number];
  t.equal(code, constants.NGHTTP2_NO_ERROR);
  t.equal(lastStreamId, 1, 'GOAWAY names the first stream as the last one processed');
  await closed;
  t.same((await stopped).cut, { requests: 0, tunnels: 0, tcpSessions: 0 });
});

t.test('workers: fairway serve --workers 2 speaks HTTP/2 on its HTTPS listener, each worker the same way', async (t) => {
  const echo = await upstream('echo');
  const { dir, text } = configIn(`shutdown: { delay: 0s, drainTimeout: 2s }\napps:\n  web: { domains: [web.h2.test], versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } } }\n`);
  const file = path.join(dir, 'fairway.yaml');
  writeFileSync(file, text);
  const lines: Record<string, any>[] = [];
  const waiting = new Map<string, (e: Record<string, any>) => void>();
  const proc = await startRouterProcess(file, 'serve', {}, {
    workers: 2,
    onLine: (e) => {
      lines.push(e);
      if (typeof e.reqId === 'string') waiting.get(e.reqId)?.(e);
    },
  });
  t.teardown(() => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
  });
  /** The access-log line of request `id`, printed or to come (within 10 s). */
  const accessLine = (id: string) => new Promise<Record<string, any>>((resolve, reject) => {
    const found = lines.find((e) => e.reqId === id);
    if (found) return resolve(found);
    const timer = setTimeout(() => reject(new Error(`no access-log line for ${id}`)), 10_000);
    waiting.set(id, (e) => (clearTimeout(timer), resolve(e)));
  });
  const serving = lines.find((e) => e.msg === 'fairway is serving')!;
  const port = Number(String(serving.https).split(':').pop());
  // New sessions until both workers answered one (the kernel picks the accepting worker), bounded.
  const workers = new Set<number>();
  for (let i = 0; i < 100 && workers.size < 2; i++) {
    const s = await session(port);
    const a = await h2(s, { ':path': '/', 'x-request-id': `fwtest-h2w-${i}` });
    s.close();
    t.equal(a.status, 200);
    t.equal(json(a).headers.host, 'web.h2.test');
    const line = await accessLine(`fwtest-h2w-${i}`);
    t.equal(line.proto, 'h2');
    workers.add(line.worker as number);
  }
  t.equal(workers.size, 2, 'both workers served HTTP/2 sessions');
  t.equal(await proc.stop(), 0);
});
