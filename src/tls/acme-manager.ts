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
 * - Due time: a random time inside the CA's suggested window (ACME Renewal Information,
 *   RFC 9773) when its directory offers `renewalInfo`, else `renewAt` × lifetime after
 *   notBefore (also whenever the RenewalInfo fetch fails or its answer is invalid). The
 *   time drawn is kept while the CA repeats the same window.
 * - RenewalInfo is fetched again when its `Retry-After` says (bounded to 1 minute – 1 day;
 *   6 hours without one, or after an error), so a CA that moves the window earlier (a
 *   revocation) is followed; never for a host that is already due or failing.
 * - A renewal order carries `replaces` (RFC 9773 §5: the old certificate's identifier)
 *   when the CA gave a window for that certificate; if the CA answers `alreadyReplaced`,
 *   the order is placed again at once without it.
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
import { nextRenewalInfoFetch, parseRenewalInfo, renewalInfoId, RENEWAL_INFO_POLL, type RenewalInfoPoll, type RenewalWindow } from './renewal-info.js';
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
  /** Bounds on a RenewalInfo `Retry-After`, ms (default {@link RENEWAL_INFO_POLL}; tests shorten them). */
  readonly renewalInfoPollMs?: RenewalInfoPoll;
}

/** RFC 9773 §7.4: the certificate named in `replaces` was replaced by an earlier order. */
const ALREADY_REPLACED = 'urn:ietf:params:acme:error:alreadyReplaced';

/** When to renew a certificate, and when to ask the CA about it again. */
interface RenewalPlan {
  readonly dueAt: number;
  /** Next RenewalInfo fetch; 0: none (the CA offers no RenewalInfo, or the certificate has no AKI). */
  readonly fetchAt: number;
  /** `start/end` of the CA's window `dueAt` was drawn from; undefined: from `renewAt`. */
  readonly window: string | undefined;
}

