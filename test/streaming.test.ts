import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { startUpstream, type TestUpstream } from './helpers/upstreams.js';
import { startRouterProcess } from './helpers/router-process.js';

const SIZE = 50 * 1024 * 1024;
const CHUNK = 64 * 1024;

/**
 * `SIZE` bytes of a repeating pattern, produced chunk by chunk (never held whole).
 * `onPull` sees each chunk as the consumer pulls it (a 'data' listener would make the
 * stream flow on its own and hide backpressure).
 */
function pattern(onPull?: (bytes: number) => void): Readable {
  let sent = 0;
  const chunk = Buffer.alloc(CHUNK, 'fairway-');
  return new Readable({
    read() {
      if (sent >= SIZE) return void this.push(null);
      sent += CHUNK;
      onPull?.(CHUNK);
      this.push(chunk);
    },
  });
}

/** A router process serving host files.test from `origin`, access log off. */
function routerFor(origin: TestUpstream) {
  const configFile = path.join(mkdtempSync(path.join(tmpdir(), 'fairway-stream-')), 'fairway.yaml');
  writeFileSync(configFile, `
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
log: { access: false }
apps:
  files:
    domains: [files.test]
    versions: { v1: { weight: 1, endpoints: ["${origin.address}"] } }
`);
  return startRouterProcess(configFile);
}

const expectedHash = await (async () => {
  const h = createHash('sha256');
  for await (const c of pattern()) h.update(c as Buffer);
  return h.digest('hex');
})();

t.test('50 MB downloads and uploads pass through intact, with and without Content-Length', async (t) => {
  const origin = await startUpstream('origin', (req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      pattern().pipe(res);
      return;
    }
    const h = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => { bytes += c.length; h.update(c); });
    req.on('end', () => res.end(JSON.stringify({ bytes, sha256: h.digest('hex') })));
  });
  const router = await routerFor(origin);
  t.teardown(async () => {
    await router.stop();
    await origin.close();
  });

  // Warm up so the baseline includes the pools, parsers and JIT.
  for (let i = 0; i < 20; i++) {
    await (await request(`${router.http}/`, { method: 'POST', headers: { host: 'files.test' }, body: 'warm' })).body.text();
  }
  const baseline = router.memory().peak;
  const down = await request(`${router.http}/big`, { headers: { host: 'files.test' } });
  t.equal(down.statusCode, 200);
  const h = createHash('sha256');
  let received = 0;
  for await (const c of down.body) {
    received += (c as Buffer).length;
    h.update(c as Buffer);
  }
  t.equal(received, SIZE, 'download complete');
  t.equal(h.digest('hex'), expectedHash, 'download intact');

  const up = await request(`${router.http}/upload`, { method: 'POST', headers: { host: 'files.test' }, body: pattern() });
  t.same(await up.body.json(), { bytes: SIZE, sha256: expectedHash }, 'upload complete and intact (chunked)');

  const upSized = await request(`${router.http}/upload`, { method: 'PUT', headers: { host: 'files.test', 'content-length': String(SIZE) }, body: pattern() });
  t.same(await upSized.body.json(), { bytes: SIZE, sha256: expectedHash }, 'upload with Content-Length complete and intact');

  // Informational only: socket reads leave 64 KB buffers that V8 reclaims in bursts of
  // tens of MB, so peak RSS over a fast transfer is noise. The backpressure test below
  // is what proves the router never holds a body.
  t.comment(`peak RSS grew ${((router.memory().peak - baseline) / 1048576).toFixed(1)} MB while 3 × 50 MB passed through`);
});

/** Polls `read()` until it stops changing (the transfer stalled on backpressure). */
async function settled(read: () => number): Promise<number> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const now = read();
    if (now === last) return now;
    last = now;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error('transfer never stalled');
}

t.test('backpressure: a client or upstream that stops reading stalls the sender instead of filling the router', async (t) => {
  const BOUND = 24 * 1024 * 1024; // loopback socket buffers on both hops, with room to spare
  let originWritten = 0;
  let releaseUpload: () => void = () => {};
  const origin = await startUpstream('origin', (req, res) => {
    if (req.url === '/small') return void res.end('ok');
    if (req.method === 'GET') {
      res.writeHead(200);
      pattern((n) => (originWritten += n)).pipe(res);
      return;
    }
    req.pause(); // a stalled upstream: reads nothing until released
    releaseUpload = () => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => res.end(JSON.stringify({ bytes })));
      req.resume();
    };
  });
  const router = await routerFor(origin);
  t.teardown(async () => {
    await router.stop();
    await origin.close();
  });

  for (let i = 0; i < 20; i++) await (await request(`${router.http}/small`, { headers: { host: 'files.test' } })).body.text();
  const baseline = router.memory().rss;
  const down = await request(`${router.http}/`, { headers: { host: 'files.test' } });
  const stalledAt = await settled(() => originWritten);
  t.ok(stalledAt < BOUND, `a client that reads nothing let the origin send only ${(stalledAt / 1048576).toFixed(1)} MB of 50`);
  const held = router.memory().rss - baseline;
  t.ok(held < BOUND, `the router's memory grew ${(held / 1048576).toFixed(1)} MB while stalled`);
  let received = 0;
  for await (const c of down.body) received += (c as Buffer).length;
  t.equal(received, SIZE, 'the download completes once the client reads');

  let pulled = 0;
  const body = pattern((n) => (pulled += n));
  const upload = request(`${router.http}/`, { method: 'POST', headers: { host: 'files.test' }, body });
  const pulledAt = await settled(() => pulled);
  t.ok(pulledAt < BOUND, `an upstream that reads nothing let the client send only ${(pulledAt / 1048576).toFixed(1)} MB of 50`);
  releaseUpload();
  t.same(await (await upload).body.json(), { bytes: SIZE }, 'the upload completes once the upstream reads');
});
