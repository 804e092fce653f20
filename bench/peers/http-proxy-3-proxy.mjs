// A bare http-proxy-3 reverse proxy: the "plain Node library" peer of `npm run bench`.
// Usage: node bench/peers/http-proxy-3-proxy.mjs LISTEN_PORT ORIGIN_URL
// One Node process, one http.Server, every request proxied to ORIGIN_URL through a
// keep-alive http.Agent (connections reused, as Fairway's undici pools and nginx's
// `keepalive` do). xfwd adds X-Forwarded-For/-Port/-Proto/-Host like Fairway does.
import http from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const [port, target] = process.argv.slice(2);
if (!port || !target) {
  process.stderr.write('usage: http-proxy-3-proxy.mjs LISTEN_PORT ORIGIN_URL\n');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const proxy = createProxyServer({ target, agent, xfwd: true });
proxy.on('error', (err, _req, res) => {
  // res is a ServerResponse for HTTP requests; answer 502 once, like a proxy should.
  if (res && 'headersSent' in res && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`bad gateway: ${err.message}\n`);
  } else {
    res?.destroy?.();
  }
});

const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 75_000;
server.listen(Number(port), '127.0.0.1', () => {
  process.stderr.write(`http-proxy-3 peer on 127.0.0.1:${port} -> ${target}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    agent.destroy();
    process.exit(0);
  });
}
