/**
 * @module
 * The Deis router contract, as a pure function from the Kubernetes objects Fairway
 * watches to the model: routable Services (label `router.deis.io/routable: "true"`) and
 * their EndpointSlices become apps, versions and endpoints. No I/O and no client library
 * here, so every rule is tested directly.
 *
 * Rules (README "Kubernetes" documents them for users):
 * - App: `router.deis.io/app` (annotation or label), else the `app` label, else the
 *   Service name; grouped per namespace. An app name used in several namespaces becomes
 *   `<namespace>.<app>` in all of them.
 * - Version: one per Service, named by `router.deis.io/version` (default: the Service
 *   name), weighted by `router.deis.io/weight` (default 100).
 * - Domains: `router.deis.io/domains`, comma-separated, unioned across versions; a name
 *   without a dot is `<name>.<platformDomain>`.
 * - Port: the Service port 80, or the one named or numbered by `router.deis.io/port`.
 *   Endpoints: ready addresses of the EndpointSlices of the Service for that port
 *   (terminating or not-ready ones get no new requests). ExternalName Services are
 *   versions whose endpoint is the external DNS name.
 * - `router.deis.io/ssl.enforce: "true"` redirects to HTTPS.
 * - Policy (the app's, merged over its versions' Services):
 *   `router.deis.io/whitelist` (comma-separated IPs/CIDRs; IPv6 too, which Deis did not
 *   accept) — the union of the versions' lists, so a version without one opens nothing;
 *   `router.deis.io/maintenance` (`true`/`false`, any case) — on if any version says so;
 *   `router.deis.io/connectTimeout` and `router.deis.io/tcpTimeout` (nginx times: `500ms`,
 *   `30s`, `5m`, `1h`, `1d`, `1w`, `1M`, `1y`, a bare number is seconds) — the longest any
 *   version sets, else the router-wide timeouts. `tcpTimeout` is nginx's
 *   `proxy_read_timeout`: the app's read timeout (headers wait and body idle).
 * - Version pick (the app's, merged over its versions' Services):
 *   `router.deis.io/sticky` (`true`/`false`, any case) — sticky if any version says so;
 *   `router.deis.io/versionHeader` (`true`/`false`) — `X-Fairway-Version` accepted if any
 *   version says so; `router.deis.io/versionHeaderAllowFrom` (comma-separated IPs/CIDRs)
 *   narrows it to those clients. Merged: the union of the lists of the Services that turn
 *   the header on; a Service that turns it on without a list does not widen another's list
 *   (as for the whitelist). `versionHeaderAllowFrom` without `versionHeader: "true"` on the
 *   same Service is reported and ignored; a list without one valid entry turns that
 *   Service's header off (reported) rather than opening it to every client.
 * - Handling (Fairway additions, merged over the app's versions):
 *   `router.deis.io/bodySize` (nginx size: bytes, or with `k`/`m`/`g`; `0` is no limit,
 *   as nginx's `client_max_body_size 0`) — the largest any version sets, else the
 *   router-wide `limits.maxBodySize`; `router.deis.io/compression` (`true`/`false`) —
 *   off if any version says `false`, else on if any says `true`, else the router-wide
 *   `compression.enabled`.
 * - Domain policy (`TranslateInput.domainPolicy`, when set): a Service's domain is kept
 *   only if a rule names its namespace (or `*`) and covers the domain; otherwise it is
 *   reported and not routed, before host conflicts are decided (a refused claim takes no
 *   host from anyone).
 * - A host claimed by two apps goes to the app whose oldest Service is oldest (creation
 *   timestamp, then namespace/name): the same answer on every replica. The other app
 *   loses that host and the conflict is reported.
 * - A value that fails validation is reported on its Service and the default is used
 *   (for the whitelist: each invalid entry is dropped, the valid ones kept).
 */
import { canonicalCidr } from '../../config/cidr.js';
import type { AppHandling, AppPolicy, AppSpec, DomainRule, EndpointSpec, UnroutedReason, VersionPick, VersionSpec } from '../../model.js';
import { parseNginxTime } from './nginx-time.js';

