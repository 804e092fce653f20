/**
 * @module
 * The install manifests in `config/kubernetes/`, applied as an operator would: the real
 * `kubectl apply -k` (and `-f` file by file) against the test API server. The objects
 * exist as the README describes them; the Deployment, its ConfigMap and the Service agree
 * with each other (ports, probes, labels, the config path, writable paths); the embedded
 * `fairway.yaml` passes `fairway validate` and the Deployment's args are flags `serve`
 * has. With RBAC enforced, the `fairway` ServiceAccount's token lets a real
 * `@kubernetes/client-node` client do exactly what the router needs and nothing more, and
 * a router run with that token never gets a 403.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { parseDuration } from '../src/config/units.js';
import { startKubeApiServer, type KubeApiServer, type KubeApiServerOptions, type KubeObject } from './helpers/kube-api-server.js';
import { runCli } from './helpers/router-process.js';
import { startTestRouter } from './helpers/test-router.js';

const execFileAsync = promisify(execFile);
const MANIFESTS = fileURLToPath(new URL('../config/kubernetes/', import.meta.url));
const FILES = ['namespace.yaml', 'rbac.yaml', 'configmap.yaml', 'deployment.yaml', 'service.yaml', 'pdb.yaml'];
const SA_USER = 'system:serviceaccount:deis:fairway';
const SA_TOKEN = 'fairway-sa-token';

async function cluster(t: Test, options: KubeApiServerOptions = {}): Promise<{ api: KubeApiServer; dir: string; kubectl: (...args: string[]) => Promise<string> }> {
  const api = await startKubeApiServer(options);
  const dir = await mkdtemp(join(tmpdir(), 'fairway-manifests-'));
  t.teardown(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  const kubeconfig = join(dir, 'admin');
  await api.writeKubeconfig(kubeconfig);
  const kubectl = async (...args: string[]) => {
    try {
      return (await execFileAsync('kubectl', ['--kubeconfig', kubeconfig, ...args], { env: { ...process.env, HOME: dir, KUBECONFIG: '' }, timeout: 30_000 })).stdout;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('kubectl is not installed: apt-get install -y kubernetes-client');
      throw err;
    }
  };
  return { api, dir, kubectl };
}

/** Every object of a manifest file, parsed. */
async function manifest(file: string): Promise<KubeObject[]> {
  return parseAllDocuments(await readFile(join(MANIFESTS, file), 'utf8')).map((d) => d.toJS() as KubeObject);
}

/** The router-wide config embedded in the ConfigMap. */
async function embeddedConfig(): Promise<string> {
  const [configMap] = await manifest('configmap.yaml');
  return (configMap!.data as Record<string, string>)['fairway.yaml']!;
}

const portOf = (address: string) => Number(/:(\d+)$/.exec(address)![1]);

interface Container {
  name: string;
  image: string;
  args: string[];
  env: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  ports: Array<{ name: string; containerPort: number }>;
  livenessProbe: { httpGet: { path: string; port: string | number } };
  readinessProbe: { httpGet: { path: string; port: string | number } };
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}

