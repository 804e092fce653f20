/**
 * Cutovers in Kubernetes mode with several replicas, against the test API server driven
 * by the real client, with real upstreams: the cutover store on the Services (the shared
 * contract suite), one replica driving each cutover under the cutover Lease, operator
 * calls forwarded to it from the others, windows judged on every replica's traffic, and
 * another replica taking over when the one driving goes away (closed, or dead without
 * giving the Lease up).
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Pool } from 'undici';
import type { CutoverDecisionEvent } from '../src/cutover/cutover-controller.js';
import type { CutoverDecision, CutoverRecord } from '../src/cutover/cutover-store.js';
import { CUTOVER_ANNOTATION, KubernetesCutoverStore } from '../src/cutover/kubernetes-cutover-store.js';
import type { AppSpec, Snapshot } from '../src/model.js';
import { createLogger } from '../src/observability/logger.js';
import { KubernetesProvider } from '../src/providers/kubernetes/kubernetes-provider.js';
import { cutoverStoreContract, record } from './cutover-store-contract.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from './helpers/kube-api-server.js';
import { runCli, type CliResult } from './helpers/router-process.js';
import { startTestRouter, type TestRouter, snapshotWhere } from './helpers/test-router.js';
import { refusedAddress, startUpstream, type TestUpstream } from './helpers/upstreams.js';

const HOST = 'web.example.com';
/** Short Leases: a dead holder is replaced within about a second. */
const LEASES = { durationMs: 1000, renewMs: 200, retryMs: 100 };

// v1 always answers 200; v2 answers 500 to requests that ask for it with `x-fail: 1`.
const v1 = await startUpstream('v1');
const v2 = await startUpstream('v2', (req, res) => {
  req.resume();
  const status = req.headers['x-fail'] === '1' ? 500 : 200;
  res.writeHead(status, { 'content-type': 'application/json', 'x-upstream': 'v2' });
  res.end(JSON.stringify({ upstream: 'v2' }));
});
t.teardown(() => Promise.all([v1.close(), v2.close()]));

function versionService(app: string, version: string, weight: number, annotations: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: `${app}-${version}`,
      namespace: 'shop',
      labels: { 'router.deis.io/routable': 'true' },
      annotations: { 'router.deis.io/app': app, 'router.deis.io/version': version, 'router.deis.io/weight': String(weight), 'router.deis.io/domains': app, ...annotations },
    },
    spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

