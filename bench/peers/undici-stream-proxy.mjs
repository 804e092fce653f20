// A bare Node proxy on undici's `stream` API (node:http server + Pool.stream writing the
// answer straight into the client response): a peer of `npm run bench`
// (BENCH_PROXIES=... undici-stream). No routing, no logging, no metrics.
// Usage: node bench/peers/undici-stream-proxy.mjs LISTEN_PORT ORIGIN_URL
import http from 'node:http';
import { Pool } from 'undici';

const [port, target] = process.argv.slice(2);
if (!port || !target) {
  process.stderr.write('usage: undici-stream-proxy.mjs LISTEN_PORT ORIGIN_URL\n');
  process.exit(2);
}
const pool = new Pool(target, { pipelining: 1, keepAliveTimeout: 4_000 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

const server = http.createServer((req, res) => {
  const headers = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  pool
    .stream({ path: req.url, method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, ({ statusCode, headers: h }) => {
      for (const name of Object.keys(h)) if (HOP.has(name)) delete h[name];
      res.writeHead(statusCode, h);
      return res;
    })
    .catch((err) => {
      if (!res.headersSent) res.writeHead(502).end(err.message);
      else res.destroy();
    });
});
server.keepAliveTimeout = 75_000;
server.listen(Number(port), '127.0.0.1');

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    pool.destroy().finally(() => process.exit(0));
  });
}