t.test('kubectl apply -k config/kubernetes creates every object of every file; the kustomization lists every manifest; applying again changes nothing', async (t) => {
  const kustomization = parse(await readFile(join(MANIFESTS, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  t.same(kustomization.resources, FILES, 'the kustomization applies every manifest');
  t.same((await readdir(MANIFESTS)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort(), [...FILES].sort(), 'and there is no other manifest');

  const { api, kubectl } = await cluster(t);
  const out = await kubectl('apply', '-k', MANIFESTS);
  const expected = [
    'namespace/deis',
    'serviceaccount/fairway',
    'role.rbac.authorization.k8s.io/fairway',
    'clusterrole.rbac.authorization.k8s.io/fairway',
    'rolebinding.rbac.authorization.k8s.io/fairway',
    'clusterrolebinding.rbac.authorization.k8s.io/fairway',
    'configmap/fairway',
    'service/deis-router',
    'deployment.apps/fairway',
    'poddisruptionbudget.policy/fairway',
  ];
  t.same(out.trim().split('\n'), expected.map((o) => `${o} created`));
  const all = (await Promise.all(FILES.map(manifest))).flat();
  t.equal(all.length, expected.length, 'one object per line');
  for (const o of all) t.ok(api.get(o.kind!, o.metadata?.namespace, o.metadata!.name!), `${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name} exists`);

  const again = await kubectl('apply', '-k', MANIFESTS);
  // kubectl always sends a PodDisruptionBudget's selector (its patch strategy is "replace"), so it says "configured" even against kube-apiserver.
  t.same(again.trim().split('\n'), expected.map((o) => `${o} ${o.startsWith('poddisruptionbudget') ? 'configured' : 'unchanged'}`));
  t.equal(api.get('PodDisruptionBudget', 'deis', 'fairway')!.metadata!.generation, 1, 'the PodDisruptionBudget did not change either');
});

t.test('kubectl apply -f file by file gives the objects the README describes: 2 replicas, probes on /healthz and /readyz, ports, a grace period covering the shutdown delay and drain, limits, a non-root read-only pod, a LoadBalancer deis-router, minAvailable 1', async (t) => {
  const { api, kubectl } = await cluster(t);
  for (const file of FILES) await kubectl('apply', '-f', join(MANIFESTS, file));

  t.equal(api.get('Namespace', undefined, 'deis')!.status && (api.get('Namespace', undefined, 'deis')!.status as { phase: string }).phase, 'Active');
  const deployment = api.get('Deployment', 'deis', 'fairway')!;
  const spec = deployment.spec as {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: Record<string, any> };
  };
  const pod = spec.template.spec;
  t.equal(spec.replicas, 2);
  t.equal(pod.serviceAccountName, 'fairway');
  t.equal(pod.terminationGracePeriodSeconds, 40);
  t.match(pod.securityContext, { runAsNonRoot: true, runAsUser: 1000 });
  t.match(pod.affinity, {
    podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: spec.selector.matchLabels } } }] },
  });
  t.equal(pod.containers.length, 1);
  const c = pod.containers[0] as Container;
  t.equal(c.image, 'ghcr.io/fairway-router/fairway:0.1.0');
  t.same(c.args, ['serve', '--kubernetes', '--config', '/etc/fairway/fairway.yaml']);
  t.same(c.env.find((e) => e.name === 'POD_NAMESPACE'), { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }, 'the namespace from the downward API');
  t.same(c.env.find((e) => e.name === 'POD_IP'), { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }, 'the pod IP: where the other replicas reach its admin API');
  const ports = Object.fromEntries(c.ports.map((p) => [p.name, p.containerPort]));
  t.same(ports, { http: 8080, https: 8443, builder: 2222, admin: 9090 });
  const probePort = (p: string | number) => (typeof p === 'number' ? p : ports[p]);
  t.equal(c.livenessProbe.httpGet.path, '/healthz');
  t.equal(probePort(c.livenessProbe.httpGet.port), 9090);
  t.equal(c.readinessProbe.httpGet.path, '/readyz');
  t.equal(probePort(c.readinessProbe.httpGet.port), 9090);
  t.equal(c.lifecycle?.preStop, undefined, 'no preStop sleep: the router keeps accepting for shutdown.delay itself');
  t.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'requests and a memory limit');
  t.match(c.securityContext, { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => spec.template.metadata.labels[k] === v);

  // The config the pod reads is the ConfigMap, at the path the args name.
  const configMount = c.volumeMounts.find((m) => m.mountPath === '/etc/fairway')!;
  t.ok(configMount?.readOnly, 'the config is mounted read-only at /etc/fairway');
  const configVolume = (pod.volumes as Array<{ name: string; configMap?: { name: string } }>).find((v) => v.name === configMount.name)!;
  const configMap = api.get('ConfigMap', 'deis', configVolume.configMap!.name)!;
  const config = parse((configMap.data as Record<string, string>)['fairway.yaml']!) as {
    listen: Record<string, string>; platformDomain: string; stateFile: string; tls: { storage: string }; shutdown: { delay: string; drainTimeout: string };
  };

  // The config listens where the Deployment's ports and probes point.
  t.equal(portOf(config.listen.http!), ports.http);
  t.equal(portOf(config.listen.https!), ports.https);
  t.equal(portOf(config.listen.admin!), ports.admin);
  t.match(config.listen.admin, /^0\.0\.0\.0:/, 'the admin listener is reachable by the kubelet');
  // SIGTERM comes at once (no preStop): the router accepts for the delay while the pod leaves the Service's endpoints, then drains.
  const delay = parseDuration(config.shutdown.delay)!;
  const drainTimeout = parseDuration(config.shutdown.drainTimeout)!;
  t.ok(delay >= 5000, `shutdown.delay (${delay} ms) gives kube-proxy and load balancers 5 s or more to stop sending`);
  t.ok(pod.terminationGracePeriodSeconds * 1000 >= delay + drainTimeout + 5000, `terminationGracePeriodSeconds covers shutdown.delay + drainTimeout + 5 s for the rest to stop (${delay} + ${drainTimeout} ms)`);
  t.ok(config.platformDomain, 'platformDomain is set');
  // The root filesystem is read-only: what Fairway writes must be on an emptyDir.
  const writable = c.volumeMounts.filter((m) => (pod.volumes as Array<{ name: string; emptyDir?: unknown }>).some((v) => v.name === m.name && v.emptyDir)).map((m) => m.mountPath);
  for (const path of [config.stateFile, config.tls.storage]) t.ok(writable.some((w) => path.startsWith(`${w}/`)), `${path} is on a writable emptyDir (${writable.join(', ')})`);

  const service = api.get('Service', 'deis', 'deis-router')!;
  const svc = service.spec as { type: string; selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: string | number }> };
  t.equal(svc.type, 'LoadBalancer');
  t.ok(selects(svc.selector), "the Service selects the Deployment's pods");
  t.same(svc.ports.map((p) => [p.port, probePort(p.targetPort)]), [[80, 8080], [443, 8443], [2222, 2222]], '80→8080, 443→8443, 2222→2222, and not the admin port');

  const pdb = api.get('PodDisruptionBudget', 'deis', 'fairway')!.spec as { minAvailable: number; selector: { matchLabels: Record<string, string> } };
  t.equal(pdb.minAvailable, 1);
  t.ok(selects(pdb.selector.matchLabels), "the PodDisruptionBudget covers the Deployment's pods");
});

