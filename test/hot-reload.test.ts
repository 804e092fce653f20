import t from 'tap';
import { Agent, request } from 'undici';
import { startUpstream, type TestUpstream } from './helpers/upstreams.js';
import { startTestRouter } from './helpers/test-router.js';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startRouter } from '../src/router.js';
import type { Snapshot } from '../src/model.js';

const config = (v1: number, v2: number, v2Endpoint: string, a: TestUpstream) => `
apps:
  web:
    domains: [web.test]
    versions:
      v1: { weight: ${v1}, endpoints: ["${a.address}"] }
      v2: { weight: ${v2}, endpoints: ["${v2Endpoint}"] }
`;

t.test('20 weight and endpoint changes under continuous load: every request succeeds and no client connection drops', async (t) => {
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  const c = await startUpstream('c');
  const r = await startTestRouter(config(90, 10, b.address, a));
  t.teardown(async () => {
    await r.close();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  const agent = new Agent({ connections: 8, keepAliveTimeout: 30_000 });
  let disconnects = 0;
  agent.on('disconnect', () => disconnects++);
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const served = new Set<string>();
  const loop = async () => {
    while (running) {
      try {
        const res = await request(`${r.http}/`, { dispatcher: agent, headers: { host: 'web.test' } });
        const body = await res.body.text();
        if (res.statusCode === 200) {
          ok++;
          served.add(JSON.parse(body).upstream);
        } else failures.push(`HTTP ${res.statusCode}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  const loops = Array.from({ length: 8 }, loop);

  const slowest: number[] = [];
  for (let i = 1; i <= 20; i++) {
    const v2 = (i * 5) % 100;
    const endpoint = i % 2 === 0 ? b.address : c.address;
    const before = ok;
    const started = performance.now();
    const snapshot = await r.rewrite(config(100 - v2, v2, endpoint, a));
    slowest.push(performance.now() - started);
    const web = snapshot.apps.find((x) => x.name === 'web')!;
    t.same(web.versions.map((v) => v.weight), [100 - v2, v2], `change ${i} is live`);
    // Let traffic flow on the new table before the next change.
    while (ok < before + 50) await new Promise((resolve) => setImmediate(resolve));
  }
  running = false;
  await Promise.all(loops);
  const droppedConnections = disconnects;
  await agent.close();

  t.same(failures, [], 'no failed request');
  t.ok(ok > 1000, `${ok} requests served`);
  t.equal(droppedConnections, 0, 'no client connection was closed by the router');
  t.same([...served].sort(), ['a', 'b', 'c'], 'traffic followed the endpoint changes');
  t.ok(Math.max(...slowest) < 1000, `each change applied within a second (slowest ${Math.round(Math.max(...slowest))} ms)`);
});

t.test('an invalid change is refused, reported, and the last good config keeps serving', async (t) => {
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  const r = await startTestRouter(config(100, 0, b.address, a));
  t.teardown(async () => {
    await r.close();
    await Promise.all([a.close(), b.close()]);
  });
  const generation = r.router.controlPlane.snapshot!.generation;

  const bad = config(100, -5, b.address, a);
  await t.rejects(r.rewrite(bad), { code: 'FW_CONFIG_INVALID', message: /apps\.web\.versions\.v2\.weight: must be a number >= 0/ });
  t.equal(r.router.controlPlane.snapshot!.generation, generation, 'no new snapshot');
  for (let i = 0; i < 5; i++) t.equal((await r.get('web.test')).json().upstream, 'a', 'still routed by the last good config');

  const status = (await r.adminGet('/v1/config')).json();
  t.match(status.providers, [{ provider: 'file', ok: false, error: { code: 'FW_CONFIG_INVALID', message: /fairway\.yaml:11:21: apps\.web\.versions\.v2\.weight/ } }]);
  const metrics = (await r.adminGet('/metrics')).body;
  t.match(metrics, /fairway_config_reloads_total\{provider="file",result="failure"\} 1/);
  t.match(metrics, /fairway_config_last_reload_successful\{provider="file"\} 0/);
  t.ok(r.logs.some((l) => l.level === 'error' && /last good configuration keeps serving/.test(String(l.msg))), 'the refusal is logged');

  await t.rejects(r.rewrite('apps: [\n'), { code: 'FW_CONFIG_SYNTAX' }, 'a YAML syntax error is refused too');

  const fixed = await r.rewrite(config(0, 100, b.address, a));
  t.ok(fixed.generation > generation);
  t.equal((await r.get('web.test')).json().upstream, 'b', 'a later valid change applies');
  t.match((await r.adminGet('/v1/config')).json().providers, [{ provider: 'file', ok: true }]);
});

t.test('a config mounted from a Kubernetes ConfigMap reloads when the volume swaps its ..data symlink', async (t) => {
  const up = await startUpstream('cm');
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-configmap-'));
  // The kubelet's atomic writer: files live in ..<timestamp>/, `..data` points at the
  // current one, and `fairway.yaml` is a symlink through `..data`.
  const yaml = (domain: string) => `listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }\napps:\n  web:\n    domains: [${domain}]\n    versions: { v1: { weight: 1, endpoints: ["${up.address}"] } }\n`;
  const generation = (name: string, text: string) => {
    mkdirSync(path.join(dir, name));
    writeFileSync(path.join(dir, name, 'fairway.yaml'), text);
  };
  generation('..2026_11_27_08_00_00.1', yaml('one.test'));
  symlinkSync('..2026_11_27_08_00_00.1', path.join(dir, '..data'));
  symlinkSync('..data/fairway.yaml', path.join(dir, 'fairway.yaml'));
  const router = await startRouter({ configFile: path.join(dir, 'fairway.yaml'), logDestination: new Writable({ write: (_c, _e, done) => done() }), processMetrics: false });
  t.teardown(async () => {
    await router.close(1000);
    await up.close();
  });
  t.ok(router.controlPlane.snapshot?.apps[0]?.domains.includes('one.test'));

  const next = once(router.controlPlane, 'snapshot');
  generation('..2026_11_27_08_01_00.2', yaml('two.test'));
  symlinkSync('..2026_11_27_08_01_00.2', path.join(dir, '..data_tmp'));
  renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  const [snapshot] = (await next) as [Snapshot];
  t.same(snapshot.apps[0]?.domains, ['two.test'], 'the new ConfigMap content is live');
});
