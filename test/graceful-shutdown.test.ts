/**
 * The graceful stop of a real `fairway serve` process (dist/cli.js: `npm run build`
 * first) on SIGTERM/SIGINT, against real endpoints on loopback and a real load client:
 * readiness, `Connection: close`, the accepting delay, the drain deadline and its cuts,
 * WebSocket tunnels and TCP passthrough sessions, exit codes and log lines (README
 * "Stopping and draining"); and, in process, the settings' schema and `Router.drain()`
 * following a reload. Each test uses a short `shutdown.delay` / `drainTimeout`.
 */
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Client, Pool, request } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { ConfigError, parseConfig } from '../src/config/load-config.js';
import { startRouterProcess, type RouterProcess } from './helpers/router-process.js';
import { startTestRouter, waitForLog } from './helpers/test-router.js';
import { refusedAddress, upstreamStarter } from './helpers/upstreams.js';

type Entry = Record<string, any>;

interface DrainingProcess {
  readonly router: RouterProcess;
  /** Log lines printed after `fairway is serving`, parsed, in order. */
  readonly logs: Entry[];
  /** Resolves with the first log line (already printed or to come) that `match` accepts. */
  line(match: (e: Entry) => boolean): Promise<Entry>;
  /** Resolves with the exit code and when the process exited (performance.now()). */
  readonly exited: Promise<{ code: number | null; at: number }>;
}

const dir = mkdtempSync(path.join(tmpdir(), 'fairway-shutdown-'));
let configs = 0;

/** Starts `fairway serve` on `yaml` (listeners on ephemeral loopback ports) and follows its log. */
async function serve(t: Test, yaml: string): Promise<DrainingProcess> {
  const file = path.join(dir, `fairway-${++configs}.yaml`);
  writeFileSync(file, `listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }\n${yaml}`);
  const router = await startRouterProcess(file);
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => router.child.once('exit', (code) => resolve({ code, at: performance.now() })));
  t.teardown(() => {
    if (router.child.exitCode === null && router.child.signalCode === null) router.child.kill('SIGKILL');
  });
  const logs: Entry[] = [];
  const waiters = new Set<{ match: (e: Entry) => boolean; resolve: (e: Entry) => void }>();
  createInterface({ input: router.child.stdout! }).on('line', (text) => {
    const entry = JSON.parse(text) as Entry;
    logs.push(entry);
    for (const w of waiters) {
      if (!w.match(entry)) continue;
      waiters.delete(w);
      w.resolve(entry);
    }
  });
  const line = (match: (e: Entry) => boolean) => {
    const found = logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise<Entry>((resolve, reject) => {
      const w = { match, resolve };
      waiters.add(w);
      void exited.then(() => setImmediate(() => waiters.has(w) && reject(new Error(`the router exited without that log line; stderr: ${router.stderr()}`))));
    });
  };
  return { router, logs, line, exited };
}

const app = (endpoint: string) => `apps:\n  web:\n    domains: [web.test]\n    versions:\n      v1: { weight: 1, endpoints: ["${endpoint}"] }\n`;
const msg = (text: string) => (e: Entry) => e.msg === text;
const STARTED = 'stopping: draining (readiness is false; responses close their connections; listeners accept for the delay)';
const LISTENERS_CLOSED = 'stopping: listeners closed; requests, tunnels and TCP sessions in flight finish within the drain timeout';
const cutWarning = (e: Entry) => e.code === 'FW_DRAIN_TIMEOUT';

/** One GET through the router on a new connection: status and `connection` header, or the error code. */
async function freshGet(origin: string, pathname = '/'): Promise<{ status?: number; connection?: string; error?: string }> {
  const client = new Client(origin);
  try {
    const res = await request(`${origin}${pathname}`, { dispatcher: client, headers: { host: 'web.test' } });
    await res.body.text();
    return { status: res.statusCode, connection: res.headers.connection as string };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  } finally {
    await client.destroy();
  }
}