function slice(service: string, up: TestUpstream): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${service}-x1`, namespace: 'shop', labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: up.port, protocol: 'TCP' }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true, serving: true, terminating: false } }],
  };
}

/** A test API server with app `web` (v1 at 100, v2 at 0, both with an endpoint) in namespace `shop`. */
async function cluster(t: Test, web: Record<string, string> = {}): Promise<{ api: KubeApiServer; kubeconfig: string }> {
  const api = await startKubeApiServer({ namespaces: ['default', 'deis', 'shop'] });
  t.teardown(() => api.close());
  api.apply(versionService('web', 'v1', 100));
  api.apply(versionService('web', 'v2', 0, web));
  api.apply(slice('web-v1', v1));
  api.apply(slice('web-v2', v2));
  const kubeconfig = path.join(mkdtempSync(path.join(tmpdir(), 'fairway-cutover-k8s-')), 'kubeconfig');
  await api.writeKubeconfig(kubeconfig);
  return { api, kubeconfig };
}

/** A router replica in Kubernetes mode (router namespace `deis`), once it serves both versions of `web`. */
async function replica(t: Test, kubeconfig: string): Promise<TestRouter> {
  const r = await startTestRouter('log: { access: false }\nplatformDomain: example.com\napps: {}\n', {
    dir: mkdtempSync(path.join(tmpdir(), 'fairway-replica-')),
    kubernetes: { kubeconfig, namespace: 'deis', backoff: { min: 50, max: 500 }, watchdogMs: 10_000, leases: LEASES, statsTimeoutMs: 1000 },
  });
  t.teardown(() => r.close());
  await snapshotWhere(r, (s) => webOf(s)?.versions.every((v) => v.endpoints.length === 1) ?? false, 'both versions of web');
  return r;
}

/** Resolves once `r` drives cutovers (holds the cutover Lease and resumed what it found). */
async function leads(r: TestRouter): Promise<void> {
  while (!r.router.cutovers.leading) await once(r.router.cutovers, 'role');
}

/** The replica name `r` goes by (from its own stats endpoint). */
async function nameOf(r: TestRouter): Promise<string> {
  return (await r.adminGet('/v1/stats/web')).json().replica;
}

const webOf = (s: Snapshot) => s.apps.find((a) => a.name === 'web');
const weightsOf = (a: AppSpec | undefined) => Object.fromEntries((a?.versions ?? []).map((v) => [v.name, v.weight]));

/** Resolves with the first decision of web's cutover matching `test` that `r` shows, recorded already or to come. */
function decision(r: TestRouter, test: (d: CutoverDecision) => boolean): Promise<CutoverDecision> {
  const cutovers = r.router.cutovers;
  return new Promise((resolve) => {
    let recorded: readonly CutoverDecision[] = [];
    try {
      recorded = cutovers.status('web').history;
    } catch {
      // no cutover yet
    }
    const found = recorded.find(test);
    if (found) return resolve(found);
    const on = (d: CutoverDecisionEvent) => {
      if (d.app !== 'web' || !test(d)) return;
      cutovers.off('decision', on);
      resolve(d);
    };
    cutovers.on('decision', on);
  });
}

/** A steady client through one replica (closed loop on keep-alive connections). */
function traffic(r: TestRouter, headers: Record<string, string> = {}, connections = 2) {
  const pool = new Pool(r.http, { connections, keepAliveTimeout: 30_000 });
  const statuses: number[] = [];
  let running = true;
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      try {
        const res = await pool.request({ path: '/', method: 'GET', headers: { host: HOST, ...headers } });
        await res.body.dump();
        statuses.push(res.statusCode);
      } catch {
        statuses.push(0);
      }
    }
  });
  return {
    statuses,
    async stop() {
      running = false;
      await Promise.all(loops);
      await pool.close();
    },
  };
}

async function post(r: TestRouter, pathname: string, body?: unknown) {
  const res = await fetch(`${r.admin}${pathname}`, {
    method: 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
}

const cli = (r: TestRouter, ...args: string[]): Promise<CliResult> => runCli([...args, '--admin', r.admin]);
const stepsOf = (history: readonly CutoverDecision[]) => history.filter((d) => d.kind === 'step').map((d) => d.percent);
const metric = (text: string, name: string) => Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);

// ---- the store ----

const quiet = createLogger({ level: 'warn', destination: new Writable({ write: (_c, _e, done) => done() }) });

function startProvider(api: KubeApiServer, logger = quiet): KubernetesProvider {
  const provider = new KubernetesProvider({ kubeConfig: api.kubeConfig(), namespace: 'deis', platformDomain: () => 'example.com', logger, backoff: { min: 50, max: 500 } });
  void provider.start({ update() {}, error() {} });
  return provider;
}

cutoverStoreContract(t, 'KubernetesCutoverStore', async () => {
  const api = await startKubeApiServer({ namespaces: ['default', 'deis', 'shop'] });
  for (const app of ['web', 'shop']) for (const [version, weight] of [['v1', 90], ['v2', 10]] as const) api.apply(versionService(app, version, weight));
  const providers: KubernetesProvider[] = [];
  // Each store has its own provider, as each process has: a reopened one lists afresh.
  const open = () => {
    const services = startProvider(api);
    providers.push(services);
    return new KubernetesCutoverStore({ kubeConfig: api.kubeConfig(), services, logger: quiet });
  };
  return {
    store: open(),
    reopen: open,
    cleanup: async () => {
      await Promise.all(providers.map((p) => p.stop()));
      await api.close();
    },
  };
});

t.test('KubernetesCutoverStore keeps a record on the Service of its new version, loads the latest per app, skips records it must not trust, and reads afresh when asked', async (t) => {
  const api = await startKubeApiServer({ namespaces: ['default', 'deis', 'shop'] });
  t.teardown(() => api.close());
  for (const app of ['web', 'shop']) for (const [version, weight] of [['v1', 90], ['v2', 10]] as const) api.apply(versionService(app, version, weight));
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'warn', destination: new Writable({ write: (c: Buffer, _e, done) => (c.toString().split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l))), done()) }) });
  const providers = [startProvider(api, logger)];
  t.teardown(() => Promise.all(providers.map((p) => p.stop())));
  const store = new KubernetesCutoverStore({ kubeConfig: api.kubeConfig(), services: providers[0]!, logger });

  await store.save(record('web', 1));
  const annotations = (name: string) => api.get('Service', 'shop', name)!.metadata!.annotations!;
  t.same(JSON.parse(annotations('web-v2')[CUTOVER_ANNOTATION]!), record('web', 1), 'the record is JSON in router.deis.io/cutover of the to version\'s Service');
  t.equal(annotations('web-v1')[CUTOVER_ANNOTATION], undefined, 'and nowhere else');
  t.equal(annotations('web-v2')['router.deis.io/weight'], '10', 'the other annotations are left as they were');

  // A later cutover back from v2 to v1 lives on web-v1; per app the latest one is loaded.
  const back: CutoverRecord = { ...record('web', 0), id: 'web-back', plan: { ...record('web', 0).plan, from: 'v2', to: 'v1' }, startedAt: '2026-11-28T08:00:00.000Z' };
  await store.save(back);
  t.same(await store.load(), [back]);

  // An app's owners edit their own Services: a record of another app there, or garbage, is skipped and logged.
  api.apply(versionService('shop', 'v2', 10, { [CUTOVER_ANNOTATION]: JSON.stringify({ ...record('web', 3), startedAt: '2027-01-01T00:00:00.000Z' }) }));
  api.apply(versionService('shop', 'v1', 90, { [CUTOVER_ANNOTATION]: '{ not json' }));
  providers.push(startProvider(api, logger)); // lists afresh: sees both annotations
  const reader = new KubernetesCutoverStore({ kubeConfig: api.kubeConfig(), services: providers[1]!, logger });
  t.same(await reader.load(), [back], 'only the trustworthy record of web');
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  t.match(lines.filter((l) => l.code === 'FW_STATE_READ').map((l) => l.msg), [
    /Service shop\/shop-v1: it is not JSON .*kubectl annotate service -n shop shop-v1 router\.deis\.io\/cutover-/,
    /Service shop\/shop-v2: it records a cutover of web to v2, which this Service does not define/,
  ]);

  // A store whose Service watch lags still reads another process's save with fresh: true.
  api.silenceWatches();
  providers.push(startProvider(api, logger)); // a new watch is live
  const writer = new KubernetesCutoverStore({ kubeConfig: api.kubeConfig(), services: providers[2]!, logger });
  const later: CutoverRecord = { ...back, step: 2, history: [...back.history, { ...back.history[0]!, index: 1 }] };
  await writer.save(later);
  t.equal((await store.load())[0]!.step, 0, 'the silenced cache still shows the old record');
  t.equal((await store.load({ fresh: true }))[0]!.step, 2, 'fresh: the Services holding records are read from the API server');

  await t.rejects(store.save({ ...record('nope', 0) }), { code: 'FW_STATE_WRITE', message: /no Service defines its version v2 .*only apps defined by Services can be cut over/ });
});

// ---- replicas ----

t.test('a cutover started through a replica that does not lead is driven by the one holding the cutover Lease; both apply the same weights at each step; every window counts both replicas\' traffic; --wait and rollback work through either', async (t) => {
  const { api, kubeconfig } = await cluster(t);
  const a = await replica(t, kubeconfig);
  await leads(a);
  const b = await replica(t, kubeconfig);
  const [nameA, nameB] = await Promise.all([nameOf(a), nameOf(b)]);
  t.equal(b.router.cutovers.leading, false, 'one replica leads');
  t.match(api.get('Lease', 'deis', 'fairway-cutovers'), { spec: { holderIdentity: nameA }, metadata: { annotations: { 'fairway.io/admin-url': a.admin } } }, 'the cutover Lease names the leader and its admin API');
  // Each replica creates its Lease in the background once it serves: wait for both (bounded: 5 s).
  const replicaLeasesNow = () => api.list('Lease', 'deis').filter((l) => l.metadata?.labels?.['fairway.io/replica'] === 'true');
  for (let i = 0; i < 250 && replicaLeasesNow().length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  const replicaLeases = replicaLeasesNow();
  t.same(replicaLeases.map((l) => l.metadata?.annotations?.['fairway.io/admin-url']).sort(), [a.admin, b.admin].sort(), 'each replica announces its admin API in its own Lease');

  const stats = (await b.adminGet('/v1/stats/web')).json();
  t.match(stats, { replica: nameB, start: String, startedAt: String, app: 'web', versions: { v1: { byClass: Array, retries: 0, fine: Array }, v2: { byClass: Array } } }, 'GET /v1/stats/{app}: raw counters and the id of this process start');

  // At every step B shows (from the store), B routes with that step's weights, as A does.
  const weightsOnB: Promise<unknown>[] = [];
  const weightsOnA: Record<string, number>[] = [];
  b.router.cutovers.on('decision', (d) => {
    if (d.kind === 'step') weightsOnB.push(snapshotWhere(b, (s) => JSON.stringify(weightsOf(webOf(s))) === JSON.stringify(d.weights), `B at ${JSON.stringify(d.weights)}`));
  });
  a.router.cutovers.on('decision', (d) => {
    if (d.kind === 'step') weightsOnA.push(weightsOf(webOf(a.router.controlPlane.snapshot!)));
  });
  const loads = [traffic(a), traffic(b)];
  const res = await cli(b, 'cutover', 'web', '--to', 'v2', '--steps', '25,50,100', '--hold', '400ms', '--min-requests', '10', '--wait');
  await Promise.all(loads.map((l) => l.stop()));
  t.equal(res.code, 0, res.stdout + res.stderr);
  t.match(res.stdout, /^step 3\/3 passed: .*\ncompleted: all traffic on v2 \(v1=0 v2=100\)$/m, 'fairway cutover --wait through the replica that does not lead');
  await Promise.all(weightsOnB);
  t.equal(weightsOnB.length, 3, 'B applied the weights of each of the 3 steps');
  t.same(weightsOnA, [{ v1: 75, v2: 25 }, { v1: 50, v2: 50 }, { v1: 0, v2: 100 }], 'as A did');
  t.ok(loads.every((l) => l.statuses.length > 0 && l.statuses.every((s) => s === 200)), 'no failed request through either replica');

  const status = (await b.adminGet('/v1/apps/web/cutover')).json();
  t.equal(status.state, 'completed');
  t.same(stepsOf(status.history), [25, 50, 100]);
  t.same([...new Set(status.history.map((d: CutoverDecision) => d.replica))], [nameA], 'every decision was taken by the Lease holder');
  const passes = status.history.filter((d: CutoverDecision) => d.kind === 'pass');
  t.equal(passes.length, 3);
  for (const pass of passes) t.same(pass.window.replicas, { counted: [nameA, nameB].sort(), missing: [] }, 'each window counted both replicas');
  const [metricsA, metricsB] = await Promise.all([a.adminGet('/metrics'), b.adminGet('/metrics')]);
  t.equal(metric(metricsA.body, 'fairway_cutover_decisions_total{app="web",decision="step"}'), 3, 'A took the steps');
  t.notMatch(metricsB.body, /fairway_cutover_decisions_total\{app="web"/, 'B took no decision');
  t.equal(metric(metricsB.body, 'fairway_cutover_state{app="web",state="completed"}'), 1, 'B shows the state all the same');
  t.match(JSON.parse(api.get('Service', 'shop', 'web-v2')!.metadata!.annotations![CUTOVER_ANNOTATION]!), { state: 'completed', id: status.id });

  // Operator calls through B go to A too.
  const rollback = await cli(b, 'rollback', 'web');
  t.equal(rollback.code, 0, rollback.stderr);
  t.equal(rollback.stdout, 'rolled back by an operator: all traffic on v1 (v1=100 v2=0)\n');
  t.match((await a.adminGet('/v1/apps/web/cutover')).json().history.at(-1), { kind: 'rollback', replica: nameA });
  await snapshotWhere(b, (s) => weightsOf(webOf(s)).v2 === 0, 'B back on v1');
  t.equal((await post(b, '/v1/apps/web/cutover/resume')).json.error.code, 'FW_CUTOVER_STATE', "the leader's refusals come back as they are");
});

t.test('the replica driving a cutover judges the traffic of every replica: a new version failing only for requests through the other replica is rolled back', async (t) => {
  const { kubeconfig } = await cluster(t);
  const a = await replica(t, kubeconfig);
  await leads(a);
  const b = await replica(t, kubeconfig);
  const [nameA, nameB] = await Promise.all([nameOf(a), nameOf(b)]);
  const loads = [traffic(a), traffic(b, { 'x-fail': '1' })];
  const res = await cli(b, 'cutover', 'web', '--to', 'v2', '--steps', '50,100', '--hold', '3s', '--max-error-rate', '5%', '--min-requests', '20', '--wait');
  await Promise.all(loads.map((l) => l.stop()));
  t.equal(res.code, 3, res.stdout + res.stderr);
  t.match(res.stdout, /^ROLLED BACK at step 1\/2: error rate of v2 [\d.]+% \(\d+\/\d+\) is above the limit 5\.00% \(v1: 0\.00%\); now v1=100 v2=0$/m);
  const rollback = (await b.adminGet('/v1/apps/web/cutover')).json().history.at(-1);
  t.match(rollback, { kind: 'rollback', cause: 'error_rate', replica: nameA, window: { replicas: { counted: [nameA, nameB].sort(), missing: [] } } });
  t.ok(rollback.window.elapsedMs < 3000, `within the hold (${rollback.window.elapsedMs} ms)`);
  const own = (await a.adminGet('/v1/stats/web')).json().versions.v2.byClass;
  t.equal(own[5], 0, 'the leader itself never saw v2 fail: the 5xx came through the other replica');
  t.ok((await b.adminGet('/v1/stats/web?versions=v2')).json().versions.v2.byClass[5] > 0);
});

t.test('closing the replica that drives a cutover hands the Lease over: the other replica resumes the step where it stopped and completes, and a --wait through it follows to the end', async (t) => {
  const { api, kubeconfig } = await cluster(t);
  const a = await replica(t, kubeconfig);
  await leads(a);
  const b = await replica(t, kubeconfig);
  const [nameA, nameB] = await Promise.all([nameOf(a), nameOf(b)]);
  const load = traffic(b);
  const stepTwo = new Promise<void>((resolve) => a.router.cutovers.on('decision', (d) => d.kind === 'step' && d.step === 1 && resolve()));
  t.equal((await post(a, '/v1/apps/web/cutover', { to: 'v2', steps: [20, 50, 100], holdMs: 600, minRequests: 5 })).status, 201);
  const waiting = cli(b, 'cutover', 'web', '--status', '--wait');
  await stepTwo;
  const closed = a.router.close();
  const restart = await decision(b, (d) => d.kind === 'restart');
  await closed;
  t.match(restart, { replica: nameB, step: 1, percent: 50, message: `resumed by replica ${nameB}, which took over driving cutovers: step 2/3 starts its hold again` });
  const done = await decision(b, (d) => d.kind === 'complete');
  await load.stop();
  t.equal(done.replica, nameB);
  const res = await waiting;
  t.equal(res.code, 0, res.stdout + res.stderr);
  t.match(res.stdout, /resumed by replica .*, which took over driving cutovers/);
  t.match(res.stdout, /^completed: all traffic on v2/m);

  const { history } = (await b.adminGet('/v1/apps/web/cutover')).json() as { history: CutoverDecision[] };
  t.same(stepsOf(history), [20, 50, 50, 100], 'step 2 was held again by the new leader, then the plan went on');
  const at = history.findIndex((d) => d.kind === 'restart');
  t.same([...new Set(history.slice(0, at).map((d) => d.replica))], [nameA], 'before: A');
  t.same([...new Set(history.slice(at).map((d) => d.replica))], [nameB], 'from the restart on: B');
  t.equal(load.statuses.filter((s) => s !== 200).length, 0, 'no failed request through the takeover');
  t.match(api.get('Lease', 'deis', 'fairway-cutovers'), { spec: { holderIdentity: nameB } });
});

t.test('a leader that died without giving the Lease up is replaced once the Lease expires; meanwhile calls fail with FW_CUTOVER_NO_LEADER; a replica that cannot be read is named in every window', async (t) => {
  const ghostAdmin = `http://${await refusedAddress()}`;
  const micro = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');
  const lease = (name: string, renewed: number, seconds: number, labels: Record<string, string> = {}): KubeObject => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace: 'deis', labels, annotations: { 'fairway.io/admin-url': ghostAdmin } },
    spec: { holderIdentity: 'ghost-0', leaseDurationSeconds: seconds, acquireTime: micro(renewed), renewTime: micro(renewed), leaseTransitions: 0 },
  });
  // What the dead replica left: its running cutover at step 1 (50%), and its Leases.
  const plan = { app: 'web', from: 'v1', to: 'v2', steps: [50, 100], holdMs: 300, maxErrorRate: 0.01, maxP99Ms: 500, minRequests: 0, onNoTraffic: 'hold', baseline: 'old' };
  const at = new Date().toISOString();
  const left: CutoverRecord = {
    id: 'web-ghost',
    plan: plan as CutoverRecord['plan'],
    state: 'running',
    step: 0,
    total: 100,
    before: { v1: 100, v2: 0 },
    startedAt: at,
    updatedAt: at,
    history: [
      { index: 0, at, kind: 'start', state: 'running', step: -1, percent: 0, weights: { v1: 100, v2: 0 }, message: 'cutover of web from v1 to v2', replica: 'ghost-0' },
      { index: 1, at, kind: 'step', state: 'running', step: 0, percent: 50, weights: { v1: 50, v2: 50 }, message: 'step 1/2', replica: 'ghost-0' },
    ],
  };
  const { api, kubeconfig } = await cluster(t, { [CUTOVER_ANNOTATION]: JSON.stringify(left), 'router.deis.io/weight': '50' });
  api.apply(versionService('web', 'v1', 50));
  api.apply(lease('fairway-cutovers', Date.now(), 60));
  api.apply(lease('fairway-replica-ghost-0', Date.now(), 60, { 'fairway.io/replica': 'true' }));

  const c = await replica(t, kubeconfig);
  const name = await nameOf(c);
  t.match((await c.adminGet('/v1/apps/web/cutover')).json(), { id: 'web-ghost', state: 'running', step: 0, weights: { v1: 50, v2: 50 }, hold: null }, 'a replica that does not lead answers status from the Services');
  const refused = await post(c, '/v1/apps/web/cutover/pause');
  t.equal(refused.status, 503);
  t.match(refused.json.error, { code: 'FW_CUTOVER_NO_LEADER', message: new RegExp(`cannot be reached at ${ghostAdmin.replace(/[.:/]/g, '\\$&')}`) });

  // The holder stopped renewing a minute ago: its Lease has expired.
  api.apply(lease('fairway-cutovers', Date.now() - 60_000, 1));
  const restart = await decision(c, (d) => d.kind === 'restart');
  t.match(restart, { replica: name, step: 0, message: `resumed by replica ${name}, which took over driving cutovers: step 1/2 starts its hold again` });
  const done = await decision(c, (d) => d.kind === 'complete');
  t.equal(done.state, 'completed');
  const { history } = (await c.adminGet('/v1/apps/web/cutover')).json() as { history: CutoverDecision[] };
  const passes = history.filter((d) => d.kind === 'pass');
  t.equal(passes.length, 2);
  for (const pass of passes) {
    t.match(pass.window!.replicas, { counted: [name], missing: [{ replica: 'ghost-0', reason: new RegExp(`^${ghostAdmin.replace(/[.:/]/g, '\\$&')}: `) }] }, 'judged on the replicas that answered; the one that did not is named');
  }
  const text = await cli(c, 'cutover', 'web', '--status');
  t.match(text.stdout, /step 1\/2 passed: .*; not counted: ghost-0 \(http:\/\/127\.0\.0\.1:\d+: /, 'and shown by fairway cutover --status');
  t.same(weightsOf(webOf(c.router.controlPlane.snapshot!)), { v1: 0, v2: 100 });
  t.match(api.get('Lease', 'deis', 'fairway-cutovers'), { spec: { holderIdentity: name, leaseTransitions: 1 } });
});
