/**
 * @module
 * `fairway doctor`: checks an installation and reports each check as `ok`, `warn` or
 * `fail` with a one-line detail (plain table or JSON). The checks, in order:
 *
 * - `config`: the router's config file loads (an invalid one is bad usage: exit 2, with
 *   the messages `fairway validate` prints, and no other check runs);
 * - `platform-domain`: set (warn if not: bare names in `router.deis.io/domains` cannot be
 *   expanded and `<app>.<platformDomain>` hosts are not served);
 * - `kubernetes-api`: `GET /version` answers (fail if not; warn, and no RBAC check, when
 *   there is neither `--kubeconfig` nor an in-cluster service account);
 * - `rbac`: a SelfSubjectAccessReview per permission in {@link REQUIRED_PERMISSIONS}
 *   (fail naming each missing one, e.g. `patch services`);
 * - `admin-api`: a running router answers at `--admin` (default: the config's
 *   `listen.admin`, a wildcard address meaning loopback); warn if not, and skip the rest:
 * - `endpoints`: apps with no version that has weight > 0 and a ready endpoint (warn:
 *   their hosts answer 503);
 * - `certificates`: with an HTTPS listener, hosts without a certificate (warn: the default
 *   certificate is served);
 * - `certificate-expiry`: certificates expiring within {@link EXPIRY_WARNING_DAYS} days
 *   (warn), or expired (fail);
 * - `host-conflicts`: hosts claimed by two apps (warn: the older claim keeps the host);
 * - `source-problems`: a provider whose last load failed or a disabled app (fail), other
 *   problems of the providers' sources such as invalid annotations (warn).
 *
 * Exit code: 0 when no check failed (warnings allowed), 1 when one failed, 2 on bad usage.
 */
import { KubeConfig, AuthorizationV1Api, VersionApi } from '@kubernetes/client-node';
import { loadConfigFile, type LoadedConfig } from '../config/load-config.js';
import { parseHostPort } from '../config/host-port.js';
import { FairwayError } from '../errors.js';
import type { CertificateRow } from '../tls/certificate-manager.js';
import { adminRequest } from './admin-client.js';
import { formatTable } from './routes-table.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  /** Stable name, e.g. `rbac`. */
  readonly name: string;
  readonly status: CheckStatus;
  /** One line. */
  readonly detail: string;
  /** What the detail summarises (missing permissions, app names, hosts), when there is a list. */
  readonly items?: readonly string[];
}

export interface DoctorReport {
  /** True when no check failed. */
  readonly ok: boolean;
  readonly summary: Record<CheckStatus, number>;
  readonly checks: readonly Check[];
}

export interface DoctorOptions {
  /** A kubeconfig file; without it, the in-cluster service account (if any). */
  readonly kubeconfig?: string;
  /** The router's namespace (Leases and ACME Secrets live there). */
  readonly namespace: string;
  readonly configFile: string;
  /** The admin API of a running router; default: the config's `listen.admin`. */
  readonly admin?: string;
  /** The admin token to send (see admin-client.ts); absent: none (enough on the router's machine). */
  readonly adminToken?: string;
  /** Per request to the API server or the admin API (default 5 s). */
  readonly timeoutMs?: number;
}

/** One permission the router needs; `scope: 'router'` is the router's namespace, `'cluster'` every namespace. */
export interface Permission {
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly scope: 'cluster' | 'router';
  readonly why: string;
}

const perm = (verbs: string[], group: string, resource: string, scope: Permission['scope'], why: string): Permission[] =>
  verbs.map((verb) => ({ verb, group, resource, scope, why }));

/** What the router does in the cluster; `config/kubernetes/rbac.yaml` grants exactly this. */
export const REQUIRED_PERMISSIONS: readonly Permission[] = [
  ...perm(['get', 'list', 'watch'], '', 'services', 'cluster', 'routable Services in every namespace'),
  ...perm(['get', 'list', 'watch'], 'discovery.k8s.io', 'endpointslices', 'cluster', 'the endpoints of routed Services'),
  ...perm(['get', 'list', 'watch'], '', 'secrets', 'cluster', 'certificate Secrets (<domain>-cert) of the apps'),
  ...perm(['patch'], '', 'services', 'cluster', 'weights: the router.deis.io/weight annotation'),
  ...perm(['create', 'patch'], '', 'events', 'cluster', 'configuration problems as Events on the Service'),
  ...perm(['get', 'create', 'update', 'delete'], 'coordination.k8s.io', 'leases', 'router', 'the lock for ACME orders, the cutover Lease, this replica\'s Lease'),
  ...perm(['list'], 'coordination.k8s.io', 'leases', 'router', 'the other replicas (their Leases name their admin API)'),
  ...perm(['get', 'list', 'create', 'patch', 'delete'], '', 'secrets', 'router', 'ACME account and certificate storage'),
];