t.test('shutdown settings: delay 0s and drainTimeout 30s by default, durations in any unit, a bad value or key named by its key path', async (t) => {
  t.same(parseConfig('apps: {}\n', 'f.yaml').settings.shutdown, { delay: 0, drainTimeout: 30_000 });
  t.same(parseConfig('shutdown: { delay: 5s, drainTimeout: 2m }\n', 'f.yaml').settings.shutdown, { delay: 5000, drainTimeout: 120_000 });
  const bad = t.throws(() => parseConfig('shutdown:\n  delay: soon\n  drainTimeout: 1s\n  grace: 5s\n', 'f.yaml')) as unknown as ConfigError;
  t.equal(bad.code, 'FW_CONFIG_INVALID');
  t.match(bad.message, 'f.yaml:2:10: shutdown.delay: must be a duration like 500ms, 5s or 2m');
  t.match(bad.message, 'f.yaml:4:3: shutdown.grace: unknown key', 'so is an unknown key');
});

t.test('SIGTERM under load: every request sent before the signal gets its 200, later responses say Connection: close, /readyz turns 503 at once, new connections are served during the delay and refused after it, exit 0 within delay + drainTimeout', async (t) => {
  const DELAY = 1000;
  const DRAIN = 3000;
  // "/slow" answers after 1 s; the upstream keeps when each slow one it holds arrived.
  const slowSince = new Set<number>();
  const onSlow = new Set<() => void>();
  const upstream = await upstreamStarter(t)('web', (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const answer = () => res.writeHead(200, { 'content-type': 'text/plain' }).end(req.url);
    if (req.url !== '/slow') return answer();
    const since = performance.now();
    slowSince.add(since);
    setTimeout(() => {
      slowSince.delete(since);
      answer();
    }, 1000);
    for (const notify of onSlow) notify();
  });
  const p = await serve(t, `shutdown: { delay: ${DELAY}ms, drainTimeout: ${DRAIN}ms }\nlog: { access: false }\n${app(upstream.address)}`);
  const origin = p.router.http;

  // The load: 4 keep-alive connections, each with a worker sending requests back to back; two of them only slow ones.
  interface Sent { slow: boolean; sentAt: number; doneAt?: number; status?: number; connection?: string; error?: string }
  const sent: Sent[] = [];
  const pool = new Pool(origin, { connections: 4, pipelining: 1 });
  t.teardown(() => pool.destroy());
  let loadStopped = false;
  const worker = async (slow: boolean) => {
    while (!loadStopped) {
      const s: Sent = { slow, sentAt: performance.now() };
      sent.push(s);
      try {
        const res = await pool.request({ path: slow ? '/slow' : '/fast', method: 'GET', headers: { host: 'web.test' } });
        await res.body.text();
        Object.assign(s, { status: res.statusCode, connection: res.headers.connection, doneAt: performance.now() });
      } catch (err) {
        // After the listeners closed, new connections are refused: this worker's part is over.
        Object.assign(s, { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message, doneAt: performance.now() });
        return;
      }
    }
  };
  const workers = [worker(true), worker(true), worker(false), worker(false)];

  // Signal once some fast requests were served and the upstream holds both slow ones with 500 ms or more left.
  await new Promise<void>((resolve) => {
    const check = () => {
      const now = performance.now();
      if (slowSince.size < 2 || [...slowSince].some((since) => now - since > 500) || sent.filter((s) => !s.slow && s.status === 200).length < 20) return;
      onSlow.delete(check);
      resolve();
    };
    onSlow.add(check);
  });
  const signalAt = performance.now();
  p.router.child.kill('SIGTERM');

  // /readyz: 503 "draining" well before the delay ends (the admin API still answers).
  let readyz: { status: number; body: Entry };
  do {
    const res = await request(`${p.router.admin}/readyz`);
    readyz = { status: res.statusCode, body: (await res.body.json()) as Entry };
  } while (readyz.status === 200 && performance.now() - signalAt < DELAY);
  const notReadyAt = performance.now();
  t.equal(readyz.status, 503, '/readyz answers 503 once the signal arrived');
  t.equal(readyz.body.status, 'draining');
  t.ok(notReadyAt - signalAt < DELAY / 2, `…at once (${Math.round(notReadyAt - signalAt)} ms after the signal)`);

  // During the delay: a new connection is accepted and served, and told to close.
  const during = await freshGet(origin, '/during');
  t.ok(performance.now() - signalAt < DELAY, 'that request was answered within the delay');
  t.same(during, { status: 200, connection: 'close' }, 'a new connection during the delay is served, with Connection: close');

  // After the delay: the listeners stop; new connections are refused while the slow requests finish.
  const closedLine = await p.line(msg(LISTENERS_CLOSED));
  t.ok(performance.now() - signalAt >= DELAY - 50, 'the listeners closed after the delay');
  t.same(await freshGet(origin, '/after'), { error: 'ECONNREFUSED' }, 'a new connection after the delay is refused');
  t.match(closedLine, { drainTimeout: DRAIN });

  const { code, at } = await p.exited;
  loadStopped = true;
  await Promise.all(workers);
  t.equal(code, 0, 'the process exits 0');
  t.ok(at - signalAt < DELAY + DRAIN + 1000, `within delay + drainTimeout (+1 s): ${Math.round(at - signalAt)} ms`);

  const before = sent.filter((s) => s.sentAt < signalAt);
  t.ok(before.length >= 22, `${before.length} requests were sent before the signal`);
  t.same(before.filter((s) => s.status !== 200), [], 'every request sent before the signal got a 200: none failed');
  const heldAtSignal = before.filter((s) => s.slow && s.doneAt! > notReadyAt);
  t.equal(heldAtSignal.length, 2, 'both slow requests in flight at the signal finished during the drain');
  t.same(heldAtSignal.map((s) => s.connection), ['close', 'close'], '…and their responses, started after the signal, said Connection: close');
  const afterDraining = sent.filter((s) => s.sentAt > notReadyAt && s.status !== undefined);
  t.ok(afterDraining.length > 0, `${afterDraining.length} requests were sent and served after /readyz turned 503`);
  t.same(afterDraining.filter((s) => s.connection !== 'close'), [], 'every one of their responses said Connection: close');
  t.ok(sent.filter((s) => s.error !== undefined).every((s) => s.sentAt > signalAt), 'only requests sent after the signal failed (refused after the delay)');

  t.match(p.logs.find(msg(STARTED)), { level: 'info', reason: 'SIGTERM', delay: DELAY, drainTimeout: DRAIN }, 'the start of the drain is logged with its settings');
  t.notOk(p.logs.find(cutWarning), 'nothing was cut');
  t.match(p.logs.find(msg('fairway stopped')), { cut: { requests: 0, tunnels: 0, tcpSessions: 0 }, durationMs: Number });
});

