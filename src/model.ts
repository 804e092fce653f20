/**
 * @module
 * The one model every provider translates into and the data plane compiles from.
 * Everything here is plain, JSON-serialisable data (so a snapshot can cross process
 * boundaries to data-plane workers) and is treated as immutable once published.
 */

/** An upstream address. `host` is an IP literal (IPv6 without brackets) or a DNS name. */
export interface EndpointSpec {
  readonly host: string;
  readonly port: number;
}

/** One release of an app: a weight and the endpoints that serve it. */
export interface VersionSpec {
  readonly name: string;
  /** Relative weight, >= 0. Weight 0 receives no traffic. */
  readonly weight: number;
  readonly endpoints: readonly EndpointSpec[];
}

export type LoadBalancing = 'least-outstanding' | 'round-robin';

/** A PEM certificate chain and its private key, as files (absolute paths). */
export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
  /** The app that configured it, or undefined for router-wide ones. */
  readonly app?: string;
}

/** A certificate chain and its key held in memory, e.g. read from a Kubernetes Secret. */
export interface CertificatePem {
  /** Leaf first, then intermediates. */
  readonly certPem: string;
  readonly keyPem: string;
  /** Where it came from, for logs and the API, e.g. `secret web/example-com-cert`. */
  readonly origin: string;
  /**
   * `platform`: the default certificate for unknown SNI and the names it covers, unless
   * the file config names a `tls.platformCertificate`; `app`: serves `hosts` for `app`.
   */
  readonly role: 'platform' | 'app';
  readonly app?: string;
  /** The names it serves (a certificate that does not cover one is reported); all of its names when unset. */
  readonly hosts?: readonly string[];
}

/** `Strict-Transport-Security` parameters. */
export interface Hsts {
  readonly maxAge: number;
  readonly includeSubDomains: boolean;
  readonly preload: boolean;
}

/** An app's HTTPS policy, router-wide defaults already applied. */
export interface AppTls {
  /** Redirect plain HTTP to HTTPS (301 for GET/HEAD, 308 otherwise). */
  readonly sslEnforce: boolean;
  /** Sent on HTTPS responses when set. */
  readonly hsts: Hsts | undefined;
  /** Obtain certificates over ACME for this app's (non-wildcard) domains when ACME is configured. */
  readonly acme: boolean;
  readonly certificates: readonly CertificateFiles[];
}

/**
 * An app's front-door policy, applied after the host match and before a version is
 * picked (allow list, then maintenance). The Deis `router.deis.io/whitelist`,
 * `maintenance`, `connectTimeout` and `tcpTimeout` annotations map here.
 */
export interface AppPolicy {
  /**
   * Client addresses allowed in, each `address/prefix` (IPv4 or IPv6; a bare address is
   * stored as /32 or /128). Others get 403 `FW_CLIENT_FORBIDDEN`. Empty: every client,
   * unless the router-wide {@link WhitelistSettings} say otherwise (which also extend or
   * replace a non-empty list).
   */
  readonly allow: readonly string[];
  /** Answer every request with 503 `FW_APP_MAINTENANCE` (and `Retry-After`) instead of proxying. */
  readonly maintenance: boolean;
  /** TCP connect to an endpoint, ms; undefined: the router-wide `timeouts.connect`. */
  readonly connectTimeout: number | undefined;
  /**
   * Longest wait for the next thing read from the upstream, ms: both the response
   * headers after the request was sent (replacing `timeouts.upstreamHeaders`) and each
   * pause between body chunks (replacing `timeouts.upstreamIdle`) — nginx's
   * `proxy_read_timeout`, which the Deis `tcpTimeout` set. Undefined: the router-wide two.
   */
  readonly readTimeout: number | undefined;
}

/**
 * How a request's version is chosen besides the weights, in this order: the
 * `X-Fairway-Version` header (when the app accepts it from the client), then the sticky
 * cookie (when the app is sticky and the cookie's version still has weight > 0 and
 * endpoints), then the weights.
 */
export interface VersionPick {
  /** Keep a client on the version that served it, through a signed cookie. */
  readonly sticky: boolean;
  /**
   * Accept `X-Fairway-Version: <version>` (which reaches a version even at weight 0):
   * undefined: never (the header is ignored); `allowFrom` empty: from any client; else
   * only from clients in these `address/prefix` entries (others are ignored).
   */
  readonly header: { readonly allowFrom: readonly string[] } | undefined;
}

