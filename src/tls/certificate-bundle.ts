/**
 * @module
 * A certificate chain with its private key, parsed and checked once when it is loaded
 * (never on the handshake path). `parseBundle` refuses what must never be served: PEM
 * that does not parse, a key that does not match the leaf certificate, an expired leaf.
 * Bundles are plain data so they can be stored and sent to worker processes.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { FairwayError } from '../errors.js';

export type CertificateSource = 'file' | 'acme' | 'self-signed' | 'platform' | 'secret';

export interface CertificateBundle {
  /** Leaf first, then intermediates (PEM). */
  readonly certPem: string;
  readonly keyPem: string;
  /** Lower-case DNS names the leaf is valid for (subjectAltName, else CN); may hold `*.` wildcards. */
  readonly names: readonly string[];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly source: CertificateSource;
  /** Where it came from: a file path, the ACME directory, a Secret, or "generated". */
  readonly origin: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Parses and checks a chain and key. Throws FW_TLS_CERT_INVALID with the reason. */
export function parseBundle(certPem: string, keyPem: string, source: CertificateSource, origin: string, now = Date.now()): CertificateBundle {
  const pems = certPem.match(PEM_CERT);
  if (!pems) throw invalid(origin, 'no PEM certificate found');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pems[0]!);
    for (const p of pems.slice(1)) new X509Certificate(p);
  } catch (err) {
    throw invalid(origin, `certificate does not parse: ${(err as Error).message}`);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw invalid(origin, 'private key does not parse (expected a PEM private key)');
  }
  if (!leaf.checkPrivateKey(key)) throw invalid(origin, 'private key does not match the certificate');
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now) throw invalid(origin, `certificate expired on ${notAfter.toISOString()}`);
  return {
    certPem: pems.join('\n') + '\n',
    keyPem,
    names: namesOf(leaf),
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: notAfter.toISOString(),
    issuer: oneLine(leaf.issuer),
    serialNumber: leaf.serialNumber,
    source,
    origin,
  };
}

function namesOf(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  const names = san
    ? san.split(', ').filter((e) => e.startsWith('DNS:')).map((e) => e.slice(4).toLowerCase())
    : [];
  if (names.length > 0) return names;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

function oneLine(dn: string): string {
  return dn.split('\n').join(', ');
}

function invalid(origin: string, reason: string): FairwayError {
  return new FairwayError('FW_TLS_CERT_INVALID', `${origin}: ${reason}`);
}
