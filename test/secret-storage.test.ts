/**
 * @module
 * SecretStorage against the test Kubernetes API server (test/helpers/kube-api-server.ts)
 * through the real `@kubernetes/client-node` and `kubectl`: the shared Storage contract,
 * then what a key becomes in the cluster, the Secret naming rules, collision safety, locks
 * as Leases between replicas (two SecretStorage instances on one namespace), takeover of a
 * dead holder's Lease, and failures of the API server.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig, V1MicroTime } from '@kubernetes/client-node';
import { FairwayError } from '../src/errors.js';
import { leaseNameFor, SecretStorage, secretNameFor, type SecretStorageOptions } from '../src/tls/secret-storage.js';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from './helpers/kube-api-server.js';
import { storageContract } from './storage-contract.js';

const execFileAsync = promisify(execFile);
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABELS = { 'app.kubernetes.io/managed-by': 'fairway', 'fairway.io/storage': 'fairway' };
/** Short lease timings so that takeovers and timeouts happen within the test's time. */
const FAST = { staleMs: 2_000, heartbeatMs: 200, pollMs: 20 } as const;

const api = await startKubeApiServer();
t.teardown(() => api.close());

let namespaces = 0;
/** A new, empty namespace on the shared server: one per test, so tests never see each other's objects. */
function freshNamespace(): string {
  const name = `storage-${++namespaces}`;
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return name;
}

function storageIn(namespace: string, options: Partial<SecretStorageOptions> = {}, server: KubeApiServer = api): SecretStorage {
  return new SecretStorage({ kubeConfig: server.kubeConfig(), namespace, ...FAST, ...options });
}

async function ownServer(t: Test, options?: Parameters<typeof startKubeApiServer>[0]): Promise<KubeApiServer> {
  const server = await startKubeApiServer(options);
  t.teardown(() => server.close());
  return server;
}

