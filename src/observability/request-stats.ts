/**
 * @module
 * Per-request counters kept as plain numbers so the hot path pays a few array writes and
 * no label hashing; they are rendered to Prometheus text only when `/metrics` is scraped.
 * Instances live as long as the process (they survive snapshot swaps), keyed by
 * app/version, so counters never reset when a route table is rebuilt.
 *
 * Across processes (`fairway serve --workers N`): a worker reads its counters as plain
 * cumulative data ({@link VersionStats.data}, {@link RequestStats.data}) and sends them
 * to the primary, which adds what changed since that worker's previous reading
 * ({@link RequestStats.add}). The primary's counters are then the sum over every worker
 * that ever ran — still monotonic when one dies, since what it counted stays added;
 * only the gauges (open upgraded connections) are taken back out ({@link withoutGauges}).
 */

/** Upper bounds, in seconds, of the request duration histogram buckets. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/**
 * A finer latency histogram for cutover analysis (not rendered at `/metrics`, whose
 * buckets stay as above): fixed log buckets, {@link FINE_PER_DOUBLING} per doubling from
 * {@link FINE_MIN_SECONDS}. Bucket 0 holds durations <= FINE_MIN_SECONDS; bucket i > 0
 * holds (upper(i-1), upper(i)] with upper(i) = FINE_MIN_SECONDS * 2^(i/8), so an upper
 * bound overstates a duration by less than 9%; the last bucket also takes everything
 * above ~104 s.
 */
export const FINE_MIN_SECONDS = 0.0001;
export const FINE_PER_DOUBLING = 8;
export const FINE_BUCKETS = 20 * FINE_PER_DOUBLING + 1;

/** Upper bounds of the fine buckets, in seconds; `observe()` finds a bucket by binary search (8 comparisons, no Math.log2). */
const FINE_UPPER = Float64Array.from({ length: FINE_BUCKETS }, (_, i) => FINE_MIN_SECONDS * 2 ** (i / FINE_PER_DOUBLING));

/** Upper bound, in seconds, of fine bucket `i` (see {@link FINE_MIN_SECONDS}). */
export function fineBucketUpperBound(i: number): number {
  return FINE_UPPER[i]!;
}

const NO_FINE: readonly number[] = new Array<number>(FINE_BUCKETS).fill(0);

