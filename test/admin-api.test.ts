import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startUpstream } from './helpers/upstreams.js';
import { startTestRouter } from './helpers/test-router.js';
import { tally } from './helpers/sample.js';

const a = await startUpstream('a');
const b = await startUpstream('b');
t.teardown(async () => Promise.all([a.close(), b.close()]));

const yaml = (v1: number, v2: number) => `
platformDomain: example.com
apps:
  web:
    domains: [web]
    versions:
      v1: { weight: ${v1}, endpoints: ["${a.address}"] }
      v2: { weight: ${v2}, endpoints: ["${b.address}"] }
`;

t.test('health, readiness and the app views', async (t) => {
  const r = await startTestRouter(yaml(90, 10));
  t.teardown(() => r.close());
  t.same((await r.adminGet('/healthz')).json(), { status: 'ok' });
  const ready = await r.adminGet('/readyz');
  t.equal(ready.status, 200);
  t.match(ready.json(), { status: 'ready', generation: 1 });

  await r.get('web.example.com');
  const apps = (await r.adminGet('/v1/apps')).json();
  t.equal(apps.generation, 1);
  t.match(apps.apps, [{
    name: 'web', source: 'file', domains: ['web.example.com'], weightsOverridden: false,
    versions: [
      { name: 'v1', weight: 90, endpoints: [a.address], requests: { total: 1, '2xx': 1 } },
      { name: 'v2', weight: 10, endpoints: [b.address] },
    ],
  }]);
  t.same(apps.disabled, []);
  t.match((await r.adminGet('/v1/apps/web')).json(), { name: 'web' });
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 90, v2: 10 });
  const missing = await r.adminGet('/v1/apps/nope');
  t.equal(missing.status, 404);
  t.equal(missing.json().error.code, 'FW_APP_NOT_FOUND');
  t.equal((await r.adminGet('/nowhere')).json().error.code, 'FW_ADMIN_NOT_FOUND');
  t.match((await r.adminGet('/v1/routes')).json().routes, [{ host: 'web.example.com', match: 'exact', app: 'web' }]);
});

t.test('GET /metrics is Prometheus text with request, latency, upstream and reload metrics', async (t) => {
  const r = await startTestRouter(yaml(100, 0));
  t.teardown(() => r.close());
  await r.get('web.example.com');
  await r.get('unknown.example.org');
  const m = await r.adminGet('/metrics');
  t.match(m.headers['content-type'], /text\/plain/);
  t.match(m.body, /fairway_requests_total\{app="web",version="v1",status_class="2xx"\} 1/);
  t.match(m.body, /fairway_request_duration_seconds_count\{app="web",version="v1"\} 1/);
  t.match(m.body, /fairway_request_duration_seconds_bucket\{app="web",version="v1",le="\+Inf"\} 1/);
  t.match(m.body, /fairway_unrouted_requests_total\{reason="no_route"\} 1/);
  t.match(m.body, /fairway_config_reloads_total\{provider="file",result="success"\} 1/);
  t.match(m.body, /fairway_snapshot_generation 1/);
  t.match(m.body, /fairway_apps\{state="serving"\} 1/);
  t.match(m.body, /# TYPE fairway_upstream_errors_total counter/);
});

t.test('PUT weights applies at once, validates, and persists across a restart until the file changes the weights', async (t) => {
  const r = await startTestRouter(yaml(90, 10));
  const put = await r.adminPut('/v1/apps/web/weights', { v1: 0, v2: 100 });
  t.equal(put.status, 200);
  t.match(put.json(), { name: 'web', weightsOverridden: true, versions: [{ name: 'v1', weight: 0 }, { name: 'v2', weight: 100 }] });
  t.same(await tally(20, () => r.get('web.example.com'), (x) => x.json().upstream), { b: 20 }, 'live immediately');

  const rejections: [unknown, number, string][] = [
    [{ v3: 1 }, 404, 'FW_VERSION_NOT_FOUND'],
    [{ v1: -1 }, 400, 'FW_ADMIN_BAD_REQUEST'],
    [{ v1: 'ten' }, 400, 'FW_ADMIN_BAD_REQUEST'],
    [{}, 400, 'FW_ADMIN_BAD_REQUEST'],
    [[1, 2], 400, 'FW_ADMIN_BAD_REQUEST'],
    [{ v2: 0 }, 400, 'FW_ADMIN_BAD_REQUEST'], // would leave no version with weight
  ];
  for (const [body, status, code] of rejections) {
    const res = await r.adminPut('/v1/apps/web/weights', body);
    t.equal(res.status, status, JSON.stringify(body));
    t.equal(res.json().error.code, code);
  }
  t.equal((await r.adminPut('/v1/apps/ghost/weights', { v1: 1 })).json().error.code, 'FW_APP_NOT_FOUND');

  const stateFile = path.join(r.dir, 'fairway.state.json');
  t.ok(existsSync(stateFile), 'state file written next to the config');
  t.match(JSON.parse(readFileSync(stateFile, 'utf8')), { version: 1, weights: { web: { weights: { v1: 0, v2: 100 }, base: { v1: 90, v2: 10 } } } });
  await r.close();

  // Same config file (listen lines included), same directory: a restart.
  const restarted = await startTestRouter(readFileSync(r.configFile, 'utf8'), { dir: r.dir });
  t.teardown(() => restarted.close());
  t.same((await restarted.adminGet('/v1/apps/web/weights')).json(), { v1: 0, v2: 100 }, 'the override survived the restart');

  const snapshot = await restarted.rewrite(yaml(50, 50));
  t.same(snapshot.apps[0]!.versions.map((v) => v.weight), [50, 50], 'the file changing its weights wins');
  t.same((await restarted.adminGet('/v1/apps/web/weights')).json(), { v1: 50, v2: 50 });
});

t.test('an unreadable state file is reported and ignored', async (t) => {
  const r0 = await startTestRouter(yaml(90, 10));
  await r0.close();
  writeFileSync(path.join(r0.dir, 'fairway.state.json'), '{ not json');
  const r = await startTestRouter(readFileSync(r0.configFile, 'utf8'), { dir: r0.dir });
  t.teardown(() => r.close());
  t.same((await r.adminGet('/v1/apps/web/weights')).json(), { v1: 90, v2: 10 });
  t.ok(r.logs.some((l) => l.code === 'FW_STATE_READ'), 'logged with its code');
});