/**
 * A page the router answers with instead of its built-in one, read into memory when the
 * config is loaded (the hot path never reads a file).
 */
export interface ErrorPage {
  /** The file it was read from (absolute), for messages and the admin API. */
  readonly file: string;
  /** From the file's extension, e.g. `text/html; charset=utf-8`. */
  readonly contentType: string;
  /** The file's content (UTF-8). */
  readonly body: string;
}

/**
 * Pages for the router's own answers, keyed by HTTP status (`"404"`, `"502"`, `"503"`,
 * `"504"`, and the other statuses the router answers with), plus `"maintenance"` for the
 * 503 of an app in maintenance (which falls back to the `"503"` page).
 */
export type ErrorPages = Readonly<Record<string, ErrorPage>>;

/**
 * How an app's exchanges are handled beyond its policy. Every key is optional: absent
 * means the router-wide setting.
 */
export interface AppHandling {
  /** Largest request body in bytes (413 above it), instead of `limits.maxBodySize`. */
  readonly bodySize?: number;
  /** `false`: never compress this app's responses; `true`: compress even when router-wide compression is off. */
  readonly compression?: boolean;
  /** This app's pages; a status it has none for gets the router-wide page. */
  readonly errorPages?: ErrorPages;
}

/** Response compression, router-wide (the Deis `gzip.*` settings; brotli besides). */
export interface CompressionSettings {
  /** Compress the responses of every app that does not turn it off. */
  readonly enabled: boolean;
  /** Content codings offered, in the router's order of preference when a client accepts several equally. */
  readonly encodings: readonly ('br' | 'gzip')[];
  /** gzip level, 1–9. */
  readonly gzipLevel: number;
  /** brotli quality, 0–11. */
  readonly brotliLevel: number;
  /** Bodies shorter than this many bytes are sent as they are. */
  readonly minLength: number;
  /** Media types compressed (lower case, no parameters); `*` is every type not already compressed. */
  readonly types: readonly string[];
}

/** A named set of fully-qualified domains and versions. */
export interface AppSpec {
  readonly name: string;
  /** Lower-case FQDNs; a leading `*.` is a one-label wildcard. Bare names already expanded. */
  readonly domains: readonly string[];
  readonly versions: readonly VersionSpec[];
  readonly loadBalancing: LoadBalancing;
  readonly tls: AppTls;
  readonly policy: AppPolicy;
  /** Sticky versions and the version header; absent: by weight only. */
  readonly versionPick?: VersionPick;
  /** Body size, compression and error pages of this app; absent: the router-wide ones. */
  readonly handling?: AppHandling;
  /** Outlier detection and retries over the router-wide ones, and active health checks; absent: the router-wide ones, no checks. */
  readonly endpointHealth?: AppEndpointHealth;
  /** Which provider produced this app (`file`, `kubernetes`). */
  readonly source: string;
}

/** Router-wide timeouts, in milliseconds. */
export interface Timeouts {
  /** TCP connect to an endpoint. Exceeded: 504 (after trying other endpoints). */
  readonly connect: number;
  /** From request sent to upstream response headers. Exceeded: 504. */
  readonly upstreamHeaders: number;
  /** Longest pause between two upstream body chunks. Exceeded: 504, or the connection is cut if the response started. */
  readonly upstreamIdle: number;
  /** Client keep-alive idle time between requests. */
  readonly clientKeepAlive: number;
  /** Time allowed for a client to send the request headers. */
  readonly clientHeaders: number;
  /** Time allowed for a client to send the whole request, headers and body (Node's `requestTimeout`); 0: no limit. */
  readonly clientRequest: number;
  /**
   * Longest pause of a client while a request is in progress: between two reads of its
   * request body, and while a response waits for it to read (nginx's `client_body_timeout`
   * and `send_timeout`). Not applied to idle keep-alive connections nor upgraded tunnels.
   */
  readonly clientIdle: number;
  /**
   * An upgraded connection (WebSocket and others) with no byte either way for this long
   * is closed; an app's `readTimeout` replaces it for that app (nginx's
   * `proxy_read_timeout`, the Deis `tcpTimeout`). Absent: 1 hour.
   */
  readonly upgradeIdle?: number;
}

