/**
 * @module
 * The compiled, read-only form of a snapshot that the hot path reads: host lookups are
 * map hits, version picks are a smooth weighted round-robin, endpoint picks scan the
 * version's few endpoints in memory. A table is built whole off to the side and then
 * swapped in by the data plane through one reference; it is never edited afterwards
 * (only its pickers' counters move).
 *
 * Host matching order: exact domain → one-label wildcard (`*.example.test` matches
 * `a.example.test`, not `a.b.example.test`) → platform subdomain (`<app>.<platformDomain>`
 * reaches app `<app>`, as every app did on the Deis router). Each table keeps the answers
 * (misses too) for the Host values it has seen in a bounded LRU cache, so a request's
 * lookup is usually one map hit whatever matched, and hostile Host values cannot grow it.
 *
 * An app's policy is compiled here too: its allow list into an {@link AllowList} (its own
 * entries under the router-wide {@link AllowListRules}), its
 * timeouts resolved against the router-wide ones (the connect timeout goes into the
 * endpoint pools, the read timeout into every dispatch), and its version pick: the sticky
 * cookie's values signed with the table's sticky key ({@link StickyCookie}) and the
 * `X-Fairway-Version` client list. So is how its exchanges are handled (body size,
 * compression, error pages): the app's own `handling` over the router-wide settings, which
 * the table compiles once ({@link SharedHandling}) for its apps to share; request IDs and
 * server tokens are router-wide.
 *
 * Unknown hosts: `match` answers only for hosts an app serves; {@link RouteTable.defaultApp}
 * is the app that takes the others when `defaultApp` (the Deis default service) is set and
 * names an app of the snapshot.
 */
import { DEFAULT_OUTLIER_DETECTION, DEFAULT_RETRIES, type AppHandling, type HealthCheck, type AppSpec, type LoadBalancing, type OutlierDetection, type RetryBudgetSettings, type RouterSettings, type Snapshot, type Timeouts, type VersionPick } from '../model.js';
import type { RequestStats, VersionStats } from '../observability/request-stats.js';
import { AllowList, AllowListRules } from './allow-list.js';
import { ClientAddress } from './client-address.js';
import { CompressionPolicy } from './compression-policy.js';
import type { EndpointHealth } from './endpoint-health.js';
import { ErrorPages } from './error-pages.js';
import { OutlierDetector } from './outlier-detector.js';
import type { RetryBudget } from './retry-budget.js';
import { SmoothWeightedPicker } from './smooth-weighted-picker.js';
import { StickyCookie } from './sticky-cookie.js';
import type { Upstream, UpstreamRegistry } from './upstream-registry.js';
import { LRUCache } from 'lru-cache';

export class VersionRoute {
  readonly name: string;
  readonly weight: number;
  readonly upstreams: readonly Upstream[];
  readonly stats: VersionStats;
  /** Where exchanges report each attempt's outcome (passive outlier detection). */
  readonly outliers: OutlierDetector;
  readonly #loadBalancing: LoadBalancing;
  #next = 0;

  constructor(name: string, weight: number, upstreams: Upstream[], loadBalancing: LoadBalancing, stats: VersionStats, outliers?: OutlierDetector) {
    this.name = name;
    this.weight = weight;
    this.upstreams = upstreams;
    this.#loadBalancing = loadBalancing;
    this.stats = stats;
    this.outliers = outliers ?? new OutlierDetector(stats.app, name, upstreams, NO_OUTLIER_DETECTION, NO_EVENTS);
  }

