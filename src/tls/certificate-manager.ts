/**
 * @module
 * Decides which certificate serves which name and keeps the handshake store current.
 * Sources, lowest precedence first: the default (the platform certificate — a file,
 * else a provider's platform Secret — else a self-signed one generated at start), ACME
 * certificates, router-wide certificate files, per-app certificate files and Secrets. A
 * name served by a file or Secret certificate is not ordered over ACME. Wildcard domains get no ACME certificate (that needs DNS-01, which Fairway
 * does not do): they need a file certificate, and the manager says so in the log.
 *
 * Lifecycle: `start(snapshot)` before the HTTPS listener opens (so a default exists);
 * `apply(snapshot)` on every new snapshot; `stop()` at shutdown. Every change rebuilds
 * the store's whole index and swaps it in (see {@link CertificateStore}).
 */
import type { AppSpec, Snapshot, TlsSettings } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { AcmeChallenges } from './acme-challenges.js';
import type { AcmeHostStatus, AcmeManager } from './acme-manager.js';
import type { CertificateBundle, CertificateSource } from './certificate-bundle.js';
import type { CertificateStore } from './certificate-store.js';
import { FileCertificates } from './file-certificates.js';
import { ProvidedCertificates } from './provided-certificates.js';
import { generateSelfSigned } from './self-signed.js';
import type { Storage } from './storage.js';
import { FairwayError } from '../errors.js';

/** One row of `GET /v1/certificates` and `fairway certs`. */
export interface CertificateRow {
  readonly host: string;
  readonly source: CertificateSource | 'none';
  readonly names: readonly string[];
  readonly issuer: string | undefined;
  readonly notBefore: string | undefined;
  readonly notAfter: string | undefined;
  readonly origin: string | undefined;
  readonly nextRenewal: string | undefined;
  readonly lastError: { code: string; message: string; at: string } | undefined;
  readonly expiring: boolean;
}

export interface CertificateManagerOptions {
  readonly store: CertificateStore;
  readonly challenges: AcmeChallenges;
  /** Opens the storage for ACME data (called when ACME is first configured). */
  readonly storage: (dir: string) => Storage;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The default certificate changed (the HTTPS listener re-reads it). */
  readonly onDefaultChange: () => void;
  /** acme-client polling while an order is pending (tests make it fast). */
  readonly acmePollMs?: { min: number; max: number };
  /** Bounds on the CA's RenewalInfo `Retry-After` (default 1 minute – 1 day; tests shorten them). */
  readonly acmeRenewalInfoPollMs?: { min: number; max: number };
}

export class CertificateManager {
  readonly #o: CertificateManagerOptions;
  readonly #files: FileCertificates;
  readonly #provided: ProvidedCertificates;
  #selfSigned: CertificateBundle | undefined;
  #acme: AcmeManager | undefined;
  #acmeKey = '';
  #snapshot: Snapshot | undefined;
  #applying: Promise<void> = Promise.resolve();
  #warnedWildcards = new Set<string>();

  constructor(options: CertificateManagerOptions) {
    this.#o = options;
    this.#files = new FileCertificates(options.logger, () => this.#rebuild());
    this.#provided = new ProvidedCertificates(options.logger);
  }

  async start(snapshot: Snapshot): Promise<void> {
    this.#selfSigned = await generateSelfSigned({ names: ['fairway.invalid'], keyType: snapshot.settings.tls.keyType });
    await this.apply(snapshot);
  }

  /** Applies `snapshot` after any apply still running (snapshots apply in order). */
  apply(snapshot: Snapshot): Promise<void> {
    const run = this.#applying.then(() => this.#apply(snapshot));
    this.#applying = run.catch(() => {});
    return run;
  }

  /** Resolves once every snapshot passed to {@link apply} so far is in the handshake store. */
  applied(): Promise<void> {
    return this.#applying;
  }

