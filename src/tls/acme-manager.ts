/**
 * @module
 * Obtains and renews certificates over ACME (RFC 8555) for a set of host names, with
 * acme-client, answering HTTP-01 or TLS-ALPN-01 challenges through {@link AcmeChallenges}
 * (the data plane serves them), keeping accounts and certificates in {@link Storage}.
 *
 * Lifecycle of a host: `setHosts()` adds it → its certificate is loaded from storage, or
 * ordered → installed (the `onChange` callback) → renewed when due → removed from
 * `setHosts()` → no longer renewed (storage keeps the files).
 *
 * Contracts:
 * - Ordering takes the storage lock for the host, then *re-checks* storage: another
 *   process sharing the storage may have ordered it meanwhile. So N routers on one
 *   storage order each certificate once.
 * - Due time: the CA's ACME Renewal Information window (RFC 9773) when its directory
 *   offers `renewalInfo`, else `renewAt` × lifetime after notBefore.
 * - A failure never drops a certificate: the host keeps serving the one it has. The next
 *   attempt waits `retry.min` × 2^(failures-1) (±20% jitter) up to `retry.max`, or until
 *   the time a rate-limited CA asked for, whichever is later.
 * - One order at a time, in due order; a host already queued or being ordered is not
 *   queued twice.
 */
import { createHash } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import acme from 'acme-client';
import { FairwayError } from '../errors.js';
import type { AcmeSettings, KeyType } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { AcmeChallenges, SharedChallenges } from './acme-challenges.js';
import { agentFor, withAcmeContext, type AcmeCallContext } from './acme-http.js';
import { parseBundle, type CertificateBundle } from './certificate-bundle.js';
import { renewalInfoId } from './renewal-info.js';
import type { Storage } from './storage.js';

/** acme-client 5.4 types list http-01 and dns-01 only; TLS-ALPN-01 works the same way. */
type ListedChallenge = Parameters<acme.ClientAutoOptions['challengeCreateFn']>[1];
type AcmeChallenge = ListedChallenge | { type: 'tls-alpn-01'; url: string; status: ListedChallenge['status']; token: string };

/** What the admin API shows per host. */
export interface AcmeHostStatus {
  readonly host: string;
  readonly bundle: CertificateBundle | undefined;
  readonly nextRenewal: string | undefined;
  readonly nextAttempt: string | undefined;
  readonly failures: number;
  readonly lastError: { code: string; message: string; at: string } | undefined;
  /** Past its renewal time with the renewal failing, and less than 10% of its lifetime left. */
  readonly expiring: boolean;
}

export interface AcmeManagerOptions {
  readonly settings: AcmeSettings;
  readonly keyType: KeyType;
  readonly storage: Storage;
  readonly challenges: AcmeChallenges;
  /** Builds a TLS context for a TLS-ALPN-01 challenge certificate. */
  readonly alpnContext: (bundle: { certPem: string; keyPem: string }) => import('node:tls').SecureContext;
  readonly logger: Logger;
  /** Called after a host's certificate or status changed (installed, renewed, failed). */
  readonly onChange: () => void;
  /** Called after every order attempt. */
  readonly onOrder?: (result: 'issued' | 'failed' | 'rate_limited' | 'from_storage') => void;
  /** Polling of the CA while an order is pending (acme-client backoff), ms. */
  readonly pollMs?: { min: number; max: number };
}

interface HostState {
  bundle: CertificateBundle | undefined;
  /** A renewal was asked for (`renew()`) and has not succeeded yet: retries order anew. */
  forced: boolean;
  dueAt: number;
  retryAt: number;
  failures: number;
  lastError: { code: string; message: string; at: string } | undefined;
}

export class AcmeManager {
  readonly #o: AcmeManagerOptions;
  readonly #hosts = new Map<string, HostState>();
  readonly #queue: string[] = [];
  readonly #agent;
  #client: acme.Client | undefined;
  #renewalInfoUrl: string | null | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Serialises {@link refresh} runs. */
  #refreshing: Promise<void> = Promise.resolve();
  #current: string | undefined;
  #stopped = false;