  /**
   * The endpoint for the next request, skipping those in `tried`. Least-outstanding
   * breaks ties in rotation, so an idle version is served round-robin. Endpoints not
   * {@link Upstream.available} (ejected, unhealthy) are picked only when none of the
   * others is: better to try one than to refuse the request.
   */
  pickUpstream(tried?: readonly Upstream[]): Upstream | undefined {
    const list = this.upstreams;
    const n = list.length;
    const start = this.#next++ % n;
    if (this.#next > 0x3fffffff) this.#next = 0;
    const roundRobin = this.#loadBalancing === 'round-robin';
    let best: Upstream | undefined;
    let spare: Upstream | undefined;
    for (let k = 0; k < n; k++) {
      const u = list[(start + k) % n]!;
      if (tried && tried.includes(u)) continue;
      if (!u.available) {
        if (!spare || u.outstanding < spare.outstanding) spare = u;
        continue;
      }
      if (roundRobin) return u;
      if (!best || u.outstanding < best.outstanding) best = u;
    }
    return best ?? spare;
  }
}

const NO_OUTLIER_DETECTION: OutlierDetection = { ...DEFAULT_OUTLIER_DETECTION, consecutiveFailures: 0 };
const NO_EVENTS = { ejected() {}, readmitted() {} };
const DEFAULT_RETRY_BUDGET = DEFAULT_RETRIES.budget as RetryBudgetSettings;

/** Node timers fire at once above this many ms, so longer timeouts are capped to it (~24.8 days). */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** What a table compiles once from the router-wide settings, for its apps to share. */
export interface SharedHandling {
  readonly settings: RouterSettings;
  /** The router-wide pages (also those of every app without pages of its own). */
  readonly pages: ErrorPages;
  /** Compiled from `settings.compression` (whether or not it is enabled router-wide). */
  readonly compression: CompressionPolicy | undefined;
  /** The router-wide outlier detection (the detectors of every app without keys of its own). */
  readonly outlierDetection: OutlierDetection;
  /** The router-wide retry budget; undefined: off (unless an app sets its own). */
  readonly retryBudget: RetryBudgetSettings | undefined;
}

function shareHandling(settings: RouterSettings): SharedHandling {
  const budget = (settings.retries ?? DEFAULT_RETRIES).budget;
  return {
    settings,
    pages: new ErrorPages({ router: settings.errorPages, anonymous: settings.disableServerTokens }),
    compression: settings.compression === undefined ? undefined : new CompressionPolicy(settings.compression),
    outlierDetection: outlierDetection({ ...(settings.outlierDetection ?? DEFAULT_OUTLIER_DETECTION) }),
    retryBudget: budget === false ? undefined : budget,
  };
}

/** `settings` with `maxEjectionTime` raised to at least `baseEjectionTime`. */
function outlierDetection(settings: { -readonly [K in keyof OutlierDetection]: OutlierDetection[K] }): OutlierDetection {
  if (settings.maxEjectionTime < settings.baseEjectionTime) settings.maxEjectionTime = settings.baseEjectionTime;
  return settings;
}

/**
 * The router-wide settings a compiled app's handling depends on, but the error pages (see
 * {@link samePages}): a table whose key differs compiles every app again.
 */
function handlingKey(settings: RouterSettings): string {
  const s = settings;
  return JSON.stringify([s.limits.maxBodySize, s.disableServerTokens, s.requestIDs, s.compression, s.outlierDetection, s.retries]);
}

/** Whether two snapshots' router-wide pages are the same (by reference first: pages can be large). */
function samePages(a: RouterSettings, b: RouterSettings): boolean {
  return a.errorPages === b.errorPages || JSON.stringify(a.errorPages) === JSON.stringify(b.errorPages);
}

export class AppRoute {
  readonly name: string;
  readonly versions: readonly VersionRoute[];
  /** Counters for requests answered before a version was chosen (label `version=""`). */
  readonly stats: VersionStats;
  /** Redirect plain HTTP to HTTPS. */
  readonly sslEnforce: boolean;
  /** The `Strict-Transport-Security` value for HTTPS responses, if any. */
  readonly hsts: string | undefined;
  /** Clients allowed in (the app's entries under the router-wide rules); undefined: everyone (the check is skipped). */
  readonly allowList: AllowList | undefined;
  /** Answer 503 `FW_APP_MAINTENANCE` instead of proxying. */
  readonly maintenance: boolean;
  /** Upstream response headers wait, ms (the app's read timeout, else `timeouts.upstreamHeaders`). */
  readonly headersTimeout: number;
  /** Longest pause between upstream body chunks, ms (the app's read timeout, else `timeouts.upstreamIdle`). */
  readonly bodyTimeout: number;
  /**
   * Longest silence either way on an upgraded connection (WebSocket), ms: the app's read
   * timeout when it sets one (as nginx's `proxy_read_timeout` did), else `timeouts.upgradeIdle`; 0: never.
   */
  readonly upgradeIdleTimeout: number;
  /** The app's sticky cookie; undefined: the app is not sticky (or the table has no sticky key). */
  readonly sticky: StickyCookie<VersionRoute> | undefined;
  /** Largest request body in bytes: the app's `bodySize`, else `limits.maxBodySize`. */
  readonly maxBodySize: number;
  /** How this app's responses are compressed; undefined: never. */
  readonly compression: CompressionPolicy | undefined;
  /** Request IDs the Deis way (router-wide `requestIDs`): the router makes `X-Request-Id`, chains `X-Correlation-Id`, returns both. */
  readonly requestIds: boolean;
  /** Disclose no server software (`disableServerTokens`). */
  readonly anonymous: boolean;
  /** The pages of the router's own answers for this app. */
  readonly pages: ErrorPages;
  /** Whether `X-Fairway-Version` may choose the version (see {@link versionHeaderFrom}). */
  readonly versionHeader: boolean;
  /** Clients whose `X-Fairway-Version` counts; undefined: every client (when {@link versionHeader}). */
  readonly versionHeaderFrom: AllowList | undefined;
  /** Endpoints tried at most for one request, the first included (`retries.attempts`). */
  readonly maxAttempts: number;
  /** Caps this app's retries (`retries.budget`); undefined: no budget. */
  readonly retryBudget: RetryBudget | undefined;
  /** The app's active health check and the host its probes send; undefined: none. */
  readonly healthCheck: AppHealthCheck | undefined;
  readonly #picker: SmoothWeightedPicker<VersionRoute>;

