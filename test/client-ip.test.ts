import t from 'tap';
import { connect as netConnect, createServer } from 'node:net';
import { Client, request } from 'undici';
import { parseConfig, ConfigError } from '../src/config/load-config.js';
import { addressOf, ClientAddress } from '../src/data/client-address.js';
import { encodeProxyHeader } from '../src/data/proxy-protocol.js';
import { RouteTable } from '../src/data/route-table.js';
import { UpstreamRegistry } from '../src/data/upstream-registry.js';
import type { Snapshot } from '../src/model.js';
import { RequestStats } from '../src/observability/request-stats.js';
import { upstreamStarter } from './helpers/upstreams.js';
import { waitForLog, routerStarter } from './helpers/test-router.js';

const upstream = upstreamStarter(t);

const router = routerStarter(t);

const snapshotOf = (yaml: string): Snapshot => {
  const c = parseConfig(yaml, 'client-ip.yaml');
  return { generation: 1, createdAt: '', settings: c.settings, apps: c.apps, errors: [], certificates: [] };
};

// --- X-Forwarded-For rules ------------------------------------------------------------

t.test('from a trusted peer, the client is the rightmost untrusted X-Forwarded-For address; the chain left of it is dropped', async (t) => {
  const c = new ClientAddress(['10.0.0.0/8', '127.0.0.1/32']);
  const cases: [string | undefined, string, string, string][] = [
    // X-Forwarded-For, client, X-Forwarded-For sent upstream, why
    [undefined, '127.0.0.1', '127.0.0.1', 'no header: the peer'],
    ['203.0.113.7', '203.0.113.7', '203.0.113.7, 127.0.0.1', 'one hop'],
    ['198.51.100.1, 203.0.113.7, 10.0.0.2', '203.0.113.7', '203.0.113.7, 10.0.0.2, 127.0.0.1', 'walks past the trusted 10.0.0.2; 198.51.100.1 is whatever 203.0.113.7 claimed'],
    ['10.1.1.1, 10.0.0.2', '10.1.1.1', '10.1.1.1, 10.0.0.2, 127.0.0.1', 'all trusted: the leftmost'],
    ['203.0.113.7, unknown, 10.0.0.2', '10.0.0.2', '10.0.0.2, 127.0.0.1', 'an entry that is not an address stops the walk at the last address reached'],
    ['evil', '127.0.0.1', '127.0.0.1', 'garbage only: the peer'],
    ['203.0.113.7:5555, 10.0.0.2:80', '203.0.113.7', '203.0.113.7, 10.0.0.2, 127.0.0.1', 'ports are dropped'],
    ['[2001:DB8::7]:443', '2001:db8::7', '2001:db8::7, 127.0.0.1', 'bracketed IPv6 with a port, lower-cased'],
    ['2001:db8::7, ::ffff:10.0.0.3', '2001:db8::7', '2001:db8::7, 10.0.0.3, 127.0.0.1', 'IPv4-mapped IPv6 is IPv4 (and trusted as such)'],
    ['203.0.113.7,, 10.0.0.2 ,', '203.0.113.7', '203.0.113.7, 10.0.0.2, 127.0.0.1', 'empty entries are skipped, as nginx does'],
    ['203.0.113.7,10.0.0.2', '203.0.113.7', '203.0.113.7, 10.0.0.2, 127.0.0.1', 'two header fields joined'],
  ];
  for (const [xff, client, forwardedFor, why] of cases) t.same(c.resolve('127.0.0.1', xff), { client, forwardedFor }, why);
  t.equal(c.trusts('127.0.0.1'), true);
  t.equal(c.trusts('127.0.0.2'), false);
  t.equal(new ClientAddress([]).trusts('127.0.0.1'), false, 'no trusted proxies: nobody is trusted');
});