  constructor(options: AcmeManagerOptions) {
    this.#o = options;
    this.#agent = agentFor(options.settings.caBundle);
  }

  /** Challenge answers stored by any replica sharing this storage (see AcmeChallenges). */
  readonly shared: SharedChallenges = {
    http01: async (token) => {
      try {
        return (await this.#o.storage.get(`challenges/http-01/${token}`)).toString('utf8');
      } catch {
        return undefined;
      }
    },
    alpn: async (host) => {
      const pair = await this.shared.alpnPair(host);
      return pair && this.#o.alpnContext(pair);
    },
    alpnPair: async (host) => {
      try {
        const pair = JSON.parse((await this.#o.storage.get(`challenges/tls-alpn-01/${host.toLowerCase()}.json`)).toString('utf8')) as { certPem: string; keyPem: string };
        return { certPem: pair.certPem, keyPem: pair.keyPem };
      } catch {
        return undefined;
      }
    },
  };

  /** The hosts to keep certificates for (exact names; wildcards are never passed here). */
  setHosts(hosts: Iterable<string>): void {
    const wanted = new Set(hosts);
    for (const h of this.#hosts.keys()) {
      if (!wanted.has(h)) {
        this.#hosts.delete(h);
        this.#o.logger.info({ host: h }, 'host removed: its certificate is no longer renewed');
      }
    }
    for (const h of wanted) {
      if (!this.#hosts.has(h)) {
        this.#hosts.set(h, { bundle: undefined, forced: false, dueAt: 0, retryAt: 0, failures: 0, lastError: undefined });
      }
    }
    this.#schedule();
  }

  /** The certificate of every managed host that has one. */
  bundles(): Map<string, CertificateBundle> {
    const out = new Map<string, CertificateBundle>();
    for (const [h, s] of this.#hosts) if (s.bundle) out.set(h, s.bundle);
    return out;
  }

  status(): AcmeHostStatus[] {
    const now = Date.now();
    return [...this.#hosts].map(([host, s]) => {
      const b = s.bundle;
      const lifetime = b ? Date.parse(b.notAfter) - Date.parse(b.notBefore) : 0;
      const expiring = b !== undefined && s.failures > 0 && now >= s.dueAt && Date.parse(b.notAfter) - now < lifetime / 10;
      return {
        host,
        bundle: b,
        nextRenewal: b && s.dueAt ? new Date(s.dueAt).toISOString() : undefined,
        nextAttempt: s.failures > 0 && s.retryAt ? new Date(s.retryAt).toISOString() : undefined,
        failures: s.failures,
        lastError: s.lastError,
        expiring,
      };
    });
  }

  /** Orders a new certificate for `host` now, even if the current one is not due. */
  async renew(host: string): Promise<AcmeHostStatus> {
    const s = this.#hosts.get(host);
    if (!s) throw new FairwayError('FW_CERT_NOT_FOUND', `no ACME-managed certificate for "${host}"`);
    s.forced = true;
    s.retryAt = 0;
    await this.#process(host);
    return this.status().find((x) => x.host === host)!;
  }

  /**
   * Installs certificates another process stored for our hosts (a renewal it made), so
   * every replica serves the new one at once instead of at its own renewal time.
   * Runs after the current order, never beside it.
   */
  refresh(): void {
    if (this.#stopped) return;
    const run = async () => {
      for (const [host, s] of this.#hosts) {
        if (this.#stopped) return;
        if (!s.bundle) continue; // not installed yet: its own order or load will find it
        try {
          await this.#loadStored(host, s);
        } catch (err) {
          this.#o.logger.debug({ host, err: (err as Error).message }, 'could not re-read a stored certificate');
        }
      }
    };
    this.#refreshing = this.#refreshing.then(() => this.#running).then(run, run);
  }

  /** Resolves once nothing is due now (tests, `fairway certs` after a change). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
    this.#agent?.destroy();
  }

  /** Queues every host that is due, and sets one timer for the next due time. */
  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    const now = Date.now();
    let next = Infinity;
    for (const [h, s] of this.#hosts) {
      const at = s.forced ? s.retryAt : Math.max(s.dueAt, s.retryAt);
      if (at <= now) {
        if (h !== this.#current && !this.#queue.includes(h)) this.#queue.push(h);
      } else if (at < next) next = at;
    }
    if (next !== Infinity) {
      // setTimeout holds at most ~24.8 days; a later due time just re-schedules.
      this.#timer = setTimeout(() => this.#schedule(), Math.min(next - now, 2 ** 31 - 1));
      this.#timer.unref();
    }
    if (!this.#running && this.#queue.length > 0) {
      this.#running = this.#drain().finally(() => {
        this.#running = undefined;
        this.#schedule();
      });
    }
  }

  async #drain(): Promise<void> {
    while (!this.#stopped && this.#queue.length > 0) {
      const host = this.#queue.shift()!;
      if (!this.#hosts.has(host)) continue;
      this.#current = host;
      try {
        await this.#process(host);
      } finally {
        this.#current = undefined;
      }
    }
  }

  /** Loads, or orders, the certificate of `host`; records failures with backoff. */
  async #process(host: string): Promise<void> {
    const s = this.#hosts.get(host);
    if (!s) return;
    const force = s.forced;
    try {
      if (!force && (await this.#loadStored(host, s))) return;
      const lock = await this.#o.storage.lock(`cert-${host}`);
      try {
        // Another process may have ordered it while we waited for the lock.
        if (!force && (await this.#loadStored(host, s))) return;
        if (force && s.bundle && (await this.#storedIsNewer(host, s.bundle))) {
          await this.#loadStored(host, s, true);
          s.forced = false;
          return;
        }
        await this.#order(host, s);
      } finally {
        await lock.release();
      }
    } catch (err) {
      this.#failed(host, s, err as Error);
    }
  }

  /** Installs the stored certificate if it is valid and not due. Returns whether it did. */
  async #loadStored(host: string, s: HostState, evenIfDue = false): Promise<boolean> {
    let bundle: CertificateBundle;
    try {
      const [cert, key] = await Promise.all([
        this.#o.storage.get(`certificates/${host}/cert.pem`),
        this.#o.storage.get(`certificates/${host}/key.pem`),
      ]);
      bundle = parseBundle(cert.toString('utf8'), key.toString('utf8'), 'acme', this.#o.settings.directory);
    } catch (err) {
      if (err instanceof FairwayError && (err.code === 'FW_STORAGE_NOT_FOUND' || err.code === 'FW_TLS_CERT_INVALID')) return false;
      throw err;
    }
    const dueAt = await this.#dueTime(bundle);
    if (!evenIfDue && dueAt <= Date.now()) {
      // Still worth serving while the renewal runs.
      if (!s.bundle || s.bundle.serialNumber !== bundle.serialNumber) this.#install(host, s, bundle, dueAt);
      return false;
    }
    if (s.bundle?.serialNumber !== bundle.serialNumber) {
      this.#install(host, s, bundle, dueAt);
      this.#o.onOrder?.('from_storage');
    } else {
      s.dueAt = dueAt;
    }
    return true;
  }

  async #storedIsNewer(host: string, current: CertificateBundle): Promise<boolean> {
    try {
      const cert = await this.#o.storage.get(`certificates/${host}/cert.pem`);
      const stored = parseBundle(cert.toString('utf8'), current.keyPem, 'acme', '').notBefore;
      return Date.parse(stored) > Date.parse(current.notBefore);
    } catch {
      return false;
    }
  }

  async #order(host: string, s: HostState): Promise<void> {
    const ctx: AcmeCallContext = { agent: this.#agent, rateLimited: false, retryAt: undefined };
    const started = Date.now();
    try {
      const bundle = await withAcmeContext(ctx, async () => {
        const client = await this.#accountClient();
        const keyPem = this.#o.keyType === 'rsa' ? await acme.crypto.createPrivateRsaKey() : await acme.crypto.createPrivateEcdsaKey();
        const [, csr] = await acme.crypto.createCsr({ altNames: [host] }, keyPem);
        const challenge = this.#o.settings.challenge;
        const certPem = await client.auto({
          csr,
          email: this.#o.settings.email,
          termsOfServiceAgreed: true,
          // Our own listeners answer; a self-check through public DNS means nothing here.
          skipChallengeVerification: true,
          challengePriority: [challenge],
          // Answers go to memory (this replica) and to storage (the replica the CA reaches).
          challengeCreateFn: async (authz, listed, keyAuthorization) => {
            const ch = listed as AcmeChallenge;
            const storage = this.#o.storage;
            if (ch.type === 'http-01') {
              // Resolves once every data-plane worker answers too; acme-client tells the CA to validate after this function.
              await this.#o.challenges.setHttp01(ch.token, keyAuthorization);
              await storage.put(`challenges/http-01/${ch.token}`, keyAuthorization);
            } else if (ch.type === 'tls-alpn-01') {
              const keyPem = (await acme.crypto.createPrivateEcdsaKey()).toString();
              const [, certPem] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, keyPem);
              const pair = { certPem: certPem.toString(), keyPem };
              await this.#o.challenges.setAlpn(authz.identifier.value, this.#o.alpnContext(pair), pair);
              await storage.put(`challenges/tls-alpn-01/${authz.identifier.value}.json`, JSON.stringify(pair), { secret: true });
            }
          },
          challengeRemoveFn: async (authz, listed) => {
            const ch = listed as AcmeChallenge;
            const storage = this.#o.storage;
            if (ch.type === 'http-01') {
              await this.#o.challenges.deleteHttp01(ch.token);
              await storage.delete(`challenges/http-01/${ch.token}`);
            } else if (ch.type === 'tls-alpn-01') {
              await this.#o.challenges.deleteAlpn(authz.identifier.value);
              await storage.delete(`challenges/tls-alpn-01/${authz.identifier.value}.json`);
            }
          },
        });
        const b = parseBundle(certPem, keyPem.toString(), 'acme', this.#o.settings.directory);
        await this.#o.storage.put(`certificates/${host}/key.pem`, b.keyPem, { secret: true });
        await this.#o.storage.put(`certificates/${host}/cert.pem`, b.certPem);
        return b;
      });
      const dueAt = await this.#dueTime(bundle);
      this.#install(host, s, bundle, dueAt);
      s.forced = false;
      s.failures = 0;
      s.retryAt = 0;
      s.lastError = undefined;
      this.#o.onOrder?.('issued');
      this.#o.logger.info({ host, notAfter: bundle.notAfter, renewal: new Date(dueAt).toISOString(), ms: Date.now() - started }, 'certificate issued over ACME');
    } catch (err) {
      if (ctx.rateLimited) {
        throw Object.assign(new FairwayError('FW_ACME_RATE_LIMITED', `${host}: ${(err as Error).message}`), { retryAt: ctx.retryAt });
      }
      throw err instanceof FairwayError ? err : new FairwayError('FW_ACME_ORDER_FAILED', `${host}: ${(err as Error).message}`);
    }
  }

  #install(host: string, s: HostState, bundle: CertificateBundle, dueAt: number): void {
    s.bundle = bundle;
    s.dueAt = dueAt;
    this.#o.onChange();
  }

  #failed(host: string, s: HostState, err: Error): void {
    // Start the next attempt from a fresh client: the CA may have lost our account (a restart).
    this.#client = undefined;
    const code = err instanceof FairwayError ? err.code : 'FW_ACME_ORDER_FAILED';
    s.failures++;
    const { min, max } = this.#o.settings.retry;
    const backoff = Math.min(max, min * 2 ** (s.failures - 1)) * (0.8 + Math.random() * 0.4);
    const asked = (err as { retryAt?: Date }).retryAt?.getTime() ?? 0;
    s.retryAt = Math.max(Date.now() + backoff, asked);
    s.lastError = { code, message: err.message, at: new Date().toISOString() };
    this.#o.onOrder?.(code === 'FW_ACME_RATE_LIMITED' ? 'rate_limited' : 'failed');
    const b = s.bundle;
    const left = b ? Date.parse(b.notAfter) - Date.now() : 0;
    const lifetime = b ? Date.parse(b.notAfter) - Date.parse(b.notBefore) : 0;
    const fields = { host, code, err: err.message, failures: s.failures, retryAt: new Date(s.retryAt).toISOString(), notAfter: b?.notAfter };
    if (b && left < lifetime / 10) this.#o.logger.error(fields, 'certificate is about to expire and cannot be renewed; still serving the current one');
    else this.#o.logger.warn(fields, b ? 'certificate renewal failed; still serving the current one' : 'certificate order failed');
    this.#o.onChange();
  }

  /** An acme-client Client with the stored account key (created and stored once, under a lock). */
  async #accountClient(): Promise<acme.Client> {
    if (this.#client) return this.#client;
    const dir = this.#o.settings.directory;
    const prefix = `acme/${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`;
    const keyKey = `${prefix}/account-key.pem`;
    let accountKey: string;
    try {
      accountKey = (await this.#o.storage.get(keyKey)).toString('utf8');
    } catch (err) {
      if (!(err instanceof FairwayError && err.code === 'FW_STORAGE_NOT_FOUND')) throw err;
      const lock = await this.#o.storage.lock('acme-account');
      try {
        try {
          accountKey = (await this.#o.storage.get(keyKey)).toString('utf8');
        } catch {
          accountKey = (await acme.crypto.createPrivateEcdsaKey()).toString();
          await this.#o.storage.put(keyKey, accountKey, { secret: true });
          await this.#o.storage.put(`${prefix}/directory.txt`, dir + '\n');
        }
      } finally {
        await lock.release();
      }
    }
    const poll = this.#o.pollMs ?? { min: 1000, max: 10_000 };
    this.#client = new acme.Client({ directoryUrl: dir, accountKey, backoffMin: poll.min, backoffMax: poll.max, backoffAttempts: 30 });
    return this.#client;
  }

  /** When `bundle` should be renewed: inside the CA's renewal window if it offers one. */
  async #dueTime(bundle: CertificateBundle): Promise<number> {
    const notBefore = Date.parse(bundle.notBefore);
    const notAfter = Date.parse(bundle.notAfter);
    const fallback = notBefore + (notAfter - notBefore) * this.#o.settings.renewAt;
    try {
      const window = await this.#renewalWindow(bundle);
      if (!window) return fallback;
      const start = Date.parse(window.start);
      const end = Date.parse(window.end);
      if (!(end >= start)) return fallback;
      return start + Math.random() * (end - start);
    } catch (err) {
      this.#o.logger.debug({ err: (err as Error).message }, 'renewalInfo unavailable; using renewAt');
      return fallback;
    }
  }

  /** RFC 9773: GET {renewalInfo}/{base64url(AKI keyIdentifier)}.{base64url(serial)}. */
  async #renewalWindow(bundle: CertificateBundle): Promise<{ start: string; end: string } | undefined> {
    if (this.#renewalInfoUrl === undefined) {
      const directory = (await this.#getJson(this.#o.settings.directory)) as { renewalInfo?: string };
      this.#renewalInfoUrl = directory.renewalInfo ?? null;
    }
    if (!this.#renewalInfoUrl) return undefined;
    const id = renewalInfoId(bundle.certPem);
    if (!id) return undefined;
    const info = (await this.#getJson(`${this.#renewalInfoUrl.replace(/\/$/, '')}/${id}`)) as { suggestedWindow?: { start: string; end: string } };
    return info.suggestedWindow;
  }

  #getJson(url: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { agent: this.#agent, timeout: 10_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          if ((res.statusCode ?? 500) >= 300) reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
          else {
            try {
              resolve(JSON.parse(text));
            } catch (err) {
              reject(err as Error);
            }
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
      req.on('error', reject);
      req.end();
    });
  }
}
