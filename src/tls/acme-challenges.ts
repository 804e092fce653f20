/**
 * @module
 * The answers to pending ACME challenges, shared by the ACME manager (which sets them
 * while an order is open) and the data plane (which serves them): HTTP-01 tokens on the
 * HTTP listener and TLS-ALPN-01 certificates on the HTTPS listener.
 *
 * Lookups read memory first. Replicas behind one load balancer share a storage, and the
 * CA's validation may reach a replica other than the one that placed the order: so the
 * manager also writes each answer to storage, and a miss falls back to an asynchronous
 * storage read. Only challenge requests and `acme-tls/1` handshakes ever take that path;
 * normal requests and handshakes read memory only.
 */
import type { SecureContext } from 'node:tls';

export const HTTP01_PREFIX = '/.well-known/acme-challenge/';
export const ACME_TLS_ALPN = 'acme-tls/1';

/** Reads answers other replicas stored; undefined when there is none. */
export interface SharedChallenges {
  http01(token: string): Promise<string | undefined>;
  alpn(host: string): Promise<SecureContext | undefined>;
}

const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

export class AcmeChallenges {
  readonly #http01 = new Map<string, string>();
  readonly #alpn = new Map<string, SecureContext>();
  #shared: SharedChallenges | undefined;

  /** Enables the storage fallback (set while ACME is configured, cleared otherwise). */
  share(shared: SharedChallenges | undefined): void {
    this.#shared = shared;
  }

  get shared(): SharedChallenges | undefined {
    return this.#shared;
  }

  setHttp01(token: string, keyAuthorization: string): void {
    this.#http01.set(token, keyAuthorization);
  }

  deleteHttp01(token: string): void {
    this.#http01.delete(token);
  }

  /** The token of a request path under `/.well-known/acme-challenge/`, if it is one. */
  static tokenOf(path: string): string | undefined {
    if (!path.startsWith(HTTP01_PREFIX)) return undefined;
    const token = path.slice(HTTP01_PREFIX.length);
    return TOKEN.test(token) ? token : undefined;
  }

  http01(token: string): string | undefined {
    return this.#http01.get(token);
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
