import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseConfig, ConfigError } from '../src/config/load-config.js';
import { translate, type KService } from '../src/providers/kubernetes/deis-translator.js';
import { refusedAddress, upstreamStarter } from './helpers/upstreams.js';
import { startTestRouter, type TestRouter, waitForLog } from './helpers/test-router.js';

const upstream = upstreamStarter(t);

/** A temp directory holding `files` (name → content), for configs that name page files. */
function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-pages-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  return dir;
}

async function router(yaml: string, dir?: string): Promise<TestRouter> {
  const r = await startTestRouter(yaml, { dir });
  t.teardown(() => r.close());
  return r;
}

const PAGES = {
  '404.html': '<h1>nothing here</h1>\n',
  '502.html': '<h1>router-wide bad gateway</h1>\n',
  '503.html': '<h1>router-wide unavailable</h1>\n',
  'maintenance.html': '<h1>router-wide maintenance</h1>\n',
  'shop-502.json': '{"error":"shop is having trouble"}\n',
  'shop-maintenance.txt': 'shop is closed for stocktaking\n',
  'blog-503.html': '<h1>blog unavailable</h1>\n',
};

// --- config --------------------------------------------------------------------------

t.test('errorPages, router-wide and per app, are read into memory with the content type of their extension', async (t) => {
  const dir = dirWith(PAGES);
  const c = parseConfig(`
errorPages: { 404: 404.html, 502: 502.html, maintenance: maintenance.html }
apps:
  shop:
    errorPages: { 502: shop-502.json, maintenance: shop-maintenance.txt }
`, path.join(dir, 'fairway.yaml'));
  t.same(c.settings.errorPages, {
    404: { file: path.join(dir, '404.html'), contentType: 'text/html; charset=utf-8', body: PAGES['404.html'] },
    502: { file: path.join(dir, '502.html'), contentType: 'text/html; charset=utf-8', body: PAGES['502.html'] },
    maintenance: { file: path.join(dir, 'maintenance.html'), contentType: 'text/html; charset=utf-8', body: PAGES['maintenance.html'] },
  });
  t.same(c.apps[0]!.handling?.errorPages, {
    502: { file: path.join(dir, 'shop-502.json'), contentType: 'application/json; charset=utf-8', body: PAGES['shop-502.json'] },
    maintenance: { file: path.join(dir, 'shop-maintenance.txt'), contentType: 'text/plain; charset=utf-8', body: PAGES['shop-maintenance.txt'] },
  });
  t.equal(parseConfig('apps: { plain: {} }', path.join(dir, 'f.yaml')).apps[0]!.handling, undefined, 'an app that sets nothing has no handling');
});

t.test('a missing page file, a status the router never answers and an unknown extension are config errors naming the key', async (t) => {
  const dir = dirWith({ 'ok.html': 'ok' });
  const err = t.throws(() => parseConfig(`errorPages:
  404: ok.html
  502: gone.html
  418: ok.html
apps:
  web:
    errorPages: { 503: page.php }
`, path.join(dir, 'bad.yaml'))) as ConfigError;
  t.type(err, ConfigError);
  t.equal(err.code, 'FW_CONFIG_INVALID');
  t.same(err.message.split('\n'), [
    `${path.join(dir, 'bad.yaml')}:4:3: errorPages.418: unknown key`,
    `${path.join(dir, 'bad.yaml')}:7:24: apps.web.errorPages.503: must be a file ending in .html, .htm, .xhtml, .json, .txt, .xml`,
  ]);
  const missing = t.throws(() => parseConfig('errorPages: { 404: ok.html, 502: gone.html }\n', path.join(dir, 'missing.yaml'))) as ConfigError;
  t.same(missing.message.split('\n'), [`${path.join(dir, 'missing.yaml')}:1:34: errorPages.502: file not found: ${path.join(dir, 'gone.html')}`]);
});

t.test('the admin API shows each page by file, type and size, never its content', async (t) => {
  const dir = dirWith(PAGES);
  const r = await router('errorPages: { 404: 404.html }\n', dir);
  const config = (await r.adminGet('/v1/config')).json();
  t.same(config.settings.errorPages, { 404: { file: path.join(dir, '404.html'), contentType: 'text/html; charset=utf-8', body: `(${PAGES['404.html'].length} bytes)` } });
});

