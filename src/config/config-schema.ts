/**
 * @module
 * The schema of the YAML config file (`config/fairway.yaml`). Every message is written
 * to follow a key path, e.g. `apps.web.versions.v2.weight: must be a number >= 0`.
 * Defaults live here and nowhere else; README's config reference mirrors this file.
 */
import { z } from 'zod';
import { canonicalCidr } from './cidr.js';
import { parseHostPort } from './host-port.js';
import { parseDuration, parseSize } from './units.js';

const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const VERSION_NAME = /^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$/i;
const DOMAIN = /^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\.?$/i;

const duration = (fallback: string) =>
  z
    .union([z.string(), z.number()], { error: 'must be a duration like 500ms, 5s or 2m' })
    .default(fallback)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be a duration like 500ms, 5s or 2m', input: value });
        return z.NEVER;
      }
      return ms;
    });

/** A per-app override of a router-wide duration: absent means the router-wide value. */
const durationOverride = z
  .union([z.string(), z.number()], { error: 'must be a duration above 0, like 500ms, 5s or 2m' })
  .optional()
  .transform((value, ctx) => {
    if (value === undefined) return undefined;
    const ms = parseDuration(value);
    if (ms === undefined || ms === 0) {
      ctx.addIssue({ code: 'custom', message: 'must be a duration above 0, like 500ms, 5s or 2m', input: value });
      return z.NEVER;
    }
    return ms;
  });

const CIDR_MESSAGE = 'must be an IP address or CIDR, like 10.0.0.0/8 or 2001:db8::/32';

/** An allow-list entry, stored as canonical `address/prefix`. */
const cidr = z.string({ error: CIDR_MESSAGE }).transform((value, ctx) => {
  const canonical = canonicalCidr(value);
  if (canonical === undefined) {
    ctx.addIssue({ code: 'custom', message: CIDR_MESSAGE, input: value });
    return z.NEVER;
  }
  return canonical;
});

const size = (fallback: string) =>
  z
    .union([z.string(), z.number()], { error: 'must be a size like 512, 16kb or 10mb' })
    .default(fallback)
    .transform((value, ctx) => {
      const bytes = parseSize(value);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be a size like 512, 16kb or 10mb', input: value });
        return z.NEVER;
      }
      return bytes;
    });

const listenAddress = (fallback: string) =>
  z
    .string({ error: 'must be an address like 127.0.0.1:8080' })
    .default(fallback)
    .refine((v) => parseHostPort(v, true) !== undefined, { error: 'must be an address like 127.0.0.1:8080 or [::]:8080' });

const endpoint = z
  .string({ error: 'must be a string host:port' })
  .refine((v) => parseHostPort(v) !== undefined, { error: 'must be host:port with a port 1-65535, like 127.0.0.1:3001' });

const version = z.strictObject({
  weight: z
    .number({ error: 'must be a number >= 0' })
    .min(0, { error: 'must be a number >= 0' })
    .refine(Number.isFinite, { error: 'must be a number >= 0' }),
  endpoints: z.array(endpoint, { error: 'must be a list of host:port strings' }).default([]),
});

const fileRef = z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' });
const certificatePair = z.strictObject({ cert: fileRef, key: fileRef }, { error: 'must be { cert: FILE, key: FILE }' });
const certificateList = z.array(certificatePair, { error: 'must be a list of { cert: FILE, key: FILE }' }).default([]);

const hsts = z.strictObject(
  {
    maxAge: z.number({ error: 'must be a number of seconds >= 0' }).int({ error: 'must be a number of seconds >= 0' }).min(0, { error: 'must be a number of seconds >= 0' }).default(15552000),
    includeSubDomains: z.boolean({ error: 'must be true or false' }).default(false),
    preload: z.boolean({ error: 'must be true or false' }).default(false),
  },
  { error: 'must be { maxAge, includeSubDomains, preload } or false' },
);
const hstsSetting = z.union([z.literal(false), hsts], { error: 'must be { maxAge, includeSubDomains, preload } or false' });

