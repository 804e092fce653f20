import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { routerStarter } from './helpers/test-router.js';
import { bigAnswer, upstreamStarter } from './helpers/upstreams.js';
import { closedWithin, openSocket, rawExchange } from './helpers/raw-http.js';
import { startRouterProcess } from './helpers/router-process.js';

const router = routerStarter(t);
const upstream = upstreamStarter(t);

const appYaml = (address: string, extra = '') => `${extra}
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["${address}"] } }
`;
const portOf = (url: string) => Number(new URL(url).port);

t.test('slowloris: a head dribbled byte by byte is closed by timeouts.clientHeaders while another client is served', async (t) => {
  const origin = await upstream('origin');
  const r = await router(appYaml(origin.address, 'timeouts: { clientHeaders: 1s }'));
  const port = portOf(r.http);
  const head = 'GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ' + 'x'.repeat(200);
  const slow = await openSocket(port);
  const silent = await openSocket(port);
  const slowClosed = closedWithin(slow);
  const silentClosed = closedWithin(silent);
  let sent = 0;
  // At most 200 bytes, one every 50 ms: the head never completes before the timeout.
  const dribble = (async () => {
    for (; sent < head.length && !slow.destroyed; sent++) {
      slow.write(head[sent]!);
      await sleep(50);
    }
  })();
  const other = await r.get('app.test');
  t.equal(other.status, 200, 'another client is served meanwhile');
  const [slowMs, silentMs] = await Promise.all([slowClosed, silentClosed]);
  await dribble;
  t.ok(slowMs >= 900 && slowMs < 4000, `the dribbling client was cut after ~1 s (+ the 1 s check) (${Math.round(slowMs)} ms, ${sent} bytes sent)`);
  t.ok(sent < head.length, 'before it could finish its head');
  t.ok(silentMs >= 900 && silentMs < 4000, `a connection that sends nothing is cut too (${Math.round(silentMs)} ms)`);
  t.equal(origin.hits, 1, 'only the good request reached the endpoint');
});

t.test('a request body that stalls is cut by timeouts.clientIdle; one that trickles is cut by timeouts.clientRequest', async (t) => {
  const outcomes: string[] = [];
  let seenBoth!: () => void;
  const bothSeen = new Promise<void>((resolve) => (seenBoth = resolve));
  const outcome = (o: string) => {
    outcomes.push(o);
    if (outcomes.length === 2) seenBoth();
  };
  const origin = await upstream('origin', (req, res) => {
    req.resume();
    req.on('end', () => {
      outcome('complete');
      res.end('complete');
    });
    req.on('error', () => outcome('aborted'));
  });
  const r = await router(appYaml(origin.address, 'timeouts: { clientHeaders: 1s, clientIdle: 1s, clientRequest: 2500ms }'));
  const port = portOf(r.http);

  const stalled = await openSocket(port);
  const stalledClosed = closedWithin(stalled);
  stalled.write('POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n0123456789');

  const trickling = await openSocket(port);
  const tricklingClosed = closedWithin(trickling);
  trickling.write('POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n');
  let trickled = 0;
  const trickle = (async () => {
    // A byte every 300 ms: never idle for 1 s, but 100 bytes would take 30 s.
    for (; trickled < 100 && !trickling.destroyed; trickled++) {
      trickling.write('x');
      await sleep(300);
    }
  })();
  const [stalledMs, tricklingMs] = await Promise.all([stalledClosed, tricklingClosed]);
  await trickle;
  t.ok(stalledMs >= 900 && stalledMs < 2400, `the stalled body was cut by the idle timeout (${Math.round(stalledMs)} ms)`);
  t.ok(tricklingMs >= 2400 && tricklingMs < 5000, `the trickling body by the request timeout (${Math.round(tricklingMs)} ms, ${trickled} bytes)`);
  t.equal(trickled < 100, true, 'before it completed');
  await bothSeen;
  t.same(outcomes, ['aborted', 'aborted'], 'the endpoint saw both requests aborted, never complete');
});

