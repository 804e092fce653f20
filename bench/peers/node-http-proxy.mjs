// A bare Node proxy on `http.request` with a keep-alive agent, piping both ways: the
// "what node:http alone gives" peer of `npm run bench` (BENCH_PROXIES=... node-http).
// No routing, no logging, no metrics.
// Usage: node bench/peers/node-http-proxy.mjs LISTEN_PORT ORIGIN_URL
import http from 'node:http';

const [port, target] = process.argv.slice(2);
if (!port || !target) {
  process.stderr.write('usage: node-http-proxy.mjs LISTEN_PORT ORIGIN_URL\n');
  process.exit(2);
}
const origin = new URL(target);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

const server = http.createServer((req, res) => {
  const headers = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers[raw[i]] = raw[i + 1];
  const up = http.request({ host: origin.hostname, port: origin.port, path: req.url, method: req.method, headers, agent }, (answer) => {
    const out = {};
    for (const [name, value] of Object.entries(answer.headers)) if (!HOP.has(name)) out[name] = value;
    res.writeHead(answer.statusCode ?? 502, out);
    answer.pipe(res);
  });
  up.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502).end(err.message);
    else res.destroy();
  });
  // A client gone before the end: the upstream exchange is cut too (a paused upstream response would hold its agent socket for good).
  res.on('close', () => {
    if (!res.writableFinished) up.destroy();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 75_000;
server.listen(Number(port), '127.0.0.1');

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    agent.destroy();
    process.exit(0);
  });
}
