/**
 * @module
 * The answers to pending ACME challenges, shared by the ACME manager (which sets them
 * while an order is open) and the data plane (which serves them): HTTP-01 tokens on the
 * HTTP listener and TLS-ALPN-01 certificates on the HTTPS listener. Memory only; entries
 * live from the challenge's creation until the manager removes them.
 */
import type { SecureContext } from 'node:tls';

export const HTTP01_PREFIX = '/.well-known/acme-challenge/';
export const ACME_TLS_ALPN = 'acme-tls/1';

export class AcmeChallenges {
  readonly #http01 = new Map<string, string>();
  readonly #alpn = new Map<string, SecureContext>();

  setHttp01(token: string, keyAuthorization: string): void {
    this.#http01.set(token, keyAuthorization);
  }

  deleteHttp01(token: string): void {
    this.#http01.delete(token);
  }

  /** The key authorization for a request path under `/.well-known/acme-challenge/`, if pending. */
  http01(path: string): string | undefined {
    if (this.#http01.size === 0 || !path.startsWith(HTTP01_PREFIX)) return undefined;
    return this.#http01.get(path.slice(HTTP01_PREFIX.length));
  }

  setAlpn(host: string, context: SecureContext): void {
    this.#alpn.set(host.toLowerCase(), context);
  }

  deleteAlpn(host: string): void {
    this.#alpn.delete(host.toLowerCase());
  }

  alpn(servername: string | undefined): SecureContext | undefined {
    return servername ? this.#alpn.get(servername.toLowerCase()) : undefined;
  }
}