/** Waits for a condition on the test server's state (its request log has no events to await). */
async function until(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

const micro = (ms: number): string => new V1MicroTime(ms).toISOString();
const leaseOf = (namespace: string, lock: string) => api.get('Lease', namespace, leaseNameFor('fairway', lock)) as (KubeObject & { spec: Record<string, unknown> }) | undefined;

let kubectlHome: string | undefined;
t.teardown(() => (kubectlHome ? rm(kubectlHome, { recursive: true, force: true }) : undefined));
async function kubectl(...args: string[]): Promise<string> {
  kubectlHome ??= await mkdtemp(join(tmpdir(), 'fairway-kubectl-'));
  try {
    return (await execFileAsync('kubectl', ['--server', api.url, ...args], { env: { ...process.env, HOME: kubectlHome, KUBECONFIG: '' }, timeout: 30_000 })).stdout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('kubectl is not installed: apt-get install -y kubernetes-client');
    throw err;
  }
}

storageContract(t, 'SecretStorage', async () => ({ storage: storageIn(freshNamespace()), cleanup: async () => {} }));

t.test('a key is one Opaque Secret named after it, labelled for kubectl and annotated with the exact key', async (t) => {
  const namespace = freshNamespace();
  const storage = storageIn(namespace);
  const key = 'certificates/web.example.com/cert.pem';
  const name = 'fairway-certificates--web.example.com--cert.pem';
  await storage.put(key, '-----BEGIN CERTIFICATE-----\nMIIB\n');
  await storage.put('acme/account.json', '{}');
  t.equal(secretNameFor('fairway', key), name);

  const secret = await api.kubeConfig().makeApiClient(CoreV1Api).readNamespacedSecret({ name, namespace });
  t.equal(secret.type, 'Opaque');
  t.same(secret.metadata?.labels, LABELS);
  t.same(secret.metadata?.annotations, { 'fairway.io/key': key });
  t.same(secret.data, { value: Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n').toString('base64') }, 'the value is base64 under data.value, nothing else');

  const names = await kubectl('get', 'secrets', '-n', namespace, '-l', 'fairway.io/storage=fairway', '-o', 'name');
  t.same(names.trim().split('\n'), ['secret/fairway-acme--account.json', `secret/${name}`], 'kubectl get secrets -l fairway.io/storage=fairway lists the store');
  const asJson = JSON.parse(await kubectl('get', 'secret', name, '-n', namespace, '-o', 'json'));
  t.equal(asJson.metadata.annotations['fairway.io/key'], key);
  t.equal(Buffer.from(asJson.data.value, 'base64').toString(), '-----BEGIN CERTIFICATE-----\nMIIB\n', 'kubectl sees the value base64-encoded');
});

t.test('keys that are not DNS names get a hashed Secret name and round-trip; no two keys share a Secret', async (t) => {
  const namespace = freshNamespace();
  const storage = storageIn(namespace);
  const long = `certificates/${'a-long-label.'.repeat(25)}example.com/cert.pem`;
  const keys = [
    'certificates/*.example.com/cert.pem',
    'certificates/Web.Example.com/cert.pem',
    'certificates/web.example.com/cert.pem',
    'acme/account_key.pem',
    'a/b.c',
    'a.b/c',
    'a--b',
    'a/-b',
    'certificates/xn--bcher-kva.example/cert.pem',
    'challenges/http-01/.well-known',
    'x-0123456789',
    long,
  ];
  for (const key of keys) await storage.put(key, `value of ${key}`);
  for (const key of keys) t.equal((await storage.get(key)).toString(), `value of ${key}`, `${key} round-trips`);
  t.same(await storage.list(''), [...keys].sort());

  const names = keys.map((key) => secretNameFor('fairway', key));
  t.equal(new Set(names).size, keys.length, 'every key has its own Secret');
  for (const name of names) t.ok(name.length <= 253 && DNS1123_SUBDOMAIN.test(name), `${name} is a valid Secret name`);
  t.match(secretNameFor('fairway', 'certificates/*.example.com/cert.pem'), /^fairway-certificates--wildcard\.example\.com--cert\.pem-[0-9a-f]{10}$/);
  t.match(secretNameFor('fairway', 'certificates/Web.Example.com/cert.pem'), /^fairway-certificates--web\.example\.com--cert\.pem-[0-9a-f]{10}$/, 'upper case is hashed, so it never meets the lower-case key');
  t.equal(secretNameFor('fairway', 'a/b.c'), 'fairway-a--b.c', '/ is written --, so a/b.c and a.b/c stay apart');
  t.equal(secretNameFor('fairway', 'a.b/c'), 'fairway-a.b--c');
  t.match(secretNameFor('fairway', 'a--b'), /-[0-9a-f]{10}$/, 'a key containing -- is hashed');
  t.match(secretNameFor('fairway', 'x-0123456789'), /^fairway-x-0123456789-[0-9a-f]{10}$/, 'a readable name never ends like a hashed one');
  t.match(secretNameFor('fairway', long), /^fairway-.*example\.com--cert\.pem-[0-9a-f]{10}$/, 'a long key keeps its tail');
  t.equal(secretNameFor('fairway', long).length, 253);

  const hashed = api.get('Secret', namespace, secretNameFor('fairway', 'certificates/Web.Example.com/cert.pem'))!;
  t.equal(hashed.metadata?.annotations?.['fairway.io/key'], 'certificates/Web.Example.com/cert.pem', 'the annotation keeps the exact key');
});

t.test('prefixes keep stores apart in one namespace', async (t) => {
  const namespace = freshNamespace();
  const blue = storageIn(namespace, { prefix: 'blue' });
  const green = storageIn(namespace, { prefix: 'green' });
  await blue.put('acme/account.json', 'blue');
  await green.put('acme/account.json', 'green');
  t.equal((await blue.get('acme/account.json')).toString(), 'blue');
  t.equal((await green.get('acme/account.json')).toString(), 'green');
  await blue.delete('acme/account.json');
  t.same(await blue.list(''), []);
  t.same(await green.list(''), ['acme/account.json']);
  t.ok(api.get('Secret', namespace, 'green-acme--account.json'));
});

t.test('a Secret at a key\'s name that holds another key is never read, overwritten or deleted as that key', async (t) => {
  const namespace = freshNamespace();
  const storage = storageIn(namespace);
  const name = secretNameFor('fairway', 'acme/account.json');
  api.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels: LABELS, annotations: { 'fairway.io/key': 'something/else' } },
    type: 'Opaque',
    data: { value: Buffer.from('foreign').toString('base64') },
  });
  await t.rejects(storage.get('acme/account.json'), { code: 'FW_STORAGE_NOT_FOUND', message: /holds "something\/else"/ });
  await t.rejects(storage.put('acme/account.json', 'mine'), { code: 'FW_STORAGE_IO', message: new RegExp(`Secret ${namespace}/${name} .*already exists and is not this key's .*"something/else"`) });
  await storage.delete('acme/account.json');
  t.same(await storage.list(''), [], 'a Secret whose name is not its key\'s name is not listed');
  t.equal(Buffer.from(String((api.get('Secret', namespace, name)!.data as Record<string, string>).value), 'base64').toString(), 'foreign', 'the foreign Secret is untouched');

  // Prefixes `fairway` and `fairway-a` reach one name for the keys `a-b` and `b`.
  const other = storageIn(namespace, { prefix: 'fairway-a' });
  t.equal(secretNameFor('fairway', 'a-b'), secretNameFor('fairway-a', 'b'));
  await storage.put('a-b', 'of fairway');
  await t.rejects(other.put('b', 'of fairway-a'), { code: 'FW_STORAGE_IO', message: /not this key's/ });
  await t.rejects(other.get('b'), { code: 'FW_STORAGE_NOT_FOUND' }, 'the label tells the stores apart');
  t.equal((await storage.get('a-b')).toString(), 'of fairway');
});

t.test('two instances are two replicas: the Lease shuts the other out and shows its holder while held', async (t) => {
  const namespace = freshNamespace();
  const a = storageIn(namespace, { identity: 'replica-a' });
  const b = storageIn(namespace, { identity: 'replica-b' });
  const leaseName = 'fairway-lock-issue-web.example.com';
  t.equal(leaseNameFor('fairway', 'issue-web.example.com'), leaseName);

  const held = await a.lock('issue-web.example.com');
  const lease = leaseOf(namespace, 'issue-web.example.com')!;
  t.match(lease, {
    metadata: { name: leaseName, labels: LABELS, annotations: { 'fairway.io/lock': 'issue-web.example.com' } },
    spec: { holderIdentity: 'replica-a', leaseDurationSeconds: 2, leaseTransitions: 0, acquireTime: MICRO_TIME, renewTime: MICRO_TIME },
  });
  t.equal(await kubectl('get', 'lease', leaseName, '-n', namespace, '-o', 'jsonpath={.spec.holderIdentity}'), 'replica-a', 'kubectl shows the holder');

  const started = Date.now();
  await t.rejects(b.lock('issue-web.example.com', { timeoutMs: 300 }), {
    code: 'FW_STORAGE_LOCK_TIMEOUT',
    message: new RegExp(`Lease ${namespace}/${leaseName}\\) is still held by "replica-a", renewed `),
  });
  t.ok(Date.now() - started >= 290, 'the other replica waited for its timeout');

  await held.release();
  t.equal(leaseOf(namespace, 'issue-web.example.com'), undefined, 'release deletes the Lease');
  const taken = await b.lock('issue-web.example.com', { timeoutMs: 2_000 });
  t.match(leaseOf(namespace, 'issue-web.example.com'), { spec: { holderIdentity: 'replica-b' } });
  await taken.release();
  await held.release();
  t.equal(leaseOf(namespace, 'issue-web.example.com'), undefined, 'a second release of the first lock touched nothing');
});

t.test('a lock name that is not a DNS name gets a hashed Lease name that still says which lock it is', async (t) => {
  const namespace = freshNamespace();
  const storage = storageIn(namespace, { identity: 'replica-a' });
  const name = leaseNameFor('fairway', 'cert-*.Example.com');
  t.match(name, /^fairway-lock-cert-wildcard\.example\.com-[0-9a-f]{10}$/);
  t.not(leaseNameFor('fairway', 'cert-*.example.com'), name, 'lock names are case-sensitive, as keys are');
  const lock = await storage.lock('cert-*.Example.com', { timeoutMs: 1_000 });
  t.match(api.get('Lease', namespace, name), { metadata: { annotations: { 'fairway.io/lock': 'cert-*.Example.com' } }, spec: { holderIdentity: 'replica-a' } });
  await lock.release();
  t.same(api.list('Lease', namespace), []);
});

t.test('replicas taking turns on one lock never overlap and lose no update', async (t) => {
  const namespace = freshNamespace();
  const replicas = ['replica-a', 'replica-b', 'replica-c'].map((identity) => storageIn(namespace, { identity }));
  let inside = 0;
  let peak = 0;
  const holders: string[] = [];
  const worker = async (storage: SecretStorage) => {
    for (let i = 0; i < 5; i++) {
      const lock = await storage.lock('counter', { timeoutMs: 20_000 });
      try {
        peak = Math.max(peak, ++inside);
        holders.push(String(leaseOf(namespace, 'counter')?.spec.holderIdentity));
        const value = await storage.get('counter').then((b) => Number(b.toString()), (err: FairwayError) => {
          if (err.code !== 'FW_STORAGE_NOT_FOUND') throw err;
          return 0;
        });
        await delay(2);
        await storage.put('counter', String(value + 1));
      } finally {
        inside--;
        await lock.release();
      }
    }
  };
  // Two callers per replica: they queue in memory, and the replicas through the Lease.
  await Promise.all(replicas.flatMap((storage) => [worker(storage), worker(storage)]));
  t.equal(peak, 1, 'no two holders overlapped');
  t.equal((await replicas[0]!.get('counter')).toString(), '30', 'no increment was lost');
  t.same(new Set(holders), new Set(['replica-a', 'replica-b', 'replica-c']), 'each holder was named on the Lease while it held the lock');
});

t.test('a heartbeat renews a held Lease, so a live holder is never taken over', async (t) => {
  const namespace = freshNamespace();
  const options = { staleMs: 1_000, heartbeatMs: 100 };
  const a = storageIn(namespace, { ...options, identity: 'replica-a' });
  const b = storageIn(namespace, { ...options, identity: 'replica-b' });
  const held = await a.lock('renew');
  const acquired = leaseOf(namespace, 'renew')!.spec;
  t.equal(acquired.leaseDurationSeconds, 1);

  await t.rejects(b.lock('renew', { timeoutMs: 2_500 }), { code: 'FW_STORAGE_LOCK_TIMEOUT', message: /held by "replica-a"/ }, 'two and a half lease durations later it is still held');
  const { spec } = leaseOf(namespace, 'renew')!;
  t.equal(spec.holderIdentity, 'replica-a');
  t.equal(spec.acquireTime, acquired.acquireTime, 'acquireTime is kept');
  t.match(spec.renewTime, MICRO_TIME);
  t.ok(Date.parse(String(spec.renewTime)) > Date.parse(String(acquired.renewTime)), 'renewTime moved on');
  t.ok(Date.now() - Date.parse(String(spec.renewTime)) < 1_000, 'and is recent');
  t.equal(spec.leaseTransitions, 0);

  await held.release();
  const taken = await b.lock('renew', { timeoutMs: 1_000 });
  await taken.release();
});

t.test('a dead holder\'s Lease is taken over once renewTime + leaseDurationSeconds has passed, and leaseTransitions counts it', async (t) => {
  const namespace = freshNamespace();
  const storage = storageIn(namespace, { identity: 'replica-new' });
  const name = leaseNameFor('fairway', 'issue');
  const deadLease = (renewTime: string, leaseDurationSeconds: number, leaseTransitions: number): KubeObject => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, labels: LABELS, annotations: { 'fairway.io/lock': 'issue' } },
    spec: { holderIdentity: 'replica-dead', leaseDurationSeconds, acquireTime: renewTime, renewTime, leaseTransitions },
  });

  api.apply(deadLease(micro(Date.now() - 3_600_000), 30, 3));
  const before = Date.now();
  const lock = await storage.lock('issue', { timeoutMs: 1_000 });
  t.ok(Date.now() - before < 500, 'a Lease an hour past its duration is taken at once');
  const { spec } = leaseOf(namespace, 'issue')!;
  t.match(spec, { holderIdentity: 'replica-new', leaseTransitions: 4, leaseDurationSeconds: 2, acquireTime: MICRO_TIME, renewTime: MICRO_TIME });
  t.ok(Date.parse(String(spec.acquireTime)) >= before - 5, 'acquireTime is the takeover');
  await lock.release();

  // A holder that renewed just now, with a one-second lease, then died.
  const renewed = Date.now();
  api.apply(deadLease(micro(renewed), 1, 0));
  const again = await storage.lock('issue', { timeoutMs: 5_000 });
  t.ok(Date.now() - renewed >= 1_000, `not before renewTime + leaseDurationSeconds (${Date.now() - renewed} ms)`);
  t.match(leaseOf(namespace, 'issue'), { spec: { holderIdentity: 'replica-new', leaseTransitions: 1 } });
  await again.release();
});

