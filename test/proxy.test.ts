import t from 'tap';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { refusedAddress, upstreamStarter } from './helpers/upstreams.js';
import { startTestRouter, type TestRouter, waitForLog, routerStarter } from './helpers/test-router.js';
import { tally } from './helpers/sample.js';

const upstream = upstreamStarter(t);

const router = routerStarter(t);

const upstreamOf = (a: { json(): { upstream: string } }) => a.json().upstream;

/** A config with one app at host app.test, one version, one endpoint; `settings` is YAML put before `apps`. */
const appTest = (endpoint: string, settings = '') => `${settings}
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["${endpoint}"] } }
`;

t.test('routes by host: exact, wildcard, platform subdomain; unknown hosts get a 404 page', async (t) => {
  const web = await upstream('web');
  const api = await upstream('api');
  const r = await router(`
platformDomain: example.com
apps:
  web:
    domains: [web, www.example.test]
    versions: { v1: { weight: 1, endpoints: ["${web.address}"] } }
  api:
    domains: ["*.example.test"]
    versions: { v1: { weight: 1, endpoints: ["${api.address}"] } }
`);
  t.equal(upstreamOf(await r.get('web.example.com')), 'web');
  t.equal(upstreamOf(await r.get('www.example.test:8080')), 'web');
  t.equal(upstreamOf(await r.get('anything.example.test')), 'api');
  t.equal(upstreamOf(await r.get('api.example.com')), 'api', 'platform subdomain reaches the app by name');
  const miss = await r.get('nobody.example.org');
  t.equal(miss.status, 404);
  t.equal(miss.headers['x-fairway-error'], 'FW_NO_ROUTE');
  t.match(miss.body, /404 Not Found/);
  t.notMatch(miss.body, /nobody/, 'the page does not echo the host back');
});

t.test('weighted split: 90/10 and 70/30/0 are exact within 1% over 1000 requests, weight 0 is never hit', async (t) => {
  const [a, b, c] = [await upstream('a'), await upstream('b'), await upstream('c')];
  const r = await router(`
apps:
  ninety:
    domains: [ninety.test]
    versions:
      v1: { weight: 90, endpoints: ["${a.address}"] }
      v2: { weight: 10, endpoints: ["${b.address}"] }
  seventy:
    domains: [seventy.test]
    versions:
      v1: { weight: 70, endpoints: ["${a.address}"] }
      v2: { weight: 30, endpoints: ["${b.address}"] }
      v3: { weight: 0, endpoints: ["${c.address}"] }
`);
  const ninety = await tally(1000, () => r.get('ninety.test'), upstreamOf);
  t.ok(Math.abs(ninety.a! - 900) <= 10 && Math.abs(ninety.b! - 100) <= 10, `90/10 gave ${JSON.stringify(ninety)}`);
  const seventy = await tally(1000, () => r.get('seventy.test'), upstreamOf);
  t.ok(Math.abs(seventy.a! - 700) <= 10 && Math.abs(seventy.b! - 300) <= 10, `70/30/0 gave ${JSON.stringify(seventy)}`);
  t.equal(c.hits, 0, 'the weight-0 version got no request');
});

t.test('a version without endpoints gives its share to the others; an app with none answers 503', async (t) => {
  const a = await upstream('a');
  const r = await router(`
apps:
  half:
    domains: [half.test]
    versions:
      v1: { weight: 50, endpoints: ["${a.address}"] }
      v2: { weight: 50, endpoints: [] }
  none:
    domains: [none.test]
    versions:
      v1: { weight: 1, endpoints: [] }
`);
  t.same(await tally(20, () => r.get('half.test'), (x) => String(x.status)), { 200: 20 });
  const none = await r.get('none.test');
  t.equal(none.status, 503);
  t.equal(none.headers['x-fairway-error'], 'FW_NO_ENDPOINTS');
});

t.test('a refused connection is retried on another endpoint before any byte is sent', async (t) => {
  const ok = await upstream('ok');
  const dead = await refusedAddress();
  const r = await router(`
apps:
  app:
    domains: [app.test]
    loadBalancing: round-robin
    versions:
      v1: { weight: 1, endpoints: ["${dead}", "${ok.address}"] }
`);
  const answers = await tally(10, () => r.get('app.test', '/', { method: 'POST', body: 'payload', headers: { 'content-type': 'text/plain' } }), (x) => `${x.status} ${upstreamOf(x)}`);
  t.same(answers, { '200 ok': 10 }, 'every request reached the live endpoint, body included');
  t.equal(ok.hits, 10);
  const metrics = (await r.adminGet('/metrics')).body;
  t.match(metrics, /fairway_upstream_retries_total\{app="app",version="v1"\} [1-9]/);
  t.match(metrics, /fairway_upstream_errors_total\{app="app",version="v1",reason="refused"\} [1-9]/);
});