  constructor(
    name: string, versions: VersionRoute[], stats: VersionStats, tls: AppSpec['tls'], policy: AppSpec['policy'], timeouts: Timeouts,
    pick?: VersionPick, stickyKey?: Buffer, allowRules?: AllowListRules, handling?: AppHandling, shared?: SharedHandling,
    retry?: { readonly attempts: number; readonly budget: RetryBudget | undefined }, healthCheck?: AppHealthCheck,
  ) {
    this.name = name;
    this.healthCheck = healthCheck;
    this.versions = versions;
    this.stats = stats;
    this.allowList = (allowRules ?? NO_ALLOW_RULES).forApp(policy.allow);
    this.maintenance = policy.maintenance;
    this.headersTimeout = Math.min(policy.readTimeout ?? timeouts.upstreamHeaders, MAX_TIMEOUT);
    this.bodyTimeout = Math.min(policy.readTimeout ?? timeouts.upstreamIdle, MAX_TIMEOUT);
    this.upgradeIdleTimeout = Math.min(policy.readTimeout ?? timeouts.upgradeIdle ?? 3_600_000, MAX_TIMEOUT);
    this.sslEnforce = tls.sslEnforce;
    this.hsts = tls.hsts
      ? `max-age=${tls.hsts.maxAge}${tls.hsts.includeSubDomains ? '; includeSubDomains' : ''}${tls.hsts.preload ? '; preload' : ''}`
      : undefined;
    this.sticky = pick?.sticky && stickyKey ? new StickyCookie(stickyKey, name, versions) : undefined;
    this.versionHeader = pick?.header !== undefined;
    this.versionHeaderFrom = pick?.header && pick.header.allowFrom.length > 0 ? new AllowList(pick.header.allowFrom) : undefined;
    this.maxAttempts = retry?.attempts ?? DEFAULT_RETRIES.attempts;
    this.retryBudget = retry?.budget;
    const s = shared?.settings;
    this.maxBodySize = handling?.bodySize ?? s?.limits.maxBodySize ?? Infinity;
    this.compression = (handling?.compression ?? s?.compression?.enabled) ? shared?.compression : undefined;
    this.requestIds = s?.requestIDs ?? false;
    this.anonymous = s?.disableServerTokens ?? false;
    this.pages = handling?.errorPages === undefined
      ? shared?.pages ?? new ErrorPages()
      : new ErrorPages({ router: s?.errorPages, app: handling.errorPages, anonymous: this.anonymous });
    // A version without endpoints gives its share to the others.
    const live = versions.filter((v) => v.upstreams.length > 0);
    this.#picker = new SmoothWeightedPicker(live, live.map((v) => v.weight));
  }