export interface Limits {
  /** Largest request body in bytes (413 above it). */
  readonly maxBodySize: number;
  /** Largest request header block in bytes (431 above it). */
  readonly maxHeaderSize: number;
  /** Most request header fields (431 above it). */
  readonly maxHeadersCount: number;
  /** Longest request target in bytes (414 above it). */
  readonly maxUrlLength: number;
  /** Open connections one client address may have on the HTTP and HTTPS listeners (more are closed at once); 0: no limit. */
  readonly maxConnectionsPerClient: number;
}

export interface ListenSpec {
  readonly http: string;
  readonly admin: string;
  /** The HTTPS listener; none when unset. */
  readonly https: string | undefined;
  /** The builder's TCP passthrough in Kubernetes mode (a `tcp:` route named `builder` replaces it). */
  readonly builder: string;
}

export type KeyType = 'ecdsa' | 'rsa';

export interface AcmeSettings {
  readonly directory: string;
  readonly email: string | undefined;
  readonly challenge: 'http-01' | 'tls-alpn-01';
  /** PEM file of CAs trusted for the directory's HTTPS (e.g. Pebble's); system CAs otherwise. */
  readonly caBundle: string | undefined;
  /** Renew once this fraction of the certificate's lifetime has passed (when the CA gives no renewal window). */
  readonly renewAt: number;
  /** Backoff between failed attempts, ms: starts at min, doubles (with jitter) up to max. */
  readonly retry: { readonly min: number; readonly max: number };
}

export interface TlsSettings {
  /** Directory for ACME accounts, issued certificates and locks (absolute). */
  readonly storage: string;
  readonly keyType: KeyType;
  /** Router-wide certificate files (each serves the names in its certificate). */
  readonly certificates: readonly CertificateFiles[];
  /** Served for unknown or missing SNI; a self-signed certificate when unset. */
  readonly platformCertificate: CertificateFiles | undefined;
  /** Offer HTTP/2 (ALPN `h2`) on the HTTPS listener; false: HTTP/1.1 only. Read at each handshake. */
  readonly http2: boolean;
  readonly acme: AcmeSettings | undefined;
}

/** A TCP passthrough (e.g. the Deis builder's git-over-SSH port): bytes both ways, no parsing. */
export interface TcpRoute {
  readonly name: string;
  readonly listen: string;
  readonly endpoints: readonly EndpointSpec[];
  /** ms */
  readonly connectTimeout: number;
  /** A connection with no byte either way for this long is closed, ms. */
  readonly idleTimeout: number;
  /** In Kubernetes mode, `namespace/name` of the Service whose ready endpoints replace `endpoints`. */
  readonly service: string | undefined;
  /** The Service port (name or number) to use; default: the first port of its EndpointSlices. */
  readonly servicePort: string | undefined;
  /** Send a PROXY protocol header of this version to the endpoint before the client's bytes; absent: none. */
  readonly sendProxyProtocol?: 1 | 2;
}

/**
 * The PROXY protocol (v1 and v2) per listener: a listener with it on requires a valid
 * header at the start of every connection (others are closed) and takes the address it
 * declares as the connection's peer. The Deis `useProxyProtocol: "true"` is
 * `{ http: true, https: true }`.
 */
export interface ProxyProtocolSettings {
  readonly http: boolean;
  readonly https: boolean;
  /** Every TCP passthrough route (the builder's included). */
  readonly tcp: boolean;
  /** A header not received whole within this many ms closes the connection. */
  readonly headerTimeout: number;
}

/**
 * Router-wide allow-list rules, the Deis router's: an app's effective list is, when
 * `enforce` is on or `defaultWhitelist` or the app's own list is non-empty,
 * `defaultWhitelist` (unless the app has a list and `mode` is `override`) plus the app's
 * list, and a client outside it gets 403; otherwise every client is let in. So with
 * `enforce` and an empty default list, an app without a list of its own admits nobody.
 */
export interface WhitelistSettings {
  readonly defaultWhitelist: readonly string[];
  /** `extend`: the app's list is added to the default one; `override`: an app's own list replaces it. */
  readonly mode: 'extend' | 'override';
  readonly enforce: boolean;
}

