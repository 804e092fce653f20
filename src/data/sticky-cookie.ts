/**
 * @module
 * The sticky-version cookie of one app: `fairway_v_<app>=<version>.<signature>`, where the
 * signature is HMAC-SHA256(key, `fairway-sticky-v1\n<app>\n<version>`) cut to its first
 * 16 bytes and written base64url (22 characters). The value names the version in clear
 * (it is no secret) and is bound to the app, so one app's cookie means nothing to another.
 *
 * Every value and every `Set-Cookie` line is computed when the route table is compiled.
 * On the hot path the request's `Cookie` header is searched in place and compared in
 * constant time (every character of the candidate is compared, no early exit), with no
 * HMAC and no allocation.
 *
 * Contract:
 * - `pinned(cookieHeader)` is the version whose correctly signed value the header carries
 *   under this app's cookie name (the first cookie of that name), or undefined: no such
 *   cookie, an unknown version, a bad or truncated signature, a value signed with another
 *   key or for another app. Whether the version may still be used (weight, endpoints) is
 *   the caller's decision.
 * - `setCookie(version, secure)` is the `Set-Cookie` value naming `version`: `Path=/`,
 *   `Max-Age` {@link STICKY_MAX_AGE}, `HttpOnly`, `SameSite=Lax`, and `Secure` when `secure`
 *   (HTTPS requests). No `Domain`: the cookie stays on the host that set it.
 * - The same key, app and version give the same value on every replica and across
 *   restarts; a new key makes every earlier cookie unrecognised (its clients are picked by
 *   weight once and given a new cookie).
 */
import { createHmac } from 'node:crypto';

/** Seconds a sticky cookie lives in the browser, counted from when it was set (not sliding). */
export const STICKY_MAX_AGE = 86_400;
/** Cookie names are this plus the app name (app names are valid cookie-name characters). */
export const STICKY_COOKIE_PREFIX = 'fairway_v_';
/** Bytes of the HMAC kept in a value. */
const SIGNATURE_BYTES = 16;

export class StickyCookie<V extends { readonly name: string }> {
  /** The cookie's name, `fairway_v_<app>`. */
  readonly name: string;
  /** `name=`, searched for in `Cookie` headers. */
  readonly #prefix: string;
  readonly #versions: readonly V[];
  /** `versions[i]`'s cookie value. */
  readonly #values: string[];
  readonly #plain: string[];
  readonly #secure: string[];

  constructor(key: Buffer, app: string, versions: readonly V[]) {
    this.name = `${STICKY_COOKIE_PREFIX}${app}`;
    this.#prefix = `${this.name}=`;
    this.#versions = versions;
    this.#values = versions.map((v) => `${v.name}.${signVersion(key, app, v.name)}`);
    const attributes = `; Path=/; Max-Age=${STICKY_MAX_AGE}; HttpOnly; SameSite=Lax`;
    this.#plain = this.#values.map((value) => `${this.#prefix}${value}${attributes}`);
    this.#secure = this.#plain.map((line) => `${line}; Secure`);
  }

  /** The version a `Cookie` header pins this app's client to, if its cookie is valid. */
  pinned(cookieHeader: string): V | undefined {
    const prefix = this.#prefix;
    let at = cookieHeader.indexOf(prefix);
    while (at > 0 && !atCookieStart(cookieHeader, at)) at = cookieHeader.indexOf(prefix, at + 1);
    if (at < 0) return undefined;
    const start = at + prefix.length;
    let end = cookieHeader.indexOf(';', start);
    if (end < 0) end = cookieHeader.length;
    while (end > start && isSpace(cookieHeader.charCodeAt(end - 1))) end--;
    const values = this.#values;
    for (let i = 0; i < values.length; i++) {
      if (equalAt(cookieHeader, start, end, values[i]!)) return this.#versions[i];
    }
    return undefined;
  }

  /** The `Set-Cookie` value that pins a client to `version` (undefined for a version not of this app). */
  setCookie(version: V, secure: boolean): string | undefined {
    const i = this.#versions.indexOf(version);
    if (i < 0) return undefined;
    return secure ? this.#secure[i] : this.#plain[i];
  }
}

/** The signature part of a cookie value: base64url of the first 16 bytes of the HMAC. */
export function signVersion(key: Buffer, app: string, version: string): string {
  return createHmac('sha256', key).update(`fairway-sticky-v1\n${app}\n${version}`).digest().subarray(0, SIGNATURE_BYTES).toString('base64url');
}

/** Whether the cookie name found at `at` starts a cookie (start of header, or after `;` and spaces). */
function atCookieStart(header: string, at: number): boolean {
  let i = at - 1;
  while (i >= 0 && isSpace(header.charCodeAt(i))) i--;
  return i < 0 || header.charCodeAt(i) === 59 /* ; */;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * Whether `s[start, end)` equals `expected`, in time that depends only on the lengths: the
 * length (the version name's, which is public) is checked first, then every character.
 */
function equalAt(s: string, start: number, end: number, expected: string): boolean {
  const n = expected.length;
  if (end - start !== n) return false;
  let diff = 0;
  for (let i = 0; i < n; i++) diff |= s.charCodeAt(start + i) ^ expected.charCodeAt(i);
  return diff === 0;
}
