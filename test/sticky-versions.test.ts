/**
 * Sticky versions (a signed cookie keeps a client on the version that served it while that
 * version has weight > 0) and the `X-Fairway-Version` header override, end to end through
 * real routers and real upstreams on loopback, plus the cookie codec, the config keys and
 * the shared key in storage.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import path from 'node:path';
import { Agent, request } from 'undici';
import { ConfigError, parseConfig } from '../src/config/load-config.js';
import { StickyCookie, signVersion, STICKY_MAX_AGE } from '../src/data/sticky-cookie.js';
import { loadStickyKey, STICKY_KEY, StickyKeySource } from '../src/data/sticky-key-source.js';
import { FairwayError } from '../src/errors.js';
import type { Snapshot } from '../src/model.js';
import { createLogger } from '../src/observability/logger.js';
import { FileStorage } from '../src/tls/file-storage.js';
import type { Storage } from '../src/tls/storage.js';
import { SecretStorage } from '../src/tls/secret-storage.js';
import { startKubeApiServer } from './helpers/kube-api-server.js';
import { refusedAddress, startUpstream, type TestUpstream } from './helpers/upstreams.js';
import { startTestRouter, type Answer, type TestRouter } from './helpers/test-router.js';

const ups: TestUpstream[] = [];
async function upstream(name: string) {
  const u = await startUpstream(name);
  ups.push(u);
  return u;
}
t.teardown(async () => {
  await Promise.all(ups.map((u) => u.close()));
});

const v1 = await upstream('v1');
const v2 = await upstream('v2');

async function router(yaml: string, dir?: string): Promise<TestRouter> {
  const r = await startTestRouter(yaml, dir ? { dir } : {});
  t.teardown(() => r.close());
  return r;
}

const tempDir = (prefix: string) => mkdtempSync(path.join(tmpdir(), `fairway-sticky-${prefix}-`));

/** An app `web` at web.test with v1/v2 at the given weights; `app` is more YAML under the app, `top` before `apps`. */
const webApp = (o: { w1?: number; w2?: number; app?: string; top?: string; e2?: string } = {}) => `${o.top ?? ''}
apps:
  web:
    domains: [web.test]
${o.app ?? '    sticky: true'}
    versions:
      v1: { weight: ${o.w1 ?? 50}, endpoints: ["${v1.address}"] }
      v2: { weight: ${o.w2 ?? 50}, endpoints: ["${o.e2 ?? v2.address}"] }
`;

const servedBy = (a: Answer) => (a.json() as { upstream: string }).upstream;
const setCookieOf = (a: Answer): string[] => {
  const h = a.headers['set-cookie'];
  return h === undefined ? [] : Array.isArray(h) ? h : [h];
};
/** The `name=value` part of the one Set-Cookie line, for a Cookie header. */
const cookiePair = (a: Answer): string => {
  const lines = setCookieOf(a);
  if (lines.length !== 1) throw new Error(`expected one Set-Cookie, got ${JSON.stringify(lines)}`);
  return lines[0]!.split(';')[0]!;
};
const withCookie = (cookie: string, headers: Record<string, string> = {}) => ({ headers: { cookie, ...headers } });

async function waitForLog(r: TestRouter, match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const found = r.logs.find(match);
    if (found) return found;
    r.router.logger.flush();
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('log line not found');
}

// --- the cookie ------------------------------------------------------------------------

