/**
 * The primary's side of `fairway serve --workers N`, without processes: a worker's
 * cumulative counters folded into the primary's (monotonic across a worker's death and a
 * replacement that starts from zero), endpoint-health counters and states over several
 * workers, and how many workers `auto` means (CPUs, cgroup quotas, bad values).
 */
import t from 'tap';
import { mergeEndpointStates } from '../src/cluster/merge-endpoint-states.js';
import { autoWorkerCount, MAX_WORKERS, parseWorkerCount } from '../src/cluster/worker-count.js';
import { WorkerCounters } from '../src/cluster/worker-counters.js';
import { applyHeapGrowing, WORKER_HEAP_GROWING_PERCENT, WORKER_SEMI_SPACE_MB, workerExecArgv } from '../src/cluster/worker-heap.js';
import type { EndpointState } from '../src/data/endpoint-health.js';
import { EndpointHealthStats, unavailableRows, type EndpointHealthCounterData } from '../src/observability/endpoint-health-stats.js';
import { RequestStats } from '../src/observability/request-stats.js';
import { runCli } from './helpers/router-process.js';

const NO_HEALTH: EndpointHealthCounterData = { ejections: [], budgetExhausted: [] };

/** A worker process's own counters, as it reads them for a report. */
function workerStats() {
  const stats = new RequestStats();
  const v1 = stats.forVersion('web', 'v1');
  return { stats, v1, serve: (n: number, status = 200) => { for (let i = 0; i < n; i++) v1.observe(status, 0.01); } };
}

const total = (s: RequestStats, app = 'web', version = 'v1') => s.forVersion(app, version).byClass.reduce((a, b) => a + b, 0);

t.test('counter folding: each report adds what the worker counted since its previous one, not its total again', async (t) => {
  const primary = new RequestStats();
  const w = workerStats();
  const folded = new WorkerCounters(primary, new EndpointHealthStats());
  w.serve(3);
  folded.fold(w.stats.data(), NO_HEALTH);
  t.equal(total(primary), 3);
  w.serve(2, 502);
  folded.fold(w.stats.data(), NO_HEALTH);
  t.equal(total(primary), 5, '3 + 2, not 3 + 5');
  t.equal(primary.forVersion('web', 'v1').byClass[5], 2);
  folded.fold(w.stats.data(), NO_HEALTH);
  t.equal(total(primary), 5, 'a report with nothing new adds nothing');
});

t.test('counter folding: a version left out of a report (unchanged) keeps its count, and later reports fold from its last one', async (t) => {
  const primary = new RequestStats();
  const w = workerStats();
  const v2 = w.stats.forVersion('web', 'v2');
  const folded = new WorkerCounters(primary, new EndpointHealthStats());
  w.serve(4);
  v2.observe(200, 0.01);
  folded.fold(w.stats.data(), NO_HEALTH);
  w.serve(1);
  folded.fold(w.stats.data((s) => s.version === 'v1'), NO_HEALTH);
  t.equal(total(primary, 'web', 'v2'), 1, 'v2 untouched');
  v2.observe(200, 0.01);
  folded.fold(w.stats.data(), NO_HEALTH);
  t.equal(total(primary, 'web', 'v1'), 5);
  t.equal(total(primary, 'web', 'v2'), 2);
});

