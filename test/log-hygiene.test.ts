/**
 * The log scan run after the whole test run (test/scan-logs.mjs, `posttest`) finds key
 * material and test secrets in any form a log line could carry them, and passes clean
 * lines with public certificates; and URLs with credentials are never shown as they are.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseConfig } from '../src/config/load-config.js';
import { publicSettings, publicUrl } from '../src/model.js';
import { generateSelfSigned } from '../src/tls/self-signed.js';

const SCANNER = fileURLToPath(new URL('./scan-logs.mjs', import.meta.url));

async function scan(files: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-scan-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [SCANNER], { env: { ...process.env, FAIRWAY_LOG_SCAN_DIR: dir }, cwd: dir });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const line = (fields: Record<string, unknown>) => JSON.stringify({ level: 'info', time: '2026-01-01T00:00:00.000Z', ...fields });

t.test('the scan fails with file:line for PEM keys, base64 DER keys (PKCS#1, PKCS#8, SEC1), a Secret\'s base64 PEM, JWK private members and test secrets', async (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8Pem = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const body = (pem: string) => pem.split('\n').slice(1, -2).join('');
  const der = (k: typeof rsa.privateKey, type: 'pkcs1' | 'pkcs8' | 'sec1') => k.export({ type, format: 'der' } as never).toString('base64');
  const lines = [
    line({ msg: 'clean' }),
    line({ msg: 'a PEM in a message', err: pkcs8Pem }),
    line({ msg: 'RSA PKCS#1 as base64', value: der(rsa.privateKey, 'pkcs1') }),
    line({ msg: 'PKCS#8 as base64', value: der(rsa.privateKey, 'pkcs8') }),
    line({ msg: 'SEC1 as base64', value: der(ec.privateKey, 'sec1') }),
    line({ msg: 'a PEM body without its markers', value: body(pkcs8Pem) }),
    line({ msg: 'a Secret\'s data', data: { 'tls.key': Buffer.from(pkcs8Pem).toString('base64') } }),
    line({ msg: 'an account key as JWK', key: ec.privateKey.export({ format: 'jwk' }) }),
    line({ msg: 'a test token', authorization: 'Bearer fwtest-secret-admin-1234' }),
    line({ msg: 'a remembered one', token: 'generated-by-the-router-0123' }),
  ];
  const res = await scan({ 'x.test.ts-1.log': lines.join('\n') + '\n', 'x.test.ts-1.secrets': JSON.stringify('generated-by-the-router-0123') + '\n' });
  t.equal(res.code, 1);
  t.same(res.stderr.trim().split('\n').slice(1), [
    'x.test.ts-1.log:2: a PEM private-key marker',
    'x.test.ts-1.log:3: base64 DER private-key material',
    'x.test.ts-1.log:4: base64 DER private-key material',
    'x.test.ts-1.log:5: base64 DER private-key material',
    'x.test.ts-1.log:6: base64 DER private-key material',
    'x.test.ts-1.log:7: a base64-encoded PEM private key',
    'x.test.ts-1.log:8: a JWK private member ("d")',
    'x.test.ts-1.log:9: a test secret (fwtest-secret-…)',
    'x.test.ts-1.log:10: a secret value a test remembered',
  ]);
});

t.test('the scan passes lines with certificates, hashes and ids, and says how much it read', async (t) => {
  const bundle = await generateSelfSigned({ names: ['web.example.test'], keyType: 'rsa' });
  const certDer = bundle.certPem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  const res = await scan({
    'y.test.ts-2.log': [
      line({ msg: 'certificate loaded', cert: bundle.certPem }),
      line({ msg: 'a certificate as base64 DER', der: certDer }),
      line({ msg: 'ids', id: 'a'.repeat(64), sha: '3q2+7w'.repeat(12) }),
    ].join('\n') + '\n',
  });
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /^log scan: 3 line\(s\) in 1 file\(s\), 0 remembered secret\(s\): no key material, no secret$/m);
});

t.test('a log service URL with credentials is shown and logged without them', async (t) => {
  t.equal(publicUrl('https://bob:pw@logs.test/in?key=abc&x=1'), 'https://(hidden)@logs.test/in?key=hidden&x=hidden');
  t.equal(publicUrl('https://logs.test/in'), 'https://logs.test/in', 'a URL without credentials is unchanged');
  const c = parseConfig('log:\n  ship: { url: "https://bob:fwtest-secret-pw@logs.test/in?apikey=fwtest-secret-key" }\n', 'f.yaml');
  t.notMatch(JSON.stringify(publicSettings(c.settings)), /fwtest-secret/);
  t.equal(c.settings.requestLogs!.ship!.url, 'https://bob:fwtest-secret-pw@logs.test/in?apikey=fwtest-secret-key', 'the router itself uses the URL as given');
});
