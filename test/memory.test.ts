import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ConfigError, parseConfig } from '../src/config/load-config.js';
import { loadConfigOffHeap, parseConfigOffHeap } from '../src/config/load-config-off-heap.js';
import { DataPlane } from '../src/data/data-plane.js';
import type { AppSpec, Snapshot } from '../src/model.js';
import { createLogger } from '../src/observability/logger.js';
import { RequestStats } from '../src/observability/request-stats.js';
import { AcmeChallenges } from '../src/tls/acme-challenges.js';
import { CertificateStore } from '../src/tls/certificate-store.js';

// Heap figures after full collections: deterministic enough for generous bounds.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const base = parseConfig(`
apps:
  template:
    domains: [template.bench.test]
    versions:
      v1: { weight: 1, endpoints: ["127.0.0.1:18080"] }
  other:
    domains: [other.bench.test]
    versions:
      v1: { weight: 1, endpoints: ["127.0.0.1:18081"] }
`, '/x/memory.yaml');

/** `n` apps of one host and one version, as the file provider makes them (parts shared), in a snapshot. */
function snapshotOf(n: number): Snapshot {
  const template = base.apps.find((a) => a.name === 'template')!;
  const apps: AppSpec[] = Array.from({ length: n }, (_, i) => ({
    ...template,
    name: `app-${i}`,
    domains: [`app-${i}.bench.test`],
    versions: [{ name: 'v1', weight: 1, endpoints: [{ host: '127.0.0.1', port: 18080 + (i % 100) }] }],
  }));
  return { generation: 1, createdAt: '', settings: base.settings, apps, errors: [], certificates: [] };
}

/** What a data-plane worker retains after applying a copy of `snapshot` (deserialised, as over IPC), in bytes. */
async function workerRetains(snapshot: Snapshot): Promise<number> {
  const wire = v8.serialize(snapshot);
  const dataPlane = new DataPlane({
    stats: new RequestStats(), logger: createLogger({ level: 'error' }), maxHeaderSize: 16384,
    certificates: new CertificateStore(Buffer.alloc(48)), challenges: new AcmeChallenges(), keepSnapshots: false,
  });
  const before = heapUsed();
  dataPlane.apply(v8.deserialize(wire) as Snapshot);
  const after = heapUsed();
  await dataPlane.close(0);
  return after - before;
}

// Measured 1.7 KB per app; before the worker dropped its snapshot copy and made its per-app state small or lazy, 3.7 KB.
t.test('a data-plane worker retains under 2.5 KB per app of 10,000 one-host apps', async (t) => {
  const one = await workerRetains(snapshotOf(1));
  const many = await workerRetains(snapshotOf(10_000));
  const perApp = (many - one) / 9_999;
  t.comment(`retained per app: ${perApp.toFixed(0)} bytes`);
  t.ok(perApp > 200, 'the measurement sees the table (a per-app figure this low means it measured nothing)');
  t.ok(perApp < 2560, `per app ${perApp.toFixed(0)} bytes < 2560`);
});

t.test('apps configured the same way share one tls, policy and versionPick object; an app that differs has its own', async (t) => {
  const c = parseConfig(`
apps:
  a: { domains: [a.test], versions: { v1: { weight: 1, endpoints: ["127.0.0.1:1"] } } }
  b: { domains: [b.test], versions: { v1: { weight: 1, endpoints: ["127.0.0.1:2"] } } }
  c: { domains: [c.test], maintenance: true, sticky: true, versions: { v1: { weight: 1, endpoints: ["127.0.0.1:3"] } } }
`, '/x/share.yaml');
  const [a, b, c3] = c.apps as [AppSpec, AppSpec, AppSpec];
  t.equal(a.tls, b.tls);
  t.equal(a.policy, b.policy);
  t.equal(a.versionPick, b.versionPick);
  t.not(a.policy, c3.policy);
  t.equal(c3.policy.maintenance, true);
  t.not(a.versionPick, c3.versionPick);
  t.equal(c3.versionPick?.sticky, true);
  t.equal(a.tls, c3.tls, 'same TLS settings: shared');
});

t.test('a config parsed in a thread is the one parsed in process, and a bad one fails with the same ConfigError', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-memory-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'fairway.yaml');
  const text = 'apps:\n  web:\n    domains: [web.test, www.web.test]\n    versions:\n      v1: { weight: 90, endpoints: ["127.0.0.1:3001"] }\n      v2: { weight: 10, endpoints: ["127.0.0.1:3002"] }\n';
  writeFileSync(file, text);
  const inProcess = parseConfig(text, file);
  t.same(await loadConfigOffHeap(file, 0), inProcess, 'loadConfigOffHeap');
  t.same(await parseConfigOffHeap(text, file, 0), inProcess, 'parseConfigOffHeap');

  const bad = 'apps:\n  web:\n    domains: [web.test]\n    versions:\n      v1: { weight: -1 }\n';
  let expected: unknown;
  try {
    parseConfig(bad, file);
  } catch (err) {
    expected = err;
  }
  t.ok(expected instanceof ConfigError);
  const got = await parseConfigOffHeap(bad, file, 0).catch((err: unknown) => err);
  t.ok(got instanceof ConfigError, 'a ConfigError, not a generic Error');
  t.equal((got as ConfigError).code, (expected as ConfigError).code);
  t.equal((got as ConfigError).message, (expected as ConfigError).message);
  t.same((got as ConfigError).problems, (expected as ConfigError).problems);
  const missing = await loadConfigOffHeap(path.join(dir, 'absent.yaml'), 0).catch((err: unknown) => err);
  t.equal((missing as ConfigError).code, 'FW_CONFIG_READ', 'a missing file: FW_CONFIG_READ');
});