/** Error page files by the extension that gives their content type. */
export const ERROR_PAGE_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.xhtml': 'application/xhtml+xml; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.xml': 'application/xml; charset=utf-8',
};
const PAGE_MESSAGE = `must be a file ending in ${Object.keys(ERROR_PAGE_TYPES).join(', ')}`;
const pageFile = z
  .string({ error: PAGE_MESSAGE })
  .refine((v) => Object.keys(ERROR_PAGE_TYPES).some((ext) => v.toLowerCase().endsWith(ext) && v.length > ext.length), { error: PAGE_MESSAGE });
/** The statuses the data plane answers with itself, and `maintenance` (an app in maintenance). */
export const ERROR_PAGE_KEYS = ['400', '403', '404', '413', '414', '431', '502', '503', '504', 'maintenance'] as const;
const errorPages = z
  .partialRecord(z.enum(ERROR_PAGE_KEYS), pageFile, {
    error: 'must be a map of status (404, 502, 503, 504, …) or maintenance to a page file',
  })
  .optional();

/** The Deis router's gzip types (nginx adds text/html to any list, so it is here too). */
export const DEFAULT_COMPRESSION_TYPES = [
  'text/html', 'application/atom+xml', 'application/javascript', 'application/json', 'application/rss+xml',
  'application/vnd.ms-fontobject', 'application/x-font-ttf', 'application/x-web-app-manifest+json', 'application/xhtml+xml',
  'application/xml', 'font/opentype', 'image/svg+xml', 'image/x-icon', 'text/css', 'text/plain', 'text/x-component',
];
const MEDIA_TYPE = /^([a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*|\*)$/;
const compression = z.strictObject({
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
  encodings: z
    .array(z.enum(['br', 'gzip'], { error: 'must be br or gzip' }), { error: 'must be a list of br and gzip' })
    .min(1, { error: 'must name br, gzip or both (or set enabled: false)' })
    .refine((list) => new Set(list).size === list.length, { error: 'must not name an encoding twice' })
    .default(['br', 'gzip']),
  gzipLevel: z.number({ error: 'must be an integer from 1 to 9' }).int({ error: 'must be an integer from 1 to 9' }).min(1, { error: 'must be an integer from 1 to 9' }).max(9, { error: 'must be an integer from 1 to 9' }).default(5),
  brotliLevel: z.number({ error: 'must be an integer from 0 to 11' }).int({ error: 'must be an integer from 0 to 11' }).min(0, { error: 'must be an integer from 0 to 11' }).max(11, { error: 'must be an integer from 0 to 11' }).default(4),
  minLength: size('256'),
  types: z
    .array(
      z.string({ error: 'must be a media type like application/json, or *' }).transform((v) => v.trim().toLowerCase()).refine((v) => MEDIA_TYPE.test(v), { error: 'must be a media type like application/json, or *' }),
      { error: 'must be a list of media types' },
    )
    .default(DEFAULT_COMPRESSION_TYPES),
});

const appTls = z.strictObject({
  certificates: certificateList,
  sslEnforce: z.boolean({ error: 'must be true or false' }).optional(),
  hsts: hstsSetting.optional(),
  acme: z.boolean({ error: 'must be true or false' }).default(true),
});

const acme = z.strictObject({
  directory: z.url({ error: 'must be the https:// URL of an ACME directory' }),
  email: z.email({ error: 'must be an e-mail address' }).optional(),
  challenge: z.enum(['http-01', 'tls-alpn-01'], { error: 'must be http-01 or tls-alpn-01' }).default('http-01'),
  caBundle: fileRef.optional(),
  renewAt: z
    .number({ error: 'must be a fraction of the lifetime between 0 and 1, like 0.667' })
    .gt(0, { error: 'must be a fraction of the lifetime between 0 and 1, like 0.667' })
    .lt(1, { error: 'must be a fraction of the lifetime between 0 and 1, like 0.667' })
    .default(2 / 3),
  retry: z.strictObject({ min: duration('1m'), max: duration('1h') }).prefault({}),
});

const tls = z.strictObject({
  storage: fileRef.default('fairway-data'),
  keyType: z.enum(['ecdsa', 'rsa'], { error: 'must be ecdsa or rsa' }).default('ecdsa'),
  certificates: certificateList,
  platformCertificate: certificatePair.optional(),
  sslEnforce: z.boolean({ error: 'must be true or false' }).default(false),
  hsts: hstsSetting.default(false),
  http2: z.boolean({ error: 'must be true or false' }).default(true),
  acme: acme.optional(),
});

const intAtLeast = (min: number) => z.number({ error: `must be an integer >= ${min}` }).int({ error: `must be an integer >= ${min}` }).min(min, { error: `must be an integer >= ${min}` });
const percent = z.number({ error: 'must be a percentage from 0 to 100' }).min(0, { error: 'must be a percentage from 0 to 100' }).max(100, { error: 'must be a percentage from 0 to 100' });
const positiveDuration = (fallback: string) => duration(fallback).refine((ms) => ms > 0, { error: 'must be a duration above 0, like 500ms or 30s' });
const EJECTION_ORDER = { error: 'must be >= baseEjectionTime', path: ['maxEjectionTime'] };

/** Passive outlier detection, router-wide (see README "Endpoint health"). */
const outlierDetection = z
  .strictObject(
    {
      consecutiveFailures: intAtLeast(0).default(5),
      baseEjectionTime: positiveDuration('30s'),
      maxEjectionTime: positiveDuration('5m'),
      maxEjectionPercent: percent.default(50),
    },
    { error: 'must be { consecutiveFailures, baseEjectionTime, maxEjectionTime, maxEjectionPercent }' },
  )
  .refine((o) => o.maxEjectionTime >= o.baseEjectionTime, EJECTION_ORDER);

/** An app's outlier detection: any key absent is the router-wide one. */
const appOutlierDetection = z
  .strictObject(
    {
      consecutiveFailures: intAtLeast(0).optional(),
      baseEjectionTime: durationOverride,
      maxEjectionTime: durationOverride,
      maxEjectionPercent: percent.optional(),
    },
    { error: 'must be { consecutiveFailures, baseEjectionTime, maxEjectionTime, maxEjectionPercent } (each optional)' },
  )
  .refine((o) => o.maxEjectionTime === undefined || o.baseEjectionTime === undefined || o.maxEjectionTime >= o.baseEjectionTime, EJECTION_ORDER);

const healthCheck = z.strictObject(
  {
    path: z.string({ error: 'must be a path starting with /, like /healthz' }).regex(/^\/\S*$/, { error: 'must be a path starting with /, like /healthz' }),
    interval: positiveDuration('10s'),
    timeout: positiveDuration('2s'),
    healthyThreshold: intAtLeast(1).default(2),
    unhealthyThreshold: intAtLeast(1).default(3),
  },
  { error: 'must be { path, interval, timeout, healthyThreshold, unhealthyThreshold } (path is required)' },
);

const RETRY_BUDGET_MESSAGE = 'must be { percent, minPerSecond } or false';
const minPerSecond = z.number({ error: 'must be a number >= 0' }).min(0, { error: 'must be a number >= 0' });
const attempts = z.number({ error: 'must be an integer from 1 to 10' }).int({ error: 'must be an integer from 1 to 10' }).min(1, { error: 'must be an integer from 1 to 10' }).max(10, { error: 'must be an integer from 1 to 10' });

/** Retries and their budget, router-wide. */
const retries = z.strictObject(
  {
    attempts: attempts.default(3),
    budget: z
      .union([z.literal(false), z.strictObject({ percent: percent.default(20), minPerSecond: minPerSecond.default(10) })], { error: RETRY_BUDGET_MESSAGE })
      .prefault({}),
  },
  { error: 'must be { attempts, budget }' },
);

/** An app's retries: any key absent is the router-wide one. */
const appRetries = z.strictObject(
  {
    attempts: attempts.optional(),
    budget: z.union([z.literal(false), z.strictObject({ percent: percent.optional(), minPerSecond: minPerSecond.optional() })], { error: RETRY_BUDGET_MESSAGE }).optional(),
  },
  { error: 'must be { attempts, budget } (each optional)' },
);

const app = z.strictObject({
  domains: z
    .array(
      z.string({ error: 'must be a domain name' }).regex(DOMAIN, {
        error: 'must be a domain name, a bare name (expanded with platformDomain) or *.domain',
      }),
      { error: 'must be a list of domain names' },
    )
    .default([]),
  loadBalancing: z
    .enum(['least-outstanding', 'round-robin'], { error: 'must be least-outstanding or round-robin' })
    .default('least-outstanding'),
  versions: z
    .record(z.string().regex(VERSION_NAME, { error: 'version names are letters, digits, -, . and _ (max 63)' }), version, {
      error: 'must be a map of version name to { weight, endpoints }',
    })
    .default({}),
  tls: appTls.prefault({}),
  allow: z.array(cidr, { error: 'must be a list of IP addresses or CIDRs' }).default([]),
  maintenance: z.boolean({ error: 'must be true or false' }).default(false),
  timeouts: z.strictObject({ connect: durationOverride, read: durationOverride }).prefault({}),
  sticky: z.boolean({ error: 'must be true or false' }).default(false),
  bodySize: z
    .union([z.string(), z.number()], { error: 'must be a size like 512, 16kb or 10mb' })
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return undefined;
      const bytes = parseSize(value);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be a size like 512, 16kb or 10mb', input: value });
        return z.NEVER;
      }
      return bytes;
    }),
  compression: z.boolean({ error: 'must be true or false' }).optional(),
  errorPages,
  outlierDetection: appOutlierDetection.optional(),
  healthCheck: healthCheck.optional(),
  retries: appRetries.optional(),
  versionHeader: z
    .union(
      [
        z.boolean(),
        z.strictObject({
          allowFrom: z
            .array(z.string({ error: CIDR_MESSAGE }), { error: 'must be a list of IP addresses or CIDRs' })
            .min(1, { error: 'must list at least one IP address or CIDR (or use versionHeader: true)' }),
        }),
      ],
      { error: 'must be true, false or { allowFrom: [CIDR…] }' },
    )
    .default(false)
    // Entries are checked after the union, so a bad one is reported as itself.
    .transform((value, ctx) => {
      if (typeof value === 'boolean') return value;
      const allowFrom: string[] = [];
      value.allowFrom.forEach((entry, i) => {
        const canonical = canonicalCidr(entry);
        if (canonical === undefined) ctx.addIssue({ code: 'custom', message: CIDR_MESSAGE, input: entry, path: ['allowFrom', i] });
        else allowFrom.push(canonical);
      });
      return { allowFrom };
    }),
});

