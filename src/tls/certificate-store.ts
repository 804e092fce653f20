/**
 * @module
 * The in-memory certificate index the TLS handshake reads: server name → secure
 * context, exact name first, then the `*.` wildcard one label up, then the default.
 * `lookup()` is memory only. `update()` builds a whole new index off to the side and
 * swaps one reference (contexts of unchanged bundles are reused), so a handshake sees
 * either the old or the new index, never a half-built one.
 *
 * Every context carries the same TLS profile (Mozilla "intermediate": TLS 1.2 and 1.3,
 * AEAD suites only, server preference) and the same session ticket keys, so a session
 * resumes whichever certificate (or worker process, given the same keys) served it.
 */
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { PemPair } from './acme-challenges.js';
import type { CertificateBundle } from './certificate-bundle.js';
import { SessionTickets } from './session-tickets.js';

/** Told of every new index (the worker pool copies it to the data-plane workers). */
export type CertificateIndexListener<B> = (entries: ReadonlyMap<string, B>, fallback: B) => void;

/** Mozilla "intermediate" server profile (TLS 1.3 suites are OpenSSL's defaults, all AEAD). */
export const TLS_PROFILE = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
  ecdhCurve: 'X25519:prime256v1:secp384r1',
  // One session id context for every context: a session stamped by the context SNI
  // chose must be accepted by the listener's default context on the next connection.
  sessionIdContext: 'fairway',
} as const satisfies SecureContextOptions;

/**
 * `B`: what a bundle is (the primary's {@link CertificateBundle}; a worker keeps only the
 * PEM pair). A context is created once per bundle object, so an update reusing the same
 * objects reuses their contexts.
 */
export class CertificateStore<B extends PemPair = CertificateBundle> {
  readonly #ticketKeys: Buffer;
  /** Issues and resumes the session tickets of every listener this store serves. */
  readonly sessionTickets: SessionTickets;
  readonly #contexts = new WeakMap<PemPair, SecureContext>();
  readonly #onUpdate: CertificateIndexListener<B> | undefined;
  #index = new Map<string, SecureContext>();
  #default: SecureContext | undefined;
  #defaultBundle: B | undefined;

  /**
   * `ticketKeys`: 48 random bytes, the same in every process that should resume sessions.
   * `onUpdate`: told of each new index, after it is live here.
   */
  constructor(ticketKeys: Buffer, onUpdate?: CertificateIndexListener<B>) {
    this.#ticketKeys = ticketKeys;
    this.sessionTickets = new SessionTickets(ticketKeys);
    this.#onUpdate = onUpdate;
  }

  /** The session ticket keys (sent to the data-plane workers). */
  get ticketKeys(): Buffer {
    return this.#ticketKeys;
  }

  /** Replaces the index: `entries` maps each served name (exact or `*.suffix`) to its bundle. */
  update(entries: ReadonlyMap<string, B>, fallback: B): void {
    const index = new Map<string, SecureContext>();
    for (const [name, bundle] of entries) index.set(name, this.contextFor(bundle));
    this.#default = this.contextFor(fallback);
    this.#defaultBundle = fallback;
    this.#index = index;
    this.#onUpdate?.(entries, fallback);
  }

  /** The context for a handshake's server name (undefined or unknown: the default). */
  lookup(servername: string | undefined): SecureContext | undefined {
    if (servername) {
      const name = servername.toLowerCase();
      const exact = this.#index.get(name);
      if (exact) return exact;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const wild = this.#index.get(`*${name.slice(dot)}`);
        if (wild) return wild;
      }
    }
    return this.#default;
  }

  get defaultBundle(): B | undefined {
    return this.#defaultBundle;
  }

  /** Options for the listener's own (default) context. */
  serverOptions(): SecureContextOptions {
    const b = this.#defaultBundle;
    return { ...TLS_PROFILE, ticketKeys: this.#ticketKeys, ...(b ? { cert: b.certPem, key: b.keyPem } : {}) };
  }

  /** A context with the profile for `bundle`, created once per bundle object. */
  contextFor(bundle: PemPair): SecureContext {
    const known = this.#contexts.get(bundle);
    if (known) return known;
    const context = createSecureContext({ ...TLS_PROFILE, ticketKeys: this.#ticketKeys, cert: bundle.certPem, key: bundle.keyPem });
    this.#contexts.set(bundle, context);
    return context;
  }
}