/** A TCP route's endpoints, and timeouts that override the route's own, from a provider. */
export interface TcpFeed {
  readonly endpoints: readonly EndpointSpec[];
  readonly connectTimeout?: number;
  readonly idleTimeout?: number;
}

/** Router-wide settings, owned by the file provider. */
export interface RouterSettings {
  readonly listen: ListenSpec;
  readonly platformDomain: string | undefined;
  readonly timeouts: Timeouts;
  readonly limits: Limits;
  readonly accessLog: boolean;
  readonly tls: TlsSettings;
  readonly tcp: readonly TcpRoute[];
  /** The graceful stop on SIGTERM/SIGINT (`shutdown`); read from the live snapshot when the stop begins. */
  readonly shutdown: ShutdownSettings;
  /**
   * Peers whose `X-Forwarded-For` is honoured (`address/prefix` entries; the Deis
   * `proxyRealIpCidrs`); absent or empty: none, the client is the peer. See
   * `src/data/client-address.ts` for the exact rules.
   */
  readonly trustedProxies?: readonly string[];
  /** Which listeners read a PROXY protocol header first; absent: none. */
  readonly proxyProtocol?: ProxyProtocolSettings;
  /** Router-wide allow-list rules (Deis `defaultWhitelist`, `whitelistMode`, `enforceWhitelists`); absent: none. */
  readonly whitelist?: WhitelistSettings;
  /** Settings the Kubernetes provider reads; absent: none. */
  readonly kubernetes?: KubernetesSettings;
  /** Where the key signing sticky-version cookies comes from; absent: as `{}` (a stored key). */
  readonly sticky?: StickySettings;
  /** Where the admin API's bearer token comes from; absent: no file, and the default Secret in Kubernetes mode. */
  readonly admin?: AdminSettings;
  /** Pages for the router's own answers (see {@link ErrorPages}); absent: the built-in pages. */
  readonly errorPages?: ErrorPages;
  /** Requests for a host no app serves go to this app instead of a 404 (the Deis default service). */
  readonly defaultApp?: string;
  /** Disclose no server software: upstream `Server` and `X-Powered-By` are dropped, pages carry no product name. */
  readonly disableServerTokens?: boolean;
  /** Request IDs the Deis way (`X-Request-Id` made by the router, `X-Correlation-Id` chained, both returned); absent: off. */
  readonly requestIDs?: boolean;
  /** Response compression; absent: none. */
  readonly compression?: CompressionSettings;
  /** Per-app request logs and the log shipper (`log.perApp`, `log.ship`); absent: the per-app defaults, no shipping. */
  readonly requestLogs?: RequestLogSettings;
  /** Passive outlier detection of every app's endpoints; absent: {@link DEFAULT_OUTLIER_DETECTION}. */
  readonly outlierDetection?: OutlierDetection;
  /** Retries on another endpoint and their budget; absent: {@link DEFAULT_RETRIES}. */
  readonly retries?: RetrySettings;
}

/**
 * Passive outlier detection, Envoy's: an endpoint that fails `consecutiveFailures` times
 * in a row (connect failure or timeout, reset or timeout before the response, 5xx) is
 * ejected — it gets no new requests — for `baseEjectionTime` × the times it was ejected,
 * at most `maxEjectionTime`. At most `maxEjectionPercent` % of a version's endpoints
 * (rounded down) are ejected at once, and never its last available one.
 */
export interface OutlierDetection {
  /** Failures in a row that eject an endpoint; 0: never eject. */
  readonly consecutiveFailures: number;
  /** ms. */
  readonly baseEjectionTime: number;
  /** ms, >= `baseEjectionTime`. */
  readonly maxEjectionTime: number;
  /** 0–100. */
  readonly maxEjectionPercent: number;
}

export const DEFAULT_OUTLIER_DETECTION: OutlierDetection = { consecutiveFailures: 5, baseEjectionTime: 30_000, maxEjectionTime: 300_000, maxEjectionPercent: 50 };

/**
 * An app's active health check: each endpoint is asked `GET path` every `interval`; a
 * 2xx or 3xx within `timeout` passes. `unhealthyThreshold` failures in a row mark it
 * unhealthy (it gets no new requests), `healthyThreshold` passes in a row healthy again.
 */
