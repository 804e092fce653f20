import t from 'tap';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { ControlPlane } from '../src/control/control-plane.js';
import { ReadinessGate } from '../src/control/readiness-gate.js';
import { WeightOverrides } from '../src/control/weight-overrides.js';
import { parseConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import type { AppSpec, Snapshot } from '../src/model.js';

const base = parseConfig(`
platformDomain: example.com
apps:
  web:
    domains: [web]
    versions:
      v1: { weight: 90, endpoints: ["127.0.0.1:3001"] }
      v2: { weight: 10, endpoints: ["127.0.0.1:3002"] }
`, 'cp.yaml');

function app(name: string, domains: string[], source = 'other'): AppSpec {
  return { name, domains, source, loadBalancing: 'round-robin', tls: { sslEnforce: false, hsts: undefined, acme: true, certificates: [] }, policy: { allow: [], maintenance: false, connectTimeout: undefined, readTimeout: undefined }, versions: [{ name: 'v1', weight: 1, endpoints: [{ host: '127.0.0.1', port: 4000 }] }] };
}

function controlPlane() {
  const silent = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, done) => done() }) });
  const cp = new ControlPlane({ overrides: new WeightOverrides(), metrics: new Metrics({ processMetrics: false }), logger: silent });
  const snapshots: Snapshot[] = [];
  cp.on('snapshot', (s) => snapshots.push(s));
  return { cp, snapshots };
}

t.test('no snapshot until the settings-owning provider has reported', async (t) => {
  const { cp } = controlPlane();
  cp.sinkFor('other').update({ apps: [app('api', ['api.test'])] });
  t.equal(cp.flush(), undefined);
  cp.sinkFor('file').update({ apps: base.apps, settings: base.settings });
  t.same(cp.flush()!.apps.map((a) => a.name), ['api', 'web']);
});

t.test('a burst of updates in one turn makes one snapshot; an unchanged state makes none', async (t) => {
  const { cp, snapshots } = controlPlane();
  const sink = cp.sinkFor('file');
  for (let i = 0; i < 1000; i++) sink.update({ apps: base.apps, settings: base.settings });
  await once(cp, 'snapshot');
  sink.update({ apps: base.apps, settings: base.settings });
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(snapshots.length, 1);
  t.equal(snapshots[0]!.generation, 1);
});

t.test('builds counts every rebuild, one that changes nothing included: a state sent while pending is built at the next one (readiness)', async (t) => {
  const { cp, snapshots } = controlPlane();
  const sink = cp.sinkFor('file');
  cp.sinkFor('other').update({ apps: [app('api', ['api.test'])] });
  cp.flush();
  t.equal(cp.builds, 0, 'no settings yet: nothing was built');
  sink.update({ apps: base.apps, settings: base.settings });
  t.ok(cp.pending, 'a sent state waits for its rebuild');
  const before = cp.builds;
  await once(cp, 'snapshot');
  t.equal(cp.builds, before + 1);
  t.notOk(cp.pending);
  sink.update({ apps: base.apps, settings: base.settings });
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(cp.builds, before + 2, 'the unchanged state was rebuilt too');
  t.equal(snapshots.length, 1, 'without a new snapshot');
});

t.test('readiness without a provider to wait for: ready as soon as a route table is live, and for good', async (t) => {
  const { cp } = controlPlane();
  let live = false;
  const gate = new ReadinessGate({ tableLive: () => live, controlPlane: cp });
  t.notOk(gate.check(), 'no table yet: starting');
  live = true;
  t.ok(gate.check(), 'a table is live: ready');
  live = false;
  t.ok(gate.check(), 'once ready, ready until the stop (draining is said by the admin server)');
});

t.test('readiness with Kubernetes: not before the snapshot of its first full state is built, even with a table live; a rebuild pending later does not make it starting again', async (t) => {
  const { cp } = controlPlane();
  cp.sinkFor('file').update({ apps: base.apps, settings: base.settings });
  cp.flush();
  let synced!: () => void;
  const gate = new ReadinessGate({ tableLive: () => true, controlPlane: cp, synced: new Promise<void>((resolve) => (synced = resolve)) });
  t.notOk(gate.check(), 'a table is live, but Kubernetes has not listed yet');
  const kubernetes = cp.sinkFor('kubernetes');
  kubernetes.update({ apps: [app('api', ['api.test'])] }); // the first full state, sent just before the provider says it synced
  synced();
  await Promise.resolve(); // the gate's own continuation on `synced` runs first
  t.ok(cp.pending);
  t.notOk(gate.check(), 'the full state is sent but not built yet: starting');
  await once(cp, 'snapshot');
  t.ok(gate.check(), 'ready once the rebuild that holds it ran');
  // The router's own writes (its admin-token Secret, Events) make the provider send again right after the sync.
  kubernetes.update({ apps: [app('api', ['api.test']), app('b', ['b.test'])] });
  t.ok(cp.pending);
  t.ok(gate.check(), 'still ready while that rebuild is pending');
});

