import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { parseConfig, ConfigError } from '../src/config/load-config.js';
import { negotiate } from '../src/data/compression-policy.js';
import { translate, type KService } from '../src/providers/kubernetes/deis-translator.js';
import { upstreamStarter } from './helpers/upstreams.js';
import { startRouterProcess } from './helpers/router-process.js';
import { routerStarter } from './helpers/test-router.js';

const upstream = upstreamStarter(t);

const router = routerStarter(t);

/** A ~2 KB JSON document, the bench's body. */
const JSON_BODY = JSON.stringify({ items: Array.from({ length: 24 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['alpha', 'beta'], price: i * 1.25 })) });

/** GET returning raw bytes (undici never decodes), headers and status. */
async function fetchRaw(base: string, host: string, pathname: string, headers: Record<string, string> = {}, method = 'GET') {
  const res = await request(`${base}${pathname}`, { method: method as 'GET', headers: { host, ...headers } });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers as Record<string, string | undefined>, body };
}

function decoded(r: { headers: Record<string, string | undefined>; body: Buffer }): string {
  const enc = r.headers['content-encoding'];
  const raw = enc === 'gzip' ? gunzipSync(r.body) : enc === 'br' ? brotliDecompressSync(r.body) : r.body;
  return raw.toString('utf8');
}

// --- negotiation ---------------------------------------------------------------------

t.test('Accept-Encoding negotiation follows q-values, prefers br on a tie, and treats q=0 as refused', async (t) => {
  const both = ['br', 'gzip'] as const;
  const cases: [string, readonly ('br' | 'gzip')[], string | undefined][] = [
    ['gzip, deflate, br', both, 'br'],
    ['gzip, deflate, br, zstd', both, 'br'],
    ['gzip', both, 'gzip'],
    ['x-gzip', both, 'gzip'],
    ['GZIP;Q=0.8', both, 'gzip'],
    ['br;q=0.5, gzip', both, 'gzip'],
    ['br;q=1.0, gzip;q=0.9', both, 'br'],
    ['gzip;q=0', both, undefined],
    ['br;q=0, gzip;q=0', both, undefined],
    ['*', both, 'br'],
    ['*;q=0.5, gzip', both, 'gzip'],
    ['*;q=0, gzip', both, 'gzip'],
    ['*;q=0', both, undefined],
    ['identity', both, undefined],
    ['identity;q=0', both, undefined],
    ['identity;q=0, *', both, 'br'],
    ['deflate', both, undefined],
    ['', both, undefined],
    ['gzip;q=2, br;q=abc', both, undefined],
    ['gzip, br', ['gzip', 'br'], 'gzip'],
    ['br', ['gzip'], undefined],
  ];
  for (const [header, offered, expected] of cases) t.equal(negotiate(header, offered), expected, `${JSON.stringify(header)} offering ${offered.join(',')}`);
});

// --- config --------------------------------------------------------------------------

t.test('compression defaults are the Deis router\'s gzip settings, with brotli besides', async (t) => {
  const c = parseConfig('apps: {}\n', 'f.yaml');
  t.same(c.settings.compression, {
    enabled: true,
    encodings: ['br', 'gzip'],
    gzipLevel: 5,
    brotliLevel: 4,
    minLength: 256,
    types: [
      'text/html', 'application/atom+xml', 'application/javascript', 'application/json', 'application/rss+xml',
      'application/vnd.ms-fontobject', 'application/x-font-ttf', 'application/x-web-app-manifest+json', 'application/xhtml+xml',
      'application/xml', 'font/opentype', 'image/svg+xml', 'image/x-icon', 'text/css', 'text/plain', 'text/x-component',
    ],
  });
  t.same(parseConfig('apps: { web: { compression: false } }', 'f.yaml').apps[0]!.handling, { compression: false });
});

