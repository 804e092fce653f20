import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { runCli, startRouterProcess } from './helpers/router-process.js';
import { refusedAddress, startUpstream } from './helpers/upstreams.js';

const dir = mkdtempSync(path.join(tmpdir(), 'fairway-cli-'));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

t.test('validate: exit 0 and a summary for a good file, exit 2 with file:line:col key-path messages for a bad one', async (t) => {
  const good = await runCli(['validate']);
  t.equal(good.code, 0);
  t.match(good.stdout, /config\/fairway\.yaml: ok \(1 app, 3 domains\)/, 'the embedded default is the default file');

  const bad = file('bad.yaml', 'apps:\n  web:\n    versions:\n      v2: { weight: -1 }\n');
  const res = await runCli(['validate', bad]);
  t.equal(res.code, 2);
  t.equal(res.stderr, `${bad}:4:21: apps.web.versions.v2.weight: must be a number >= 0\n`);

  const missing = await runCli(['validate', path.join(dir, 'nope.yaml')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /nope\.yaml: file not found/);
});

t.test('serve with a bad config exits 2 with the same message validate prints', async (t) => {
  const bad = file('bad-serve.yaml', 'listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }\napps:\n  web:\n    versions:\n      v2: { weight: -1 }\n');
  const res = await runCli(['serve', '--config', bad]);
  t.equal(res.code, 2);
  t.equal(res.stderr, `${bad}:5:21: apps.web.versions.v2.weight: must be a number >= 0\n`);
});

t.test('usage errors exit 2; --help exits 0 on every command', async (t) => {
  t.equal((await runCli(['frobnicate'])).code, 2);
  t.equal((await runCli(['weights'])).code, 2, 'missing app argument');
  t.equal((await runCli(['weights', 'web', 'v1=ninety'])).code, 2, 'malformed version=weight');
  for (const cmd of ['serve', 'demo', 'validate', 'routes', 'weights']) {
    const help = await runCli([cmd, '--help']);
    t.equal(help.code, 0, `${cmd} --help`);
    t.match(help.stdout, /Usage: fairway/);
  }
  t.equal((await runCli(['--help'])).code, 0);
});

t.test('routes and weights talk to a running router; SIGTERM stops it with exit 0', async (t) => {
  const up = await startUpstream('up');
  const config = file('live.yaml', `
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
platformDomain: example.com
log: { access: false }
apps:
  web:
    domains: [web, "*.preview.example.test"]
    versions:
      v1: { weight: 90, endpoints: ["${up.address}", "${up.address.replace('127.0.0.1', 'localhost')}"] }
      v2: { weight: 10, endpoints: ["${up.address}"] }
`);
  const router = await startRouterProcess(config);
  t.teardown(() => up.close());
  const admin = ['--admin', router.admin];

  const routes = await runCli(['routes', ...admin]);
  t.equal(routes.code, 0);
  t.equal(routes.stdout, [
    'HOST                    MATCH     APP  VERSIONS (weight, endpoints)',
    'web.example.com         exact     web  v1=90 (2 endpoints), v2=10 (1 endpoint)',
    '*.preview.example.test  wildcard  web  v1=90 (2 endpoints), v2=10 (1 endpoint)',
    '',
  ].join('\n'));
  const json = JSON.parse((await runCli(['routes', '--json', ...admin])).stdout);
  t.match(json.routes, [{ host: 'web.example.com', match: 'exact', app: 'web' }, { host: '*.preview.example.test', match: 'wildcard' }]);

  t.equal((await runCli(['weights', 'web', ...admin])).stdout, 'web: v1=90 v2=10\n');
  const set = await runCli(['weights', 'web', 'v1=50', 'v2=50', ...admin]);
  t.equal(set.code, 0);
  t.equal(set.stdout, 'web: v1=50 v2=50\n');
  t.equal((await runCli(['weights', 'web', ...admin], {})).stdout, 'web: v1=50 v2=50\n');
  t.equal((await runCli(['weights', 'web', '--json'], { FAIRWAY_ADMIN: router.admin })).stdout, JSON.stringify({ app: 'web', weights: { v1: 50, v2: 50 } }, null, 2) + '\n', 'FAIRWAY_ADMIN sets the admin URL');

  const unknown = await runCli(['weights', 'web', 'v9=1', ...admin]);
  t.equal(unknown.code, 2);
  t.equal(unknown.stderr, 'fairway: app "web" has no version "v9" (versions: v1, v2) [FW_VERSION_NOT_FOUND]\n');

  t.equal(await router.stop(), 0, 'SIGTERM drains and exits 0');

  const down = await runCli(['routes', ...admin]);
  t.equal(down.code, 1, 'an unreachable router is a failure, not a usage error');
  t.match(down.stderr, /cannot reach the admin API .* \[FW_ADMIN_UNREACHABLE\]/);
});

t.test('demo (what npm start runs) starts a backend per loopback endpoint and serves the config through them', async (t) => {
  const [p1, p2] = [await refusedAddress(), await refusedAddress()]; // free ports for the demo backends
  const config = file('demo.yaml', `
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
platformDomain: localtest.me
log: { access: false }
apps:
  web:
    domains: [web]
    versions:
      v1: { weight: 1, endpoints: ["${p1}"] }
      v2: { weight: 1, endpoints: ["${p2}"] }
`);
  const demo = await startRouterProcess(config, 'demo');
  const bodies = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const res = await request(`${demo.http}/hello`, { headers: { host: 'web.localtest.me' } });
    t.equal(res.statusCode, 200);
    bodies.add((await res.body.text()).split('\n')[0]!);
  }
  t.same([...bodies].sort(), [`Hello from web v1 (${p1})`, `Hello from web v2 (${p2})`]);
  t.match(demo.stderr(), /curl -H 'Host: web\.localtest\.me' http:\/\/127\.0\.0\.1:\d+\//, 'it tells the user what to try');
  t.equal(await demo.stop(), 0);
});
