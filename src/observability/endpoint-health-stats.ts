/**
 * @module
 * Counters of endpoint health — ejections per app version, health check results and
 * refused retries per app — kept as plain numbers and rendered to Prometheus text when
 * `/metrics` is scraped, with the gauge of endpoints unavailable now (computed from the
 * live route table by the caller). Labels stop at the version: an endpoint label would
 * grow with every pod IP ever seen; the log lines and the admin API name endpoints.
 */

/** Endpoints of one version unavailable now, by reason (an endpoint both ejected and unhealthy counts as ejected). */
export interface UnavailableRow {
  readonly app: string;
  readonly version: string;
  readonly ejected: number;
  readonly unhealthy: number;
}

export class EndpointHealthStats {
  readonly #ejections = new Map<string, { app: string; version: string; n: number }>();
  readonly #checks = new Map<string, { passed: number; failed: number }>();

  ejected(app: string, version: string): void {
    const key = `${app}\u0000${version}`;
    const e = this.#ejections.get(key);
    if (e) e.n++;
    else this.#ejections.set(key, { app, version, n: 1 });
  }

  checked(app: string, passed: boolean): void {
    let c = this.#checks.get(app);
    if (!c) this.#checks.set(app, (c = { passed: 0, failed: 0 }));
    if (passed) c.passed++;
    else c.failed++;
  }

  /**
   * Prometheus text of the counters, the `unavailable` gauge rows, and the retries each
   * app's budget refused (counted by the budgets themselves, off the label-hashing path).
   */
  render(unavailable: readonly UnavailableRow[], exhausted: Iterable<readonly [string, number]>): string {
    const out: string[] = [];
    out.push('# HELP fairway_endpoint_ejections_total Endpoints ejected by outlier detection, by app and version.');
    out.push('# TYPE fairway_endpoint_ejections_total counter');
    for (const e of this.#ejections.values()) out.push(`fairway_endpoint_ejections_total{app="${esc(e.app)}",version="${esc(e.version)}"} ${e.n}`);
    out.push('# HELP fairway_endpoints_unavailable Endpoints getting no new requests now, by app, version and reason (ejected, unhealthy).');
    out.push('# TYPE fairway_endpoints_unavailable gauge');
    for (const r of unavailable) {
      out.push(`fairway_endpoints_unavailable{app="${esc(r.app)}",version="${esc(r.version)}",reason="ejected"} ${r.ejected}`);
      out.push(`fairway_endpoints_unavailable{app="${esc(r.app)}",version="${esc(r.version)}",reason="unhealthy"} ${r.unhealthy}`);
    }
    out.push('# HELP fairway_health_checks_total Active health check probes, by app and result (passed, failed).');
    out.push('# TYPE fairway_health_checks_total counter');
    for (const [app, c] of this.#checks) {
      out.push(`fairway_health_checks_total{app="${esc(app)}",result="passed"} ${c.passed}`);
      out.push(`fairway_health_checks_total{app="${esc(app)}",result="failed"} ${c.failed}`);
    }
    out.push('# HELP fairway_retries_budget_exhausted_total Retries not made because the app\'s retry budget was spent (the client got the error of the failed attempt).');
    out.push('# TYPE fairway_retries_budget_exhausted_total counter');
    for (const [app, n] of exhausted) if (n > 0) out.push(`fairway_retries_budget_exhausted_total{app="${esc(app)}"} ${n}`);
    return out.join('\n') + '\n';
  }
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
