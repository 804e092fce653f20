import t from 'tap';
import { once } from 'node:events';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Client } from 'undici';
import { parseConfig, ConfigError } from '../src/config/load-config.js';
import { encodeProxyHeader, MAX_HEADER_BYTES, parseProxyHeader, V2_SIGNATURE, type ProxiedAddresses } from '../src/data/proxy-protocol.js';
import { upstreamStarter } from './helpers/upstreams.js';
import { type TestRouter, waitForLog, routerStarter } from './helpers/test-router.js';

// --- helpers -------------------------------------------------------------------------

const upstream = upstreamStarter(t);

const router = routerStarter(t);

const v4 = (source: string, destination = '192.0.2.1', sourcePort = 40000, destinationPort = 80): ProxiedAddresses =>
  ({ sourceAddress: source, sourcePort, destinationAddress: destination, destinationPort, family: 'IPv4' });
const v6 = (source: string, destination = '2001:db8::1', sourcePort = 40000, destinationPort = 443): ProxiedAddresses =>
  ({ sourceAddress: source, sourcePort, destinationAddress: destination, destinationPort, family: 'IPv6' });

/** A v2 header built by hand: `command` 0 LOCAL / 1 PROXY, `family` byte (AF << 4 | transport), address block, TLVs. */
function v2(command: number, family: number, addresses: Buffer, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head);
  head[12] = 0x20 | command;
  head[13] = family;
  head.writeUInt16BE(addresses.length + tlvs.length, 14);
  return Buffer.concat([head, addresses, tlvs]);
}
const tlv = (type: number, value: Buffer) => {
  const b = Buffer.alloc(3);
  b[0] = type;
  b.writeUInt16BE(value.length, 1);
  return Buffer.concat([b, value]);
};

/** An undici client whose every connection starts with `header` (written before the HTTP bytes). */
function clientWith(port: number, header: Buffer | (() => Buffer)): Client {
  return new Client(`http://127.0.0.1:${port}`, {
    connect: (_opts, callback) => {
      const socket = netConnect(port, '127.0.0.1');
      socket.write(typeof header === 'function' ? header() : header);
      socket.once('connect', () => callback(null, socket));
      socket.once('error', (err) => callback(err, null));
    },
  });
}

async function get(client: Client, host: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const res = await client.request({ path: '/', method: 'GET', headers: { host, ...headers } });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

/**
 * Opens a raw connection, writes `chunks` (with `gapMs` between them), and resolves with
 * what the router sent back and how long until it closed the connection.
 */
function raw(port: number, chunks: (Buffer | string)[], gapMs = 0, endAfter = false): Promise<{ received: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = netConnect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (d) => (received += d.toString('latin1')));
    socket.on('error', () => { /* reset by the router: closed all the same */ });
    socket.on('close', () => resolve({ received, closedAfterMs: performance.now() - started }));
    socket.once('connect', async () => {
      for (const c of chunks) {
        if (socket.destroyed) break;
        socket.write(c);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
      if (endAfter) socket.end();
    });
    setTimeout(() => reject(new Error('the router kept the connection open')), 10_000).unref();
  });
}

const metricOf = async (r: TestRouter, listener: string, outcome: string): Promise<number> => {
  const m = new RegExp(`fairway_proxy_protocol_connections_total\\{listener="${listener.replace('/', '\\/')}",outcome="${outcome}"\\} (\\d+)`).exec((await r.adminGet('/metrics')).body);
  return m ? Number(m[1]) : NaN;
};

// --- the codec -----------------------------------------------------------------------