/** Counters of one TCP passthrough route. */
export interface TcpStats {
  accepted: number;
  /** Connections closed because no endpoint could be reached. */
  failed: number;
  active: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * What became of a connection on a listener with the PROXY protocol on: `accepted` (a
 * header declaring the client), `local` (a valid header declaring no address: LOCAL,
 * UNKNOWN, AF_UNSPEC, AF_UNIX), or closed: `invalid` (not a PROXY header), `too_large`,
 * `incomplete` (the client closed mid-header), `timeout`, `empty` (closed before any byte).
 */
export type ProxyProtocolOutcome = 'accepted' | 'local' | 'invalid' | 'too_large' | 'incomplete' | 'timeout' | 'empty';
export type ProxyProtocolStats = Record<ProxyProtocolOutcome, number>;
const PROXY_PROTOCOL_OUTCOMES: readonly ProxyProtocolOutcome[] = ['accepted', 'local', 'invalid', 'too_large', 'incomplete', 'timeout', 'empty'];

/**
 * What became of Upgrade requests (WebSocket and others) of one app version:
 * `upgraded` (the endpoint answered 101 and bytes flowed both ways), `declined` (it
 * answered something else, relayed), `failed` (no endpoint answered: 502/504), `rejected`
 * (the router answered itself: allow list, maintenance, no endpoints…). `active` counts
 * upgraded connections open now; bytes are those carried after the 101.
 */
export interface UpgradeStats {
  upgraded: number;
  declined: number;
  failed: number;
  rejected: number;
  active: number;
  bytesIn: number;
  bytesOut: number;
}
export type UpgradeOutcome = 'upgraded' | 'declined' | 'failed' | 'rejected';
const UPGRADE_OUTCOMES: readonly UpgradeOutcome[] = ['upgraded', 'declined', 'failed', 'rejected'];

export type UnroutedReason = 'no_route' | 'bad_request' | 'not_ready' | 'headers_too_large' | 'url_too_long';
/** Why a listener closed a new connection at once: `per_client_limit` (`limits.maxConnectionsPerClient`). */
export type ConnectionRefusedReason = 'per_client_limit';
export type ConnectionRefusedStats = Record<ConnectionRefusedReason, number>;
export type UpstreamErrorReason = 'refused' | 'timeout' | 'reset' | 'failed';
const REASONS: readonly UpstreamErrorReason[] = ['refused', 'timeout', 'reset', 'failed'];

/** One version's counters as plain cumulative data (structured-cloneable), see {@link VersionStats.data}. */
export interface VersionCounterData {
  readonly byClass: readonly number[];
  readonly buckets: readonly number[];
  readonly durationSum: number;
  readonly upstreamErrors: Readonly<Record<UpstreamErrorReason, number>>;
  readonly retries: number;
  /** Absent until the version had a request. */
  readonly fine?: readonly number[];
  /** Absent until the version had an Upgrade request. */
  readonly upgrades?: Readonly<UpgradeStats>;
}

/**
 * Every counter of a {@link RequestStats} as plain cumulative data. `versions` may hold
 * only some versions (those that changed since the reader's previous reading): a version
 * left out did not change.
 */
export interface RequestCounterData {
  readonly versions: readonly (readonly [app: string, version: string, counters: VersionCounterData])[];
  readonly unrouted: Readonly<Record<UnroutedReason, number>>;
  readonly connectionsRefused: Readonly<Record<'http' | 'https', ConnectionRefusedStats>>;
  readonly tls: { readonly handshakes: number; readonly resumed: number; readonly handshakeErrors: number };
  readonly proxyProtocol: readonly (readonly [listener: string, counters: ProxyProtocolStats])[];
  readonly tcp: readonly (readonly [route: string, counters: TcpStats])[];
}

/** A tree of numbers (nested plain objects and arrays), as in {@link RequestCounterData}. */
type NumberTree = { [key: string]: number | NumberTree } | number[];

/**
 * Adds `next - prev` to `target`, leaf by leaf, for every number of `next` (a missing
 * `prev` counts as zeros). Each tree has the same shape; `target`'s nested objects are
 * mutated in place, so this is how counters of another process are folded into these.
 */
function addDifference(target: NumberTree, next: Readonly<NumberTree>, prev: Readonly<NumberTree> | undefined): void {
  const t = target as Record<string, number | NumberTree>;
  const p = prev as Record<string, number | NumberTree> | undefined;
  for (const [key, value] of Object.entries(next)) {
    if (typeof value === 'number') t[key] = ((t[key] as number | undefined) ?? 0) + value - ((p?.[key] as number | undefined) ?? 0);
    else addDifference((t[key] ??= Array.isArray(value) ? [] : {}) as NumberTree, value, p?.[key] as NumberTree | undefined);
  }
}

/** `data` with its gauges at zero: what a process that ended still counts (see {@link RequestStats.add}). */
export function withoutGauges(data: RequestCounterData): RequestCounterData {
  return {
    ...data,
    versions: data.versions.map(([app, version, v]) => [app, version, v.upgrades ? { ...v, upgrades: { ...v.upgrades, active: 0 } } : v] as const),
    tcp: data.tcp.map(([route, t]) => [route, { ...t, active: 0 }] as const),
  };
}

/** The response, duration and upstream-error counters of a version that has counted something. */
interface Counts {
  /** Responses by status class: index 1 = 1xx … 5 = 5xx. */
  readonly byClass: number[];
  /** Non-cumulative bucket counts; the last slot is +Inf. */
  readonly buckets: number[];
  readonly upstreamErrors: Record<UpstreamErrorReason, number>;
}

function newCounts(): Counts {
  return { byClass: [0, 0, 0, 0, 0, 0], buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), upstreamErrors: { refused: 0, timeout: 0, reset: 0, failed: 0 } };
}

/** What a version that never counted reads as (frozen: it is shared by all of them). */
const NO_COUNTS: Readonly<Counts> = Object.freeze({
  byClass: Object.freeze([0, 0, 0, 0, 0, 0]) as number[],
  buckets: Object.freeze(new Array<number>(DURATION_BUCKETS.length + 1).fill(0)) as number[],
  upstreamErrors: Object.freeze({ refused: 0, timeout: 0, reset: 0, failed: 0 }),
});

