import t, { type Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { freeLoopbackPorts, startPebble, type Pebble } from './helpers/pebble.js';
import { startUpstream } from './helpers/upstreams.js';
import { startTestRouter, type TestRouter } from './helpers/test-router.js';
import { hello } from './helpers/tls-client.js';
import { runCli, startRouterProcess } from './helpers/router-process.js';
import { startKubeApiServer } from './helpers/kube-api-server.js';

const echo = await startUpstream('echo');
t.teardown(() => echo.close());
const FAST = { min: 20, max: 200 };

interface Setup {
  pebble: Pebble;
  /** Pebble's validator dials these: the router that must answer challenges listens on them (new ones for each test, so no connection of an earlier router can hold them). */
  httpPort: number;
  httpsPort: number;
  dir: string;
  storage: string;
}

async function pebbleFor(t: Test, validitySeconds?: number): Promise<Setup> {
  const [httpPort, httpsPort] = (await freeLoopbackPorts(2)) as [number, number];
  const pebble = await startPebble({ httpPort, tlsPort: httpsPort, certificateValidityPeriod: validitySeconds });
  t.teardown(() => pebble.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-acme-'));
  writeFileSync(path.join(dir, 'pebble-ca.pem'), pebble.caBundle);
  return { pebble, httpPort, httpsPort, dir, storage: path.join(dir, 'data') };
}

const config = (s: Setup, o: { challenge?: string; domains?: string[]; renewAt?: number; listen?: 'pebble' | 'any' } = {}) => `
listen:
  http: 127.0.0.1:${o.listen === 'any' ? 0 : s.httpPort}
  https: 127.0.0.1:${o.listen === 'any' ? 0 : s.httpsPort}
  admin: 127.0.0.1:0
  builder: 127.0.0.1:0
tls:
  storage: ${s.storage}
  acme:
    directory: ${s.pebble.directory}
    email: ops@example.test
    challenge: ${o.challenge ?? 'http-01'}
    caBundle: pebble-ca.pem
    renewAt: ${o.renewAt ?? 0.667}
    retry: { min: 200ms, max: 1s }
apps:
  web:
    domains: [${(o.domains ?? ['web.example.test', '"*.wild.example.test"']).join(', ')}]
    versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } }
`;

async function router(t: Test, s: Setup, yaml: string): Promise<TestRouter> {
  const r = await startTestRouter(yaml, { dir: s.dir, acmePollMs: FAST });
  t.teardown(() => r.close());
  return r;
}

type Row = { host: string; source: string; issuer?: string; notAfter?: string; nextRenewal?: string; lastError?: { code: string; message: string }; expiring: boolean };
const rows = async (r: TestRouter) => (await r.adminGet('/v1/certificates')).json().certificates as Row[];

/** Polls `check` (bounded) for conditions with no event to await: a CA on the other side of a socket. */
async function until<T>(what: string, check: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A handshake for `host` that must verify against Pebble's current root. */
async function verifiedHello(s: Setup, port: number, host: string) {
  const h = await hello(port, { servername: host, ca: await s.pebble.roots(), rejectUnauthorized: true });
  t.equal(h.authorized, true);
  return h;
}

t.test('HTTP-01: every non-wildcard host gets a certificate that verifies against the CA root', async (t) => {
  const s = await pebbleFor(t);
  const r = await router(t, s, config(s));
  await r.router.certificates.idle();
  const h = await verifiedHello(s, s.httpsPort, 'web.example.test');
  t.match(h.cert.subjectaltname, /DNS:web\.example\.test/);
  t.match(h.cert.issuer.CN, /Pebble Intermediate/);

  const all = await rows(r);
  t.match(all.find((x) => x.host === 'web.example.test'), { source: 'acme', issuer: /Pebble Intermediate/, expiring: false });
  t.ok(all.find((x) => x.host === 'web.example.test')!.nextRenewal, 'a renewal time is scheduled');
  t.match(all.find((x) => x.host === '*.wild.example.test'), { source: 'none' }, 'wildcards are not ordered');
  t.ok(r.logs.some((l) => /wildcards need DNS-01/.test(String(l.msg))), 'and the log says why');

  const metrics = (await r.adminGet('/metrics')).body;
  t.match(metrics, /fairway_acme_orders_total\{result="issued"\} 1/);
  t.match(metrics, /fairway_tls_certificate_not_after_seconds\{host="web\.example\.test",source="acme"\} \d+/);

  const agent = new Agent({ connect: { ca: await s.pebble.roots(), servername: 'web.example.test' } });
  t.teardown(() => agent.close());
  const res = await request(`https://127.0.0.1:${s.httpsPort}/`, { dispatcher: agent, headers: { host: 'web.example.test' } });
  t.equal(res.statusCode, 200, 'and it serves HTTPS traffic with it');
  await res.body.text();

  // The CLI shows it, and renews it on request (through POST /v1/certificates/{host}/renew).
  const certs = await runCli(['certs', '--admin', r.admin]);
  t.equal(certs.code, 0);
  t.match(certs.stdout, /^HOST\s+SOURCE\s+ISSUER\s+EXPIRES \(UTC\)\s+NEXT RENEWAL\s+STATUS\n/);
  t.match(certs.stdout, /\*\.wild\.example\.test\s+none\s+-/);
  t.match(certs.stdout, /web\.example\.test\s+acme\s+Pebble Intermediate CA \w+\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+\d{4}-.*ok\n/);
  const renewed = await runCli(['certs', 'renew', 'web.example.test', '--admin', r.admin]);
  t.equal(renewed.code, 0, renewed.stderr);
  const afterRenew = await verifiedHello(s, s.httpsPort, 'web.example.test');
  t.not(afterRenew.cert.serialNumber, h.cert.serialNumber, 'a new certificate is served at once');
  const unknownHost = await runCli(['certs', 'renew', 'nope.example.test', '--admin', r.admin]);
  t.equal(unknownHost.code, 2);
  t.match(unknownHost.stderr, /no ACME-managed certificate for "nope\.example\.test" \[FW_CERT_NOT_FOUND\]/);

  // A host added at run time gets its certificate within seconds, with no restart; a removed one is dropped.
  await r.rewrite(config(s, { domains: ['new.example.test'] }));
  const added = await until('new.example.test to be served', async () => {
    const x = await hello(s.httpsPort, { servername: 'new.example.test' });
    return /Pebble Intermediate/.test(String(x.cert.issuer.CN)) && x;
  });
  t.match(added.cert.subjectaltname, /DNS:new\.example\.test/);
  await verifiedHello(s, s.httpsPort, 'new.example.test');
  t.notOk((await rows(r)).some((x) => x.host === 'web.example.test'), 'a removed host is no longer managed');
});

t.test('TLS-ALPN-01: the challenge is answered on the HTTPS listener', async (t) => {
  const s = await pebbleFor(t);
  const r = await router(t, s, config(s, { challenge: 'tls-alpn-01', domains: ['alpn.example.test'] }));
  await r.router.certificates.idle();
  const h = await verifiedHello(s, s.httpsPort, 'alpn.example.test');
  t.match(h.cert.subjectaltname, /DNS:alpn\.example\.test/);
  t.match((await rows(r)).find((x) => x.host === 'alpn.example.test'), { source: 'acme' });
});

t.test('renewal replaces a certificate before it expires without dropping open connections', async (t) => {
  const s = await pebbleFor(t, 12); // 12-second certificates, renewed at 25% of their life
  const r = await router(t, s, config(s, { domains: ['renew.example.test'], renewAt: 0.25 }));
  await r.router.certificates.idle();
  const first = await verifiedHello(s, s.httpsPort, 'renew.example.test');

  const agent = new Agent({ connections: 1, keepAliveTimeout: 60_000, connect: { ca: await s.pebble.roots(), servername: 'renew.example.test' } });
  t.teardown(() => agent.close());
  let connects = 0;
  agent.on('connect', () => connects++);
  const failures: string[] = [];
  let served = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const res = await request(`https://127.0.0.1:${s.httpsPort}/`, { dispatcher: agent, headers: { host: 'renew.example.test' } });
        await res.body.text();
        if (res.statusCode === 200) served++;
        else failures.push(`HTTP ${res.statusCode}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  })();
  const renewed = await until('the renewed certificate', async () => {
    const h = await hello(s.httpsPort, { servername: 'renew.example.test' });
    return h.cert.serialNumber !== first.cert.serialNumber && h;
  });
  running = false;
  await loop;
  t.ok(new Date(renewed.cert.valid_to) > new Date(first.cert.valid_to), 'the new certificate lives longer');
  t.same(failures, [], 'no request failed while the certificate was renewed');
  t.ok(served > 0);
  t.equal(connects, 1, 'the open keep-alive connection was never dropped');
});

t.test('a CA outage during renewal keeps the old certificate serving, retries with backoff, and recovers', async (t) => {
  const s = await pebbleFor(t);
  const r = await router(t, s, config(s, { domains: ['outage.example.test'] }));
  await r.router.certificates.idle();
  const before = await verifiedHello(s, s.httpsPort, 'outage.example.test');

  await s.pebble.down();
  const failed = await r.router.certificates.renew('outage.example.test');
  t.match(failed, { source: 'acme', lastError: { code: 'FW_ACME_ORDER_FAILED' } });
  t.equal((await hello(s.httpsPort, { servername: 'outage.example.test' })).cert.serialNumber, before.cert.serialNumber, 'the old certificate is still served');
  t.ok(r.logs.some((l) => l.msg === 'certificate renewal failed; still serving the current one' && l.host === 'outage.example.test'));
  await until('a second failed attempt, made on its own', async () => r.logs.some((l) => l.host === 'outage.example.test' && l.failures === 2));

  await s.pebble.up();
  const after = await until('a certificate from the recovered CA', async () => {
    const h = await hello(s.httpsPort, { servername: 'outage.example.test' });
    return h.cert.serialNumber !== before.cert.serialNumber && h;
  });
  t.ok(after);
  await verifiedHello(s, s.httpsPort, 'outage.example.test');
  t.notOk((await rows(r)).find((x) => x.host === 'outage.example.test')!.lastError, 'the error clears after success');
});

t.test('two routers sharing one storage order each certificate once', async (t) => {
  const s = await pebbleFor(t);
  const domains = ['one.example.test', 'two.example.test'];
  // Only the first router owns the ports Pebble validates against; the second answers
  // nothing itself, so any order it places is validated through the shared storage.
  const [a, b] = await Promise.all([
    router(t, s, config(s, { domains })),
    router(t, s, config(s, { domains, listen: 'any' })),
  ]);
  await Promise.all([a.router.certificates.idle(), b.router.certificates.idle()]);
  const issued = async (r: TestRouter, result: string) => Number(new RegExp(`fairway_acme_orders_total\\{result="${result}"\\} (\\d+)`).exec((await r.adminGet('/metrics')).body)?.[1] ?? 0);
  t.equal((await issued(a, 'issued')) + (await issued(b, 'issued')), 2, 'two hosts, two orders in all');
  t.equal((await issued(a, 'from_storage')) + (await issued(b, 'from_storage')), 2, 'each router took the other\'s certificates from storage');
  for (const host of domains) {
    const fromA = await hello(a.router.httpsAddress!.port, { servername: host });
    const fromB = await hello(b.router.httpsAddress!.port, { servername: host });
    t.equal(fromA.cert.serialNumber, fromB.cert.serialNumber, `${host}: both serve the same certificate`);
    t.match(new X509Certificate(fromA.cert.raw).issuer, /Pebble Intermediate/);
  }
});

for (const challenge of ['http-01', 'tls-alpn-01']) {
  t.test(`${challenge} with workers (dist/cli.js): a worker answers from the shared storage the challenges another router placed`, async (t) => {
    const s = await pebbleFor(t);
    const domains = ['one.example.test', 'two.example.test'];
    // The router with workers owns the ports Pebble validates against but orders nothing (its one
    // domain is a wildcard, which needs DNS-01); the other, which Pebble cannot reach, orders every
    // certificate. So each validation reaches a worker holding no answer: only its primary's storage has it.
    const file = path.join(s.dir, 'workers.yaml');
    writeFileSync(file, config(s, { challenge, domains: ['"*.wild.example.test"'] }));
    const withWorkers = await startRouterProcess(file, 'serve', {}, { workers: 2 });
    t.teardown(() => withWorkers.stop());
    const ordering = await router(t, s, config(s, { challenge, domains, listen: 'any' }));
    await ordering.router.certificates.idle();
    t.match((await ordering.adminGet('/metrics')).body, /fairway_acme_orders_total\{result="issued"\} 2\n/, 'both orders validated through the workers');
    t.notMatch((await ordering.adminGet('/metrics')).body, /fairway_acme_orders_total\{result="failed"\}/, 'no order failed first');
    for (const host of domains) await verifiedHello(s, ordering.router.httpsAddress!.port, host);
    t.equal(await withWorkers.stop(), 0);
  });
}

t.test('Kubernetes mode: two replicas keep ACME data in Secrets, order each certificate once under a Lease, and install each other\'s renewals from the watch', async (t) => {
  const s = await pebbleFor(t);
  const api = await startKubeApiServer({ namespaces: ['default', 'deis', 'shop'] });
  t.teardown(() => api.close());
  const kubeconfig = path.join(s.dir, 'kubeconfig');
  await api.writeKubeconfig(kubeconfig);
  const domains = ['one.example.test', 'two.example.test'];
  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop', labels: { 'router.deis.io/routable': 'true' }, annotations: { 'router.deis.io/domains': domains.join(',') } },
    spec: { ports: [{ name: 'http', port: 80 }] },
  });
  const yaml = (listen: 'pebble' | 'any') => config(s, { domains: [], listen }).replace(/apps:[\s\S]*$/, 'apps: {}\n');
  const start = async (listen: 'pebble' | 'any') => {
    const r = await startTestRouter(yaml(listen), { dir: s.dir, acmePollMs: FAST, kubernetes: { kubeconfig, namespace: 'deis', backoff: { min: 50, max: 500 } } });
    t.teardown(() => r.close());
    return r;
  };
  const [a, b] = await Promise.all([start('pebble'), start('any')]);
  const hosts = async (r: TestRouter) => (await rows(r)).filter((x) => domains.includes(x.host) && x.source === 'acme').length;
  await until('both replicas serve both certificates', async () => (await hosts(a)) === 2 && (await hosts(b)) === 2);
  const orders = async (r: TestRouter, result: string) => Number(new RegExp(`fairway_acme_orders_total\\{result="${result}"\\} (\\d+)`).exec((await r.adminGet('/metrics')).body)?.[1] ?? 0);
  t.equal((await orders(a, 'issued')) + (await orders(b, 'issued')), 2, 'two hosts, two orders in all');
  for (const host of domains) {
    const fromA = await hello(a.router.httpsAddress!.port, { servername: host });
    const fromB = await hello(b.router.httpsAddress!.port, { servername: host });
    t.equal(fromA.cert.serialNumber, fromB.cert.serialNumber, `${host}: both serve the same certificate`);
  }
  const secrets = api.list('Secret', 'deis').filter((x) => x.metadata?.labels?.['fairway.io/storage'] === 'fairway');
  t.ok(secrets.some((x) => x.metadata?.annotations?.['fairway.io/key'] === 'certificates/one.example.test/cert.pem'), 'certificates are Secrets in the router namespace');
  t.ok(api.requests.some((q) => q.method === 'POST' && q.path === '/apis/coordination.k8s.io/v1/namespaces/deis/leases'), 'orders took Leases in the router namespace');
  t.same(api.list('Lease', 'deis').filter((l) => l.metadata?.annotations?.['fairway.io/lock']), [], 'and released them');

  // A renewal by one replica reaches the other through its Secret watch, with no order of its own.
  const before = (await hello(b.router.httpsAddress!.port, { servername: 'one.example.test' })).cert.serialNumber;
  const issuedBefore = (await orders(a, 'issued')) + (await orders(b, 'issued'));
  const renewed = (await a.router.certificates.renew('one.example.test')) as { notBefore?: string };
  t.ok(renewed.notBefore);
  const after = (await hello(a.router.httpsAddress!.port, { servername: 'one.example.test' })).cert.serialNumber;
  t.not(after, before, 'replica A renewed');
  await until('replica B serves the renewed certificate', async () => (await hello(b.router.httpsAddress!.port, { servername: 'one.example.test' })).cert.serialNumber === after);
  t.equal((await orders(a, 'issued')) + (await orders(b, 'issued')), issuedBefore + 1, 'one order for the renewal');
});
