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
 * Lifecycle: the data plane calls {@link HealthChecker.reconcile} after every table swap.
 * It starts a probe for each new (app, endpoint, check), keeps the running ones (and
 * their state) across reloads, moves a probe's mark to a new Upstream object of the same
 * endpoint, and stops the probes the table no longer names. {@link HealthChecker.close}
 * stops them all. Probes are unref'd timers: they never keep the process alive, and the
 * first probe of each starts at a random point of its interval so that a reload naming
 * thousands of endpoints does not probe them all at once.
 */
import { request, type ClientRequest } from 'node:http';
import type { HealthCheck } from '../model.js';
import type { RouteTable } from './route-table.js';
import type { Upstream } from './upstream-registry.js';

/** Where check results and state changes are told (logged and counted by `EndpointHealth`). */
export interface HealthCheckEvents {
  checked(app: string, passed: boolean): void;
  healthChanged(app: string, version: string, upstream: Upstream, healthy: boolean, reason: string): void;
}

export const HEALTH_CHECK_USER_AGENT = 'fairway-health-check';

export class HealthChecker {
  readonly #events: HealthCheckEvents;
  readonly #probes = new Map<string, Probe>();

  constructor(events: HealthCheckEvents) {
    this.#events = events;
  }

  /** Probes exactly the (app, endpoint, check) triples of `table`. */
  reconcile(table: RouteTable): void {
    const seen = new Set<string>();
    for (const route of table.apps()) {
      if (route.healthCheck === undefined) continue;
      const { check, host } = route.healthCheck;
      const checkKey = JSON.stringify([check.path, check.interval, check.timeout, check.healthyThreshold, check.unhealthyThreshold, host]);
      for (const version of route.versions) {
        for (const upstream of version.upstreams) {
          const key = `${route.name}\u0000${upstream.key}\u0000${checkKey}`;
          if (seen.has(key)) continue;
          seen.add(key);
          const running = this.#probes.get(key);
          if (running) running.target(upstream);
          else this.#probes.set(key, new Probe(route.name, version.name, upstream, host, check, this.#events));
        }
      }
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
  #upstream: Upstream;
  #healthy = true;
  /** Passes (while unhealthy) or failures (while healthy) in a row. */
  #run = 0;
  #timer: NodeJS.Timeout | undefined;
  #request: ClientRequest | undefined;
  #stopped = false;

  constructor(app: string, version: string, upstream: Upstream, host: string | undefined, check: HealthCheck, events: HealthCheckEvents) {
    this.#app = app;
    this.#version = version;
    this.#upstream = upstream;
    this.#check = check;
    this.#events = events;
    this.#headers = { host: host ?? upstream.key, 'user-agent': HEALTH_CHECK_USER_AGENT, connection: 'close' };
    this.#schedule(Math.random() * check.interval);
  }

  /** The endpoint's Upstream object for the live table (a new one after a pool option changed). */
  target(upstream: Upstream): void {
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
