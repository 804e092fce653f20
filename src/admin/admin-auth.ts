/**
 * @module
 * Who may use the admin API (README "Admin API"). The rules, checked before any path is
 * routed, on the same normalised path the router uses:
 * - a client whose TCP peer is a loopback address may do anything, without a token;
 * - from any other address, `GET`/`HEAD` of `/healthz`, `/readyz` and `/metrics` stay
 *   open (kubelet probes and Prometheus come from other addresses; none of the three
 *   carries a secret), and every other request needs `Authorization: Bearer <token>`
 *   with the router's token: without a token configured, FW_ADMIN_FORBIDDEN (403); with a
 *   missing or wrong one, FW_ADMIN_UNAUTHORIZED (401, `WWW-Authenticate: Bearer`).
 *
 * The token is compared in constant time (SHA-256 digests of equal length compared with
 * `timingSafeEqual`), so the answer's timing does not tell how much of a guess was right.
 * It is replaced at run time ({@link AdminAuth.setToken}: a config reload, a re-read
 * Secret); a request is judged on the token current when it arrives. The token never
 * appears in an answer, an error message or a log line; {@link AdminAuth.authorization}
 * hands it to this router's own calls to the other replicas' admin APIs.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { FairwayError } from '../errors.js';

/** How a request was let in: from loopback, with the token, or to an open path. */
export type AdminAccess = 'loopback' | 'token' | 'open';

/** Paths any address may `GET`: probes and metrics. */
const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

/** The shortest token accepted: shorter ones are guessable. */
export const MIN_TOKEN_LENGTH = 16;

/** Why `text` cannot be an admin token, or undefined if it can (never quotes the text). */
export function tokenProblem(text: string): string | undefined {
  if (text.length < MIN_TOKEN_LENGTH) return `must hold a token of at least ${MIN_TOKEN_LENGTH} characters (it has ${text.length})`;
  if (!/^[\x21-\x7e]+$/.test(text)) return 'must hold a token of visible ASCII characters only (no spaces or line breaks inside it)';
  return undefined;
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

export class AdminAuth {
  #token: string | undefined;
  #digest: Buffer | undefined;

  /** The token requests from other addresses must carry; undefined: such requests are refused (403). */
  setToken(token: string | undefined): void {
    if (token !== undefined && tokenProblem(token) !== undefined) throw new RangeError('AdminAuth: invalid token (see tokenProblem())');
    this.#token = token;
    this.#digest = token === undefined ? undefined : digest(token);
  }

  /** Whether a token is configured. */
  get configured(): boolean {
    return this.#digest !== undefined;
  }

  /** The `Authorization` header value for this router's calls to another replica's admin API; undefined without a token. */
  authorization(): string | undefined {
    return this.#token === undefined ? undefined : `Bearer ${this.#token}`;
  }

  /**
   * Lets a request in (answering how) or throws FW_ADMIN_FORBIDDEN / FW_ADMIN_UNAUTHORIZED.
   * `path` is the normalised path the admin API routes on; `peer` the socket's remote address.
   */
  check(method: string, path: string, peer: string | undefined, authorization: string | undefined): AdminAccess {
    if (isLoopback(peer)) return 'loopback';
    if ((method === 'GET' || method === 'HEAD') && OPEN_PATHS.has(path)) return 'open';
    const expected = this.#digest;
    if (expected === undefined) {
      throw new FairwayError('FW_ADMIN_FORBIDDEN', `the admin API answers only loopback clients unless admin.tokenFile is set (this request came from ${peer ?? 'an unknown address'})`);
    }
    const presented = authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
    if (presented === undefined) {
      throw new FairwayError('FW_ADMIN_UNAUTHORIZED', `the admin API needs "Authorization: Bearer <token>" from ${peer ?? 'this address'}, and the request had ${authorization === undefined ? 'no Authorization header' : 'no bearer token in it'}`);
    }
    if (!timingSafeEqual(digest(presented), expected)) {
      throw new FairwayError('FW_ADMIN_UNAUTHORIZED', "the bearer token is not this router's admin token");
    }
    return 'token';
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