/** Certificates that expire sooner than this are a warning. */
export const EXPIRY_WARNING_DAYS = 14;

const DAY = 86_400_000;
/** Lists in a detail are cut after this many items ("and N more"); `items` has them all. */
const SHOWN = 5;

/** `patch services`, `list endpointslices.discovery.k8s.io`, `create leases.coordination.k8s.io in deis`. */
export function permissionName(p: Permission, namespace: string): string {
  return `${p.verb} ${p.group ? `${p.resource}.${p.group}` : p.resource}${p.scope === 'router' ? ` in ${namespace}` : ''}`;
}

/** Runs every check. Throws FairwayError (FW_CONFIG_*) for a config that does not load. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const config = loadConfigFile(options.configFile);
  const timeoutMs = options.timeoutMs ?? 5000;
  const checks: Check[] = [];
  const domains = config.apps.reduce((n, a) => n + a.domains.length, 0);
  checks.push({ name: 'config', status: 'ok', detail: `${options.configFile}: ${plural(config.apps.length, 'app')}, ${plural(domains, 'domain')}` });
  checks.push(
    config.settings.platformDomain
      ? { name: 'platform-domain', status: 'ok', detail: `${config.settings.platformDomain}: <app>.${config.settings.platformDomain} reaches app <app>` }
      : { name: 'platform-domain', status: 'warn', detail: `platformDomain is not set in ${options.configFile}: bare names in router.deis.io/domains cannot be expanded and <app>.<domain> hosts are not served` },
  );
  checks.push(...(await kubernetesChecks(options, timeoutMs)));
  checks.push(...(await routerChecks(config, options, timeoutMs)));
  const summary = { ok: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status]++;
  return { ok: summary.fail === 0, summary, checks };
}

/**
 * The command: prints the report (a table, or JSON with `json`) on stdout and resolves with
 * the exit code (0 nothing failed, 1 a check failed, 2 bad usage). A config that does not
 * load rejects with its FairwayError (the CLI prints it and exits 2).
 */
export async function doctorCommand(options: DoctorOptions & { readonly json?: boolean }): Promise<number> {
  let report: DoctorReport;
  try {
    report = await runDoctor(options);
  } catch (err) {
    if (!(err instanceof DoctorUsageError)) throw err;
    process.stderr.write(`fairway: ${err.message}\n`);
    return 2;
  }
  process.stdout.write(options.json ? JSON.stringify(report, null, 2) + '\n' : formatDoctor(report));
  return report.ok ? 0 : 1;
}

/** The plain-text report: an aligned table, then a summary line. */
export function formatDoctor(report: DoctorReport): string {
  const table = formatTable(['CHECK', 'STATUS', 'DETAIL'], report.checks.map((c) => [c.name, c.status, c.detail]));
  const { ok, warn, fail } = report.summary;
  return `${table}\n${ok} ok, ${plural(warn, 'warning')}, ${fail} failed\n`;
}

// ---------------------------------------------------------------------------------------
// Kubernetes

