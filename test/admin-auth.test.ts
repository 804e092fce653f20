/**
 * Admin API protection: loopback clients may do anything; from another address only the
 * probes and metrics are open, everything else needs the bearer token (403 without a
 * token configured, 401 without or with a wrong one); the CLI sends the token from
 * FAIRWAY_ADMIN_TOKEN or a token file; changes are audited with who and how, never the
 * token. In Kubernetes mode the replicas share one generated token Secret, and cutover
 * forwarding and replica counters authenticate with it.
 *
 * The router's admin listens on 0.0.0.0, reached through loopback and through a
 * non-loopback address of this machine (whose connections arrive from that address).
 */
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { KubernetesAdminToken } from '../src/admin/kubernetes-admin-token.js';
import type { CutoverDecision } from '../src/cutover/cutover-store.js';
import { createLogger } from '../src/observability/logger.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from './helpers/kube-api-server.js';
import { captureLog, rememberSecret, testSecret } from './helpers/log-capture.js';
import { runCli } from './helpers/router-process.js';
import { snapshotWhere, startTestRouter, waitForLog, type TestRouter } from './helpers/test-router.js';
import { upstreamStarter } from './helpers/upstreams.js';

/** A non-loopback address of this machine (IPv4 first), as a URL host. */
function outsideHost(): string | undefined {
  const all = Object.values(networkInterfaces()).flat().filter((i) => i !== undefined && !i.internal);
  const v4 = all.find((i) => i!.family === 'IPv4');
  if (v4) return v4.address;
  const v6 = all.find((i) => i!.family === 'IPv6' && !i!.address.startsWith('fe80'));
  return v6 ? `[${v6.address}]` : undefined;
}

const OUTSIDE = outsideHost();
if (OUTSIDE === undefined) {
  t.plan(0, 'this machine has no non-loopback address: the admin API cannot be reached from outside loopback here');
  process.exit(0);
}
const LISTEN = 'listen:\n  http: 127.0.0.1:0\n  admin: 0.0.0.0:0\n  builder: 127.0.0.1:0\n';

const upstream = upstreamStarter(t);
const a = await upstream('a');
const b = await upstream('b');

/** `v1` of 100 at `v2` of 0 to 100: a reload needs a change to make a snapshot. */
function config(extra = '', v1 = 90): string {
  return `${LISTEN}${extra}
apps:
  web:
    domains: [web.test]
    versions:
      v1: { weight: ${v1}, endpoints: ["${a.address}"] }
      v2: { weight: ${100 - v1}, endpoints: ["${b.address}"] }
`;
}

async function router(t: Test, yaml: string): Promise<TestRouter & { outside: string }> {
  const r = await startTestRouter(yaml);
  t.teardown(() => r.close());
  return Object.assign(r, { outside: `http://${OUTSIDE}:${r.router.adminAddress.port}` });
}

async function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: unknown } = {}) {
  const res = await request(url, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { ...init.headers, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body, json: () => JSON.parse(body) };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const audits = (r: TestRouter) => r.logs.filter((l) => l.msg === 'admin change');

t.test('without a token configured, other addresses get 403 FW_ADMIN_FORBIDDEN except on /healthz, /readyz and /metrics; loopback may do anything', async (t) => {
  const r = await router(t, config());
  for (const p of ['/v1/apps', '/v1/config', '/v1/routes', '/v1/certificates', '/v1/stats/web', '/nowhere']) {
    const res = await call(`${r.outside}${p}`);
    t.equal(res.status, 403, p);
    t.equal(res.json().error.code, 'FW_ADMIN_FORBIDDEN', p);
  }
  t.match((await call(`${r.outside}/v1/apps`)).json().error.message, /answers only loopback clients unless admin\.tokenFile is set/);
  const put = await call(`${r.outside}/v1/apps/web/weights`, { method: 'PUT', body: { v1: 0, v2: 100 } });
  t.equal(put.status, 403, 'a change from outside is refused');
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 90, v2: 10 }, 'and changed nothing');
  for (const p of ['/healthz', '/readyz', '/metrics']) t.equal((await call(`${r.outside}${p}`)).status, 200, `${p} stays open`);
  t.equal((await call(`${r.outside}/healthz`, { headers: bearer('not-the-token-at-all') })).status, 200, 'a stray token does not close the probes');
  t.equal((await r.adminGet('/v1/apps')).status, 200, 'loopback reads');
  t.equal((await r.adminPut('/v1/apps/web/weights', { v1: 50, v2: 50 })).status, 200, 'loopback changes');
});