t.test('of several replicas racing for one dead Lease, one at a time holds it', async (t) => {
  const namespace = freshNamespace();
  api.apply({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: leaseNameFor('fairway', 'issue'), namespace },
    spec: { holderIdentity: 'replica-dead', leaseDurationSeconds: 1, renewTime: micro(Date.now() - 60_000), leaseTransitions: 0 },
  });
  let inside = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      const lock = await storageIn(namespace, { identity: `replica-${i}`, pollMs: 5 }).lock('issue', { timeoutMs: 10_000 });
      peak = Math.max(peak, ++inside);
      await delay(5);
      inside--;
      await lock.release();
    }),
  );
  t.equal(peak, 1);
  t.equal(leaseOf(namespace, 'issue'), undefined, 'the last release leaves nothing behind');
});

t.test('a holder whose Lease was taken over has lost it: its heartbeat stops and its release leaves the new holder in place', async (t) => {
  const namespace = freshNamespace();
  const storage = storageIn(namespace, { identity: 'replica-a', staleMs: 1_000, heartbeatMs: 50 });
  const held = await storage.lock('issue');
  const name = leaseNameFor('fairway', 'issue');
  const path = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`;
  // As after a stall longer than the lease: another replica took it over.
  const mark = api.requests.length;
  const lease = leaseOf(namespace, 'issue')!;
  api.apply({ ...lease, spec: { ...lease.spec, holderIdentity: 'replica-b', acquireTime: micro(Date.now()), renewTime: micro(Date.now()), leaseTransitions: 1 } });
  await until('the heartbeat to find the Lease taken', () => api.requests.slice(mark).some((r) => r.method === 'GET' && r.path === path && r.status === 200));
  const puts = api.requests.filter((r) => r.method === 'PUT' && r.path === path).length;
  await delay(250); // five heartbeat periods: proving an absence needs time to pass
  t.equal(api.requests.filter((r) => r.method === 'PUT' && r.path === path).length, puts, 'no renewal after the loss');

  await held.release();
  t.match(leaseOf(namespace, 'issue'), { spec: { holderIdentity: 'replica-b', leaseTransitions: 1 } }, 'the new holder keeps the Lease');
  t.notOk(api.requests.slice(mark).some((r) => r.method === 'DELETE' && r.path === path), 'release sent no delete');
});

t.test('a release racing a takeover it has not noticed checks the Lease and leaves the new holder in place', async (t) => {
  const namespace = freshNamespace();
  const storage = storageIn(namespace, { identity: 'replica-a', staleMs: 30_000, heartbeatMs: 10_000 });
  const held = await storage.lock('issue');
  const lease = leaseOf(namespace, 'issue')!;
  api.apply({ ...lease, spec: { ...lease.spec, holderIdentity: 'replica-b', acquireTime: micro(Date.now()), renewTime: micro(Date.now()), leaseTransitions: 1 } });
  await held.release();
  t.match(leaseOf(namespace, 'issue'), { spec: { holderIdentity: 'replica-b' } });
});

t.test('a held lock survives an API server outage shorter than its lease', async (t) => {
  const server = await ownServer(t);
  server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'router' } });
  const storage = storageIn('router', { identity: 'replica-a', staleMs: 3_000, heartbeatMs: 50 }, server);
  const held = await storage.lock('issue');
  await server.stop();
  await delay(150); // heartbeats fail while it is down
  await server.start();
  const mark = server.requests.length;
  const path = `/apis/coordination.k8s.io/v1/namespaces/router/leases/${leaseNameFor('fairway', 'issue')}`;
  await until('a renewal after the outage', () => server.requests.slice(mark).some((r) => r.method === 'PUT' && r.path === path && r.status === 200));
  t.match(server.get('Lease', 'router', leaseNameFor('fairway', 'issue')), { spec: { holderIdentity: 'replica-a' } });
  await held.release();
  t.equal(server.get('Lease', 'router', leaseNameFor('fairway', 'issue')), undefined);
});

t.test('with the API server down every call fails with FW_STORAGE_IO naming the server, and works again once it is back', async (t) => {
  const server = await ownServer(t);
  server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'router' } });
  const storage = storageIn('router', {}, server);
  await storage.put('acme/account.json', '{"ok":true}');
  await server.stop();

  const unreachable = new RegExp(`the Kubernetes API server http://127\\.0\\.0\\.1:${server.port} could not be reached: .*ECONNREFUSED`);
  const name = secretNameFor('fairway', 'acme/account.json');
  const failure = (await storage.get('acme/account.json').catch((e: unknown) => e)) as FairwayError;
  t.match(failure, { name: 'FairwayError', code: 'FW_STORAGE_IO', message: unreachable });
  t.match(failure.message, `cannot read Secret router/${name} (key "acme/account.json")`, 'the message names the Secret');
  t.match(failure.details, { namespace: 'router', server: server.url });
  await t.rejects(storage.put('acme/account.json', 'SECRET-KEY-MATERIAL'), { code: 'FW_STORAGE_IO', message: unreachable });
  await t.rejects(storage.delete('acme/account.json'), { code: 'FW_STORAGE_IO', message: unreachable });
  await t.rejects(storage.list(''), { code: 'FW_STORAGE_IO', message: unreachable });
  await t.rejects(storage.lock('issue', { timeoutMs: 100 }), { code: 'FW_STORAGE_IO', message: unreachable });
  const putFailure = (await storage.put('acme/account.json', 'SECRET-KEY-MATERIAL').catch((e: unknown) => e)) as Error;
  t.notMatch(putFailure.message, /SECRET-KEY-MATERIAL/, 'never the value');

  await server.start();
  t.equal((await storage.get('acme/account.json')).toString(), '{"ok":true}', 'the same instance works again');
  const lock = await storage.lock('issue', { timeoutMs: 1_000 });
  await lock.release();
  t.pass('the failed lock attempt left nothing held');
});

