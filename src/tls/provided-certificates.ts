/**
 * @module
 * Certificates a provider holds in memory ({@link CertificatePem}: Kubernetes Secrets named
 * by `router.deis.io/certificates`, the `deis-router-platform-cert` Secret), parsed and
 * checked once per content (not once per snapshot) and reported like certificate files.
 *
 * Contract: `set()` takes the snapshot's whole list and returns one state per entry; an
 * entry whose PEM is bad, mismatched or expired, or that does not cover a host it is meant
 * to serve, gets an FW_TLS_CERT_INVALID error (logged once while it lasts) and the entry
 * that previously came from the same origin, if it was good, keeps serving: a broken
 * Secret update never takes a working certificate away.
 */
import { FairwayError } from '../errors.js';
import type { CertificatePem } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { parseBundle, type CertificateBundle } from './certificate-bundle.js';

export interface ProvidedCertificateState {
  readonly ref: CertificatePem;
  readonly bundle: CertificateBundle | undefined;
  /** The names this entry serves: its `hosts` that the certificate covers, else all its names. */
  readonly serves: readonly string[];
  readonly error: { code: string; message: string; at: string } | undefined;
}

export class ProvidedCertificates {
  readonly #logger: Logger;
  /** Parsed bundles by content, so an unchanged Secret is not parsed again. */
  #parsed = new Map<string, CertificateBundle | FairwayError>();
  /** The last good bundle per origin (kept while a newer version is bad). */
  #lastGood = new Map<string, CertificateBundle>();
  #states: ProvidedCertificateState[] = [];
  #logged = new Set<string>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  set(refs: readonly CertificatePem[], now = Date.now()): ProvidedCertificateState[] {
    const parsed = new Map<string, CertificateBundle | FairwayError>();
    const lastGood = new Map<string, CertificateBundle>();
    const logged = new Set<string>();
    this.#states = refs.map((ref) => {
      const id = `${ref.origin}\u0000${ref.certPem}\u0000${ref.keyPem}`;
      let result = parsed.get(id) ?? this.#parsed.get(id);
      if (!result) {
        try {
          result = parseBundle(ref.certPem, ref.keyPem, 'secret', ref.origin, now);
        } catch (err) {
          result = err instanceof FairwayError ? err : new FairwayError('FW_TLS_CERT_INVALID', `${ref.origin}: ${(err as Error).message}`);
        }
      }
      parsed.set(id, result);
      let error = result instanceof FairwayError ? result : undefined;
      const bundle = result instanceof FairwayError ? this.#lastGood.get(ref.origin) : result;
      if (bundle) lastGood.set(ref.origin, bundle);
      let serves: string[] = bundle ? [...bundle.names] : [];
      if (bundle && ref.hosts) {
        serves = ref.hosts.filter((h) => covers(bundle.names, h));
        const missing = ref.hosts.filter((h) => !serves.includes(h));
        if (missing.length > 0 && !error) error = new FairwayError('FW_TLS_CERT_INVALID', `${ref.origin}: the certificate (${bundle.names.join(', ')}) does not cover ${missing.join(', ')}`);
      }
      const state: ProvidedCertificateState = { ref, bundle, serves, error: error && { code: error.code, message: error.message, at: new Date(now).toISOString() } };
      if (error) {
        logged.add(error.message);
        if (!this.#logged.has(error.message)) this.#logger.error({ code: error.code, origin: ref.origin, app: ref.app }, bundle && result instanceof FairwayError ? `${error.message}; the previous certificate stays in use` : error.message);
      } else if (!this.#parsed.has(id)) {
        this.#logger.info({ origin: ref.origin, names: bundle?.names, notAfter: bundle?.notAfter }, 'certificate loaded');
      }
      return state;
    });
    this.#parsed = parsed;
    this.#lastGood = lastGood;
    this.#logged = logged;
    return this.#states;
  }

  states(): readonly ProvidedCertificateState[] {
    return this.#states;
  }
}

/** Whether a certificate with `names` is valid for `host` (exact, or a one-label wildcard). */
export function covers(names: readonly string[], host: string): boolean {
  if (names.includes(host)) return true;
  const dot = host.indexOf('.');
  return dot > 0 && names.includes(`*${host.slice(dot)}`);
}