async function kubernetesChecks(options: DoctorOptions, timeoutMs: number): Promise<Check[]> {
  const kc = new KubeConfig();
  if (options.kubeconfig) {
    try {
      kc.loadFromFile(options.kubeconfig);
    } catch (err) {
      throw new DoctorUsageError(`cannot read kubeconfig ${options.kubeconfig}: ${(err as Error).message}`);
    }
  } else if (process.env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromCluster();
  } else {
    return [{ name: 'kubernetes-api', status: 'warn', detail: 'not checked: not in a cluster (no KUBERNETES_SERVICE_HOST) and no --kubeconfig; RBAC not checked either' }];
  }
  const server = kc.getCurrentCluster()?.server ?? '(no server in the kubeconfig)';
  let version: string;
  try {
    const info = await withTimeout(kc.makeApiClient(VersionApi).getCode(), timeoutMs, `${server} did not answer within ${timeoutMs} ms`);
    version = info.gitVersion;
  } catch (err) {
    return [{ name: 'kubernetes-api', status: 'fail', detail: `${server}: ${describeKubeError(err)}; RBAC not checked` }];
  }
  const checks: Check[] = [{ name: 'kubernetes-api', status: 'ok', detail: `${server}: Kubernetes ${version}` }];

  const authorization = kc.makeApiClient(AuthorizationV1Api);
  let reviews: boolean[];
  try {
    reviews = await Promise.all(
      REQUIRED_PERMISSIONS.map(async (p) => {
        const review = await withTimeout(
          authorization.createSelfSubjectAccessReview({
            body: {
              apiVersion: 'authorization.k8s.io/v1',
              kind: 'SelfSubjectAccessReview',
              spec: { resourceAttributes: { verb: p.verb, group: p.group, resource: p.resource, namespace: p.scope === 'router' ? options.namespace : '' } },
            },
          }),
          timeoutMs,
          `no SelfSubjectAccessReview answer within ${timeoutMs} ms`,
        );
        return review.status?.allowed === true;
      }),
    );
  } catch (err) {
    checks.push({ name: 'rbac', status: 'fail', detail: `cannot ask the API server what is allowed (SelfSubjectAccessReview): ${describeKubeError(err)}` });
    return checks;
  }
  const missing = REQUIRED_PERMISSIONS.filter((_, i) => !reviews[i]).map((p) => permissionName(p, options.namespace));
  checks.push(
    missing.length === 0
      ? { name: 'rbac', status: 'ok', detail: `all ${REQUIRED_PERMISSIONS.length} permissions Fairway needs are granted (router namespace ${options.namespace})` }
      : { name: 'rbac', status: 'fail', detail: `missing ${plural(missing.length, 'permission')}: ${list(missing)} (see config/kubernetes/rbac.yaml)`, items: missing },
  );
  return checks;
}

/** A client-node failure in one line: the API's Status message, or the network error. */
function describeKubeError(err: unknown): string {
  const e = err as { code?: unknown; body?: unknown; message?: string; cause?: { code?: string; message?: string } };
  if (typeof e.code === 'number') {
    let message: string | undefined;
    try {
      const body = (typeof e.body === 'string' ? JSON.parse(e.body) : e.body) as { message?: string } | undefined;
      message = body?.message;
    } catch {
      message = undefined;
    }
    return `HTTP ${e.code}${message ? `: ${message}` : ''}`;
  }
  const reason = /reason: (.*)$/.exec(e.message ?? '')?.[1];
  return reason ?? e.cause?.message ?? e.message ?? String(err);
}

// ---------------------------------------------------------------------------------------
// A running router, through its admin API

interface AppsAnswer {
  apps: Array<{ name: string; versions: Array<{ name: string; weight: number; endpoints: string[] }> }>;
  disabled: Array<{ app: string; code: string; message: string }>;
}

interface ConfigAnswer {
  settings: { listen: { https?: string } };
  providers: Array<{ provider: string; ok: boolean; error?: { code: string; message: string }; problems?: Array<{ object: string; field: string; message: string }> }>;
}

/** A host-conflict problem, as providers word it ("host "x" is already served by app "y""). */
const CONFLICT = /already (served|claimed)/i;

