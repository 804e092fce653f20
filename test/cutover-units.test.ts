import t from 'tap';
import { CutoverProgressView } from '../src/cli/cutover-progress-view.js';
import { formatDuration, formatPlan } from '../src/cli/cutover-format.js';
import { planBody } from '../src/cli/cutover-command.js';
import { parseCutoverPlan, stepWeights, type CutoverPlan } from '../src/cutover/cutover-plan.js';
import type { CutoverDecisionEvent } from '../src/cutover/cutover-controller.js';
import type { CutoverProgress } from '../src/cutover/cutover-run.js';
import { judgeWindow } from '../src/cutover/judge-window.js';
import { localStatsSource, windowBetween, windowOf, type ReplicaCounters, type StatsReading, type VersionCounters, type WindowNumbers } from '../src/cutover/measurement-window.js';
import type { AppSpec } from '../src/model.js';
import { RequestStats } from '../src/observability/request-stats.js';

const app: AppSpec = {
  name: 'web',
  domains: ['web.example.com'],
  loadBalancing: 'least-outstanding',
  source: 'file',
  tls: { sslEnforce: false, hsts: undefined, acme: false, certificates: [] },
  policy: { allow: [], maintenance: false, connectTimeout: undefined, readTimeout: undefined },
  versions: [
    { name: 'v1', weight: 90, endpoints: [{ host: '127.0.0.1', port: 1 }] },
    { name: 'v2', weight: 10, endpoints: [{ host: '127.0.0.1', port: 2 }] },
    { name: 'v3', weight: 0, endpoints: [] },
  ],
};

t.test('the window counts 5xx answers and retried failed attempts as errors, over attempts; 4xx are not errors', async (t) => {
  const stats = new RequestStats();
  const source = localStatsSource(stats);
  const s = stats.forVersion('web', 'v2');
  s.observe(200, 0.001);
  const start = source.counters('web', 'v2');
  for (let i = 0; i < 90; i++) s.observe(200, 0.002);
  for (let i = 0; i < 5; i++) s.observe(404, 0.002);
  s.observe(499, 0.002); // client gone
  s.observe(500, 0.002); // the app's own 5xx
  s.observe(502, 0.002); // every attempt failed: the final attempt is this answer
  s.upstreamErrors.refused += 3; // …that one, and two that were retried elsewhere:
  s.retries += 2;
  const w = windowBetween(start, source.counters('web', 'v2'));
  t.same({ requests: w.requests, errors: w.errors }, { requests: 100, errors: 4 }, '98 answers + 2 retried attempts; 500 + 502 + 2 retried');
  t.equal(w.errorRate, 0.04);
  t.same(windowBetween(start, start), { requests: 0, errors: 0, errorRate: 0, p99Ms: null }, 'an empty window');
});

t.test('a window over several replicas sums each one\'s own difference: a restarted replica counts from zero, one without a baseline or not read at the end is left out and named', async (t) => {
  const counters = (ok: number, failed: number): VersionCounters => ({ byClass: [0, 0, ok, 0, 0, failed], retries: 0, fine: [] });
  const replica = (start: string, startedAt: number, ok: number, failed: number): ReplicaCounters => ({ start, startedAt, versions: { v2: counters(ok, failed) } });
  const start: StatsReading = {
    at: 1_000,
    replicas: { a: replica('a1', 0, 100, 0), b: replica('b1', 0, 50, 5), c: replica('c1', 0, 10, 0) },
    unreachable: [{ replica: 'd', reason: 'http://10.0.0.4:9090: no answer within 2000 ms' }],
  };
  const end: StatsReading = {
    at: 2_000,
    replicas: {
      a: replica('a1', 0, 130, 0), // +30
      b: replica('b2', 1_500, 8, 2), // restarted mid-window: its counters began again at zero: +10, 2 errors
      d: replica('d1', 0, 999, 0), // unreadable when the window began: its share is unknown
      e: replica('e1', 1_200, 5, 5), // started after the window began: everything counts
    },
    unreachable: [{ replica: 'c', reason: 'http://10.0.0.3:9090: ECONNREFUSED' }],
  };
  const { numbers, replicas } = windowOf(start, end, 'v2');
  t.same({ requests: numbers.requests, errors: numbers.errors }, { requests: 30 + 10 + 10, errors: 2 + 5 });
  t.same(replicas.counted, ['a', 'b', 'e']);
  t.same(replicas.missing, [
    { replica: 'c', reason: 'http://10.0.0.3:9090: ECONNREFUSED' },
    { replica: 'd', reason: 'not read when the window started' },
  ]);
  t.same(windowOf(start, start, 'v2').numbers, { requests: 0, errors: 0, errorRate: 0, p99Ms: null }, 'an empty window');
  t.same(windowOf(start, { ...end, replicas: { a: end.replicas.a! }, unreachable: [] }, 'v2').replicas.missing.map((m) => m.replica), ['b', 'c'], 'replicas gone since the window began are named');
});