  async #apply(snapshot: Snapshot): Promise<void> {
    this.#snapshot = snapshot;
    const tls = snapshot.settings.tls;
    await this.#configureAcme(tls);
    await this.#files.set([
      ...(tls.platformCertificate ? [{ ref: tls.platformCertificate, source: 'platform' as const }] : []),
      ...tls.certificates.map((ref) => ({ ref, source: 'file' as const })),
      ...snapshot.apps.flatMap((a) => a.tls.certificates.map((ref) => ({ ref, source: 'file' as const }))),
    ]);
    this.#provided.set(snapshot.certificates);
    this.#rebuild();
  }

  /** Every host with a certificate or in need of one, with where its certificate comes from. */
  rows(): CertificateRow[] {
    const acme = new Map((this.#acme?.status() ?? []).map((s) => [s.host, s]));
    const rows = new Map<string, CertificateRow>();
    const add = (host: string, b: CertificateBundle | undefined, a?: AcmeHostStatus, fileError?: CertificateRow['lastError']) => {
      rows.set(host, {
        host,
        source: b?.source ?? 'none',
        names: b?.names ?? [],
        issuer: b?.issuer,
        notBefore: b?.notBefore,
        notAfter: b?.notAfter,
        origin: b?.origin,
        nextRenewal: a?.nextRenewal,
        lastError: a?.lastError ?? fileError,
        expiring: a?.expiring ?? false,
      });
    };
    for (const s of this.#files.states()) {
      for (const name of s.bundle?.names ?? []) add(name, s.bundle, undefined, s.error);
      if (!s.bundle) add(s.ref.cert, undefined, undefined, s.error);
    }
    for (const s of this.#provided.states()) {
      for (const name of s.serves) add(name, s.bundle, undefined, s.error);
      for (const name of s.ref.hosts ?? []) if (!s.serves.includes(name)) add(name, undefined, undefined, s.error);
      if (!s.bundle && !s.ref.hosts) add(s.ref.origin, undefined, undefined, s.error);
    }
    for (const [host, a] of acme) add(host, a.bundle, a);
    for (const app of this.#snapshot?.apps ?? []) {
      for (const d of app.domains) if (!rows.has(d)) add(d, undefined);
    }
    return [...rows.values()].sort((x, y) => (x.host < y.host ? -1 : x.host > y.host ? 1 : 0));
  }

  async renew(host: string): Promise<CertificateRow> {
    if (!this.#acme) throw new FairwayError('FW_CERT_NOT_FOUND', `"${host}" has no ACME-managed certificate (tls.acme is not configured)`);
    await this.#acme.renew(host);
    return this.rows().find((r) => r.host === host)!;
  }

  /** Re-reads stored ACME certificates: the shared storage says another replica stored one. */
  refreshStored(): void {
    this.#acme?.refresh();
  }

  /** Resolves when no ACME order is running or due. */
  async idle(): Promise<void> {
    await this.#acme?.idle();
  }

  async stop(): Promise<void> {
    this.#files.stop();
    await this.#acme?.stop();
  }

  /** Starts, replaces or stops the ACME manager when `tls.acme`, `tls.storage` or `tls.keyType` changed. */
  async #configureAcme(tls: TlsSettings): Promise<void> {
    const key = JSON.stringify([tls.acme, tls.storage, tls.keyType]);
    if (key === this.#acmeKey) return;
    this.#acmeKey = key;
    void this.#acme?.stop();
    this.#acme = undefined;
    this.#o.challenges.share(undefined);
    if (!tls.acme) return;
    // Loaded on first use: acme-client and its HTTP client are ~3.5 MB of heap that a router
    // without ACME never needs (applies run one at a time, so none overtakes this one).
    const { AcmeManager } = await import('./acme-manager.js');
    const metrics = this.#o.metrics;
    this.#acme = new AcmeManager({
      settings: tls.acme,
      keyType: tls.keyType,
      storage: this.#o.storage(tls.storage),
      challenges: this.#o.challenges,
      alpnContext: (bundle) => this.#o.store.contextFor(bundle),
      logger: this.#o.logger.child({ component: 'acme' }),
      onChange: () => this.#rebuild(),
      onOrder: (result) => metrics.acmeOrders.inc({ result }),
      pollMs: this.#o.acmePollMs,
      renewalInfoPollMs: this.#o.acmeRenewalInfoPollMs,
    });
    this.#o.challenges.share(this.#acme.shared);
  }

  /** Recomputes the store's index and the ACME host set from every source. */
  #rebuild(): void {
    if (!this.#selfSigned || !this.#snapshot) return;
    const index = new Map<string, CertificateBundle>();
    const files = this.#files.states();
    const provided = this.#provided.states();
    const platform = files.find((s) => s.source === 'platform')?.bundle ?? provided.find((s) => s.ref.role === 'platform' && s.bundle)?.bundle;
    for (const [, b] of this.#acme?.bundles() ?? []) for (const n of b.names) index.set(n, b);
    if (platform) for (const n of platform.names) if (!index.has(n)) index.set(n, platform);
    for (const s of files) if (s.bundle && s.source === 'file' && !s.ref.app) for (const n of s.bundle.names) index.set(n, s.bundle);
    for (const s of files) if (s.bundle && s.source === 'file' && s.ref.app) for (const n of s.bundle.names) index.set(n, s.bundle);
    for (const s of provided) if (s.bundle && s.ref.role === 'app') for (const n of s.serves) index.set(n, s.bundle);
    const fallback = platform ?? this.#selfSigned;
    const defaultChanged = this.#o.store.defaultBundle !== fallback;
    this.#o.store.update(index, fallback);
    if (defaultChanged) this.#o.onDefaultChange();
    const covered = [...files.flatMap((s) => (s.bundle ? s.bundle.names : [])), ...provided.filter((s) => s.ref.role === 'app' || s.bundle === platform).flatMap((s) => s.serves)];
    this.#acme?.setHosts(this.#acmeHosts(this.#snapshot.apps, covered));
    this.#report(index, fallback);
  }

  #acmeHosts(apps: readonly AppSpec[], fileNames: readonly string[]): string[] {
    const covered = new Set(fileNames);
    const hosts: string[] = [];
    for (const app of apps) {
      if (!app.tls.acme) continue;
      for (const d of app.domains) {
        if (d.startsWith('*.')) {
          if (!covered.has(d) && !this.#warnedWildcards.has(d)) {
            this.#warnedWildcards.add(d);
            this.#o.logger.warn({ app: app.name, domain: d }, 'wildcard domain gets no ACME certificate (wildcards need DNS-01, which Fairway does not do); configure a certificate file for it');
          }
          continue;
        }
        const dot = d.indexOf('.');
        if (covered.has(d) || (dot > 0 && covered.has(`*${d.slice(dot)}`))) continue;
        hosts.push(d);
      }
    }
    return hosts;
  }

  #report(index: ReadonlyMap<string, CertificateBundle>, fallback: CertificateBundle): void {
    const gauge = this.#o.metrics.tlsNotAfter;
    gauge.reset();
    for (const [name, b] of index) gauge.set({ host: name, source: b.source }, Date.parse(b.notAfter) / 1000);
    gauge.set({ host: '', source: fallback.source }, Date.parse(fallback.notAfter) / 1000);
    this.#o.metrics.tlsExpiring.set((this.#acme?.status() ?? []).filter((s) => s.expiring).length);
  }
}