/**
 * Counters of one app version. A route table makes one for every version of every app
 * (and one per app for `version=""`), most of which may never serve: with 10,000 apps
 * that is 20,000 of them, so each holds only its names and two numbers until it counts
 * something; its arrays (status classes, duration buckets, upstream errors, the fine
 * histogram) are allocated then. Until that, readers see zeros.
 */
export class VersionStats {
  readonly app: string;
  readonly version: string;
  durationSum = 0;
  /** Failed attempts on this version that were sent again (to this or another version). */
  retries = 0;
  #counts: Counts | undefined;

  /** Responses by status class: index 1 = 1xx … 5 = 5xx. */
  get byClass(): readonly number[] {
    return (this.#counts ?? NO_COUNTS).byClass;
  }

  /** Non-cumulative duration bucket counts ({@link DURATION_BUCKETS}); the last slot is +Inf. */
  get buckets(): readonly number[] {
    return (this.#counts ?? NO_COUNTS).buckets;
  }

  /**
   * Failed upstream attempts by reason, to count into (`stats.upstreamErrors.reset++`):
   * reading it allocates the version's counters, so readers of every version use
   * {@link data} or the renderers instead.
   */
  get upstreamErrors(): Record<UpstreamErrorReason, number> {
    return (this.#counts ??= newCounts()).upstreamErrors;
  }

  /** The upstream errors as read (zeros until one was counted; never allocates). */
  get upstreamErrorCounts(): Readonly<Record<UpstreamErrorReason, number>> {
    return (this.#counts ?? NO_COUNTS).upstreamErrors;
  }

  /**
   * Non-cumulative counts of the fine latency histogram (see {@link FINE_MIN_SECONDS}).
   * Allocated on the first request: a router with 10,000 apps mostly idle would otherwise
   * hold 161 counters for each of their 20,000 stats objects.
   */
  get fine(): readonly number[] {
    return this.#fine ?? NO_FINE;
  }
  #fine: number[] | undefined;
  /** Upgrade requests of this version (allocated on the first one; see {@link UpgradeStats}). */
  get upgrades(): UpgradeStats {
    return (this.#upgrades ??= { upgraded: 0, declined: 0, failed: 0, rejected: 0, active: 0, bytesIn: 0, bytesOut: 0 });
  }
  /** Whether this version ever had an Upgrade request (for rendering). */
  get hasUpgrades(): boolean {
    return this.#upgrades !== undefined;
  }
  #upgrades: UpgradeStats | undefined;

  constructor(app: string, version: string) {
    this.app = app;
    this.version = version;
  }

  /** The counters as plain cumulative data (a copy). */
  data(): VersionCounterData {
    const c = this.#counts ?? NO_COUNTS;
    return {
      byClass: [...c.byClass], buckets: [...c.buckets], durationSum: this.durationSum, upstreamErrors: { ...c.upstreamErrors }, retries: this.retries,
      ...(this.#fine ? { fine: [...this.#fine] } : {}),
      ...(this.#upgrades ? { upgrades: { ...this.#upgrades } } : {}),
    };
  }

  /**
   * A number that changes whenever a counter does (responses, errors, retries, upgrades,
   * their bytes): lets a reader skip versions that did not change since its last reading.
   */
  get activity(): number {
    let n = this.retries;
    const c = this.#counts;
    if (c) {
      const b = c.byClass;
      const e = c.upstreamErrors;
      n += b[1]! + b[2]! + b[3]! + b[4]! + b[5]! + e.refused + e.timeout + e.reset + e.failed;
    }
    const u = this.#upgrades;
    if (u) n += u.upgraded + u.declined + u.failed + u.rejected + u.active * 2 ** 20 + u.bytesIn + u.bytesOut;
    return n;
  }

  /** Adds `next - prev` (two readings of another process's counters of this version; no `prev`: zeros). */
  add(next: VersionCounterData, prev: VersionCounterData | undefined): void {
    const c = (this.#counts ??= newCounts());
    addDifference(c.byClass, next.byClass as number[], prev?.byClass as number[] | undefined);
    addDifference(c.buckets, next.buckets as number[], prev?.buckets as number[] | undefined);
    addDifference(c.upstreamErrors, next.upstreamErrors, prev?.upstreamErrors);
    this.durationSum += next.durationSum - (prev?.durationSum ?? 0);
    this.retries += next.retries - (prev?.retries ?? 0);
    if (next.fine) addDifference((this.#fine ??= new Array<number>(FINE_BUCKETS).fill(0)), next.fine as number[], prev?.fine as number[] | undefined);
    if (next.upgrades) addDifference(this.upgrades as unknown as NumberTree, next.upgrades as unknown as NumberTree, prev?.upgrades as unknown as NumberTree | undefined);
  }

  /** Records one finished request: `status` as answered, `seconds` end to end. */
  observe(status: number, seconds: number): void {
    const c = (this.#counts ??= newCounts());
    const cls = (status / 100) | 0;
    c.byClass[cls >= 1 && cls <= 5 ? cls : 5]!++;
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    c.buckets[i]!++;
    this.durationSum += seconds;
    let lo = 0;
    let hi = FINE_BUCKETS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seconds > FINE_UPPER[mid]!) lo = mid + 1;
      else hi = mid;
    }
    (this.#fine ??= new Array<number>(FINE_BUCKETS).fill(0))[lo]!++;
  }
}

/** All request counters of the process, plus requests that matched no app. */
export class RequestStats {
  readonly #versions = new Map<string, VersionStats>();
  /** Requests answered before an app was chosen, by reason. */
  readonly unrouted: Record<UnroutedReason, number> = { no_route: 0, bad_request: 0, not_ready: 0, headers_too_large: 0, url_too_long: 0 };
  /** Connections the HTTP and HTTPS listeners closed at once, by listener and reason. */
  readonly connectionsRefused: Readonly<Record<'http' | 'https', ConnectionRefusedStats>> = { http: { per_client_limit: 0 }, https: { per_client_limit: 0 } };
  /** TCP passthrough routes by name. */
  readonly tcp = new Map<string, TcpStats>();

  /** The counters of TCP route `name`, created on first use. */
  forTcp(name: string): TcpStats {
    let t = this.tcp.get(name);
    if (!t) this.tcp.set(name, (t = { accepted: 0, failed: 0, active: 0, bytesIn: 0, bytesOut: 0 }));
    return t;
  }
  /** TLS handshakes on the HTTPS listener: completed, of which resumed, and failed. */
  readonly tls = { handshakes: 0, resumed: 0, handshakeErrors: 0 };
  /** PROXY protocol headers read, by listener (`http`, `https`, `tcp/<route>`). */
  readonly proxyProtocol = new Map<string, ProxyProtocolStats>();

  /** The PROXY protocol counters of `listener`, created on first use. */
  forProxyProtocol(listener: string): ProxyProtocolStats {
    let p = this.proxyProtocol.get(listener);
    if (!p) this.proxyProtocol.set(listener, (p = { accepted: 0, local: 0, invalid: 0, too_large: 0, incomplete: 0, timeout: 0, empty: 0 }));
    return p;
  }

  /** The stats of `app`/`version`, created on first use. Call when compiling a route table. */
  forVersion(app: string, version: string): VersionStats {
    const key = `${app}\u0000${version}`;
    let s = this.#versions.get(key);
    if (!s) {
      s = new VersionStats(app, version);
      this.#versions.set(key, s);
    }
    return s;
  }

  /** Every version's counters, in creation order. */
  versions(): IterableIterator<VersionStats> {
    return this.#versions.values();
  }

  /**
   * Every counter as plain cumulative data; `include` picks the versions (default: all).
   * Copies small arrays: meant for a reader's tick, never for the request path.
   */
  data(include: (s: VersionStats) => boolean = () => true): RequestCounterData {
    const versions: [string, string, VersionCounterData][] = [];
    for (const s of this.#versions.values()) if (include(s)) versions.push([s.app, s.version, s.data()]);
    return {
      versions,
      unrouted: { ...this.unrouted },
      connectionsRefused: { http: { ...this.connectionsRefused.http }, https: { ...this.connectionsRefused.https } },
      tls: { ...this.tls },
      proxyProtocol: [...this.proxyProtocol].map(([l, p]) => [l, { ...p }] as const),
      tcp: [...this.tcp].map(([r, t]) => [r, { ...t }] as const),
    };
  }

  /**
   * Folds in another process's counters: adds `next - prev`, where `next` and `prev` are
   * two successive readings of that process ({@link data}; no `prev`: its first one).
   * `prevVersion` finds the previous reading of a version (versions `next` leaves out did
   * not change and are not touched).
   */
  add(next: RequestCounterData, prev: RequestCounterData | undefined, prevVersion: (app: string, version: string) => VersionCounterData | undefined): void {
    for (const [app, version, counters] of next.versions) this.forVersion(app, version).add(counters, prevVersion(app, version));
    addDifference(this.unrouted, next.unrouted, prev?.unrouted);
    addDifference(this.connectionsRefused as unknown as NumberTree, next.connectionsRefused as unknown as NumberTree, prev?.connectionsRefused as unknown as NumberTree | undefined);
    addDifference(this.tls, next.tls, prev?.tls);
    const prevProxy = new Map(prev?.proxyProtocol);
    for (const [listener, p] of next.proxyProtocol) addDifference(this.forProxyProtocol(listener), p, prevProxy.get(listener));
    const prevTcp = new Map(prev?.tcp);
    for (const [route, t] of next.tcp) addDifference(this.forTcp(route) as unknown as NumberTree, t as unknown as NumberTree, prevTcp.get(route) as unknown as NumberTree | undefined);
  }

  /** Prometheus text exposition (version 0.0.4) of every counter. */
  render(): string {
    const out: string[] = [];
    const all = [...this.#versions.values()];
    out.push('# HELP fairway_requests_total Requests answered, by app, version and status class.');
    out.push('# TYPE fairway_requests_total counter');
    for (const s of all) {
      for (let c = 1; c <= 5; c++) {
        if (s.byClass[c]) out.push(`fairway_requests_total{${labels(s)},status_class="${c}xx"} ${s.byClass[c]}`);
      }
    }
    out.push('# HELP fairway_request_duration_seconds Time from request received to response finished.');
    out.push('# TYPE fairway_request_duration_seconds histogram');
    for (const s of all) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i]!;
        out.push(`fairway_request_duration_seconds_bucket{${labels(s)},le="${le}"} ${cumulative}`);
      });
      cumulative += s.buckets[DURATION_BUCKETS.length]!;
      out.push(`fairway_request_duration_seconds_bucket{${labels(s)},le="+Inf"} ${cumulative}`);
      out.push(`fairway_request_duration_seconds_sum{${labels(s)}} ${s.durationSum}`);
      out.push(`fairway_request_duration_seconds_count{${labels(s)}} ${cumulative}`);
    }
    out.push('# HELP fairway_upstream_errors_total Failed upstream attempts, by reason (refused, timeout, reset, failed).');
    out.push('# TYPE fairway_upstream_errors_total counter');
    for (const s of all) {
      for (const r of REASONS) {
        if (s.upstreamErrorCounts[r]) out.push(`fairway_upstream_errors_total{${labels(s)},reason="${r}"} ${s.upstreamErrorCounts[r]}`);
      }
    }
    out.push('# HELP fairway_upstream_retries_total Requests sent again to another endpoint after a failed attempt.');
    out.push('# TYPE fairway_upstream_retries_total counter');
    for (const s of all) if (s.retries) out.push(`fairway_upstream_retries_total{${labels(s)}} ${s.retries}`);
    out.push('# HELP fairway_upgrades_total Upgrade requests (WebSocket and others), by app, version and result (upgraded: 101 and tunnelled; declined: the endpoint answered otherwise; failed: no endpoint answered; rejected: the router answered itself).');
    out.push('# TYPE fairway_upgrades_total counter');
    const upgrading = all.filter((s) => s.hasUpgrades);
    for (const s of upgrading) {
      for (const r of UPGRADE_OUTCOMES) if (s.upgrades[r]) out.push(`fairway_upgrades_total{${labels(s)},result="${r}"} ${s.upgrades[r]}`);
    }
    out.push('# HELP fairway_upgrades_active Upgraded connections (WebSocket and others) open now.');
    out.push('# TYPE fairway_upgrades_active gauge');
    for (const s of upgrading) out.push(`fairway_upgrades_active{${labels(s)}} ${s.upgrades.active}`);
    out.push('# HELP fairway_upgrade_bytes_total Bytes carried by upgraded connections after the 101, by direction (in: from clients).');
    out.push('# TYPE fairway_upgrade_bytes_total counter');
    for (const s of upgrading) {
      out.push(`fairway_upgrade_bytes_total{${labels(s)},direction="in"} ${s.upgrades.bytesIn}`);
      out.push(`fairway_upgrade_bytes_total{${labels(s)},direction="out"} ${s.upgrades.bytesOut}`);
    }
    out.push('# HELP fairway_unrouted_requests_total Requests answered before an app was chosen, by reason.');
    out.push('# TYPE fairway_unrouted_requests_total counter');
    for (const [reason, n] of Object.entries(this.unrouted)) out.push(`fairway_unrouted_requests_total{reason="${reason}"} ${n}`);
    out.push('# HELP fairway_connections_refused_total Connections the HTTP and HTTPS listeners closed at once, by listener and reason (per_client_limit: limits.maxConnectionsPerClient).');
    out.push('# TYPE fairway_connections_refused_total counter');
    for (const [listener, r] of Object.entries(this.connectionsRefused)) out.push(`fairway_connections_refused_total{listener="${listener}",reason="per_client_limit"} ${r.per_client_limit}`);
    out.push('# HELP fairway_tcp_connections_total TCP passthrough connections accepted, by route and outcome (failed: no endpoint reachable).');
    out.push('# TYPE fairway_tcp_connections_total counter');
    for (const [route, t] of this.tcp) {
      out.push(`fairway_tcp_connections_total{route="${escapeLabel(route)}",result="accepted"} ${t.accepted}`);
      out.push(`fairway_tcp_connections_total{route="${escapeLabel(route)}",result="failed"} ${t.failed}`);
    }
    out.push('# HELP fairway_tcp_connections_active TCP passthrough connections open now.');
    out.push('# TYPE fairway_tcp_connections_active gauge');
    for (const [route, t] of this.tcp) out.push(`fairway_tcp_connections_active{route="${escapeLabel(route)}"} ${t.active}`);
    out.push('# HELP fairway_tcp_bytes_total Bytes carried by TCP passthrough routes, by direction (in: from clients).');
    out.push('# TYPE fairway_tcp_bytes_total counter');
    for (const [route, t] of this.tcp) {
      out.push(`fairway_tcp_bytes_total{route="${escapeLabel(route)}",direction="in"} ${t.bytesIn}`);
      out.push(`fairway_tcp_bytes_total{route="${escapeLabel(route)}",direction="out"} ${t.bytesOut}`);
    }
    out.push('# HELP fairway_tls_handshakes_total TLS handshakes completed on the HTTPS listener, by whether the session was resumed.');
    out.push('# TYPE fairway_tls_handshakes_total counter');
    out.push(`fairway_tls_handshakes_total{resumed="false"} ${this.tls.handshakes - this.tls.resumed}`);
    out.push(`fairway_tls_handshakes_total{resumed="true"} ${this.tls.resumed}`);
    out.push('# HELP fairway_tls_handshake_errors_total TLS handshakes that failed (client alerts, no shared cipher, bad SNI, timeouts).');
    out.push('# TYPE fairway_tls_handshake_errors_total counter');
    out.push(`fairway_tls_handshake_errors_total ${this.tls.handshakeErrors}`);
    out.push('# HELP fairway_proxy_protocol_connections_total Connections on listeners with the PROXY protocol on, by listener and outcome (accepted, local: kept; invalid, too_large, incomplete, timeout, empty: closed).');
    out.push('# TYPE fairway_proxy_protocol_connections_total counter');
    for (const [listener, p] of this.proxyProtocol) {
      for (const outcome of PROXY_PROTOCOL_OUTCOMES) out.push(`fairway_proxy_protocol_connections_total{listener="${escapeLabel(listener)}",outcome="${outcome}"} ${p[outcome]}`);
    }
    return out.join('\n') + '\n';
  }
}

function labels(s: VersionStats): string {
  return `app="${escapeLabel(s.app)}",version="${escapeLabel(s.version)}"`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