t.test('an API server that accepts connections but never answers fails calls after requestTimeoutMs', async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });
  const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'silent', server: url, skipTLSVerify: true }],
    users: [{ name: 'silent' }],
    contexts: [{ name: 'silent', cluster: 'silent', user: 'silent', namespace: 'default' }],
    currentContext: 'silent',
  });
  const storage = new SecretStorage({ kubeConfig, namespace: 'router', requestTimeoutMs: 200 });
  const started = Date.now();
  await t.rejects(storage.get('acme/account.json'), { code: 'FW_STORAGE_IO', message: `cannot read Secret router/fairway-acme--account.json (key "acme/account.json"): the Kubernetes API server ${url} did not answer within 200 ms` });
  const waited = Date.now() - started;
  t.ok(waited >= 190 && waited < 2_000, `gave up after about requestTimeoutMs (${waited} ms)`);
  await t.rejects(storage.lock('issue', { timeoutMs: 60_000 }), { code: 'FW_STORAGE_IO', message: /did not answer within 200 ms/ }, 'a lock attempt does not hang either');
});

t.test('API errors name the namespace and object and carry the API server\'s message', async (t) => {
  const storage = storageIn('no-such-namespace');
  await t.rejects(storage.put('acme/account.json', 'x'), {
    code: 'FW_STORAGE_IO',
    message: 'cannot create Secret no-such-namespace/fairway-acme--account.json (key "acme/account.json"): namespaces "no-such-namespace" not found (HTTP 404)',
    details: { namespace: 'no-such-namespace', status: 404, reason: 'NotFound' },
  });
  await t.rejects(storage.lock('issue', { timeoutMs: 100 }), { code: 'FW_STORAGE_IO', message: /cannot create Lease no-such-namespace\/fairway-lock-issue \(lock "issue"\): namespaces "no-such-namespace" not found/ });

  const guarded = await ownServer(t, { token: 'the-right-token' });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'test', server: guarded.url, skipTLSVerify: true }],
    users: [{ name: 'test', token: 'a-wrong-token' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test', namespace: 'default' }],
    currentContext: 'test',
  });
  const refused = new SecretStorage({ kubeConfig, namespace: 'default' });
  await t.rejects(refused.get('acme/account.json'), { code: 'FW_STORAGE_IO', message: /^cannot read Secret default\/fairway-acme--account\.json \(key "acme\/account\.json"\): .*\(HTTP 401\)$/ });
  await t.rejects(refused.list('certificates'), { code: 'FW_STORAGE_IO', message: /^cannot list Secrets fairway\.io\/storage=fairway in namespace default: .*\(HTTP 401\)$/ });
});

