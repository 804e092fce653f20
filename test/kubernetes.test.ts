import t, { type Test } from 'tap';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from './helpers/kube-api-server.js';
import { startUpstream, type TestUpstream } from './helpers/upstreams.js';
import { startTestRouter, type TestRouter, snapshotWhere } from './helpers/test-router.js';
import { tally } from './helpers/sample.js';
import { runCli } from './helpers/router-process.js';
import type { Snapshot } from '../src/model.js';

const ups: TestUpstream[] = [];
for (const name of ['v1-a', 'v1-b', 'v2-a', 'other']) ups.push(await startUpstream(name));
const [v1a, v1b, v2a, other] = ups as [TestUpstream, TestUpstream, TestUpstream, TestUpstream];
t.teardown(() => Promise.all(ups.map((u) => u.close())));

function service(name: string, ns: string, annotations: Record<string, string>, labels: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: { 'router.deis.io/routable': 'true', ...labels }, annotations },
    spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

function slice(svc: string, ns: string, endpoints: { up: TestUpstream; ready?: boolean; terminating?: boolean }[], suffix = 'x1'): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${svc}-${suffix}`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    // Every test upstream listens on 127.0.0.1 with its own port: one slice per upstream port.
    ports: [{ name: 'http', port: endpoints[0]?.up.port ?? 1, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({ addresses: ['127.0.0.1'], conditions: { ready: e.ready ?? true, serving: true, terminating: e.terminating ?? false } })),
  };
}

async function cluster(t: Test): Promise<KubeApiServer> {
  const api = await startKubeApiServer();
  t.teardown(() => api.close());
  return api;
}

async function router(t: Test, api: KubeApiServer, extraYaml = ''): Promise<TestRouter> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-k8s-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  await api.writeKubeconfig(kubeconfig);
  const r = await startTestRouter(`platformDomain: example.com\n${extraYaml}apps: {}\n`, {
    dir,
    kubernetes: { kubeconfig, backoff: { min: 50, max: 500 }, watchdogMs: 1500 },
  });
  t.teardown(() => r.close());
  return r;
}

const app = (s: Snapshot, name: string) => s.apps.find((a) => a.name === name);
const upstreamOf = (a: { json(): { upstream: string } }) => a.json().upstream;

t.test('routable Services and their ready EndpointSlice endpoints become routes within milliseconds', async (t) => {
  const api = await cluster(t);
  api.apply(service('web', 'web', { 'router.deis.io/domains': 'web,www.example.org' }, { app: 'web' }));
  api.apply(slice('web', 'web', [{ up: v1a }]));
  api.apply({ ...service('not-routed', 'web', {}), metadata: { name: 'not-routed', namespace: 'web', labels: {} } });
  const r = await router(t, api);
  // Ready once every watch has listed and that state is a snapshot (a snapshot with the web app may come before).
  await r.router.kubernetes!.whenSynced();
  if (r.router.controlPlane.pending) await once(r.router.controlPlane, 'snapshot');
  await snapshotWhere(r, (s) => app(s, 'web')?.versions[0]?.endpoints.length === 1, 'the web app');
  const rz = await r.adminGet('/readyz');
  t.equal(rz.status, 200, `ready after the first full sync: ${JSON.stringify(rz.json())} pending=${r.router.controlPlane.pending} synced=${r.router.kubernetes!.synced} table=${r.router.dataPlane?.table !== undefined}`);
  t.equal(upstreamOf(await r.get('web.example.com')), 'v1-a');
  t.equal(upstreamOf(await r.get('www.example.org')), 'v1-a');
  t.same(r.router.controlPlane.snapshot!.apps.map((a) => a.name), ['web'], 'Services without the routable label are not routed');

  // An endpoint that is no longer ready gets no new requests; a new one does.
  const started = Date.now();
  api.apply(slice('web', 'web', [{ up: v1b }]));
  await snapshotWhere(r, (s) => app(s, 'web')?.versions[0]?.endpoints[0]?.port === v1b.port, 'the endpoint change');
  t.ok(Date.now() - started < 3000, `applied in ${Date.now() - started} ms, from the watch (not a relist)`);
  t.same(await tally(5, () => r.get('web.example.com'), upstreamOf), { 'v1-b': 5 });
  api.apply(slice('web', 'web', [{ up: v1b, terminating: true }]));
  await snapshotWhere(r, (s) => app(s, 'web')?.versions[0]?.endpoints.length === 0, 'the terminating endpoint to leave');
  t.equal((await r.get('web.example.com')).status, 503, 'no ready endpoint: 503');

  // A host claimed by a newer Service stays with the older one; the loser is reported.
  // (Creation timestamps have one-second resolution: on a tie the namespace decides, and
  // "zz-shop" sorts after "web" either way; the translator's unit test covers pure age.)
  api.apply(service('shop', 'zz-shop', { 'router.deis.io/domains': 'www.example.org,shop', 'router.deis.io/weight': 'heavy' }));
  api.apply(slice('shop', 'zz-shop', [{ up: other }]));
  await snapshotWhere(r, (s) => app(s, 'shop')?.versions[0]?.endpoints.length === 1, 'the shop app');
  t.equal((await r.get('www.example.org')).status, 503, 'www.example.org stays with web (older), which has no endpoint now');
  t.equal(upstreamOf(await r.get('shop.example.com')), 'other');
  const config = (await r.adminGet('/v1/config')).json();
  t.match(config.providers.find((p: { provider: string }) => p.provider === 'kubernetes').problems, [
    { object: 'zz-shop/shop', field: 'router.deis.io/weight', message: '"heavy" must be a number >= 0; using 100' },
    { object: 'zz-shop/shop', field: 'router.deis.io/domains', message: /host "www\.example\.org" is already served by app "web"/ },
  ]);
  t.match((await r.adminGet('/metrics')).body, /fairway_config_problems\{provider="kubernetes"\} 2/);
  const routes = await runCli(['routes', '--admin', r.admin]);
  t.match(routes.stdout, /\nNot routed:\nHOST\s+CLAIMED BY\s+REASON\nwww\.example\.org\s+zz-shop\/shop\s+HostConflict: host "www\.example\.org" is already served by app "web"/, 'fairway routes lists the host the newer Service lost');
  t.match((await r.adminGet('/v1/routes')).json().unrouted, [{ host: 'www.example.org', object: 'zz-shop/shop', reason: 'HostConflict' }]);

  api.remove('Service', 'web', 'web');
  await snapshotWhere(r, (s) => !app(s, 'web'), 'the deleted Service to leave');
  await snapshotWhere(r, (s) => app(s, 'shop')?.domains.includes('www.example.org') ?? false, 'the freed host to move to shop');
  t.equal((await r.get('web.example.com')).status, 404);
});

t.test('versions by router.deis.io/app and weights; a weight change through one router reaches another through the API', async (t) => {
  const api = await cluster(t);
  api.apply(service('web-v1', 'web', { 'router.deis.io/app': 'web', 'router.deis.io/version': 'v1', 'router.deis.io/weight': '90', 'router.deis.io/domains': 'web' }));
  api.apply(service('web-v2', 'web', { 'router.deis.io/app': 'web', 'router.deis.io/version': 'v2', 'router.deis.io/weight': '10', 'router.deis.io/domains': 'web' }));
  api.apply(slice('web-v1', 'web', [{ up: v1a }]));
  api.apply(slice('web-v2', 'web', [{ up: v2a }]));
  const [a, b] = await Promise.all([router(t, api), router(t, api)]);
  for (const r of [a, b]) await snapshotWhere(r, (s) => app(s, 'web')?.versions.every((v) => v.endpoints.length === 1) ?? false, 'both versions');
  t.same(await tally(100, () => a.get('web.example.com'), upstreamOf), { 'v1-a': 90, 'v2-a': 10 });

  const put = await a.adminPut('/v1/apps/web/weights', { v1: 20, v2: 80 });
  t.equal(put.status, 200);
  t.match(put.json().versions, [{ name: 'v1', weight: 20 }, { name: 'v2', weight: 80 }], 'the answer comes once the change is live');
  t.equal((api.get('Service', 'web', 'web-v1')!.metadata!.annotations as Record<string, string>)['router.deis.io/weight'], '20', 'written to the Service annotation');
  await snapshotWhere(b, (s) => app(s, 'web')?.versions.map((v) => v.weight).join() === '20,80', 'the other router to see the weights');
  t.same(await tally(100, () => b.get('web.example.com'), upstreamOf), { 'v1-a': 20, 'v2-a': 80 });
});

t.test('API server faults: dropped and reset watches, 410 Gone, outage, fresh restart, silent watch — the last good state keeps serving', async (t) => {
  const api = await cluster(t);
  api.apply(service('web', 'web', { 'router.deis.io/domains': 'web' }));
  api.apply(slice('web', 'web', [{ up: v1a }]));
  const r = await router(t, api);
  await snapshotWhere(r, (s) => app(s, 'web')?.versions[0]?.endpoints.length === 1, 'the web app');
  const serves = async (expected: string) => t.equal(upstreamOf(await r.get('web.example.com')), expected);
  const moveTo = async (up: TestUpstream, what: string) => {
    api.apply(slice('web', 'web', [{ up }]));
    await snapshotWhere(r, (s) => app(s, 'web')?.versions[0]?.endpoints[0]?.port === up.port, what);
    await serves(up.name);
  };

  api.dropWatches();
  await moveTo(v1b, 'a change after a dropped watch');

  api.compact();
  api.dropWatches();
  await moveTo(v1a, 'a change after 410 Gone (relist)');

  api.resetConnections();
  await serves('v1-a');
  await moveTo(v2a, 'a change after reset connections');

  await api.stop();
  for (let i = 0; i < 5; i++) await serves('v2-a'); // the API server is away: still serving
  await api.start();
  await moveTo(other, 'a change after the API server came back');

  // An API server restored with an empty store that is then refilled (lower resourceVersions).
  await api.restartFresh();
  api.apply(service('web', 'web', { 'router.deis.io/domains': 'web' }));
  api.apply(slice('web', 'web', [{ up: v1a }]));
  await snapshotWhere(r, (s) => app(s, 'web')?.versions[0]?.endpoints[0]?.port === v1a.port, 'the restored state');
  await serves('v1-a');

  // A watch that stays open but goes silent is caught by the watchdog.
  api.silenceWatches();
  api.apply(slice('web', 'web', [{ up: v1b }]));
  await snapshotWhere(r, (s) => app(s, 'web')?.versions[0]?.endpoints[0]?.port === v1b.port, 'the change hidden by a silent watch', 15_000);
  await serves('v1-b');
  t.ok(r.logs.some((l) => /keeping the last good state and retrying/.test(String(l.msg))), 'restarts are logged');
});

t.test('a burst of 1000 Service events makes a handful of snapshots', async (t) => {
  const api = await cluster(t);
  const r = await router(t, api);
  let snapshots = 0;
  r.router.controlPlane.on('snapshot', () => snapshots++);
  for (let i = 0; i < 500; i++) {
    api.apply(service(`app-${i}`, 'burst', { 'router.deis.io/domains': `app-${i}` }));
    api.apply(slice(`app-${i}`, 'burst', [{ up: v1a }]));
  }
  await snapshotWhere(r, (s) => s.apps.length === 500 && s.apps.every((a) => a.versions[0]!.endpoints.length === 1), 'all 500 apps');
  t.ok(snapshots <= 10, `${snapshots} snapshots for 1000 events`);
  t.equal(upstreamOf(await r.get('app-499.example.com')), 'v1-a');
});

t.test('the builder TCP route takes its endpoints from the deis-builder Service and carries bytes both ways', async (t) => {
  const sockets = new Set<import('node:net').Socket>();
  const sshd = createServer((sock) => {
    sockets.add(sock);
    sock.pipe(sock);
  });
  sshd.listen(0, '127.0.0.1');
  await once(sshd, 'listening');
  t.teardown(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    sshd.close(() => r());
  }));
  const sshPort = (sshd.address() as { port: number }).port;
  const api = await cluster(t);
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'deis-builder-x1', namespace: 'deis', labels: { 'kubernetes.io/service-name': 'deis-builder' } },
    addressType: 'IPv4',
    ports: [{ name: 'ssh', port: sshPort, protocol: 'TCP' }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  });
  const r = await router(t, api, 'tcp:\n  builder:\n    listen: 127.0.0.1:0\n    service: deis/deis-builder\n    servicePort: ssh\n');
  await snapshotWhere(r, (s) => s.settings.tcp[0]?.endpoints[0]?.port === sshPort, 'the builder endpoints');
  const client = connect(r.router.tcpAddresses.get('builder')!.port, '127.0.0.1');
  client.write('git-upload-pack');
  const [echo] = (await once(client, 'data')) as [Buffer];
  t.equal(echo.toString(), 'git-upload-pack');
  client.end();
  await once(client, 'close');
});