export interface HealthCheck {
  /** Starts with `/`; may carry a query. */
  readonly path: string;
  /** ms. */
  readonly interval: number;
  /** ms. */
  readonly timeout: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
}

/**
 * Retries of a request that never reached an upstream (or, idempotent and bodiless, was
 * reset before any response byte), on another endpoint. The budget keeps retries in any
 * ~10 s under `percent` % of the app's requests plus `minPerSecond` per second; `false`:
 * no budget.
 */
export interface RetrySettings {
  /** Endpoints tried at most for one request, the first included (1: no retries). */
  readonly attempts: number;
  readonly budget: RetryBudgetSettings | false;
}

export interface RetryBudgetSettings {
  readonly percent: number;
  readonly minPerSecond: number;
}

export const DEFAULT_RETRIES: RetrySettings = { attempts: 3, budget: { percent: 20, minPerSecond: 10 } };

/** An app's endpoint health settings: every key absent means the router-wide one (no health check). */
export interface AppEndpointHealth {
  readonly outlierDetection?: Partial<OutlierDetection>;
  readonly healthCheck?: HealthCheck;
  readonly retries?: { readonly attempts?: number; readonly budget?: Partial<RetryBudgetSettings> | false };
}

/**
 * The graceful stop (README "Stopping and draining"): on the signal readiness turns false
 * and the listeners keep accepting for `delay`; then they stop, and what is in flight
 * (requests, WebSocket tunnels, TCP passthrough sessions) has `drainTimeout` more to
 * finish before it is cut. Both in ms.
 */
export interface ShutdownSettings {
  readonly delay: number;
  readonly drainTimeout: number;
}

/** Where access-log entries go besides stdout. */
export interface RequestLogSettings {
  /**
   * The in-memory logs behind `GET /v1/apps/{app}/logs`: at most `entries` per app and
   * `maxBytes` bytes of entry text for all apps together, oldest dropped first; 0 in either: off.
   */
  readonly perApp: { readonly entries: number; readonly maxBytes: number };
  /** Batches posted to a log service; undefined: off. */
  readonly ship: LogShipSettings | undefined;
}