t.test('construction validates its options and sends no request', async (t) => {
  const before = api.requests.length;
  const kubeConfig = api.kubeConfig();
  const storage = new SecretStorage({ kubeConfig, namespace: 'router' });
  t.match(storage.description, new RegExp(`^Kubernetes Secrets fairway\\.io/storage=fairway in namespace router at http://127\\.0\\.0\\.1:${api.port}$`));
  t.match(storage.identity, new RegExp(`^${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_[0-9a-f]{10}$`), 'the default identity is the host name and a random suffix');
  t.not(new SecretStorage({ kubeConfig, namespace: 'router' }).identity, storage.identity, 'unique per instance');
  t.equal(new SecretStorage({ kubeConfig, namespace: 'router', identity: 'pod-1' }).identity, 'pod-1');
  t.throws(() => new SecretStorage({ kubeConfig, namespace: 'Router' }), RangeError);
  t.throws(() => new SecretStorage({ kubeConfig, namespace: 'router', prefix: 'Fairway' }), RangeError);
  t.throws(() => new SecretStorage({ kubeConfig, namespace: 'router', prefix: 'x'.repeat(64) }), RangeError);
  t.throws(() => new SecretStorage({ kubeConfig, namespace: 'router', staleMs: 1_000, heartbeatMs: 1_000 }), RangeError);
  t.throws(() => new SecretStorage({ kubeConfig, namespace: 'router', pollMs: 0 }), RangeError);
  t.throws(() => new SecretStorage({ kubeConfig, namespace: 'router', staleMs: Number.NaN }), RangeError);
  t.doesNotThrow(() => new SecretStorage({ kubeConfig, namespace: 'router', staleMs: 300 }), 'the default heartbeat shrinks to fit a short stale time');
  t.equal(api.requests.length, before, 'no request was sent');
});