t.test('invalid compression settings are reported on their key', async (t) => {
  const err = t.throws(() => parseConfig(`compression:
  encodings: [br, zstd]
  gzipLevel: 10
  brotliLevel: -1
  minLength: small
  types: [application/json, "not a type"]
apps:
  web: { compression: sometimes }
`, 'f.yaml')) as ConfigError;
  t.same(err.message.split('\n'), [
    'f.yaml:2:19: compression.encodings.1: must be br or gzip',
    'f.yaml:3:14: compression.gzipLevel: must be an integer from 1 to 9',
    'f.yaml:4:16: compression.brotliLevel: must be an integer from 0 to 11',
    'f.yaml:5:14: compression.minLength: must be a size like 512, 16kb or 10mb',
    'f.yaml:6:29: compression.types.1: must be a media type like application/json, or *',
    'f.yaml:8:23: apps.web.compression: must be true or false',
  ]);
});

function service(name: string, annotations: Record<string, string>): KService {
  return {
    metadata: { name, namespace: 'shop', creationTimestamp: '2026-01-01T00:00:00Z', labels: { 'router.deis.io/routable': 'true' }, annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': name, ...annotations } },
    spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80 }] },
  };
}

t.test('router.deis.io/compression: off if any of the app\'s Services says "false", on if one says "true"; others are reported', async (t) => {
  const run = (...services: KService[]) => {
    const { apps, problems } = translate({ services, slices: [], platformDomain: 'example.com' });
    return { handling: apps[0]!.handling, problems: problems.map((p) => `${p.field}: ${p.message}`) };
  };
  t.same(run(service('v1', { 'router.deis.io/compression': 'False' })), { handling: { compression: false }, problems: [] });
  t.same(run(service('v1', { 'router.deis.io/compression': 'true' }), service('v2', {})), { handling: { compression: true }, problems: [] });
  t.same(run(service('v1', { 'router.deis.io/compression': 'true' }), service('v2', { 'router.deis.io/compression': 'false' })).handling, { compression: false });
  t.same(run(service('v1', { 'router.deis.io/compression': 'gzip' })), {
    handling: undefined,
    problems: ['router.deis.io/compression: "gzip" must be "true" or "false"; using the router-wide compression.enabled'],
  });
});

// --- what is compressed --------------------------------------------------------------

/** An origin answering by path: `/json` (2 KB JSON), `/small`, `/png`, `/stream` (chunked), etc. */
async function origin() {
  return upstream('origin', (req, res) => {
    const url = new URL(req.url!, 'http://x');
    const h: Record<string, string> = {};
    const type = url.searchParams.get('type');
    if (type) h['content-type'] = type;
    switch (url.pathname) {
      case '/json':
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': JSON_BODY.length, etag: '"v1-abc"', 'accept-ranges': 'bytes', ...h });
        return void res.end(JSON_BODY);
      case '/large': {
        const large = JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `item ${i}` })));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(large) });
        return void res.end(large);
      }
      case '/weak-etag':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': JSON_BODY.length, etag: 'W/"v1"', vary: 'Cookie' });
        return void res.end(JSON_BODY);
      case '/typed':
        res.writeHead(200, { ...h, 'content-length': JSON_BODY.length });
        return void res.end(JSON_BODY);
      case '/small':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 });
        return void res.end('{"ok":true}');
      case '/small-chunked':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('tiny ');
        return void res.end('body');
      case '/chunked':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write(JSON_BODY.slice(0, 100));
        return void res.end(JSON_BODY.slice(100));
      case '/encoded':
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        return void res.end(gzipOf(JSON_BODY));
      case '/no-transform':
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, no-transform' });
        return void res.end(JSON_BODY);
      case '/no-content':
        res.writeHead(204, { 'content-type': 'application/json' });
        return void res.end();
      case '/not-modified':
        res.writeHead(304, { 'content-type': 'application/json', etag: '"v1"' });
        return void res.end();
      case '/partial':
        res.writeHead(206, { 'content-type': 'text/plain', 'content-range': `bytes 0-999/${JSON_BODY.length}` });
        return void res.end(JSON_BODY.slice(0, 1000));
      case '/error':
        res.writeHead(500, { 'content-type': 'application/json' });
        return void res.end(JSON_BODY);
      default:
        res.writeHead(404);
        res.end();
    }
  });
}
function gzipOf(s: string): Buffer {
  return gzipSync(s);
}

