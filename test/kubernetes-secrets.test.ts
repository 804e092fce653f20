/**
 * Kubernetes mode, the Deis contract around Secrets and the builder: certificates named by
 * `router.deis.io/certificates`, the platform certificate Secret, Events for problems, and
 * the default builder route. A test API server driven by the real @kubernetes/client-node.
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Watch } from '@kubernetes/client-node';
import { generateSelfSigned } from '../src/tls/self-signed.js';
import type { Snapshot } from '../src/model.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from './helpers/kube-api-server.js';
import { startTestRouter, type TestRouter, snapshotWhere } from './helpers/test-router.js';
import { hello } from './helpers/tls-client.js';
import { startUpstream } from './helpers/upstreams.js';

const web = await startUpstream('web');
t.teardown(() => web.close());

const certWeb = await generateSelfSigned({ names: ['www.example.com', 'web.example.com'] });
const certWeb2 = await generateSelfSigned({ names: ['www.example.com'] });
const certPlatform = await generateSelfSigned({ names: ['*.example.com'] });

function service(name: string, ns: string, annotations: Record<string, string>): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: { 'router.deis.io/routable': 'true' }, annotations },
    spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

function slice(svc: string, ns: string, port: number, portName = 'http'): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${svc}-x1`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: portName, port, protocol: 'TCP' }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  };
}

function tlsSecret(name: string, ns: string, pair: { certPem: string; keyPem: string }): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(pair.certPem).toString('base64'), 'tls.key': Buffer.from(pair.keyPem).toString('base64') },
  };
}

async function cluster(t: Test): Promise<KubeApiServer> {
  const api = await startKubeApiServer();
  t.teardown(() => api.close());
  for (const ns of ['deis', 'shop']) api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  return api;
}

async function router(t: Test, api: KubeApiServer, extraYaml = ''): Promise<TestRouter> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-k8s-secrets-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  await api.writeKubeconfig(kubeconfig);
  const r = await startTestRouter(`listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:0, builder: 127.0.0.1:0 }\nplatformDomain: example.com\n${extraYaml}apps: {}\n`, {
    dir,
    kubernetes: { kubeconfig, namespace: 'deis', backoff: { min: 50, max: 500 }, watchdogMs: 5000 },
  });
  t.teardown(() => r.close());
  return r;
}

/** The serial the HTTPS listener presents for `servername` once the certificate manager applied the snapshot. */
async function servedSerial(r: TestRouter, servername: string): Promise<string> {
  return (await hello(r.router.httpsAddress!.port, { servername })).cert.serialNumber.toUpperCase();
}

/** Waits for a snapshot that satisfies `test` and for the certificate manager to have applied it. */
async function certificatesWhere(r: TestRouter, test: (s: Snapshot) => boolean, what: string): Promise<void> {
  await snapshotWhere(r, test, what);
  await r.router.certificates.applied();
}

const holds = (pair: { certPem: string }) => (s: Snapshot) => s.certificates.some((c) => c.certPem === pair.certPem);

const problemsOf = async (r: TestRouter) =>
  ((await r.adminGet('/v1/config')).json().providers as { provider: string; problems: { object: string; field: string; message: string }[] }[]).find((p) => p.provider === 'kubernetes')?.problems ?? [];

t.test('router.deis.io/certificates serves the named Secret for that domain; an update is served at once; a broken update keeps the previous certificate', async (t) => {
  const api = await cluster(t);
  api.apply(tlsSecret('web-cert', 'shop', certWeb));
  api.apply(service('web', 'shop', { 'router.deis.io/domains': 'www.example.com,web', 'router.deis.io/certificates': 'www.example.com:web' }));
  api.apply(slice('web', 'shop', web.port));
  const r = await router(t, api);
  await certificatesWhere(r, holds(certWeb), 'the Secret certificate');
  t.equal(await servedSerial(r, 'www.example.com'), certWeb.serialNumber.toUpperCase(), 'www.example.com gets the Secret web-cert');
  t.not(await servedSerial(r, 'web.example.com'), certWeb.serialNumber.toUpperCase(), 'a name the annotation does not map gets no certificate from it');
  const rows = (await r.adminGet('/v1/certificates')).json().certificates as { host: string; source: string; origin: string }[];
  t.match(rows.find((x) => x.host === 'www.example.com'), { source: 'secret', origin: 'secret shop/web-cert' });

  api.apply(tlsSecret('web-cert', 'shop', certWeb2));
  await certificatesWhere(r, holds(certWeb2), 'the updated Secret');
  t.equal(await servedSerial(r, 'www.example.com'), certWeb2.serialNumber.toUpperCase(), 'a Secret update is served without a restart');

  api.apply({ ...tlsSecret('web-cert', 'shop', certWeb2), data: { 'tls.crt': Buffer.from('garbage').toString('base64'), 'tls.key': Buffer.from(certWeb2.keyPem).toString('base64') } });
  await certificatesWhere(r, (s) => s.certificates.some((c) => c.certPem === 'garbage'), 'the broken Secret');
  t.equal(await servedSerial(r, 'www.example.com'), certWeb2.serialNumber.toUpperCase(), 'the previous certificate stays in use');
  const row = ((await r.adminGet('/v1/certificates')).json().certificates as { host: string; lastError?: { code: string; message: string } }[]).find((x) => x.host === 'www.example.com');
  t.equal(row?.lastError?.code, 'FW_TLS_CERT_INVALID');
  t.match(row?.lastError?.message, /secret shop\/web-cert/);
  t.equal((await r.get('www.example.com')).status, 200, 'the app keeps serving');
});

