import t from 'tap';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { renewalInfoId } from '../src/tls/renewal-info.js';
import { parseRetryAfter } from '../src/tls/acme-http.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

t.test('the renewalInfo identifier follows RFC 9773 (its example: AKI 69:88:5B… and serial 00:87:65:43:21)', async (t) => {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0087654321',
    name: 'CN=ari.example',
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.AuthorityKeyIdentifierExtension('69885b6b87464041e1b37b847ba0ae2cde01c8d4')],
  });
  t.equal(renewalInfoId(cert.toString('pem')), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
});

t.test('Retry-After is read as seconds or as an HTTP date', async (t) => {
  const now = Date.parse('2026-11-27T00:00:00Z');
  t.equal(parseRetryAfter('120', now)?.toISOString(), '2026-11-27T00:02:00.000Z');
  t.equal(parseRetryAfter('Fri, 27 Nov 2026 01:00:00 GMT', now)?.toISOString(), '2026-11-27T01:00:00.000Z');
  t.equal(parseRetryAfter('soon', now), undefined);
  t.equal(parseRetryAfter(undefined, now), undefined);
});
