/**
 * @module
 * `fairway doctor` as an operator runs it (the built CLI, a child process) against the test
 * API server with RBAC enforced and a real router: the RBAC check passes with the install
 * manifests' RBAC and names what is missing without it, an unreachable API server fails
 * the run (exit 1), a running router's apps without endpoints, hosts without or with
 * expiring certificates and host conflicts are warnings (exit 0), and `--json` has a
 * stable shape.
 */
import t, { type Test } from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from './helpers/kube-api-server.js';
import { runCli, type CliResult } from './helpers/router-process.js';
import { startTestRouter, type TestRouter } from './helpers/test-router.js';
import { generateSelfSigned } from '../src/tls/self-signed.js';
import { REQUIRED_PERMISSIONS } from '../src/cli/doctor.js';

const MANIFESTS = fileURLToPath(new URL('../config/kubernetes/', import.meta.url));
const SA_USER = 'system:serviceaccount:deis:fairway';
const SA_TOKEN = 'fwtest-secret-sa-token';

interface Report {
  ok: boolean;
  summary: { ok: number; warn: number; fail: number };
  checks: Array<{ name: string; status: 'ok' | 'warn' | 'fail'; detail: string; items?: string[] }>;
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fairway-doctor-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A test API server enforcing RBAC, with the install manifests' namespace and RBAC objects, and a kubeconfig for the fairway ServiceAccount. */
async function clusterWithManifestRbac(t: Test, dir: string): Promise<{ api: KubeApiServer; kubeconfig: string }> {
  const api = await startKubeApiServer({ tokens: { [SA_TOKEN]: SA_USER }, enforceRbac: true });
  t.teardown(() => api.close());
  for (const file of ['namespace.yaml', 'rbac.yaml']) {
    for (const doc of parseAllDocuments(await readFile(join(MANIFESTS, file), 'utf8'))) api.apply(doc.toJS() as KubeObject);
  }
  const kubeconfig = join(dir, 'kubeconfig');
  await api.writeKubeconfig(kubeconfig, { token: SA_TOKEN, namespace: 'deis' });
  return { api, kubeconfig };
}

/** A config file with no router behind its admin port (port 0: doctor skips the router checks). */
async function configFile(dir: string, yaml = 'listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }\nplatformDomain: example.com\n'): Promise<string> {
  const file = join(dir, `fairway-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, yaml);
  return file;
}

function row(res: CliResult, name: string): string {
  const line = res.stdout.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no ${name} row in:\n${res.stdout}${res.stderr}`);
  return line;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test("with the install manifests' RBAC applied and enforced, the fairway ServiceAccount passes the API and RBAC checks: exit 0, one SelfSubjectAccessReview per permission", async (t) => {
  const dir = await tempDir(t);
  const { api, kubeconfig } = await clusterWithManifestRbac(t, dir);
  const res = await runCli(['doctor', '--kubeconfig', kubeconfig, '--config', await configFile(dir)]);
  t.equal(res.code, 0, res.stdout + res.stderr);
  t.match(res.stdout, /^CHECK\s+STATUS\s+DETAIL\n/, 'an aligned table like fairway routes');
  t.match(row(res, 'kubernetes-api'), new RegExp(`^kubernetes-api\\s+ok\\s+${api.url.replace(/\./g, '\\.')}: Kubernetes v1\\.32\\.0-fairway-test$`));
  t.match(row(res, 'rbac'), /^rbac\s+ok\s+all \d+ permissions Fairway needs are granted \(router namespace deis\)$/);
  t.match(row(res, 'platform-domain'), /^platform-domain\s+ok\s+example\.com/);
  t.match(row(res, 'admin-api'), /^admin-api\s+warn\s+listen\.admin .* has no fixed port/, 'no router to ask: a warning, not a failure');
  t.match(res.stdout, /\n\d+ ok, 1 warning, 0 failed\n$/);
  const reviews = api.requests.filter((r) => r.path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews');
  t.equal(reviews.length, REQUIRED_PERMISSIONS.length);
  t.ok(reviews.every((r) => r.user === SA_USER && r.status === 201), 'asked as the ServiceAccount');
});

t.test("with the ClusterRole's patch rule removed the RBAC check fails naming patch services (exit 1); without the Role, or in another namespace, it names the namespaced permissions", async (t) => {
  const dir = await tempDir(t);
  const { api, kubeconfig } = await clusterWithManifestRbac(t, dir);
  const config = await configFile(dir);
  const role = api.get('ClusterRole', undefined, 'fairway')!;
  const rules = role.rules as Array<{ resources: string[]; verbs: string[] }>;
  api.apply({ ...role, rules: rules.filter((r) => !(r.resources.includes('services') && r.verbs.includes('patch'))) });
  t.equal((api.get('ClusterRole', undefined, 'fairway')!.rules as unknown[]).length, rules.length - 1, 'the patch rule is gone');

  const res = await runCli(['doctor', '--kubeconfig', kubeconfig, '--config', config]);
  t.equal(res.code, 1, 'a failed check: exit 1');
  t.match(row(res, 'rbac'), /^rbac\s+fail\s+missing 1 permission: patch services \(see config\/kubernetes\/rbac\.yaml\)$/);
  t.match(row(res, 'kubernetes-api'), /\sok\s/, 'the other checks still run');
  t.match(res.stdout, /\n\d+ ok, 1 warning, 1 failed\n$/);

  const elsewhere = await runCli(['doctor', '--kubeconfig', kubeconfig, '--config', config, '--json'], { POD_NAMESPACE: 'fairway' });
  const report = JSON.parse(elsewhere.stdout) as Report;
  t.same(report.checks.find((c) => c.name === 'rbac')!.items, [
    'patch services',
    'get leases.coordination.k8s.io in fairway',
    'create leases.coordination.k8s.io in fairway',
    'update leases.coordination.k8s.io in fairway',
    'delete leases.coordination.k8s.io in fairway',
    'list leases.coordination.k8s.io in fairway',
    'create secrets in fairway',
    'patch secrets in fairway',
    'delete secrets in fairway',
  ], 'POD_NAMESPACE is the router namespace; reading Secrets there is granted cluster-wide');
  t.match(report.checks.find((c) => c.name === 'rbac')!.detail, /missing 9 permissions: patch services, get leases\.coordination\.k8s\.io in fairway, .* and 4 more/);

  const flag = await runCli(['doctor', '--kubeconfig', kubeconfig, '--config', config, '--namespace', 'deis', '--json'], { POD_NAMESPACE: 'fairway' });
  t.same((JSON.parse(flag.stdout) as Report).checks.find((c) => c.name === 'rbac')!.items, ['patch services'], '--namespace wins over POD_NAMESPACE');
});

t.test('an unreachable API server fails the API check with exit 1 and skips RBAC; a kubeconfig that cannot be read or a config that does not load is bad usage (exit 2)', async (t) => {
  const dir = await tempDir(t);
  const { api, kubeconfig } = await clusterWithManifestRbac(t, dir);
  await api.stop();
  const res = await runCli(['doctor', '--kubeconfig', kubeconfig, '--config', await configFile(dir)]);
  t.equal(res.code, 1);
  t.match(row(res, 'kubernetes-api'), new RegExp(`^kubernetes-api\\s+fail\\s+${api.url.replace(/\./g, '\\.')}: .*ECONNREFUSED.*; RBAC not checked$`));
  t.notOk(res.stdout.includes('\nrbac '), 'no RBAC row');

  const noKubeconfig = await runCli(['doctor', '--kubeconfig', join(dir, 'missing'), '--config', await configFile(dir)]);
  t.equal(noKubeconfig.code, 2);
  t.match(noKubeconfig.stderr, /^fairway: cannot read kubeconfig .*missing/);
  const bad = await configFile(dir, 'apps:\n  web:\n    versions:\n      v2: { weight: -1 }\n');
  const badConfig = await runCli(['doctor', '--config', bad]);
  t.equal(badConfig.code, 2);
  t.equal(badConfig.stderr, `${bad}:4:21: apps.web.versions.v2.weight: must be a number >= 0\n`, 'the messages fairway validate prints');
  t.equal((await runCli(['doctor', '--help'])).code, 0);
});

t.test('with a running router in Kubernetes mode, an app without endpoints, a host conflict and an invalid annotation are warnings (exit 0); --json has a stable shape', async (t) => {
  const dir = await tempDir(t);
  const api = await startKubeApiServer();
  t.teardown(() => api.close());
  const kubeconfig = join(dir, 'kubeconfig');
  await api.writeKubeconfig(kubeconfig);
  const service = (name: string, ns: string, annotations: Record<string, string>): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: { 'router.deis.io/routable': 'true' }, annotations },
    spec: { ports: [{ name: 'http', port: 80 }] },
  });
  api.apply(service('web', 'web', { 'router.deis.io/domains': 'www.example.org' }));
  const slice = (svc: string, ns: string): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${svc}-x1`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    ports: [{ name: 'http', port: 5000 }],
  });
  api.apply(slice('web', 'web'));
  api.apply(service('empty', 'empty', {}));
  api.apply(service('shop', 'zz-shop', { 'router.deis.io/domains': 'www.example.org,shop', 'router.deis.io/weight': 'heavy' }));
  api.apply(slice('shop', 'zz-shop'));
  const r: TestRouter = await startTestRouter('platformDomain: example.com\napps: {}\n', { dir, kubernetes: { kubeconfig, namespace: 'deis', backoff: { min: 50, max: 500 }, watchdogMs: 1500 } });
  t.teardown(() => r.close());
  const deadline = Date.now() + 10_000;
  while ((await r.adminGet('/v1/apps')).json<{ apps?: unknown[] }>().apps?.length !== 3) {
    if (Date.now() > deadline) throw new Error('the router did not sync the three apps');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  const res = await runCli(['doctor', '--kubeconfig', kubeconfig, '--config', r.configFile, '--admin', r.admin]);
  t.equal(res.code, 0, 'warnings only: exit 0\n' + res.stdout + res.stderr);
  t.match(row(res, 'rbac'), /\sok\s/, 'the admin user may do everything');
  t.match(row(res, 'admin-api'), new RegExp(`^admin-api\\s+ok\\s+${r.admin.replace(/\./g, '\\.')}: 3 apps served$`));
  t.match(row(res, 'endpoints'), /^endpoints\s+warn\s+1 app with no ready endpoint \(their hosts answer 503\): empty$/);
  t.match(row(res, 'host-conflicts'), /^host-conflicts\s+warn\s+1 host conflict \(the older claim keeps the host\): zz-shop\/shop: host "www\.example\.org" is already served by app "web"/);
  t.match(row(res, 'source-problems'), /^source-problems\s+warn\s+1 problem \(defaults used\): zz-shop\/shop router\.deis\.io\/weight: "heavy" must be a number >= 0; using 100$/);
  t.match(row(res, 'certificates'), /^certificates\s+ok\s+no HTTPS listener/);
  t.match(row(res, 'certificate-expiry'), /\sok\s/);

  const json = await runCli(['doctor', '--kubeconfig', kubeconfig, '--config', r.configFile, '--admin', r.admin, '--json']);
  t.equal(json.code, 0);
  const report = JSON.parse(json.stdout) as Report;
  t.same(Object.keys(report), ['ok', 'summary', 'checks']);
  t.equal(report.ok, true);
  t.same(report.checks.map((c) => c.name), ['config', 'platform-domain', 'kubernetes-api', 'rbac', 'admin-api', 'endpoints', 'certificates', 'certificate-expiry', 'host-conflicts', 'source-problems']);
  t.same(report.summary, { ok: 7, warn: 3, fail: 0 });
  for (const c of report.checks) {
    t.ok(['ok', 'warn', 'fail'].includes(c.status) && typeof c.detail === 'string' && !c.detail.includes('\n'), `${c.name}: a status and a one-line detail`);
  }
  t.same(report.checks.find((c) => c.name === 'endpoints')!.items, ['empty']);
  t.match(report.checks.find((c) => c.name === 'host-conflicts')!.items, [/^zz-shop\/shop: host "www\.example\.org"/]);
});

t.test("with HTTPS, hosts without a certificate and certificates expiring within 14 days are warnings; the admin API defaults to the config's listen.admin", async (t) => {
  const dir = await tempDir(t);
  const soon = await generateSelfSigned({ names: ['soon.example.com'], days: 5 });
  const later = await generateSelfSigned({ names: ['later.example.com'], days: 90 });
  for (const [name, b] of [['soon', soon], ['later', later]] as const) {
    await writeFile(join(dir, `${name}.pem`), b.certPem);
    await writeFile(join(dir, `${name}.key`), b.keyPem);
  }
  const admin = await freePort();
  const r = await startTestRouter(
    `listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:${admin} }
platformDomain: example.com
tls:
  certificates:
    - { cert: soon.pem, key: soon.key }
    - { cert: later.pem, key: later.key }
apps:
  web:
    domains: [soon.example.com, later.example.com, bare.example.com]
    versions: { v1: { weight: 1, endpoints: ["127.0.0.1:9"] } }
`,
    { dir },
  );
  t.teardown(() => r.close());
  const res = await runCli(['doctor', '--config', r.configFile], { KUBERNETES_SERVICE_HOST: '' });
  t.equal(res.code, 0, res.stdout + res.stderr);
  t.match(row(res, 'kubernetes-api'), /^kubernetes-api\s+warn\s+not checked: not in a cluster/, 'no kubeconfig and not in a pod: a warning');
  t.match(row(res, 'admin-api'), new RegExp(`^admin-api\\s+ok\\s+http://127\\.0\\.0\\.1:${admin}: 1 app served$`), "found through the config's listen.admin");
  t.match(row(res, 'endpoints'), /\sok\s/);
  t.match(row(res, 'certificates'), /^certificates\s+warn\s+1 host without a certificate \(the default one is served\): bare\.example\.com$/);
  t.match(row(res, 'certificate-expiry'), /^certificate-expiry\s+warn\s+1 certificate expiring within 14 days: soon\.example\.com expires \d{4}-\d\d-\d\d \(in 5 d\)$/);
});

t.test('the permissions doctor checks are exactly what config/kubernetes/rbac.yaml grants: the ClusterRole everywhere, the Role in the router namespace', async (t) => {
  const granted: string[] = [];
  for (const doc of parseAllDocuments(await readFile(join(MANIFESTS, 'rbac.yaml'), 'utf8'))) {
    const o = doc.toJS() as KubeObject & { rules?: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> };
    if (o.kind !== 'ClusterRole' && o.kind !== 'Role') continue;
    const scope = o.kind === 'Role' ? 'router' : 'cluster';
    for (const rule of o.rules ?? []) {
      for (const group of rule.apiGroups) for (const resource of rule.resources) for (const verb of rule.verbs) granted.push(`${scope} ${verb} ${group}/${resource}`);
    }
  }
  t.same(granted.sort(), REQUIRED_PERMISSIONS.map((p) => `${p.scope} ${p.verb} ${p.group}/${p.resource}`).sort());
});
