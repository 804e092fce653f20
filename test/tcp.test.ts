import t from 'tap';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { refusedAddress } from './helpers/upstreams.js';
import { routerStarter } from './helpers/test-router.js';

/** A TCP server that answers every byte with the same byte, after a banner naming itself. */
async function echoServer(name: string): Promise<{ server: Server; address: string }> {
  const server = createServer((s) => {
    s.write(`${name}:`);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { server, address: `127.0.0.1:${(server.address() as { port: number }).port}` };
}

const builder = (endpoints: string[], extra = '') => `
tcp:
  builder:
    listen: 127.0.0.1:0
    endpoints: [${endpoints.map((e) => `"${e}"`).join(', ')}]
${extra}
apps: {}
`;

const router = routerStarter(t);

/** Connects to a TCP route, sends `payload`, resolves with everything received until `expected` bytes arrived. */
function exchange(port: number, payload: Buffer, expected: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let got = 0;
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= expected) {
        s.end();
        resolve(Buffer.concat(chunks));
      }
    });
    s.on('error', reject);
    s.on('close', () => (got < expected ? reject(new Error(`closed after ${got} bytes`)) : undefined));
    s.write(payload);
  });
}

t.test('a TCP route carries bytes both ways (4 MB round trip) and counts them', async (t) => {
  const a = await echoServer('a');
  const r = await router(builder([a.address]));
  const port = r.router.tcpAddresses.get('builder')!.port;
  const payload = Buffer.alloc(4 * 1024 * 1024, 'git-pack ');
  const answer = await exchange(port, payload, 2 + payload.length);
  t.equal(answer.subarray(0, 2).toString(), 'a:');
  t.ok(answer.subarray(2).equals(payload), 'every byte came back intact');
  const metrics = (await r.adminGet('/metrics')).body;
  t.match(metrics, /fairway_tcp_connections_total\{route="builder",result="accepted"\} 1/);
  t.match(metrics, /fairway_tcp_bytes_total\{route="builder",direction="in"\} 4194304/);
});

t.test('an unreachable endpoint is skipped; with none reachable the client connection is closed', async (t) => {
  const b = await echoServer('b');
  const dead = await refusedAddress();
  const r = await router(builder([dead, b.address]));
  const port = r.router.tcpAddresses.get('builder')!.port;
  for (let i = 0; i < 4; i++) t.equal((await exchange(port, Buffer.from('x'), 3)).toString(), 'b:x', `connection ${i + 1} reached the live endpoint`);

  const r2 = await router(builder([dead]));
  await t.rejects(exchange(r2.router.tcpAddresses.get('builder')!.port, Buffer.from('x'), 1), 'the client connection is closed without a byte');
  t.match((await r2.adminGet('/metrics')).body, /fairway_tcp_connections_total\{route="builder",result="failed"\} 1/);
});

t.test('endpoint changes apply to new connections; idle connections are closed after idleTimeout', async (t) => {
  const a = await echoServer('a');
  const b = await echoServer('b');
  const r = await router(builder([a.address], '    idleTimeout: 300ms').replace('\n\napps', '\napps'));
  const port = r.router.tcpAddresses.get('builder')!.port;
  t.equal((await exchange(port, Buffer.from('1'), 3)).toString(), 'a:1');
  await r.rewrite(builder([b.address], '    idleTimeout: 300ms'));
  t.equal((await exchange(port, Buffer.from('2'), 3)).toString(), 'b:2', 'the new endpoint serves new connections');

  const idle = connect(port, '127.0.0.1');
  await once(idle, 'data');
  const started = Date.now();
  await once(idle, 'close');
  t.ok(Date.now() - started >= 250, 'closed once idle for the idleTimeout');
});

t.test('a client that resets mid-session releases both sides', async (t) => {
  const a = await echoServer('a');
  const r = await router(builder([a.address]));
  const port = r.router.tcpAddresses.get('builder')!.port;
  const s = connect(port, '127.0.0.1');
  s.write('hello');
  await once(s, 'data');
  s.resetAndDestroy();
  const active = async () => Number(/fairway_tcp_connections_active\{route="builder"\} (\d+)/.exec((await r.adminGet('/metrics')).body)![1]);
  for (let i = 0; i < 250 && (await active()) !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 20)); // bounded: 5 s
  t.equal(await active(), 0);
  const serverSide = await new Promise<number>((resolve) => a.server.getConnections((_e, n) => resolve(n)));
  t.equal(serverSide, 0, 'the upstream connection is closed too');
});
