/**
 * `fairway serve --workers 2` as a real process (dist/cli.js: `npm run build` first): a
 * primary and two node:cluster data-plane workers sharing the listeners, against real
 * endpoints on loopback, real TLS handshakes and Pebble (README "Workers"). Which worker
 * served a request is read from its access-log line (`worker`, `pid`), found by the
 * request ID the test sent.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Client } from 'undici';
import { WORKER_SEMI_SPACE_MB } from '../src/cluster/worker-heap.js';
import { freeLoopbackPorts, startPebble } from './helpers/pebble.js';
import { startRouterProcess, type RouterProcess } from './helpers/router-process.js';
import { hello } from './helpers/tls-client.js';
import { refusedAddress, upstreamStarter } from './helpers/upstreams.js';

type Entry = Record<string, any>;

const dir = mkdtempSync(path.join(tmpdir(), 'fairway-workers-'));
const upstream = upstreamStarter(t);
const v1 = await upstream('v1');
const v2 = await upstream('v2');

interface Workers {
  readonly router: RouterProcess;
  readonly file: string;
  readonly httpPort: number;
  readonly httpsPort: number;
  readonly logs: Entry[];
  /** Resolves with the first log line, already printed or to come, that `match` accepts. */
  line(match: (e: Entry) => boolean, ms?: number): Promise<Entry>;
  /** The access-log line of the request with ID `reqId`. */
  access(reqId: string): Promise<Entry>;
}

/** Starts `fairway serve --workers 2` on `yaml` and follows its log. */
async function serveWithWorkers(t: Test, yaml: string, name: string): Promise<Workers> {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const logs: Entry[] = [];
  const waiters = new Set<{ match: (e: Entry) => boolean; resolve: (e: Entry) => void }>();
  const router = await startRouterProcess(file, 'serve', {}, {
    workers: 2,
    onLine: (entry) => {
      logs.push(entry);
      for (const w of waiters) if (w.match(entry)) (waiters.delete(w), w.resolve(entry));
    },
  });
  t.teardown(() => {
    if (router.child.exitCode === null && router.child.signalCode === null) router.child.kill('SIGKILL');
  });
  const serving = logs.find((e) => e.msg === 'fairway is serving')!;
  const line = (match: (e: Entry) => boolean, ms = 10_000) => {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise<Entry>((resolve, reject) => {
      const timer = setTimeout(() => (waiters.delete(w), reject(new Error('timed out waiting for a log line'))), ms);
      const w = { match, resolve: (e: Entry) => (clearTimeout(timer), resolve(e)) };
      waiters.add(w);
    });
  };
  const port = (a: string | undefined) => Number(a?.slice(a.lastIndexOf(':') + 1));
  return { router, file, httpPort: port(serving.http), httpsPort: port(serving.https), logs, line, access: (reqId) => line((e) => e.log === 'access' && e.reqId === reqId) };
}

/** One GET on a new connection (Host `web.test` unless given, the given request ID). */
function freshGet(port: number, reqId: string, host = 'web.test'): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path: '/', agent: false, headers: { host, 'x-request-id': reqId } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    }).on('error', reject);
  });
}

async function admin(r: RouterProcess, p: string, init: { method?: string; body?: unknown } = {}): Promise<any> {
  const res = await fetch(`${r.admin}${p}`, { method: init.method, body: init.body === undefined ? undefined : JSON.stringify(init.body), headers: { 'content-type': 'application/json' } });
  if (p === '/metrics') return res.text();
  return res.json();
}