const domainRule = z.strictObject(
  {
    namespaces: z
      .array(z.string({ error: 'must be a namespace name or *' }).regex(/^(\*|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$/, { error: 'must be a namespace name or *' }), {
        error: 'must be a list of namespace names',
      })
      .min(1, { error: 'must name at least one namespace (or *)' }),
    domains: z
      .array(z.string({ error: 'must be a domain name or *.domain' }).regex(DOMAIN, { error: 'must be a domain name or *.domain' }), {
        error: 'must be a list of domain names',
      })
      .min(1, { error: 'must name at least one domain' }),
  },
  { error: 'must be { namespaces: [NAMESPACE…], domains: [DOMAIN…] }' },
);

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      http: listenAddress('127.0.0.1:8080'),
      admin: listenAddress('127.0.0.1:9090'),
      /** The Deis builder's git-over-SSH passthrough, opened in Kubernetes mode only. */
      builder: listenAddress('0.0.0.0:2222'),
      https: z
        .string({ error: 'must be an address like 127.0.0.1:8443' })
        .refine((v) => parseHostPort(v, true) !== undefined, { error: 'must be an address like 127.0.0.1:8443 or [::]:443' })
        .optional(),
    })
    .prefault({}),
  platformDomain: z
    .string({ error: 'must be a domain name' })
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i, { error: 'must be a domain name' })
    .optional(),
  stateFile: z.string({ error: 'must be a file path' }).min(1, { error: 'must be a file path' }).optional(),
  timeouts: z
    .strictObject({
      connect: duration('5s'),
      upstreamHeaders: duration('60s'),
      upstreamIdle: duration('60s'),
      clientKeepAlive: duration('75s'),
      clientHeaders: duration('60s'),
      /** The whole request, head and body, must arrive within this (Node's requestTimeout); 0: no limit. */
      clientRequest: duration('5m'),
      /** A request body that pauses, or a response the client stops reading, for this long is cut (nginx's client_body_timeout / send_timeout). */
      clientIdle: duration('60s').refine((ms) => ms > 0, { error: 'must be a duration above 0, like 30s or 2m' }),
      upgradeIdle: duration('1h'),
    })
    // Node checks both against the time the request started: a headers timeout above the request timeout would never apply.
    .refine((t) => t.clientRequest === 0 || t.clientHeaders <= t.clientRequest, { error: 'must not exceed timeouts.clientRequest', path: ['clientHeaders'] })
    .prefault({}),
  limits: z
    .strictObject({
      maxBodySize: size('100mb'),
      maxHeaderSize: size('16kb'),
      maxHeadersCount: z.number({ error: 'must be an integer >= 1' }).int({ error: 'must be an integer >= 1' }).min(1, { error: 'must be an integer >= 1' }).default(100),
      /** Longest request target (path and query) in bytes: 414 above it. */
      maxUrlLength: size('8kb').refine((n) => n >= 16, { error: 'must be a size of at least 16 bytes, like 8kb' }),
      /** Open connections from one client address on the HTTP and HTTPS listeners; 0: no limit. */
      maxConnectionsPerClient: z.number({ error: 'must be an integer >= 0 (0: no limit)' }).int({ error: 'must be an integer >= 0 (0: no limit)' }).min(0, { error: 'must be an integer >= 0 (0: no limit)' }).default(0),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], {
        error: 'must be one of trace, debug, info, warn, error, fatal, silent',
      }).default('info'),
      access: z.boolean({ error: 'must be true or false' }).default(true),
      perApp: z
        .strictObject(
          {
            entries: z.number({ error: 'must be an integer >= 0' }).int({ error: 'must be an integer >= 0' }).min(0, { error: 'must be an integer >= 0' }).default(1000),
            maxBytes: size('8mb'),
          },
          { error: 'must be { entries, maxBytes }' },
        )
        .prefault({}),
      ship: z
        .strictObject(
          {
            url: z.url({ protocol: /^https?$/, error: 'must be the http:// or https:// URL of a log service' }),
            batch: z.number({ error: 'must be an integer from 1 to 10000' }).int({ error: 'must be an integer from 1 to 10000' }).min(1, { error: 'must be an integer from 1 to 10000' }).max(10000, { error: 'must be an integer from 1 to 10000' }).default(100),
            interval: duration('1s').refine((ms) => ms > 0, { error: 'must be a duration above 0, like 500ms or 1s' }),
            maxQueue: z.number({ error: 'must be an integer >= 1' }).int({ error: 'must be an integer >= 1' }).min(1, { error: 'must be an integer >= 1' }).default(10000),
            timeout: duration('10s').refine((ms) => ms > 0, { error: 'must be a duration above 0, like 500ms or 10s' }),
            headers: z.record(z.string(), z.string({ error: 'must be a string' }), { error: 'must be a map of header name to value' }).default({}),
          },
          { error: 'must be { url, batch, interval, maxQueue, timeout, headers }' },
        )
        .optional(),
    })
    .prefault({}),
  tls: tls.prefault({}),
  tcp: z
    .record(
      z.string().regex(NAME, { error: 'TCP route names are lower-case letters, digits and - (max 63)' }),
      z.strictObject({
        listen: z.string({ error: 'must be an address like 0.0.0.0:2222' }).refine((v) => parseHostPort(v, true) !== undefined, { error: 'must be an address like 0.0.0.0:2222' }),
        endpoints: z.array(endpoint, { error: 'must be a list of host:port strings' }).default([]),
        connectTimeout: duration('10s'),
        idleTimeout: duration('20m'),
        service: z
          .string({ error: 'must be namespace/name of a Kubernetes Service' })
          .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { error: 'must be namespace/name of a Kubernetes Service' })
          .optional(),
        servicePort: z.union([z.string(), z.number()], { error: 'must be a port name or number' }).optional(),
        sendProxyProtocol: z
          .enum(['v1', 'v2'], { error: 'must be v1 or v2' })
          .optional()
          .transform((v) => (v === undefined ? undefined : v === 'v1' ? 1 : 2)),
      }),
      { error: 'must be a map of route name to { listen, endpoints, connectTimeout, idleTimeout }' },
    )
    .default({}),
  /** Peers whose X-Forwarded-For is honoured (the Deis `proxyRealIpCidrs`). */
  trustedProxies: z.array(cidr, { error: 'must be a list of IP addresses or CIDRs' }).default([]),
  proxyProtocol: z
    .strictObject(
      {
        http: z.boolean({ error: 'must be true or false' }).default(false),
        https: z.boolean({ error: 'must be true or false' }).default(false),
        tcp: z.boolean({ error: 'must be true or false' }).default(false),
        headerTimeout: duration('5s').refine((ms) => ms > 0, { error: 'must be a duration above 0, like 500ms or 5s' }),
      },
      { error: 'must be { http, https, tcp, headerTimeout } (the Deis useProxyProtocol: "true" is { http: true, https: true })' },
    )
    .prefault({}),
  /** The Deis router's router-wide allow-list rules. */
  defaultWhitelist: z.array(cidr, { error: 'must be a list of IP addresses or CIDRs' }).default([]),
  whitelistMode: z.enum(['extend', 'override'], { error: 'must be extend or override' }).default('extend'),
  enforceWhitelists: z.boolean({ error: 'must be true or false' }).default(false),
  sticky: z
    .strictObject({
      secret: z.string({ error: 'must be a string of at least 16 characters' }).min(16, { error: 'must be a string of at least 16 characters' }).optional(),
      secretFile: fileRef.optional(),
    })
    .refine((s) => s.secret === undefined || s.secretFile === undefined, { error: 'set secret or secretFile, not both' })
    .prefault({}),
  /** Who may call the admin API from other addresses than loopback (README "Admin API"). */
  admin: z
    .strictObject(
      {
        tokenFile: fileRef.optional(),
        tokenSecret: z
          .string({ error: 'must be the name of a Secret in the router namespace' })
          .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, { error: 'must be the name of a Secret in the router namespace' })
          .default('fairway-admin-token'),
      },
      { error: 'must be { tokenFile, tokenSecret }' },
    )
    .prefault({}),
  errorPages,
  defaultService: z
    .strictObject(
      { app: z.string({ error: 'must be an app name' }).regex(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/, { error: 'must be an app name' }) },
      { error: 'must be { app: NAME }' },
    )
    .optional(),
  disableServerTokens: z.boolean({ error: 'must be true or false' }).default(false),
  requestIDs: z.boolean({ error: 'must be true or false' }).default(false),
  compression: compression.prefault({}),
  outlierDetection: outlierDetection.prefault({}),
  retries: retries.prefault({}),
  /** The graceful stop on SIGTERM/SIGINT (README "Stopping and draining"). */
  shutdown: z
    .strictObject(
      {
        /** After the signal, listeners keep accepting this long (readiness is already false). */
        delay: duration('0s'),
        /** After the listeners stop, what is in flight gets this long; then it is cut. */
        drainTimeout: duration('30s'),
      },
      { error: 'must be { delay, drainTimeout }' },
    )
    .prefault({}),
  kubernetes: z
    .strictObject({
      domainPolicy: z.array(domainRule, { error: 'must be a list of { namespaces, domains }' }).optional(),
    })
    .prefault({}),
  apps: z
    .record(z.string().regex(NAME, { error: 'app names are lower-case letters, digits and - (max 63)' }), app, {
      error: 'must be a map of app name to app',
    })
    .default({}),
});

/** The file as validated, with defaults applied and units converted. */
export type ConfigFile = z.output<typeof configSchema>;