t.test('readiness with Kubernetes: a sync whose state was already built is ready at once', async (t) => {
  const { cp } = controlPlane();
  cp.sinkFor('file').update({ apps: base.apps, settings: base.settings });
  let synced!: () => void;
  const gate = new ReadinessGate({ tableLive: () => true, controlPlane: cp, synced: new Promise<void>((resolve) => (synced = resolve)) });
  cp.sinkFor('kubernetes').update({ apps: [app('api', ['api.test'])] });
  cp.flush();
  t.notOk(gate.check(), 'built, but not yet known to be the full state');
  synced();
  await Promise.resolve();
  t.notOk(cp.pending);
  t.ok(gate.check(), 'nothing pending at the sync: the live snapshot holds the full state');
});

t.test('apps that conflict are disabled with FW_APP_CONFLICT and the rest keep serving', async (t) => {
  const { cp } = controlPlane();
  cp.sinkFor('file').update({ apps: base.apps, settings: base.settings });
  cp.sinkFor('other').update({ apps: [app('web', ['dup.test']), app('api', ['web.example.com']), app('zzz', ['z.test'])] });
  const s = cp.flush()!;
  t.same(s.apps.map((a) => a.name), ['api', 'zzz'], 'between new apps the first by name wins');
  t.match(s.errors, [
    { app: 'web', code: 'FW_APP_CONFLICT', message: /defined by file and other; the other one is disabled/ },
    { app: 'web', code: 'FW_APP_CONFLICT', message: /domain "web\.example\.com" is already served by app "api"; app "web" is disabled/ },
  ]);
});

t.test('a live app keeps its domains when a new app claims one of them', async (t) => {
  const { cp } = controlPlane();
  cp.sinkFor('file').update({ apps: base.apps, settings: base.settings });
  cp.flush();
  cp.sinkFor('other').update({ apps: [app('web', ['dup.test']), app('api', ['web.example.com'])] });
  const s = cp.flush()!;
  t.same(s.apps.map((a) => a.name), ['web']);
  t.match(s.errors, [
    { app: 'api', code: 'FW_APP_CONFLICT', message: /domain "web\.example\.com" is already served by app "web"; app "api" is disabled/ },
    { app: 'web', code: 'FW_APP_CONFLICT', message: /defined by file and other; the other one is disabled/ },
  ]);
});

t.test('a provider error keeps its last good state serving', async (t) => {
  const { cp } = controlPlane();
  const sink = cp.sinkFor('file');
  sink.update({ apps: base.apps, settings: base.settings });
  const before = cp.flush()!;
  const { FairwayError } = await import('../src/errors.js');
  sink.error(new FairwayError('FW_CONFIG_INVALID', 'broken'));
  t.equal(cp.flush(), before, 'same snapshot object');
  t.match(cp.providerStatus(), [{ provider: 'file', ok: false, error: { code: 'FW_CONFIG_INVALID' } }]);
});

t.test('weight overrides apply over the provider until the provider changes that app\'s weights', async (t) => {
  const { cp } = controlPlane();
  const sink = cp.sinkFor('file');
  sink.update({ apps: base.apps, settings: base.settings });
  cp.flush();
  const set = await cp.setWeights('web', { v2: 60 });
  t.same(set.versions.map((v) => v.weight), [90, 60], 'unnamed versions keep their weight');

  const moved = base.apps.map((a) => ({ ...a, versions: a.versions.map((v) => ({ ...v, endpoints: [{ host: '127.0.0.2', port: v.endpoints[0]!.port }] })) }));
  sink.update({ apps: moved, settings: base.settings });
  t.same(cp.flush()!.apps[0]!.versions.map((v) => v.weight), [90, 60], 'an endpoint change keeps the override');

  const reweighted = base.apps.map((a) => ({ ...a, versions: a.versions.map((v) => ({ ...v, weight: 50 })) }));
  sink.update({ apps: reweighted, settings: base.settings });
  t.same(cp.flush()!.apps[0]!.versions.map((v) => v.weight), [50, 50], 'the provider\'s new weights win');
});