t.test('a missing Secret, a domain the app does not serve, and a malformed pair are reported on the Service as problems and Events', async (t) => {
  const api = await cluster(t);
  api.apply(service('web', 'shop', { 'router.deis.io/domains': 'www.example.com', 'router.deis.io/certificates': 'www.example.com:nope,other.example.com:web,garbage' }));
  api.apply(slice('web', 'shop', web.port));
  const r = await router(t, api);
  await snapshotWhere(r, (s) => s.apps.some((a) => a.name === 'web'), 'the app');
  const problems = await problemsOf(r);
  t.ok(problems.every((p) => p.object === 'shop/web' && p.field === 'router.deis.io/certificates'), 'each problem names the Service and the annotation');
  t.ok(problems.some((p) => /Secret "shop\/nope-cert" for www\.example\.com not found/.test(p.message)), 'a missing Secret is named');
  t.ok(problems.some((p) => /"other\.example\.com" is not a domain app "web" serves/.test(p.message)), 'a domain of another app is refused');
  t.ok(problems.some((p) => /"garbage" is not "domain:certname"/.test(p.message)));
  t.equal((await r.get('www.example.com')).status, 200, 'the app is routed regardless');

  // Events on the Service, for `kubectl describe service`.
  const events = await eventsWhere(t, api, 'shop', (l) => l.filter((e) => e.involvedObject?.name === 'web').length >= 3);
  t.match(events[0], { type: 'Warning', reason: 'InvalidConfiguration', involvedObject: { kind: 'Service', namespace: 'shop', name: 'web' }, source: { component: 'fairway' } });
  t.ok((events[0] as { involvedObject: { uid?: string } }).involvedObject.uid, 'the Event points at the Service by uid');
});

t.test('the deis-router-platform-cert Secret in the router namespace is the default certificate and serves the platform domain', async (t) => {
  const api = await cluster(t);
  api.apply(service('web', 'shop', { 'router.deis.io/domains': 'web' }));
  api.apply(slice('web', 'shop', web.port));
  const r = await router(t, api);
  await snapshotWhere(r, (s) => s.apps.some((a) => a.name === 'web'), 'the app');
  const before = await servedSerial(r, 'unknown.test');
  t.not(before, certPlatform.serialNumber.toUpperCase(), 'self-signed default before the Secret exists');

  api.apply(tlsSecret('deis-router-platform-cert', 'deis', certPlatform));
  await certificatesWhere(r, holds(certPlatform), 'the platform Secret');
  t.equal(await servedSerial(r, 'web.example.com'), certPlatform.serialNumber.toUpperCase(), 'the platform domain gets the platform certificate');
  t.equal(await servedSerial(r, 'unknown.test'), certPlatform.serialNumber.toUpperCase(), 'unknown SNI gets the platform certificate');
  t.equal(await servedSerial(r, ''.padEnd(0)), certPlatform.serialNumber.toUpperCase(), 'no SNI gets the platform certificate');

  api.apply(tlsSecret('deis-router-platform-cert', 'shop', certWeb));
  api.apply(service('web', 'shop', { 'router.deis.io/domains': 'web,www' }));
  await certificatesWhere(r, (s) => s.apps.some((a) => a.domains.includes('www.example.com')), 'a later change');
  t.equal(await servedSerial(r, 'unknown.test'), certPlatform.serialNumber.toUpperCase(), 'a Secret of that name in another namespace is not the platform certificate');
});

