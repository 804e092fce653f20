import t, { type Test } from 'tap';
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Pool } from 'undici';
import type { CutoverDecisionEvent } from '../src/cutover/cutover-controller.js';
import type { CutoverDecision } from '../src/cutover/cutover-store.js';
import { runCli, type CliResult } from './helpers/router-process.js';
import { tally } from './helpers/sample.js';
import { startTestRouter, type TestRouter } from './helpers/test-router.js';
import { startUpstream, type Handler, type TestUpstream } from './helpers/upstreams.js';

const HOST = 'web.example.com';

/** Answers like the default test upstream: `{"upstream": name}` and `x-upstream: name`. */
function answer(res: ServerResponse, name: string, status = 200): void {
  const body = JSON.stringify({ upstream: name });
  res.writeHead(status, { 'content-type': 'application/json', 'x-upstream': name, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
const healthy = (name: string): Handler => (req, res) => {
  req.resume();
  answer(res, name);
};
/** Every `n`th request answers 500. */
const failingEvery = (name: string, n: number): Handler => (req, res, up) => {
  req.resume();
  answer(res, name, up.hits % n === 0 ? 500 : 200);
};
const slow = (name: string, ms: number): Handler => (req, res) => {
  req.resume();
  setTimeout(() => answer(res, name), ms);
};

function config(v1: TestUpstream, v2: readonly TestUpstream[], weights: [number, number] = [100, 0], listen = ''): string {
  return `${listen}log: { access: false }
platformDomain: example.com
apps:
  web:
    domains: [web]
    versions:
      v1: { weight: ${weights[0]}, endpoints: ["${v1.address}"] }
      v2: { weight: ${weights[1]}, endpoints: [${v2.map((u) => `"${u.address}"`).join(', ')}] }
`;
}

interface Served {
  readonly at: number;
  readonly status: number;
  readonly upstream: string;
}

/**
 * A steady client: `concurrency` keep-alive connections, each sending the next request
 * as soon as the previous answer ended (closed loop), recording every answer.
 */
function drive(r: TestRouter, concurrency = 4) {
  const pool = new Pool(r.http, { connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
  let connects = 0;
  let disconnects = 0;
  pool.on('connect', () => connects++);
  pool.on('disconnect', () => disconnects++);
  const served: Served[] = [];
  const failures: string[] = [];
  let running = true;
  let waiter: { n: number; resolve: () => void } | undefined;
  const loop = async () => {
    while (running) {
      try {
        const res = await pool.request({ path: '/', method: 'GET', headers: { host: HOST } });
        await res.body.dump();
        served.push({ at: Date.now(), status: res.statusCode, upstream: String(res.headers['x-upstream'] ?? '') });
        if (waiter && served.length >= waiter.n) waiter.resolve();
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    served,
    failures,
    get connects() {
      return connects;
    },
    /** Resolves once `n` answers were recorded. */
    until(n: number): Promise<void> {
      return new Promise((resolve) => (served.length >= n ? resolve() : (waiter = { n, resolve })));
    },
    /** Connections closed before `stop()` (by the router or the network, not by this client). */
    dropped: 0,
    async stop() {
      running = false;
      await Promise.all(loops);
      this.dropped = disconnects;
      await pool.close();
    },
  };
}

/** Resolves with the first decision of `app`'s cutover matching `test`, recorded already or to come. */
function decision(r: TestRouter, test: (d: CutoverDecision) => boolean, app = 'web'): Promise<CutoverDecision> {
  const cutovers = r.router.cutovers;
  return new Promise((resolve) => {
    let recorded: readonly CutoverDecision[] = [];
    try {
      recorded = cutovers.status(app).history;
    } catch {
      // no cutover yet
    }
    const found = recorded.find(test);
    if (found) return resolve(found);
    const on = (d: CutoverDecisionEvent) => {
      if (d.app !== app || !test(d)) return;
      cutovers.off('decision', on);
      resolve(d);
    };
    cutovers.on('decision', on);
  });
}
const ended = (r: TestRouter) => decision(r, (d) => d.state !== 'running' && d.state !== 'paused');

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
const kindsOf = (history: readonly CutoverDecision[]) => history.map((d) => d.kind);

async function setUp(t: Test, v2Handler: Handler, options: { weights?: [number, number]; v2Count?: number; listen?: string } = {}) {
  const v1 = await startUpstream('v1', healthy('v1'));
  const v2s = await Promise.all(Array.from({ length: options.v2Count ?? 1 }, () => startUpstream('v2', v2Handler)));
  const r = await startTestRouter(config(v1, v2s, options.weights, options.listen));
  t.teardown(async () => {
    await r.close();
    await Promise.all([v1.close(), ...v2s.map((u) => u.close())]);
  });
  return { r, v1, v2s };
}

t.test('a healthy cutover walks every step of the plan and completes; fairway cutover --wait exits 0', async (t) => {
  const { r } = await setUp(t, healthy('v2'));
  const load = drive(r);
  const res = await cli(r, 'cutover', 'web', '--to', 'v2', '--steps', '10,50,100', '--hold', '300ms', '--min-requests', '10', '--wait');
  await load.stop();
  t.equal(res.code, 0, res.stderr);
  t.same(res.stdout.split('\n').filter((l) => / passed:|^completed/.test(l)).map((l) => l.split(':')[0]), ['step 1/3 passed', 'step 2/3 passed', 'step 3/3 passed', 'completed']);
  t.match(res.stdout, /^cutover web: v1 → v2, steps 10,50,100%, hold 300ms, max error rate 1\.00%, max p99 500ms, min requests 10, on no traffic: hold$/m);
  t.match(res.stdout, /^step 1\/3: v1=90 v2=10 \(10% on v2\), holding 300ms$/m);
  t.match(res.stdout, /^step 2\/3 passed: v2 \d+ req, 0\.00% errors, p99 [\d.]+ms \| v1 \d+ req, 0\.00% errors, p99 [\d.]+ms$/m);
  t.notMatch(res.stdout, /\r/, 'no live line when stdout is not a terminal');

  const status = (await r.adminGet('/v1/apps/web/cutover')).json();
  t.equal(status.state, 'completed');
  t.same(stepsOf(status.history), [10, 50, 100], 'the recorded steps are the plan');
  t.same(kindsOf(status.history), ['start', 'step', 'pass', 'step', 'pass', 'step', 'pass', 'complete']);
  for (const pass of status.history.filter((d: CutoverDecision) => d.kind === 'pass')) {
    t.ok(pass.window.new.requests >= 10, 'each step was judged on at least min-requests');
    t.equal(pass.window.new.errors, 0);
    t.ok(pass.window.elapsedMs >= 300, 'after the whole hold');
  }
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 0, v2: 100 });
  t.same(load.failures, []);
  t.equal(load.served.filter((s) => s.status !== 200).length, 0, 'no failed request');

  const metrics = (await r.adminGet('/metrics')).body;
  t.match(metrics, /fairway_cutover_state\{app="web",state="completed"\} 1/);
  t.match(metrics, /fairway_cutover_state\{app="web",state="running"\} 0/);
  t.match(metrics, /fairway_cutover_steps_total\{app="web"\} 3/);
  t.match(metrics, /fairway_cutover_decisions_total\{app="web",decision="pass"\} 3/);
  t.match(metrics, /fairway_cutover_step_percent\{app="web"\} 100/);
  t.match(metrics, /# TYPE fairway_cutover_rollbacks_total counter/);
  t.ok(r.logs.some((l) => l.component === 'cutover' && l.decision === 'pass' && (l.window as any)?.new?.requests >= 10), 'decisions are logged with their numbers');

  const rollback = await cli(r, 'rollback', 'web');
  t.equal(rollback.code, 0, rollback.stderr);
  t.equal(rollback.stdout, 'rolled back by an operator: all traffic on v1 (v1=100 v2=0)\n', 'fairway rollback after completion puts back the previous version');
  t.equal((await r.adminGet('/v1/apps/web/cutover')).json().state, 'rolled_back');
  t.same(await tally(10, () => r.get(HOST), (a) => a.json().upstream), { v1: 10 });
});

t.test('weights changed outside a running cutover (fairway weights, a config edit) stop it in state failed, leaving them as set', async (t) => {
  const { r } = await setUp(t, healthy('v2'));
  await post(r, '/v1/apps/web/cutover', { to: 'v2', steps: [50, 100], holdMs: 60_000 });
  const failed = ended(r);
  t.equal((await r.adminPut('/v1/apps/web/weights', { v1: 80, v2: 20 })).status, 200);
  t.match(await failed, { kind: 'fail', state: 'failed', message: /weights of v1 and v2 were changed outside the cutover \(now v1=80 v2=20, the cutover had set v1=50 v2=50\)/ });
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 80, v2: 20 });
  t.match((await r.adminGet('/metrics')).body, /fairway_cutover_state\{app="web",state="failed"\} 1/);
});

t.test('cutover and rollback answer --help', async (t) => {
  for (const cmd of ['cutover', 'rollback']) {
    const help = await runCli([cmd, '--help']);
    t.equal(help.code, 0, cmd);
    t.match(help.stdout, new RegExp(`Usage: fairway ${cmd} \\[options\\] <app>`));
  }
});

t.test('a new version answering 5xx on one request in four is rolled back within one hold window (exit 3) and traffic is back on the old version', async (t) => {
  const { r } = await setUp(t, failingEvery('v2', 4));
  const load = drive(r);
  const hold = 800;
  const res = await cli(r, 'cutover', 'web', '--to', 'v2', '--steps', '25,100', '--hold', `${hold}ms`, '--max-error-rate', '5%', '--min-requests', '20', '--wait');
  t.equal(res.code, 3, res.stderr);
  t.match(res.stdout, /^ROLLED BACK at step 1\/2: error rate of v2 [\d.]+% \(\d+\/\d+\) is above the limit 5\.00% \(v1: 0\.00%\); now v1=100 v2=0$/m);
  const { history } = (await r.adminGet('/v1/apps/web/cutover')).json();
  const step = history.find((d: CutoverDecision) => d.kind === 'step');
  const rollback = history.find((d: CutoverDecision) => d.kind === 'rollback');
  t.match(rollback, { state: 'rolled_back', cause: 'error_rate', step: 0, percent: 0, weights: { v1: 100, v2: 0 } });
  t.ok(rollback.window.new.errorRate > 0.05 && rollback.window.new.requests >= 20);
  const took = Date.parse(rollback.at) - Date.parse(step.at);
  t.ok(took < hold, `caught during the hold (${took} ms after the step, hold ${hold} ms)`);
  await load.stop();
  t.same(await tally(20, () => r.get(HOST), (a) => a.json().upstream), { v1: 20 }, 'all traffic on v1');
  t.match((await r.adminGet('/metrics')).body, /fairway_cutover_rollbacks_total\{app="web",cause="error_rate"\} 1/);
});

t.test('a slow new version breaching --max-p99 is rolled back (cause p99)', async (t) => {
  const { r } = await setUp(t, slow('v2', 120));
  const load = drive(r, 8);
  const res = await cli(r, 'cutover', 'web', '--to', 'v2', '--steps', '50,100', '--hold', '800ms', '--max-p99', '60ms', '--min-requests', '10', '--wait');
  await load.stop();
  t.equal(res.code, 3, res.stderr);
  t.match(res.stdout, /^ROLLED BACK at step 1\/2: p99 of v2 [\d.]+ ms is above the limit 60 ms \(v1: [\d.]+ ms\); now v1=100 v2=0$/m);
  const rollback = (await r.adminGet('/v1/apps/web/cutover')).json().history.find((d: CutoverDecision) => d.kind === 'rollback');
  t.equal(rollback.cause, 'p99');
  t.ok(rollback.window.new.p99Ms >= 120, `p99 ${rollback.window.new.p99Ms} ms measured for a 120 ms version`);
  // The old version's own latency is whatever this shared machine gives (load, test router and endpoints share
  // one process): the judge's verdict is about v2, so only compare the two.
  t.ok(rollback.window.old.p99Ms < rollback.window.new.p99Ms, `the old version is the faster one (p99 ${rollback.window.old.p99Ms} ms)`);
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 100, v2: 0 });
});

t.test('a new version that loses its endpoints (config rewrite) is rolled back at once', async (t) => {
  const { r, v1 } = await setUp(t, healthy('v2'));
  const started = await post(r, '/v1/apps/web/cutover', { to: 'v2', steps: [50, 100], holdMs: 60_000 });
  t.equal(started.status, 201);
  t.match(started.json, { state: 'running', step: 0, percent: 50, weights: { v1: 50, v2: 50 } });
  const rolledBack = ended(r);
  const at = Date.now();
  await r.rewrite(config(v1, []));
  const d = await rolledBack;
  t.match(d, { kind: 'rollback', cause: 'no_endpoints', state: 'rolled_back', message: /version v2 has no endpoints/ });
  t.ok(Date.now() - at < 10_000, 'without waiting for the 60 s hold');
  t.same(await tally(10, () => r.get(HOST), (a) => a.json().upstream), { v1: 10 });
});

t.test('pause holds the step with the guardrails on, resume goes on, promote completes at once', async (t) => {
  const { r } = await setUp(t, healthy('v2'));
  const load = drive(r);
  t.teardown(() => load.stop());
  const hold = 300;
  await post(r, '/v1/apps/web/cutover', { to: 'v2', steps: [10, 20, 50, 100], holdMs: hold, minRequests: 5 });
  const paused = await post(r, '/v1/apps/web/cutover/pause');
  t.match(paused.json, { state: 'paused', step: 0, hold: { leftMs: null } });
  t.equal((await post(r, '/v1/apps/web/cutover/pause')).json.error.code, 'FW_CUTOVER_STATE', 'pausing twice is refused');

  // Evaluation ticks (every 50 ms for a 300 ms hold) go on while paused: wait for three holds' worth.
  const cutovers = r.router.cutovers;
  let ticks = 0;
  await new Promise<void>((resolve) => {
    const on = () => {
      if (++ticks * 50 >= 3 * hold) {
        cutovers.off('progress', on);
        resolve();
      }
    };
    cutovers.on('progress', on);
  });
  const still = (await r.adminGet('/v1/apps/web/cutover')).json();
  t.match(still, { state: 'paused', step: 0, weights: { v1: 90, v2: 10 } }, 'no step was taken while paused');
  t.ok(still.window.new.requests > 0, 'the window keeps measuring');

  t.match((await post(r, '/v1/apps/web/cutover/resume')).json, { state: 'running', step: 0 });
  await decision(r, (d) => d.kind === 'step' && d.step === 1);
  const promoted = await post(r, '/v1/apps/web/cutover/promote');
  t.match(promoted.json, { state: 'completed', percent: 100, weights: { v1: 0, v2: 100 } });
  t.same(kindsOf(promoted.json.history).slice(-2), ['promote', 'complete']);
  t.same(kindsOf(promoted.json.history).slice(0, 6), ['start', 'step', 'pause', 'resume', 'pass', 'step']);
  t.equal((await post(r, '/v1/apps/web/cutover/resume')).json.error.code, 'FW_CUTOVER_STATE', 'a completed cutover cannot be resumed');
});

t.test('abort puts back the weights from before the cutover; a waiting CLI exits 4', async (t) => {
  const { r } = await setUp(t, healthy('v2'), { weights: [90, 10] });
  await post(r, '/v1/apps/web/cutover', { to: 'v2', steps: [50, 100], holdMs: 60_000 });
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 50, v2: 50 });
  const waiting = cli(r, 'cutover', 'web', '--status', '--wait');
  await watcherConnected(r);
  const aborted = await post(r, '/v1/apps/web/cutover/abort');
  t.match(aborted.json, { state: 'aborted', weights: { v1: 90, v2: 10 } });
  const res = await waiting;
  t.equal(res.code, 4, res.stderr);
  t.match(res.stdout, /^aborted: weights back to v1=90 v2=10 as before the cutover$/m);
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 90, v2: 10 });

  const rolledBack = await cli(r, 'rollback', 'web');
  t.equal(rolledBack.code, 0, rolledBack.stderr);
  t.equal(rolledBack.stdout, 'rolled back by an operator: all traffic on v1 (v1=100 v2=0)\n', 'rollback differs from abort: everything on the old version');
});