t.test('a sticky cookie value is <version>.<22-char base64url HMAC>, bound to the key and the app', async (t) => {
  const key = randomBytes(32);
  const versions = [{ name: 'v1' }, { name: 'v2.beta_1' }];
  const c = new StickyCookie(key, 'web', versions);
  t.equal(c.name, 'fairway_v_web');
  const line = c.setCookie(versions[1]!, false)!;
  t.match(line, /^fairway_v_web=v2\.beta_1\.[A-Za-z0-9_-]{22}; Path=\/; Max-Age=86400; HttpOnly; SameSite=Lax$/);
  t.equal(c.setCookie(versions[1]!, true), `${line}; Secure`, 'HTTPS responses add Secure');
  t.equal(STICKY_MAX_AGE, 86_400);
  const pair = line.split(';')[0]!;
  t.equal(c.pinned(pair), versions[1]);
  t.equal(c.pinned(`a=1; ${pair}; b=2`), versions[1], 'found among other cookies');
  t.equal(c.pinned(`a=1;${pair}`), versions[1], 'without a space after the separator');
  t.equal(c.pinned(`x${pair}`), undefined, 'a longer cookie name ending in ours is not ours');
  t.equal(c.pinned(`other=${pair}`), undefined, 'our name inside another cookie value is not ours');
  t.equal(new StickyCookie(randomBytes(32), 'web', versions).pinned(pair), undefined, 'another key does not recognise it');
  t.equal(new StickyCookie(key, 'api', versions).pinned(pair.replace('fairway_v_web', 'fairway_v_api')), undefined, 'another app does not recognise it');
  const sig = signVersion(key, 'web', 'v1');
  const flipped = sig.slice(0, -1) + (sig.endsWith('A') ? 'B' : 'A');
  for (const bad of ['fairway_v_web=v1', `fairway_v_web=v1.${flipped}`, `fairway_v_web=v1.${sig.slice(0, 21)}`, `fairway_v_web=v1.${sig}x`, `fairway_v_web=v3.${signVersion(key, 'web', 'v3')}`, 'fairway_v_web=', '']) {
    t.equal(c.pinned(bad), undefined, JSON.stringify(bad));
  }
  t.equal(c.pinned(`fairway_v_web=v1.${sig}`), versions[0]);
  t.equal(c.pinned(`fairway_v_web=v1.${sig} ; x=y`), versions[0], 'spaces before the next separator are not part of the value');
});

// --- config ----------------------------------------------------------------------------

t.test('apps.<app>.sticky and versionHeader (true, or { allowFrom }) are read into the app\'s version pick; absent, neither applies', async (t) => {
  const c = parseConfig(`
sticky: { secret: "0123456789abcdef-long-enough" }
apps:
  plain: {}
  sticky: { sticky: true }
  open: { versionHeader: true }
  closed: { versionHeader: false }
  narrow: { versionHeader: { allowFrom: ["10.0.0.0/8", 192.168.1.7, "10.0.0.0/8"] } }
`, 'pick.yaml');
  const pick = (name: string) => c.apps.find((a) => a.name === name)!.versionPick;
  t.same(pick('plain'), { sticky: false, header: undefined });
  t.same(pick('sticky'), { sticky: true, header: undefined });
  t.same(pick('open'), { sticky: false, header: { allowFrom: [] } }, 'true: from any client');
  t.same(pick('closed'), { sticky: false, header: undefined });
  t.same(pick('narrow'), { sticky: false, header: { allowFrom: ['10.0.0.0/8', '192.168.1.7/32'] } }, 'canonical, once each');
  t.same(c.settings.sticky, { secret: '0123456789abcdef-long-enough', secretFile: undefined });
  t.same(parseConfig('apps: {}', 'none.yaml').settings.sticky, { secret: undefined, secretFile: undefined });
});

