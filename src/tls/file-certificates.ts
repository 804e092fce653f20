/**
 * @module
 * Certificates configured as PEM files (`tls.certificates`, `apps.*.tls.certificates`,
 * `tls.platformCertificate`), loaded in the background and reloaded when a file changes.
 *
 * Contract: a pair that fails to load (missing file, bad PEM, key mismatch, expired) is
 * reported with FW_TLS_CERT_INVALID and its *previous* good bundle, if any, stays in use;
 * nothing throws to the caller. `onChange` runs after any bundle or error changed.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FairwayError } from '../errors.js';
import type { CertificateFiles } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { parseBundle, type CertificateBundle, type CertificateSource } from './certificate-bundle.js';

export interface FileCertificateState {
  readonly ref: CertificateFiles;
  readonly source: CertificateSource;
  readonly bundle: CertificateBundle | undefined;
  readonly error: { code: string; message: string; at: string } | undefined;
}

export class FileCertificates {
  readonly #logger: Logger;
  readonly #onChange: () => void;
  #states = new Map<string, FileCertificateState>();
  readonly #watchers = new Map<string, FSWatcher>();
  #timer: NodeJS.Timeout | undefined;
  #loading: Promise<void> = Promise.resolve();

  constructor(logger: Logger, onChange: () => void) {
    this.#logger = logger;
    this.#onChange = onChange;
  }

  /** Sets the pairs to serve; new pairs load now, removed ones are forgotten. Resolves once loaded. */
  set(refs: readonly { ref: CertificateFiles; source: CertificateSource }[]): Promise<void> {
    const next = new Map<string, FileCertificateState>();
    for (const { ref, source } of refs) {
      const id = idOf(ref, source);
      next.set(id, this.#states.get(id) ?? { ref, source, bundle: undefined, error: undefined });
    }
    this.#states = next;
    this.#watch();
    return this.reload();
  }

  states(): FileCertificateState[] {
    return [...this.#states.values()];
  }

  /** Re-reads every pair. */
  reload(): Promise<void> {
    this.#loading = this.#loading.then(() => this.#loadAll());
    return this.#loading;
  }

  stop(): void {
    clearTimeout(this.#timer);
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  async #loadAll(): Promise<void> {
    let changed = false;
    for (const [id, state] of this.#states) {
      const next = await load(state);
      if (next.bundle !== state.bundle || next.error?.message !== state.error?.message) {
        changed = true;
        if (next.error && next.error.message !== state.error?.message) {
          this.#logger.error({ code: next.error.code, cert: state.ref.cert, app: state.ref.app, err: next.error.message }, state.bundle ? 'certificate files refused; the previous certificate stays in use' : 'certificate files refused');
        } else if (!next.error) {
          this.#logger.info({ cert: state.ref.cert, names: next.bundle?.names, notAfter: next.bundle?.notAfter }, 'certificate loaded from files');
        }
        if (this.#states.get(id) === state) this.#states.set(id, next);
      }
    }
    if (changed) this.#onChange();
  }

  /** Watches the directories of every file (editors and cert tools replace files by rename). */
  #watch(): void {
    const dirs = new Set<string>();
    for (const { ref } of this.#states.values()) for (const f of [ref.cert, ref.key]) dirs.add(path.dirname(f));
    for (const [dir, w] of this.#watchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.#watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.#watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, () => {
          clearTimeout(this.#timer);
          this.#timer = setTimeout(() => void this.reload(), 100);
        });
        w.on('error', () => {});
        this.#watchers.set(dir, w);
      } catch (err) {
        this.#logger.warn({ dir, err: (err as Error).message }, 'cannot watch certificate directory; changes apply at restart');
      }
    }
  }
}

async function load(state: FileCertificateState): Promise<FileCertificateState> {
  const { ref, source } = state;
  try {
    const [cert, key] = await Promise.all([readFile(ref.cert, 'utf8'), readFile(ref.key, 'utf8')]).catch((err: NodeJS.ErrnoException) => {
      throw new FairwayError('FW_TLS_CERT_INVALID', `${err.path ?? ref.cert}: ${err.code === 'ENOENT' ? 'file not found' : err.message}`);
    });
    if (state.bundle && state.bundle.certPem === normalize(cert) && state.bundle.keyPem === key) return { ...state, error: undefined };
    return { ref, source, bundle: parseBundle(cert, key, source, ref.cert), error: undefined };
  } catch (err) {
    const e = err instanceof FairwayError ? err : new FairwayError('FW_TLS_CERT_INVALID', `${ref.cert}: ${(err as Error).message}`);
    return { ...state, error: { code: e.code, message: e.message, at: new Date().toISOString() } };
  }
}

function normalize(certPem: string): string {
  const pems = certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  return pems ? pems.join('\n') + '\n' : certPem;
}

function idOf(ref: CertificateFiles, source: CertificateSource): string {
  return `${source}|${ref.app ?? ''}|${ref.cert}|${ref.key}`;
}
