// Fallback origin for `npm run bench` when nginx is not available: a minimal Node HTTP
// server answering every request with the same ~100-byte 200 response on keep-alive.
// `/1mb` answers 1 MiB instead (BENCH_PATH=/1mb).
// Usage: node bench/peers/node-origin.mjs PORT [PORT...]
import http from 'node:http';

const body = Buffer.from('fairway bench origin: this response body is one hundred bytes long, padded with dots...............\n');
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };
const big = Buffer.alloc(1048576, 'x');
const bigHeaders = { 'content-type': 'application/octet-stream', 'content-length': String(big.length) };
const ports = process.argv.slice(2).map(Number);
if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p <= 0)) {
  process.stderr.write('usage: node-origin.mjs PORT [PORT...]\n');
  process.exit(2);
}

const servers = ports.map((port) => {
  const server = http.createServer((req, res) => {
    req.resume();
    if (req.url === '/1mb') res.writeHead(200, bigHeaders).end(big);
    else res.writeHead(200, headers).end(body);
  });
  server.keepAliveTimeout = 75_000;
  server.listen(port, '127.0.0.1');
  return server;
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    for (const s of servers) {
      s.close();
      s.closeAllConnections();
    }
    process.exit(0);
  });
}