t.test('with admin.tokenFile, other addresses need the bearer token: 401 with WWW-Authenticate without it or with a wrong one, 200 with it; a reload re-reads the file', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-admin-auth-'));
  const tokenFile = path.join(dir, 'admin.token');
  const token = testSecret('admin-token');
  writeFileSync(tokenFile, `${token}\n`);
  const r = await router(t, config(`admin: { tokenFile: ${tokenFile} }`));

  const none = await call(`${r.outside}/v1/apps`);
  t.equal(none.status, 401);
  t.equal(none.headers['www-authenticate'], 'Bearer realm="fairway-admin"');
  t.equal(none.json().error.code, 'FW_ADMIN_UNAUTHORIZED');
  const wrong = await call(`${r.outside}/v1/apps`, { headers: bearer(`${token}x`) });
  t.equal(wrong.status, 401, 'a wrong token (the right one plus a character)');
  t.equal((await call(`${r.outside}/v1/apps`, { headers: { authorization: `Basic ${token}` } })).status, 401, 'another scheme');
  t.notMatch(wrong.body + none.body, token, 'no answer shows the token');
  t.equal((await call(`${r.outside}/v1/apps`, { headers: bearer(token) })).status, 200, 'the token lets in');
  t.equal((await call(`${r.outside}/v1/apps`, { headers: { authorization: `bearer  ${token} ` } })).status, 200, 'the scheme in any case, spaces around');
  t.equal((await call(`${r.outside}/metrics`)).status, 200, 'metrics need no token');
  t.equal((await r.adminGet('/v1/apps')).status, 200, 'loopback needs no token');

  const rotated = testSecret('admin-token-rotated');
  writeFileSync(tokenFile, rotated);
  await r.rewrite(config(`admin: { tokenFile: ${tokenFile} }`, 80));
  t.equal((await call(`${r.outside}/v1/apps`, { headers: bearer(token) })).status, 401, 'after a reload the old token is refused');
  t.equal((await call(`${r.outside}/v1/apps`, { headers: bearer(rotated) })).status, 200, 'and the new one accepted');

  writeFileSync(tokenFile, 'short');
  await r.rewrite(config(`admin: { tokenFile: ${tokenFile} }`, 70));
  t.equal((await call(`${r.outside}/v1/apps`, { headers: bearer(rotated) })).status, 200, 'an unusable token file keeps the previous token');
  const refused = await waitForLog(r, (l) => l.msg === 'admin.tokenFile cannot be used; the admin API keeps the previous token');
  t.match(refused.err, /must hold a token of at least 16 characters/);
  t.notMatch(JSON.stringify(r.logs), /fwtest-secret|short"/, 'no log line holds a token');
});