  /** The version for the next request, or `undefined` when no version can serve (503). */
  pickVersion(): VersionRoute | undefined {
    return this.#picker.pick();
  }

  /**
   * The version a valid sticky cookie in `cookieHeader` names, if it may still serve:
   * weight > 0 and endpoints. Undefined otherwise (not sticky, no or bad cookie, or its
   * version lost its weight or endpoints: the client is picked by weight again).
   */
  stickyVersion(cookieHeader: string): VersionRoute | undefined {
    const v = this.sticky?.pinned(cookieHeader);
    return v !== undefined && v.weight > 0 && v.upstreams.length > 0 ? v : undefined;
  }

  /** Whether a request from `clientIp` may choose its version with `X-Fairway-Version`. */
  acceptsVersionHeader(clientIp: string): boolean {
    return this.versionHeader && (this.versionHeaderFrom === undefined || this.versionHeaderFrom.allows(clientIp));
  }

  /** The version named `name` (any weight, with or without endpoints). */
  version(name: string): VersionRoute | undefined {
    for (const v of this.versions) if (v.name === name) return v;
    return undefined;
  }

  /**
   * Where a request goes after its attempt on the last of `tried` failed: another endpoint
   * of `version`, else — unless `sameVersion` (a version chosen by `X-Fairway-Version`) —
   * one of another version with weight and endpoints not all tried. Undefined when the
   * app's `retries.attempts` are used up, nowhere is left, or the app's retry budget
   * refuses (it is asked only when there is somewhere to go, and counts the retry).
   */
  retryTarget(version: VersionRoute, tried: readonly Upstream[], sameVersion: boolean): { version: VersionRoute; upstream: Upstream } | undefined {
    if (tried.length >= this.maxAttempts) return undefined;
    let target = version;
    let upstream = version.pickUpstream(tried);
    if (upstream === undefined && !sameVersion) {
      for (const v of this.versions) {
        if (v === version || v.weight === 0) continue;
        upstream = v.pickUpstream(tried);
        if (upstream !== undefined) {
          target = v;
          break;
        }
      }
    }
    if (upstream === undefined) return undefined;
    if (this.retryBudget !== undefined && !this.retryBudget.withdraw()) return undefined;
    return { version: target, upstream };
  }
}

/** An app's active health check (`healthCheck`), and the `Host` its probes send (its first non-wildcard domain). */
export interface AppHealthCheck {
  readonly check: HealthCheck;
  readonly host: string | undefined;
}

/** No router-wide rules: an app's own list, or everyone. */
const NO_ALLOW_RULES = new AllowListRules(undefined);

export class RouteTable {
  /**
   * The snapshot compiled, when the table keeps it (the default): what a later table
   * reuses compiled apps against. Undefined for a table compiled not to keep it (see the
   * constructor's `keepSnapshot`).
   */
  readonly snapshot: Snapshot | undefined;
  /** The router-wide settings of the snapshot compiled. */
  readonly settings: RouterSettings;
  /** The generation of the snapshot compiled. */
  readonly generation: number;
  /** Decides each request's client address under the snapshot's `trustedProxies`. */
  readonly clientAddress: ClientAddress;
  readonly #allowRules: AllowListRules;
  readonly #exact = new Map<string, AppRoute>();
  readonly #wildcard = new Map<string, AppRoute>();
  /**
   * `Host` header values already resolved (misses included), most recent first. Bounded
   * in entries and in key length, so a flood of distinct or huge Host headers cannot grow
   * it; it lives and dies with the table, so a swap never serves a stale answer.
   */
  readonly #resolved = new LRUCache<string, AppRoute | typeof NO_APP>({ max: HOST_CACHE_ENTRIES });
  readonly #byName = new Map<string, AppRoute>();
  readonly #platformSuffix: string | undefined;
  readonly #stickyKey: Buffer | undefined;
  readonly #handlingKey: string;
  readonly #shared: SharedHandling;
  /** The app that serves hosts no app claims (`defaultApp`), if set and in the snapshot. */
  readonly defaultApp: AppRoute | undefined;
  /** Every upstream this table can send to (to retire the others after a swap). */
  readonly upstreams = new Set<Upstream>();