const appsFor = (address: string, extra = '') => `
apps:
  web:
    domains: [web.test]
    versions: { v1: { weight: 1, endpoints: ["${address}"] } }
  plain:
    domains: [plain.test]
    compression: false
    versions: { v1: { weight: 1, endpoints: ["${address}"] } }
${extra}`;

t.test('a JSON response to a client accepting gzip or br is compressed: Content-Encoding, Vary, weak ETag, no Accept-Ranges', async (t) => {
  const o = await origin();
  const r = await router(appsFor(o.address));
  for (const [accept, coding] of [['gzip', 'gzip'], ['gzip, deflate, br', 'br'], ['br;q=0.4, gzip;q=0.8', 'gzip']] as const) {
    const res = await fetchRaw(r.http, 'web.test', '/json', { 'accept-encoding': accept });
    t.equal(res.headers['content-encoding'], coding, accept);
    t.equal(res.headers.vary, 'Accept-Encoding');
    t.equal(res.headers.etag, 'W/"v1-abc"', 'a strong ETag is weakened: the bytes differ from the upstream\'s');
    t.equal(res.headers['accept-ranges'], undefined, 'ranges of the compressed bytes are not offered');
    t.equal(res.headers['content-length'], String(res.body.length), 'a body compressed in one go is sent with its compressed length');
    t.ok(res.body.length < JSON_BODY.length / 2, `${res.body.length} bytes instead of ${JSON_BODY.length}`);
    t.equal(decoded(res), JSON_BODY);
  }
  const weak = await fetchRaw(r.http, 'web.test', '/weak-etag', { 'accept-encoding': 'gzip' });
  t.same([weak.headers['content-encoding'], weak.headers.etag, weak.headers.vary], ['gzip', 'W/"v1"', 'Cookie, Accept-Encoding'], 'a weak ETag stays; Vary is extended');
  const large = await fetchRaw(r.http, 'web.test', '/large', { 'accept-encoding': 'br' });
  t.same([large.headers['content-encoding'], large.headers['content-length'], JSON.parse(decoded(large)).length], ['br', undefined, 2000],
    'a body over 16 kb streams through the encoder, without a length');
  const failed = await fetchRaw(r.http, 'web.test', '/error', { 'accept-encoding': 'gzip' });
  t.same([failed.status, failed.headers['content-encoding'], decoded(failed)], [500, 'gzip', JSON_BODY], 'an upstream error body is compressed too');
});

t.test('without an acceptable coding the response passes as it is, untouched', async (t) => {
  const o = await origin();
  const r = await router(appsFor(o.address));
  const none = await fetchRaw(r.http, 'web.test', '/json');
  t.same([none.headers['content-encoding'], none.headers.vary, none.headers.etag, none.headers['content-length'], none.body.toString()],
    [undefined, undefined, '"v1-abc"', String(JSON_BODY.length), JSON_BODY]);
  for (const accept of ['identity', 'gzip;q=0, br;q=0', '*;q=0', 'deflate', 'identity;q=0']) {
    const res = await fetchRaw(r.http, 'web.test', '/json', { 'accept-encoding': accept });
    t.same([res.headers['content-encoding'], res.headers.vary, res.headers['content-length'], res.body.toString()], [undefined, undefined, String(JSON_BODY.length), JSON_BODY], accept);
  }
});

