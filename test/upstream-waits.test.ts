import t from 'tap';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { bigAnswer, upstreamStarter } from './helpers/upstreams.js';
import { routerStarter, waitForLog } from './helpers/test-router.js';

const upstream = upstreamStarter(t);
const router = routerStarter(t);

/** One app at host app.test with `read` as its read timeout (both upstream waits). */
const app = (endpoint: string, read: string) => `
apps:
  app:
    domains: [app.test]
    timeouts: { read: ${read} }
    versions: { v1: { weight: 1, endpoints: ["${endpoint}"] } }
`;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('a request without a body arms no timer of undici\'s: its upstream waits are kept by the router\'s one sweep', async (t) => {
  // undici's per-request timer objects outlive the young generation at load (upstream-deadlines.ts).
  // Counted through undici's own timer module, the one its HTTP/1.1 client calls, for the
  // connections to the endpoint only (this test's client is undici too).
  const up = await upstream('up');
  const timers = createRequire(import.meta.url)('undici/lib/util/timers.js') as { setFastTimeout: (...args: unknown[]) => unknown };
  const original = timers.setFastTimeout;
  let armed = 0;
  timers.setFastTimeout = (...args: unknown[]) => {
    const parser = (args[2] as WeakRef<{ socket?: { remotePort?: number } }> | undefined)?.deref?.();
    if (parser?.socket?.remotePort === up.port) armed++;
    return original(...args);
  };
  t.teardown(() => void (timers.setFastTimeout = original));
  const r = await router(app(up.address, '5s'));
  for (let i = 0; i < 200; i++) t.equal((await r.get('app.test')).status, 200, 'GET answered');
  t.equal(armed, 0, '200 GETs proxied, no undici timer armed');
  for (let i = 0; i < 5; i++) t.equal((await r.get('app.test', '/', { method: 'POST', body: 'x'.repeat(100) })).status, 200, 'POST answered');
  t.ok(armed >= 5, `a request with a body keeps undici's wait for headers, which starts when the upload ends (${armed} timers)`);
});

t.test('the wait for response headers starts when a request body has been sent: a slow upload longer than the read timeout is answered', async (t) => {
  const up = await upstream('echo-length', (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.end(String(n)));
  });
  const r = await router(app(up.address, '300ms'));
  const body = Readable.from((async function* () {
    for (let i = 0; i < 4; i++) {
      yield Buffer.from('part-');
      await pause(150); // 600 ms in all, twice the read timeout
    }
  })());
  const res = await r.get('app.test', '/', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  t.equal(res.status, 200, 'not a 504: the upload flowed');
  t.equal(res.body, '20');
  const silent = await upstream('silent', (req) => req.resume());
  const r2 = await router(app(silent.address, '300ms'));
  const started = performance.now();
  const timedOut = await r2.get('app.test', '/', { method: 'POST', body: 'hello' });
  t.equal(timedOut.status, 504, 'an endpoint that reads the body and never answers: 504');
  t.equal(timedOut.headers['x-fairway-error'], 'FW_UPSTREAM_TIMEOUT');
  t.ok(performance.now() - started < 3000);
});

t.test('the read timeout bounds each pause of a response body, not the whole body: chunks every 150 ms for 750 ms pass a 300 ms timeout', async (t) => {
  const up = await upstream('ticker', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let n = 0;
    const tick = setInterval(() => {
      if (++n < 5) res.write(`tick ${n}\n`);
      else {
        clearInterval(tick);
        res.end('done\n');
      }
    }, 150);
  });
  const r = await router(app(up.address, '300ms'));
  const res = await r.get('app.test');
  t.equal(res.status, 200);
  t.equal(res.body, 'tick 1\ntick 2\ntick 3\ntick 4\ndone\n', 'the whole body');
  t.match(await waitForLog(r, (l) => l.log === 'access' && l.host === 'app.test'), { status: 200 });
  t.notOk(r.logs.some((l) => l.log === 'access' && l.error !== undefined), 'no error logged');
});

t.test('a response paused because the client stops reading is not cut by the read timeout: the wait resumes with the reading', async (t) => {
  const SIZE = 32 * 1024 * 1024;
  const big = bigAnswer(SIZE);
  const up = await upstream('big', big.handler);
  const r = await router(app(up.address, '200ms'));
  const res = await request(`${r.http}/big`, { headers: { host: 'app.test' } });
  t.equal(res.statusCode, 200);
  // The client reads nothing for 1 s, five times the read timeout; backpressure stops the endpoint.
  await pause(1000);
  t.ok(big.written() < SIZE, `the endpoint was paused (${(big.written() / 1048576).toFixed(1)} of 32 MB made)`);
  let received = 0;
  for await (const chunk of res.body) received += (chunk as Buffer).length;
  t.equal(received, SIZE, 'the whole body arrives once the client reads');
  t.match(await waitForLog(r, (l) => l.log === 'access' && l.host === 'app.test'), { status: 200, bytes: SIZE });
});