t.test('counter folding: a worker that dies leaves its counts; its replacement starts from zero and only adds', async (t) => {
  const primary = new RequestStats();
  const health = new EndpointHealthStats();
  const survivor = workerStats();
  const dying = workerStats();
  const a = new WorkerCounters(primary, health);
  const b = new WorkerCounters(primary, health);
  survivor.serve(10);
  dying.serve(7);
  // An open WebSocket in the dying worker: a gauge, which must leave with it.
  dying.v1.upgrades.upgraded++;
  dying.v1.upgrades.active++;
  a.fold(survivor.stats.data(), NO_HEALTH);
  b.fold(dying.stats.data(), { ejections: [['web', 'v1', 2]], budgetExhausted: [['web', 4]] });
  t.equal(total(primary), 17);
  t.equal(primary.forVersion('web', 'v1').upgrades.active, 1);
  b.retire();
  t.equal(total(primary), 17, 'what it counted stays counted');
  t.equal(primary.forVersion('web', 'v1').upgrades.active, 0, 'its open upgrades are not open any more');
  t.equal(primary.forVersion('web', 'v1').upgrades.upgraded, 1, 'but they were made');
  b.fold(dying.stats.data(), NO_HEALTH);
  t.equal(total(primary), 17, 'a late report of a retired worker is ignored');
  // The replacement: a fresh process, counting from zero.
  const replacement = workerStats();
  const c = new WorkerCounters(primary, health);
  replacement.serve(1);
  c.fold(replacement.stats.data(), { ejections: [['web', 'v1', 1]], budgetExhausted: [['web', 1]] });
  t.equal(total(primary), 18, 'never below what was shown before');
  const text = health.render([], health.exhausted);
  t.match(text, /fairway_endpoint_ejections_total\{app="web",version="v1"\} 3\n/, 'ejections: 2 of the dead worker + 1 of its replacement');
  t.match(text, /fairway_retries_budget_exhausted_total\{app="web"\} 5\n/);
});

t.test('endpoint-health folding: a count below its previous reading started again from zero (a budget recreated), so all of it is new', async (t) => {
  const health = new EndpointHealthStats();
  const w = new WorkerCounters(new RequestStats(), health);
  const empty = new RequestStats().data();
  w.fold(empty, { ejections: [], budgetExhausted: [['web', 5]] });
  w.fold(empty, { ejections: [], budgetExhausted: [['web', 2]] });
  t.equal(health.exhausted.get('web'), 7);
  w.fold(empty, { ejections: [], budgetExhausted: [['web', 2]] });
  t.equal(health.exhausted.get('web'), 7);
});

t.test('endpoints unavailable in several workers are counted once per version, ejected before unhealthy', async (t) => {
  const rows = unavailableRows([
    [['web', 'v1', '10.0.0.1:80', 'ejected'], ['web', 'v1', '10.0.0.2:80', 'unhealthy']],
    [['web', 'v1', '10.0.0.1:80', 'unhealthy'], ['web', 'v1', '10.0.0.2:80', 'unhealthy'], ['web', 'v2', '10.0.0.3:80', 'ejected']],
  ]);
  t.same(rows, [
    { app: 'web', version: 'v1', ejected: 1, unhealthy: 1 },
    { app: 'web', version: 'v2', ejected: 1, unhealthy: 0 },
  ]);
});

t.test('endpoint states over workers: the worst state, summed outstanding, and each worker\'s own view', async (t) => {
  const state = (endpoint: string, s: EndpointState['state'], outstanding = 0, consecutiveFailures = 0, ejections = 0): EndpointState => ({ endpoint, state: s, outstanding, consecutiveFailures, ejections });
  const merged = mergeEndpointStates([
    [1, { v1: [state('a:1', 'available', 2, 1), state('b:1', 'available')] }],
    [2, { v1: [state('a:1', 'ejected', 1, 0, 1), state('b:1', 'unhealthy')] }],
    [3, undefined],
  ]);
  t.same(merged, {
    v1: [
      { endpoint: 'a:1', state: 'ejected', outstanding: 3, consecutiveFailures: 1, ejections: 1, workers: { 1: { state: 'available', outstanding: 2, consecutiveFailures: 1, ejections: 0 }, 2: { state: 'ejected', outstanding: 1, consecutiveFailures: 0, ejections: 1 } } },
      { endpoint: 'b:1', state: 'unhealthy', outstanding: 0, consecutiveFailures: 0, ejections: 0, workers: { 1: { state: 'available', outstanding: 0, consecutiveFailures: 0, ejections: 0 }, 2: { state: 'unhealthy', outstanding: 0, consecutiveFailures: 0, ejections: 0 } } },
    ],
  });
  t.equal(mergeEndpointStates([[1, undefined]]), undefined, 'no worker serves the app');
});

