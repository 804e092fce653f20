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
 * - A host claimed by two apps goes to the app whose oldest Service is oldest (creation
 *   timestamp, then namespace/name): the same answer on every replica. The other app
 *   loses that host and the conflict is reported.
 * - A value that fails validation is reported on its Service and the default is used.
 */
import type { AppSpec, EndpointSpec, VersionSpec } from '../../model.js';

export const ROUTABLE_LABEL = 'router.deis.io/routable';
export const A = {
  app: 'router.deis.io/app',
  version: 'router.deis.io/version',
  weight: 'router.deis.io/weight',
  domains: 'router.deis.io/domains',
  port: 'router.deis.io/port',
  sslEnforce: 'router.deis.io/ssl.enforce',
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
}

export interface TranslateInput {
  readonly services: readonly KService[];
  readonly slices: readonly KEndpointSlice[];
  readonly platformDomain: string | undefined;
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
}

export function translate(input: TranslateInput): Translation {
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
    const meta = service.metadata ?? {};
    if (meta.labels?.[ROUTABLE_LABEL] !== 'true' || !meta.name) continue;
    const namespace = meta.namespace ?? 'default';
    const report = (field: string, message: string) => problems.push({ namespace, service: meta.name!, field, message });
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
      else if (!domains.includes(d)) domains.push(d);
    }
    const sslRaw = ann[A.sslEnforce];
    if (sslRaw !== undefined && sslRaw !== 'true' && sslRaw !== 'false') report(A.sslEnforce, `"${sslRaw}" must be "true" or "false"; using false`);

    const endpoints = endpointsOf(service, slicesByService.get(`${namespace}/${meta.name}`) ?? [], report);
    const key = `${namespace}\u0000${app}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { namespace, app, versions: [] }));
    if (group.versions.some((v) => v.spec.name === versionName)) {
      report(A.version, `version "${versionName}" of app "${app}" is already defined by another Service; this Service is ignored`);
      continue;
    }
    group.versions.push({
      service,
      namespace,
      serviceName: meta.name,
      created: meta.creationTimestamp ? new Date(meta.creationTimestamp).getTime() : 0,
      spec: { name: versionName, weight, endpoints },
      domains,
      sslEnforce: sslRaw === 'true',
    });
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
          problems.push({ namespace: v.namespace, service: v.serviceName, field: A.domains, message: `host "${d}" is already served by app "${taken}" (older Service); not routed to app "${g.name}"` });
          continue;
        }
        owner.set(d, g.name);
        domains.push(d);
      }
    }
    apps.push({
      name: g.name,
      domains,
      versions: g.versions.map((v) => v.spec),
      loadBalancing: 'least-outstanding',
      tls: { sslEnforce: g.versions.some((v) => v.sslEnforce), hsts: undefined, acme: true, certificates: [] },
      source: 'kubernetes',
    });
  }
  apps.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { apps, problems, owners };
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