// --- pages ---------------------------------------------------------------------------

t.test('the router\'s own answers use the app\'s page, else the router-wide one, else the built-in one, keeping X-Fairway-Error', async (t) => {
  const dir = dirWith(PAGES);
  const refused = await refusedAddress();
  const r = await router(`
errorPages: { 404: 404.html, 502: 502.html, 503: 503.html }
apps:
  shop:
    domains: [shop.test]
    errorPages: { 502: shop-502.json }
    versions: { v1: { weight: 1, endpoints: ["${refused}"] } }
  blog:
    domains: [blog.test]
    versions: { v1: { weight: 1, endpoints: ["${refused}"] } }
  empty:
    domains: [empty.test]
    versions: { v1: { weight: 1, endpoints: [] } }
  locked:
    domains: [locked.test]
    allow: [10.9.9.9]
    versions: { v1: { weight: 1, endpoints: ["${refused}"] } }
`, dir);
  const unknown = await r.get('nobody.test', '/');
  t.same([unknown.status, unknown.headers['content-type'], unknown.headers['x-fairway-error'], unknown.body], [404, 'text/html; charset=utf-8', 'FW_NO_ROUTE', PAGES['404.html']],
    'an unknown host gets the router-wide 404 page');
  const shop = await r.get('shop.test', '/');
  t.same([shop.status, shop.headers['content-type'], shop.headers['x-fairway-error'], shop.body], [502, 'application/json; charset=utf-8', 'FW_UPSTREAM_REFUSED', PAGES['shop-502.json']],
    'an app\'s own page wins, with the content type of its file');
  t.equal(shop.headers['content-length'], String(PAGES['shop-502.json'].length));
  t.equal(shop.headers['cache-control'], 'no-store');
  const blog = await r.get('blog.test', '/');
  t.same([blog.status, blog.headers['x-fairway-error'], blog.body], [502, 'FW_UPSTREAM_REFUSED', PAGES['502.html']], 'an app without one gets the router-wide page');
  const empty = await r.get('empty.test', '/');
  t.same([empty.status, empty.headers['x-fairway-error'], empty.body], [503, 'FW_NO_ENDPOINTS', PAGES['503.html']]);
  const locked = await r.get('locked.test', '/');
  t.same([locked.status, locked.headers['content-type'], locked.headers['x-fairway-error']], [403, 'text/html; charset=utf-8', 'FW_CLIENT_FORBIDDEN']);
  t.match(locked.body, /<h1>403 Forbidden<\/h1>.*fairway · FW_CLIENT_FORBIDDEN/s, 'a status without a page gets the built-in one');
});

t.test('an upstream timeout answers 504 with the app\'s 504 page', async (t) => {
  const dir = dirWith({ '504.txt': 'too slow\n' });
  const slow = await upstream('slow', () => {});
  const r = await router(`
apps:
  slow:
    domains: [slow.test]
    timeouts: { read: 100ms }
    errorPages: { 504: 504.txt }
    versions: { v1: { weight: 1, endpoints: ["${slow.address}"] } }
`, dir);
  const res = await r.get('slow.test', '/');
  t.same([res.status, res.headers['content-type'], res.headers['x-fairway-error'], res.body], [504, 'text/plain; charset=utf-8', 'FW_UPSTREAM_TIMEOUT', 'too slow\n']);
});

t.test('maintenance answers with the maintenance page: the app\'s, else its 503 page, else the router-wide ones, with Retry-After', async (t) => {
  const dir = dirWith(PAGES);
  const up = await upstream('up');
  const app = (name: string, pages = '') => `
  ${name}:
    domains: [${name}.test]
    maintenance: true${pages}
    versions: { v1: { weight: 1, endpoints: ["${up.address}"] } }`;
  const r = await router(`
errorPages: { 503: 503.html, maintenance: maintenance.html }
apps:${app('shop', '\n    errorPages: { maintenance: shop-maintenance.txt }')}${app('blog', '\n    errorPages: { 503: blog-503.html }')}${app('docs')}
`, dir);
  for (const [host, type, body] of [
    ['shop.test', 'text/plain; charset=utf-8', PAGES['shop-maintenance.txt']],
    ['blog.test', 'text/html; charset=utf-8', PAGES['blog-503.html']],
    ['docs.test', 'text/html; charset=utf-8', PAGES['maintenance.html']],
  ] as const) {
    const res = await r.get(host, '/');
    t.same([res.status, res.headers['content-type'], res.headers['retry-after'], res.headers['x-fairway-error'], res.body], [503, type, '60', 'FW_APP_MAINTENANCE', body], host);
  }
  t.equal(up.hits, 0);
});