/** `fairway_requests_total` of app `web`, all versions and classes. */
const requestsTotal = (metrics: string) => [...metrics.matchAll(/^fairway_requests_total\{app="web",[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);

/** Requests on new connections until both workers served one (the kernel picks the accepting worker); returns worker id → pid. */
async function bothWorkers(w: Workers, prefix: string): Promise<Map<number, number>> {
  const seen = new Map<number, number>();
  for (let i = 0; i < 400 && seen.size < 2; i++) {
    const id = `${prefix}-${i}`;
    t.equal((await freshGet(w.httpPort, id)).status, 200);
    const e = await w.access(id);
    seen.set(e.worker, e.pid);
  }
  return seen;
}

const appYaml = (weights: [number, number]) => `
apps:
  web:
    domains: [web.test]
    versions:
      v1: { weight: ${weights[0]}, endpoints: ["${v1.address}"] }
      v2: { weight: ${weights[1]}, endpoints: ["${v2.address}"] }
`;

t.test('two workers: both serve, changes reach both before they are reported, counters are summed, a killed worker is replaced, SIGTERM drains', async (t) => {
  const listen = 'listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:0 }\nshutdown: { delay: 0s, drainTimeout: 5s }\n';
  const w = await serveWithWorkers(t, listen + appYaml([1, 0]), 'two-workers');
  const before = requestsTotal(await admin(w.router, '/metrics'));
  t.equal(before, 0);
  t.same((await admin(w.router, '/readyz')).status, 'ready');

  const workers = await bothWorkers(w, 'spread');
  t.equal(workers.size, 2, 'requests on new connections are served by both workers');
  for (const pid of workers.values()) {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    t.ok(argv.includes(`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`), `worker ${pid} runs with the young generation capped: ${argv.join(' ')}`);
  }
  const spreadLines = w.logs.filter((e) => e.log === 'access' && e.reqId?.startsWith('spread-'));
  const served = spreadLines.length;

  // The per-app logs live in the primary: both workers' entries reach it (batched over IPC, within 100 ms).
  let inPrimary: Entry[] = [];
  for (let poll = 0; poll < 50 && inPrimary.length < served; poll++) {
    if (poll > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    inPrimary = ((await admin(w.router, '/v1/apps/web/logs?lines=1000')).entries as Entry[]).filter((e) => e.reqId.startsWith('spread-'));
  }
  t.same(inPrimary.map((e) => e.reqId).sort(), spreadLines.map((e) => e.reqId).sort(), "GET /v1/apps/web/logs has every request both workers served");
  const byId = new Map(spreadLines.map((e) => [e.reqId, e]));
  t.ok(inPrimary.every((e) => e.status === 200 && e.version === byId.get(e.reqId)?.version && e.path === '/'), 'with the fields of their access-log lines');

  // A file reload: its `snapshot applied` line comes once both workers applied it; every request after it goes to v2.
  writeFileSync(w.file, listen + appYaml([0, 1]));
  const reloaded = await w.line((e) => e.msg === 'snapshot applied' && e.generation >= 2);
  t.equal(reloaded.workers, 2);
  for (let i = 0; i < 30; i++) t.equal((await freshGet(w.httpPort, `reload-${i}`)).headers['x-upstream'], 'v2');
  // The admin API answers once every worker has the new weights: every request after it goes to v1.
  await admin(w.router, '/v1/apps/web/weights', { method: 'PUT', body: { v1: 1, v2: 0 } });
  const answeredBy = new Set<number>();
  for (let i = 0; i < 30; i++) {
    const id = `weights-${i}`;
    t.equal((await freshGet(w.httpPort, id)).headers['x-upstream'], 'v1');
    answeredBy.add((await w.access(id)).worker);
  }
  t.equal(answeredBy.size, 2, 'both workers answered with the new weights');

  // Counters: the sum over both workers, at once (the primary asks them when /metrics is read).
  const sent = served + 60;
  t.equal(requestsTotal(await admin(w.router, '/metrics')), sent, '/metrics counts every request once');
  const apps = await admin(w.router, '/v1/apps');
  const total = apps.apps[0].versions.reduce((n: number, v: any) => n + v.requests.total, 0);
  t.equal(total, sent, '/v1/apps shows the requests of both workers');

  // TLS: a session resumes on whichever worker accepts the next connection (shared ticket keys).
  const first = await hello(w.httpsPort, { servername: 'web.test' });
  t.ok(first.session, 'a session ticket arrived');
  const resumedBy = new Set<number>();
  for (let i = 0; i < 40 && (resumedBy.size < 2 || i < 10); i++) {
    const id = `tls-${i}`;
    const reused = await new Promise<boolean>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: w.httpsPort, servername: 'web.test', session: first.session, rejectUnauthorized: false }, () => {
        const r = socket.isSessionReused();
        socket.end(`GET / HTTP/1.1\r\nHost: web.test\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n`);
        socket.resume();
        socket.on('end', () => resolve(r));
      });
      socket.on('error', reject);
    });
    t.equal(reused, true, `reconnect ${i} resumed the session`);
    resumedBy.add((await w.access(id)).worker);
  }
  t.equal(resumedBy.size, 2, 'sessions resumed on both workers');

  // SIGKILL one worker while a keep-alive connection is open on the other one.
  const client = new Client(`http://127.0.0.1:${w.httpPort}`, { pipelining: 1 });
  t.teardown(() => client.close());
  const keepAlive = async (id: string) => {
    const res = await client.request({ path: '/', method: 'GET', headers: { host: 'web.test', 'x-request-id': id } });
    await res.body.text();
    return res.statusCode;
  };
  t.equal(await keepAlive('kept-0'), 200);
  const kept = await w.access('kept-0');
  const victim = [...workers].find(([id]) => id !== kept.worker);
  t.ok(victim, 'the other worker is known');
  const totalBefore = requestsTotal(await admin(w.router, '/metrics'));
  process.kill(victim![1], 'SIGKILL');
  const exited = await w.line((e) => e.code === 'FW_WORKER_EXITED' && e.pid === victim![1]);
  t.equal(exited.signal, 'SIGKILL');
  for (let i = 1; i <= 5; i++) {
    t.equal(await keepAlive(`kept-${i}`), 200, 'the surviving worker keeps its connection');
    t.equal((await w.access(`kept-${i}`)).worker, kept.worker);
  }
  await w.line((e) => e.msg === 'data-plane worker replaced: listening');
  const after = await bothWorkers(w, 'replaced');
  t.equal(after.size, 2, 'the replacement serves beside the survivor');
  t.notOk([...after.values()].includes(victim![1]), 'not the killed one');
  t.ok(requestsTotal(await admin(w.router, '/metrics')) >= totalBefore + 5, 'counters stay monotonic across the death');

  // SIGTERM: the primary drains the workers, they exit, it exits 0.
  const pids = [...after.values()];
  t.equal(await w.router.stop(), 0);
  await w.line((e) => e.msg === 'fairway stopped');
  for (const pid of pids) t.throws(() => process.kill(pid, 0), 'the worker is gone');
});