t.test('invalid sticky and versionHeader keys are reported with file:line:column and key path', async (t) => {
  const dir = tempDir('config');
  const err = t.throws(() => parseConfig(`sticky: { secret: short }
apps:
  web:
    sticky: maybe
    versionHeader: { allowFrom: [] }
  api:
    versionHeader: { allowFrom: [banana] }
  ops:
    versionHeader: yes
`, path.join(dir, 'bad.yaml'))) as ConfigError;
  t.type(err, ConfigError);
  const lines = err.message.split('\n').map((l) => l.slice(dir.length + 1));
  t.same(lines, [
    'bad.yaml:1:19: sticky.secret: must be a string of at least 16 characters',
    'bad.yaml:4:13: apps.web.sticky: must be true or false',
    'bad.yaml:5:33: apps.web.versionHeader.allowFrom: must list at least one IP address or CIDR (or use versionHeader: true)',
    'bad.yaml:7:34: apps.api.versionHeader.allowFrom.0: must be an IP address or CIDR, like 10.0.0.0/8 or 2001:db8::/32',
    'bad.yaml:9:20: apps.ops.versionHeader: must be true, false or { allowFrom: [CIDR…] }',
  ]);
  const both = t.throws(() => parseConfig('sticky: { secret: "0123456789abcdef", secretFile: key }\n', path.join(dir, 'both.yaml'))) as ConfigError;
  t.match(both.message, /sticky: set secret or secretFile, not both/);
  const missing = t.throws(() => parseConfig('sticky: { secretFile: nowhere.key }\n', path.join(dir, 'missing.yaml'))) as ConfigError;
  t.match(missing.message, new RegExp(`missing.yaml:1:23: sticky.secretFile: file not found: ${path.join(dir, 'nowhere.key')}`));
});

// --- sticky routing --------------------------------------------------------------------

t.test('a fresh client of a sticky app gets a signed cookie naming the version that served it, and keeps that version for 50 requests', async (t) => {
  const r = await router(webApp());
  const first = await r.get('web.test');
  const second = await r.get('web.test');
  t.same([servedBy(first), servedBy(second)], ['v1', 'v2'], 'fresh clients are picked by weight (50/50 alternates)');
  const [line] = setCookieOf(first);
  t.match(line, /^fairway_v_web=v1\.[A-Za-z0-9_-]{22}; Path=\/; Max-Age=86400; HttpOnly; SameSite=Lax$/, 'no Secure over plain HTTP');
  t.match(setCookieOf(second)[0], /^fairway_v_web=v2\./);
  const a = cookiePair(first);
  const b = cookiePair(second);
  const seen = { a: new Set<string>(), b: new Set<string>() };
  let cookiesSet = 0;
  for (let i = 0; i < 50; i++) {
    const ra = await r.get('web.test', '/', withCookie(`theme=dark; ${a}`));
    const rb = await r.get('web.test', '/', withCookie(b));
    seen.a.add(servedBy(ra));
    seen.b.add(servedBy(rb));
    cookiesSet += setCookieOf(ra).length + setCookieOf(rb).length;
  }
  t.same([...seen.a], ['v1'], 'the v1 client stayed on v1');
  t.same([...seen.b], ['v2'], 'the v2 client stayed on v2');
  t.equal(cookiesSet, 0, 'a valid cookie that was honoured is not sent again');
  t.match(v1.lastHeaders.cookie, /fairway_v_web=v1\./, 'the cookie is forwarded to the app as it came (opaque to it)');
  t.match(await waitForLog(r, (l) => l.log === 'access' && l.pick === 'cookie'), { app: 'web', version: 'v1', pick: 'cookie' });
  t.match(await waitForLog(r, (l) => l.log === 'access' && l.pick === 'weight'), { app: 'web', pick: 'weight' });
});

t.test('sticky clients do not bend the split for fresh clients: these still get exactly the weights', async (t) => {
  const r = await router(webApp({ w1: 75, w2: 25 }));
  let pinned = '';
  for (let i = 0; i < 8 && !pinned.startsWith('fairway_v_web=v2'); i++) pinned = cookiePair(await r.get('web.test'));
  t.match(pinned, /^fairway_v_web=v2\./);
  const fresh: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    // Three requests of the v2-pinned client for every fresh one.
    for (let k = 0; k < 3; k++) t.equal(servedBy(await r.get('web.test', '/', withCookie(pinned))), 'v2');
    const v = servedBy(await r.get('web.test'));
    fresh[v] = (fresh[v] ?? 0) + 1;
  }
  t.same(fresh, { v1: 300, v2: 100 }, 'fresh clients split 75/25 exactly, however many requests the pinned client sends');
});