t.test('a changed page file is served after the next config change, without a restart', async (t) => {
  const dir = dirWith({ '404.html': 'first\n' });
  const r = await router('errorPages: { 404: 404.html }\n', dir);
  t.equal((await r.get('nobody.test')).body, 'first\n');
  writeFileSync(path.join(dir, '404.html'), 'second\n');
  t.equal((await r.get('nobody.test')).body, 'first\n', 'pages are read with the config, never per request');
  await r.rewrite('errorPages: { 404: 404.html }\nlog: { access: true }\n');
  t.equal((await r.get('nobody.test')).body, 'second\n');
});

// --- default service -----------------------------------------------------------------

t.test('defaultService: a host no app serves goes to that app (its policy applies); without it, 404', async (t) => {
  const web = await upstream('web');
  const r = await router(`
defaultService: { app: web }
apps:
  web:
    domains: [web.test]
    versions: { v1: { weight: 1, endpoints: ["${web.address}"] } }
`);
  const res = await r.get('anything.example.org', '/path?q=1', { headers: { 'x-request-id': 'r-default' } });
  t.equal(res.status, 200);
  t.match(res.json(), { upstream: 'web', url: '/path?q=1', headers: { host: 'anything.example.org', 'x-forwarded-host': 'anything.example.org' } });
  t.match(await waitForLog(r, (l) => l.reqId === 'r-default'), { log: 'access', app: 'web', version: 'v1', host: 'anything.example.org', status: 200 });

  await r.rewrite(`
defaultService: { app: web }
apps:
  web:
    domains: [web.test]
    maintenance: true
    versions: { v1: { weight: 1, endpoints: ["${web.address}"] } }
`);
  t.equal((await r.get('anything.example.org')).headers['x-fairway-error'], 'FW_APP_MAINTENANCE', 'the default app\'s policy applies');

  await r.rewrite(`
defaultService: { app: gone }
apps:
  web:
    domains: [web.test]
    versions: { v1: { weight: 1, endpoints: ["${web.address}"] } }
`);
  const missing = await r.get('anything.example.org');
  t.same([missing.status, missing.headers['x-fairway-error']], [404, 'FW_NO_ROUTE'], 'a default app that is not in the snapshot: unknown hosts get 404');
  t.match(await waitForLog(r, (l) => l.code === 'FW_APP_NOT_FOUND'), { level: 'warn', app: 'gone' }, 'and the router says so');
});

// --- server tokens -------------------------------------------------------------------

t.test('upstream Server and X-Powered-By are relayed, unless disableServerTokens; then pages do not name the product either', async (t) => {
  const chatty = await upstream('chatty', (_req, res) => {
    res.writeHead(200, { server: 'Apache/2.4.1 (Unix)', 'x-powered-by': 'PHP/5.6.40', 'x-kept': 'yes' });
    res.end('hi');
  });
  const config = (tokens: boolean) => `
disableServerTokens: ${tokens}
apps:
  chatty:
    domains: [chatty.test]
    versions: { v1: { weight: 1, endpoints: ["${chatty.address}"] } }
`;
  const r = await router(config(false));
  const open = await r.get('chatty.test');
  t.same([open.headers.server, open.headers['x-powered-by'], open.headers['x-kept']], ['Apache/2.4.1 (Unix)', 'PHP/5.6.40', 'yes']);
  t.match((await r.get('nobody.test')).body, /fairway · FW_NO_ROUTE/);

  await r.rewrite(config(true));
  const closed = await r.get('chatty.test');
  t.same([closed.headers.server, closed.headers['x-powered-by'], closed.headers['x-kept'], closed.body], [undefined, undefined, 'yes', 'hi']);
  const page = await r.get('nobody.test');
  t.same([page.status, page.headers.server, page.headers['x-fairway-error']], [404, undefined, 'FW_NO_ROUTE'], 'the code header stays: it is the documented contract');
  t.notMatch(page.body, /fairway/i);
  t.match(page.body, /FW_NO_ROUTE/);
});

// --- body size -----------------------------------------------------------------------