t.test('one cutover per app: a second is refused with FW_CUTOVER_ACTIVE; bad plans are refused with codes', async (t) => {
  const { r } = await setUp(t, healthy('v2'));
  t.equal((await r.adminGet('/v1/apps/web/cutover')).json().error.code, 'FW_CUTOVER_NOT_FOUND');
  t.equal((await post(r, '/v1/apps/web/rollback')).json.error.code, 'FW_CUTOVER_NOT_FOUND', 'no previous version to roll back to');
  const refusals: [unknown, number, string][] = [
    [{ to: 'v9' }, 404, 'FW_VERSION_NOT_FOUND'],
    [{ to: 'v2', from: 'v2' }, 400, 'FW_CUTOVER_INVALID'],
    [{ to: 'v2', steps: [50, 25, 100] }, 400, 'FW_CUTOVER_INVALID'],
    [{ to: 'v2', steps: [10, 50] }, 400, 'FW_CUTOVER_INVALID'],
    [{ to: 'v2', steps: [0, 100] }, 400, 'FW_CUTOVER_INVALID'],
    [{ to: 'v2', maxErrorRate: 2 }, 400, 'FW_CUTOVER_INVALID'],
    [{ to: 'v2', onNoTraffic: 'wait' }, 400, 'FW_CUTOVER_INVALID'],
    [{ to: 'v2', hold: '30s' }, 400, 'FW_CUTOVER_INVALID'],
    [{}, 400, 'FW_CUTOVER_INVALID'],
  ];
  for (const [body, status, code] of refusals) {
    const res = await post(r, '/v1/apps/web/cutover', body);
    t.equal(res.status, status, JSON.stringify(body));
    t.equal(res.json.error.code, code, JSON.stringify(body));
  }
  t.equal((await post(r, '/v1/apps/nope/cutover', { to: 'v2' })).json.error.code, 'FW_APP_NOT_FOUND');
  const bad = await cli(r, 'cutover', 'web', '--to', 'v9');
  t.equal(bad.code, 2);
  t.match(bad.stderr, /has no version "v9" \(versions: v1, v2\) \[FW_VERSION_NOT_FOUND\]/);

  t.equal((await post(r, '/v1/apps/web/cutover', { to: 'v2', holdMs: 60_000 })).status, 201);
  const second = await post(r, '/v1/apps/web/cutover', { to: 'v2' });
  t.equal(second.status, 409);
  t.match(second.json.error, { code: 'FW_CUTOVER_ACTIVE', message: /already has a cutover running: v1 → v2, step 1\/4/ });
  const viaCli = await cli(r, 'cutover', 'web', '--to', 'v2');
  t.equal(viaCli.code, 1);
  t.match(viaCli.stderr, /\[FW_CUTOVER_ACTIVE\]/);

  t.equal((await cli(r, 'cutover', 'web')).code, 2, 'neither --to nor an action');
  t.equal((await cli(r, 'cutover', 'web', '--to', 'v2', '--steps', '5,x')).code, 2, 'malformed --steps');
  t.equal((await cli(r, 'cutover', 'web', '--pause', '--to', 'v2')).code, 2, 'an action with plan options');
  t.equal((await cli(r, 'cutover', 'web', '--pause', '--abort')).code, 2, 'two actions');
  t.equal((await cli(r, 'cutover', 'web', '--abort')).code, 0);
});