t.test('when every endpoint refuses, the client gets 502 FW_UPSTREAM_REFUSED', async (t) => {
  const r = await router(`
apps:
  app:
    domains: [app.test]
    versions:
      v1: { weight: 1, endpoints: ["${await refusedAddress()}", "${await refusedAddress()}"] }
`);
  const res = await r.get('app.test');
  t.equal(res.status, 502);
  t.equal(res.headers['x-fairway-error'], 'FW_UPSTREAM_REFUSED');
});

t.test('an upstream that dies mid-response: the client connection is cut and the log says 502', async (t) => {
  const broken = await upstream('broken', (_req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('partial');
    setImmediate(() => res.socket!.destroy());
  });
  const r = await router(appTest(broken.address));
  await t.rejects(r.get('app.test'), 'the client sees an incomplete response, not a clean one');
  const line = await waitForLog(r, (l) => l.log === 'access' && l.host === 'app.test');
  t.equal(line.status, 502);
});

t.test('an upstream that does not answer in time gets 504 FW_UPSTREAM_TIMEOUT', async (t) => {
  const slow = await upstream('slow', () => { /* never answers */ });
  const r = await router(appTest(slow.address, 'timeouts: { upstreamHeaders: 200ms }'));
  const res = await r.get('app.test');
  t.equal(res.status, 504);
  t.equal(res.headers['x-fairway-error'], 'FW_UPSTREAM_TIMEOUT');
});

t.test('an upstream that stalls mid-body past timeouts.upstreamIdle: the client connection is cut and the log says 504', async (t) => {
  const stalls = await upstream('stalls', (_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('first part'); // then nothing more
  });
  const r = await router(appTest(stalls.address, 'timeouts: { upstreamIdle: 300ms }'));
  await t.rejects(r.get('app.test'));
  const line = await waitForLog(r, (l) => l.log === 'access' && l.host === 'app.test');
  t.equal(line.status, 504);
  t.equal(line.error, 'timeout');
});

t.test('a malformed upstream response is 502, and the router keeps serving', async (t) => {
  const garbage = await upstream('garbage', (_req, res) => {
    res.socket!.end('HTTP/1.1 abc nonsense\r\n\r\n');
  });
  const fine = await upstream('fine');
  const r = await router(`
apps:
  bad:
    domains: [bad.test]
    versions: { v1: { weight: 1, endpoints: ["${garbage.address}"] } }
  good:
    domains: [good.test]
    versions: { v1: { weight: 1, endpoints: ["${fine.address}"] } }
`);
  t.equal((await r.get('bad.test')).status, 502);
  t.equal((await r.get('good.test')).status, 200);
});

t.test('bodies over limits.maxBodySize get 413, with or without Content-Length', async (t) => {
  const sink = await upstream('sink');
  const r = await router(appTest(sink.address, 'limits: { maxBodySize: 1kb }'));
  t.equal((await r.get('app.test', '/', { method: 'POST', body: 'x'.repeat(1024) })).status, 200, 'exactly the limit passes');
  const big = await r.get('app.test', '/', { method: 'POST', body: 'x'.repeat(1025) });
  t.equal(big.status, 413);
  t.equal(big.headers['x-fairway-error'], 'FW_BODY_TOO_LARGE');
  const hitsBefore = sink.hits;
  const chunked = await r.get('app.test', '/', { method: 'POST', body: Readable.from([Buffer.alloc(600), Buffer.alloc(600)]) });
  t.equal(chunked.status, 413, 'a chunked body is counted while it streams');
  t.ok(sink.hits <= hitsBefore + 1);
});

t.test('headers over limits.maxHeaderSize or maxHeadersCount get 431', async (t) => {
  const u = await upstream('u');
  const r = await router(appTest(u.address, 'limits: { maxHeaderSize: 2kb, maxHeadersCount: 10 }'));
  const tooBig = await rawRequest(r, `GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: ${'a'.repeat(3000)}\r\n\r\n`);
  t.match(tooBig, /^HTTP\/1\.1 431 /);
  const headers = Array.from({ length: 12 }, (_, i) => `x-h${i}: ${i}`).join('\r\n');
  const tooMany = await rawRequest(r, `GET / HTTP/1.1\r\nHost: app.test\r\n${headers}\r\n\r\n`);
  t.match(tooMany, /^HTTP\/1\.1 431 /);
  t.match(tooMany, /x-fairway-error: FW_HEADERS_TOO_LARGE/);
  t.equal(u.hits, 0);
});