t.test('only listed types are compressed, never already-compressed ones, even with types: ["*"]', async (t) => {
  const o = await origin();
  const r = await router(appsFor(o.address, `
  any:
    domains: [any.test]
    versions: { v1: { weight: 1, endpoints: ["${o.address}"] } }
`));
  const coded = async (host: string, type: string) => (await fetchRaw(r.http, host, `/typed?type=${encodeURIComponent(type)}`, { 'accept-encoding': 'gzip' })).headers['content-encoding'];
  for (const type of ['text/html; charset=utf-8', 'text/css', 'application/javascript', 'image/svg+xml', 'APPLICATION/JSON']) t.equal(await coded('web.test', type), 'gzip', type);
  for (const type of ['text/event-stream', 'application/octet-stream', 'image/png', 'application/zip']) t.equal(await coded('web.test', type), undefined, type);
  t.equal((await fetchRaw(r.http, 'web.test', '/typed', { 'accept-encoding': 'gzip' })).headers['content-encoding'], undefined, 'no Content-Type: not compressed');

  await r.rewrite(`compression: { types: ["*"] }\n${appsFor(o.address, `
  any:
    domains: [any.test]
    versions: { v1: { weight: 1, endpoints: ["${o.address}"] } }
`)}`);
  for (const type of ['text/event-stream', 'application/x-ndjson']) t.equal(await coded('any.test', type), 'gzip', `* takes ${type}`);
  for (const type of ['image/png', 'image/jpeg', 'video/mp4', 'audio/ogg', 'font/woff2', 'application/gzip', 'application/zip', 'application/octet-stream']) {
    t.equal(await coded('any.test', type), undefined, `* never takes ${type}`);
  }
});

t.test('bodies under minLength are sent as they are, by Content-Length or, without one, by what arrived before the end', async (t) => {
  const o = await origin();
  const r = await router(appsFor(o.address));
  const small = await fetchRaw(r.http, 'web.test', '/small', { 'accept-encoding': 'gzip' });
  t.same([small.headers['content-encoding'], small.headers.vary, small.body.toString()], [undefined, 'Accept-Encoding', '{"ok":true}']);
  const smallChunked = await fetchRaw(r.http, 'web.test', '/small-chunked', { 'accept-encoding': 'gzip' });
  t.same([smallChunked.headers['content-encoding'], smallChunked.headers['content-length'], smallChunked.headers['transfer-encoding'], smallChunked.body.toString()],
    [undefined, '9', undefined, 'tiny body'], 'a short chunked body gets its Content-Length');
  const chunked = await fetchRaw(r.http, 'web.test', '/chunked', { 'accept-encoding': 'gzip' });
  t.same([chunked.headers['content-encoding'], chunked.headers['content-length'], decoded(chunked)], ['gzip', undefined, JSON_BODY], 'a longer one streams compressed');

  await r.rewrite(`compression: { minLength: 4kb }\n${appsFor(o.address)}`);
  t.equal((await fetchRaw(r.http, 'web.test', '/json', { 'accept-encoding': 'gzip' })).headers['content-encoding'], undefined, 'minLength is configurable');
});

t.test('responses the upstream encoded, marked no-transform, partial, 204, 304 and HEAD requests are left alone', async (t) => {
  const o = await origin();
  const r = await router(appsFor(o.address));
  const accept = { 'accept-encoding': 'gzip, br' };
  const encoded = await fetchRaw(r.http, 'web.test', '/encoded', accept);
  t.same([encoded.headers['content-encoding'], gunzipSync(encoded.body).toString()], ['gzip', JSON_BODY], 'never compressed twice');
  const noTransform = await fetchRaw(r.http, 'web.test', '/no-transform', accept);
  t.same([noTransform.headers['content-encoding'], noTransform.body.toString()], [undefined, JSON_BODY]);
  const partial = await fetchRaw(r.http, 'web.test', '/partial', accept);
  t.same([partial.status, partial.headers['content-encoding'], partial.body.length], [206, undefined, 1000]);
  const noContent = await fetchRaw(r.http, 'web.test', '/no-content', accept);
  t.same([noContent.status, noContent.headers['content-encoding'], noContent.headers.vary, noContent.body.length], [204, undefined, undefined, 0]);
  const notModified = await fetchRaw(r.http, 'web.test', '/not-modified', accept);
  t.same([notModified.status, notModified.headers['content-encoding'], notModified.headers.etag], [304, undefined, '"v1"']);
  const head = await fetchRaw(r.http, 'web.test', '/json', accept, 'HEAD');
  t.same([head.status, head.headers['content-encoding'], head.headers.vary, head.headers['content-length'], head.headers.etag], [200, undefined, undefined, String(JSON_BODY.length), '"v1-abc"']);
});

