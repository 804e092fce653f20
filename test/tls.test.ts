import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import { generateSelfSigned } from '../src/tls/self-signed.js';
import type { CertificateBundle } from '../src/tls/certificate-bundle.js';
import { startUpstream } from './helpers/upstreams.js';
import { startTestRouter, type TestRouter } from './helpers/test-router.js';
import { hello } from './helpers/tls-client.js';

const echo = await startUpstream('echo');
t.teardown(() => echo.close());

const certA = await generateSelfSigned({ names: ['a.test', '*.wild.test'] });
const certB = await generateSelfSigned({ names: ['b.test'] });
const certPlatform = await generateSelfSigned({ names: ['*.platform.test'] });

function writePair(dir: string, name: string, b: { certPem: string; keyPem: string }): void {
  writeFileSync(path.join(dir, `${name}.pem`), b.certPem);
  writeFileSync(path.join(dir, `${name}.key`), b.keyPem);
}

const config = (extra = '') => `
listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:0 }
tls:
  certificates: [{ cert: a.pem, key: a.key }]
${extra}
apps:
  a:
    domains: [a.test, "*.wild.test", plain.test]
    versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } }
  b:
    domains: [b.test]
    tls:
      certificates: [{ cert: b.pem, key: b.key }]
      sslEnforce: true
      hsts: { maxAge: 600, includeSubDomains: true }
    versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } }
`;

async function router(extra = '', prepare?: (dir: string) => void): Promise<TestRouter> {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-tls-'));
  writePair(dir, 'a', certA);
  writePair(dir, 'b', certB);
  prepare?.(dir);
  const r = await startTestRouter(config(extra), { dir });
  t.teardown(() => r.close());
  return r;
}

const httpsPort = (r: TestRouter) => r.router.httpsAddress!.port;
const serial = (b: CertificateBundle) => b.serialNumber;

t.test('certificates are chosen by SNI: exact, then wildcard, then the default', async (t) => {
  const r = await router();
  const port = httpsPort(r);
  t.equal((await hello(port, { servername: 'a.test' })).cert.serialNumber, serial(certA));
  t.equal((await hello(port, { servername: 'B.TEST' })).cert.serialNumber, serial(certB), 'per-app file certificate, any case');
  t.equal((await hello(port, { servername: 'x.wild.test' })).cert.serialNumber, serial(certA), 'wildcard name of a file certificate');
  const unknown = await hello(port, { servername: 'nobody.test' });
  t.match(unknown.cert.subjectaltname, /DNS:fairway\.invalid/, 'unknown names get the generated self-signed default');
  const noSni = await hello(port, {});
  t.match(noSni.cert.subjectaltname, /DNS:fairway\.invalid/, 'so do clients that send no SNI');
});

t.test('a configured platform certificate is the default for unknown and missing SNI', async (t) => {
  const r = await router('  platformCertificate: { cert: platform.pem, key: platform.key }', (dir) => writePair(dir, 'platform', certPlatform));
  const port = httpsPort(r);
  t.equal((await hello(port, { servername: 'nobody.test' })).cert.serialNumber, serial(certPlatform));
  t.equal((await hello(port, {})).cert.serialNumber, serial(certPlatform));
  t.equal((await hello(port, { servername: 'app.platform.test' })).cert.serialNumber, serial(certPlatform));
  t.equal((await hello(port, { servername: 'a.test' })).cert.serialNumber, serial(certA), 'own certificates still win');
});

