/**
 * @module
 * The admin API, on its own listener (default 127.0.0.1:9090). JSON in and out; errors
 * are `{"error":{"code","message"}}` with catalogue codes. It reads the control plane's
 * snapshot and status and the request counters; it changes state only through the
 * control plane (weights) and the cutover controller (cutovers, rollbacks). Every path
 * is documented in README ("Admin API"). Every request is first let in or refused by
 * {@link AdminAuth} (loopback, token, open probe paths); every one that may change state
 * is written to the audit log ({@link auditRequest}).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ControlPlane } from '../control/control-plane.js';
import type { CutoverAction, CutoverController, CutoverDecisionEvent, CutoverProgress } from '../cutover/cutover-controller.js';
import { isActive } from '../cutover/cutover-store.js';
import { FORWARDED_BY_HEADER } from '../cutover/forward-to-leader.js';
import { versionCounters } from '../cutover/measurement-window.js';
import type { ReplicaStats } from '../cutover/replica-stats-source.js';
import { auditRequest, isAudited, type AuditEntry } from './admin-audit.js';
import type { AdminAuth } from './admin-auth.js';
import { FairwayError } from '../errors.js';
import type { AppSpec, Snapshot, UnroutedReason } from '../model.js';
import { endpointKey, publicSettings } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { entryJson } from '../observability/access-log.js';
import type { AppLogBuffer } from '../observability/app-log-buffer.js';
import type { Metrics } from '../observability/metrics.js';
import type { CertificateManager } from '../tls/certificate-manager.js';
import type { EndpointState } from '../data/endpoint-health.js';

export interface AdminServerOptions {
  readonly controlPlane: ControlPlane;
  readonly cutovers: CutoverController;
  readonly certificates: CertificateManager;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Who may call (see admin-auth.ts); its token can change while the server runs. */
  readonly auth: AdminAuth;
  /** True once the data plane serves a snapshot. */
  readonly ready: () => boolean;
  /** True once the router is stopping: `/readyz` answers 503 `draining` from then on. */
  readonly draining?: () => boolean;
  /** This process as a replica (`GET /v1/stats/{app}`): its name, the id of this start, and when it started (ISO). */
  readonly replica: { readonly name: string; readonly start: string; readonly startedAt: string };
  /** Recent access-log entries per app (`GET /v1/apps/{app}/logs`); absent: the path answers no entries. */
  readonly appLogs?: AppLogBuffer;
  /**
   * The live state of each endpoint of each version of `apps` (ejected, unhealthy…), by app
   * (with data-plane workers: merged, with each worker's view); absent: not shown.
   */
  readonly endpointStates?: (apps: readonly string[]) => Promise<ReadonlyMap<string, Readonly<Record<string, readonly EndpointState[]>> | undefined>>;
}

/** One row of `GET /v1/routes` and `fairway routes`. */
export interface RouteRow {
  host: string;
  match: 'exact' | 'wildcard' | 'platform';
  app: string;
  versions: { name: string; weight: number; endpoints: number }[];
}

/** A host a source claims that is not routed to it (`unrouted` in `GET /v1/routes`). */
export interface UnroutedRow {
  host: string;
  /** Who claimed it: `namespace/service` for Kubernetes. */
  object: string;
  reason: UnroutedReason;
  message: string;
}

const MAX_BODY = 64 * 1024;

export class AdminServer {
  readonly #options: AdminServerOptions;
  readonly #server: Server;
  readonly #audit: Logger;