t.test('a router restart mid-cutover resumes at the step where it stopped, and a waiting CLI follows it across the restart', async (t) => {
  const v1 = await startUpstream('v1', healthy('v1'));
  const v2 = await startUpstream('v2', healthy('v2'));
  const port = await freePort();
  const yaml = config(v1, [v2], [100, 0], `listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:${port}\n`);
  const first = await startTestRouter(yaml);
  // Without traffic yet, step 1 holds (on no traffic: hold) until the waiting CLI is connected.
  await post(first, '/v1/apps/web/cutover', { to: 'v2', steps: [10, 50, 100], holdMs: 300, minRequests: 10 });
  const waiting = cli(first, 'cutover', 'web', '--status', '--wait');
  await watcherConnected(first);
  // The router stops as step 2 begins (closing stops the cutover's timers at once).
  const closed = new Promise<void>((resolve) => {
    const on = (d: CutoverDecisionEvent) => {
      if (d.kind !== 'step' || d.step !== 1) return;
      first.router.cutovers.off('decision', on);
      first.close().then(resolve, resolve);
    };
    first.router.cutovers.on('decision', on);
  });
  let load = drive(first);
  await closed;
  await load.stop();
  const saved = JSON.parse(readFileSync(path.join(first.dir, 'fairway.cutovers.json'), 'utf8'));
  t.match(saved, { version: 1, cutovers: { web: { state: 'running', step: 1, plan: { steps: [10, 50, 100] } } } }, 'the cutover file next to the state file holds the progress');

  const second = await startTestRouter(yaml, { dir: first.dir });
  t.teardown(async () => {
    await second.close();
    await Promise.all([v1.close(), v2.close()]);
  });
  load = drive(second);
  const done = await ended(second);
  await load.stop();
  t.equal(done.kind, 'complete');
  const { history } = (await second.adminGet('/v1/apps/web/cutover')).json();
  const restart = history.findIndex((d: CutoverDecision) => d.kind === 'restart');
  t.ok(restart > 0, 'the restart is recorded');
  t.match(history[restart], { step: 1, percent: 50, message: /resumed after a router restart: step 2\/3 starts its hold again/ });
  t.same(stepsOf(history), [10, 50, 50, 100], 'step 2 was held again after the restart, then the plan went on');
  t.same((await second.adminGet('/v1/apps/web/weights')).json(), { v1: 0, v2: 100 });
  const res = await waiting;
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /reconnecting/);
  t.match(res.stdout, /^completed: all traffic on v2/m);
  t.equal(res.stdout.match(/^step 1\/3 passed/gm)?.length, 1, 'no decision printed twice across the reconnection');
});