t.test('a client whose version goes to weight 0 is picked by weight again and its cookie is rewritten; the new cookie sticks', async (t) => {
  const r = await router(webApp());
  const first = await r.get('web.test');
  t.equal(servedBy(first), 'v1');
  const old = cookiePair(first);
  const put = await r.adminPut('/v1/apps/web/weights', { v1: 0, v2: 100 });
  t.equal(put.status, 200);
  const after = await r.get('web.test', '/', withCookie(old));
  t.equal(servedBy(after), 'v2', 'the cookie of a version with weight 0 is ignored');
  t.match(setCookieOf(after)[0], /^fairway_v_web=v2\./, 'and rewritten to the version that served');
  const renewed = cookiePair(after);
  t.match(await waitForLog(r, (l) => l.log === 'access' && l.pick === 'weight' && l.version === 'v2'), { pick: 'weight' });
  // Back to 50/50 (the rollback of a rollback): the client now stays on v2.
  await r.adminPut('/v1/apps/web/weights', { v1: 50, v2: 50 });
  for (let i = 0; i < 10; i++) {
    const res = await r.get('web.test', '/', withCookie(renewed));
    t.equal(servedBy(res), 'v2');
    t.same(setCookieOf(res), []);
  }
});

t.test('a version that lost its endpoints is not honoured either', async (t) => {
  const r = await router(webApp());
  const cookie = cookiePair(await r.get('web.test'));
  t.match(cookie, /^fairway_v_web=v1\./);
  await r.rewrite(webApp().replace(`v1: { weight: 50, endpoints: ["${v1.address}"] }`, 'v1: { weight: 50, endpoints: [] }'));
  const res = await r.get('web.test', '/', withCookie(cookie));
  t.equal(servedBy(res), 'v2');
  t.match(setCookieOf(res)[0], /^fairway_v_web=v2\./);
});

t.test('forged, tampered, foreign and unsigned cookies are ignored: the client is picked by weight and gets a valid cookie', async (t) => {
  const r = await router(webApp({ w1: 100, w2: 0 }).replace('v2: { weight: 0', 'v2: { weight: 1'));
  const valid = cookiePair(await r.get('web.test'));
  t.match(valid, /^fairway_v_web=v1\./);
  const sig = valid.slice('fairway_v_web=v1.'.length);
  const forged = [
    'fairway_v_web=v2',
    `fairway_v_web=v2.${sig}`,
    `fairway_v_web=v2.${signVersion(randomBytes(32), 'web', 'v2')}`,
    `fairway_v_web=v2.${sig.slice(0, -2)}AA`,
  ];
  for (const cookie of forged) {
    // v1 has 100 of 101: a fresh pick is almost always v1, so a honoured forgery would show as v2.
    const res = await r.get('web.test', '/', withCookie(cookie));
    t.equal(servedBy(res), 'v1', cookie);
    t.match(setCookieOf(res)[0], /^fairway_v_web=v1\./, `${cookie}: rewritten`);
  }
});

t.test('an app that is not sticky sets no cookie and ignores one', async (t) => {
  const r = await router(webApp({ app: '    sticky: false' }));
  const served = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const res = await r.get('web.test', '/', withCookie('fairway_v_web=v1.AAAAAAAAAAAAAAAAAAAAAA'));
    served.add(servedBy(res));
    t.same(setCookieOf(res), []);
  }
  t.same([...served].sort(), ['v1', 'v2'], 'picked by weight');
  t.notOk(existsSync(path.join(r.dir, 'fairway-data', 'sticky')), 'no key is stored when no app is sticky');
});

