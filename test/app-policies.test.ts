import t from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { Client, request } from 'undici';
import { parseConfig, ConfigError } from '../src/config/load-config.js';
import { AllowList } from '../src/data/allow-list.js';
import { DataPlane } from '../src/data/data-plane.js';
import { RouteTable } from '../src/data/route-table.js';
import { UpstreamRegistry } from '../src/data/upstream-registry.js';
import type { Snapshot } from '../src/model.js';
import { createLogger } from '../src/observability/logger.js';
import { RequestStats } from '../src/observability/request-stats.js';
import { AcmeChallenges } from '../src/tls/acme-challenges.js';
import { CertificateStore } from '../src/tls/certificate-store.js';
import { upstreamStarter } from './helpers/upstreams.js';
import { waitForLog, routerStarter } from './helpers/test-router.js';

const upstream = upstreamStarter(t);

const router = routerStarter(t);

const snapshotOf = (yaml: string, file = 'policies.yaml'): Snapshot => {
  const c = parseConfig(yaml, file);
  return { generation: 1, createdAt: '', settings: c.settings, apps: c.apps, errors: [], certificates: [] };
};

// --- file config ---------------------------------------------------------------------

t.test('apps.<app>.allow, maintenance and timeouts are read into the app policy; absent, they admit everyone and use the router-wide timeouts', async (t) => {
  const c = parseConfig(`
apps:
  locked:
    allow: ["10.0.0.0/8", 192.168.1.7, "2001:DB8::/32", "10.0.0.0/8"]
    maintenance: true
    timeouts: { connect: 2s, read: 90s }
  open:
    timeouts: { read: 1500 }
`, 'policy.yaml');
  t.same(c.apps.find((a) => a.name === 'locked')!.policy, { allow: ['10.0.0.0/8', '192.168.1.7/32', '2001:db8::/32'], maintenance: true, connectTimeout: 2000, readTimeout: 90_000 },
    'entries become canonical address/prefix, once each; durations become ms');
  t.same(c.apps.find((a) => a.name === 'open')!.policy, { allow: [], maintenance: false, connectTimeout: undefined, readTimeout: 1500 }, 'a bare number is milliseconds, as everywhere in the file');
});

t.test('invalid policy keys are reported with file:line:column and key path', async (t) => {
  const err = t.throws(() => parseConfig(`apps:
  web:
    allow: [10.0.0.0/8, 10.0.0.0/40, banana]
    maintenance: sometimes
    timeouts: { connect: 0, read: forever, idle: 5s }
`, 'bad.yaml')) as ConfigError;
  t.type(err, ConfigError);
  t.same(err.message.split('\n'), [
    'bad.yaml:3:25: apps.web.allow.1: must be an IP address or CIDR, like 10.0.0.0/8 or 2001:db8::/32',
    'bad.yaml:3:38: apps.web.allow.2: must be an IP address or CIDR, like 10.0.0.0/8 or 2001:db8::/32',
    'bad.yaml:4:18: apps.web.maintenance: must be true or false',
    'bad.yaml:5:26: apps.web.timeouts.connect: must be a duration above 0, like 500ms, 5s or 2m',
    'bad.yaml:5:35: apps.web.timeouts.read: must be a duration above 0, like 500ms, 5s or 2m',
    'bad.yaml:5:44: apps.web.timeouts.idle: unknown key',
  ]);
});

t.test('kubernetes.domainPolicy is read into the settings (lower-case, no trailing dot); absent, there is no policy', async (t) => {
  const c = parseConfig(`
kubernetes:
  domainPolicy:
    - { namespaces: [shop], domains: [Shop.Example.org., "*.apps.example.net"] }
    - { namespaces: ["*"], domains: [example.com] }
`, 'k.yaml');
  t.same(c.settings.kubernetes, { domainPolicy: [
    { namespaces: ['shop'], domains: ['shop.example.org', '*.apps.example.net'] },
    { namespaces: ['*'], domains: ['example.com'] },
  ] });
  t.equal(parseConfig('apps: {}', 'k.yaml').settings.kubernetes?.domainPolicy, undefined);
  const err = t.throws(() => parseConfig(`kubernetes:
  domainPolicy:
    - { namespaces: [Bad_NS], domains: [] }
`, 'k.yaml')) as ConfigError;
  t.same(err.problems.map((p) => `${p.path}: ${p.message}`), [
    'kubernetes.domainPolicy.0.namespaces.0: must be a namespace name or *',
    'kubernetes.domainPolicy.0.domains: must name at least one domain',
  ]);
});