t.test('TLS 1.2 and 1.3 only, AEAD suites only, ALPN h2 or http/1.1, sessions resume', async (t) => {
  const r = await router();
  const port = httpsPort(r);
  const v13 = await hello(port, { servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'] });
  t.equal(v13.protocol, 'TLSv1.3');
  t.equal(v13.alpn, 'h2', 'HTTP/2 when offered (test/http2.test.ts)');
  t.equal((await hello(port, { servername: 'a.test', ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1');
  const v12 = await hello(port, { servername: 'a.test', maxVersion: 'TLSv1.2' });
  t.equal(v12.protocol, 'TLSv1.2');
  await t.rejects(hello(port, { servername: 'a.test', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }), 'TLS 1.1 is refused');
  await t.rejects(hello(port, { servername: 'a.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA' }), 'CBC suites are refused');

  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    const first = await hello(port, { servername: 'a.test', maxVersion });
    t.ok(first.session, `${maxVersion}: a session ticket is issued`);
    const again = await hello(port, { servername: 'a.test', maxVersion, session: first.session });
    t.equal(again.reused, true, `${maxVersion}: the session resumes`);
  }
  const metrics = (await r.adminGet('/metrics')).body;
  t.match(metrics, /fairway_tls_handshakes_total\{resumed="true"\} [1-9]/);
  t.match(metrics, /fairway_tls_handshake_errors_total [1-9]/, 'the refused handshakes are counted');
});

t.test('every resumption carries a new session ticket, so a client reconnecting with its last ticket never needs a full handshake again', async (t) => {
  const r = await router('', (dir) => writePair(dir, 'platform', certPlatform));
  const port = httpsPort(r);
  /** Connects `count` times, each with the ticket the previous connection received; says which resumed. */
  const chain = async (maxVersion: 'TLSv1.2' | 'TLSv1.3', count: number) => {
    const reused: boolean[] = [];
    let session: Buffer | undefined;
    for (let i = 0; i < count; i++) {
      const h = await hello(port, { servername: 'a.test', maxVersion, ...(session ? { session } : {}) });
      reused.push(h.reused);
      t.ok(h.session, `${maxVersion} connection ${i}: a ticket for the next one`);
      session = h.session;
    }
    return reused;
  };
  for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
    t.same(await chain(maxVersion, 5), [false, true, true, true, true], `${maxVersion}: one full handshake, then resumptions only`);
  }
  // A new default certificate replaces the listener's own context, where tickets are made: renewal still holds.
  await r.rewrite(config('  platformCertificate: { cert: platform.pem, key: platform.key }'));
  // The file certificate is loaded after the snapshot: the handshakes tell when it is live.
  let served = '';
  for (let i = 0; i < 500 && served !== serial(certPlatform); i++) served = (await hello(port, {})).cert.serialNumber;
  t.equal(served, serial(certPlatform), 'the new default is served');
  t.same(await chain('TLSv1.3', 4), [false, true, true, true], 'after the default changed too');
});

t.test('HTTPS requests are proxied with X-Forwarded-Proto https; HSTS only on HTTPS responses of apps that set it', async (t) => {
  const r = await router();
  const agent = new Agent({ connect: { rejectUnauthorized: false, servername: 'b.test' } });
  t.teardown(() => agent.close());
  const res = await request(`https://127.0.0.1:${httpsPort(r)}/secure?x=1`, { dispatcher: agent, headers: { host: 'b.test' } });
  const body = (await res.body.json()) as { headers: Record<string, string> };
  t.equal(res.statusCode, 200);
  t.equal(body.headers['x-forwarded-proto'], 'https');
  t.equal(body.headers['x-forwarded-port'], String(httpsPort(r)));
  t.equal(res.headers['strict-transport-security'], 'max-age=600; includeSubDomains');

  const agentA = new Agent({ connect: { rejectUnauthorized: false, servername: 'a.test' } });
  t.teardown(() => agentA.close());
  const other = await request(`https://127.0.0.1:${httpsPort(r)}/`, { dispatcher: agentA, headers: { host: 'a.test' } });
  await other.body.text();
  t.equal(other.headers['strict-transport-security'], undefined, 'apps without hsts send none');
});

t.test('sslEnforce redirects plain HTTP to HTTPS: 301 for GET/HEAD, 308 otherwise; ACME paths are exempt', async (t) => {
  const r = await router();
  const get = await r.get('b.test', '/path?q=1');
  t.equal(get.status, 301);
  t.equal(get.headers.location, `https://b.test:${httpsPort(r)}/path?q=1`);
  t.equal(get.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
  const post = await r.get('b.test', '/form', { method: 'POST', body: 'x' });
  t.equal(post.status, 308);
  const acme = await r.get('b.test', '/.well-known/acme-challenge/unknown-token');
  t.equal(acme.status, 200, 'a challenge path is not redirected (here it reaches the app)');
  t.equal((await r.get('plain.test')).status, 200, 'apps without sslEnforce serve plain HTTP');
});

t.test('certificate files are reloaded on change; bad or mismatched files are reported and the previous certificate stays', async (t) => {
  const r = await router();
  const port = httpsPort(r);
  const certFile = path.join(r.dir, 'a.pem');
  const keyFile = path.join(r.dir, 'a.key');
  const rows = async () => ((await r.adminGet('/v1/certificates')).json().certificates as { host: string; source: string; notAfter: string; lastError?: { code: string; message: string } }[]);
  const until = async (what: string, check: () => Promise<boolean>) => {
    for (let i = 0; i < 100; i++) {
      if (await check()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  t.match((await rows()).find((x) => x.host === 'a.test'), { source: 'file', notAfter: certA.notAfter });

  writeFileSync(certFile, 'not a certificate');
  await until('the bad PEM to be reported', async () => (await rows()).some((x) => x.lastError?.code === 'FW_TLS_CERT_INVALID'));
  t.equal((await hello(port, { servername: 'a.test' })).cert.serialNumber, serial(certA), 'garbage PEM: the previous certificate is still served');

  const other = await generateSelfSigned({ names: ['a.test'] });
  writeFileSync(certFile, other.certPem); // key.pem still holds certA's key
  await until('the mismatch to be reported', async () => (await rows()).some((x) => /does not match/.test(x.lastError?.message ?? '')));
  t.equal((await hello(port, { servername: 'a.test' })).cert.serialNumber, serial(certA), 'mismatched pair: the previous certificate is still served');

  writeFileSync(keyFile, other.keyPem);
  await until('the new pair to be served', async () => (await hello(port, { servername: 'a.test' })).cert.serialNumber === serial(other));
  t.notOk((await rows()).find((x) => x.host === 'a.test')?.lastError, 'the error clears once the files are good');
});

t.test('config checks: sslEnforce and ACME need an HTTPS listener', async (t) => {
  const { parseConfig } = await import('../src/config/load-config.js');
  t.throws(() => parseConfig('tls: { sslEnforce: true }\napps:\n  a: {}\n', 'f.yaml'), { message: /apps\.a\.tls\.sslEnforce: needs listen\.https/ });
  t.throws(() => parseConfig('tls:\n  acme: { directory: "https://acme.test/dir" }\n', 'f.yaml'), { message: /f\.yaml:2:9: tls\.acme: needs listen\.https/ });
  t.throws(() => parseConfig('listen: { https: 127.0.0.1:0 }\ntls:\n  acme: { directory: "not a url", challenge: dns-01 }\n', 'f.yaml'), {
    message: /tls\.acme\.directory: must be the https:\/\/ URL of an ACME directory\n.*tls\.acme\.challenge: must be http-01 or tls-alpn-01/,
  });
});
