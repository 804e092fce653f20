/**
 * @module
 * Generates the self-signed certificate served for unknown or missing SNI when no
 * platform certificate is configured (so a TLS client always completes a handshake and
 * gets an HTTP answer it can read, instead of a handshake failure). Also used by tests.
 */
import { KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { KeyType } from '../model.js';
import { parseBundle, type CertificateBundle, type CertificateSource } from './certificate-bundle.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHMS = {
  ecdsa: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  rsa: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
} as const;

export interface SelfSignedOptions {
  readonly names: readonly string[];
  readonly keyType?: KeyType;
  readonly days?: number;
  readonly source?: CertificateSource;
  /** Validity start (default: one hour ago, to tolerate clock skew). */
  readonly notBefore?: Date;
}

export async function generateSelfSigned(options: SelfSignedOptions): Promise<CertificateBundle> {
  const alg = ALGORITHMS[options.keyType ?? 'ecdsa'];
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
  const notAfter = new Date(notBefore.getTime() + (options.days ?? 365) * 86_400_000);
  const [first] = options.names;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1'),
    name: `CN=${first ?? 'fairway'}`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(options.names.map((n) => ({ type: 'dns' as const, value: n }))),
    ],
  });
  const keyPem = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  return parseBundle(cert.toString('pem'), keyPem, options.source ?? 'self-signed', 'generated');
}