interface HostState {
  bundle: CertificateBundle | undefined;
  /** A renewal was asked for (`renew()`) and has not succeeded yet: retries order anew. */
  forced: boolean;
  dueAt: number;
  /** {@link RenewalPlan.fetchAt} of `bundle`. */
  fetchAt: number;
  /** {@link RenewalPlan.window} of `bundle`: the CA knows it, so a renewal names it in `replaces`. */
  window: string | undefined;
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
        this.#hosts.set(h, { bundle: undefined, forced: false, dueAt: 0, fetchAt: 0, window: undefined, retryAt: 0, failures: 0, lastError: undefined });
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
    this.#schedule(); // the host's next renewal, retry or RenewalInfo fetch changed
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
      this.#schedule();
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
      let at = s.forced ? s.retryAt : Math.max(s.dueAt, s.retryAt);
      // A RenewalInfo fetch before then re-plans the host (#process → #loadStored); one
      // that is failing is past its due time already and only waits for its retry.
      if (!s.forced && s.failures === 0 && s.fetchAt > 0 && s.fetchAt < at) at = s.fetchAt;
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
    const plan = await this.#renewalPlan(host, s, bundle);
    const installed = s.bundle?.serialNumber === bundle.serialNumber;
    if (!evenIfDue && plan.dueAt <= Date.now()) {
      // Still worth serving while the renewal runs.
      if (installed) this.#plan(s, plan);
      else this.#install(host, s, bundle, plan);
      return false;
    }
    if (installed) {
      this.#plan(s, plan);
    } else {
      this.#install(host, s, bundle, plan);
      this.#o.onOrder?.('from_storage');
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
    const ctx: AcmeCallContext = { agent: this.#agent, rateLimited: false, retryAt: undefined, problem: undefined };
    const started = Date.now();
    // The CA gave a window for the current certificate, so it knows the one this order replaces.
    const replaces = s.bundle && s.window !== undefined ? renewalInfoId(s.bundle.certPem) : undefined;
    try {
      const bundle = await withAcmeContext(ctx, async () => {
        const client = await this.#accountClient();
        const keyPem = this.#o.keyType === 'rsa' ? await acme.crypto.createPrivateRsaKey() : await acme.crypto.createPrivateEcdsaKey();
        const [, csr] = await acme.crypto.createCsr({ altNames: [host] }, keyPem);
        let certPem: string;
        try {
          certPem = await this.#auto(client, csr, replaces);
        } catch (err) {
          if (replaces === undefined || ctx.problem !== ALREADY_REPLACED) throw err;
          this.#o.logger.info({ host, replaces }, 'the CA says this certificate was replaced already; ordering again without "replaces"');
          ctx.problem = undefined;
          certPem = await this.#auto(client, csr, undefined);
        }
        const b = parseBundle(certPem, keyPem.toString(), 'acme', this.#o.settings.directory);
        await this.#o.storage.put(`certificates/${host}/key.pem`, b.keyPem, { secret: true });
        await this.#o.storage.put(`certificates/${host}/cert.pem`, b.certPem);
        return b;
      });
      const plan = await this.#renewalPlan(host, s, bundle);
      // Before #install: its onChange re-schedules at once, and must not see a renewal still asked for.
      s.forced = false;
      s.failures = 0;
      s.retryAt = 0;
      s.lastError = undefined;
      this.#install(host, s, bundle, plan);
      this.#o.onOrder?.('issued');
      this.#o.logger.info({ host, notAfter: bundle.notAfter, renewal: new Date(plan.dueAt).toISOString(), replaced: replaces, ms: Date.now() - started }, 'certificate issued over ACME');
    } catch (err) {
      if (ctx.rateLimited) {
        throw Object.assign(new FairwayError('FW_ACME_RATE_LIMITED', `${host}: ${(err as Error).message}`), { retryAt: ctx.retryAt });
      }
      throw err instanceof FairwayError ? err : new FairwayError('FW_ACME_ORDER_FAILED', `${host}: ${(err as Error).message}`);
    }
  }

  /**
   * One order through acme-client's `auto()` (account, order, challenges, finalize), with
   * `replaces` in the newOrder payload when given: `auto()` builds that payload itself, and
   * `createOrder()` sends whatever payload it gets, so the order goes through a view of
   * `client` whose `createOrder` adds the field.
   */
  async #auto(client: acme.Client, csr: Buffer, replaces: string | undefined): Promise<string> {
    const challenge = this.#o.settings.challenge;
    const orderer: acme.Client =
      replaces === undefined
        ? client
        : Object.create(client, { createOrder: { value: (payload: acme.Order) => client.createOrder({ ...payload, replaces } as acme.Order) } });
    return orderer.auto({
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
  }

  #install(host: string, s: HostState, bundle: CertificateBundle, plan: RenewalPlan): void {
    s.bundle = bundle;
    this.#plan(s, plan);
    this.#o.onChange();
  }

  #plan(s: HostState, plan: RenewalPlan): void {
    s.dueAt = plan.dueAt;
    s.fetchAt = plan.fetchAt;
    s.window = plan.window;
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

  /**
   * When `bundle` (the host's certificate, or the one about to be) should be renewed, and
   * when to ask the CA again. Reuses the current plan while its next fetch is not due (a
   * lock re-check, a storage refresh), and the time drawn from a window the CA repeats.
   */
  async #renewalPlan(host: string, s: HostState, bundle: CertificateBundle): Promise<RenewalPlan> {
    const now = Date.now();
    const current = s.bundle?.serialNumber === bundle.serialNumber;
    if (current && s.fetchAt > now) return { dueAt: s.dueAt, fetchAt: s.fetchAt, window: s.window };
    const notBefore = Date.parse(bundle.notBefore);
    const fallback = notBefore + (Date.parse(bundle.notAfter) - notBefore) * this.#o.settings.renewAt;
    const poll = this.#o.renewalInfoPollMs ?? RENEWAL_INFO_POLL;
    let answer: { window: RenewalWindow; retryAfter: string | undefined } | undefined;
    try {
      answer = await this.#fetchRenewalInfo(bundle);
    } catch (err) {
      const fetchAt = nextRenewalInfoFetch((err as { retryAfter?: string }).retryAfter, now, poll);
      this.#o.logger.debug({ host, err: (err as Error).message, nextFetch: new Date(fetchAt).toISOString() }, 'renewalInfo unavailable; renewing at renewAt of the lifetime');
      return { dueAt: fallback, fetchAt, window: undefined };
    }
    if (!answer) return { dueAt: fallback, fetchAt: 0, window: undefined };
    const { start, end, explanationUrl } = answer.window;
    const window = `${new Date(start).toISOString()}/${new Date(end).toISOString()}`;
    const fetchAt = nextRenewalInfoFetch(answer.retryAfter, now, poll);
    if (current && s.window === window) return { dueAt: s.dueAt, fetchAt, window };
    // RFC 9773 §4.2: a uniformly random time in the window (in the past: renew now).
    const dueAt = start + Math.random() * (end - start);
    this.#o.logger.info({ host, window, renewal: new Date(dueAt).toISOString(), nextFetch: new Date(fetchAt).toISOString(), explanationUrl }, 'the CA suggested a renewal window');
    return { dueAt, fetchAt, window };
  }

  /**
   * RFC 9773: GET {renewalInfo}/{base64url(AKI keyIdentifier)}.{base64url(serial)}.
   * Undefined when the CA offers no `renewalInfo` or the certificate has no AKI; rejects
   * (with the answer's `retryAfter`, if any) when the fetch fails or the answer is invalid.
   */
  async #fetchRenewalInfo(bundle: CertificateBundle): Promise<{ window: RenewalWindow; retryAfter: string | undefined } | undefined> {
    if (this.#renewalInfoUrl === undefined) {
      const directory = JSON.parse((await this.#get(this.#o.settings.directory)).text) as { renewalInfo?: unknown };
      this.#renewalInfoUrl = typeof directory.renewalInfo === 'string' ? directory.renewalInfo : null;
    }
    if (!this.#renewalInfoUrl) return undefined;
    const id = renewalInfoId(bundle.certPem);
    if (!id) return undefined;
    const res = await this.#get(`${this.#renewalInfoUrl.replace(/\/$/, '')}/${id}`);
    try {
      return { window: parseRenewalInfo(JSON.parse(res.text)), retryAfter: res.retryAfter };
    } catch (err) {
      throw Object.assign(new Error(`renewalInfo ${id}: ${(err as Error).message}`), { retryAfter: res.retryAfter });
    }
  }

  /** One GET with this manager's trust; rejects on a status >= 300 (with its `retryAfter`) or a socket error. */
  #get(url: string): Promise<{ text: string; retryAfter: string | undefined }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { agent: this.#agent, timeout: 10_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          if ((res.statusCode ?? 500) >= 300) reject(Object.assign(new Error(`GET ${url}: HTTP ${res.statusCode}`), { retryAfter }));
          else resolve({ text, retryAfter });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
      req.on('error', reject);
      req.end();
    });
  }
}