  /**
   * `stickyKey` signs the cookies of sticky apps; without it, no app is sticky. With
   * `previous` (the live table), an app whose AppSpec is the very same object, under the
   * same timeouts and key, keeps its compiled route (and its weighted picker's state), so
   * a change to one app among thousands compiles one app.
   *
   * `keepSnapshot: false` keeps no AppSpec once compiled (only the settings): for a
   * data-plane worker, whose snapshots are deserialised copies, so no AppSpec is ever the
   * same object twice (every app is compiled on every snapshot either way) and holding the
   * copy would double the memory the model takes there. Such a table reuses nothing.
   */
  constructor(snapshot: Snapshot, registry: UpstreamRegistry, stats: RequestStats, stickyKey?: Buffer, previous?: RouteTable, health?: EndpointHealth, keepSnapshot = true) {
    this.snapshot = keepSnapshot ? snapshot : undefined;
    this.settings = snapshot.settings;
    this.generation = snapshot.generation;
    this.#stickyKey = stickyKey;
    const pd = snapshot.settings.platformDomain;
    this.#platformSuffix = pd ? `.${pd}` : undefined;
    const timeouts = snapshot.settings.timeouts;
    this.clientAddress = new ClientAddress(snapshot.settings.trustedProxies ?? []);
    const allowRules = (this.#allowRules = new AllowListRules(snapshot.settings.whitelist));
    this.#handlingKey = handlingKey(snapshot.settings);
    const reusable =
      previous !== undefined && previous.#stickyKey === stickyKey && previous.#allowRules.key === allowRules.key && previous.#handlingKey === this.#handlingKey && samePages(previous.settings, snapshot.settings) &&
      JSON.stringify(previous.settings.timeouts) === JSON.stringify(timeouts) ? previous : undefined;
    // The same router-wide handling: the same compiled pages and compression (and their memos).
    this.#shared = reusable !== undefined ? reusable.#shared : shareHandling(snapshot.settings);
    // The previous table's specs by name, to find the apps whose AppSpec is the very same object.
    const before = reusable?.snapshot === undefined ? undefined : new Map(reusable.snapshot.apps.map((a) => [a.name, a] as const));
    for (const app of snapshot.apps) {
      const old = before?.get(app.name) === app ? reusable!.#byName.get(app.name) : undefined;
      let route: AppRoute;
      if (old !== undefined) {
        route = old;
        for (const v of old.versions) for (const u of v.upstreams) this.upstreams.add(u);
      } else {
        const poolOptions = { connectTimeout: Math.min(app.policy.connectTimeout ?? timeouts.connect, MAX_TIMEOUT) };
        route = compileApp(app, timeouts, (e) => {
          const u = registry.acquire(e, poolOptions);
          this.upstreams.add(u);
          return u;
        }, stats, stickyKey, allowRules, this.#shared, health);
      }
      this.#byName.set(app.name, route);
      for (const d of app.domains) {
        if (d.startsWith('*.')) this.#wildcard.set(d.slice(2), route);
        else this.#exact.set(d, route);
      }
    }
    const fallback = snapshot.settings.defaultApp;
    this.defaultApp = fallback === undefined ? undefined : this.#byName.get(fallback);
  }

  /** The router-wide pages, for answers given before an app is known. */
  get pages(): ErrorPages {
    return this.#shared.pages;
  }

  /** Request IDs the Deis way for answers given before an app is known (router-wide `requestIDs`). */
  get requestIds(): boolean {
    return this.settings.requestIDs ?? false;
  }

  /** The app serving a `Host` header value (any case, with or without port), if any. */
  match(hostHeader: string): AppRoute | undefined {
    const cached = this.#resolved.get(hostHeader);
    if (cached !== undefined) return cached === NO_APP ? undefined : cached;
    const app = this.#lookup(normalizeHost(hostHeader));
    if (hostHeader.length <= MAX_CACHED_HOST_LENGTH) this.#resolved.set(hostHeader, app ?? NO_APP);
    return app;
  }

  /** Resolved hosts held (at most {@link HOST_CACHE_ENTRIES}). */
  get cachedHosts(): number {
    return this.#resolved.size;
  }

  #lookup(host: string): AppRoute | undefined {
    const exact = this.#exact.get(host);
    if (exact) return exact;
    const dot = host.indexOf('.');
    if (dot > 0) {
      const wild = this.#wildcard.get(host.slice(dot + 1));
      if (wild) return wild;
      const suffix = this.#platformSuffix;
      if (suffix && host.length - dot === suffix.length && host.endsWith(suffix)) {
        return this.#byName.get(host.slice(0, dot));
      }
    }
    return undefined;
  }

  app(name: string): AppRoute | undefined {
    return this.#byName.get(name);
  }

  /** Every app of the table, in the snapshot's order (by name). */
  apps(): IterableIterator<AppRoute> {
    return this.#byName.values();
  }
}

/** A cached miss (the cache cannot hold undefined). */
const NO_APP = Symbol('no app');
/** Resolved Host values a table keeps: every host of a 10,000-host table, plus room for misses. */
export const HOST_CACHE_ENTRIES = 16_384;
/** Longer Host values (a DNS name is at most 253 characters, plus a port) are resolved but not cached. */
const MAX_CACHED_HOST_LENGTH = 270;

function compileApp(
  app: AppSpec, timeouts: Timeouts, upstream: (e: AppSpec['versions'][number]['endpoints'][number]) => Upstream, stats: RequestStats, stickyKey: Buffer | undefined,
  allowRules: AllowListRules, shared: SharedHandling, health: EndpointHealth | undefined,
): AppRoute {
  // Endpoint health: the app's own keys over the router-wide ones (an app without keys of its own shares the router-wide objects).
  const own = app.endpointHealth;
  const outlier = own?.outlierDetection === undefined ? shared.outlierDetection : outlierDetection({ ...shared.outlierDetection, ...own.outlierDetection });
  const retries = shared.settings.retries ?? DEFAULT_RETRIES;
  const ownBudget = own?.retries?.budget;
  // `false` at either level turns the budget off; an app's partial budget goes over the router-wide (or default) one.
  const budget = ownBudget === false ? undefined : ownBudget === undefined ? shared.retryBudget : { ...(retries.budget || DEFAULT_RETRY_BUDGET), ...ownBudget };
  const versions = app.versions.map((v) => {
    const upstreams = v.endpoints.map(upstream);
    const outliers = health && new OutlierDetector(app.name, v.name, upstreams, outlier, health);
    return new VersionRoute(v.name, v.weight, upstreams, app.loadBalancing, stats.forVersion(app.name, v.name), outliers);
  });
  const check = own?.healthCheck;
  return new AppRoute(app.name, versions, stats.forVersion(app.name, ''), app.tls, app.policy, timeouts, app.versionPick, stickyKey, allowRules, app.handling, shared, {
    attempts: own?.retries?.attempts ?? retries.attempts,
    budget: budget && health?.budgets.for(app.name, budget),
  }, check && { check, host: app.domains.find((d) => !d.startsWith('*.')) ?? app.domains[0]?.slice(2) });
}

/** Lower-cases a Host header value and strips the port and a trailing dot. */
export function normalizeHost(value: string): string {
  let host = value;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    host = close > 0 ? host.slice(0, close + 1) : host;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) host = host.slice(0, colon);
  }
  if (host.charCodeAt(host.length - 1) === 46 /* . */) host = host.slice(0, -1);
  return host.toLowerCase();
}