t.test('worker count: auto is the CPUs, lowered to the cgroup quota (rounded up), at least 1', async (t) => {
  const files = (map: Record<string, string>) => (file: string) => map[file];
  t.equal(autoWorkerCount({ cpus: 8, readFile: files({}) }), 8, 'no cgroup files: the CPUs');
  t.equal(autoWorkerCount({ cpus: 8, readFile: files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }) }), 8, 'v2 without a quota');
  t.equal(autoWorkerCount({ cpus: 64, readFile: files({ '/sys/fs/cgroup/cpu.max': '200000 100000\n' }) }), 2, 'v2: a container limited to 2 CPUs on a 64-core node');
  t.equal(autoWorkerCount({ cpus: 64, readFile: files({ '/sys/fs/cgroup/cpu.max': '150000 100000' }) }), 2, '1.5 CPUs: rounded up');
  t.equal(autoWorkerCount({ cpus: 64, readFile: files({ '/sys/fs/cgroup/cpu.max': '10000 100000' }) }), 1, '0.1 CPU: at least one');
  t.equal(autoWorkerCount({ cpus: 2, readFile: files({ '/sys/fs/cgroup/cpu.max': '800000 100000' }) }), 2, 'a quota above the CPUs: the CPUs');
  t.equal(autoWorkerCount({ cpus: 16, readFile: files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '300000\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }) }), 3, 'cgroup v1');
  t.equal(autoWorkerCount({ cpus: 16, readFile: files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }) }), 16, 'v1 quota -1: none');
  t.equal(autoWorkerCount({ cpus: 16, readFile: files({ '/sys/fs/cgroup/cpu.max': 'garbage' }) }), 16, 'an unreadable quota is ignored');
});

t.test('worker count: auto or a whole number from 1 to 256; anything else is undefined', async (t) => {
  const host = { cpus: 6, readFile: () => undefined };
  t.equal(parseWorkerCount('auto', host), 6);
  t.equal(parseWorkerCount(' AUTO ', host), 6);
  t.equal(parseWorkerCount('1', host), 1);
  t.equal(parseWorkerCount(String(MAX_WORKERS), host), MAX_WORKERS);
  for (const bad of ['0', String(MAX_WORKERS + 1), '-2', '2.5', '1e2', '', 'two', '0x10']) t.equal(parseWorkerCount(bad, host), undefined, JSON.stringify(bad));
});

t.test('FAIRWAY_WORKERS and --workers with a bad value: usage error (exit 2) naming the expected values', async (t) => {
  const fromEnv = await runCli(['serve', '--config', '/nonexistent.yaml'], { FAIRWAY_WORKERS: 'lots' });
  t.equal(fromEnv.code, 2);
  t.match(fromEnv.stderr, /--workers <n>.*expected auto or a whole number from 1 to 256/s);
  const fromFlag = await runCli(['demo', '--workers', '0']);
  t.equal(fromFlag.code, 2);
  t.match(fromFlag.stderr, /expected auto or a whole number from 1 to 256/);
});

t.test('heap: the old generation\'s growing factor is set at start unless node\'s command line sets one (either spelling)', async (t) => {
  const set: string[] = [];
  applyHeapGrowing(['--enable-source-maps'], (f) => set.push(f));
  t.same(set, [`--heap-growing-percent=${WORKER_HEAP_GROWING_PERCENT}`]);
  applyHeapGrowing(['--heap-growing-percent=0'], (f) => set.push(f));
  applyHeapGrowing(['--heap_growing_percent=80'], (f) => set.push(f));
  t.equal(set.length, 1, 'the operator\'s value is left alone');
});

t.test('worker heap: workers start with the young generation capped unless node\'s command line or NODE_OPTIONS sets it (either spelling)', async (t) => {
  const cap = `--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`;
  t.same(workerExecArgv([], undefined), [cap]);
  t.same(workerExecArgv(['--enable-source-maps'], '--max-old-space-size=512 --import=x.js'), ['--enable-source-maps', cap], 'the primary\'s own flags come first');
  t.same(workerExecArgv(['--max-semi-space-size=16'], undefined), ['--max-semi-space-size=16']);
  t.same(workerExecArgv(['--max_semi_space_size', '32'], undefined), ['--max_semi_space_size', '32']);
  t.same(workerExecArgv([], ' --max-semi-space-size=4  --trace-gc'), [], 'one in NODE_OPTIONS (which the worker inherits) is left alone');
  t.same(workerExecArgv(['--max-semi-space-sizes-unrelated=1'], undefined), ['--max-semi-space-sizes-unrelated=1', cap], 'a longer flag of the same prefix is not the flag');
});