t.test('p99 comes from the fine log histogram: within 9% above the true value, from 0.1 ms to seconds', async (t) => {
  for (const ms of [4, 47, 120, 499, 501, 2500]) {
    const stats = new RequestStats();
    const s = stats.forVersion('web', 'v2');
    const start = localStatsSource(stats).counters('web', 'v2');
    for (let i = 0; i < 990; i++) s.observe(200, 0.001);
    for (let i = 0; i < 10; i++) s.observe(200, ms / 1000);
    const p99 = windowBetween(start, localStatsSource(stats).counters('web', 'v2')).p99Ms!;
    t.ok(p99 >= 1 && p99 < 1.1, `99% at 1 ms → p99 ${p99}`);
    for (let i = 0; i < 20; i++) s.observe(200, ms / 1000);
    const p99slow = windowBetween(start, localStatsSource(stats).counters('web', 'v2')).p99Ms!;
    t.ok(p99slow >= ms && p99slow < ms * 1.091, `3% at ${ms} ms → p99 ${p99slow}`);
  }
  const stats = new RequestStats();
  const start = localStatsSource(stats).counters('web', 'v2');
  for (let i = 0; i < 100; i++) stats.forVersion('web', 'v2').observe(200, 0.0003);
  const p99 = windowBetween(start, localStatsSource(stats).counters('web', 'v2')).p99Ms!;
  t.ok(p99 >= 0.3 && p99 < 0.3 * 1.091, `all at 0.3 ms → p99 ${p99}`);
});

t.test('the guardrails: thresholds, the old version as baseline, and min-requests', async (t) => {
  const plan = parseCutoverPlan({ to: 'v2', maxErrorRate: 0.01, maxP99Ms: 500, minRequests: 50 }, app);
  const w = (requests: number, errors: number, p99Ms: number | null = 10): WindowNumbers => ({ requests, errors, errorRate: requests ? errors / requests : 0, p99Ms });
  const cases: [string, WindowNumbers, WindowNumbers, string | undefined, boolean][] = [
    ['healthy', w(100, 0), w(900, 0), undefined, true],
    ['1% errors is at the limit, not above', w(100, 1), w(900, 0), undefined, true],
    ['2% errors against a clean old version', w(100, 2), w(900, 0), 'error_rate', true],
    ['2% errors when the old version has 1.5% too', w(100, 2), w(1000, 15), undefined, true],
    ['3% errors when the old version has 1.5%', w(100, 3), w(1000, 15), 'error_rate', true],
    ['49 requests are not judged, even all failing', w(49, 49), w(900, 0), undefined, false],
    ['p99 above 500 ms with a fast old version', w(100, 0, 600), w(900, 0, 20), 'p99', true],
    ['p99 above 500 ms but no slower than the old version', w(100, 0, 600), w(900, 0, 650), undefined, true],
    ['an old version with too few requests is no baseline', w(100, 3), w(10, 1), 'error_rate', true],
  ];
  for (const [name, next, old, cause, enough] of cases) {
    const v = judgeWindow(plan, next, old);
    t.equal(v.breach?.cause, cause, name);
    t.equal(v.enoughTraffic, enough, `${name}: enough traffic`);
  }
  const none = { ...plan, baseline: 'none' as const };
  t.equal(judgeWindow(none, w(100, 2), w(1000, 15)).breach?.cause, 'error_rate', 'baseline none: the threshold alone');
  t.same(judgeWindow(plan, w(100, 0), w(1000, 15, 700)).limits, { errorRate: 0.025, p99Ms: 700 }, 'the limits reported include the baseline');
  t.equal(judgeWindow({ ...plan, maxP99Ms: null }, w(100, 0, 9000), w(900, 0)).breach, undefined, 'no latency guardrail');
});