t.test('an app with compression: false is never compressed; an app with true is, even when it is off router-wide', async (t) => {
  const o = await origin();
  const r = await router(appsFor(o.address));
  const accept = { 'accept-encoding': 'gzip, br' };
  const plain = await fetchRaw(r.http, 'plain.test', '/json', accept);
  t.same([plain.headers['content-encoding'], plain.headers.vary, plain.body.toString()], [undefined, undefined, JSON_BODY]);
  await r.rewrite(`compression: { enabled: false }
apps:
  web:
    domains: [web.test]
    versions: { v1: { weight: 1, endpoints: ["${o.address}"] } }
  forced:
    domains: [forced.test]
    compression: true
    versions: { v1: { weight: 1, endpoints: ["${o.address}"] } }
`);
  t.equal((await fetchRaw(r.http, 'web.test', '/json', accept)).headers['content-encoding'], undefined);
  t.equal((await fetchRaw(r.http, 'forced.test', '/json', accept)).headers['content-encoding'], 'br');
});

t.test('compression: { encodings: [gzip] } offers gzip only, as the Deis router did', async (t) => {
  const o = await origin();
  const r = await router(`compression: { encodings: [gzip], gzipLevel: 9 }\n${appsFor(o.address)}`);
  const res = await fetchRaw(r.http, 'web.test', '/json', { 'accept-encoding': 'br, gzip;q=0.1' });
  t.same([res.headers['content-encoding'], decoded(res)], ['gzip', JSON_BODY]);
  t.equal((await fetchRaw(r.http, 'web.test', '/json', { 'accept-encoding': 'br' })).headers['content-encoding'], undefined);
});

t.test('the access log says which coding a response was sent with', async (t) => {
  const o = await origin();
  const r = await router(appsFor(o.address));
  await fetchRaw(r.http, 'web.test', '/json', { 'accept-encoding': 'br', 'x-request-id': 'c-br' });
  await fetchRaw(r.http, 'web.test', '/json', { 'x-request-id': 'c-none' });
  const find = async (id: string) => {
    for (let i = 0; i < 200; i++) {
      const line = r.logs.find((l) => l.reqId === id);
      if (line) return line;
      r.router.logger.flush();
      await new Promise((resolve) => setImmediate(resolve));
    }
    throw new Error(`no log line for ${id}`);
  };
  t.match(await find('c-br'), { status: 200, encoding: 'br', bytes: JSON_BODY.length });
  t.notOk('encoding' in (await find('c-none')));
});

// --- streaming -----------------------------------------------------------------------

const SIZE = 40 * 1024 * 1024;
const CHUNK = 64 * 1024;

/**
 * `SIZE` bytes of base64 text made from fresh random bytes (so it compresses by about a
 * quarter, never more: what the client's socket holds is close to what the origin sent),
 * produced chunk by chunk; `onPull` sees each chunk as the consumer pulls it.
 */
function text(onPull?: (bytes: number) => void, hash?: ReturnType<typeof createHash>): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= SIZE) return void this.push(null);
      const chunk = Buffer.from(randomBytes((CHUNK / 4) * 3).toString('base64'));
      sent += chunk.length;
      hash?.update(chunk);
      onPull?.(chunk.length);
      this.push(chunk);
    },
  });
}

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