// --- compiled policy -----------------------------------------------------------------

t.test('an allow list matches IPv4 and IPv6 subnets, ignores host bits below the prefix, and answers the same from its memo', async (t) => {
  const list = new AllowList(['10.1.2.3/8', '192.168.1.7/32', '2001:db8::/32', '::ffff:172.16.0.0/108']);
  const cases: [string, boolean][] = [
    ['10.200.0.1', true], ['11.0.0.1', false], ['192.168.1.7', true], ['192.168.1.8', false],
    ['2001:db8:ffff::1', true], ['2001:db9::1', false], ['172.16.3.4', true], ['172.32.0.1', false], ['', false],
  ];
  for (const round of ['first', 'memoised']) for (const [ip, allowed] of cases) t.equal(list.allows(ip), allowed, `${round}: ${ip || '(no address)'}`);
  for (let i = 0; i < 10_000; i++) list.allows(`10.0.${i >> 8}.${i & 255}`);
  t.equal(list.allows('11.0.0.1'), false, 'still right after the memo filled and started over');
});

t.test('an app\'s connect timeout goes into its endpoint pools and its read timeout replaces both upstream waits; others keep the router-wide ones', async (t) => {
  const snapshot = snapshotOf(`
timeouts: { connect: 5s, upstreamHeaders: 60s, upstreamIdle: 45s }
apps:
  quick:
    domains: [quick.test]
    timeouts: { connect: 250ms, read: 2s }
    versions: { v1: { weight: 1, endpoints: ["127.0.0.1:4001"] } }
  plain:
    domains: [plain.test]
    versions: { v1: { weight: 1, endpoints: ["127.0.0.1:4001"] } }
  forever:
    domains: [forever.test]
    timeouts: { read: 1000h }
    versions: { v1: { weight: 1, endpoints: ["127.0.0.1:4001"] } }
`);
  const registry = new UpstreamRegistry();
  t.teardown(() => registry.close(true));
  const table = new RouteTable(snapshot, registry, new RequestStats());
  const quick = table.app('quick')!;
  const plain = table.app('plain')!;
  t.equal(quick.versions[0]!.upstreams[0]!.connectTimeout, 250);
  t.equal(plain.versions[0]!.upstreams[0]!.connectTimeout, 5000);
  t.not(quick.versions[0]!.upstreams[0], plain.versions[0]!.upstreams[0], 'one endpoint, two connect timeouts: two pools');
  t.same([quick.headersTimeout, quick.bodyTimeout], [2000, 2000]);
  t.same([plain.headersTimeout, plain.bodyTimeout], [60_000, 45_000]);
  t.same([table.app('forever')!.headersTimeout], [2 ** 31 - 1], 'capped at the longest timer Node can set');
  t.equal(plain.allowList, undefined, 'no allow list: no check at all');
});

// --- data plane ----------------------------------------------------------------------