export const ROUTABLE_LABEL = 'router.deis.io/routable';
export const A = {
  app: 'router.deis.io/app',
  version: 'router.deis.io/version',
  weight: 'router.deis.io/weight',
  domains: 'router.deis.io/domains',
  port: 'router.deis.io/port',
  sslEnforce: 'router.deis.io/ssl.enforce',
  whitelist: 'router.deis.io/whitelist',
  maintenance: 'router.deis.io/maintenance',
  connectTimeout: 'router.deis.io/connectTimeout',
  tcpTimeout: 'router.deis.io/tcpTimeout',
  sticky: 'router.deis.io/sticky',
  versionHeader: 'router.deis.io/versionHeader',
  versionHeaderAllowFrom: 'router.deis.io/versionHeaderAllowFrom',
  bodySize: 'router.deis.io/bodySize',
  compression: 'router.deis.io/compression',
} as const;

/** The parts of a Service the translator reads (structurally compatible with the client's V1Service). */
export interface KService {
  metadata?: { name?: string; namespace?: string; uid?: string; creationTimestamp?: string | Date; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { type?: string; externalName?: string; ports?: { name?: string; port: number; protocol?: string }[] };
}

/** The parts of an EndpointSlice the translator reads. */
export interface KEndpointSlice {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null } }[];
  ports?: { name?: string | null; port?: number | null; protocol?: string | null }[] | null;
}

/** A problem with one Service's configuration (it falls back to the default). */
export interface ServiceProblem {
  readonly namespace: string;
  readonly service: string;
  readonly field: string;
  readonly message: string;
  /** The object at fault when it is not a Service (the platform certificate Secret). */
  readonly kind?: 'Secret';
  /** A host this Service claims that is not routed to it, and why. */
  readonly unrouted?: { readonly host: string; readonly reason: UnroutedReason };
}

export interface TranslateInput {
  readonly services: readonly KService[];
  readonly slices: readonly KEndpointSlice[];
  readonly platformDomain: string | undefined;
  /** Which namespaces may claim which domains (`settings.kubernetes.domainPolicy`); undefined: any. */
  readonly domainPolicy?: readonly DomainRule[] | undefined;
  /** The previous translations' memory (see {@link TranslateCache}); none: everything is read afresh. */
  readonly cache?: TranslateCache;
}

export interface Translation {
  readonly apps: AppSpec[];
  readonly problems: ServiceProblem[];
  /** app → version → the Service that defines it (to write weights back). */
  readonly owners: Map<string, Map<string, { namespace: string; name: string }>>;
}

const DOMAIN = /^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

interface Version {
  service: KService;
  namespace: string;
  serviceName: string;
  created: number;
  spec: VersionSpec;
  domains: string[];
  sslEnforce: boolean;
  policy: AppPolicy;
  pick: VersionPick;
  handling: AppHandling;
}

