/**
 * @module
 * ACME Renewal Information (RFC 9773): the identifier of a certificate in the CA's
 * `renewalInfo` resource, `base64url(AKI keyIdentifier) "." base64url(serial)`.
 */
import * as x509 from '@peculiar/x509';

/** The RFC 9773 certificate identifier of the leaf in `certPem`, or undefined without an AKI. */
export function renewalInfoId(certPem: string): string | undefined {
  const cert = new x509.X509Certificate(certPem.split(/(?<=-----END CERTIFICATE-----)/)[0]!);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) return undefined;
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${Buffer.from(serialBytes(cert.serialNumber)).toString('base64url')}`;
}

/** The DER content bytes of a serial given as hex (a leading 00 keeps a positive number positive). */
function serialBytes(hex: string): Uint8Array {
  let h = hex.length % 2 ? `0${hex}` : hex;
  if (/^[89a-f]/i.test(h)) h = `00${h}`;
  return Uint8Array.from(Buffer.from(h, 'hex'));
}