t.test('v1: TCP4 and TCP6 headers declare the client; UNKNOWN declares none; the length is where the data starts', async (t) => {
  const data = Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n');
  t.same(parseProxyHeader(data), { version: 1, length: 44, addresses: v4('203.0.113.7', '192.0.2.1', 56324, 443) });
  t.same(parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8::7 2001:db8::1 65535 0\r\n')), { version: 1, length: 44, addresses: v6('2001:db8::7', '2001:db8::1', 65535, 0) },
    'IPv6 lower-cased');
  t.match(parseProxyHeader(Buffer.from('PROXY TCP6 ::ffff:198.51.100.2 ::1 1 2\r\n')), { addresses: { sourceAddress: '198.51.100.2' } }, 'IPv4-mapped written as IPv4');
  t.match(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 080 0\r\n')), { addresses: { sourcePort: 80, destinationPort: 0 } }, 'ports are decimal, leading zeros tolerated');
  t.same(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { version: 1, length: 15, addresses: undefined });
  t.same(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n')), { version: 1, length: 35, addresses: undefined });
});

t.test('v1: malformed lines are invalid; a line still arriving is incomplete; past 107 bytes without CRLF it is too large', async (t) => {
  const invalid = [
    'GET / HTTP/1.1\r\n', 'PROXY\r\n', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', 'PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n', 'PROXY TCP6 1.2.3.4 ::1 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n', 'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n',
    'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', 'PROXY TCP4 1.2.3.4\n', 'PROXY TCP4 1.2.3.4\x00',
    'PROXY UNKNOWNX\r\n', '\x16\x03\x01\x02\x00',
  ];
  for (const text of invalid) t.equal(parseProxyHeader(Buffer.from(text, 'latin1')), 'invalid', JSON.stringify(text));
  for (const text of ['P', 'PROX', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r']) {
    t.equal(parseProxyHeader(Buffer.from(text)), 'incomplete', JSON.stringify(text));
  }
  t.equal(parseProxyHeader(Buffer.from(`PROXY UNKNOWN ${'x'.repeat(100)}`)), 'too_large');
  t.equal(parseProxyHeader(Buffer.from(`PROXY UNKNOWN ${'x'.repeat(100)}\r\n`)), 'too_large', 'the CRLF must be within the 107 bytes');
  t.equal(parseProxyHeader(Buffer.alloc(0)), 'incomplete');
});

t.test('v2: AF_INET and AF_INET6 over PROXY declare the client; TLVs are skipped; the data after the header is left', async (t) => {
  const inet = Buffer.from([203, 0, 113, 7, 192, 0, 2, 1, 0xdc, 0x04, 0x01, 0xbb]);
  const header = v2(1, 0x11, inet, Buffer.concat([tlv(0x01, Buffer.from('h2')), tlv(0x04, Buffer.alloc(0)), tlv(0xee, Buffer.alloc(300, 1))]));
  const data = Buffer.concat([header, Buffer.from('\x16\x03\x01')]);
  t.same(parseProxyHeader(data), { version: 2, length: header.length, addresses: v4('203.0.113.7', '192.0.2.1', 56324, 443) });
  const inet6 = Buffer.alloc(36);
  inet6.write('20010db8000000000000000000000007', 0, 'hex');
  inet6.write('20010db8000000000000000000000001', 16, 'hex');
  inet6.writeUInt16BE(40000, 32);
  inet6.writeUInt16BE(443, 34);
  t.same(parseProxyHeader(v2(1, 0x21, inet6)), { version: 2, length: 52, addresses: v6('2001:db8::7', '2001:db8::1') });
  const mapped = Buffer.alloc(36);
  mapped.write('00000000000000000000ffffc6336402', 0, 'hex');
  t.match(parseProxyHeader(v2(1, 0x21, mapped)), { addresses: { sourceAddress: '198.51.100.2', destinationAddress: '::' } });
  t.match(parseProxyHeader(v2(1, 0x12, inet)), { addresses: { sourceAddress: '203.0.113.7' } }, 'a DGRAM transport still declares its addresses');
});

t.test('v2: LOCAL, AF_UNSPEC and AF_UNIX declare no address (the connection keeps its real peer)', async (t) => {
  const inet = Buffer.from([203, 0, 113, 7, 192, 0, 2, 1, 0, 1, 0, 2]);
  t.same(parseProxyHeader(v2(0, 0x11, inet)), { version: 2, length: 28, addresses: undefined }, 'LOCAL ignores the addresses it carries');
  t.same(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0))), { version: 2, length: 16, addresses: undefined }, 'LOCAL, UNSPEC, nothing after');
  t.same(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0))), { version: 2, length: 16, addresses: undefined }, 'PROXY over AF_UNSPEC');
  t.same(parseProxyHeader(v2(1, 0x31, Buffer.alloc(216))), { version: 2, length: 232, addresses: undefined }, 'AF_UNIX');
});