  constructor(options: AdminServerOptions) {
    this.#options = options;
    this.#audit = options.logger.child({ component: 'admin-audit' });
    // Node's strict parser whatever NODE_OPTIONS says (--insecure-http-parser would loosen it).
    this.#server = createServer({ insecureHTTPParser: false }, (req, res) => {
      const url = targetOf(req);
      const p = url.pathname.replace(/\/+$/, '') || '/';
      const audit = isAudited(req.method ?? 'GET') ? auditRequest(this.#audit, req, res, p) : {};
      this.#handle(req, res, url, p, audit).catch((err: unknown) => this.#sendError(res, err, audit));
    });
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host, port }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  /** `p` is the normalised path: the one authorised is the one routed. */
  async #handle(req: IncomingMessage, res: ServerResponse, url: URL, p: string, audit: AuditEntry): Promise<void> {
    const method = req.method ?? 'GET';
    audit.access = this.#options.auth.check(method, p, req.socket.remoteAddress, req.headers.authorization);
    const cp = this.#options.controlPlane;

    if (method === 'GET' && p === '/healthz') return send(res, 200, { status: 'ok' });
    if (method === 'GET' && p === '/readyz') {
      const draining = this.#options.draining?.() ?? false;
      const ready = !draining && this.#options.ready();
      return send(res, ready ? 200 : 503, { status: draining ? 'draining' : ready ? 'ready' : 'starting', generation: cp.snapshot?.generation ?? 0 });
    }
    if (method === 'GET' && p === '/metrics') {
      const body = await this.#options.metrics.render();
      res.writeHead(200, { 'content-type': this.#options.metrics.contentType });
      res.end(body);
      return;
    }
    if (!p.startsWith('/v1/')) throw new FairwayError('FW_ADMIN_NOT_FOUND', `no admin path ${method} ${p}`);
    const snapshot = cp.snapshot;
    if (!snapshot) throw new FairwayError('FW_NOT_READY', 'no snapshot is live yet');

    // Counters shown below include every request the data-plane workers answered so far.
    if (method === 'GET' && (p === '/v1/apps' || p.startsWith('/v1/stats/') || /^\/v1\/apps\/[^/]+$/.test(p))) await this.#options.metrics.refresh();
    if (method === 'GET' && p === '/v1/apps') {
      return send(res, 200, {
        generation: snapshot.generation,
        createdAt: snapshot.createdAt,
        apps: await this.#appViews(snapshot.apps),
        disabled: snapshot.errors,
      });
    }
    if (method === 'GET' && p === '/v1/routes') {
      const unrouted: UnroutedRow[] = cp
        .providerStatus()
        .flatMap((s) => (s.problems ?? []).flatMap((x) => (x.unrouted ? [{ host: x.unrouted.host, object: x.object, reason: x.unrouted.reason, message: x.message }] : [])));
      return send(res, 200, { generation: snapshot.generation, routes: routeRows(snapshot), unrouted });
    }
    if (method === 'GET' && p === '/v1/config') {
      return send(res, 200, {
        generation: snapshot.generation,
        createdAt: snapshot.createdAt,
        settings: publicSettings(snapshot.settings),
        providers: cp.providerStatus(),
      });
    }
    if (method === 'GET' && p === '/v1/certificates') return send(res, 200, { certificates: this.#options.certificates.rows() });
    const stats = /^\/v1\/stats\/([^/]+)$/.exec(p);
    if (stats && method === 'GET') return send(res, 200, this.#stats(decodePathSegment(stats[1]!), url.searchParams.get('versions'), snapshot));
    const renew = /^\/v1\/certificates\/([^/]+)\/renew$/.exec(p);
    if (renew && method === 'POST') {
      const host = decodePathSegment(renew[1]!).toLowerCase();
      audit.change = { host };
      return send(res, 200, await this.#options.certificates.renew(host));
    }
    const logs = /^\/v1\/apps\/([^/]+)\/logs$/.exec(p);
    if (logs && method === 'GET') return this.#logs(res, url, decodePathSegment(logs[1]!), snapshot);
    const c = /^\/v1\/apps\/([^/]+)\/(?:cutover(?:\/(pause|resume|promote|abort))?|(rollback))$/.exec(p);
    if (c) return this.#cutover(req, res, url, method, decodePathSegment(c[1]!), c[2] as CutoverAction | undefined, c[3] !== undefined, audit);
    const m = /^\/v1\/apps\/([^/]+)(\/weights)?$/.exec(p);
    if (m) {
      const name = decodePathSegment(m[1]!);
      if (m[2] && method === 'PUT') {
        const body = await readJson(req);
        audit.change = { app: name, weights: body };
        if (body === null || typeof body !== 'object' || Array.isArray(body)) {
          throw new FairwayError('FW_ADMIN_BAD_REQUEST', 'body must be a JSON object of version name to weight, like {"v1":50,"v2":50}');
        }
        const app = await cp.setWeights(name, body as Record<string, unknown>);
        return send(res, 200, (await this.#appViews([app]))[0]);
      }
      if (method === 'GET') {
        const app = snapshot.apps.find((a) => a.name === name);
        if (app) return send(res, 200, m[2] ? weightsOf(app) : (await this.#appViews([app]))[0]);
        const disabled = snapshot.errors.filter((e) => e.app === name);
        if (disabled.length > 0) return send(res, 200, { name, disabled: true, errors: disabled });
        throw new FairwayError('FW_APP_NOT_FOUND', `no app named "${name}"`);
      }
    }
    throw new FairwayError('FW_ADMIN_NOT_FOUND', `no admin path ${method} ${p}`);
  }

  /** `/v1/apps/{app}/cutover[/{action}]` and `/v1/apps/{app}/rollback`. */
  async #cutover(req: IncomingMessage, res: ServerResponse, url: URL, method: string, app: string, action: CutoverAction | undefined, rollback: boolean, audit: AuditEntry): Promise<void> {
    const cutovers = this.#options.cutovers;
    // Sent on by another replica that does not drive cutovers (Kubernetes mode); the audit line names it.
    const origin = { forwarded: req.headers[FORWARDED_BY_HEADER] !== undefined };
    if (method === 'POST' && rollback) {
      audit.change = { app, action: 'rollback' };
      return send(res, 200, await cutovers.rollback(app, origin));
    }
    if (method === 'POST' && action) {
      audit.change = { app, action };
      return send(res, 200, await cutovers.act(app, action, origin));
    }
    if (method === 'POST' && !rollback) {
      const body = await readJson(req);
      audit.change = { app, action: 'start', plan: body };
      return send(res, 201, await cutovers.begin(app, body, origin));
    }
    if (method === 'GET' && !rollback && !action) {
      if (url.searchParams.has('watch')) return this.#watchCutover(res, app, url.searchParams.get('after'));
      return send(res, 200, cutovers.status(app));
    }
    throw new FairwayError('FW_ADMIN_NOT_FOUND', `no admin path ${method} ${url.pathname}`);
  }

  /**
   * `GET /v1/apps/{app}/cutover?watch=1[&after=N]`: NDJSON. A `status` line, then the
   * recorded decisions with index > N (all without `after`), then live `decision` lines
   * and `progress` lines (at most 5 a second); ends after a decision that leaves the
   * cutover running or paused no more (or at once if it already ended), or when another
   * cutover of the app starts.
   */
  #watchCutover(res: ServerResponse, app: string, afterParam: string | null): void {
    const cutovers = this.#options.cutovers;
    const after = afterParam === null || afterParam === '' ? -1 : Number(afterParam);
    if (!Number.isInteger(after) || after < -1) throw new FairwayError('FW_ADMIN_BAD_REQUEST', `after must be a decision index (an integer >= -1), not "${afterParam}"`);
    const status = cutovers.status(app);
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' });
    const write = (line: unknown) => res.write(JSON.stringify(line) + '\n');
    let ended = false;
    let lastProgress = 0;
    const end = () => {
      if (ended) return;
      ended = true;
      cutovers.off('decision', onDecision);
      cutovers.off('progress', onProgress);
      res.end();
    };
    const onDecision = (d: CutoverDecisionEvent) => {
      if (d.app !== app) return;
      if (d.id !== status.id) return end();
      if (d.index <= after) return;
      write({ type: 'decision', ...d });
      if (!isActive(d.state)) end();
    };
    const onProgress = (p: CutoverProgress) => {
      if (p.app !== app || p.id !== status.id) return;
      const now = Date.now();
      if (now - lastProgress < 200) return;
      lastProgress = now;
      write({ type: 'progress', ...p });
    };
    write({ type: 'status', ...status });
    for (const d of status.history) if (d.index > after) write({ type: 'decision', app, id: status.id, ...d });
    if (!isActive(status.state)) return end();
    cutovers.on('decision', onDecision);
    cutovers.on('progress', onProgress);
    res.on('close', end);
  }

  /**
   * `GET /v1/stats/{app}[?versions=v1,v2]`: this replica's raw counters of the app's
   * versions (all of the live app's without `versions`), for the replica driving a
   * cutover to sum. A version the live app does not have answers zeros (and makes no
   * counters: the names come from the request).
   */
  #stats(app: string, versionsParam: string | null, snapshot: Snapshot): ReplicaStats {
    const live = snapshot.apps.find((a) => a.name === app);
    if (!live && versionsParam === null) throw new FairwayError('FW_APP_NOT_FOUND', `no app named "${app}"`);
    const served = new Set(live?.versions.map((v) => v.name));
    const versions = versionsParam === null ? [...served] : versionsParam.split(',').filter((v) => v !== '');
    const { name, start, startedAt } = this.#options.replica;
    const stats = this.#options.metrics.requests;
    const zero = { byClass: [0, 0, 0, 0, 0, 0], retries: 0, fine: [] };
    return { replica: name, start, startedAt, app, versions: Object.fromEntries(versions.map((v) => [v, served.has(v) ? versionCounters(stats, app, v) : zero])) };
  }

  /**
   * `GET /v1/apps/{app}/logs[?lines=N][&version=V][&follow=1]`: the app's newest `lines`
   * access-log entries (default 100; of version V only, if given), oldest first, as
   * `{app, version, enabled, dropped, entries}`. With `follow=1`: NDJSON instead, those
   * entries and then each new one as it is logged, until the client goes; a client that
   * reads too slowly misses entries, reported by a `{"skipped":N}` line (the router
   * never buffers more than one socket's worth for it).
   */
  #logs(res: ServerResponse, url: URL, app: string, snapshot: Snapshot): void {
    const buffer = this.#options.appLogs;
    const known = snapshot.apps.some((a) => a.name === app) || snapshot.errors.some((e) => e.app === app) || buffer?.knows(app) === true;
    if (!known) throw new FairwayError('FW_APP_NOT_FOUND', `no app named "${app}"`);
    const linesParam = url.searchParams.get('lines');
    const lines = linesParam === null || linesParam === '' ? 100 : Number(linesParam);
    if (!Number.isInteger(lines) || lines < 0) throw new FairwayError('FW_ADMIN_BAD_REQUEST', `lines must be an integer >= 0, not "${linesParam}"`);
    const version = url.searchParams.get('version') || undefined;
    const follow = ['1', 'true', 'yes'].includes(url.searchParams.get('follow') ?? '');
    const entries = buffer?.read(app, lines, version) ?? [];
    if (!follow) {
      return send(res, 200, {
        app,
        version,
        enabled: buffer?.active ?? false,
        dropped: buffer?.droppedOf(app) ?? 0,
        entries: entries.map((e) => JSON.parse(entryJson(e.fields, e.time)) as unknown),
      });
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' });
    if (entries.length > 0) res.write(entries.map((e) => entryJson(e.fields, e.time) + '\n').join(''));
    else res.flushHeaders();
    if (buffer === undefined) return;
    let blocked = false;
    let skipped = 0;
    const stop = buffer.follow(app, version, (fields, time) => {
      if (blocked) {
        skipped++;
        return;
      }
      let text = entryJson(fields, time) + '\n';
      if (skipped > 0) {
        text = `${JSON.stringify({ skipped })}\n${text}`;
        skipped = 0;
      }
      if (!res.write(text)) {
        blocked = true;
        res.once('drain', () => (blocked = false));
      }
    });
    res.once('close', stop);
  }

  /** The views of `apps`, with their endpoint states. */
  async #appViews(apps: readonly AppSpec[]) {
    const states = await this.#options.endpointStates?.(apps.map((a) => a.name));
    return apps.map((a) => this.#appView(a, states?.get(a.name)));
  }

  #appView(app: AppSpec, endpointStates: Readonly<Record<string, readonly EndpointState[]>> | undefined) {
    const cp = this.#options.controlPlane;
    const provided = cp.providerApp(app.name);
    return {
      name: app.name,
      source: app.source,
      domains: app.domains,
      loadBalancing: app.loadBalancing,
      versionPick: app.versionPick ?? { sticky: false },
      weightsOverridden: provided !== undefined && JSON.stringify(weightsOf(provided)) !== JSON.stringify(weightsOf(app)),
      versions: app.versions.map((v) => {
        const s = this.#options.metrics.requests.forVersion(app.name, v.name);
        return {
          name: v.name,
          weight: v.weight,
          endpoints: v.endpoints.map(endpointKey),
          endpointStates: endpointStates?.[v.name],
          requests: { total: s.byClass.reduce((a, b) => a + b, 0), '2xx': s.byClass[2], '3xx': s.byClass[3], '4xx': s.byClass[4], '5xx': s.byClass[5] },
        };
      }),
    };
  }

  #sendError(res: ServerResponse, err: unknown, audit: AuditEntry): void {
    if (err instanceof FairwayError) {
      audit.code = err.code;
      // RFC 6750: a 401 names the scheme the client must use.
      send(res, err.status, { error: err.toJSON() }, err.code === 'FW_ADMIN_UNAUTHORIZED' ? { 'www-authenticate': 'Bearer realm="fairway-admin"' } : undefined);
      return;
    }
    audit.code = 'FW_INTERNAL';
    this.#options.logger.error({ err: (err as Error).message }, 'admin API request failed');
    send(res, 500, { error: new FairwayError('FW_INTERNAL', 'internal error; see the router log').toJSON() });
  }
}

/** Every host the snapshot answers for, in matching order (exact, wildcard, platform). */
export function routeRows(snapshot: Snapshot): RouteRow[] {
  const rows: RouteRow[] = [];
  const exact = new Set<string>();
  for (const app of snapshot.apps) {
    const versions = app.versions.map((v) => ({ name: v.name, weight: v.weight, endpoints: v.endpoints.length }));
    for (const d of app.domains) {
      const wildcard = d.startsWith('*.');
      if (!wildcard) exact.add(d);
      rows.push({ host: d, match: wildcard ? 'wildcard' : 'exact', app: app.name, versions });
    }
  }
  const pd = snapshot.settings.platformDomain;
  if (pd) {
    for (const app of snapshot.apps) {
      const host = `${app.name}.${pd}`;
      if (!exact.has(host)) {
        rows.push({ host, match: 'platform', app: app.name, versions: app.versions.map((v) => ({ name: v.name, weight: v.weight, endpoints: v.endpoints.length })) });
      }
    }
  }
  const order = { exact: 0, wildcard: 1, platform: 2 };
  return rows.sort((a, b) => order[a.match] - order[b.match] || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
}

/** The request target as a URL; one that does not parse is a path no route has. */
function targetOf(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://admin');
  } catch {
    return new URL('http://admin/(malformed)');
  }
}

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new FairwayError('FW_ADMIN_BAD_REQUEST', `malformed path segment "${segment}"`);
  }
}

function weightsOf(app: AppSpec): Record<string, number> {
  return Object.fromEntries(app.versions.map((v) => [v.name, v.weight]));
}

function send(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new FairwayError('FW_ADMIN_BAD_REQUEST', `body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new FairwayError('FW_ADMIN_BAD_REQUEST', `body is not JSON: ${(err as Error).message}`);
  }
}