t.test('a large streamed body is compressed on the fly with backpressure intact: a client that stops reading stalls the origin', async (t) => {
  const BOUND = 24 * 1024 * 1024;
  let originWritten = 0;
  let sentHash = createHash('sha256');
  const o = await upstream('origin', (req, res) => {
    if (req.url === '/small') return void res.end('ok');
    res.writeHead(200, { 'content-type': 'text/plain' });
    sentHash = createHash('sha256');
    text((n) => (originWritten += n), sentHash).pipe(res);
  });
  const configFile = path.join(mkdtempSync(path.join(tmpdir(), 'fairway-compress-')), 'fairway.yaml');
  writeFileSync(configFile, `
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
log: { access: false }
apps:
  files:
    domains: [files.test]
    versions: { v1: { weight: 1, endpoints: ["${o.address}"] } }
`);
  const proc = await startRouterProcess(configFile);
  t.teardown(() => proc.stop());

  for (let i = 0; i < 20; i++) await (await request(`${proc.http}/small`, { headers: { host: 'files.test' } })).body.text();
  for (const coding of ['br', 'gzip'] as const) {
    originWritten = 0;
    const baseline = proc.memory().rss;
    const down = await request(`${proc.http}/big`, { headers: { host: 'files.test', 'accept-encoding': coding } });
    t.equal(down.headers['content-encoding'], coding);
    t.equal(down.headers['content-length'], undefined, 'streamed: no length');
    const stalledAt = await settled(() => originWritten);
    t.ok(stalledAt < BOUND, `${coding}: a client that reads nothing let the origin send only ${(stalledAt / 1048576).toFixed(1)} MB of ${SIZE / 1048576}`);
    const held = proc.memory().rss - baseline;
    t.ok(held < BOUND, `${coding}: the router's memory grew ${(held / 1048576).toFixed(1)} MB while stalled`);

    const received = createHash('sha256');
    let compressed = 0;
    let plain = 0;
    const decoder = coding === 'gzip' ? createGunzip() : createBrotliDecompress();
    decoder.on('data', (c: Buffer) => {
      plain += c.length;
      received.update(c);
    });
    const done = new Promise((resolve, reject) => decoder.on('end', resolve).on('error', reject));
    for await (const c of down.body) {
      compressed += (c as Buffer).length;
      decoder.write(c);
    }
    decoder.end();
    await done;
    t.equal(plain, originWritten, `${coding}: the whole body arrives once the client reads`);
    t.equal(received.digest('hex'), sentHash.digest('hex'), `${coding}: intact`);
    t.ok(compressed < plain * 0.8, `${coding}: ${(compressed / 1048576).toFixed(1)} MB on the wire for ${(plain / 1048576).toFixed(1)} MB`);
  }
});

t.test('a streamed response is flushed chunk by chunk: each upstream chunk reaches the client before the next is sent', async (t) => {
  let next: () => void = () => {};
  const o = await upstream('ticker', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let n = 0;
    next = () => {
      if (++n > 3) return;
      const line = `${'tick '.repeat(80)}${n}\n`;
      if (n < 3) res.write(line);
      else res.end(line);
    };
    next();
  });
  const r = await router(`apps:\n  web:\n    domains: [web.test]\n    versions: { v1: { weight: 1, endpoints: ["${o.address}"] } }\n`);
  const res = await request(`${r.http}/`, { headers: { host: 'web.test', 'accept-encoding': 'gzip' } });
  t.equal(res.headers['content-encoding'], 'gzip');
  const gunzip = createGunzip();
  res.body.pipe(gunzip);
  const lines: string[] = [];
  for await (const c of gunzip) {
    for (const line of (c as Buffer).toString().split('\n').filter(Boolean)) {
      lines.push(line.slice(-1));
      next(); // the upstream sends its next chunk only once this one was decoded
    }
  }
  t.same(lines, ['1', '2', '3']);
});