/** `log.ship`: access-log entries posted in JSON batches to a log service. */
export interface LogShipSettings {
  /** The log service's http(s) URL; each batch is POSTed there. */
  readonly url: string;
  /** Entries per POST, at most. */
  readonly batch: number;
  /** Longest wait before queued entries are sent, ms; also the first retry delay. */
  readonly interval: number;
  /** Entries queued at most; past it the oldest is dropped. */
  readonly maxQueue: number;
  /** Connecting, and waiting for the answer, each at most this long, ms. */
  readonly timeout: number;
  /** Extra request headers (e.g. Authorization); never shown by the admin API ({@link publicSettings}). */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * The admin API's bearer token (`admin.*`; README "Admin API"). The model holds where the
 * token is, never the token itself, so no snapshot, API answer or log line can carry it.
 */
export interface AdminSettings {
  /** A file holding the token (absolute; surrounding whitespace is not part of it). Wins over the Secret. */
  readonly tokenFile: string | undefined;
  /** Kubernetes mode without `tokenFile`: the Secret (key `token`) in the router namespace, created when absent. */
  readonly tokenSecret: string;
}

/**
 * The key that signs sticky-version cookies must be the same on every replica and across
 * restarts. At most one of the two is set; with neither, the router generates a key once
 * and keeps it in the certificate storage (`tls.storage`, or Secrets in Kubernetes mode)
 * under `sticky/key`, shared by every replica using that storage.
 */
export interface StickySettings {
  /** The key itself (the file's `sticky.secret`). Never shown by the admin API ({@link publicSettings}). */
  readonly secret: string | undefined;
  /** A file holding the key (absolute; a trailing newline is not part of it). */
  readonly secretFile: string | undefined;
}

/**
 * Which namespaces may claim which domains. A rule's domain `example.com` covers
 * `example.com` and every name below it; `*.example.com` only the names below it. A
 * claimed wildcard `*.a.example.com` is covered when `a.example.com` and all below are.
 */
export interface DomainRule {
  /** Namespace names; `*` is every namespace. */
  readonly namespaces: readonly string[];
  /** Lower-case domains or `*.` suffixes. */
  readonly domains: readonly string[];
}

export interface KubernetesSettings {
  /**
   * When set, a Service's domain is routed only if a rule names its namespace and covers
   * the domain; others are reported and not routed. Undefined: any namespace may claim
   * any domain (the Deis behaviour).
   */
  readonly domainPolicy: readonly DomainRule[] | undefined;
}

/** What one provider currently says. A provider always sends its whole state (level-triggered). */
export interface ProviderState {
  readonly apps: readonly AppSpec[];
  /** Only the settings-owning provider (file) sets this. */
  readonly settings?: RouterSettings;
  /**
   * Problems in the source that did not stop it from being translated (an invalid
   * annotation fell back to its default, a host lost to an older claim), for the admin API.
   */
  readonly problems?: readonly SourceProblem[];
  /** What a source says about TCP routes that name one of its objects (e.g. a Kubernetes Service), by route name. */
  readonly tcp?: Readonly<Record<string, TcpFeed>>;
  /** Certificates the source holds (Kubernetes Secrets), served by the certificate manager. */
  readonly certificates?: readonly CertificatePem[];
}

/** One problem in a provider's source, e.g. an invalid annotation on a Service. */
export interface SourceProblem {
  /** Where: `namespace/service` for Kubernetes. */
  readonly object: string;
  /** The annotation or key at fault. */
  readonly field: string;
  readonly message: string;
  /** A host the object claims that is not routed to it, and why (`fairway routes` lists these). */
  readonly unrouted?: { readonly host: string; readonly reason: UnroutedReason };
}

/** Why a claimed host is not routed: lost to an older claim, or outside the namespace's allowed domains. */
export type UnroutedReason = 'HostConflict' | 'DomainNotAllowed';

/** A configuration problem confined to one app: the app is disabled, the rest serve. */
export interface AppError {
  readonly app: string;
  readonly code: string;
  readonly message: string;
}

/** The whole desired state at one moment, with a generation that only grows. */
export interface Snapshot {
  readonly generation: number;
  readonly createdAt: string;
  readonly settings: RouterSettings;
  /** Apps that passed validation, sorted by name. */
  readonly apps: readonly AppSpec[];
  /** Apps that were disabled, with why. */
  readonly errors: readonly AppError[];
  /** In-memory certificates from every provider (see {@link CertificatePem}). */
  readonly certificates: readonly CertificatePem[];
}

export function endpointKey(e: EndpointSpec): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/**
 * `settings` as shown outside the process (admin API): a literal sticky secret is replaced
 * by `"(hidden)"`, and each error page's body by its size (`"(1234 bytes)"`); so are the
 * values of `log.ship.headers` (they may hold credentials), and `log.ship.url` is shown as
 * {@link publicUrl}.
 */
export function publicSettings(settings: RouterSettings): RouterSettings {
  let shown = settings;
  if (settings.sticky?.secret !== undefined) shown = { ...shown, sticky: { ...settings.sticky, secret: '(hidden)' } };
  if (settings.errorPages !== undefined) {
    const pages = Object.fromEntries(Object.entries(settings.errorPages).map(([k, p]) => [k, { ...p, body: `(${Buffer.byteLength(p.body)} bytes)` }]));
    shown = { ...shown, errorPages: pages };
  }
  const ship = settings.requestLogs?.ship;
  if (ship !== undefined && (Object.keys(ship.headers).length > 0 || publicUrl(ship.url) !== ship.url)) {
    const headers = Object.fromEntries(Object.keys(ship.headers).map((name) => [name, '(hidden)']));
    shown = { ...shown, requestLogs: { ...settings.requestLogs!, ship: { ...ship, url: publicUrl(ship.url), headers } } };
  }
  return shown;
}

/**
 * A URL as it may be logged or shown: its user name and password become `(hidden)`, and
 * each query parameter's value `hidden` (an API key is often passed that way).
 */
export function publicUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '(an invalid URL)';
  }
  if (u.username === '' && u.password === '' && u.search === '') return url;
  if (u.username !== '' || u.password !== '') {
    u.username = '(hidden)';
    u.password = '';
  }
  for (const key of new Set(u.searchParams.keys())) u.searchParams.set(key, 'hidden');
  return u.toString();
}