t.test('ACME HTTP-01 with two workers: the answer reaches both before Pebble validates', async (t) => {
  const [httpPort, httpsPort] = await freeLoopbackPorts(2);
  const pebble = await startPebble({ httpPort: httpPort!, tlsPort: httpsPort! });
  t.teardown(() => pebble.stop());
  const acmeDir = mkdtempSync(path.join(tmpdir(), 'fairway-workers-acme-'));
  writeFileSync(path.join(acmeDir, 'pebble-ca.pem'), pebble.caBundle);
  const yaml = `
listen: { http: 127.0.0.1:${httpPort}, https: 127.0.0.1:${httpsPort}, admin: 127.0.0.1:0 }
tls:
  storage: ${path.join(acmeDir, 'data')}
  acme: { directory: ${pebble.directory}, email: ops@example.test, challenge: http-01, caBundle: ${path.join(acmeDir, 'pebble-ca.pem')}, retry: { min: 200ms, max: 1s } }
apps:
  web:
    domains: [acme.example.test]
    versions: { v1: { weight: 1, endpoints: ["${v1.address}"] } }
`;
  const w = await serveWithWorkers(t, yaml, 'acme');
  const issued = await w.line((e) => e.msg === 'certificate issued over ACME', 30_000);
  t.equal(issued.host, 'acme.example.test');
  // Both workers got the certificate: every handshake on new connections verifies against Pebble's root.
  const ca = await pebble.roots();
  for (let i = 0; i < 10; i++) {
    const h = await hello(w.httpsPort, { servername: 'acme.example.test', ca, rejectUnauthorized: true });
    t.equal(h.authorized, true);
  }
  t.equal(w.logs.filter((e) => e.code === 'FW_WORKER_TIMEOUT').length, 0, 'every worker confirmed the challenge answers');
  t.equal(await w.router.stop(), 0);
});

