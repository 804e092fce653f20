import t from 'tap';
import { HOST_CACHE_ENTRIES, RouteTable, normalizeHost } from '../src/data/route-table.js';
import { UpstreamRegistry } from '../src/data/upstream-registry.js';
import { RequestStats } from '../src/observability/request-stats.js';
import type { AppSpec, Snapshot } from '../src/model.js';
import { parseConfig } from '../src/config/load-config.js';

const config = parseConfig(`
platformDomain: example.com
apps:
  web:
    domains: [web, www.example.test, "*.preview.example.test"]
    versions:
      v1: { weight: 90, endpoints: ["127.0.0.1:3001", "127.0.0.1:3011"] }
      v2: { weight: 10, endpoints: ["127.0.0.1:3002"] }
  api:
    domains: ["*.example.test", "api.example.test"]
    versions:
      v1: { weight: 1, endpoints: ["127.0.0.1:4001"] }
  blog:
    versions:
      v1: { weight: 1, endpoints: ["127.0.0.1:5001"] }
  empty:
    domains: [empty.test]
    versions:
      v1: { weight: 1 }
      v2: { weight: 0, endpoints: ["127.0.0.1:6001"] }
`, 'routes.yaml');

function table(apps: readonly AppSpec[] = config.apps): { table: RouteTable; registry: UpstreamRegistry } {
  const snapshot: Snapshot = { generation: 1, createdAt: '', settings: config.settings, apps, errors: [], certificates: [] };
  const registry = new UpstreamRegistry();
  return { table: new RouteTable(snapshot, registry, new RequestStats()), registry };
}

t.test('host matching order is exact, then one-label wildcard, then platform subdomain', async (t) => {
  const { table: rt, registry } = table();
  t.teardown(() => registry.close(true));
  const cases: [string, string | undefined][] = [
    ['web.example.com', 'web'], // exact (bare name expanded)
    ['www.example.test', 'web'], // exact beats api's *.example.test
    ['api.example.test', 'api'],
    ['other.example.test', 'api'], // wildcard
    ['a.preview.example.test', 'web'], // the more specific wildcard is its own suffix
    ['a.b.preview.example.test', undefined], // wildcards cover one label only
    ['blog.example.com', 'blog'], // platform subdomain: the app's name
    ['nope.example.com', undefined],
    ['x.blog.example.com', undefined],
    ['example.com', undefined],
    ['preview.example.test', 'api'],
  ];
  for (const [host, app] of cases) t.equal(rt.match(host)?.name, app, host);
});

t.test('host headers are matched without case, port or trailing dot', async (t) => {
  const { table: rt, registry } = table();
  t.teardown(() => registry.close(true));
  t.equal(rt.match('WWW.Example.TEST:8080')?.name, 'web');
  t.equal(rt.match('www.example.test.')?.name, 'web');
  t.equal(normalizeHost('[::1]:8080'), '[::1]');
  t.equal(normalizeHost('Host.Example:80'), 'host.example');
});

t.test('a million distinct Host headers keep the resolved-host cache at its bound, and answers stay right', async (t) => {
  const { table: rt, registry } = table();
  t.teardown(() => registry.close(true));
  t.equal(rt.match('WWW.example.test:8080')?.name, 'web');
  for (let i = 0; i < 1_000_000; i++) rt.match(`h${i}.nowhere.test`);
  t.equal(rt.cachedHosts, HOST_CACHE_ENTRIES, 'the cache stops growing at its bound');
  // Answers after eviction: resolved again, same results, misses included.
  t.equal(rt.match('WWW.example.test:8080')?.name, 'web');
  t.equal(rt.match('other.example.test')?.name, 'api');
  t.equal(rt.match('blog.example.com')?.name, 'blog');
  t.equal(rt.match('h5.nowhere.test'), undefined);
  t.equal(rt.match('h999999.nowhere.test'), undefined, 'a cached miss');
  // A Host value longer than any DNS name is answered but never held.
  const before = rt.cachedHosts;
  const huge = `${'a'.repeat(5000)}.example.test`;
  t.equal(rt.match(huge)?.name, 'api');
  t.equal(rt.cachedHosts, before);
});

t.test('versions without endpoints give their share away; weight 0 is never picked', async (t) => {
  const { table: rt, registry } = table();
  t.teardown(() => registry.close(true));
  const empty = rt.app('empty')!;
  t.equal(empty.pickVersion(), undefined, 'v1 has no endpoints, v2 has weight 0: nothing to pick');
  const web = rt.app('web')!;
  const seen: Record<string, number> = {};
  for (let i = 0; i < 100; i++) { const v = web.pickVersion()!.name; seen[v] = (seen[v] ?? 0) + 1; }
  t.ok(seen.v1! > 0 && seen.v2! > 0);
});

t.test('endpoints of a version are used in rotation when idle, and least-outstanding first when busy', async (t) => {
  const { table: rt, registry } = table();
  t.teardown(() => registry.close(true));
  const v1 = rt.app('web')!.versions[0]!;
  const picks = [v1.pickUpstream()!.key, v1.pickUpstream()!.key, v1.pickUpstream()!.key, v1.pickUpstream()!.key];
  t.same(new Set(picks), new Set(['127.0.0.1:3001', '127.0.0.1:3011']));
  t.not(picks[0], picks[1]);
  v1.upstreams[0]!.outstanding = 5;
  for (let i = 0; i < 4; i++) t.equal(v1.pickUpstream()!.key, v1.upstreams[1]!.key);
  t.equal(v1.pickUpstream([v1.upstreams[1]!])!.key, v1.upstreams[0]!.key, 'tried endpoints are skipped');
  t.equal(v1.pickUpstream([...v1.upstreams]), undefined);
  v1.upstreams[0]!.outstanding = 0;
});

t.test('tables share pools for the same endpoint and the registry retires the rest', async (t) => {
  const first = table();
  t.teardown(() => first.registry.close(true));
  t.equal(first.registry.size, 6);
  const second = new RouteTable({ ...first.table.snapshot!, generation: 2, apps: config.apps.filter((a) => a.name === 'web') }, first.registry, new RequestStats());
  const shared = [...second.upstreams].every((u) => first.table.upstreams.has(u));
  t.ok(shared, 'same Upstream objects, so warm connections survive a swap');
  first.registry.retainOnly(second.upstreams);
  t.equal(first.registry.size, 3);
});