t.test('an allow list admits the clients it names and answers others 403 FW_CLIENT_FORBIDDEN, logged and counted', async (t) => {
  const u = await upstream('u');
  const r = await router(`
apps:
  loopback:
    domains: [loopback.test]
    allow: [127.0.0.1/32, "10.0.0.0/8"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
  elsewhere:
    domains: [elsewhere.test]
    allow: ["10.0.0.0/8", "2001:db8::/32"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  t.equal((await r.get('loopback.test')).status, 200, 'a listed client is proxied');
  const refused = await r.get('elsewhere.test', '/secret', { headers: { 'x-request-id': 'r-403' } });
  t.equal(refused.status, 403);
  t.equal(refused.headers['x-fairway-error'], 'FW_CLIENT_FORBIDDEN');
  t.match(refused.body, /403 Forbidden/);
  t.equal(u.hits, 1, 'the refused request never reached the upstream');
  t.match(await waitForLog(r, (l) => l.reqId === 'r-403'), { log: 'access', status: 403, app: 'elsewhere', host: 'elsewhere.test', error: 'FW_CLIENT_FORBIDDEN', clientIp: '127.0.0.1' });
  t.match((await r.adminGet('/metrics')).body, /fairway_requests_total\{app="elsewhere",version="",status_class="4xx"\} 1/);
});

t.test('a refused request with a body gets 403 and its connection is closed, the body unread', async (t) => {
  const u = await upstream('u');
  const r = await router(`
apps:
  elsewhere:
    domains: [elsewhere.test]
    allow: ["10.0.0.0/8"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const res = await r.get('elsewhere.test', '/', { method: 'POST', body: 'x'.repeat(1000) });
  t.equal(res.status, 403);
  t.equal(res.headers.connection, 'close');
});

t.test('the allow list is checked before maintenance: a refused client learns nothing about the app', async (t) => {
  const u = await upstream('u');
  const r = await router(`
apps:
  closed:
    domains: [closed.test]
    allow: ["10.0.0.0/8"]
    maintenance: true
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  t.equal((await r.get('closed.test')).status, 403);
});

const ipv6 = await canListenOn('::1');
t.test('an IPv6 client is matched against IPv6 entries of the allow list', { skip: ipv6 ? false : 'this machine cannot listen on the IPv6 loopback ::1' }, async (t) => {
  const u = await upstream('u');
  const r = await router(`
listen:
  http: "[::1]:0"
  admin: 127.0.0.1:0
apps:
  v6only:
    domains: [v6.test]
    allow: ["::1/128"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
  docnet:
    domains: [docnet.test]
    allow: ["2001:db8::/32", "127.0.0.1"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const get = async (host: string) => {
    const res = await request(`http://[::1]:${r.router.httpAddress.port}/`, { headers: { host } });
    await res.body.text();
    return [res.statusCode, res.headers['x-fairway-error']];
  };
  t.same(await get('v6.test'), [200, undefined], '::1 is in ::1/128');
  t.same(await get('docnet.test'), [403, 'FW_CLIENT_FORBIDDEN'], '::1 is neither in 2001:db8::/32 nor the IPv4 127.0.0.1');
  t.match(await waitForLog(r, (l) => l.host === 'docnet.test'), { clientIp: '::1', status: 403 });
});

t.test('maintenance answers 503 FW_APP_MAINTENANCE with Retry-After while the other apps serve', async (t) => {
  const u = await upstream('u');
  const r = await router(`
apps:
  down:
    domains: [down.test]
    maintenance: true
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
  up:
    domains: [up.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const res = await r.get('down.test', '/', { headers: { 'x-request-id': 'r-maint' } });
  t.equal(res.status, 503);
  t.equal(res.headers['x-fairway-error'], 'FW_APP_MAINTENANCE');
  t.equal(res.headers['retry-after'], '60');
  t.match(res.body, /maintenance/);
  t.equal((await r.get('up.test')).status, 200);
  t.equal(u.hits, 1, 'only the serving app reached the upstream');
  t.match(await waitForLog(r, (l) => l.reqId === 'r-maint'), { status: 503, app: 'down', error: 'FW_APP_MAINTENANCE' });
  t.match((await r.adminGet('/metrics')).body, /fairway_requests_total\{app="down",version="",status_class="5xx"\} 1/);
});

t.test('turning maintenance off by a config reload restores service on the same keep-alive connection', async (t) => {
  const u = await upstream('u');
  const config = (maintenance: boolean) => `
apps:
  web:
    domains: [web.test]
    maintenance: ${maintenance}
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`;
  const r = await router(config(true));
  const client = new Client(r.http, { keepAliveTimeout: 30_000 });
  t.teardown(() => client.close());
  let connects = 0;
  let disconnects = 0;
  client.on('connect', () => connects++);
  client.on('disconnect', () => disconnects++);
  const get = async () => {
    const res = await client.request({ path: '/', method: 'GET', headers: { host: 'web.test' } });
    await res.body.text();
    return res.statusCode;
  };
  t.equal(await get(), 503);
  t.equal(await get(), 503);
  const snapshot = await r.rewrite(config(false));
  t.equal(snapshot.apps[0]!.policy.maintenance, false);
  t.equal(await get(), 200);
  t.same({ connects, disconnects }, { connects: 1, disconnects: 0 }, 'one connection carried every request');
});

t.test('ACME HTTP-01 validations are answered for an app in maintenance or behind an allow list', async (t) => {
  const challenges = new AcmeChallenges();
  const silent = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, done) => done() }) });
  const dp = new DataPlane({ stats: new RequestStats(), logger: silent, maxHeaderSize: 16384, certificates: new CertificateStore(randomBytes(48)), challenges });
  t.teardown(() => dp.close(100));
  dp.apply(snapshotOf(`
apps:
  down:
    domains: [down.test]
    maintenance: true
    versions: { v1: { weight: 1, endpoints: ["127.0.0.1:1"] } }
  private:
    domains: [private.test]
    allow: ["10.0.0.0/8"]
    versions: { v1: { weight: 1, endpoints: ["127.0.0.1:1"] } }
`));
  const address = await dp.listen('127.0.0.1', 0);
  challenges.setHttp01('tok-123', 'tok-123.thumbprint');
  for (const host of ['down.test', 'private.test']) {
    const res = await request(`http://127.0.0.1:${address.port}/.well-known/acme-challenge/tok-123`, { headers: { host } });
    t.same([res.statusCode, await res.body.text()], [200, 'tok-123.thumbprint'], host);
  }
  const other = await request(`http://127.0.0.1:${address.port}/`, { headers: { host: 'down.test' } });
  await other.body.text();
  t.equal(other.statusCode, 503, 'every other path is still in maintenance');
});

t.test('an app\'s read timeout, not the router-wide one, bounds the wait for response headers', async (t) => {
  const silent = await upstream('silent', () => { /* accepts, never answers */ });
  const r = await router(`
timeouts: { upstreamHeaders: 20s }
apps:
  app:
    domains: [app.test]
    timeouts: { read: 300ms }
    versions: { v1: { weight: 1, endpoints: ["${silent.address}"] } }
`);
  const started = performance.now();
  const res = await r.get('app.test');
  const elapsed = performance.now() - started;
  t.equal(res.status, 504);
  t.equal(res.headers['x-fairway-error'], 'FW_UPSTREAM_TIMEOUT');
  t.ok(elapsed >= 250 && elapsed < 3000, `answered after ${Math.round(elapsed)} ms (read timeout 300 ms, router-wide 20 s)`);
});

t.test('an app\'s read timeout, not the router-wide one, bounds a pause in the response body', async (t) => {
  const stalls = await upstream('stalls', (_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('first part'); // then nothing more
  });
  const r = await router(`
timeouts: { upstreamIdle: 20s }
apps:
  app:
    domains: [app.test]
    timeouts: { read: 300ms }
    versions: { v1: { weight: 1, endpoints: ["${stalls.address}"] } }
`);
  const started = performance.now();
  await t.rejects(r.get('app.test'), 'the client connection is cut');
  const elapsed = performance.now() - started;
  t.ok(elapsed < 3000, `cut after ${Math.round(elapsed)} ms (read timeout 300 ms, router-wide 20 s)`);
  t.match(await waitForLog(r, (l) => l.log === 'access' && l.host === 'app.test'), { status: 504, error: 'timeout' });
});

async function canListenOn(host: string): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}