t.test('endpoint health with two workers: only the primary probes and both workers follow its marks; ejections are per worker, shown per worker and summed', async (t) => {
  // Two endpoints counting the probes they get (from any process); `checked` fails its check on demand.
  const sick = { on: false };
  let probes = 0;
  const probeCounting = (name: string, failing: () => boolean) => upstream(name, (req, res) => {
    req.resume();
    if (req.url === '/healthz') {
      probes++;
      res.writeHead(failing() ? 503 : 200);
      return void res.end();
    }
    res.writeHead(200, { 'x-upstream': name });
    res.end();
  });
  const checked = await probeCounting('checked', () => sick.on);
  const healthy = await probeCounting('healthy', () => false);
  const refused = await refusedAddress();
  const yaml = `
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
shutdown: { delay: 0s, drainTimeout: 2s }
apps:
  probed:
    domains: [probed.test]
    healthCheck: { path: /healthz, interval: 100ms, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 1 }
    versions: { v1: { weight: 1, endpoints: ["${checked.address}", "${healthy.address}"] } }
  ejecting:
    domains: [ejecting.test]
    loadBalancing: round-robin
    outlierDetection: { consecutiveFailures: 1, baseEjectionTime: 5m }
    retries: { attempts: 2 }
    versions: { v1: { weight: 1, endpoints: ["${refused}", "${healthy.address}"] } }
`;
  const w = await serveWithWorkers(t, yaml, 'endpoint-health');
  const metrics = () => admin(w.router, '/metrics') as Promise<string>;
  const metric = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  const checksCounted = (text: string) => metric(text, /^fairway_health_checks_total\{app="probed",result="passed"\} (\d+)$/m) + metric(text, /^fairway_health_checks_total\{app="probed",result="failed"\} (\d+)$/m);

  // One prober: every probe the endpoints got is one the primary counted (N workers probing too would make it N + 1 times as many).
  // Polled (bounded): probes arrive on a timer, with no event to await.
  for (let i = 0; i < 100 && probes < 16; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  const got = probes;
  const counted = checksCounted(await metrics());
  t.ok(got >= 16, `probes arrived (${got})`);
  t.ok(counted >= got - 2 && counted <= got + 2, `the endpoints got ${got} probes, the primary counted ${counted} (one per endpoint may be in flight)`);

  // Its check fails: the primary's mark reaches both workers, neither sends it a request.
  sick.on = true;
  await w.line((e) => e.msg === 'endpoint failed its health check: unhealthy' && e.endpoint === checked.address);
  t.equal(w.logs.filter((e) => e.msg === 'endpoint failed its health check: unhealthy' && 'worker' in e).length, 0, 'decided and logged by the primary, not the workers');
  // The marks went to the workers in the turn the primary decided (before its log line); IPC keeps
  // order, so once a collect sent after that line is answered, both workers hold the mark.
  await metrics();
  const servedBy = new Set<number>();
  for (let i = 0; i < 200 && (servedBy.size < 2 || i < 20); i++) {
    const id = `probed-${i}`;
    t.equal((await freshGet(w.httpPort, id, 'probed.test')).headers['x-upstream'], 'healthy', 'never the unhealthy endpoint');
    servedBy.add((await w.access(id)).worker);
  }
  t.equal(servedBy.size, 2, 'both workers served, neither picked it');
  const probed = await admin(w.router, '/v1/apps/probed');
  const state = probed.versions[0].endpointStates.find((e: any) => e.endpoint === checked.address);
  t.equal(state.state, 'unhealthy');
  t.same(Object.values(state.workers).map((x: any) => x.state), ['unhealthy', 'unhealthy'], 'unhealthy in each worker');
  t.match(await metrics(), /^fairway_endpoints_unavailable\{app="probed",version="v1",reason="unhealthy"\} 1$/m, 'one endpoint, counted once over the workers');

  // Outlier ejection is each worker's own: one connection, one worker; the refused endpoint is ejected there only.
  const client = new Client(`http://127.0.0.1:${w.httpPort}`, { pipelining: 1 });
  t.teardown(() => client.close());
  for (let i = 0; i < 4; i++) {
    const res = await client.request({ path: '/', method: 'GET', headers: { host: 'ejecting.test', 'x-request-id': `eject-${i}` } });
    await res.body.text();
    t.equal(res.statusCode, 200, 'the refused attempt is retried on the other endpoint');
  }
  const ejectedIn = (await w.access('eject-0')).worker as number;
  const ejecting = await admin(w.router, '/v1/apps/ejecting');
  const refusedState = ejecting.versions[0].endpointStates.find((e: any) => e.endpoint === refused);
  t.equal(refusedState.state, 'ejected', 'merged: ejected somewhere');
  t.equal(refusedState.workers[ejectedIn].state, 'ejected', `ejected in worker ${ejectedIn}, which saw the failure`);
  const others = Object.entries(refusedState.workers).filter(([id]) => Number(id) !== ejectedIn);
  t.equal(others.length, 1);
  t.equal((others[0]![1] as any).state, 'available', 'available in the other worker');
  const text = await metrics();
  t.match(text, /^fairway_endpoint_ejections_total\{app="ejecting",version="v1"\} 1$/m, 'the worker\'s ejection, in the primary\'s counter');
  t.match(text, /^fairway_endpoints_unavailable\{app="ejecting",version="v1",reason="ejected"\} 1$/m);

  // Each worker's process, pushed with its counters.
  for (const id of servedBy) {
    t.ok(metric(text, new RegExp(`^fairway_worker_resident_memory_bytes\\{worker="${id}"\\} (\\d+)$`, 'm')) > 10e6, `worker ${id}: resident memory`);
    t.ok(metric(text, new RegExp(`^fairway_worker_heap_used_bytes\\{worker="${id}"\\} (\\d+)$`, 'm')) > 1e6, `worker ${id}: heap used`);
    t.ok(metric(text, new RegExp(`^fairway_worker_cpu_seconds_total\\{worker="${id}"\\} ([\\d.e-]+)$`, 'm')) > 0, `worker ${id}: CPU time`);
    t.match(text, new RegExp(`^fairway_worker_event_loop_lag_seconds\\{worker="${id}"\\} [\\d.e-]+$`, 'm'), `worker ${id}: event-loop lag`);
  }
  t.equal(await w.router.stop(), 0);
});