t.test("the ConfigMap's fairway.yaml passes fairway validate, and the Deployment's args are options fairway serve has", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fairway-manifests-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'fairway.yaml');
  await writeFile(file, await embeddedConfig());
  const res = await runCli(['validate', file]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /: ok \(/);
  // The commented tls.acme block is valid once uncommented.
  const withAcme = (await embeddedConfig()).replace(/^(\s*)# (acme:.*)$/m, '$1$2').replace(/^(\s*)#   (\w+: .*)$/gm, '$1  $2');
  t.match(withAcme, /\n {2}acme:\n {4}directory: https:\/\/\S+\n {4}email: \S+\n {4}challenge: http-01\n/);
  await writeFile(file, withAcme);
  const acme = await runCli(['validate', file]);
  t.equal(acme.code, 0, acme.stderr);

  const [deployment] = await manifest('deployment.yaml');
  const args = ((deployment!.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!.args);
  t.equal(args[0], 'serve');
  const help = await runCli(['serve', '--help']);
  for (const flag of args.filter((a) => a.startsWith('--'))) t.match(help.stdout, new RegExp(`\\s${flag}\\b`), `fairway serve has ${flag}`);
});

t.test('with RBAC enforced, the fairway ServiceAccount can do exactly what the router needs (watch Services, EndpointSlices and Secrets everywhere, patch Services, write Events, Leases and Secrets in deis) and is refused the rest', async (t) => {
  const { api, kubectl } = await cluster(t, { tokens: { [SA_TOKEN]: SA_USER }, enforceRbac: true });
  for (const file of FILES) await kubectl('apply', '-f', join(MANIFESTS, file));
  api.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'web', labels: { 'router.deis.io/routable': 'true' } }, spec: { ports: [{ port: 80 }] } });
  api.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'www-example-com-cert', namespace: 'web' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': 'x', 'tls.key': 'y' } });
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-x1', namespace: 'web', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.1.0.1'], conditions: { ready: true } }],
    ports: [{ name: 'http', port: 5000 }],
  });

  const kc = api.kubeConfig({ token: SA_TOKEN, namespace: 'deis' });
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
  const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
  const refused = async (what: string, call: () => Promise<unknown>, message: RegExp) => {
    try {
      await call();
      t.fail(`${what}: should be refused`);
    } catch (err) {
      const body = (err as { body?: unknown }).body;
      const status = (typeof body === 'string' ? JSON.parse(body) : body) as { code?: number; message?: string };
      t.equal(status.code, 403, `${what}: 403 Forbidden`);
      t.match(status.message, message, what);
    }
  };

  // Informers across all namespaces, as the provider builds them.
  const informers = [
    k8s.makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces({ labelSelector: 'router.deis.io/routable=true' }), 'router.deis.io/routable=true'),
    k8s.makeInformer(kc, '/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: 'kubernetes.io/service-name' }), 'kubernetes.io/service-name'),
    k8s.makeInformer(kc, '/api/v1/secrets', () => core.listSecretForAllNamespaces()),
  ] as k8s.Informer<k8s.KubernetesObject>[];
  const errors: unknown[] = [];
  for (const informer of informers) {
    informer.on('error', (err) => errors.push(err));
    t.teardown(() => informer.stop());
  }
  const watching = Promise.all(['services', 'endpointslices', 'secrets'].map((resource) => api.waitForWatch((w) => w.resource === resource && w.namespace === undefined)));
  await Promise.all(informers.map((i) => i.start()));
  await watching;
  t.same(errors, [], 'list and watch Services, EndpointSlices and Secrets in all namespaces');
  t.same(informers.map((i) => (i as unknown as k8s.ListWatch<k8s.KubernetesObject>).list().map((o) => o.metadata?.name)), [['web'], ['web-x1'], ['www-example-com-cert']]);

  // Weights: a merge patch of the Service's annotation (what `fairway weights` sends).
  const patched = await core.patchNamespacedService(
    { namespace: 'web', name: 'web', body: { metadata: { annotations: { 'router.deis.io/weight': '50' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  t.equal(patched.metadata?.annotations?.['router.deis.io/weight'], '50', 'patch a Service in any namespace');

  // Problems as Events on the app's Service, in the app's namespace.
  const event = await core.createNamespacedEvent({
    namespace: 'web',
    body: { metadata: { name: 'web.fairway-1' }, involvedObject: { kind: 'Service', apiVersion: 'v1', namespace: 'web', name: 'web' }, reason: 'HostConflict', message: 'm', type: 'Warning', count: 1 },
  });
  t.equal(event.metadata?.namespace, 'web', 'create an Event');
  await core.patchNamespacedEvent({ namespace: 'web', name: 'web.fairway-1', body: { count: 2 } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
  t.pass('patch an Event');

  // The ACME lock and storage in the router's namespace.
  const lease = await coordination.createNamespacedLease({
    namespace: 'deis',
    body: { metadata: { name: 'fairway-acme' }, spec: { holderIdentity: 'fairway-0', leaseDurationSeconds: 15, acquireTime: new k8s.V1MicroTime(), renewTime: new k8s.V1MicroTime() } },
  });
  const renewed = await coordination.replaceNamespacedLease({ namespace: 'deis', name: 'fairway-acme', body: { ...lease, spec: { ...lease.spec, renewTime: new k8s.V1MicroTime(Date.now() + 1000) } } });
  t.not(renewed.metadata?.resourceVersion, lease.metadata?.resourceVersion, 'create, update a Lease in deis');
  t.equal((await coordination.readNamespacedLease({ namespace: 'deis', name: 'fairway-acme' })).spec?.holderIdentity, 'fairway-0', 'get it');
  t.same((await coordination.listNamespacedLease({ namespace: 'deis', labelSelector: 'fairway.io/replica=true' })).items, [], 'list Leases in deis (to find the other replicas)');
  await coordination.deleteNamespacedLease({ namespace: 'deis', name: 'fairway-acme' });
  t.pass('delete it');
  await core.createNamespacedSecret({ namespace: 'deis', body: { metadata: { name: 'fairway-acme-account' }, stringData: { key: 'k' } } });
  await core.patchNamespacedSecret({ namespace: 'deis', name: 'fairway-acme-account', body: [{ op: 'add', path: '/data', value: { key: 'azM=' } }] }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch));
  t.equal((await core.listNamespacedSecret({ namespace: 'deis' })).items.length, 1, 'create, patch, list Secrets in deis');
  await core.deleteNamespacedSecret({ namespace: 'deis', name: 'fairway-acme-account' });
  t.pass('delete one');

  // Least privilege: what the router never does is refused.
  await refused('delete a Service', () => core.deleteNamespacedService({ namespace: 'web', name: 'web' }), /services "web" is forbidden: User "system:serviceaccount:deis:fairway" cannot delete resource "services" in API group "" in the namespace "web"/);
  await refused('replace a Service (only patch is granted)', () => core.replaceNamespacedService({ namespace: 'web', name: 'web', body: patched }), /cannot update resource "services"/);
  await refused('create a Service', () => core.createNamespacedService({ namespace: 'web', body: { metadata: { name: 'evil' } } }), /cannot create resource "services"/);
  await refused('write a Secret in another namespace', () => core.createNamespacedSecret({ namespace: 'web', body: { metadata: { name: 'evil' } } }), /cannot create resource "secrets" in API group "" in the namespace "web"/);
  await refused('delete a Secret in another namespace', () => core.deleteNamespacedSecret({ namespace: 'web', name: 'www-example-com-cert' }), /cannot delete resource "secrets"/);
  await refused('patch a Secret in another namespace', () => core.patchNamespacedSecret({ namespace: 'web', name: 'www-example-com-cert', body: {} }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)), /cannot patch resource "secrets" in API group "" in the namespace "web"/);
  await refused('take a Lease in another namespace', () => coordination.createNamespacedLease({ namespace: 'kube-system', body: { metadata: { name: 'evil' }, spec: {} } }), /cannot create resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system"/);
  await refused('patch a Service status', () => core.patchNamespacedServiceStatus({ namespace: 'web', name: 'web', body: { status: {} } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)), /cannot patch resource "services\/status"/);
  await refused('read ConfigMaps', () => core.listConfigMapForAllNamespaces(), /cannot list resource "configmaps"/);
  await refused('change its own Deployment', () => kc.makeApiClient(k8s.AppsV1Api).deleteNamespacedDeployment({ namespace: 'deis', name: 'fairway' }), /cannot delete resource "deployments" in API group "apps"/);
  await refused('change RBAC', () => kc.makeApiClient(k8s.RbacAuthorizationV1Api).deleteClusterRole({ name: 'fairway' }), /cannot delete resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope/);
  t.ok(api.requests.filter((r) => r.path.includes('/namespaces/web/')).every((r) => r.user === SA_USER), 'the client acted as the ServiceAccount');
});

t.test('a router run with the ServiceAccount token under enforced RBAC syncs, writes an Event for a host conflict and patches weights, and the API server never refuses it', async (t) => {
  const { api, dir, kubectl } = await cluster(t, { tokens: { [SA_TOKEN]: SA_USER }, enforceRbac: true });
  for (const file of FILES) await kubectl('apply', '-f', join(MANIFESTS, file));
  const svc = (name: string, ns: string, domains: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: { 'router.deis.io/routable': 'true' }, annotations: { 'router.deis.io/domains': domains } },
    spec: { ports: [{ name: 'http', port: 80 }] },
  });
  api.apply(svc('web', 'web', 'www.example.org'));
  api.apply(svc('shop', 'zz-shop', 'www.example.org,shop'));
  const kubeconfig = join(dir, 'sa');
  await api.writeKubeconfig(kubeconfig, { token: SA_TOKEN, namespace: 'deis' });
  const r = await startTestRouter('platformDomain: example.com\napps: {}\n', { kubernetes: { kubeconfig, namespace: 'deis', backoff: { min: 50, max: 500 }, watchdogMs: 1500 } });
  t.teardown(() => r.close());

  const deadline = Date.now() + 10_000;
  while ((await r.adminGet('/readyz')).status !== 200 || api.list('Event', 'zz-shop').length === 0) {
    if (Date.now() > deadline) throw new Error(`not ready or no Event; requests: ${JSON.stringify(api.requests.filter((q) => q.status === 403))}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  t.match(api.list('Event', 'zz-shop')[0], { involvedObject: { kind: 'Service', name: 'shop' }, type: 'Warning' }, 'the host conflict is an Event on the losing Service');
  // It takes the cutover Lease and announces itself in a replica Lease, in deis.
  while (!r.router.cutovers.leading) await once(r.router.cutovers, 'role');
  t.match(api.list('Lease', 'deis').map((l) => l.metadata?.name).sort(), ['fairway-cutovers', /^fairway-replica-/]);
  const put = await r.adminPut('/v1/apps/web/weights', { web: 30 });
  t.equal(put.status, 200, put.body);
  t.equal(api.get('Service', 'web', 'web')!.metadata!.annotations!['router.deis.io/weight'], '30', 'the weight is patched on the Service');

  const routerRequests = api.requests.filter((q) => q.user === SA_USER);
  t.ok(routerRequests.length > 0, 'the router talked to the API as the ServiceAccount');
  t.same(routerRequests.filter((q) => q.status === 403 || q.status === 401).map((q) => `${q.method} ${q.path}`), [], 'and was never refused');
});

t.test("the router's ACME storage (Secrets and Lease locks) works with the ServiceAccount token under enforced RBAC in deis, and is refused in another namespace", async (t) => {
  const { api, kubectl } = await cluster(t, { tokens: { [SA_TOKEN]: SA_USER }, enforceRbac: true });
  for (const file of FILES) await kubectl('apply', '-f', join(MANIFESTS, file));
  const { SecretStorage } = await import('../src/tls/secret-storage.js');
  const kubeConfig = api.kubeConfig({ token: SA_TOKEN, namespace: 'deis' });
  const storage = new SecretStorage({ kubeConfig, namespace: 'deis' });
  const lock = await storage.lock('web.example.com');
  await storage.put('acme/account.json', '{"a":1}');
  await storage.put('acme/account.json', '{"a":2}');
  t.equal((await storage.get('acme/account.json')).toString(), '{"a":2}', 'create, then overwrite (a JSON patch), then read');
  t.same(await storage.list('acme'), ['acme/account.json']);
  await storage.delete('acme/account.json');
  await lock.release();
  t.same(api.list('Secret', 'deis').filter((s) => s.metadata?.labels?.['fairway.io/storage']), [], 'deleted');
  t.same(api.list('Lease', 'deis'), [], 'the lock released');
  t.same(api.requests.filter((r) => r.user === SA_USER && r.status === 403).map((r) => `${r.method} ${r.path}`), [], 'never refused in deis');

  const elsewhere = new SecretStorage({ kubeConfig, namespace: 'web' });
  await t.rejects(elsewhere.put('acme/account.json', 'x'), { code: 'FW_STORAGE_IO', message: /secrets is forbidden: User "system:serviceaccount:deis:fairway" cannot create resource "secrets" in API group "" in the namespace "web"/ });
  await t.rejects(elsewhere.lock('web.example.com', { timeoutMs: 1000 }), { code: 'FW_STORAGE_IO', message: /cannot create resource "leases"/ });
});