t.test('too little traffic: on-no-traffic hold keeps holding and says so until traffic comes; proceed goes on unjudged', async (t) => {
  const { r } = await setUp(t, healthy('v2'));
  await post(r, '/v1/apps/web/cutover', { to: 'v2', steps: [50, 100], holdMs: 200, minRequests: 20, onNoTraffic: 'hold' });
  const holding = await decision(r, (d) => d.kind === 'no_traffic');
  t.match(holding, { action: 'hold', state: 'running', step: 0, message: /only 0 of 20 requests on v2 in the hold: holding until there are enough/ });
  const status = (await r.adminGet('/v1/apps/web/cutover')).json();
  t.match(status, { state: 'running', step: 0, hold: { waitingForTraffic: true, leftMs: null } });
  const load = drive(r);
  const done = await ended(r);
  await load.stop();
  t.equal(done.kind, 'complete', 'traffic came: judged and completed');
  t.same(kindsOf((await r.adminGet('/v1/apps/web/cutover')).json().history), ['start', 'step', 'no_traffic', 'pass', 'step', 'pass', 'complete']);

  await post(r, '/v1/apps/web/rollback');
  const proceed = await post(r, '/v1/apps/web/cutover', { to: 'v2', steps: [50, 100], holdMs: 100, minRequests: 20, onNoTraffic: 'proceed' });
  t.equal(proceed.status, 201);
  const end = await decision(r, (d) => d.kind === 'complete' && Date.parse(d.at) >= Date.parse(proceed.json.startedAt));
  t.equal(end.state, 'completed');
  const history = (await r.adminGet('/v1/apps/web/cutover')).json().history;
  t.same(kindsOf(history), ['start', 'step', 'no_traffic', 'step', 'no_traffic', 'complete']);
  t.same(history.filter((d: CutoverDecision) => d.kind === 'no_traffic').map((d: CutoverDecision) => d.action), ['proceed', 'proceed']);
});