t.test('an app\'s bodySize replaces limits.maxBodySize for that app, with or without Content-Length', async (t) => {
  const dir = dirWith({ '413.html': '<h1>too big for us</h1>\n' });
  const echo = await upstream('echo', (req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => res.end(JSON.stringify({ bytes })));
  });
  const r = await router(`
limits: { maxBodySize: 4kb }
errorPages: { 413: 413.html }
apps:
  small:
    domains: [small.test]
    bodySize: 1kb
    versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } }
  large:
    domains: [large.test]
    bodySize: 1mb
    versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } }
  plain:
    domains: [plain.test]
    versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } }
`, dir);
  const body = (n: number) => Buffer.alloc(n, 'x');
  const sized = async (host: string, n: number) => r.get(host, '/', { method: 'POST', body: body(n), headers: { 'content-length': String(n) } });
  const chunked = async (host: string, n: number) => r.get(host, '/', { method: 'POST', body: Readable.from([body(n)]) });

  t.same((await sized('small.test', 1024)).json(), { bytes: 1024 }, 'at the limit: passes');
  const over = await sized('small.test', 1025);
  t.same([over.status, over.headers['x-fairway-error'], over.headers.connection, over.body], [413, 'FW_BODY_TOO_LARGE', 'close', '<h1>too big for us</h1>\n']);
  t.equal((await chunked('small.test', 2048)).status, 413, 'a chunked body is cut when it passes the app\'s limit');
  t.same((await sized('large.test', 100_000)).json(), { bytes: 100_000 }, 'an app may allow more than the router-wide limit');
  t.same((await chunked('large.test', 100_000)).json(), { bytes: 100_000 });
  t.same((await sized('plain.test', 4096)).json(), { bytes: 4096 }, 'an app without bodySize keeps limits.maxBodySize');
  t.equal((await sized('plain.test', 4097)).status, 413);
});

t.test('bodySize accepts the sizes of the file; others are reported on the key', async (t) => {
  t.equal(parseConfig('apps: { web: { bodySize: 10mb } }', 'f.yaml').apps[0]!.handling?.bodySize, 10 * 1024 * 1024);
  const err = t.throws(() => parseConfig('apps:\n  web:\n    bodySize: huge\n', 'f.yaml')) as ConfigError;
  t.same(err.message.split('\n'), ['f.yaml:3:15: apps.web.bodySize: must be a size like 512, 16kb or 10mb']);
});

// --- Kubernetes ----------------------------------------------------------------------

function service(name: string, annotations: Record<string, string>): KService {
  return {
    metadata: { name, namespace: 'shop', creationTimestamp: '2026-01-01T00:00:00Z', labels: { 'router.deis.io/routable': 'true' }, annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': name, ...annotations } },
    spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80 }] },
  };
}
const translated = (...services: KService[]) => {
  const { apps, problems } = translate({ services, slices: [], platformDomain: 'example.com' });
  return { handling: apps[0]!.handling, problems: problems.map((p) => `${p.field}: ${p.message}`) };
};

t.test('router.deis.io/bodySize takes nginx sizes (0 is no limit), the largest of the app\'s Services; invalid values are reported', async (t) => {
  for (const [v, bytes] of [['512', 512], ['64k', 65_536], ['10m', 10_485_760], ['1G', 1_073_741_824], ['0', Number.MAX_SAFE_INTEGER]] as const) {
    t.same(translated(service('v1', { 'router.deis.io/bodySize': v })), { handling: { bodySize: bytes }, problems: [] }, v);
  }
  t.same(translated(service('v1', { 'router.deis.io/bodySize': '1m' }), service('v2', { 'router.deis.io/bodySize': '5m' }), service('v3', {})).handling, { bodySize: 5 * 1024 * 1024 });
  for (const v of ['lots', '-1', '1.5m', '10mb', '']) {
    t.same(translated(service('v1', { 'router.deis.io/bodySize': v })), {
      handling: undefined,
      problems: [`router.deis.io/bodySize: "${v}" must be an nginx size like 512k, 10m or 1g (a bare number is bytes, 0 is no limit); using the router-wide limits.maxBodySize`],
    }, JSON.stringify(v));
  }
  t.same(translated(service('v1', {})), { handling: undefined, problems: [] }, 'no annotation: no handling of its own');
});
