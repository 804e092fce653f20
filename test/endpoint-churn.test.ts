import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Agent, request } from 'undici';
import { routerStarter } from './helpers/test-router.js';

/**
 * Endpoints killed and restarted under load: what a rolling deploy or a crash loop does
 * to a version. Each kill closes the listener and destroys every socket (in-flight
 * requests included); the endpoint comes back on the same port a moment later.
 *
 * One failure the router cannot avoid (README "Endpoint health"): a POST written on a
 * pooled keep-alive connection at the moment the endpoint closed it fails with a reset
 * before any response byte. Its bytes did leave the router, so the router cannot tell it
 * from a POST the endpoint read and died on (Go's and nginx's proxies do not resend it
 * either); it answers 502 rather than risk applying a POST twice. The test counts those
 * apart and bounds them; every other failure of a POST must be one an endpoint received.
 */

/** Request ids the endpoints' handlers actually received (before answering). */
const received = new Set<string>();

/** An endpoint that can be killed and restarted on its port. */
async function churnable(name: string): Promise<{ address: string; kill(): Promise<void>; restart(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    received.add(req.headers['x-test-id'] as string);
    req.resume();
    req.on('end', () => res.end(name));
  });
  server.keepAliveTimeout = 5000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  t.teardown(() => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())).then(() => server.closeAllConnections()));
  return {
    address: `127.0.0.1:${port}`,
    async kill() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
    async restart() {
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
  };
}

const router = routerStarter(t);

t.test('endpoints killed and restarted under load: no GET fails; a POST fails only if an endpoint received it or it was written on a connection the endpoint had just closed', async (t) => {
  const endpoints = [await churnable('e0'), await churnable('e1'), await churnable('e2')];
  const r = await router(`
timeouts: { connect: 1s }
outlierDetection: { consecutiveFailures: 3, baseEjectionTime: 500ms }
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: [${endpoints.map((e) => `"${e.address}"`).join(', ')}] } }
`);
  const agent = new Agent({ connections: 16 });
  t.teardown(() => agent.close());
  const tally = { gets: 0, posts: 0, failedGets: [] as string[], failedPosts: [] as string[], kills: 0 };
  let running = true;
  let next = 0;
  const worker = async () => {
    while (running) {
      const id = String(next++);
      const post = next % 2 === 0;
      const body = post ? `{"order":${id},"items":[1,2,3]}` : undefined;
      let failure: string | undefined;
      try {
        const res = await request(`${r.http}/item/${id}`, {
          dispatcher: agent,
          method: post ? 'POST' : 'GET',
          headers: { host: 'app.test', 'x-test-id': id, 'x-request-id': `churn-${id}`, ...(post ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body!)) } : {}) },
          body,
        });
        await res.body.text();
        if (res.statusCode !== 200) failure = `${id}: ${res.statusCode} ${res.headers['x-fairway-error'] ?? ''}`;
      } catch (err) {
        failure = `${id}: ${(err as Error).message}`;
      }
      if (post) tally.posts++;
      else tally.gets++;
      if (failure !== undefined) (post ? tally.failedPosts : tally.failedGets).push(failure);
    }
  };
  const workers = Array.from({ length: 16 }, worker);
  // One endpoint at a time: down for 400 ms, every ~1.2 s, for ~8 s.
  const started = performance.now();
  for (let i = 0; performance.now() - started < 8000; i++) {
    await new Promise((resolve) => setTimeout(resolve, 800));
    const e = endpoints[i % endpoints.length]!;
    await e.kill();
    tally.kills++;
    await new Promise((resolve) => setTimeout(resolve, 400));
    await e.restart();
  }
  running = false;
  await Promise.all(workers);
  r.router.logger.flush();
  await new Promise((resolve) => setImmediate(resolve));
  const neverReceived = tally.failedPosts.map((f) => f.split(':')[0]!).filter((id) => !received.has(id));
  // What the router saw for each: the access log's `error`, and how many endpoints it tried.
  const seen = neverReceived.map((id) => r.logs.find((l) => l.reqId === `churn-${id}`));
  const writtenThenReset = seen.filter((l) => l?.error === 'reset' && l.attempts === 1);
  t.comment(`requests: ${tally.gets} GET + ${tally.posts} POST; kills: ${tally.kills}; failed GETs: ${tally.failedGets.length}; failed POSTs: ${tally.failedPosts.length}, of which never received by an endpoint: ${neverReceived.length} (written on a connection the endpoint had just closed: ${writtenThenReset.length})`);
  t.ok(tally.kills >= 6, 'endpoints were killed and restarted');
  t.ok(tally.gets > 500 && tally.posts > 500, 'under load');
  t.same(tally.failedGets, [], 'no GET failed');
  t.same(seen.filter((l) => !writtenThenReset.includes(l)), [], 'every other failed POST had reached an endpoint: a POST never sent (refused connect) is retried, never lost');
  t.ok(writtenThenReset.length <= 2 * tally.kills, `the keep-alive race costs at most ~1 POST per kill (${writtenThenReset.length} for ${tally.kills} kills)`);
});
