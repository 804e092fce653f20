/**
 * @module
 * Counters of endpoint health — ejections per app version, health check results and
 * refused retries per app — kept as plain numbers and rendered to Prometheus text when
 * `/metrics` is scraped, with the gauge of endpoints unavailable now (computed from the
 * live route table by the caller). Labels stop at the version: an endpoint label would
 * grow with every pod IP ever seen; the log lines and the admin API name endpoints.
 *
 * Across processes (`fairway serve --workers N`): a worker reads its ejection and
 * refused-retry counters as cumulative data ({@link EndpointHealthStats.data}) and the
 * endpoints unavailable in it now ({@link UnavailableEndpoint}); the primary folds the
 * counters in as differences from that worker's previous reading
 * ({@link EndpointHealthStats.add}, monotonic across a worker's death) and counts an
 * endpoint unavailable when it is so in any worker ({@link unavailableRows}).
 */

/** Endpoints of one version unavailable now, by reason (an endpoint both ejected and unhealthy counts as ejected). */
export interface UnavailableRow {
  readonly app: string;
  readonly version: string;
  readonly ejected: number;
  readonly unhealthy: number;
}

/** One endpoint unavailable now in one data plane: `[app, version, endpoint, reason]`. */
export type UnavailableEndpoint = readonly [app: string, version: string, endpoint: string, reason: 'ejected' | 'unhealthy'];

/** The counters a worker sends, cumulative (structured-cloneable; only non-zero entries). */
export interface EndpointHealthCounterData {
  readonly ejections: readonly (readonly [app: string, version: string, n: number])[];
  /** Retries each app's budget refused (a budget starts again from zero when its app comes back after a removal). */
  readonly budgetExhausted: readonly (readonly [app: string, n: number])[];
}

/**
 * The {@link UnavailableRow}s of the endpoints unavailable in any of several data planes
 * (each endpoint counted once per version: `ejected` if any has it ejected, else `unhealthy`).
 */
export function unavailableRows(lists: Iterable<readonly UnavailableEndpoint[]>): UnavailableRow[] {
  const byEndpoint = new Map<string, UnavailableEndpoint>();
  for (const list of lists) {
    for (const e of list) {
      const key = `${e[0]}\u0000${e[1]}\u0000${e[2]}`;
      if (byEndpoint.get(key)?.[3] !== 'ejected') byEndpoint.set(key, e);
    }
  }
  const rows = new Map<string, { app: string; version: string; ejected: number; unhealthy: number }>();
  for (const [app, version, , reason] of byEndpoint.values()) {
    const key = `${app}\u0000${version}`;
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { app, version, ejected: 0, unhealthy: 0 }));
    r[reason]++;
  }
  return [...rows.values()];
}

export class EndpointHealthStats {
  readonly #ejections = new Map<string, { app: string; version: string; n: number }>();
  readonly #checks = new Map<string, { passed: number; failed: number }>();
  /** Refused retries folded in from other processes, by app (a data plane's own are its budgets'). */
  readonly exhausted = new Map<string, number>();

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

  /** The ejection counters and `exhausted` (each app's refused retries) as plain cumulative data. */
  data(exhausted: Iterable<readonly [string, number]>): EndpointHealthCounterData {
    return {
      ejections: [...this.#ejections.values()].map((e) => [e.app, e.version, e.n] as const),
      budgetExhausted: [...exhausted].filter(([, n]) => n > 0),
    };
  }

  /**
   * Folds in another process's counters: adds `next - prev` (two successive readings of
   * it, see {@link data}; no `prev`: its first). A count below its previous reading
   * started again from zero (a budget recreated): all of it is new.
   */
  add(next: EndpointHealthCounterData, prev: EndpointHealthCounterData | undefined): void {
    const before = new Map(prev?.ejections.map(([app, version, n]) => [`${app}\u0000${version}`, n]));
    for (const [app, version, n] of next.ejections) {
      const key = `${app}\u0000${version}`;
      const added = increase(n, before.get(key));
      if (added === 0) continue;
      const e = this.#ejections.get(key);
      if (e) e.n += added;
      else this.#ejections.set(key, { app, version, n: added });
    }
    const spent = new Map(prev?.budgetExhausted);
    for (const [app, n] of next.budgetExhausted) {
      const added = increase(n, spent.get(app));
      if (added > 0) this.exhausted.set(app, (this.exhausted.get(app) ?? 0) + added);
    }
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

/** What a cumulative count gained since `prev` (all of it when it started again from zero). */
function increase(next: number, prev: number | undefined): number {
  return prev === undefined || next < prev ? next : next - prev;
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
