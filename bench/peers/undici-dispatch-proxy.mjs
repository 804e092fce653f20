// The smallest useful Node proxy: node:http server + undici Pool.dispatch with a tiny
// handler (the same undici API Fairway's hot path uses), no routing, no logging, no
// metrics. An optional reference peer of `npm run bench` (BENCH_PROXIES=... undici-min):
// Fairway's CPU per request minus this one's is what Fairway's own logic costs.
// With CERT_FILE and KEY_FILE it listens with HTTPS instead (bench/tls.sh): node:https
// with the same TLS settings as Fairway's (src/tls/certificate-store.ts TLS_PROFILE), ALPN
// http/1.1 chosen by OpenSSL, one certificate, no SNI or ALPN callbacks.
// Usage: node bench/peers/undici-dispatch-proxy.mjs LISTEN_PORT ORIGIN_URL [CERT_FILE KEY_FILE]
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';

const [port, target, certFile, keyFile] = process.argv.slice(2);
if (!port || !target || Boolean(certFile) !== Boolean(keyFile)) {
  process.stderr.write('usage: undici-dispatch-proxy.mjs LISTEN_PORT ORIGIN_URL [CERT_FILE KEY_FILE]\n');
  process.exit(2);
}
const TLS_PROFILE = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
  ecdhCurve: 'X25519:prime256v1:secp384r1',
};
const pool = new Pool(target, { pipelining: 1, keepAliveTimeout: 4_000 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

class Exchange {
  constructor(res) {
    this.res = res;
  }
  onConnect(abort) {
    // A client gone before the end cuts the upstream request (it may be paused, waiting for a 'drain' that never comes).
    this.res.once('close', () => {
      if (!this.res.writableFinished) abort(new Error('client closed'));
    });
  }
  onHeaders(status, raw, resume, statusText) {
    const headers = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1');
      if (!HOP.has(name.toLowerCase())) headers.push(name, raw[i + 1].toString('latin1'));
    }
    this.res.writeHead(status, statusText, headers);
    this.resume = resume;
    return true;
  }
  onData(chunk) {
    // Backpressure: false pauses the upstream until the client has read what is buffered.
    const ok = this.res.write(chunk);
    if (!ok) this.res.once('drain', this.resume);
    return ok;
  }
  onComplete() {
    this.res.end();
  }
  onError(err) {
    if (!this.res.headersSent) this.res.writeHead(502).end(err.message);
    else this.res.destroy();
  }
}

const handler = (req, res) => {
  const headers = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  pool.dispatch({ path: req.url, method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, new Exchange(res));
};
const server = certFile
  ? https.createServer({ ...TLS_PROFILE, cert: readFileSync(certFile), key: readFileSync(keyFile), ALPNProtocols: ['http/1.1'] }, handler)
  : http.createServer(handler);
server.keepAliveTimeout = 75_000;
server.listen(Number(port), '127.0.0.1');

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    pool.destroy().finally(() => process.exit(0));
  });
}
