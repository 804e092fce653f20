/**
 * @module
 * The data plane's endpoint health state that outlives route tables, in one place: it
 * logs and counts what outlier detection and health checks do (as their
 * {@link OutlierEvents} and {@link HealthCheckEvents}), holds the per-app retry budgets
 * ({@link RetryBudgets}) and the {@link HealthChecker}, and renders the endpoint-health
 * metrics. The per-endpoint state itself is on each {@link Upstream}.
 *
 * Active health checks run here, or — in a data-plane worker of `fairway serve --workers N`
 * (`remoteChecks`) — in the primary, which sends each endpoint's count of failing checks
 * ({@link EndpointHealth.applyHealthMarks}); the worker marks its Upstreams with them and
 * keeps its passive outlier detection and retry budgets of its own.
 *
 * Lifecycle: one per data plane; {@link EndpointHealth.reconcile} after every table swap
 * (health checks or marks follow the table, budgets of removed apps are dropped);
 * {@link EndpointHealth.close} stops the probes and the budgets' clock.
 */
import type { Logger } from '../observability/logger.js';
import { EndpointHealthStats, type EndpointHealthCounterData, type UnavailableEndpoint, type UnavailableRow } from '../observability/endpoint-health-stats.js';
import { HealthChecker, type CheckedEndpoint, type HealthCheckEvents, type HealthTarget } from './health-checker.js';
import type { OutlierEvents } from './outlier-detector.js';
import { RetryBudgets } from './retry-budget.js';
import type { RouteTable } from './route-table.js';
import type { Upstream } from './upstream-registry.js';

/** One endpoint of an app version as the admin API shows it. */
export interface EndpointState {
  readonly endpoint: string;
  /** `available`, or why it gets no new requests: `ejected`, `unhealthy` (both: `ejected`). */
  readonly state: 'available' | 'ejected' | 'unhealthy';
  readonly outstanding: number;
  readonly consecutiveFailures: number;
  /** The ejection multiplier: the next ejection lasts this many + 1 base ejection times (up to the max). */
  readonly ejections: number;
}

export class EndpointHealth implements OutlierEvents, HealthCheckEvents {
  readonly stats = new EndpointHealthStats();
  readonly budgets = new RetryBudgets();
  /** Undefined with `remoteChecks`: see {@link #marks}. */
  readonly #checker: HealthChecker | undefined;
  /** With `remoteChecks`: failing checks by endpoint (`host:port`) as the primary reported them; absent: none. */
  readonly #marks = new Map<string, number>();
  readonly #logger: Logger | undefined;
  #table: RouteTable | undefined;

  /**
   * Without a logger, nothing is logged (unit tests). With `remoteChecks`, this data plane
   * runs no health check: their results come through {@link applyHealthMarks}.
   */
  constructor(logger?: Logger, options: { remoteChecks?: boolean } = {}) {
    this.#logger = logger;
    this.#checker = options.remoteChecks ? undefined : new HealthChecker(this);
  }