t.test('plans: defaults, the default from version, and every refusal with its code', async (t) => {
  t.same(parseCutoverPlan({ to: 'v2' }, app), {
    app: 'web', from: 'v1', to: 'v2', steps: [5, 25, 50, 100], holdMs: 30_000, maxErrorRate: 0.01, maxP99Ms: 500, minRequests: 50, onNoTraffic: 'hold', baseline: 'old',
  });
  t.equal(parseCutoverPlan({ to: 'v1' }, app).from, 'v2', 'from: the other version with the highest weight');
  const refusals: [unknown, string, RegExp][] = [
    [{ to: 'v9' }, 'FW_VERSION_NOT_FOUND', /no version "v9" \(versions: v1, v2, v3\)/],
    [{ to: 'v2', from: 'v9' }, 'FW_VERSION_NOT_FOUND', /v9/],
    [{ to: 'v3' }, 'FW_CUTOVER_INVALID', /version "v3" of "web" has no endpoints/],
    [{ to: 'v2', from: 'v2' }, 'FW_CUTOVER_INVALID', /"from" and "to" are both "v2"/],
    [{ to: 'v2', steps: [] }, 'FW_CUTOVER_INVALID', /"steps" must be a list/],
    [{ to: 'v2', steps: [50, 50, 100] }, 'FW_CUTOVER_INVALID', /steps must increase/],
    [{ to: 'v2', steps: [50, 101] }, 'FW_CUTOVER_INVALID', /step 2 \(101\)/],
    [{ to: 'v2', steps: [50] }, 'FW_CUTOVER_INVALID', /the last step must be 100/],
    [{ to: 'v2', holdMs: -1 }, 'FW_CUTOVER_INVALID', /"holdMs" must be an integer/],
    [{ to: 'v2', minRequests: 1.5 }, 'FW_CUTOVER_INVALID', /"minRequests"/],
    [{ to: 'v2', baseline: 'new' }, 'FW_CUTOVER_INVALID', /"baseline"/],
    [{ to: 'v2', extra: 1 }, 'FW_CUTOVER_INVALID', /unknown key "extra"/],
    [null, 'FW_CUTOVER_INVALID', /must be a JSON object/],
  ];
  for (const [body, code, message] of refusals) t.throws(() => parseCutoverPlan(body, app), { code, message }, JSON.stringify(body));
  t.throws(() => parseCutoverPlan({ to: 'v1' }, { ...app, versions: [app.versions[0]!] }), { code: 'FW_CUTOVER_INVALID', message: /only version "v1"/ });
});

t.test('step weights divide the two versions\' combined weight; other versions keep theirs', async (t) => {
  const plan = parseCutoverPlan({ to: 'v2' }, app);
  t.same(stepWeights(plan, 100, 5), { v1: 95, v2: 5 });
  t.same(stepWeights(plan, 100, 100), { v1: 0, v2: 100 });
  t.same(stepWeights(plan, 7, 25), { v1: 5.25, v2: 1.75 });
  t.same(stepWeights(plan, 3, 33.3), { v1: 2.001, v2: 0.999 }, 'three decimals');
});

