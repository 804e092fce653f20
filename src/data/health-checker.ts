/**
 * @module
 * Active health checks: for every app with a `healthCheck`, each of its endpoints is
 * asked `GET <path>` every `interval`, on a connection of its own (never the request
 * pools': a probe must not wait behind requests, nor requests behind a probe), with
 * `Host: <the app's first domain>` and `User-Agent: fairway-health-check`. A 2xx or 3xx
 * status within `timeout` passes; anything else (refused, reset, timeout, other status)
 * fails. `unhealthyThreshold` failures in a row mark the endpoint unhealthy — its
 * {@link Upstream} gets no new requests — and `healthyThreshold` passes in a row healthy
 * again. Endpoints start healthy.
 *
 * What a probe marks is a {@link HealthTarget}: the endpoint's {@link Upstream} in a data
 * plane, or in the primary of `fairway serve --workers N` the relay that passes the mark to
 * every worker (`cluster/health-check-relay.ts`), so that N workers do not probe each
 * endpoint N times.
 *
 * Lifecycle: the owner calls {@link HealthChecker.reconcile} with the endpoints to probe
 * after every table swap (or snapshot). It starts a probe for each new (app, endpoint,
 * check), keeps the running ones (and their state) across reloads, moves a probe's mark
 * to a new target object of the same endpoint, and stops the probes no longer named.
 * {@link HealthChecker.close} stops them all. Probes are unref'd timers: they never keep
 * the process alive, and the first probe of each starts at a random point of its interval
 * so that a reload naming thousands of endpoints does not probe them all at once.
 */
import { request, type ClientRequest } from 'node:http';
import type { AppSpec, HealthCheck, VersionSpec } from '../model.js';

/** What a probe marks unhealthy: an endpoint (`host:port`) whose count of failing checks it moves. */
export interface HealthTarget {
  readonly key: string;
  /** One more (`+1`) or one fewer (`-1`) active health check finds the endpoint unhealthy. */
  checkFailing(delta: 1 | -1): void;
}

/** One endpoint of an app version to probe with the app's check. */
export interface CheckedEndpoint {
  readonly app: string;
  readonly version: string;
  readonly target: HealthTarget;
  /** The `Host` of the probes (the app's first domain), undefined: the endpoint's address. */
  readonly host: string | undefined;
  readonly check: HealthCheck;
}

/** Where check results and state changes are told (logged and counted by the owner). */
export interface HealthCheckEvents {
  checked(app: string, passed: boolean): void;
  healthChanged(app: string, version: string, target: HealthTarget, healthy: boolean, reason: string): void;
}

/**
 * The endpoints of every app of `apps` that has a `healthCheck`, version by version;
 * `targetsOf` gives a version's targets (undefined: the version is not served).
 */
export function checkedEndpoints(apps: readonly AppSpec[], targetsOf: (app: AppSpec, version: VersionSpec) => readonly HealthTarget[] | undefined): CheckedEndpoint[] {
  const out: CheckedEndpoint[] = [];
  for (const spec of apps) {
    const check = spec.endpointHealth?.healthCheck;
    if (!check) continue;
    const host = spec.domains.find((d) => !d.startsWith('*.')) ?? spec.domains[0]?.slice(2);
    for (const v of spec.versions) {
      for (const target of targetsOf(spec, v) ?? []) out.push({ app: spec.name, version: v.name, target, host, check });
    }
  }
  return out;
}

export const HEALTH_CHECK_USER_AGENT = 'fairway-health-check';

export class HealthChecker {
  readonly #events: HealthCheckEvents;
  readonly #probes = new Map<string, Probe>();

  constructor(events: HealthCheckEvents) {
    this.#events = events;
  }

  /** Probes exactly the (app, endpoint, check) triples of `endpoints` (see {@link checkedEndpoints}). */
  reconcile(endpoints: Iterable<CheckedEndpoint>): void {
    const seen = new Set<string>();
    for (const { app, version, target, host, check } of endpoints) {
      const key = JSON.stringify([app, target.key, check.path, check.interval, check.timeout, check.healthyThreshold, check.unhealthyThreshold, host]);
      if (seen.has(key)) continue;
      seen.add(key);
      const running = this.#probes.get(key);
      if (running) running.target(target);
      else this.#probes.set(key, new Probe(app, version, target, host, check, this.#events));
    }
    for (const [key, probe] of this.#probes) {
      if (!seen.has(key)) {
        probe.stop();
        this.#probes.delete(key);
      }
    }
  }

  /** Probes running now. */
  get size(): number {
    return this.#probes.size;
  }

  /** Stops every probe (their marks are lifted). */
  close(): void {
    for (const probe of this.#probes.values()) probe.stop();
    this.#probes.clear();
  }
}

/** One endpoint checked for one app: a loop of probe → wait `interval` → probe. */
class Probe {
  readonly #app: string;
  readonly #version: string;
  readonly #check: HealthCheck;
  readonly #events: HealthCheckEvents;
  readonly #headers: Record<string, string>;
  #upstream: HealthTarget;
  #healthy = true;
  /** Passes (while unhealthy) or failures (while healthy) in a row. */
  #run = 0;
  #timer: NodeJS.Timeout | undefined;
  #request: ClientRequest | undefined;
  #stopped = false;

  constructor(app: string, version: string, upstream: HealthTarget, host: string | undefined, check: HealthCheck, events: HealthCheckEvents) {
    this.#app = app;
    this.#version = version;
    this.#upstream = upstream;
    this.#check = check;
    this.#events = events;
    this.#headers = { host: host ?? upstream.key, 'user-agent': HEALTH_CHECK_USER_AGENT, connection: 'close' };
    this.#schedule(Math.random() * check.interval);
  }

  /** The endpoint's target object now (a new Upstream after a pool option changed). */
  target(upstream: HealthTarget): void {
    if (upstream === this.#upstream) return;
    if (!this.#healthy) {
      this.#upstream.checkFailing(-1);
      upstream.checkFailing(1);
    }
    this.#upstream = upstream;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#request?.destroy();
    if (!this.#healthy) this.#upstream.checkFailing(-1);
  }

  #schedule(ms: number): void {
    if (!this.#stopped) this.#timer = setTimeout(() => this.#probe(), ms).unref();
  }

  #probe(): void {
    const { host, port } = splitKey(this.#upstream.key);
    let settled = false;
    const done = (passed: boolean, reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      req.destroy();
      this.#request = undefined;
      if (!this.#stopped) this.#result(passed, reason);
    };
    const req = request({ host, port, path: this.#check.path, method: 'GET', headers: this.#headers, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      // The status decides; the body is not read.
      res.destroy();
      done(status >= 200 && status < 400, `status ${status}`);
    });
    const deadline = setTimeout(() => done(false, 'timeout'), this.#check.timeout).unref();
    req.on('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
    req.end();
    this.#request = req;
  }

  #result(passed: boolean, reason: string): void {
    this.#events.checked(this.#app, passed);
    const check = this.#check;
    if (passed === this.#healthy) {
      this.#run = 0;
    } else if (++this.#run >= (passed ? check.healthyThreshold : check.unhealthyThreshold)) {
      this.#run = 0;
      this.#healthy = passed;
      this.#upstream.checkFailing(passed ? -1 : 1);
      this.#events.healthChanged(this.#app, this.#version, this.#upstream, passed, reason);
    }
    this.#schedule(check.interval);
  }
}

/** `host:port` or `[v6]:port` into the parts `http.request` takes. */
function splitKey(key: string): { host: string; port: number } {
  const colon = key.lastIndexOf(':');
  const host = key.slice(0, colon);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(key.slice(colon + 1)) };
}