t.test('timeouts.clientIdle leaves alone an idle keep-alive connection and a request waiting for a slow endpoint', async (t) => {
  const origin = await upstream('slow', (req, res) => {
    req.resume();
    if (req.url === '/slow') setTimeout(() => res.end('late'), 1600);
    else res.end('ok');
  });
  const r = await router(appYaml(origin.address, 'timeouts: { clientIdle: 1s, clientKeepAlive: 10s }'));
  const port = portOf(r.http);
  const [slow, keptAlive] = await Promise.all([
    r.get('app.test', '/slow', { method: 'POST', body: 'a body' }),
    (async () => {
      const socket = await openSocket(port);
      t.teardown(() => socket.destroy());
      const answers: string[] = [];
      socket.on('data', (d: Buffer) => answers.push(d.toString('latin1')));
      const ask = async () => {
        const before = answers.length;
        socket.write('GET / HTTP/1.1\r\nHost: app.test\r\n\r\n');
        while (answers.length === before && !socket.destroyed) await new Promise((resolve) => socket.once('data', resolve));
      };
      await ask();
      await sleep(1600); // idle between requests for longer than clientIdle
      await ask();
      return answers.join('');
    })(),
  ]);
  t.equal(slow.status, 200, 'a request waiting 1.6 s for its response is not cut');
  t.equal(slow.body, 'late');
  t.equal((keptAlive.match(/HTTP\/1\.1 200/g) ?? []).length, 2, 'both requests on a connection idle for 1.6 s between them were served');
});

t.test('limits.maxConnectionsPerClient: a client address over the limit has new connections closed at once and counted; others are unaffected', async (t) => {
  const origin = await upstream('origin');
  const r = await router(appYaml(origin.address, 'limits: { maxConnectionsPerClient: 2 }'));
  const port = portOf(r.http);
  const keep: Socket[] = [];
  t.teardown(() => keep.forEach((s) => s.destroy()));
  for (let i = 0; i < 2; i++) {
    const s = await openSocket(port);
    keep.push(s);
    // A served request proves the router holds the connection.
    s.write('GET / HTTP/1.1\r\nHost: app.test\r\n\r\n');
    await new Promise((resolve) => s.once('data', resolve));
  }
  const third = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: app.test\r\n\r\n', 3000);
  t.ok(third.closed, 'the third connection was closed');
  t.equal(third.text, '', 'without an answer');
  const elsewhere = await new Promise<string>((resolve) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' }, () => s.write('GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n'));
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('close', () => resolve(text));
  });
  t.match(elsewhere, /^HTTP\/1\.1 200 /, 'a client from another address is served');
  const metrics = await r.adminGet('/metrics');
  t.match(metrics.body, /fairway_connections_refused_total\{listener="http",reason="per_client_limit"\} 1\n/, 'the refusal is counted');
  const closed = closedWithin(keep[0]!);
  keep[0]!.destroy();
  await closed;
  // The router sees the close asynchronously: retry a few times (bounded) until the slot is free.
  let again: Awaited<ReturnType<typeof rawExchange>> | undefined;
  for (let i = 0; i < 20 && again?.status !== 200; i++) {
    again = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n', 3000);
  }
  t.equal(again?.status, 200, 'once one of its connections closes, the client may open another');
});

t.test('a client that never reads a 100 MB response: the endpoint is paused, router RSS stays bounded, timeouts.clientIdle cuts it', async (t) => {
  const big = bigAnswer(100 * 1024 * 1024);
  const origin = await upstream('big', big.handler);
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-slow-'));
  const configFile = path.join(dir, 'fairway.yaml');
  writeFileSync(configFile, `listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }\nlog: { access: false }\ntimeouts: { clientIdle: 2s }\n${appYaml(origin.address)}`);
  const proc = await startRouterProcess(configFile);
  t.teardown(() => proc.stop());
  const port = portOf(proc.http);
  for (let i = 0; i < 20; i++) await rawExchange(port, 'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
  const baseline = proc.memory().peak;
  const client = await openSocket(port);
  t.teardown(() => client.destroy());
  const clientClosed = closedWithin(client, true); // reads nothing
  client.write('GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n');
  const started = performance.now();
  await big.closed;
  const cutAfter = performance.now() - started;
  const grown = proc.memory().peak - baseline;
  t.ok(big.written() < 40 * 1024 * 1024, `the endpoint was paused by backpressure: ${(big.written() / 1048576).toFixed(1)} MB of 100 MB written`);
  t.ok(grown < 50 * 1024 * 1024, `router peak RSS grew by ${(grown / 1048576).toFixed(1)} MB (< 50 MB)`);
  t.ok(cutAfter >= 1900 && cutAfter < 6000, `the idle timeout cut the exchange (${Math.round(cutAfter)} ms)`);
  client.resume();
  await clientClosed;
  t.pass('and the client connection');
  const after = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n');
  t.equal(after.status, 200, 'the router keeps serving');
});