t.test('over HTTPS the cookie is Secure', async (t) => {
  const r = await router(`listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
  admin: 127.0.0.1:0
${webApp()}`);
  const agent = new Agent({ connect: { rejectUnauthorized: false, servername: 'web.test' } });
  t.teardown(() => agent.close());
  const res = await request(`https://127.0.0.1:${r.router.httpsAddress!.port}/`, { dispatcher: agent, headers: { host: 'web.test' } });
  await res.body.text();
  t.equal(res.statusCode, 200);
  t.match(res.headers['set-cookie'], /^fairway_v_web=v1\.[A-Za-z0-9_-]{22}; Path=\/; Max-Age=86400; HttpOnly; SameSite=Lax; Secure$/);
});

// --- the key ---------------------------------------------------------------------------

t.test('two routers sharing one tls.storage sign alike: a cookie from one is honoured by the other, and after a restart', async (t) => {
  const shared = tempDir('storage');
  const yaml = webApp({ top: `tls:\n  storage: ${shared}\n` });
  // Started together: both find no key, one creates it under the lock, the other re-checks and reads it.
  const [a, b] = await Promise.all([startTestRouter(yaml), startTestRouter(yaml)]);
  t.teardown(() => b.close());
  const keyFile = path.join(shared, ...STICKY_KEY.split('/'));
  t.equal(readFileSync(keyFile).length, 32, 'one 32-byte key in storage');
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'readable by the router only');
  const fromA = await a.get('web.test');
  const cookie = cookiePair(fromA);
  for (let i = 0; i < 6; i++) {
    const res = await b.get('web.test', '/', withCookie(cookie));
    t.equal(servedBy(res), servedBy(fromA), 'the other replica keeps the client on its version');
    t.same(setCookieOf(res), [], 'and does not rewrite the cookie');
  }
  await a.close();
  const restarted = await router(yaml, a.dir);
  for (let i = 0; i < 6; i++) {
    const res = await restarted.get('web.test', '/', withCookie(cookie));
    t.equal(servedBy(res), servedBy(fromA), 'valid across a restart');
    t.same(setCookieOf(res), []);
  }
});

t.test('sticky.secret and sticky.secretFile give every router the same key without storage', async (t) => {
  const dir = tempDir('secret');
  writeFileSync(path.join(dir, 'sticky.key'), 'fwtest-secret-sticky-file-key\n');
  const bySecret = webApp({ top: 'sticky: { secret: "fwtest-secret-sticky-file-key" }\n' });
  const byFile = webApp({ top: `sticky: { secretFile: ${path.join(dir, 'sticky.key')} }\n` });
  const [a, b] = await Promise.all([router(bySecret), router(byFile)]);
  const cookie = cookiePair(await a.get('web.test'));
  const res = await b.get('web.test', '/', withCookie(cookie));
  t.equal(servedBy(res), 'v1');
  t.same(setCookieOf(res), [], 'the file\'s key (without its trailing newline) is the same key');
  t.notOk(existsSync(path.join(a.dir, 'fairway-data', 'sticky')), 'no key is generated in storage');
  const config = (await a.adminGet('/v1/config')).json();
  t.equal(config.settings.sticky.secret, '(hidden)', 'GET /v1/config does not show the secret');
  t.notMatch(JSON.stringify(config), /fwtest-secret/);
  // A config change to another secret: earlier cookies are ignored and rewritten.
  await a.rewrite(webApp({ top: 'sticky: { secret: "fwtest-secret-sticky-another" }\n' }));
  await new Promise((resolve) => setImmediate(resolve));
  const after = await a.get('web.test', '/', withCookie(cookie));
  t.equal(setCookieOf(after).length, 1, 'a new key: the old cookie is rewritten');
});

