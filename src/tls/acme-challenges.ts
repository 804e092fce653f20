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
 *
 * With data-plane workers (`fairway serve --workers N`) the answers are kept in the
 * primary and copied to every worker through a {@link ChallengeMirror}: `setHttp01()` and
 * `setAlpn()` resolve once every worker holds the answer, so the ACME manager tells the CA
 * to validate only when whichever worker the CA reaches can answer. The storage fallback
 * is the primary's too: while it is on ({@link ChallengeMirror.sharing}), a worker's miss
 * asks the primary ({@link AcmeChallenges.findHttp01}, {@link AcmeChallenges.findAlpnPair}).
 */
import type { SecureContext } from 'node:tls';

export const HTTP01_PREFIX = '/.well-known/acme-challenge/';
export const ACME_TLS_ALPN = 'acme-tls/1';

/** Reads answers other replicas stored; undefined when there is none. */
export interface SharedChallenges {
  http01(token: string): Promise<string | undefined>;
  alpn(host: string): Promise<SecureContext | undefined>;
  /** The certificate behind {@link alpn}, PEM (for a worker that asks the primary). */
  alpnPair(host: string): Promise<PemPair | undefined>;
}

/** A certificate and its key, PEM. */
export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * Copies of the answers held elsewhere (the data-plane workers). Each call resolves once
 * every copy has the change (or its holder is gone); it never rejects.
 */
export interface ChallengeMirror {
  setHttp01(token: string, keyAuthorization: string): Promise<void>;
  deleteHttp01(token: string): Promise<void>;
  setAlpn(host: string, pair: PemPair): Promise<void>;
  deleteAlpn(host: string): Promise<void>;
  /** Whether the storage fallback is on (see {@link AcmeChallenges.share}). */
  sharing(active: boolean): void;
}

const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

export class AcmeChallenges {
  readonly #http01 = new Map<string, string>();
  readonly #alpn = new Map<string, SecureContext>();
  /** The certificates behind `#alpn`, for copies. */
  readonly #alpnPairs = new Map<string, PemPair>();
  #shared: SharedChallenges | undefined;
  #mirror: ChallengeMirror | undefined;

  /** Copies every change to `mirror` from now on (the worker pool); undefined: none. */
  mirror(mirror: ChallengeMirror | undefined): void {
    this.#mirror = mirror;
  }

  /** Enables the storage fallback (set while ACME is configured, cleared otherwise); the mirror is told. */
  share(shared: SharedChallenges | undefined): void {
    this.#shared = shared;
    this.#mirror?.sharing(shared !== undefined);
  }

  /** Whether a storage fallback is on (a worker pool's start state). */
  get sharing(): boolean {
    return this.#shared !== undefined;
  }

  get shared(): SharedChallenges | undefined {
    return this.#shared;
  }

  /** Answers `token` here at once; resolves when the mirror's copies answer it too. */
  async setHttp01(token: string, keyAuthorization: string): Promise<void> {
    this.#http01.set(token, keyAuthorization);
    await this.#mirror?.setHttp01(token, keyAuthorization);
  }

  async deleteHttp01(token: string): Promise<void> {
    this.#http01.delete(token);
    await this.#mirror?.deleteHttp01(token);
  }

  /** The HTTP-01 answers pending now (for a worker that starts while an order is open). */
  http01Entries(): IterableIterator<[token: string, keyAuthorization: string]> {
    return this.#http01.entries();
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

  /**
   * Answers `acme-tls/1` handshakes for `host` with `context` (built from `pair`) here at
   * once; resolves when the mirror's copies answer too.
   */
  async setAlpn(host: string, context: SecureContext, pair: PemPair): Promise<void> {
    const name = host.toLowerCase();
    this.#alpn.set(name, context);
    this.#alpnPairs.set(name, pair);
    await this.#mirror?.setAlpn(name, pair);
  }

  async deleteAlpn(host: string): Promise<void> {
    const name = host.toLowerCase();
    this.#alpn.delete(name);
    this.#alpnPairs.delete(name);
    await this.#mirror?.deleteAlpn(name);
  }

  /** The TLS-ALPN-01 answers pending now, as PEM (for a worker that starts while an order is open). */
  alpnEntries(): IterableIterator<[host: string, pair: PemPair]> {
    return this.#alpnPairs.entries();
  }

  /** The HTTP-01 answer for `token` held here, else in the shared storage (a worker's miss). */
  async findHttp01(token: string): Promise<string | undefined> {
    return this.#http01.get(token) ?? (await this.#shared?.http01(token));
  }

  /** The TLS-ALPN-01 certificate for `host` held here, else in the shared storage (a worker's miss). */
  async findAlpnPair(host: string): Promise<PemPair | undefined> {
    const name = host.toLowerCase();
    return this.#alpnPairs.get(name) ?? (await this.#shared?.alpnPair(name));
  }

  alpn(servername: string | undefined): SecureContext | undefined {
    return servername ? this.#alpn.get(servername.toLowerCase()) : undefined;
  }
}