export function translate(input: TranslateInput): Translation {
  const cache = input.cache;
  const problems: ServiceProblem[] = [];
  const slicesByService = new Map<string, KEndpointSlice[]>();
  for (const slice of input.slices) {
    const svc = slice.metadata?.labels?.['kubernetes.io/service-name'];
    if (!svc) continue;
    const key = `${slice.metadata?.namespace}/${svc}`;
    const list = slicesByService.get(key);
    if (list) list.push(slice);
    else slicesByService.set(key, [slice]);
  }

  // Group routable Services into apps per namespace.
  const groups = new Map<string, { namespace: string; app: string; versions: Version[] }>();
  for (const service of input.services) {
    const parsed = parseService(service, slicesByService, input, cache);
    if (!parsed) continue;
    problems.push(...parsed.problems);
    const { namespace, app, version } = parsed;
    const key = `${namespace}\u0000${app}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { namespace, app, versions: [] }));
    if (group.versions.some((v) => v.spec.name === version.spec.name)) {
      problems.push({ namespace, service: version.serviceName, field: A.version, message: `version "${version.spec.name}" of app "${app}" is already defined by another Service; this Service is ignored` });
      continue;
    }
    group.versions.push(version);
  }

  // App names: the app's own name unless several namespaces use it.
  const namespacesByApp = new Map<string, Set<string>>();
  for (const g of groups.values()) {
    const set = namespacesByApp.get(g.app) ?? new Set<string>();
    set.add(g.namespace);
    namespacesByApp.set(g.app, set);
  }

  // Oldest first, so the oldest claim on a host wins on every replica.
  const ordered = [...groups.values()]
    .map((g) => ({
      ...g,
      name: namespacesByApp.get(g.app)!.size > 1 ? `${g.namespace}.${g.app}` : g.app,
      oldest: Math.min(...g.versions.map((v) => v.created)),
      versions: g.versions.sort((a, b) => (a.spec.name < b.spec.name ? -1 : a.spec.name > b.spec.name ? 1 : 0)),
    }))
    .sort((a, b) => a.oldest - b.oldest || (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0) || (a.app < b.app ? -1 : 1));

  const owner = new Map<string, string>();
  const apps: AppSpec[] = [];
  const owners: Translation['owners'] = new Map();
  for (const g of ordered) {
    owners.set(g.name, new Map(g.versions.map((v) => [v.spec.name, { namespace: v.namespace, name: v.serviceName }])));
    const domains: string[] = [];
    for (const v of g.versions) {
      for (const d of v.domains) {
        if (domains.includes(d)) continue;
        const taken = owner.get(d);
        if (taken !== undefined && taken !== g.name) {
          problems.push({
            namespace: v.namespace,
            service: v.serviceName,
            field: A.domains,
            message: `host "${d}" is already served by app "${taken}" (older Service); not routed to app "${g.name}"`,
            unrouted: { host: d, reason: 'HostConflict' },
          });
          continue;
        }
        owner.set(d, g.name);
        domains.push(d);
      }
    }
    // Unchanged parts (the very same version specs, the same domains): the previous AppSpec.
    const previous = cache?.apps.get(g.name);
    const parts = previous && appParts.get(previous);
    if (previous && parts && sameItems(parts, g.versions) && sameItems(previous.domains, domains)) {
      apps.push(previous);
      continue;
    }
    const spec: AppSpec = {
      name: g.name,
      domains,
      versions: g.versions.map((v) => v.spec),
      loadBalancing: 'least-outstanding',
      tls: { sslEnforce: g.versions.some((v) => v.sslEnforce), hsts: undefined, acme: true, certificates: [] },
      policy: mergePolicies(g.versions.map((v) => v.policy)),
      versionPick: mergeVersionPicks(g.versions.map((v) => v.pick)),
      ...mergeHandling(g.versions.map((v) => v.handling)),
      source: 'kubernetes',
    };
    appParts.set(spec, g.versions);
    apps.push(spec);
  }
  apps.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (cache) cache.apps = new Map(apps.map((a) => [a.name, a]));
  return { apps, problems, owners };
}

interface ParsedService {
  readonly namespace: string;
  readonly app: string;
  readonly version: Version;
  /** Problems of this Service alone (validation), reported on every translation while they last. */
  readonly problems: readonly ServiceProblem[];
}

/**
 * Memory of the last translation, so a change to one Service among 10,000 re-reads only
 * that Service: the informers replace an object when it changes, so an entry is reused
 * while its Service, its EndpointSlices and the router settings it depends on are the
 * very same objects; and an app whose parts are all unchanged is the same AppSpec object
 * as before (the control plane and route table then skip it cheaply). Owned by one
 * provider; pass the same instance to every {@link translate} call.
 */
export class TranslateCache {
  readonly services = new WeakMap<KService, { slices: readonly KEndpointSlice[]; platformDomain: string | undefined; domainPolicy: TranslateInput['domainPolicy']; parsed: ParsedService | undefined }>();
  apps = new Map<string, AppSpec>();
}

/** One Service's own contribution: app, version and domains (no cross-Service rules). */
function parseService(service: KService, slicesByService: ReadonlyMap<string, KEndpointSlice[]>, input: TranslateInput, cache: TranslateCache | undefined): ParsedService | undefined {
  const meta = service.metadata ?? {};
  if (meta.labels?.[ROUTABLE_LABEL] !== 'true' || !meta.name) return undefined;
  const slices = slicesByService.get(`${meta.namespace ?? 'default'}/${meta.name}`) ?? NO_SLICES;
  const hit = cache?.services.get(service);
  if (hit && hit.platformDomain === input.platformDomain && hit.domainPolicy === input.domainPolicy && sameItems(hit.slices, slices)) return hit.parsed;
  const problems: ServiceProblem[] = [];
  const namespace = meta.namespace ?? 'default';
  const report = (field: string, message: string, unrouted?: ServiceProblem['unrouted']) => problems.push({ namespace, service: meta.name!, field, message, ...(unrouted ? { unrouted } : {}) });
  const ann = meta.annotations ?? {};
  let app = ann[A.app] ?? meta.labels?.[A.app] ?? meta.labels?.app ?? meta.name;
  if (!NAME.test(app)) {
    report(A.app, `"${app}" is not a valid app name (lower-case letters, digits, - and .); using the Service name`);
    app = meta.name;
  }
  let versionName = ann[A.version] ?? meta.labels?.[A.version] ?? meta.name;
  if (!/^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$/i.test(versionName)) {
    report(A.version, `"${versionName}" is not a valid version name; using the Service name`);
    versionName = meta.name;
  }
  let weight = 100;
  if (ann[A.weight] !== undefined) {
    const w = Number(ann[A.weight]);
    if (ann[A.weight]!.trim() === '' || !Number.isFinite(w) || w < 0) report(A.weight, `"${ann[A.weight]}" must be a number >= 0; using 100`);
    else weight = w;
  }
  const domains: string[] = [];
  for (const raw of (ann[A.domains] ?? '').split(',').map((d) => d.trim().toLowerCase()).filter(Boolean)) {
    let d = raw.replace(/\.$/, '');
    if (!d.includes('.')) {
      if (!input.platformDomain) {
        report(A.domains, `"${raw}" needs the router's platformDomain to be set; ignored`);
        continue;
      }
      d = `${d}.${input.platformDomain}`;
    }
    if (!DOMAIN.test(d)) report(A.domains, `"${raw}" is not a domain name; ignored`);
    else if (input.domainPolicy && !domainAllowed(input.domainPolicy, namespace, d)) {
      report(A.domains, `namespace "${namespace}" may not route "${d}" (kubernetes.domainPolicy); not routed`, { host: d, reason: 'DomainNotAllowed' });
    } else if (!domains.includes(d)) domains.push(d);
  }
  const sslEnforce = parseBoolean(ann[A.sslEnforce], A.sslEnforce, report);
  const policy = policyOf(ann, report);
  const pick = versionPickOf(ann, report);
  const handling = handlingOf(ann, report);

  const endpoints = endpointsOf(service, slices, report);
  const parsed: ParsedService = {
    namespace,
    app,
    problems,
    version: {
      service,
      namespace,
      serviceName: meta.name,
      created: meta.creationTimestamp ? new Date(meta.creationTimestamp).getTime() : 0,
      spec: { name: versionName, weight, endpoints },
      domains,
      sslEnforce,
      policy,
      pick,
      handling,
    },
  };
  cache?.services.set(service, { slices, platformDomain: input.platformDomain, domainPolicy: input.domainPolicy, parsed });
  return parsed;
}