t.test('loadStickyKey creates one key under the lock however many callers race, in files and in Kubernetes Secrets', async (t) => {
  const dir = tempDir('race');
  const keys = await Promise.all(Array.from({ length: 5 }, () => loadStickyKey(new FileStorage(dir, { lockPollMs: 5 }))));
  t.equal(new Set(keys.map((k) => k.toString('hex'))).size, 1);
  t.same(await new FileStorage(dir).get(STICKY_KEY), keys[0]);

  const api = await startKubeApiServer();
  t.teardown(() => api.close());
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'deis' } });
  const secrets = () => new SecretStorage({ kubeConfig: api.kubeConfig(), namespace: 'deis', pollMs: 20 });
  const inSecrets = await Promise.all([loadStickyKey(secrets()), loadStickyKey(secrets()), loadStickyKey(secrets())]);
  t.equal(new Set(inSecrets.map((k) => k.toString('hex'))).size, 1, 'replicas sharing the namespace share the key');
  t.equal(inSecrets[0]!.length, 32);
  t.same(await secrets().get(STICKY_KEY), inSecrets[0]);
});

t.test('the key source: a secretFile too short is refused and logged; storage that fails is retried, and the key arrives when it answers', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ destination: new Writable({ write(chunk: Buffer, _e, done) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l)); done(); } }) });
  const snapshotWith = (parsed: ReturnType<typeof parseConfig>): Snapshot => ({ generation: 1, createdAt: '', settings: parsed.settings, apps: parsed.apps, errors: [], certificates: [] });
  const dir = tempDir('source');
  writeFileSync(path.join(dir, 'short.key'), 'too-short\n');
  const keys: Buffer[] = [];
  const files = new FileStorage(dir);
  let failures = 1;
  const flaky: Storage = Object.assign(Object.create(files) as Storage, {
    get: (key: string) => (failures-- > 0 ? Promise.reject(new FairwayError('FW_STORAGE_IO', 'storage down')) : files.get(key)),
    put: files.put.bind(files), lock: files.lock.bind(files), delete: files.delete.bind(files), list: files.list.bind(files),
  });
  const source = new StickyKeySource({ storage: () => flaky, onKey: (k) => keys.push(k), logger });
  t.teardown(() => source.stop());
  await source.apply(snapshotWith(parseConfig(`sticky: { secretFile: short.key }\n${webApp()}`, path.join(dir, 'a.yaml'))));
  t.same(keys, [], 'a key under 16 bytes is not used');
  logger.flush();
  await new Promise((resolve) => setImmediate(resolve));
  t.match(lines.find((l) => /sticky.secretFile cannot be used/.test(String(l.msg))), { err: 'holds 9 bytes; at least 16 are needed' });

  const stored = snapshotWith(parseConfig(webApp(), path.join(dir, 'b.yaml')));
  await source.apply(stored);
  t.same(keys, [], 'storage down: no key yet');
  for (let i = 0; i < 100 && keys.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(keys.length, 1, 'the retry a second later found the storage working');
  t.same(keys[0], await files.get(STICKY_KEY));
  await source.apply(stored);
  t.equal(keys.length, 1, 'the same settings again: nothing new');
});

// --- the version header ------------------------------------------------------------------

t.test('X-Fairway-Version reaches a version at weight 0, is not forwarded, and sets no sticky cookie', async (t) => {
  const r = await router(webApp({ w1: 100, w2: 0, app: '    sticky: true\n    versionHeader: true' }));
  for (let i = 0; i < 5; i++) {
    const res = await r.get('web.test', '/', { headers: { 'x-fairway-version': 'v2', 'x-request-id': `hdr-${i}` } });
    t.equal(servedBy(res), 'v2');
    t.same(setCookieOf(res), [], 'a tester is not pinned by the override');
  }
  t.equal(v2.lastHeaders['x-fairway-version'], undefined, 'the header is not forwarded');
  t.match(await waitForLog(r, (l) => l.reqId === 'hdr-0'), { log: 'access', app: 'web', version: 'v2', pick: 'header' });
  const pinned = cookiePair(await r.get('web.test'));
  t.match(pinned, /^fairway_v_web=v1\./);
  const over = await r.get('web.test', '/', withCookie(pinned, { 'x-fairway-version': 'v2' }));
  t.equal(servedBy(over), 'v2', 'the header wins over the cookie');
  t.same(setCookieOf(over), [], 'and leaves the cookie alone');
  t.equal(servedBy(await r.get('web.test', '/', withCookie(pinned))), 'v1', 'without the header the client is back on its version');
});