t.test('ofRequest applies the same rules to a request Node parsed in full (an Upgrade request)', async (t) => {
  const c = new ClientAddress(['127.0.0.1']);
  const req = (remoteAddress: string, xff?: string | string[]) => ({ socket: { remoteAddress }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as import('node:http').IncomingMessage;
  t.same(c.ofRequest(req('::ffff:127.0.0.1', '203.0.113.7')), { client: '203.0.113.7', forwardedFor: '203.0.113.7, 127.0.0.1' });
  t.same(c.ofRequest(req('127.0.0.2', '203.0.113.7')), { client: '127.0.0.2', forwardedFor: '127.0.0.2' });
  t.same(c.ofRequest(req('127.0.0.1')), { client: '127.0.0.1', forwardedFor: '127.0.0.1' });
});

t.test('an X-Forwarded-For entry is an IPv4 or IPv6 address, with or without a port or brackets', async (t) => {
  const cases: [string, string | undefined][] = [
    ['1.2.3.4', '1.2.3.4'], ['1.2.3.4:80', '1.2.3.4'], ['2001:db8::1', '2001:db8::1'], ['[2001:db8::1]', '2001:db8::1'],
    ['[2001:db8::1]:8080', '2001:db8::1'], ['::ffff:1.2.3.4', '1.2.3.4'], ['unknown', undefined], ['_hidden', undefined],
    ['1.2.3.4:http', undefined], ['[1.2.3.4]', undefined], ['[2001:db8::1', undefined], ['[2001:db8::1]x', undefined],
    ['1.2.3', undefined], ['example.com', undefined], ['2001:db8::1:80', '2001:db8::1:80'],
  ];
  for (const [entry, address] of cases) t.equal(addressOf(entry), address, entry);
});

t.test('trustedProxies is a list of CIDRs, empty by default', async (t) => {
  t.same(parseConfig('trustedProxies: ["10.0.0.0/8", 192.168.1.1, "fd00::/8", "10.0.0.0/8"]', 'c.yaml').settings.trustedProxies, ['10.0.0.0/8', '192.168.1.1/32', 'fd00::/8']);
  t.same(parseConfig('apps: {}', 'c.yaml').settings.trustedProxies, []);
  const err = t.throws(() => parseConfig('trustedProxies: [10.0.0.0/33]', 'c.yaml')) as ConfigError;
  t.same(err.problems.map((p) => `${p.path}: ${p.message}`), ['trustedProxies.0: must be an IP address or CIDR, like 10.0.0.0/8 or 2001:db8::/32']);
});

t.test('X-Forwarded-For from a trusted peer: the client it names is what the access log, the allow list and the upstream see', async (t) => {
  const u = await upstream('u');
  const r = await router(`
trustedProxies: ["127.0.0.1", "10.0.0.0/8"]
apps:
  private:
    domains: [private.test]
    allow: ["203.0.113.0/24"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const ok = await r.get('private.test', '/', { headers: { 'x-forwarded-for': 'spoof, 203.0.113.7, 10.0.0.2', 'x-request-id': 'xff-1' } });
  t.equal(ok.status, 200, 'admitted as 203.0.113.7');
  t.equal(u.lastHeaders['x-forwarded-for'], '203.0.113.7, 10.0.0.2, 127.0.0.1', 'upstream: the honoured chain, then the peer');
  t.match(await waitForLog(r, (l) => l.reqId === 'xff-1'), { clientIp: '203.0.113.7', status: 200 });
  const refused = await r.get('private.test', '/', { headers: { 'x-forwarded-for': '203.0.113.7, 198.51.100.4', 'x-request-id': 'xff-2' } });
  t.equal(refused.status, 403, 'the rightmost untrusted address is 198.51.100.4, not on the list; what it claims left of it does not count');
  t.match(await waitForLog(r, (l) => l.reqId === 'xff-2'), { clientIp: '198.51.100.4', error: 'FW_CLIENT_FORBIDDEN' });
  t.equal(u.hits, 1);
});

t.test('X-Forwarded-For from an untrusted peer is ignored: a spoofer claiming an allowed address is refused, and the header is replaced upstream', async (t) => {
  const u = await upstream('u');
  const r = await router(`
trustedProxies: ["10.0.0.0/8"]
apps:
  private:
    domains: [private.test]
    allow: ["203.0.113.0/24"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
  open:
    domains: [open.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const spoofed = await r.get('private.test', '/', { headers: { 'x-forwarded-for': '203.0.113.7', 'x-request-id': 'spoof-1' } });
  t.equal(spoofed.status, 403, '127.0.0.1 is not a trusted proxy: its X-Forwarded-For does not reach the allow list');
  t.match(await waitForLog(r, (l) => l.reqId === 'spoof-1'), { clientIp: '127.0.0.1', error: 'FW_CLIENT_FORBIDDEN' });
  t.equal(u.hits, 0);
  const open = await r.get('open.test', '/', { headers: { 'x-forwarded-for': '203.0.113.7, 10.0.0.2', 'x-request-id': 'spoof-2' } });
  t.equal(open.status, 200);
  t.equal(u.lastHeaders['x-forwarded-for'], '127.0.0.1', 'upstream gets the peer alone');
  t.match(await waitForLog(r, (l) => l.reqId === 'spoof-2'), { clientIp: '127.0.0.1' });
});

t.test('without trustedProxies (the default) X-Forwarded-For is never honoured', async (t) => {
  const u = await upstream('u');
  const r = await router(`
apps:
  private:
    domains: [private.test]
    allow: ["203.0.113.0/24"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  t.equal((await r.get('private.test', '/', { headers: { 'x-forwarded-for': '203.0.113.7' } })).status, 403);
});

t.test('changing trustedProxies by a config reload applies to the next request', async (t) => {
  const u = await upstream('u');
  const config = (trusted: string) => `
trustedProxies: [${trusted}]
apps:
  private:
    domains: [private.test]
    allow: ["203.0.113.0/24"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`;
  const r = await router(config(''));
  const xff = { headers: { 'x-forwarded-for': '203.0.113.7' } };
  t.equal((await r.get('private.test', '/', xff)).status, 403);
  await r.rewrite(config('"127.0.0.1"'));
  t.equal((await r.get('private.test', '/', xff)).status, 200);
});

t.test('the version header\'s client list sees the same client as the allow list', async (t) => {
  const v1 = await upstream('v1');
  const v2 = await upstream('v2');
  const r = await router(`
trustedProxies: ["127.0.0.1"]
apps:
  web:
    domains: [web.test]
    versionHeader: { allowFrom: ["203.0.113.0/24"] }
    versions:
      v1: { weight: 1, endpoints: ["${v1.address}"] }
      v2: { weight: 0, endpoints: ["${v2.address}"] }
`);
  const pick = async (xff: string) => (await r.get('web.test', '/', { headers: { 'x-forwarded-for': xff, 'x-fairway-version': 'v2' } })).headers['x-upstream'];
  t.equal(await pick('203.0.113.7'), 'v2', 'a listed client picks its version');
  t.equal(await pick('198.51.100.7'), 'v1', 'another client is picked by weight');
});

const ipv6 = await canListenOn('::1');
t.test('IPv6: X-Forwarded-For from a trusted IPv6 peer names an IPv6 client; an untrusted IPv6 peer spoofing one is refused', { skip: ipv6 ? false : 'this machine cannot listen on ::1' }, async (t) => {
  const u = await upstream('u');
  const config = (trusted: string) => `
listen: { http: "[::1]:0", admin: 127.0.0.1:0 }
trustedProxies: [${trusted}]
apps:
  docnet:
    domains: [docnet.test]
    allow: ["2001:db8::/32"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`;
  const r = await router(config('"::1"'));
  const get = async (xff: string, id: string) => {
    const res = await request(`http://[::1]:${r.router.httpAddress.port}/`, { headers: { host: 'docnet.test', 'x-forwarded-for': xff, 'x-request-id': id } });
    await res.body.text();
    return res.statusCode;
  };
  t.equal(await get('2001:DB8::7', 'v6-1'), 200);
  t.equal(u.lastHeaders['x-forwarded-for'], '2001:db8::7, ::1');
  t.match(await waitForLog(r, (l) => l.reqId === 'v6-1'), { clientIp: '2001:db8::7' });
  t.equal(await get('2001:db8::7, 2001:db9::1', 'v6-2'), 403, 'the rightmost untrusted address is outside 2001:db8::/32');
  await r.rewrite(config('"fd00::/8"'));
  t.equal(await get('2001:db8::7', 'v6-3'), 403, '::1 is no longer trusted: its header is ignored');
  t.match(await waitForLog(r, (l) => l.reqId === 'v6-3'), { clientIp: '::1' });
});

t.test('with the PROXY protocol, the declared client is the peer: its X-Forwarded-For counts only when that address is trusted', async (t) => {
  const u = await upstream('u');
  const r = await router(`
proxyProtocol: { http: true }
trustedProxies: ["10.0.0.0/8"]
apps:
  open:
    domains: [open.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const port = r.router.httpAddress.port;
  const via = (source: string) => new Client(`http://127.0.0.1:${port}`, {
    connect: (_opts, callback) => {
      const socket = netConnect(port, '127.0.0.1');
      socket.write(encodeProxyHeader(2, { sourceAddress: source, sourcePort: 1000, destinationAddress: '192.0.2.1', destinationPort: 80, family: 'IPv4' }));
      socket.once('connect', () => callback(null, socket));
    },
  });
  const internal = via('10.0.0.5');
  const outside = via('198.51.100.9');
  t.teardown(() => Promise.all([internal.close(), outside.close()]));
  const send = async (c: Client, id: string) => {
    const res = await c.request({ path: '/', method: 'GET', headers: { host: 'open.test', 'x-forwarded-for': '203.0.113.7', 'x-request-id': id } });
    await res.body.text();
  };
  await send(internal, 'pp-trusted');
  t.equal(u.lastHeaders['x-forwarded-for'], '203.0.113.7, 10.0.0.5', 'declared 10.0.0.5 is a trusted proxy: its X-Forwarded-For names the client');
  t.match(await waitForLog(r, (l) => l.reqId === 'pp-trusted'), { clientIp: '203.0.113.7' });
  await send(outside, 'pp-untrusted');
  t.equal(u.lastHeaders['x-forwarded-for'], '198.51.100.9', 'declared 198.51.100.9 is not: it is the client, its header is replaced');
  t.match(await waitForLog(r, (l) => l.reqId === 'pp-untrusted'), { clientIp: '198.51.100.9' });
});

// --- allow lists, the Deis way ---------------------------------------------------------

t.test('defaultWhitelist, whitelistMode and enforceWhitelists are read into the settings', async (t) => {
  const c = parseConfig(`
defaultWhitelist: ["10.0.0.0/8", "2001:db8::/32"]
whitelistMode: override
enforceWhitelists: true
`, 'c.yaml');
  t.same(c.settings.whitelist, { defaultWhitelist: ['10.0.0.0/8', '2001:db8::/32'], mode: 'override', enforce: true });
  t.same(parseConfig('apps: {}', 'c.yaml').settings.whitelist, { defaultWhitelist: [], mode: 'extend', enforce: false }, 'defaults: none, extend, not enforced');
  const err = t.throws(() => parseConfig('defaultWhitelist: [nope]\nwhitelistMode: merge\nenforceWhitelists: "yes"', 'c.yaml')) as ConfigError;
  t.same(err.problems.map((p) => `${p.path}: ${p.message}`).sort(), [
    'defaultWhitelist.0: must be an IP address or CIDR, like 10.0.0.0/8 or 2001:db8::/32',
    'enforceWhitelists: must be true or false',
    'whitelistMode: must be extend or override',
  ]);
});

t.test('an app\'s effective allow list follows the Deis router: default list ∪ app list (extend), app list alone (override), and with enforceWhitelists no list means nobody', async (t) => {
  const apps = `
apps:
  own:
    domains: [own.test]
    allow: ["203.0.113.0/24"]
  none:
    domains: [none.test]
`;
  const registry = new UpstreamRegistry();
  t.teardown(() => registry.close(true));
  const check = (settings: string) => {
    const table = new RouteTable(snapshotOf(settings + apps), registry, new RequestStats());
    const verdict = (app: string) => {
      const list = table.app(app)!.allowList;
      return list === undefined ? 'everyone' : ['203.0.113.7', '10.1.2.3', '198.51.100.1'].filter((ip) => list.allows(ip)).join(' ') || 'nobody';
    };
    return { own: verdict('own'), none: verdict('none') };
  };
  const cases: [string, string, { own: string; none: string }][] = [
    ['no router-wide rules', '', { own: '203.0.113.7', none: 'everyone' }],
    ['a default list, extend (the default mode)', 'defaultWhitelist: ["10.0.0.0/8"]\n', { own: '203.0.113.7 10.1.2.3', none: '10.1.2.3' }],
    ['a default list, override', 'defaultWhitelist: ["10.0.0.0/8"]\nwhitelistMode: override\n', { own: '203.0.113.7', none: '10.1.2.3' }],
    ['enforced, no default list', 'enforceWhitelists: true\n', { own: '203.0.113.7', none: 'nobody' }],
    ['enforced, a default list', 'enforceWhitelists: true\ndefaultWhitelist: ["10.0.0.0/8"]\n', { own: '203.0.113.7 10.1.2.3', none: '10.1.2.3' }],
    ['enforced, override', 'enforceWhitelists: true\nwhitelistMode: override\ndefaultWhitelist: ["10.0.0.0/8"]\n', { own: '203.0.113.7', none: '10.1.2.3' }],
    ['override without a default list', 'whitelistMode: override\n', { own: '203.0.113.7', none: 'everyone' }],
  ];
  for (const [name, settings, expected] of cases) t.same(check(settings), expected, name);
  const table = new RouteTable(snapshotOf('defaultWhitelist: ["10.0.0.0/8"]\n' + apps + '  other:\n    domains: [other.test]\n'), registry, new RequestStats());
  t.equal(table.app('none')!.allowList, table.app('other')!.allowList, 'apps without a list share one compiled default list');
});

t.test('through the router: enforceWhitelists refuses every client of an app without a list unless the default list covers it; extend and override', async (t) => {
  const u = await upstream('u');
  const config = (settings: string) => `
trustedProxies: ["127.0.0.1"]
${settings}
apps:
  listed:
    domains: [listed.test]
    allow: ["203.0.113.0/24"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
  unlisted:
    domains: [unlisted.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`;
  const r = await router(config('enforceWhitelists: true'));
  const status = async (host: string, client: string) => (await r.get(host, '/', { headers: { 'x-forwarded-for': client } })).status;
  t.same([await status('unlisted.test', '203.0.113.7'), await status('unlisted.test', '10.1.2.3')], [403, 403], 'enforced, no default: nobody reaches an app without a list');
  t.same([await status('listed.test', '203.0.113.7'), await status('listed.test', '10.1.2.3')], [200, 403], 'an app with a list: its list');
  await r.rewrite(config('enforceWhitelists: true\ndefaultWhitelist: ["10.0.0.0/8"]'));
  t.same([await status('unlisted.test', '10.1.2.3'), await status('unlisted.test', '203.0.113.7')], [200, 403], 'the default list covers the app without a list');
  t.same([await status('listed.test', '10.1.2.3'), await status('listed.test', '203.0.113.7')], [200, 200], 'extend: default ∪ app list');
  await r.rewrite(config('defaultWhitelist: ["10.0.0.0/8"]\nwhitelistMode: override'));
  t.same([await status('listed.test', '10.1.2.3'), await status('listed.test', '203.0.113.7')], [403, 200], 'override: the app list alone');
  t.same([await status('unlisted.test', '10.1.2.3'), await status('unlisted.test', '198.51.100.1')], [200, 403], 'override: an app without a list still gets the default one');
  await r.rewrite(config(''));
  t.equal(await status('unlisted.test', '198.51.100.1'), 200, 'rules removed: an app without a list admits everyone again');
});

async function canListenOn(host: string): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}
