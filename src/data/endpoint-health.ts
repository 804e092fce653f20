/**
 * @module
 * The data plane's endpoint health state that outlives route tables, in one place: it
 * logs and counts what outlier detection and health checks do (as their
 * {@link OutlierEvents} and {@link HealthCheckEvents}), holds the per-app retry budgets
 * ({@link RetryBudgets}) and the {@link HealthChecker}, and renders the endpoint-health
 * metrics. The per-endpoint state itself is on each {@link Upstream}.
 *
 * Lifecycle: one per data plane; {@link EndpointHealth.reconcile} after every table swap
 * (health checks follow the table, budgets of removed apps are dropped);
 * {@link EndpointHealth.close} stops the probes and the budgets' clock.
 */
import type { Logger } from '../observability/logger.js';
import { EndpointHealthStats, type UnavailableRow } from '../observability/endpoint-health-stats.js';
import { HealthChecker, type HealthCheckEvents } from './health-checker.js';
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
  readonly #checker = new HealthChecker(this);
  readonly #logger: Logger | undefined;
  #table: RouteTable | undefined;

  /** Without a logger, nothing is logged (unit tests). */
  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  /** Follows the live table: its health checks run, other apps' budgets go. */
  reconcile(table: RouteTable): void {
    this.#table = table;
    this.#checker.reconcile(table);
    this.budgets.retainOnly((app) => table.app(app) !== undefined);
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

  healthChanged(app: string, version: string, upstream: Upstream, healthy: boolean, reason: string): void {
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
    const table = this.#table;
    for (const app of table?.apps() ?? []) {
      for (const v of app.versions) {
        let ejected = 0;
        let unhealthy = 0;
        for (const u of v.upstreams) {
          if (u.ejected) ejected++;
          else if (u.failingChecks > 0) unhealthy++;
        }
        if (ejected + unhealthy > 0) rows.push({ app: app.name, version: v.name, ejected, unhealthy });
      }
    }
    return this.stats.render(rows, [...this.budgets.entries()].map(([app, b]) => [app, b.exhausted] as const));
  }

  close(): void {
    this.#checker.close();
    this.budgets.close();
  }
}