t.test('every change is audited once with who, how it was let in and what it changed, refused ones too; reads are not; never the token', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-admin-audit-'));
  const token = testSecret('audit-token');
  writeFileSync(path.join(dir, 'admin.token'), token);
  const r = await router(t, config(`admin: { tokenFile: ${path.join(dir, 'admin.token')} }`));
  await call(`${r.outside}/v1/apps/web/weights`, { method: 'PUT', headers: { ...bearer(token), 'user-agent': 'ops-console/1.0' }, body: { v1: 70, v2: 30 } });
  await r.adminPut('/v1/apps/web/weights', { v1: 80, v2: 20 });
  await call(`${r.outside}/v1/apps/web/weights`, { method: 'PUT', body: { v1: 0, v2: 100 } });
  await call(`${r.outside}/v1/apps/web/weights`, { headers: bearer(token) });
  await call(`${r.outside}/v1/apps/web/cutover/pause`, { method: 'POST', headers: bearer(token) });
  await waitForLog(r, (l) => l.msg === 'admin change' && l.path === '/v1/apps/web/cutover/pause');
  const lines = audits(r);
  t.equal(lines.length, 4, 'the three PUTs and the POST; not the GET');
  t.match(lines[0], { level: 'info', component: 'admin-audit', time: String, peer: OUTSIDE.replace(/^\[|\]$/g, ''), auth: 'token', userAgent: 'ops-console/1.0', method: 'PUT', path: '/v1/apps/web/weights', change: { app: 'web', weights: { v1: 70, v2: 30 } }, status: 200 });
  t.match(lines[1], { peer: '127.0.0.1', auth: 'loopback', change: { weights: { v1: 80, v2: 20 } }, status: 200 });
  t.match(lines[2], { auth: 'refused', status: 401, code: 'FW_ADMIN_UNAUTHORIZED' });
  t.notOk('change' in lines[2]!, 'a refused request is not read');
  t.match(lines[3], { auth: 'token', method: 'POST', change: { app: 'web', action: 'pause' }, status: 404, code: 'FW_CUTOVER_NOT_FOUND' });
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 80, v2: 20 });
  t.notMatch(JSON.stringify(r.logs), token, 'no log line holds the token');
});

t.test('the CLI sends the token from FAIRWAY_ADMIN_TOKEN, --token-file or FAIRWAY_ADMIN_TOKEN_FILE; without it, or refused, it says what to set and exits 1', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-admin-cli-'));
  const token = testSecret('cli-token');
  const tokenFile = path.join(dir, 'admin.token');
  writeFileSync(tokenFile, `${token}\n`);
  const r = await router(t, config(`admin: { tokenFile: ${tokenFile} }`));
  const open = await router(t, config());
  const results = await Promise.all([
    runCli(['weights', 'web', 'v1=60', 'v2=40', '--admin', r.outside], { FAIRWAY_ADMIN_TOKEN: token }),
    runCli(['routes', '--admin', r.outside, '--token-file', tokenFile]),
    runCli(['logs', 'web', '-n', '1', '--admin', r.outside], { FAIRWAY_ADMIN_TOKEN_FILE: tokenFile }),
    runCli(['cutover', 'web', '--status', '--admin', r.outside, '--token-file', tokenFile], { FAIRWAY_ADMIN_TOKEN: 'a-wrong-token-but-the-option-wins' }),
    runCli(['weights', 'web', '--admin', r.outside]),
    runCli(['weights', 'web', '--admin', r.outside], { FAIRWAY_ADMIN_TOKEN: 'fwtest-secret-not-the-token' }),
    runCli(['routes', '--admin', open.outside]),
    runCli(['routes', '--admin', r.outside, '--token-file', path.join(dir, 'missing.token')]),
  ]);
  const [byEnv, byFile, byEnvFile, optionWins, without, wrong, forbidden, missingFile] = results;
  t.equal(byEnv!.code, 0, byEnv!.stderr);
  t.equal(byEnv!.stdout, 'web: v1=60 v2=40\n', 'FAIRWAY_ADMIN_TOKEN');
  t.equal(byFile!.code, 0, byFile!.stderr);
  t.match(byFile!.stdout, /web\.test/, '--token-file');
  t.equal(byEnvFile!.code, 0, `FAIRWAY_ADMIN_TOKEN_FILE ${byEnvFile!.stderr}`);
  t.equal(optionWins!.code, 2, 'the command line --token-file wins over FAIRWAY_ADMIN_TOKEN (the app has no cutover: exit 2)');
  t.match(optionWins!.stderr, /FW_CUTOVER_NOT_FOUND/);
  t.equal(without!.code, 1);
  t.match(without!.stderr, /needs a token from this machine: set FAIRWAY_ADMIN_TOKEN .*--token-file FILE \(or FAIRWAY_ADMIN_TOKEN_FILE\).*\[FW_ADMIN_UNAUTHORIZED\]/);
  t.equal(wrong!.code, 1);
  t.match(wrong!.stderr, /refused the token sent: it is not the router's admin token.*\[FW_ADMIN_UNAUTHORIZED\]/);
  t.equal(forbidden!.code, 1);
  t.match(forbidden!.stderr, /answers only clients on the router's own machine: .*set admin\.tokenFile.*\[FW_ADMIN_FORBIDDEN\]/);
  t.equal(missingFile!.code, 2, 'an unreadable token file is bad usage');
  t.match(missingFile!.stderr, /cannot read the admin token file .*missing\.token \(file not found\)/);
  for (const res of results) t.notMatch(res.stdout + res.stderr, token, 'no output shows the token');
  t.match(audits(r).find((l) => l.method === 'PUT'), { auth: 'token', userAgent: 'fairway-cli', change: { weights: { v1: 60, v2: 40 } } }, 'the CLI\'s change is audited');
});

// ---- Kubernetes mode ----

const quiet = () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: new Writable({
      write: (c: Buffer, _e, done) => {
        captureLog(c);
        c.toString().split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l)));
        done();
      },
    }),
  });
  return { logger, lines };
};