t.test('--json prints one NDJSON decision event per line and a result line', async (t) => {
  const { r } = await setUp(t, healthy('v2'));
  const load = drive(r);
  const res = await cli(r, 'cutover', 'web', '--to', 'v2', '--steps', '100', '--hold', '200ms', '--min-requests', '5', '--wait', '--json');
  await load.stop();
  t.equal(res.code, 0, res.stderr);
  const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.same(lines.map((l) => l.type === 'decision' ? l.kind : l.type), ['start', 'step', 'pass', 'complete', 'result']);
  lines.slice(0, -1).forEach((l, i) => t.match(l, { type: 'decision', app: 'web', id: /^web-/, index: i, at: String, state: String, step: Number, percent: Number, weights: Object, message: String }));
  t.match(lines[1], { kind: 'step', state: 'running', step: 0, percent: 100, weights: { v1: 0, v2: 100 } });
  t.match(lines[2], { kind: 'pass', window: { elapsedMs: Number, new: { requests: Number, errors: 0, errorRate: 0, p99Ms: Number }, old: { requests: Number }, limits: { errorRate: 0.01, p99Ms: 500 } } });
  t.same(lines.at(-1), { type: 'result', app: 'web', id: lines[0].id, state: 'completed', exitCode: 0 });
});

t.test('zero downtime: a steady keep-alive client through a 0→100 cutover and a rollback sees no failed request, no dropped connection, and each step\'s share within ±5 points of the plan', async (t) => {
  const { r } = await setUp(t, healthy('v2'));
  const load = drive(r, 8);
  const steps = [10, 25, 50, 75, 100];
  await post(r, '/v1/apps/web/cutover', { to: 'v2', steps, holdMs: 700, minRequests: 500, maxP99Ms: 2000 });
  const done = await ended(r);
  t.equal(done.kind, 'complete', done.message);
  const rolledBack = await post(r, '/v1/apps/web/rollback');
  t.equal(rolledBack.json.state, 'rolled_back');
  // The rollback is live once its answer came (the admin API answers after the swap), not when it was asked for.
  const rollbackAt = Date.now();
  // Keep the load on for another 800 answers after the rollback.
  await load.until(load.served.length + 800);
  await load.stop();

  const { history } = (await r.adminGet('/v1/apps/web/cutover')).json() as { history: CutoverDecision[] };
  const rows: string[] = [];
  for (const step of history.filter((d) => d.kind === 'step')) {
    const next = history[step.index + 1]!;
    // Answers that ended within the step, minus 20 ms at its start for requests picked before the swap.
    const from = Date.parse(step.at) + 20;
    const to = Date.parse(next.at);
    const inStep = load.served.filter((s) => s.at >= from && s.at <= to);
    const share = (100 * inStep.filter((s) => s.upstream === 'v2').length) / inStep.length;
    rows.push(`${step.percent}%: ${inStep.length} requests, ${share.toFixed(1)}% on v2`);
    t.ok(inStep.length >= 500, `step ${step.percent}%: ${inStep.length} requests (>= 500)`);
    t.ok(Math.abs(share - step.percent) <= 5, `step ${step.percent}%: measured ${share.toFixed(1)}%`);
  }
  const after = load.served.filter((s) => s.at >= rollbackAt + 20);
  t.ok(after.length >= 500, `${after.length} requests after the rollback`);
  t.equal(after.filter((s) => s.upstream === 'v2').length, 0, 'after the rollback: 0% on v2');
  t.same(load.failures, [], 'no request failed on the client side');
  t.equal(load.served.filter((s) => s.status !== 200).length, 0, 'every answer was 200');
  t.equal(load.connects, 8, 'the 8 keep-alive connections were opened once');
  t.equal(load.dropped, 0, 'and none was dropped');
  t.comment(`${load.served.length} requests; ${rows.join('; ')}; after rollback ${after.length} requests, 0% on v2`);
});

/** Resolves once a client follows the cutover's event stream (the admin API subscribed for it). */
function watcherConnected(r: TestRouter): Promise<void> {
  const cutovers = r.router.cutovers as EventEmitter;
  if (cutovers.listenerCount('decision') > 0) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (event: string | symbol) => {
      if (event !== 'decision') return;
      cutovers.off('newListener', on);
      resolve();
    };
    cutovers.on('newListener', on);
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