t.test('X-Fairway-Version is ignored (and stripped) for apps that do not accept it and for clients outside allowFrom', async (t) => {
  const cases: [string, string, string][] = [
    ['not accepted', '    sticky: false', 'v1'],
    ['explicitly off', '    versionHeader: false', 'v1'],
    ['client outside allowFrom', '    versionHeader: { allowFrom: ["10.0.0.0/8", "::1/128"] }', 'v1'],
    ['client inside allowFrom', '    versionHeader: { allowFrom: ["10.0.0.0/8", "127.0.0.0/8"] }', 'v2'],
  ];
  for (const [name, app, expected] of cases) {
    const r = await router(webApp({ w1: 100, w2: 0, app }));
    const res = await r.get('web.test', '/', { headers: { 'x-fairway-version': 'v2' } });
    t.equal(servedBy(res), expected, name);
    t.equal((expected === 'v1' ? v1 : v2).lastHeaders['x-fairway-version'], undefined, `${name}: not forwarded`);
    const unknown = await r.get('web.test', '/', { headers: { 'x-fairway-version': 'v9' } });
    t.equal(unknown.status, expected === 'v1' ? 200 : 404, `${name}: an unknown version is ${expected === 'v1' ? 'ignored too' : 'refused'}`);
  }
});

t.test('X-Fairway-Version naming an unknown version is 404 FW_VERSION_NOT_FOUND; one without endpoints is 503 FW_NO_ENDPOINTS', async (t) => {
  const r = await router(webApp({ w1: 100, w2: 0, e2: '', app: '    versionHeader: true' }).replace('endpoints: [""]', 'endpoints: []'));
  const unknown = await r.get('web.test', '/', { headers: { 'x-fairway-version': 'v3', 'x-request-id': 'hdr-unknown' } });
  t.equal(unknown.status, 404);
  t.equal(unknown.headers['x-fairway-error'], 'FW_VERSION_NOT_FOUND');
  t.match(await waitForLog(r, (l) => l.reqId === 'hdr-unknown'), { log: 'access', app: 'web', status: 404, error: 'FW_VERSION_NOT_FOUND' });
  const caseMatters = await r.get('web.test', '/', { headers: { 'x-fairway-version': 'V1' } });
  t.equal(caseMatters.status, 404, 'version names are matched exactly');
  const empty = await r.get('web.test', '/', { headers: { 'x-fairway-version': 'v2' } });
  t.equal(empty.status, 503);
  t.equal(empty.headers['x-fairway-error'], 'FW_NO_ENDPOINTS');
  t.equal(servedBy(await r.get('web.test', '/', { headers: { 'x-fairway-version': 'v1' } })), 'v1');
});

t.test('a request sent to a version by X-Fairway-Version is not retried on another version', async (t) => {
  const refused = await refusedAddress();
  const r = await router(webApp({ w1: 100, w2: 0, e2: refused, app: '    versionHeader: true' }));
  const res = await r.get('web.test', '/', { headers: { 'x-fairway-version': 'v2' } });
  t.equal(res.status, 502);
  t.equal(res.headers['x-fairway-error'], 'FW_UPSTREAM_REFUSED');
  const weighted = await r.get('web.test');
  t.equal(servedBy(weighted), 'v1');
});

t.test('GET /v1/apps/{app} shows the app\'s version pick', async (t) => {
  const r = await router(webApp({ app: '    sticky: true\n    versionHeader: { allowFrom: ["10.0.0.0/8"] }' }));
  t.match((await r.adminGet('/v1/apps/web')).json(), { name: 'web', versionPick: { sticky: true, header: { allowFrom: ['10.0.0.0/8'] } } });
});
