/**
 * @module
 * ACME Renewal Information (RFC 9773), the parts that need no network: the identifier of a
 * certificate in the CA's `renewalInfo` resource (`base64url(AKI keyIdentifier) "."
 * base64url(serial)`, also the value of a renewal order's `replaces`), the reading of a
 * RenewalInfo answer, and when to ask again (§4.3, from its `Retry-After`).
 */
import * as x509 from '@peculiar/x509';
import { parseRetryAfter } from './acme-http.js';

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

/** A CA's suggested renewal window, epoch ms, `start < end`. */
export interface RenewalWindow {
  readonly start: number;
  readonly end: number;
  /** Why the CA suggests it (RFC 9773 `explanationURL`), e.g. a revocation notice. */
  readonly explanationUrl: string | undefined;
}

/**
 * Reads a RenewalInfo object (`{ suggestedWindow: { start, end }, explanationURL? }`).
 * Throws an Error saying what is wrong with anything else, including a window whose end
 * does not follow its start (RFC 9773 §4.2: treated as no answer at all).
 */
export function parseRenewalInfo(body: unknown): RenewalWindow {
  const info = body as { suggestedWindow?: { start?: unknown; end?: unknown }; explanationURL?: unknown } | null;
  const w = typeof info === 'object' && info !== null ? info.suggestedWindow : undefined;
  if (typeof w !== 'object' || w === null) throw new Error('no suggestedWindow object');
  const start = typeof w.start === 'string' ? Date.parse(w.start) : NaN;
  const end = typeof w.end === 'string' ? Date.parse(w.end) : NaN;
  if (Number.isNaN(start) || Number.isNaN(end)) throw new Error('suggestedWindow start and end must be RFC 3339 timestamps');
  if (!(end > start)) throw new Error('suggestedWindow ends before it starts');
  return { start, end, explanationUrl: typeof info!.explanationURL === 'string' ? info!.explanationURL : undefined };
}

/** Bounds on the time between two fetches of one certificate's RenewalInfo, ms. */
export interface RenewalInfoPoll {
  readonly min: number;
  readonly max: number;
}

/** RFC 9773 §4.3's example bounds: a `Retry-After` under a minute counts as a minute, over a day as a day. */
export const RENEWAL_INFO_POLL: RenewalInfoPoll = { min: 60_000, max: 86_400_000 };

/** Without a usable `Retry-After` (or after an error) the next fetch is this far off (RFC 9773 §4.3.3's "six hours"). */
export const RENEWAL_INFO_DEFAULT_MS = 6 * 3_600_000;

/** When to fetch a certificate's RenewalInfo again: its `Retry-After`, else six hours, within `poll`. */
export function nextRenewalInfoFetch(retryAfter: string | undefined, now: number, poll: RenewalInfoPoll = RENEWAL_INFO_POLL): number {
  const asked = parseRetryAfter(retryAfter, now)?.getTime();
  const wait = asked === undefined ? RENEWAL_INFO_DEFAULT_MS : asked - now;
  return now + Math.min(poll.max, Math.max(poll.min, wait));
}