t.test('a request longer than drainTimeout is cut at the deadline; the exit is still 0 and the log says one request was cut', async (t) => {
  const DRAIN = 500;
  let arrived!: () => void;
  const held = new Promise<void>((resolve) => (arrived = resolve));
  const upstream = await upstreamStarter(t)('never', (req) => {
    req.resume();
    arrived(); // …and never answered
  });
  const p = await serve(t, `shutdown: { drainTimeout: ${DRAIN}ms }\n${app(upstream.address)}`);
  const client = new Client(p.router.http);
  t.teardown(() => client.destroy());
  const answer = request(`${p.router.http}/hang`, { dispatcher: client, headers: { host: 'web.test' } }).then(
    () => 'answered',
    (err: NodeJS.ErrnoException) => err.code,
  );
  await held;
  const signalAt = performance.now();
  p.router.child.kill('SIGTERM');
  t.equal(await answer, 'UND_ERR_SOCKET', 'the client sees its connection closed');
  const cutAt = performance.now() - signalAt;
  t.ok(cutAt >= DRAIN - 50, `at the deadline (${Math.round(cutAt)} ms after the signal, delay 0)`);
  const { code, at } = await p.exited;
  t.equal(code, 0, 'exit 0 all the same');
  t.ok(at - signalAt < DRAIN + 2000, 'promptly after the deadline');
  t.match(p.logs.find(cutWarning), { level: 'warn', cut: { requests: 1, tunnels: 0, tcpSessions: 0 }, drainTimeout: DRAIN });
  t.match(p.logs.find((e) => e.log === 'access' && e.path === '/hang'), { status: 499 }, 'its access-log line says 499: the client connection was closed');
  t.match(p.logs.find(msg('fairway stopped')), { cut: { requests: 1, tunnels: 0, tcpSessions: 0 } });
});