const NO_SLICES: readonly KEndpointSlice[] = [];

/** The parsed versions an AppSpec was made of (to know it can be reused). */
const appParts = new WeakMap<AppSpec, readonly Version[]>();

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `"true"`/`"false"` in any case (as the Deis router's `(?i)^(true|false)$`); anything else is reported and false. */
function parseBoolean(raw: string | undefined, field: string, report: (field: string, message: string) => void): boolean {
  if (raw === undefined) return false;
  const v = raw.trim().toLowerCase();
  if (v === 'true') return true;
  if (v !== 'false') report(field, `"${raw}" must be "true" or "false"; using false`);
  return false;
}

/** One Service's policy annotations; invalid values are reported and fall back to the defaults. */
function policyOf(ann: Record<string, string>, report: (field: string, message: string) => void): AppPolicy {
  const allow: string[] = [];
  for (const entry of (ann[A.whitelist] ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const cidr = canonicalCidr(entry);
    if (cidr === undefined) report(A.whitelist, `"${entry}" is not an IP address or CIDR; ignored`);
    else if (!allow.includes(cidr)) allow.push(cidr);
  }
  const time = (field: string, fallback: string): number | undefined => {
    const raw = ann[field];
    if (raw === undefined) return undefined;
    const parsed = parseNginxTime(raw);
    // Absurdly many digits overflow to Infinity, which a snapshot cannot carry as JSON.
    const ms = parsed !== undefined && Number.isSafeInteger(parsed) ? parsed : undefined;
    if (ms === undefined) report(field, `"${raw}" must be an nginx time like 30s, 5m or 1h (a bare number is seconds); using ${fallback}`);
    return ms;
  };
  return {
    allow,
    maintenance: parseBoolean(ann[A.maintenance], A.maintenance, report),
    connectTimeout: time(A.connectTimeout, 'the router-wide timeouts.connect'),
    readTimeout: time(A.tcpTimeout, 'the router-wide timeouts.upstreamHeaders and upstreamIdle'),
  };
}

/** An app's policy from its versions': allow lists unioned, maintenance if any, the longest timeouts set. */
function mergePolicies(policies: readonly AppPolicy[]): AppPolicy {
  const allow: string[] = [];
  for (const p of policies) for (const a of p.allow) if (!allow.includes(a)) allow.push(a);
  const longest = (values: (number | undefined)[]) => {
    const set = values.filter((v): v is number => v !== undefined);
    return set.length > 0 ? Math.max(...set) : undefined;
  };
  return {
    allow,
    maintenance: policies.some((p) => p.maintenance),
    connectTimeout: longest(policies.map((p) => p.connectTimeout)),
    readTimeout: longest(policies.map((p) => p.readTimeout)),
  };
}

const NGINX_SIZE = /^(\d+)([kmg]?)$/i;
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** One Service's body size and compression annotations; invalid values are reported and fall back to the router-wide settings. */
function handlingOf(ann: Record<string, string>, report: (field: string, message: string) => void): AppHandling {
  const handling: { -readonly [K in keyof AppHandling]: AppHandling[K] } = {};
  const rawSize = ann[A.bodySize];
  if (rawSize !== undefined) {
    const m = NGINX_SIZE.exec(rawSize.trim());
    const bytes = m ? Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]! : NaN;
    if (!Number.isSafeInteger(bytes)) report(A.bodySize, `"${rawSize}" must be an nginx size like 512k, 10m or 1g (a bare number is bytes, 0 is no limit); using the router-wide limits.maxBodySize`);
    else handling.bodySize = bytes === 0 ? Number.MAX_SAFE_INTEGER : bytes;
  }
  const rawCompression = ann[A.compression];
  if (rawCompression !== undefined) {
    const v = rawCompression.trim().toLowerCase();
    if (v === 'true' || v === 'false') handling.compression = v === 'true';
    else report(A.compression, `"${rawCompression}" must be "true" or "false"; using the router-wide compression.enabled`);
  }
  return handling;
}

/**
 * An app's handling from its versions': the largest body size set; compression off if any
 * version turns it off, else on if any turns it on. `{}` when no version sets anything
 * (the AppSpec then has no `handling`).
 */
function mergeHandling(all: readonly AppHandling[]): { handling?: AppHandling } {
  const sizes = all.flatMap((h) => (h.bodySize === undefined ? [] : [h.bodySize]));
  const switches = all.flatMap((h) => (h.compression === undefined ? [] : [h.compression]));
  if (sizes.length === 0 && switches.length === 0) return {};
  const handling: { -readonly [K in keyof AppHandling]: AppHandling[K] } = {};
  if (sizes.length > 0) handling.bodySize = Math.max(...sizes);
  if (switches.length > 0) handling.compression = !switches.includes(false);
  return { handling };
}

/** One Service's sticky and version-header annotations; invalid values are reported and fall back to off. */
function versionPickOf(ann: Record<string, string>, report: (field: string, message: string) => void): VersionPick {
  const sticky = parseBoolean(ann[A.sticky], A.sticky, report);
  const on = parseBoolean(ann[A.versionHeader], A.versionHeader, report);
  const rawList = ann[A.versionHeaderAllowFrom];
  if (rawList === undefined) return { sticky, header: on ? { allowFrom: [] } : undefined };
  if (!on) {
    report(A.versionHeaderAllowFrom, `has no effect without ${A.versionHeader}: "true"; ignored`);
    return { sticky, header: undefined };
  }
  const allowFrom: string[] = [];
  const entries = rawList.split(',').map((e) => e.trim()).filter(Boolean);
  for (const entry of entries) {
    const cidr = canonicalCidr(entry);
    if (cidr === undefined) report(A.versionHeaderAllowFrom, `"${entry}" is not an IP address or CIDR; ignored`);
    else if (!allowFrom.includes(cidr)) allowFrom.push(cidr);
  }
  if (allowFrom.length === 0) {
    report(A.versionHeaderAllowFrom, `"${rawList}" has no valid IP address or CIDR; the version header stays off for this Service`);
    return { sticky, header: undefined };
  }
  return { sticky, header: { allowFrom } };
}

/**
 * An app's version pick from its versions': sticky if any; the header on if any turns it
 * on, from the union of the lists given (every client only when none gives one).
 */
function mergeVersionPicks(picks: readonly VersionPick[]): VersionPick {
  const on = picks.flatMap((p) => (p.header ? [p.header] : []));
  const allowFrom: string[] = [];
  for (const h of on) for (const a of h.allowFrom) if (!allowFrom.includes(a)) allowFrom.push(a);
  return { sticky: picks.some((p) => p.sticky), header: on.length > 0 ? { allowFrom } : undefined };
}

/**
 * Whether a rule lets `namespace` claim `domain`. A rule's `example.com` covers it and
 * every name below; `*.example.com` only the names below. A claimed wildcard
 * `*.a.example.com` stands for the names below `a.example.com`.
 */
export function domainAllowed(rules: readonly DomainRule[], namespace: string, domain: string): boolean {
  const wildcard = domain.startsWith('*.');
  const base = wildcard ? domain.slice(2) : domain;
  for (const rule of rules) {
    if (!rule.namespaces.includes(namespace) && !rule.namespaces.includes('*')) continue;
    for (const d of rule.domains) {
      const belowOnly = d.startsWith('*.');
      const suffix = belowOnly ? d.slice(2) : d;
      if (base.endsWith(`.${suffix}`)) return true;
      // The suffix itself: a claimed wildcard names only what is below it, so any rule covers it.
      if (base === suffix && (wildcard || !belowOnly)) return true;
    }
  }
  return false;
}

/** The routed port's ready endpoints, or the ExternalName. */
function endpointsOf(service: KService, slices: readonly KEndpointSlice[], report: (field: string, message: string) => void): EndpointSpec[] {
  const ann = service.metadata?.annotations ?? {};
  const ports = service.spec?.ports ?? [];
  const wanted = ann[A.port];
  let port = ports.find((p) => (wanted === undefined ? p.port === 80 : p.name === wanted || String(p.port) === wanted));
  if (wanted !== undefined && !port) {
    report(A.port, `the Service has no port named or numbered "${wanted}"; using port 80`);
    port = ports.find((p) => p.port === 80);
  }
  if (service.spec?.type === 'ExternalName') {
    const host = service.spec.externalName?.toLowerCase().replace(/\.$/, '');
    if (!host) return [];
    return [{ host, port: port?.port ?? (wanted !== undefined && /^\d+$/.test(wanted) ? Number(wanted) : 80) }];
  }
  if (!port) return [];
  const out: EndpointSpec[] = [];
  const seen = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    // The slice's port for the Service port, matched by name ("" for an unnamed port).
    const sp = (slice.ports ?? []).find((p) => (p.name ?? '') === (port!.name ?? ''));
    if (!sp?.port) continue;
    for (const e of slice.endpoints ?? []) {
      const c = e.conditions ?? {};
      // `ready` unset means ready; terminating endpoints finish what they have and get nothing new.
      if (c.ready === false || c.terminating === true) continue;
      for (const address of e.addresses ?? []) {
        const key = `${address}|${sp.port}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ host: address, port: sp.port });
      }
    }
  }
  return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port));
}

/**
 * Ready endpoints of the EndpointSlices of Service `namespace/name` on `port` (a port
 * name or number as the Service names it; default: the slices' first port). For TCP
 * routes such as the builder; the Service itself need not be routable.
 */
export function serviceEndpoints(slices: readonly KEndpointSlice[], service: string, port: string | undefined): EndpointSpec[] {
  const [namespace, name] = service.split('/');
  const out: EndpointSpec[] = [];
  for (const slice of slices) {
    if (slice.metadata?.namespace !== namespace || slice.metadata?.labels?.['kubernetes.io/service-name'] !== name) continue;
    const ports = slice.ports ?? [];
    const sp = port === undefined ? ports[0] : ports.find((p) => p.name === port || String(p.port) === port);
    if (!sp?.port) continue;
    for (const e of slice.endpoints ?? []) {
      if (e.conditions?.ready === false || e.conditions?.terminating === true) continue;
      for (const address of e.addresses ?? []) out.push({ host: address, port: sp.port });
    }
  }
  return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port));
}