const tokenIn = (api: KubeApiServer, name = 'fairway-admin-token') => {
  const data = api.get('Secret', 'deis', name)?.data as Record<string, string> | undefined;
  return data?.token === undefined ? undefined : Buffer.from(data.token, 'base64').toString('utf8');
};

t.test('KubernetesAdminToken: replicas starting together create the Secret once and all use its token; a changed token is picked up; a Secret without a usable token is left alone', async (t) => {
  const api = await startKubeApiServer({ namespaces: ['default', 'deis'] });
  t.teardown(() => api.close());
  const { logger, lines } = quiet();
  const seen: string[][] = [[], [], []];
  const replicas = seen.map((got) => new KubernetesAdminToken({ kubeConfig: api.kubeConfig(), namespace: 'deis', name: 'fairway-admin-token', logger, onToken: (x) => got.push(x), refreshMs: 100 }));
  t.teardown(() => replicas.forEach((r) => r.stop()));
  await Promise.all(replicas.map((r) => r.start()));
  const token = tokenIn(api)!;
  rememberSecret(token);
  t.ok(token.length >= 40, 'a random token');
  t.same(seen, [[token], [token], [token]], 'every replica uses the one token');
  const creates = api.requests.filter((q) => q.method === 'POST' && q.path === '/api/v1/namespaces/deis/secrets' && q.status === 201);
  t.equal(creates.length, 1, 'created once');

  const next = testSecret('rotated-admin-token');
  api.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'fairway-admin-token', namespace: 'deis' }, type: 'Opaque', data: { token: Buffer.from(next).toString('base64') } });
  while (seen.some((got) => got.at(-1) !== next)) await new Promise((resolve) => setTimeout(resolve, 50));
  t.pass('a token changed in the Secret is used by every replica');

  api.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other', namespace: 'deis' }, type: 'Opaque', data: { password: Buffer.from('fwtest-secret-not-a-token').toString('base64') } });
  const odd = new KubernetesAdminToken({ kubeConfig: api.kubeConfig(), namespace: 'deis', name: 'other', logger, onToken: () => t.fail('no token') });
  await odd.start();
  odd.stop();
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  t.same(api.get('Secret', 'deis', 'other')!.data, { password: Buffer.from('fwtest-secret-not-a-token').toString('base64') }, 'left as it is');
  t.match(lines.find((l) => l.secret === 'deis/other'), { level: 'error', msg: /admin token: Secret deis\/other has no "token" key; it is left as it is/ });
  t.notMatch(JSON.stringify(lines), /fwtest-secret|"token":/, 'no log line holds a token');
});

function versionService(version: string, weight: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: `web-${version}`,
      namespace: 'shop',
      labels: { 'router.deis.io/routable': 'true' },
      annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': version, 'router.deis.io/weight': String(weight), 'router.deis.io/domains': 'web' },
    },
    spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