t.test('CLI flags become a plan body with units: 1% and 0.01, 500ms and 30s, none', async (t) => {
  t.same(planBody({ admin: { url: '' }, to: 'v2', steps: '5, 25,50,100%', hold: '30s', maxErrorRate: '1.5%', maxP99: '500ms', minRequests: '50', onNoTraffic: 'proceed', baseline: 'none' }), {
    to: 'v2', steps: [5, 25, 50, 100], holdMs: 30_000, maxErrorRate: 0.015, maxP99Ms: 500, minRequests: 50, onNoTraffic: 'proceed', baseline: 'none',
  });
  t.same(planBody({ admin: { url: '' }, to: 'v2', hold: '750', maxErrorRate: '0.01', maxP99: 'none' }), { to: 'v2', holdMs: 750, maxErrorRate: 0.01, maxP99Ms: null });
  for (const flags of [{ steps: '5;100' }, { hold: 'soon' }, { maxErrorRate: 'low' }, { maxP99: 'fast' }, { minRequests: '-1' }]) {
    t.throws(() => planBody({ admin: { url: '' }, to: 'v2', ...flags }), { code: 'FW_CUTOVER_INVALID' }, JSON.stringify(flags));
  }
  t.equal(formatDuration(450), '450ms');
  t.equal(formatDuration(30_000), '30s');
  t.equal(formatDuration(1500), '1.5s');
  t.equal(formatDuration(150_000), '2m30s');
});

t.test('on a terminal, --wait redraws one live line per step in place and ends it with the outcome', async (t) => {
  const plan: CutoverPlan = { ...parseCutoverPlan({ to: 'v2', steps: [50, 100], holdMs: 30_000, minRequests: 50 }, app) };
  let out = '';
  const view = new CutoverProgressView({ write: (s: string) => (out += s) }, 'tty', plan);
  const base = { app: 'web', id: 'web-1', at: '2026-11-27T08:00:00.000Z', state: 'running' as const, step: 0, percent: 50, weights: { v1: 50, v2: 50 } };
  const window = (requests: number) => ({ elapsedMs: 1000, new: { requests, errors: 0, errorRate: 0, p99Ms: 4.757 }, old: { requests, errors: 0, errorRate: 0, p99Ms: 3.9 }, limits: { errorRate: 0.01, p99Ms: 500 } });
  view.decision({ ...base, index: 0, kind: 'start', step: -1, percent: 10, weights: { v1: 90, v2: 10 }, message: '' } as CutoverDecisionEvent);
  view.decision({ ...base, index: 1, kind: 'step', message: '' } as CutoverDecisionEvent);
  const progress = (requests: number, holdLeftMs: number): CutoverProgress => ({ ...base, steps: 2, window: window(requests), holdLeftMs, waitingForTraffic: false });
  view.progress(progress(12, 18_000));
  view.progress(progress(40, 2_000));
  view.decision({ ...base, index: 2, kind: 'pass', window: window(61), message: '' } as CutoverDecisionEvent);
  const code = view.finish('web', 'web-1', 'rolled_back');
  t.equal(code, 3, 'rolled back exits 3');
  t.equal(
    out,
    `${formatPlan(plan)}\n` +
      '\rstep 1/2: v1=50 v2=50 (50% on v2), holding 30s\x1b[K' +
      '\rstep 1/2  v1=50 v2=50  v2: 12 req  0.00% err  p99 4.8ms  18s left\x1b[K' +
      '\rstep 1/2  v1=50 v2=50  v2: 40 req  0.00% err  p99 4.8ms  2s left\x1b[K' +
      '\rstep 1/2  v1=50 v2=50  v2 61 req, 0.00% errors, p99 4.8ms  passed\x1b[K\n',
  );
  let plain = '';
  const quiet = new CutoverProgressView({ write: (s: string) => (plain += s) }, 'plain', plan);
  quiet.progress(progress(12, 18_000));
  t.equal(plain, '', 'no progress lines off a terminal');
  t.equal(quiet.finish('web', 'web-1', 'aborted'), 4, 'aborted exits 4');
});
