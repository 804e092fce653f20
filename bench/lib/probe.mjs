// Probes used by bench/run.sh (plain Node, no dependencies).
//
//   node probe.mjs wait URL HOST SECONDS
//     Waits until GET URL with `Host: HOST` answers 200 with a 100-byte body (the
//     origin's response, so a proxy that answers but does not reach the origin fails).
//     Exit 0 when it does, 1 with the last problem on stderr when time runs out.
//
//   node probe.mjs split METRICS_URL
//     Prints the share of fairway_requests_total per version from Fairway's admin
//     /metrics, e.g. "v1=90.0% v2=10.0% (1234567 requests)", to show weights were applied.
//
//   node probe.mjs tls-handshakes METRICS_URL
//     Prints Fairway's fairway_tls_handshakes_total as "FULL RESUMED" (two integers).
//
//   node probe.mjs tls-sessions HOST PORT SERVERNAME [CONNECTIONS=6]
//     Connects CONNECTIONS times in a row, each time offering one unused session ticket
//     (the newest one left), as browsers do (TLS 1.3 tickets are single-use), and prints
//     each connection as F (full handshake) or R (resumed) with the number of tickets the
//     server sent on it, e.g. "F2 R1 R1 R1 R1 R1".
//
// An https:// URL is fetched with SNI = HOST and without certificate checks (the bench's
// certificate is self-signed).
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';

const EXPECTED_BODY_BYTES = 100;

function get(url, host) {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const tls = secure ? { servername: host, rejectUnauthorized: false } : {};
    const req = (secure ? https : http).get(url, { headers: host ? { host } : {}, agent: false, timeout: 2000, ...tls }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function wait(url, host, seconds) {
  const deadline = Date.now() + Number(seconds) * 1000;
  let problem = 'no attempt';
  while (Date.now() < deadline) {
    try {
      const { status, body } = await get(url, host);
      if (status === 200 && body.length === EXPECTED_BODY_BYTES) return 0;
      problem = `answered ${status} with ${body.length} bytes (want 200 with ${EXPECTED_BODY_BYTES}): ${body.toString('utf8', 0, 120).trim()}`;
    } catch (err) {
      problem = err.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stderr.write(`${url} (Host: ${host}): ${problem}\n`);
  return 1;
}

async function split(metricsUrl) {
  const { status, body } = await get(metricsUrl);
  if (status !== 200) throw new Error(`${metricsUrl} answered ${status}`);
  const perVersion = new Map();
  for (const line of body.toString('utf8').split('\n')) {
    const m = /^fairway_requests_total\{[^}]*version="([^"]+)"[^}]*\} (\d+)/.exec(line);
    if (m) perVersion.set(m[1], (perVersion.get(m[1]) ?? 0) + Number(m[2]));
  }
  const total = [...perVersion.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return 'no requests counted';
  const shares = [...perVersion].map(([v, n]) => `${v}=${((100 * n) / total).toFixed(1)}%`).join(' ');
  return `${shares} (${total} requests)`;
}

async function tlsHandshakes(metricsUrl) {
  const { status, body } = await get(metricsUrl);
  if (status !== 200) throw new Error(`${metricsUrl} answered ${status}`);
  const text = body.toString('utf8');
  const count = (resumed) => {
    const m = new RegExp(`^fairway_tls_handshakes_total\\{resumed="${resumed}"\\} (\\d+)`, 'm').exec(text);
    if (!m) throw new Error(`no fairway_tls_handshakes_total{resumed="${resumed}"} in ${metricsUrl}`);
    return Number(m[1]);
  };
  return `${count('false')} ${count('true')}`;
}

async function tlsSessions(host, port, servername, count = 6) {
  const unused = [];
  const seen = [];
  for (let i = 0; i < Number(count); i++) {
    seen.push(
      await new Promise((resolve, reject) => {
        const session = unused.pop();
        const socket = tls.connect({ host, port: Number(port), servername, session, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
        let tickets = 0;
        let reused = false;
        socket.setTimeout(5000, () => socket.destroy(new Error('timed out')));
        socket.on('session', (s) => {
          tickets++;
          unused.push(s);
        });
        socket.on('secureConnect', () => {
          reused = socket.isSessionReused();
          socket.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
        });
        socket.on('data', () => {});
        socket.on('error', reject);
        socket.on('close', () => resolve(`${reused ? 'R' : 'F'}${tickets}`));
      }),
    );
  }
  return seen.join(' ');
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'wait' && args.length === 3) {
  process.exit(await wait(...args));
} else if (cmd === 'split' && args.length === 1) {
  process.stdout.write(`${await split(args[0])}\n`);
} else if (cmd === 'tls-handshakes' && args.length === 1) {
  process.stdout.write(`${await tlsHandshakes(args[0])}\n`);
} else if (cmd === 'tls-sessions' && (args.length === 3 || args.length === 4)) {
  process.stdout.write(`${await tlsSessions(...args)}\n`);
} else {
  process.stderr.write(
    'usage: probe.mjs wait URL HOST SECONDS | probe.mjs split METRICS_URL | probe.mjs tls-handshakes METRICS_URL\n' +
      '       probe.mjs tls-sessions HOST PORT SERVERNAME [CONNECTIONS]\n',
  );
  process.exit(2);
}
