// The smallest useful Node proxy: node:http server + undici Pool.dispatch with a tiny
// handler (the same undici API Fairway's hot path uses), no routing, no logging, no
// metrics. An optional reference peer of `npm run bench` (BENCH_PROXIES=... undici-min):
// Fairway's CPU per request minus this one's is what Fairway's own logic costs.
// Usage: node bench/peers/undici-dispatch-proxy.mjs LISTEN_PORT ORIGIN_URL
import http from 'node:http';
import { Pool } from 'undici';

const [port, target] = process.argv.slice(2);
if (!port || !target) {
  process.stderr.write('usage: undici-dispatch-proxy.mjs LISTEN_PORT ORIGIN_URL\n');
  process.exit(2);
}
const pool = new Pool(target, { pipelining: 1, keepAliveTimeout: 4_000 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

class Exchange {
  constructor(res) {
    this.res = res;
  }
  onConnect() {}
  onHeaders(status, raw, _resume, statusText) {
    const headers = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1');
      if (!HOP.has(name.toLowerCase())) headers.push(name, raw[i + 1].toString('latin1'));
    }
    this.res.writeHead(status, statusText, headers);
    return true;
  }
  onData(chunk) {
    return this.res.write(chunk);
  }
  onComplete() {
    this.res.end();
  }
  onError(err) {
    if (!this.res.headersSent) this.res.writeHead(502).end(err.message);
    else this.res.destroy();
  }
}

const server = http.createServer((req, res) => {
  const headers = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  pool.dispatch({ path: req.url, method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, new Exchange(res));
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
