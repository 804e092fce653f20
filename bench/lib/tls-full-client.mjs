// The Node fallback of tls-full-client.c (used by bench/tls.sh when no C compiler or
// OpenSSL headers are at hand, or with BENCH_TLS_CLIENT=node): the same load and the
// same JSON line. Every request is a new TLS connection with a full handshake (no
// session is ever passed to tls.connect), SNI and ALPN http/1.1, one GET with
// `Connection: close`; CONNECTIONS in flight for SECONDS seconds.
// With TLS_CLIENT_REUSE=1 it offers the first session it got on every connection (the
// `reuse` scenario), like the C client.
// Node's own client handshake costs more CPU than the C client's, so with this client
// the load CPU saturates sooner: compare CPU per handshake, not handshakes/s.
//
//   node tls-full-client.mjs HOST PORT SERVERNAME HOST_HEADER CONNECTIONS SECONDS [TAG]
import tls from 'node:tls';

const [host, portArg, servername, hostHeader, connArg, secondsArg, tag] = process.argv.slice(2);
const port = Number(portArg);
const n = Number(connArg);
const seconds = Number(secondsArg);
if (!host || !(port > 0) || !(n >= 1) || !(seconds > 0) || !hostHeader || !servername) {
  process.stderr.write('usage: tls-full-client.mjs HOST PORT SERVERNAME HOST_HEADER CONNECTIONS SECONDS [TAG]\n');
  process.exit(2);
}
const request = Buffer.from(
  `GET / HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: fairway-bench-tls-full\r\n${tag ? `X-Bench-Tag: ${tag}\r\n` : ''}Connection: close\r\n\r\n`,
);
const stats = { ok: 0, errors: 0, status_errors: 0, resumed: 0 };
const latencies = [];
let first = null;
const reuse = process.env.TLS_CLIENT_REUSE === '1';
let saved;
let firstError = '';
const t0 = performance.now();
const deadline = t0 + seconds * 1000;
setTimeout(() => process.exit(1), (seconds + 30) * 1000).unref(); // a hard bound

function responseOk(buf) {
  const text = buf.toString('latin1');
  if (!/^HTTP\/1\.[01] 200/.test(text)) return false;
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
  return !m || text.length - end - 4 >= Number(m[1]);
}

function one() {
  return new Promise((resolve) => {
    const started = performance.now();
    const chunks = [];
    let failed = false;
    const socket = tls.connect({ host, port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...(reuse && saved ? { session: saved } : {}) });
    if (reuse && !saved) socket.once('session', (s) => (saved ??= s));
    socket.on('secureConnect', () => {
      if (socket.isSessionReused()) stats.resumed++;
      first ??= { protocol: socket.getProtocol(), cipher: socket.getCipher()?.standardName ?? '', group: socket.getEphemeralKeyInfo()?.name ?? '', alpn: socket.alpnProtocol || '' };
      socket.write(request);
    });
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (err) => {
      failed = true;
      stats.errors++;
      firstError ||= err.message;
    });
    socket.on('close', () => {
      if (!failed) {
        const t = performance.now();
        if (!responseOk(Buffer.concat(chunks))) stats.status_errors++;
        else if (t <= deadline) {
          stats.ok++;
          latencies.push(t - started);
        }
      }
      resolve();
    });
  });
}

async function loop() {
  while (performance.now() < deadline) await one();
}

await Promise.all(Array.from({ length: n }, loop));
latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.floor(p * (latencies.length - 1))] : 0);
process.stdout.write(
  JSON.stringify({
    ...stats,
    seconds: (performance.now() - t0) / 1000,
    rate: stats.ok / seconds,
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
    connections: n,
    client: 'node',
    ...(first ?? { protocol: '', cipher: '', group: '', alpn: '' }),
    first_error: firstError,
  }) + '\n',
);
process.exit(stats.ok > 0 ? 0 : 1);