t.test('a host lost to an older Service becomes one HostConflict Event even with two replicas reporting it', async (t) => {
  const api = await cluster(t);
  api.apply({ ...service('first', 'deis', { 'router.deis.io/domains': 'shared.example.com' }), metadata: { ...service('first', 'deis', {}).metadata, creationTimestamp: '2020-01-01T00:00:00Z', annotations: { 'router.deis.io/domains': 'shared.example.com' } } });
  api.apply(slice('first', 'deis', web.port));
  api.apply(service('second', 'shop', { 'router.deis.io/domains': 'shared.example.com' }));
  api.apply(slice('second', 'shop', web.port));
  const [a, b] = await Promise.all([router(t, api), router(t, api)]);
  for (const r of [a, b]) await snapshotWhere(r, (s) => s.apps.some((x) => x.name === 'second'), 'both apps');
  const events = await eventsWhere(t, api, 'shop', (l) => l.some((e) => e.reason === 'HostConflict'));
  await Promise.all([a, b].map((r) => r.router.kubernetes!.eventsWritten()));
  const conflicts = api.list('Event', 'shop').filter((e) => (e as { reason?: string }).reason === 'HostConflict');
  t.ok(events.length > 0);
  t.equal(conflicts.length, 1, 'one Event, not one per replica');
  t.match(conflicts[0], { type: 'Warning', involvedObject: { kind: 'Service', namespace: 'shop', name: 'second' }, message: /shared\.example\.com.*already served by app "first"/ });
  t.equal(api.list('Event', 'deis').length, 0, 'the winner gets no Event');
});

t.test('in Kubernetes mode the builder route exists by default: the deis-builder Service in the router namespace, its nginx timeouts honoured', async (t) => {
  const api = await cluster(t);
  const ssh = createServer((s) => s.pipe(s));
  ssh.listen(0, '127.0.0.1');
  await once(ssh, 'listening');
  t.teardown(() => ssh.close());
  const sshPort = (ssh.address() as { port: number }).port;
  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'deis-builder', namespace: 'deis', annotations: { 'router.deis.io/nginx.connectTimeout': '5', 'router.deis.io/nginx.tcpTimeout': '1s' } },
    spec: { type: 'ClusterIP', ports: [{ name: 'ssh', port: 2222, protocol: 'TCP' }] },
  });
  api.apply(slice('deis-builder', 'deis', sshPort, 'ssh'));
  const r = await router(t, api);
  const s = await snapshotWhere(r, (x) => x.settings.tcp.find((route) => route.name === 'builder')?.endpoints.length === 1, 'the builder endpoints');
  t.match(s.settings.tcp.find((route) => route.name === 'builder'), { service: 'deis/deis-builder', connectTimeout: 5000, idleTimeout: 1000, endpoints: [{ host: '127.0.0.1', port: sshPort }] });

  const client = connect(r.router.tcpAddresses.get('builder')!.port, '127.0.0.1');
  await once(client, 'connect');
  client.write('SSH-2.0-git\r\n');
  const [echoed] = await once(client, 'data');
  t.equal(String(echoed), 'SSH-2.0-git\r\n', 'bytes go both ways');
  const started = Date.now();
  await once(client, 'close');
  t.ok(Date.now() - started < 5000, 'router.deis.io/nginx.tcpTimeout (1s) closes the idle connection');

  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'deis-builder', namespace: 'deis', annotations: { 'router.deis.io/nginx.connectTimeout': 'soon' } },
    spec: { type: 'ClusterIP', ports: [{ name: 'ssh', port: 2222, protocol: 'TCP' }] },
  });
  const after = await snapshotWhere(r, (x) => x.settings.tcp.find((route) => route.name === 'builder')?.idleTimeout === 1_200_000, 'the annotations removed');
  t.equal(after.settings.tcp.find((route) => route.name === 'builder')?.connectTimeout, 10_000, 'an invalid value falls back to the default');
  t.ok((await problemsOf(r)).some((p) => p.object === 'deis/deis-builder' && p.field === 'router.deis.io/nginx.connectTimeout'), 'and is reported');
});

interface KEvent {
  reason?: string;
  involvedObject?: { name?: string };
}

/** Watches Events in `namespace` with the real client until the ones seen satisfy `done`. */
async function eventsWhere(t: Test, api: KubeApiServer, namespace: string, done: (events: KEvent[]) => boolean, ms = 10_000): Promise<KEvent[]> {
  const seen = new Map<string, KEvent>();
  let stop: (() => void) | undefined;
  const result = new Promise<KEvent[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for Events in ${namespace}: saw ${JSON.stringify([...seen.values()])}`)), ms);
    new Watch(api.kubeConfig())
      .watch(`/api/v1/namespaces/${namespace}/events`, {}, (type, obj: KEvent & { metadata: { name: string } }) => {
        if (type === 'ADDED' || type === 'MODIFIED') seen.set(obj.metadata.name, obj);
        if (done([...seen.values()])) {
          clearTimeout(timer);
          resolve([...seen.values()]);
        }
      }, (err) => err && reject(err))
      .then((req) => (stop = () => req.abort()), reject);
  });
  t.teardown(() => stop?.());
  try {
    return await result;
  } finally {
    stop?.();
  }
}