/** A WebSocket echo endpoint and a TCP echo endpoint on loopback. */
async function echoEndpoints(t: Test): Promise<{ ws: string; tcp: string }> {
  const http = createServer((_req, res) => res.end('plain http'));
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo:${String(data)}`)));
  const tcp = createTcpServer((s) => s.pipe(s));
  for (const s of [http, tcp]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    http.closeAllConnections();
    http.close();
    tcp.close();
  });
  return { ws: `127.0.0.1:${(http.address() as AddressInfo).port}`, tcp: `127.0.0.1:${(tcp.address() as AddressInfo).port}` };
}

/** Sends `text` and resolves with the next message. */
async function ask(ws: WebSocket, text: string): Promise<string> {
  const reply = once(ws, 'message');
  ws.send(text);
  return String((await reply)[0]);
}

/** Writes `text` and resolves with what comes back (the endpoint echoes). */
async function echo(socket: Socket, text: string): Promise<string> {
  const reply = once(socket, 'data');
  socket.write(text);
  return String((await reply)[0]);
}

async function openSessions(t: Test, p: DrainingProcess, tcpPort: number): Promise<{ ws: WebSocket; tcp: Socket }> {
  const ws = new WebSocket(`${p.router.http.replace('http:', 'ws:')}/socket`, { headers: { host: 'web.test' } });
  ws.on('error', () => {});
  await once(ws, 'open');
  const tcp = connect(tcpPort, '127.0.0.1');
  tcp.on('error', () => {});
  await once(tcp, 'connect');
  t.teardown(() => {
    ws.terminate();
    tcp.destroy();
  });
  t.equal(await ask(ws, 'hello'), 'echo:hello');
  t.equal(await echo(tcp, 'hello'), 'hello');
  return { ws, tcp };
}

const withTcpRoute = (yaml: string, port: string, endpoint: string) => `${yaml}tcp:\n  echo:\n    listen: ${port}\n    endpoints: ["${endpoint}"]\n`;

t.test('a WebSocket tunnel and a TCP passthrough session keep working through the delay and after the listeners close, and are cut at the drain deadline', async (t) => {
  const DELAY = 300;
  const DRAIN = 1000;
  const endpoints = await echoEndpoints(t);
  const tcpListen = await refusedAddress();
  const p = await serve(t, withTcpRoute(`shutdown: { delay: ${DELAY}ms, drainTimeout: ${DRAIN}ms }\n${app(endpoints.ws)}`, tcpListen, endpoints.tcp));
  const { ws, tcp } = await openSessions(t, p, Number(tcpListen.split(':')[1]));
  const wsClosed = once(ws, 'close');
  const tcpClosed = once(tcp, 'close');

  const signalAt = performance.now();
  p.router.child.kill('SIGTERM');
  await p.line(msg(STARTED));
  t.equal(await ask(ws, 'in the delay'), 'echo:in the delay', 'the tunnel works during the delay');
  t.equal(await echo(tcp, 'in the delay'), 'in the delay', 'so does the TCP session');
  await p.line(msg(LISTENERS_CLOSED));
  t.equal(await ask(ws, 'draining'), 'echo:draining', 'the tunnel works after the listeners closed');
  t.equal(await echo(tcp, 'draining'), 'draining', 'so does the TCP session');
  t.same(await freshGet(p.router.http), { error: 'ECONNREFUSED' }, 'while new connections are refused');

  const [wsCode] = (await wsClosed) as [number];
  const wsAt = performance.now() - signalAt;
  await tcpClosed;
  const tcpAt = performance.now() - signalAt;
  t.equal(wsCode, 1006, 'the tunnel ends without a close frame (the router does not speak WebSocket)');
  t.ok(wsAt >= DELAY + DRAIN - 50, `the tunnel was closed at the deadline (${Math.round(wsAt)} ms after the signal)`);
  t.ok(tcpAt >= DELAY + DRAIN - 50, `so was the TCP session (${Math.round(tcpAt)} ms)`);
  const { code } = await p.exited;
  t.equal(code, 0);
  t.match(p.logs.find(cutWarning), { cut: { requests: 0, tunnels: 1, tcpSessions: 1 } }, 'the log says one tunnel and one TCP session were cut');
  t.match(p.logs.find((e) => e.log === 'access' && e.status === 101), { closedBy: 'shutdown' }, 'the tunnel\'s access-log line says the shutdown closed it');
});

t.test('a tunnel and a TCP session that end on their own during the drain let the process exit before the deadline, with nothing cut', async (t) => {
  const DRAIN = 20_000;
  const endpoints = await echoEndpoints(t);
  const tcpListen = await refusedAddress();
  const p = await serve(t, withTcpRoute(`shutdown: { delay: 100ms, drainTimeout: ${DRAIN}ms }\n${app(endpoints.ws)}`, tcpListen, endpoints.tcp));
  const { ws, tcp } = await openSessions(t, p, Number(tcpListen.split(':')[1]));
  const signalAt = performance.now();
  p.router.child.kill('SIGTERM');
  await p.line(msg(LISTENERS_CLOSED));
  t.equal(await ask(ws, 'last words'), 'echo:last words');
  ws.close(1000, 'done');
  tcp.end();
  const { code, at } = await p.exited;
  t.equal(code, 0);
  t.ok(at - signalAt < 5000, `exited as soon as they ended (${Math.round(at - signalAt)} ms), not at the ${DRAIN} ms deadline`);
  t.notOk(p.logs.find(cutWarning), 'nothing was cut');
  t.match(p.logs.find(msg('fairway stopped')), { cut: { requests: 0, tunnels: 0, tcpSessions: 0 } });
});

for (const [signal, exitCode] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
  t.test(`a second ${signal} during the drain exits at once with ${exitCode}`, async (t) => {
    const upstream = await upstreamStarter(t)('web');
    const p = await serve(t, `shutdown: { delay: 20s, drainTimeout: 20s }\n${app(upstream.address)}`);
    p.router.child.kill(signal);
    t.match(await p.line(msg(STARTED)), { reason: signal, delay: 20_000 });
    const secondAt = performance.now();
    p.router.child.kill(signal);
    const { code, at } = await p.exited;
    t.equal(code, exitCode, `128 + the number of ${signal}`);
    t.ok(at - secondAt < 2000, `at once (${Math.round(at - secondAt)} ms), not after the 20 s delay`);
    t.match(p.logs.at(-1), { level: 'warn', signal, msg: 'stopping at once: a second signal during the drain' }, 'the last log line says why');
  });
}

t.test('Router.drain() uses the shutdown settings of the live config: a reload changes them; /readyz says draining during the delay and the data plane still serves, with Connection: close', async (t) => {
  const upstream = await upstreamStarter(t)('web');
  const r = await startTestRouter(app(upstream.address));
  t.teardown(() => r.close());
  await r.rewrite(`shutdown: { delay: 300ms, drainTimeout: 1s }\n${app(upstream.address)}`);
  t.same((await r.adminGet('/readyz')).status, 200);
  const drained = r.router.drain('test');
  t.match(await waitForLog(r, msg(STARTED)), { reason: 'test', delay: 300, drainTimeout: 1000 }, 'the reloaded values');
  const readyz = await r.adminGet('/readyz');
  t.same([readyz.status, readyz.json().status], [503, 'draining']);
  t.same(await freshGet(r.http), { status: 200, connection: 'close' }, 'served during the delay, with Connection: close');
  t.same(await drained, { cut: { requests: 0, tunnels: 0, tcpSessions: 0 }, durationMs: Number(r.logs.find(msg('fairway stopped'))!.durationMs) });
  t.ok((await drained).durationMs >= 300, 'after the delay');
  t.equal(await r.router.close(), await drained, 'close() after drain() resolves with the same stop');
});