function slice(version: string, port: number): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `web-${version}-x1`, namespace: 'shop', labels: { 'kubernetes.io/service-name': `web-${version}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true, serving: true, terminating: false } }],
  };
}

t.test('Kubernetes mode: two replicas share the generated token Secret; a cutover started through the replica that does not lead is forwarded with it, and the leader reads both replicas\' counters with it', async (t) => {
  const api = await startKubeApiServer({ namespaces: ['default', 'deis', 'shop'] });
  t.teardown(() => api.close());
  api.apply(versionService('v1', 100));
  api.apply(versionService('v2', 0));
  api.apply(slice('v1', a.port));
  api.apply(slice('v2', b.port));
  const kubeconfig = path.join(mkdtempSync(path.join(tmpdir(), 'fairway-admin-k8s-')), 'kubeconfig');
  await api.writeKubeconfig(kubeconfig);
  const replica = async () => {
    const r = await startTestRouter(`${LISTEN}log: { access: false }\nplatformDomain: example.com\napps: {}\n`, {
      dir: mkdtempSync(path.join(tmpdir(), 'fairway-admin-replica-')),
      kubernetes: { kubeconfig, namespace: 'deis', backoff: { min: 50, max: 500 }, watchdogMs: 10_000, leases: { durationMs: 1000, renewMs: 200, retryMs: 100 }, statsTimeoutMs: 1000 },
    });
    t.teardown(() => r.close());
    await snapshotWhere(r, (s) => s.apps.find((x) => x.name === 'web')?.versions.every((v) => v.endpoints.length === 1) ?? false, 'both versions of web');
    return Object.assign(r, { outside: `http://${OUTSIDE}:${r.router.adminAddress.port}` });
  };
  const [ra, rb] = await Promise.all([replica(), replica()]);
  const token = tokenIn(api)!;
  rememberSecret(token);
  t.equal(api.list('Secret', 'deis').filter((s) => s.metadata?.name === 'fairway-admin-token').length, 1, 'one token Secret');
  for (const r of [ra, rb]) {
    t.equal((await call(`${r.outside}/v1/apps`)).status, 401, 'each replica refuses other addresses without the token');
    t.equal((await call(`${r.outside}/v1/apps`, { headers: bearer(token) })).status, 200, 'and accepts the Secret\'s token');
  }
  while (!ra.router.cutovers.leading && !rb.router.cutovers.leading) await new Promise((resolve) => setTimeout(resolve, 50));
  const [leader, other] = ra.router.cutovers.leading ? [ra, rb] : [rb, ra];
  const otherName = (await other.adminGet('/v1/stats/web')).json().replica;

  const begun = await call(`${other.outside}/v1/apps/web/cutover`, { method: 'POST', headers: bearer(token), body: { to: 'v2', steps: [100], holdMs: 200, onNoTraffic: 'proceed' } });
  t.equal(begun.status, 201, `forwarded to the leader with the token: ${begun.body}`);
  let status = (await leader.adminGet('/v1/apps/web/cutover')).json();
  while (status.state === 'running') {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = (await leader.adminGet('/v1/apps/web/cutover')).json();
  }
  t.equal(status.state, 'completed');
  const windows = status.history.filter((d: CutoverDecision) => d.window !== undefined);
  t.ok(windows.length > 0);
  for (const d of windows) t.same(d.window!.replicas.missing, [], 'the other replica\'s counters were read with the token');
  const audit = await waitForLog(leader, (l) => l.msg === 'admin change' && l.forwardedBy !== undefined);
  t.match(audit, { auth: 'token', forwardedBy: otherName, method: 'POST', path: '/v1/apps/web/cutover', status: 201 }, 'the leader audits the forwarded call with the replica it came through');
  t.match(await waitForLog(other, (l) => l.msg === 'admin change'), { auth: 'token', status: 201, change: { action: 'start', plan: { to: 'v2' } } }, 'and the replica that forwarded it audits the operator\'s call');
  t.notMatch(JSON.stringify([...ra.logs, ...rb.logs]), token, 'no log line holds the token');
});