t.test('forwarded requests keep Host, drop hop-by-hop headers, and carry X-Forwarded-* and X-Request-Id', async (t) => {
  const echo = await upstream('echo');
  const r = await router(appTest(echo.address));
  // Raw bytes: HTTP clients refuse to send some of these headers themselves.
  const answer = await rawRequest(r, [
    'GET /path?q=1 HTTP/1.1', 'Host: App.Test:1234', 'Connection: close, x-hop', 'X-Hop: secret', 'Keep-Alive: timeout=5',
    'TE: trailers', 'X-Forwarded-For: 6.6.6.6', 'X-Request-Id: abc-123', 'X-Custom: kept', '', '',
  ].join('\r\n'));
  t.match(answer, /^HTTP\/1\.1 200 /);
  const h = echo.lastHeaders as Record<string, string>;
  t.match(answer, /"url":"\/path\?q=1"/, 'the target is forwarded as sent');
  t.equal(h.host, 'App.Test:1234', 'Host preserved as sent');
  t.equal(h['x-custom'], 'kept');
  t.equal(h['x-hop'], undefined, 'headers named in Connection are dropped');
  t.equal(h['keep-alive'], undefined);
  t.equal(h.te, undefined);
  t.not(h.connection, 'close, x-hop', 'the client\'s Connection header is not forwarded');
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'a client-sent X-Forwarded-For is replaced (no trusted proxies yet)');
  t.equal(h['x-forwarded-proto'], 'http');
  t.equal(h['x-forwarded-host'], 'App.Test:1234');
  t.equal(h['x-forwarded-port'], String(r.router.httpAddress.port));
  t.equal(h['x-request-id'], 'abc-123', 'an incoming request id is kept');
  const fresh = (await r.get('app.test')).json().headers as Record<string, string>;
  t.match(fresh['x-request-id'], /^[0-9a-f-]{36}$/, 'a request id is generated when absent');
});

t.test('response headers are relayed without hop-by-hop ones; multi-value headers survive', async (t) => {
  const u = await upstream('u', (_req, res) => {
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.setHeader('x-app', 'yes');
    res.setHeader('keep-alive', 'timeout=1');
    res.writeHead(201);
    res.end('made');
  });
  const r = await router(appTest(u.address));
  const res = await r.get('app.test');
  t.equal(res.status, 201);
  t.equal(res.body, 'made');
  t.same(res.headers['set-cookie'], ['a=1', 'b=2']);
  t.equal(res.headers['x-app'], 'yes');
  t.not(res.headers['keep-alive'], 'timeout=1');
});

t.test('one JSON access-log line per request with the documented fields', async (t) => {
  const u = await upstream('u');
  const r = await router(appTest(u.address));
  await r.get('app.test', '/logged?x=1', { headers: { 'x-request-id': 'log-me' } });
  const line = await waitForLog(r, (l) => l.reqId === 'log-me');
  t.match(line, {
    level: 'info', log: 'access', reqId: 'log-me', app: 'app', version: 'v1', endpoint: u.address,
    method: 'GET', host: 'app.test', path: '/logged?x=1', status: 200, clientIp: '127.0.0.1',
  });
  t.type(line.time, 'string');
  t.type(line.bytes, 'number');
  t.ok((line.bytes as number) > 0);
  t.type(line.duration, 'number');
  t.type(line.upstreamDuration, 'number');
});

/** Sends raw bytes and returns everything the router answered before closing. */
function rawRequest(r: TestRouter, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(r.router.httpAddress.port, '127.0.0.1');
    let out = '';
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('end', () => resolve(out));
    socket.on('error', (err) => (out ? resolve(out) : reject(err)));
    socket.write(text);
  });
}

t.test('closing the router lets a request in flight finish, then refuses new connections', async (t) => {
  let release: () => void = () => {};
  const held = await upstream('held', (_req, res) => {
    release = () => res.end('finished');
  });
  const r = await startTestRouter(appTest(held.address));
  const inFlight = r.get('app.test');
  while (held.hits === 0) await new Promise((resolve) => setImmediate(resolve));
  const closed = r.close();
  release();
  const res = await inFlight;
  t.equal(res.status, 200);
  t.equal(res.body, 'finished');
  await closed;
  await t.rejects(request(r.http, { headers: { host: 'app.test' } }), { code: 'ECONNREFUSED' });
});

t.test('requests the router answers itself are logged with their error code and counted', async (t) => {
  const u = await upstream('u');
  const r = await router(`
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
  down:
    domains: [down.test]
    versions: { v1: { weight: 1, endpoints: [] } }
`);
  await r.get('nobody.test', '/x', { headers: { 'x-request-id': 'r-404' } });
  await r.get('down.test', '/y', { headers: { 'x-request-id': 'r-503' } });
  t.match(await waitForLog(r, (l) => l.reqId === 'r-404'), { log: 'access', status: 404, host: 'nobody.test', path: '/x', error: 'FW_NO_ROUTE', clientIp: '127.0.0.1' });
  t.match(await waitForLog(r, (l) => l.reqId === 'r-503'), { log: 'access', status: 503, app: 'down', error: 'FW_NO_ENDPOINTS' });
  const metrics = (await r.adminGet('/metrics')).body;
  t.match(metrics, /fairway_unrouted_requests_total\{reason="no_route"\} 1/);
  t.match(metrics, /fairway_requests_total\{app="down",version="",status_class="5xx"\} 1/);
});
