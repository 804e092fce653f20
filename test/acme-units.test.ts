import t from 'tap';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { nextRenewalInfoFetch, parseRenewalInfo, renewalInfoId } from '../src/tls/renewal-info.js';
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

t.test('a RenewalInfo answer is read only with a suggestedWindow whose end follows its start', async (t) => {
  t.same(parseRenewalInfo({ suggestedWindow: { start: '2026-01-01T00:00:00Z', end: '2026-01-02T00:00:00Z' }, explanationURL: 'https://ca.example/why' }), {
    start: Date.parse('2026-01-01T00:00:00Z'),
    end: Date.parse('2026-01-02T00:00:00Z'),
    explanationUrl: 'https://ca.example/why',
  });
  t.throws(() => parseRenewalInfo(null), /no suggestedWindow object/);
  t.throws(() => parseRenewalInfo({ suggestedWindow: 'soon' }), /no suggestedWindow object/);
  t.throws(() => parseRenewalInfo({ suggestedWindow: { start: 'monday', end: '2026-01-02T00:00:00Z' } }), /RFC 3339/);
  t.throws(() => parseRenewalInfo({ suggestedWindow: { start: '2026-01-02T00:00:00Z', end: '2026-01-02T00:00:00Z' } }), /ends before it starts/);
});

t.test('RenewalInfo is fetched again at its Retry-After, within 1 minute and 1 day, else after 6 hours', async (t) => {
  const now = Date.parse('2026-11-27T00:00:00Z');
  t.equal(nextRenewalInfoFetch('3600', now) - now, 3_600_000);
  t.equal(nextRenewalInfoFetch('Fri, 27 Nov 2026 02:00:00 GMT', now) - now, 7_200_000, 'an HTTP date');
  t.equal(nextRenewalInfoFetch('1', now) - now, 60_000, 'no sooner than a minute');
  t.equal(nextRenewalInfoFetch(String(7 * 86_400), now) - now, 86_400_000, 'no later than a day');
  t.equal(nextRenewalInfoFetch(undefined, now) - now, 6 * 3_600_000, 'none: six hours');
  t.equal(nextRenewalInfoFetch('later', now) - now, 6 * 3_600_000, 'unreadable: six hours');
  t.equal(nextRenewalInfoFetch('1', now, { min: 200, max: 1000 }) - now, 1000, 'other bounds');
});
