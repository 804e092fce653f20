import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { upstreamStarter } from './helpers/upstreams.js';
import { routerStarter, snapshotWhere, type TestRouter } from './helpers/test-router.js';
import { parseConfig } from '../src/config/load-config.js';

const upstream = upstreamStarter(t);
const router = routerStarter(t);

/** Waits (bounded) until `test` holds: for state changed by timers (ejection, readmission, probes), not by a request. */
async function until(r: TestRouter, test: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!test()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    r.router.logger.flush();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const logged = (r: TestRouter, msg: string, endpoint: string) => r.logs.filter((l) => l.msg === msg && l.endpoint === endpoint);
const states = (r: TestRouter, app = 'app') => r.router.dataPlane!.endpointHealth.endpointStates(app)!;

/** An upstream that answers 500 while `failing.on`, else 200. */
async function flaky(name: string, failing: { on: boolean }) {
  return upstream(name, (req, res) => {
    req.resume();
    res.writeHead(failing.on ? 500 : 200, { 'x-upstream': name });
    res.end(name);
  });
}

const twoEndpoints = (a: string, b: string, outlier: string, extra = '') => `
apps:
  app:
    domains: [app.test]
    loadBalancing: round-robin
    outlierDetection: ${outlier}
${extra}    versions: { v1: { weight: 1, endpoints: ["${a}", "${b}"] } }
`;

t.test('consecutive 5xx eject an endpoint for the ejection time, and a second ejection lasts longer', async (t) => {
  const failing = { on: true };
  const a = await flaky('a', failing);
  const b = await upstream('b');
  const r = await router(twoEndpoints(a.address, b.address, '{ consecutiveFailures: 3, baseEjectionTime: 300ms, maxEjectionTime: 5s }'));
  // Round-robin: a, b, a, b, a — the third 5xx of a in a row ejects it.
  for (let i = 0; i < 5; i++) await r.get('app.test');
  t.equal(a.hits, 3);
  t.equal(states(r).v1![0]!.state, 'ejected', 'ejected at its third failure in a row');
  for (let i = 0; i < 10; i++) t.equal((await r.get('app.test')).status, 200);
  t.equal(a.hits, 3, 'an ejected endpoint gets no request');
  t.match(await (await fetch(`${r.admin}/metrics`)).text(), /fairway_endpoints_unavailable\{app="app",version="v1",reason="ejected"\} 1/);
  await until(r, () => logged(r, 'endpoint readmitted', a.address).length === 1, 'readmission');
  t.equal(states(r).v1![0]!.state, 'available');
  const ejections = () => logged(r, 'endpoint ejected after consecutive failures', a.address);
  const readmissions = () => logged(r, 'endpoint readmitted', a.address);
  // Log lines carry their time in ms: how long the ejection lasted, by the router's clock.
  const lasted = (i: number) => Date.parse(readmissions()[i]!.time as string) - Date.parse(ejections()[i]!.time as string);
  t.equal(ejections()[0]!.ejectedForMs, 300);
  t.ok(lasted(0) >= 299, `readmitted after the base ejection time (${lasted(0)} ms)`);

  // Still failing: ejected again, for twice as long.
  while (states(r).v1![0]!.state !== 'ejected') await r.get('app.test');
  t.equal(a.hits, 6, 'three more failures in a row eject it again');
  failing.on = false;
  await until(r, () => readmissions().length === 2, 'second readmission');
  t.equal(ejections()[1]!.ejectedForMs, 600, 'the second ejection lasts 2 x base');
  t.ok(lasted(1) >= 599, `readmitted after 2 x base (${lasted(1)} ms)`);
  for (let i = 0; i < 4; i++) t.equal((await r.get('app.test')).status, 200);
  t.equal(a.hits, 8, 'the readmitted endpoint serves its share again');
  t.match(await (await fetch(`${r.admin}/metrics`)).text(), /fairway_endpoint_ejections_total\{app="app",version="v1"\} 2/);
});

t.test('at most maxEjectionPercent of a version is ejected, never its last available endpoint, never a lone endpoint', async (t) => {
  const failing = { on: true };
  const four = await Promise.all(['f1', 'f2', 'f3', 'f4'].map((n) => flaky(n, failing)));
  const pair = await Promise.all(['p1', 'p2'].map((n) => flaky(n, failing)));
  const solo = await flaky('solo', failing);
  const list = (ups: { address: string }[]) => ups.map((u) => `"${u.address}"`).join(', ');
  const r = await router(`
outlierDetection: { consecutiveFailures: 2, baseEjectionTime: 10s, maxEjectionTime: 10s }
apps:
  four:
    domains: [four.test]
    versions: { v1: { weight: 1, endpoints: [${list(four)}] } }
  pair:
    domains: [pair.test]
    outlierDetection: { maxEjectionPercent: 100 }
    versions: { v1: { weight: 1, endpoints: [${list(pair)}] } }
  solo:
    domains: [solo.test]
    outlierDetection: { maxEjectionPercent: 100 }
    versions: { v1: { weight: 1, endpoints: ["${solo.address}"] } }
`);
  for (let i = 0; i < 40; i++) t.equal((await r.get('four.test')).status, 500);
  for (let i = 0; i < 20; i++) await r.get('pair.test');
  for (let i = 0; i < 20; i++) await r.get('solo.test');
  const ejected = (app: string) => states(r, app).v1!.filter((e) => e.state === 'ejected').length;
  t.equal(ejected('four'), 2, '50% of 4 endpoints: 2 ejected, however many fail');
  t.equal(ejected('pair'), 1, '100% of 2: the last available endpoint stays');
  t.equal(ejected('solo'), 0, 'a one-endpoint version is never ejected');
  t.equal(solo.hits, 20, 'the lone endpoint got every request');
});

t.test('an endpoint that hangs is ejected after its timeouts, then readmitted once it answers again', async (t) => {
  const hang = { on: true };
  const slow = await upstream('slow', (req, res) => {
    req.resume();
    if (!hang.on) res.end('slow');
  });
  const ok = await upstream('ok');
  const r = await router(twoEndpoints(slow.address, ok.address, '{ consecutiveFailures: 2, baseEjectionTime: 300ms }', '    timeouts: { read: 200ms }\n'));
  const statuses: number[] = [];
  for (let i = 0; i < 14; i++) statuses.push((await r.get('app.test')).status);
  t.same(statuses.filter((s) => s !== 200), [504, 504], 'clients saw only the two timeouts that ejected it');
  t.equal(slow.hits, 2);
  hang.on = false;
  await until(r, () => states(r).v1![0]!.state === 'available', 'readmission');
  for (let i = 0; i < 4; i++) t.equal((await r.get('app.test')).status, 200);
  t.equal(slow.hits, 4, 'readmitted, it serves again');
});

t.test('an active health check takes an endpoint out after unhealthyThreshold failures and back after healthyThreshold passes', async (t) => {
  const sick = { on: false };
  const probes: { status: number; stateSeen: string; host?: string; agent?: string }[] = [];
  let r: TestRouter | undefined;
  let served = 0;
  const a = await upstream('a', (req, res) => {
    req.resume();
    if (req.url !== '/healthz') {
      served++;
      return void res.end('a');
    }
    const status = sick.on ? 503 : 200;
    // The router's view of this endpoint when the probe arrives, i.e. after the probes before it.
    probes.push({ status, stateSeen: r?.router.dataPlane!.endpointHealth.endpointStates('app')?.v1![0]!.state ?? 'none', host: req.headers.host, agent: req.headers['user-agent'] });
    res.writeHead(status);
    res.end();
  });
  const b = await upstream('b');
  r = await router(`
apps:
  app:
    domains: [app.test, www.app.test]
    healthCheck: { path: /healthz, interval: 30ms, timeout: 500ms, healthyThreshold: 2, unhealthyThreshold: 3 }
    versions: { v1: { weight: 1, endpoints: ["${a.address}", "${b.address}"] } }
`);
  await until(r, () => probes.length >= 2, 'the first probes');
  t.equal(probes[0]!.agent, 'fairway-health-check');
  t.equal(probes[0]!.host, 'app.test', "the app's first domain");
  sick.on = true;
  await until(r, () => probes.filter((p) => p.status === 503).length >= 4, 'four failing probes');
  const failing = probes.filter((p) => p.status === 503).slice(0, 4).map((p) => p.stateSeen);
  t.same(failing, ['available', 'available', 'available', 'unhealthy'], 'unhealthy after exactly 3 failures in a row');
  const servedBefore = served;
  for (let i = 0; i < 10; i++) t.equal((await r.get('app.test')).status, 200);
  t.equal(served, servedBefore, 'the unhealthy endpoint gets no request');
  t.match(await (await fetch(`${r.admin}/metrics`)).text(), /fairway_endpoints_unavailable\{app="app",version="v1",reason="unhealthy"\} 1/);
  const sickProbes = probes.length;
  sick.on = false;
  await until(r, () => probes.slice(sickProbes).filter((p) => p.status === 200).length >= 3, 'three passing probes');
  t.same(probes.slice(sickProbes).filter((p) => p.status === 200).slice(0, 3).map((p) => p.stateSeen), ['unhealthy', 'unhealthy', 'available'], 'healthy after exactly 2 passes in a row');
  t.ok(r.logs.some((l) => l.msg === 'endpoint failed its health check: unhealthy' && l.endpoint === a.address && l.app === 'app'));
  t.match(await (await fetch(`${r.admin}/metrics`)).text(), /fairway_health_checks_total\{app="app",result="failed"\} [1-9]/);

  // Removing the check stops the probes.
  await r.rewrite(`
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["${a.address}", "${b.address}"] } }
`);
  const stoppedAt = probes.length;
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.ok(probes.length <= stoppedAt + 1, 'no probe after the check is removed (one may have been in flight)');
});

t.test('a reload keeps ejection state: the ejected endpoint still gets nothing', async (t) => {
  const a = await flaky('a', { on: true });
  const b = await upstream('b');
  const config = (extra: string) => twoEndpoints(a.address, b.address, '{ consecutiveFailures: 2, baseEjectionTime: 10s, maxEjectionTime: 10s }') + extra;
  const r = await router(config(''));
  for (let i = 0; i < 3; i++) await r.get('app.test');
  t.equal(states(r).v1![0]!.state, 'ejected');
  await r.rewrite(config(`  other:\n    domains: [other.test]\n    versions: { v1: { weight: 1, endpoints: ["${b.address}"] } }\n`));
  await snapshotWhere(r, (s) => s.apps.length === 2, 'the reload');
  t.equal(states(r).v1![0]!.state, 'ejected', 'still ejected in the new table');
  const view = (await r.adminGet('/v1/apps/app')).json();
  t.match(view.versions[0].endpointStates, [{ endpoint: a.address, state: 'ejected', ejections: 1 }, { endpoint: b.address, state: 'available' }], 'the admin API shows it');
  for (let i = 0; i < 6; i++) t.equal((await r.get('app.test')).status, 200);
  t.equal(a.hits, 2, 'and still gets no request');
});

/** A TCP server that resets every connection at once, counting them (each is one upstream attempt). */
async function resetting(): Promise<{ address: string; connections: number }> {
  const server = createServer((s: Socket) => {
    counter.connections++;
    s.resetAndDestroy();
  });
  const counter = { address: '', connections: 0 };
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  counter.address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  return counter;
}

t.test('a retry budget caps upstream attempts during an outage; without it every request is tried 3 times', async (t) => {
  const M = 100;
  const outage = async (budget: string) => {
    const ups = [await resetting(), await resetting(), await resetting()];
    const r = await router(`
outlierDetection: { consecutiveFailures: 0 }
retries: { attempts: 3, budget: ${budget} }
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: [${ups.map((u) => `"${u.address}"`).join(', ')}] } }
`);
    for (let i = 0; i < M; i += 10) {
      const answers = await Promise.all(Array.from({ length: 10 }, () => r.get('app.test')));
      for (const a of answers) if (a.status !== 502) t.fail(`expected 502, got ${a.status}`);
    }
    return { attempts: ups.reduce((n, u) => n + u.connections, 0), metrics: await (await fetch(`${r.admin}/metrics`)).text() };
  };
  const capped = await outage('{ percent: 20, minPerSecond: 1 }');
  t.comment(`budget on: ${M} client GETs -> ${capped.attempts} upstream attempts`);
  t.ok(capped.attempts <= M * 1.2 + 10, `at most M x 1.2 + 10 (the reserve of 1/s over 10 s): ${capped.attempts}`);
  t.ok(capped.attempts >= M, 'every request was tried once');
  t.match(capped.metrics, /fairway_retries_budget_exhausted_total\{app="app"\} [1-9]/);
  const unbounded = await outage('false');
  t.comment(`budget off: ${M} client GETs -> ${unbounded.attempts} upstream attempts`);
  t.equal(unbounded.attempts, 3 * M, 'every request tried on all 3 endpoints');
});

t.test('endpoint health keys are validated with their key paths', async (t) => {
  const problems = (yaml: string) => {
    try {
      parseConfig(yaml, 'f.yaml');
      return [];
    } catch (err) {
      return (err as { problems: { path: string; message: string }[] }).problems.map((p) => `${p.path}: ${p.message}`);
    }
  };
  t.same(problems('outlierDetection: { maxEjectionPercent: 120, baseEjectionTime: 1m, maxEjectionTime: 30s }\n'), [
    'outlierDetection.maxEjectionPercent: must be a percentage from 0 to 100',
    'outlierDetection.maxEjectionTime: must be >= baseEjectionTime',
  ]);
  t.same(problems('outlierDetection: { baseEjectionTime: 1m, maxEjectionTime: 30s }\n'), ['outlierDetection.maxEjectionTime: must be >= baseEjectionTime']);
  t.same(problems('retries: { attempts: 0, budget: { percent: -1 } }\n'), [
    'retries.attempts: must be an integer from 1 to 10',
    'retries.budget.percent: must be a percentage from 0 to 100',
  ]);
  t.same(problems('apps:\n  web:\n    healthCheck: { interval: 1s }\n'), ['apps.web.healthCheck.path: is required (must be a path starting with /, like /healthz)']);
  t.same(problems('apps:\n  web:\n    healthCheck: { path: /h, unhealthyThreshold: 0 }\n    retries: { budget: true }\n'), [
    'apps.web.healthCheck.unhealthyThreshold: must be an integer >= 1',
    'apps.web.retries.budget: must be { percent, minPerSecond } or false',
  ]);
  const loaded = parseConfig('apps:\n  web:\n    outlierDetection: { consecutiveFailures: 2 }\n    retries: { budget: false }\n', 'f.yaml');
  t.same(loaded.apps[0]!.endpointHealth, { outlierDetection: { consecutiveFailures: 2 }, retries: { budget: false } }, 'only the keys the app sets');
  t.same(loaded.settings.outlierDetection, { consecutiveFailures: 5, baseEjectionTime: 30_000, maxEjectionTime: 300_000, maxEjectionPercent: 50 });
  t.same(loaded.settings.retries, { attempts: 3, budget: { percent: 20, minPerSecond: 10 } });
});