  /** Follows the live table: its health checks run (or its Upstreams get the marks), other apps' budgets go. */
  reconcile(table: RouteTable): void {
    this.#table = table;
    if (this.#checker) this.#checker.reconcile(checkedRoutes(table));
    else for (const u of table.upstreams) u.setFailingChecks(this.#marks.get(u.key) ?? 0);
    this.budgets.retainOnly((app) => table.app(app) !== undefined);
  }

  /**
   * With `remoteChecks`: the primary's health checks changed these endpoints' counts of
   * failing checks (`[endpoint, failing]`, 0: healthy); the live table's Upstreams of each
   * take them at once, and later tables' at their reconcile.
   */
  applyHealthMarks(changes: readonly (readonly [endpoint: string, failing: number])[]): void {
    for (const [endpoint, failing] of changes) {
      if (failing > 0) this.#marks.set(endpoint, failing);
      else this.#marks.delete(endpoint);
    }
    const changed = new Map(changes);
    for (const u of this.#table?.upstreams ?? []) {
      const failing = changed.get(u.key);
      if (failing !== undefined) u.setFailingChecks(failing);
    }
  }

  ejected(app: string, version: string, upstream: Upstream, ms: number): void {
    this.stats.ejected(app, version);
    this.#logger?.warn({ app, version, endpoint: upstream.key, ejectedForMs: ms, ejections: upstream.ejections }, 'endpoint ejected after consecutive failures');
  }

  readmitted(app: string, version: string, upstream: Upstream): void {
    this.#logger?.info({ app, version, endpoint: upstream.key }, 'endpoint readmitted');
  }

  checked(app: string, passed: boolean): void {
    this.stats.checked(app, passed);
  }

  healthChanged(app: string, version: string, upstream: HealthTarget, healthy: boolean, reason: string): void {
    if (healthy) this.#logger?.info({ app, version, endpoint: upstream.key, check: reason }, 'endpoint passed its health check: healthy');
    else this.#logger?.warn({ app, version, endpoint: upstream.key, check: reason }, 'endpoint failed its health check: unhealthy');
  }

  /** The endpoints of each version of app `name` in the live table, with their state; undefined: no such app. */
  endpointStates(name: string): Record<string, EndpointState[]> | undefined {
    const app = this.#table?.app(name);
    if (!app) return undefined;
    return Object.fromEntries(app.versions.map((v) => [v.name, v.upstreams.map((u) => ({
      endpoint: u.key,
      state: u.ejected ? 'ejected' : u.failingChecks > 0 ? 'unhealthy' : 'available',
      outstanding: u.outstanding,
      consecutiveFailures: u.consecutiveFailures,
      ejections: u.ejections,
    }) satisfies EndpointState)]));
  }

  /** Prometheus text of the endpoint-health metrics (see README "Metrics"). */
  renderMetrics(): string {
    const rows: UnavailableRow[] = [];
    this.#eachVersion((app, version, upstreams) => {
      let ejected = 0;
      let unhealthy = 0;
      for (const u of upstreams) {
        if (u.ejected) ejected++;
        else if (u.failingChecks > 0) unhealthy++;
      }
      if (ejected + unhealthy > 0) rows.push({ app, version, ejected, unhealthy });
    });
    return this.stats.render(rows, this.#exhausted());
  }

  /** The counters as plain cumulative data, for a worker's report to the primary. */
  counterData(): EndpointHealthCounterData {
    return this.stats.data(this.#exhausted());
  }

  /** The endpoints of the live table unavailable now (a walk of the table: for a reader's tick, not per request). */
  unavailable(): UnavailableEndpoint[] {
    const out: UnavailableEndpoint[] = [];
    this.#eachVersion((app, version, upstreams) => {
      for (const u of upstreams) {
        if (u.ejected) out.push([app, version, u.key, 'ejected']);
        else if (u.failingChecks > 0) out.push([app, version, u.key, 'unhealthy']);
      }
    });
    return out;
  }

  #eachVersion(visit: (app: string, version: string, upstreams: readonly Upstream[]) => void): void {
    const table = this.#table;
    for (const app of table?.apps() ?? []) {
      for (const v of app.versions) visit(app.name, v.name, v.upstreams);
    }
  }

  #exhausted(): [string, number][] {
    return [...this.budgets.entries()].map(([app, b]) => [app, b.exhausted]);
  }

  close(): void {
    this.#checker?.close();
    this.budgets.close();
  }
}

/**
 * The endpoints of `table`'s apps that have a health check, from the compiled apps (a
 * worker's table keeps no AppSpec), each version's Upstreams as the probes' targets.
 */
function* checkedRoutes(table: RouteTable): Iterable<CheckedEndpoint> {
  for (const route of table.apps()) {
    if (route.healthCheck === undefined) continue;
    const { check, host } = route.healthCheck;
    for (const version of route.versions) {
      for (const target of version.upstreams) yield { app: route.name, version: version.name, target, host, check };
    }
  }
}
