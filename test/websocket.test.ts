import t from 'tap';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { entryJson, type AccessLogEntry } from '../src/observability/access-log.js';
import { refusedAddress } from './helpers/upstreams.js';
import { startTestRouter, type TestRouter } from './helpers/test-router.js';

/** A WebSocket endpoint that answers each text message with `<name>:<message>`. */
interface EchoEndpoint {
  readonly name: string;
  readonly address: string;
  readonly wss: WebSocketServer;
  /** Server-side sockets of the connections it accepted. */
  readonly sockets: Set<WebSocket>;
  close(): Promise<void>;
}

const closers: (() => Promise<void>)[] = [];
t.teardown(async () => {
  for (const close of closers.reverse()) await close();
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function echoEndpoint(name: string, onConnection?: (ws: WebSocket, req: IncomingMessage) => void): Promise<EchoEndpoint> {
  const server = createServer((_req, res) => res.end('plain http'));
  const wss = new WebSocketServer({ server });
  const sockets = new Set<WebSocket>();
  wss.on('connection', (ws, req) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    ws.on('message', (data, binary) => {
      if (!binary) ws.send(`${name}:${String(data)}`);
    });
    onConnection?.(ws, req);
  });
  const address = await listen(server);
  const close = async () => {
    for (const ws of sockets) ws.terminate();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  closers.push(close);
  return { name, address, wss, sockets, close };
}

async function router(yaml: string, options?: Parameters<typeof startTestRouter>[1]): Promise<TestRouter> {
  const r = await startTestRouter(yaml, options);
  closers.push(() => r.close());
  return r;
}

/** Opens a WebSocket through the router to `host`; rejects with the status of a refused upgrade. */
async function open(r: TestRouter, host: string, path = '/socket', tls = false): Promise<WebSocket> {
  const port = tls ? r.router.httpsAddress!.port : r.router.httpAddress.port;
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${port}${path}`, { headers: { host }, rejectUnauthorized: false });
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body })));
    });
  });
  closers.push(async () => ws.terminate());
  return ws;
}

/** The error of an upgrade the router refuses (with its `status`, `headers` and `body`). */
async function refusal(r: TestRouter, host: string): Promise<unknown> {
  return open(r, host).then(
    () => new Error('the upgrade was accepted'),
    (err: unknown) => err,
  );
}

/** Sends `text` and resolves with the next message. */
function ask(ws: WebSocket, text: string): Promise<string> {
  const answer = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
  ws.send(text);
  return answer;
}

/** An entry's serialised fields (as the per-app logs keep them) as an object. */
const parse = (fields: string) => JSON.parse(entryJson(fields, 0)) as AccessLogEntry;

/** The first access-log entry of `app` that matches, among those already logged or the next ones. */
function entryOf(r: TestRouter, app: string, match: (e: AccessLogEntry) => boolean): Promise<AccessLogEntry> {
  const seen = r.router.appLogs.read(app, 1000).map((s) => parse(s.fields)).find(match);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => {
    const stop = r.router.appLogs.follow(app, undefined, (fields) => {
      const entry = parse(fields);
      if (!match(entry)) return;
      stop();
      resolve(entry);
    });
  });
}

const metricsOf = async (r: TestRouter) => (await r.adminGet('/metrics')).body;

const appYaml = (app: string, domain: string, versions: string, extra = '') => `
  ${app}:
    domains: [${domain}]
${extra}    versions:
${versions}`;

t.test('a WebSocket echo keeps flowing, over HTTP and HTTPS, through 20 config reloads and a weight change; new connections follow the weights', async (t) => {
  const v1 = await echoEndpoint('v1');
  const v2 = await echoEndpoint('v2');
  const config = (i: number, weights = 'v1: 100, v2: 0', v1Endpoints = `"${v1.address}"`) => `
listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:0 }
apps:
  chat:
    domains: [chat.test]
    versions:
      v1: { weight: ${weights.split(', ')[0]!.split(': ')[1]}, endpoints: [${v1Endpoints}] }
      v2: { weight: ${weights.split(', ')[1]!.split(': ')[1]}, endpoints: ["${v2.address}"] }
  other:
    domains: [other.test]
    versions: { v1: { weight: 1, endpoints: ["127.0.0.1:${20000 + i}"] } }
`;
  const r = await router(config(0));
  const plain = await open(r, 'chat.test');
  const secure = await open(r, 'chat.test', '/secure', true);
  t.equal(await ask(plain, 'hello'), 'v1:hello');
  t.equal(await ask(secure, 'hello'), 'v1:hello', 'over HTTPS too');

  for (let i = 1; i <= 20; i++) {
    const snapshot = await r.rewrite(config(i));
    t.equal(snapshot.apps.find((a) => a.name === 'other')!.versions[0]!.endpoints[0]!.port, 20000 + i);
    const [a, b] = await Promise.all([ask(plain, `m${i}`), ask(secure, `s${i}`)]);
    if (a !== `v1:m${i}` || b !== `v1:s${i}`) t.fail(`reload ${i}: got ${a} and ${b}`);
  }
  t.pass('20 reloads: every message echoed on both connections');

  // A weight change moves new connections only.
  const weights = await r.adminPut('/v1/apps/chat/weights', { v1: 0, v2: 100 });
  t.equal(weights.status, 200);
  t.equal(await ask(plain, 'after weights'), 'v1:after weights', 'an open tunnel stays on its endpoint');
  const fresh = await open(r, 'chat.test');
  t.equal(await ask(fresh, 'new'), 'v2:new', 'a new connection goes by the new weights');

  // A snapshot that drops v1's endpoint altogether: the open tunnels keep it.
  await r.rewrite(config(21, 'v1: 0, v2: 100', ''));
  t.equal(await ask(plain, 'still here'), 'v1:still here');
  t.equal(await ask(secure, 'still here'), 'v1:still here');
  t.equal(v1.sockets.size, 2, 'both tunnels to v1 are still open');

  const metrics = await metricsOf(r);
  t.match(metrics, /fairway_upgrades_total\{app="chat",version="v1",result="upgraded"\} 2/);
  t.match(metrics, /fairway_upgrades_total\{app="chat",version="v2",result="upgraded"\} 1/);
  t.match(metrics, /fairway_upgrades_active\{app="chat",version="v1"\} 2/);
  t.match(metrics, /fairway_upgrade_bytes_total\{app="chat",version="v1",direction="in"\} [1-9]\d*/);
});

t.test('the request reaching the endpoint carries the X-Forwarded-* headers, Connection/Upgrade and the WebSocket headers; the tunnel is logged once when it ends', async (t) => {
  let seen: IncomingMessage | undefined;
  const ep = await echoEndpoint('ep', (_ws, req) => (seen = req));
  const r = await router(`apps:${appYaml('chat', 'chat.test', `      v1: { weight: 1, endpoints: ["${ep.address}"] }\n`)}`);
  const ws = await open(r, 'chat.test', '/room?id=7');
  t.equal(await ask(ws, 'x'), 'ep:x');
  const h = seen!.headers;
  t.equal(seen!.url, '/room?id=7');
  t.equal(h.host, 'chat.test');
  t.equal(h.upgrade, 'websocket');
  t.equal(h.connection, 'upgrade');
  t.ok(h['sec-websocket-key'], 'Sec-WebSocket-Key passed on');
  t.equal(h['x-forwarded-for'], '127.0.0.1');
  t.equal(h['x-forwarded-proto'], 'http');
  t.equal(h['x-forwarded-host'], 'chat.test');
  t.match(h['x-request-id'], /./);
  t.notOk(await r.router.appLogs.read('chat', 10).find((s) => parse(s.fields).status === 101), 'no line while the tunnel is open');

  ws.close(1000, 'bye');
  const line = await entryOf(r, 'chat', (e) => e.status === 101);
  t.match(line, {
    app: 'chat', version: 'v1', method: 'GET', host: 'chat.test', path: '/room?id=7', status: 101, upgrade: 'websocket',
    endpoint: ep.address, clientIp: '127.0.0.1', closedBy: 'upstream',
  });
  t.ok((line.bytes as number) > 0 && (line.bytesIn as number) > 0, `bytes both ways: ${line.bytes} out, ${line.bytesIn} in`);
  t.ok((line.duration as number) >= (line.upstreamDuration as number), 'duration covers the whole connection');
  t.match(await metricsOf(r), /fairway_upgrades_active\{app="chat",version="v1"\} 0/);
  t.notMatch(await metricsOf(r), /fairway_requests_total\{app="chat",version="v1"/, 'a tunnel is not a request in the latency and status counters');
});

t.test('an Upgrade picks its version like any request: X-Fairway-Version, then the sticky cookie, which the 101 sets', async (t) => {
  const v1 = await echoEndpoint('v1');
  const v2 = await echoEndpoint('v2');
  const r = await router(`
sticky: { secret: "a-test-secret-of-enough-length" }
apps:${appYaml('chat', 'chat.test', `      v1: { weight: 1, endpoints: ["${v1.address}"] }\n      v2: { weight: 0, endpoints: ["${v2.address}"] }\n`, '    sticky: true\n    versionHeader: true\n')}`);
  const port = r.router.httpAddress.port;
  const upgrade = (headers: Record<string, string>) =>
    new Promise<{ ws: WebSocket; cookie: string | undefined }>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { host: 'chat.test', ...headers } });
      closers.push(async () => ws.terminate());
      ws.once('upgrade', (res: IncomingMessage) => ws.once('open', () => resolve({ ws, cookie: res.headers['set-cookie']?.[0] })));
      ws.once('error', reject);
    });
  const byHeader = await upgrade({ 'x-fairway-version': 'v2' });
  t.equal(await ask(byHeader.ws, 'h'), 'v2:h', 'the header reaches v2 at weight 0');
  t.equal(byHeader.cookie, undefined, 'no cookie for a version chosen by header');
  const byWeight = await upgrade({});
  t.equal(await ask(byWeight.ws, 'w'), 'v1:w');
  t.match(byWeight.cookie, /chat=v1\./, 'the 101 sets the sticky cookie');
});

t.test('a slow reader holds the endpoint back instead of filling the router: the bytes wait in the endpoint, then all arrive in order', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 7);
  const total = 1024; // 64 MiB
  let server: WebSocket | undefined;
  const ep = await echoEndpoint('ep', (ws) => (server = ws));
  const r = await router(`apps:${appYaml('bulk', 'bulk.test', `      v1: { weight: 1, endpoints: ["${ep.address}"] }\n`)}`);
  const ws = await open(r, 'bulk.test');
  ws.pause();
  while (server === undefined) await once(ep.wss, 'connection');
  for (let i = 0; i < total; i++) {
    chunk.writeUInt32BE(i, 0);
    server.send(Buffer.from(chunk));
  }
  // Measured from here: the endpoint's own copies are made, nothing has been read yet.
  const before = process.memoryUsage().arrayBuffers;
  // Wait until the endpoint stops getting rid of bytes: it can only be the router not reading.
  let held = server.bufferedAmount;
  for (let stable = 0; stable < 5; ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    stable = server.bufferedAmount === held ? stable + 1 : 0;
    held = server.bufferedAmount;
  }
  const sent = chunk.length * total;
  t.ok(held > sent / 2, `the endpoint still holds ${(held / 2 ** 20).toFixed(1)} MiB of ${sent / 2 ** 20} MiB: the router stopped reading`);
  const grown = process.memoryUsage().arrayBuffers - before;
  t.ok(grown < sent / 2, `buffers in this process grew by ${(grown / 2 ** 20).toFixed(1)} MiB, not the ${sent / 2 ** 20} MiB sent`);

  let received = 0;
  let next = 0;
  let inOrder = true;
  const all = new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer) => {
      if (data.readUInt32BE(0) !== next++) inOrder = false;
      received += data.length;
      if (received === sent) resolve();
    });
  });
  ws.resume();
  await all;
  t.ok(inOrder, 'every message arrived, in order');
});

t.test('an Upgrade the app policy refuses gets the error page: 403 for a client off the allow list, 503 in maintenance; the connection closes', async (t) => {
  const ep = await echoEndpoint('ep');
  const r = await router(`apps:${appYaml('locked', 'locked.test', `      v1: { weight: 1, endpoints: ["${ep.address}"] }\n`, '    allow: ["10.0.0.0/8"]\n')}${appYaml('resting', 'resting.test', `      v1: { weight: 1, endpoints: ["${ep.address}"] }\n`, '    maintenance: true\n')}`);
  t.match(await refusal(r, 'locked.test'), { status: 403, headers: { 'x-fairway-error': 'FW_CLIENT_FORBIDDEN', connection: 'close' } });
  t.match(await refusal(r, 'resting.test'), { status: 503, headers: { 'x-fairway-error': 'FW_APP_MAINTENANCE', 'retry-after': '60' } });
  t.match(await refusal(r, 'nobody.test'), { status: 404, headers: { 'x-fairway-error': 'FW_NO_ROUTE' } });
  t.equal(ep.sockets.size, 0, 'the endpoint never saw them');
  const metrics = await metricsOf(r);
  t.match(metrics, /fairway_upgrades_total\{app="locked",version="",result="rejected"\} 1/);
  t.match(metrics, /fairway_requests_total\{app="locked",version="",status_class="4xx"\} 1/);
  t.match(await entryOf(r, 'locked', () => true), { status: 403, error: 'FW_CLIENT_FORBIDDEN' });
});

/** Writes `head` on a raw connection to the router's HTTP listener and resolves with the socket. */
async function rawConnect(r: TestRouter, head: string): Promise<Socket> {
  const socket = connect(r.router.httpAddress.port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(head);
  closers.push(async () => void socket.destroy());
  return socket;
}

/** Reads from `socket` until `predicate(text so far)` holds, or the socket ends. */
function readUntil(socket: Socket, predicate: (text: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      if (predicate(text)) done();
    };
    const done = () => {
      socket.off('data', onData);
      socket.off('end', done);
      resolve(text);
    };
    socket.on('data', onData);
    socket.once('end', done);
  });
}

t.test('any other Upgrade protocol is tunnelled as bytes; an endpoint that declines is relayed and the connection closed; a body is refused', async (t) => {
  // An endpoint speaking a made-up protocol after `Upgrade: shout/1`: it answers each chunk in upper case.
  const shout = createServer((_req, res) => res.end('no upgrade here\n'));
  let lastUpgrade: IncomingMessage | undefined;
  shout.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    lastUpgrade = req;
    if (req.headers.upgrade !== 'shout/1') {
      socket.end('HTTP/1.1 426 Upgrade Required\r\nUpgrade: shout/1\r\nContent-Length: 6\r\nConnection: close\r\n\r\nshout!');
      return;
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: shout/1\r\nConnection: Upgrade\r\nKeep-Alive: timeout=5\r\nX-Shout: yes\r\n\r\n');
    if (head.length) socket.write(head.toString().toUpperCase());
    socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
    socket.on('end', () => socket.end());
  });
  const address = await listen(shout);
  closers.push(async () => {
    shout.closeAllConnections();
    await new Promise<void>((resolve) => shout.close(() => resolve()));
  });
  const r = await router(`apps:${appYaml('shout', 'shout.test', `      v1: { weight: 1, endpoints: ["${address}"] }\n`)}`);

  const s = await rawConnect(r, 'GET /talk HTTP/1.1\r\nHost: shout.test\r\nConnection: Upgrade\r\nUpgrade: shout/1\r\n\r\nearly bytes ');
  const head = await readUntil(s, (x) => x.includes('EARLY BYTES '));
  t.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  t.match(head, /\r\nUpgrade: shout\/1\r\n/i);
  t.match(head, /\r\nX-Shout: yes\r\n/);
  t.notMatch(head, /Keep-Alive/i, 'hop-by-hop headers other than Connection and Upgrade are dropped');
  t.match(head, /EARLY BYTES $/, 'bytes sent right after the request head reach the endpoint after the 101');
  s.write('hello there');
  t.equal(await readUntil(s, (x) => x.includes('HELLO THERE')), 'HELLO THERE');
  s.end();
  await once(s, 'close');
  t.match(await entryOf(r, 'shout', (e) => e.status === 101), { upgrade: 'shout/1', closedBy: 'client' });

  // The endpoint declines: its answer is relayed, then the connection is closed. (h2c: with HTTP2-Settings passed on.)
  const d = await rawConnect(r, 'GET /talk HTTP/1.1\r\nHost: shout.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n');
  const declined = await readUntil(d, () => false);
  t.match(declined, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
  t.match(declined, /\r\nconnection: close\r\n/i);
  t.match(declined, /\r\n\r\nshout!$/);
  t.match(await entryOf(r, 'shout', (e) => e.status === 426), { upgrade: 'h2c', bytes: 6 });
  t.match(lastUpgrade!.headers, { upgrade: 'h2c', connection: 'upgrade, http2-settings', 'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA' });

  // An endpoint without Upgrade support answers it as a plain request: relayed likewise.
  const plain = createServer((_req, res) => res.end('just http\n'));
  const plainAddress = await listen(plain);
  closers.push(async () => {
    plain.closeAllConnections();
    await new Promise<void>((resolve) => plain.close(() => resolve()));
  });
  await r.rewrite(`apps:${appYaml('shout', 'shout.test', `      v1: { weight: 1, endpoints: ["${plainAddress}"] }\n`)}`);
  const p = await rawConnect(r, 'GET /talk HTTP/1.1\r\nHost: shout.test\r\nConnection: Upgrade\r\nUpgrade: shout/1\r\n\r\n');
  t.match(await readUntil(p, () => false), /^HTTP\/1\.1 200 OK\r\n[\s\S]*just http\n/);

  // A body with the upgrade is refused before any endpoint is asked.
  const b = await rawConnect(r, 'POST /talk HTTP/1.1\r\nHost: shout.test\r\nConnection: Upgrade\r\nUpgrade: shout/1\r\nContent-Length: 5\r\n\r\nhello');
  const refused = await readUntil(b, () => false);
  t.match(refused, /^HTTP\/1\.1 400 Bad Request\r\n/);
  t.match(refused, /\r\nx-fairway-error: FW_UPGRADE_WITH_BODY\r\n/i);

  const metrics = await metricsOf(r);
  t.match(metrics, /fairway_upgrades_total\{app="shout",version="v1",result="upgraded"\} 1/);
  t.match(metrics, /fairway_upgrades_total\{app="shout",version="v1",result="declined"\} 2/);
  t.match(metrics, /fairway_upgrades_total\{app="shout",version="v1",result="rejected"\} 1/);
});

t.test('an Upgrade whose endpoints refuse gets 502, one no endpoint answers in time 504, after the same retries as any request', async (t) => {
  const silent = createServer();
  const held = new Set<Duplex>();
  silent.on('upgrade', (_req: IncomingMessage, socket: Duplex) => held.add(socket)); // never answers
  const silentAddress = await listen(silent);
  closers.push(async () => {
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });
  const ep = await echoEndpoint('ep');
  const refused = await refusedAddress();
  const r = await router(`apps:
${appYaml('down', 'down.test', `      v1: { weight: 1, endpoints: ["${refused}"] }\n`)}
${appYaml('slow', 'slow.test', `      v1: { weight: 1, endpoints: ["${silentAddress}"] }\n`, '    timeouts: { read: 300ms }\n')}
${appYaml('half', 'half.test', `      v1: { weight: 1, endpoints: ["${refused}", "${ep.address}"] }\n`, '    loadBalancing: round-robin\n')}`);
  t.match(await refusal(r, 'down.test'), { status: 502, headers: { 'x-fairway-error': 'FW_UPSTREAM_REFUSED' } });
  t.match(await refusal(r, 'slow.test'), { status: 504, headers: { 'x-fairway-error': 'FW_UPSTREAM_TIMEOUT' } });
  for (let i = 0; i < 2; i++) t.equal(await ask(await open(r, 'half.test'), `try ${i}`), `ep:try ${i}`, 'a refused endpoint is skipped for the next');
  const metrics = await metricsOf(r);
  t.match(metrics, /fairway_upgrades_total\{app="down",version="v1",result="failed"\} 1/);
  t.match(metrics, /fairway_upgrades_total\{app="slow",version="v1",result="failed"\} 1/);
  t.match(metrics, /fairway_upstream_retries_total\{app="half",version="v1"\} [1-9]/);
  t.match(await entryOf(r, 'slow', () => true), { status: 504, error: 'timeout', upgrade: 'websocket' });
});

t.test("a tunnel silent for the app's read timeout is closed, and logged as closed by idle", async (t) => {
  const ep = await echoEndpoint('ep');
  const r = await router(`apps:${appYaml('quiet', 'quiet.test', `      v1: { weight: 1, endpoints: ["${ep.address}"] }\n`, '    timeouts: { read: 300ms }\n')}`);
  const ws = await open(r, 'quiet.test');
  t.equal(await ask(ws, 'x'), 'ep:x');
  const started = Date.now();
  const [code] = (await once(ws, 'close')) as [number];
  t.equal(code, 1006, 'no close frame: the router does not speak WebSocket');
  t.ok(Date.now() - started >= 250, 'after the idle time');
  t.match(await entryOf(r, 'quiet', (e) => e.status === 101), { closedBy: 'idle' });
});

t.test('at shutdown an open tunnel keeps working through the drain time, then both sides get a FIN; close() then resolves', async (t) => {
  const ep = await echoEndpoint('ep');
  const r = await startTestRouter(`apps:${appYaml('chat', 'chat.test', `      v1: { weight: 1, endpoints: ["${ep.address}"] }\n`)}`);
  const ws = await open(r, 'chat.test');
  t.equal(await ask(ws, 'before'), 'ep:before');
  const serverSide = [...ep.sockets][0]!;
  const serverClosed = once(serverSide, 'close');
  const clientClosed = once(ws, 'close');
  const started = Date.now();
  const closing = r.router.close(400);
  t.equal(await ask(ws, 'while draining'), 'ep:while draining', 'the tunnel works while the router drains');
  await closing;
  t.ok(Date.now() - started >= 350, 'closed after the drain timeout');
  const [code] = (await clientClosed) as [number];
  t.equal(code, 1006, 'the client saw the connection end (no close frame from the router)');
  await serverClosed;
  t.pass('the endpoint saw the connection end');
  t.match(await entryOf(r, 'chat', (e) => e.status === 101), { closedBy: 'shutdown' });
  await r.close();
});

t.test('an Upgrade on a keep-alive connection after a request, even pipelined behind it, is answered after that request', async (t) => {
  const ep = createServer((_req, res) => setTimeout(() => res.end('first'), 50));
  ep.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  const address = await listen(ep);
  closers.push(async () => {
    ep.closeAllConnections();
    await new Promise<void>((resolve) => ep.close(() => resolve()));
  });
  const r = await router(`apps:${appYaml('ka', 'ka.test', `      v1: { weight: 1, endpoints: ["${address}"] }\n`)}`);
  const upgrade = 'GET /u HTTP/1.1\r\nHost: ka.test\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nping';
  const sequential = await rawConnect(r, 'GET / HTTP/1.1\r\nHost: ka.test\r\n\r\n');
  await readUntil(sequential, (x) => x.endsWith('first'));
  sequential.write(upgrade);
  t.match(await readUntil(sequential, (x) => x.endsWith('ping')), /^HTTP\/1\.1 101 /);
  const pipelined = await rawConnect(r, `GET / HTTP/1.1\r\nHost: ka.test\r\n\r\n${upgrade}`);
  t.match(await readUntil(pipelined, (x) => x.endsWith('ping')), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nfirstHTTP\/1\.1 101 [\s\S]*\r\n\r\nping$/);
});