t.test('v2: a wrong signature, version, command or family, short addresses or a TLV overrunning the header are invalid', async (t) => {
  const inet = Buffer.from([203, 0, 113, 7, 192, 0, 2, 1, 0, 1, 0, 2]);
  const good = v2(1, 0x11, inet);
  const cases: [string, Buffer][] = [
    ['signature', Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIX\n'), good.subarray(12)])],
    ['version 1 in the binary form', Buffer.from(good).fill(0x11, 12, 13)],
    ['command 2', Buffer.from(good).fill(0x22, 12, 13)],
    ['family 4', Buffer.from(good).fill(0x41, 13, 14)],
    ['transport 3', Buffer.from(good).fill(0x13, 13, 14)],
    ['AF_INET with 8 address bytes', v2(1, 0x11, inet.subarray(0, 8))],
    ['AF_INET6 with 12 address bytes', v2(1, 0x21, inet)],
    ['a TLV longer than what is left', v2(1, 0x11, inet, Buffer.from([0x01, 0x00, 0x09, 0x41]))],
    ['a TLV cut in its own length', v2(1, 0x11, inet, Buffer.from([0x01, 0x00]))],
  ];
  for (const [name, data] of cases) t.equal(parseProxyHeader(data), 'invalid', name);
  t.equal(parseProxyHeader(good.subarray(0, 15)), 'incomplete', 'before the length is known');
  t.equal(parseProxyHeader(good.subarray(0, 20)), 'incomplete', 'before the addresses are all in');
  const huge = v2(1, 0x11, inet, tlv(0xee, Buffer.alloc(MAX_HEADER_BYTES)));
  t.equal(parseProxyHeader(huge.subarray(0, 16)), 'too_large', `known from the length field: over ${MAX_HEADER_BYTES} bytes`);
});

t.test('headers encoded for a TCP endpoint parse back to the same addresses (v1 and v2, IPv4, IPv6, and mixed families as IPv4-mapped)', async (t) => {
  for (const version of [1, 2] as const) {
    for (const a of [v4('203.0.113.7'), v6('2001:db8::7'), v6('2001:db8:0:0:1::9', '::1', 1, 65535)]) {
      const parsed = parseProxyHeader(encodeProxyHeader(version, a));
      t.same(parsed !== 'incomplete' && typeof parsed === 'object' ? parsed.addresses : parsed, { ...a, sourceAddress: a.sourceAddress.replace('2001:db8:0:0:1::9', '2001:db8::1:0:0:9') }, `v${version} ${a.sourceAddress}`);
    }
    const mixed = parseProxyHeader(encodeProxyHeader(version, { ...v4('203.0.113.7'), destinationAddress: '2001:db8::1' }));
    t.match(mixed, { addresses: { sourceAddress: '203.0.113.7', destinationAddress: '2001:db8::1', family: 'IPv6' } }, `v${version}: an IPv4 client on an IPv6 listener`);
  }
  t.equal(encodeProxyHeader(1, v4('203.0.113.7')).toString(), 'PROXY TCP4 203.0.113.7 192.0.2.1 40000 80\r\n');
});

// --- config ----------------------------------------------------------------------------

t.test('proxyProtocol is per listener, off by default, with a header timeout; tcp routes may send v1 or v2', async (t) => {
  const c = parseConfig(`
proxyProtocol: { http: true, https: true, headerTimeout: 2s }
tcp:
  builder: { listen: 127.0.0.1:2222, endpoints: ["127.0.0.1:2223"], sendProxyProtocol: v2 }
  plain: { listen: 127.0.0.1:2224, endpoints: ["127.0.0.1:2225"] }
`, 'pp.yaml');
  t.same(c.settings.proxyProtocol, { http: true, https: true, tcp: false, headerTimeout: 2000 });
  t.equal(c.settings.tcp.find((r) => r.name === 'builder')!.sendProxyProtocol, 2);
  t.equal(c.settings.tcp.find((r) => r.name === 'plain')!.sendProxyProtocol, undefined);
  t.same(parseConfig('apps: {}', 'pp.yaml').settings.proxyProtocol, { http: false, https: false, tcp: false, headerTimeout: 5000 });
  const err = t.throws(() => parseConfig(`proxyProtocol: true
tcp:
  builder: { listen: 127.0.0.1:2222, sendProxyProtocol: v3 }
`, 'pp.yaml')) as ConfigError;
  t.same(err.problems.map((p) => `${p.path}: ${p.message}`).sort(), [
    'proxyProtocol: must be { http, https, tcp, headerTimeout } (the Deis useProxyProtocol: "true" is { http: true, https: true })',
    'tcp.builder.sendProxyProtocol: must be v1 or v2',
  ]);
  const zero = t.throws(() => parseConfig('proxyProtocol: { http: true, headerTimeout: 0 }', 'pp.yaml')) as ConfigError;
  t.same(zero.problems.map((p) => `${p.path}: ${p.message}`), ['proxyProtocol.headerTimeout: must be a duration above 0, like 500ms or 5s']);
});

// --- HTTP listener --------------------------------------------------------------------

t.test('HTTP with the PROXY protocol: v1 and v2 headers carry the client to the access log, the allow list and the upstream X-Forwarded-For', async (t) => {
  const u = await upstream('u');
  const r = await router(`
proxyProtocol: { http: true }
apps:
  open:
    domains: [open.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
  private:
    domains: [private.test]
    allow: ["203.0.113.0/24"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const port = r.router.httpAddress.port;
  for (const [name, header] of [['v1', encodeProxyHeader(1, v4('203.0.113.7'))], ['v2', encodeProxyHeader(2, v4('203.0.113.8'))]] as const) {
    const client = clientWith(port, header);
    t.teardown(() => client.close());
    const first = await get(client, 'open.test', { 'x-request-id': `pp-${name}` });
    t.equal(first.status, 200, `${name}: proxied`);
    const ip = name === 'v1' ? '203.0.113.7' : '203.0.113.8';
    t.equal(u.lastHeaders['x-forwarded-for'], ip, `${name}: X-Forwarded-For is the declared client`);
    t.match(await waitForLog(r, (l) => l.reqId === `pp-${name}`), { clientIp: ip, status: 200 }, `${name}: access log`);
    t.equal((await get(client, 'private.test')).status, 200, `${name}: the allow list admits the declared client, on the same keep-alive connection`);
  }
  const outsider = clientWith(port, encodeProxyHeader(2, v6('2001:db8::66')));
  t.teardown(() => outsider.close());
  const refused = await get(outsider, 'private.test', { 'x-request-id': 'pp-v6' });
  t.equal(refused.status, 403, 'a declared client outside the allow list is refused');
  t.match(await waitForLog(r, (l) => l.reqId === 'pp-v6'), { clientIp: '2001:db8::66', error: 'FW_CLIENT_FORBIDDEN' });
  t.equal(await metricOf(r, 'http', 'accepted'), 3, 'three connections, three headers');
});

t.test('HTTP with the PROXY protocol: the header and the request in one write, or the header in pieces, both work', async (t) => {
  const u = await upstream('u');
  const r = await router(`
proxyProtocol: { http: true }
apps:
  open:
    domains: [open.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const port = r.router.httpAddress.port;
  const request = 'GET /one HTTP/1.1\r\nHost: open.test\r\n\r\nGET /two HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n';
  const together = await raw(port, [Buffer.concat([encodeProxyHeader(2, v4('198.51.100.1')), Buffer.from(request)])]);
  t.equal(together.received.match(/HTTP\/1.1 200/g)?.length, 2, 'both pipelined requests answered');
  t.equal(u.lastHeaders['x-forwarded-for'], '198.51.100.1');
  const header = encodeProxyHeader(1, v4('198.51.100.2'));
  const pieces = await raw(port, [header.subarray(0, 10), header.subarray(10, 30), Buffer.concat([header.subarray(30), Buffer.from('GET /one HT')]), 'TP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n'], 20);
  t.match(pieces.received, /^HTTP\/1.1 200/);
  t.equal(u.lastHeaders['x-forwarded-for'], '198.51.100.2');
});

t.test('HTTP with the PROXY protocol: LOCAL and UNKNOWN keep the TCP peer as the client', async (t) => {
  const u = await upstream('u');
  const r = await router(`
proxyProtocol: { http: true }
apps:
  open:
    domains: [open.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const port = r.router.httpAddress.port;
  for (const header of [v2(0, 0x11, Buffer.from([203, 0, 113, 7, 192, 0, 2, 1, 0, 1, 0, 2])), Buffer.from('PROXY UNKNOWN\r\n'), v2(1, 0x00, Buffer.alloc(0))]) {
    const client = clientWith(port, header);
    t.teardown(() => client.close());
    t.equal((await get(client, 'open.test')).status, 200);
    t.equal(u.lastHeaders['x-forwarded-for'], '127.0.0.1');
  }
  t.equal(await metricOf(r, 'http', 'local'), 3);
});

t.test('HTTP with the PROXY protocol: garbage, truncated, oversized and slow headers close the connection unanswered within the header timeout, are counted, and the router keeps serving', async (t) => {
  const u = await upstream('u');
  const r = await router(`
proxyProtocol: { http: true, headerTimeout: 2s }
apps:
  open:
    domains: [open.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const port = r.router.httpAddress.port;
  const request = 'GET / HTTP/1.1\r\nHost: open.test\r\n\r\n';

  const plain = await raw(port, [request]);
  t.same([plain.received, plain.closedAfterMs < 1000], ['', true], 'plain HTTP without a header: closed at once, nothing answered');
  const tls = await raw(port, [Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01])]);
  t.equal(tls.received, '', 'a TLS ClientHello: closed');
  const badV2 = await raw(port, [Buffer.concat([v2(1, 0x11, Buffer.from([1, 2, 3, 4])), Buffer.from(request)])]);
  t.equal(badV2.received, '', 'v2 with short addresses: closed');
  const truncated = await raw(port, ['PROXY TCP4 203.0.113.7 192.0'], 0, true);
  t.same([truncated.received, truncated.closedAfterMs < 1000], ['', true], 'a header cut short by the client: closed when it ends its side');
  const longV1 = await raw(port, [`PROXY UNKNOWN ${'a'.repeat(200)}`]);
  t.same([longV1.received, longV1.closedAfterMs < 1000], ['', true], 'a v1 line over 107 bytes: closed without waiting for its end');
  const hugeV2 = v2(1, 0x11, Buffer.alloc(12), tlv(0xee, Buffer.alloc(5000)));
  const longV2 = await raw(port, [hugeV2.subarray(0, 16)]);
  t.same([longV2.received, longV2.closedAfterMs < 1000], ['', true], 'a v2 length over 4 kB: closed from the first 16 bytes');
  const slow = await raw(port, ['PROXY TCP4 ', '203.0.113.7 ', '192.0.2.1 ', '1 ', '2', '\r', '\n'], 500);
  t.equal(slow.received, '', 'a header dripped byte by byte: closed');
  t.ok(slow.closedAfterMs >= 1950 && slow.closedAfterMs < 3500, `closed after ${Math.round(slow.closedAfterMs)} ms (header timeout 2 s, measured from the accept)`);
  const silent = await raw(port, []);
  t.ok(silent.closedAfterMs >= 1950 && silent.closedAfterMs < 3500, `a connection that sends nothing: closed after ${Math.round(silent.closedAfterMs)} ms`);

  const client = clientWith(port, encodeProxyHeader(1, v4('203.0.113.9')));
  t.teardown(() => client.close());
  t.equal((await get(client, 'open.test')).status, 200, 'the router still serves');
  t.equal(u.hits, 1, 'no refused connection reached the upstream');
  for (const [outcome, n] of [['invalid', 3], ['incomplete', 1], ['too_large', 2], ['timeout', 2], ['accepted', 1]] as const) {
    t.equal(await metricOf(r, 'http', outcome), n, `${outcome}: ${n}`);
  }
  const warnings = r.logs.filter((l) => l.code === 'FW_PROXY_PROTOCOL_INVALID');
  t.equal(warnings.length, 1, 'one warning a minute per listener, not one per connection');
  t.match(warnings[0], { level: 'warn', listener: 'http', reason: 'invalid', peer: '127.0.0.1' });
});

t.test('turning the PROXY protocol on by a config reload applies to new connections', async (t) => {
  const u = await upstream('u');
  const config = (on: boolean) => `
proxyProtocol: { http: ${on} }
apps:
  open:
    domains: [open.test]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`;
  const r = await router(config(false));
  t.equal((await r.get('open.test')).status, 200);
  await r.rewrite(config(true));
  const plain = await raw(r.router.httpAddress.port, ['GET / HTTP/1.1\r\nHost: open.test\r\n\r\n']);
  t.equal(plain.received, '', 'a connection without a header is now closed');
  const client = clientWith(r.router.httpAddress.port, encodeProxyHeader(2, v4('203.0.113.5')));
  t.teardown(() => client.close());
  t.equal((await get(client, 'open.test')).status, 200);
  t.equal(u.lastHeaders['x-forwarded-for'], '203.0.113.5');
});

// --- HTTPS listener -------------------------------------------------------------------

/** A TLS client whose TCP connection starts with `header`; the handshake follows it. */
function tlsClientWith(port: number, header: Buffer): Client {
  return new Client(`https://127.0.0.1:${port}`, {
    connect: (_opts, callback) => {
      const socket = netConnect(port, '127.0.0.1');
      socket.write(header);
      const secure = tlsConnect({ socket, servername: 'secure.test', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      secure.once('secureConnect', () => callback(null, secure));
      secure.once('error', (err) => callback(err, null));
    },
  });
}

t.test('HTTPS with the PROXY protocol: the TLS handshake follows the header and the request carries the declared client', async (t) => {
  const u = await upstream('u');
  const r = await router(`
listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:0 }
proxyProtocol: { https: true }
apps:
  secure:
    domains: [secure.test]
    allow: ["2001:db8::/32"]
    versions: { v1: { weight: 1, endpoints: ["${u.address}"] } }
`);
  const port = r.router.httpsAddress!.port;
  for (const [version, client] of [[1, '2001:db8::5'], [2, '2001:db8::6']] as const) {
    const c = tlsClientWith(port, encodeProxyHeader(version, v6(client)));
    t.teardown(() => c.close());
    const res = await get(c, 'secure.test', { 'x-request-id': `tls-v${version}` });
    t.equal(res.status, 200, `v${version}: handshake and request`);
    t.equal(u.lastHeaders['x-forwarded-for'], client);
    t.equal(u.lastHeaders['x-forwarded-proto'], 'https');
    t.match(await waitForLog(r, (l) => l.reqId === `tls-v${version}`), { clientIp: client });
  }
  const outsider = tlsClientWith(port, encodeProxyHeader(2, v4('203.0.113.1')));
  t.teardown(() => outsider.close());
  t.equal((await get(outsider, 'secure.test')).status, 403, 'the allow list sees the declared client');

  // A TLS client that sends no header: its ClientHello is not a PROXY header.
  const bare = tlsConnect({ host: '127.0.0.1', port, servername: 'secure.test', rejectUnauthorized: false });
  const failed = await new Promise<string>((resolve) => {
    bare.once('secureConnect', () => resolve('handshake completed'));
    bare.once('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    bare.once('close', () => resolve('closed'));
  });
  t.not(failed, 'handshake completed', `a handshake without the header fails (${failed})`);
  t.equal(await metricOf(r, 'https', 'invalid'), 1);
  t.equal(await metricOf(r, 'http', 'accepted'), 0, 'the plain HTTP listener has it off');
  t.equal((await r.get('secure.test')).status, 403, 'plain HTTP without a header still serves (127.0.0.1 is not on the list)');
});

// --- TCP passthrough ------------------------------------------------------------------

/** A TCP endpoint that records what arrives and answers `ok:` + the first line after any PROXY header. */
async function recordingEndpoint(): Promise<{ server: Server; address: string; received: Buffer[] }> {
  const received: Buffer[] = [];
  const server = createServer((s: Socket) => {
    let data = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      data = Buffer.concat([data, c]);
      const parsed = parseProxyHeader(data);
      const start = typeof parsed === 'object' ? parsed.length : 0;
      const nl = data.indexOf('\n', start);
      if (nl >= 0) {
        received.push(data);
        s.end(`ok:${data.subarray(start, nl).toString()}\n`);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, address: `127.0.0.1:${(server.address() as { port: number }).port}`, received };
}

t.test('TCP passthrough with the PROXY protocol: the declared client is sent on to the endpoint as v1 or v2; garbage and slow headers are closed', async (t) => {
  const e1 = await recordingEndpoint();
  const e2 = await recordingEndpoint();
  const r = await router(`
proxyProtocol: { tcp: true, headerTimeout: 2s }
tcp:
  builder: { listen: 127.0.0.1:0, endpoints: ["${e1.address}"], sendProxyProtocol: v1 }
  other: { listen: 127.0.0.1:0, endpoints: ["${e2.address}"], sendProxyProtocol: v2 }
apps: {}
`);
  const builder = r.router.tcpAddresses.get('builder')!.port;
  const other = r.router.tcpAddresses.get('other')!.port;
  const answer = await raw(builder, [Buffer.concat([encodeProxyHeader(2, v4('203.0.113.7', '192.0.2.1', 51000, 2222)), Buffer.from('git-upload-pack\n')])]);
  t.equal(answer.received, 'ok:git-upload-pack\n', 'the client bytes after the header reach the endpoint intact');
  t.equal(e1.received[0]!.toString(), 'PROXY TCP4 203.0.113.7 192.0.2.1 51000 2222\r\ngit-upload-pack\n', 'v1 with the declared client, then the client bytes');
  const answer2 = await raw(other, [encodeProxyHeader(1, v6('2001:db8::7')), 'hello\n'], 20);
  t.equal(answer2.received, 'ok:hello\n');
  t.same(parseProxyHeader(e2.received[0]!), { version: 2, length: 52, addresses: v6('2001:db8::7') }, 'v2 with the declared IPv6 client');

  const garbage = await raw(builder, ['SSH-2.0-OpenSSH_9.2\r\n']);
  t.same([garbage.received, garbage.closedAfterMs < 1000], ['', true], 'an SSH client without a header: closed at once');
  const slow = await raw(builder, ['PROXY TCP4 203.0.113.7']);
  t.ok(slow.closedAfterMs >= 1950 && slow.closedAfterMs < 3500, `a header that never ends: closed after ${Math.round(slow.closedAfterMs)} ms`);
  t.equal(e1.received.length, 1, 'no refused connection reached an endpoint');
  t.equal((await raw(builder, [encodeProxyHeader(1, v4('203.0.113.8')), 'again\n'])).received, 'ok:again\n', 'the route keeps serving');
  t.equal(await metricOf(r, 'tcp/builder', 'accepted'), 2);
  t.equal(await metricOf(r, 'tcp/builder', 'invalid'), 1);
  t.equal(await metricOf(r, 'tcp/builder', 'timeout'), 1);
  t.match((await r.adminGet('/metrics')).body, /fairway_tcp_connections_total\{route="builder",result="accepted"\} 2/, 'only connections with a header count as accepted by the route');
});

t.test('TCP passthrough without the PROXY protocol on its listener still sends the TCP peer on to the endpoint', async (t) => {
  const e = await recordingEndpoint();
  const r = await router(`
tcp:
  builder: { listen: 127.0.0.1:0, endpoints: ["${e.address}"], sendProxyProtocol: v1 }
apps: {}
`);
  const port = r.router.tcpAddresses.get('builder')!.port;
  t.equal((await raw(port, ['hello\n'])).received, 'ok:hello\n');
  t.match(e.received[0]!.toString(), new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 \\d+ ${port}\\r\\nhello\\n$`));
});