async function routerChecks(config: LoadedConfig, options: DoctorOptions, timeoutMs: number): Promise<Check[]> {
  const admin = options.admin ?? adminUrlOf(config.settings.listen.admin);
  if (admin === undefined) {
    return [{ name: 'admin-api', status: 'warn', detail: `listen.admin in ${options.configFile} has no fixed port (${config.settings.listen.admin}): give --admin; the checks of a running router were skipped` }];
  }
  let apps: AppsAnswer;
  let settings: ConfigAnswer;
  let certificates: CertificateRow[];
  try {
    const get = (path: string) => withTimeout(adminRequest({ url: admin, token: options.adminToken }, 'GET', path), timeoutMs, `no answer from ${admin} within ${timeoutMs} ms`);
    [apps, settings, certificates] = await Promise.all([
      get('v1/apps') as Promise<AppsAnswer>,
      get('v1/config') as Promise<ConfigAnswer>,
      get('v1/certificates').then((a) => (a as { certificates: CertificateRow[] }).certificates),
    ]);
  } catch (err) {
    const why = err instanceof FairwayError && err.code === 'FW_NOT_READY' ? `the router at ${admin} has no configuration live yet (starting?)` : (err as Error).message;
    return [{ name: 'admin-api', status: 'warn', detail: `${why}; the checks of a running router were skipped` }];
  }
  const checks: Check[] = [{ name: 'admin-api', status: 'ok', detail: `${admin}: ${plural(apps.apps.length, 'app')} served` }];

  const noEndpoints = apps.apps.filter((a) => !a.versions.some((v) => v.weight > 0 && v.endpoints.length > 0)).map((a) => a.name);
  checks.push(
    noEndpoints.length === 0
      ? { name: 'endpoints', status: 'ok', detail: `every app has a ready endpoint in a version with weight > 0` }
      : { name: 'endpoints', status: 'warn', detail: `${plural(noEndpoints.length, 'app')} with no ready endpoint (their hosts answer 503): ${list(noEndpoints)}`, items: noEndpoints },
  );

  if (!settings.settings.listen.https) {
    checks.push({ name: 'certificates', status: 'ok', detail: 'no HTTPS listener (listen.https is not set)' });
  } else {
    const missing = certificates.filter((c) => c.source === 'none').map((c) => c.host);
    checks.push(
      missing.length === 0
        ? { name: 'certificates', status: 'ok', detail: `every host has a certificate (${plural(certificates.length, 'host')})` }
        : { name: 'certificates', status: 'warn', detail: `${plural(missing.length, 'host')} without a certificate (the default one is served): ${list(missing)}`, items: missing },
    );
  }
  checks.push(expiryCheck(certificates));

  const problems = settings.providers.flatMap((p) => (p.problems ?? []).map((problem) => ({ provider: p.provider, ...problem })));
  const conflicts = problems.filter((p) => CONFLICT.test(p.message)).map((p) => `${p.object}: ${p.message}`);
  checks.push(
    conflicts.length === 0
      ? { name: 'host-conflicts', status: 'ok', detail: 'no host is claimed by two apps' }
      : { name: 'host-conflicts', status: 'warn', detail: `${plural(conflicts.length, 'host conflict')} (the older claim keeps the host): ${list(conflicts)}`, items: conflicts },
  );

  const failed = [
    ...settings.providers.filter((p) => !p.ok).map((p) => `provider ${p.provider}: last load failed (${p.error?.code ?? 'error'}: ${p.error?.message ?? 'unknown'}); its previous state is serving`),
    ...apps.disabled.map((d) => `app ${d.app} disabled (${d.code}: ${d.message})`),
  ];
  const others = problems.filter((p) => !CONFLICT.test(p.message)).map((p) => `${p.object} ${p.field}: ${p.message}`);
  if (failed.length > 0) checks.push({ name: 'source-problems', status: 'fail', detail: list([...failed, ...others]), items: [...failed, ...others] });
  else if (others.length > 0) checks.push({ name: 'source-problems', status: 'warn', detail: `${plural(others.length, 'problem')} (defaults used): ${list(others)}`, items: others });
  else checks.push({ name: 'source-problems', status: 'ok', detail: `${settings.providers.map((p) => p.provider).join(', ') || 'no provider'}: no ${conflicts.length > 0 ? 'other ' : ''}problems` });
  return checks;
}

function expiryCheck(certificates: readonly CertificateRow[], now = Date.now()): Check {
  const soon: string[] = [];
  const expired: string[] = [];
  for (const c of certificates) {
    if (!c.notAfter) continue;
    const left = Date.parse(c.notAfter) - now;
    const why = c.lastError ? `; last renewal failed: ${c.lastError.message}` : '';
    if (left <= 0) expired.push(`${c.host} expired ${c.notAfter.slice(0, 10)}${why}`);
    else if (left < EXPIRY_WARNING_DAYS * DAY) soon.push(`${c.host} expires ${c.notAfter.slice(0, 10)} (in ${Math.ceil(left / DAY)} d)${why}`);
  }
  if (expired.length > 0) return { name: 'certificate-expiry', status: 'fail', detail: list([...expired, ...soon]), items: [...expired, ...soon] };
  if (soon.length > 0) return { name: 'certificate-expiry', status: 'warn', detail: `${plural(soon.length, 'certificate')} expiring within ${EXPIRY_WARNING_DAYS} days: ${list(soon)}`, items: soon };
  return { name: 'certificate-expiry', status: 'ok', detail: `no certificate expires within ${EXPIRY_WARNING_DAYS} days` };
}

/** `http://` URL of an admin listener address; a wildcard address means this machine. Undefined for port 0. */
export function adminUrlOf(listen: string): string | undefined {
  const hp = parseHostPort(listen, true);
  if (!hp || hp.port === 0) return undefined;
  const host = hp.host === '0.0.0.0' ? '127.0.0.1' : hp.host === '::' ? '::1' : hp.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${hp.port}`;
}

// ---------------------------------------------------------------------------------------

/** A usage problem the CLI reports with exit code 2 (e.g. an unreadable --kubeconfig). */
export class DoctorUsageError extends Error {}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function list(items: readonly string[]): string {
  return items.length <= SHOWN ? items.join(', ') : `${items.slice(0, SHOWN).join(', ')} and ${items.length - SHOWN} more`;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
