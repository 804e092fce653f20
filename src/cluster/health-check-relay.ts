/**
 * @module
 * The active health checks of `fairway serve --workers N`, run once, in the primary: N
 * workers probing each endpoint would be N times the probes for the same answer. A
 * {@link HealthChecker} probes the endpoints of the live snapshot's apps that have a
 * `healthCheck`; what each probe marks is an {@link HealthTarget} per endpoint here,
 * whose count of failing checks is relayed to every worker (`health-marks`), which marks
 * its Upstreams of that endpoint with it. Results are counted in the primary's
 * {@link EndpointHealthStats} (`fairway_health_checks_total`) and state changes logged
 * here, once.
 *
 * Changes are sent in one batch per event-loop turn (a reload stopping many probes sends
 * one message). A worker that starts gets {@link HealthCheckRelay.marks} in its `start`.
 *
 * Lifecycle: {@link HealthCheckRelay.apply} with every snapshot; {@link HealthCheckRelay.close} stops the probes.
 */
import { checkedEndpoints, HealthChecker, type HealthCheckEvents, type HealthTarget } from '../data/health-checker.js';
import { endpointKey, type Snapshot } from '../model.js';
import type { EndpointHealthStats } from '../observability/endpoint-health-stats.js';
import type { Logger } from '../observability/logger.js';
import type { HealthMark } from './ipc-messages.js';

/** One endpoint as the primary's probes see it. */
class RelayedEndpoint implements HealthTarget {
  readonly key: string;
  failing = 0;
  readonly #changed: (endpoint: RelayedEndpoint) => void;

  constructor(key: string, changed: (endpoint: RelayedEndpoint) => void) {
    this.key = key;
    this.#changed = changed;
  }

  checkFailing(delta: 1 | -1): void {
    this.failing += delta;
    this.#changed(this);
  }
}

export class HealthCheckRelay implements HealthCheckEvents {
  readonly #checker = new HealthChecker(this);
  readonly #endpoints = new Map<string, RelayedEndpoint>();
  readonly #stats: EndpointHealthStats;
  readonly #logger: Logger;
  readonly #send: (changes: readonly HealthMark[]) => void;
  /** Endpoints whose count changed since the last batch was sent. */
  readonly #pending = new Set<RelayedEndpoint>();
  readonly #onChange = (endpoint: RelayedEndpoint): void => {
    if (this.#pending.size === 0) queueMicrotask(() => this.#flush());
    this.#pending.add(endpoint);
  };

  /** `send`: the changes to every worker. */
  constructor(options: { stats: EndpointHealthStats; logger: Logger; send: (changes: readonly HealthMark[]) => void }) {
    this.#stats = options.stats;
    this.#logger = options.logger;
    this.#send = options.send;
  }

  /** Probes exactly the checked endpoints of `snapshot`. */
  apply(snapshot: Snapshot): void {
    const checked = checkedEndpoints(snapshot.apps, (_app, version) => version.endpoints.map((e) => this.#endpoint(endpointKey(e))));
    this.#checker.reconcile(checked);
    // The probes of endpoints no longer named were stopped, their marks lifted (and that change is on its way).
    const named = new Set(checked.map((c) => c.target.key));
    for (const key of this.#endpoints.keys()) if (!named.has(key)) this.#endpoints.delete(key);
  }

  /** The endpoints failing a check now, for a worker that starts. */
  marks(): HealthMark[] {
    return [...this.#endpoints.values()].filter((e) => e.failing > 0).map((e) => [e.key, e.failing] as const);
  }

  checked(app: string, passed: boolean): void {
    this.#stats.checked(app, passed);
  }

  healthChanged(app: string, version: string, target: HealthTarget, healthy: boolean, reason: string): void {
    if (healthy) this.#logger.info({ app, version, endpoint: target.key, check: reason }, 'endpoint passed its health check: healthy');
    else this.#logger.warn({ app, version, endpoint: target.key, check: reason }, 'endpoint failed its health check: unhealthy');
  }

  close(): void {
    this.#checker.close();
    this.#pending.clear();
  }

  #endpoint(key: string): RelayedEndpoint {
    let e = this.#endpoints.get(key);
    if (!e) this.#endpoints.set(key, (e = new RelayedEndpoint(key, this.#onChange)));
    return e;
  }

  #flush(): void {
    if (this.#pending.size === 0) return;
    const changes = [...this.#pending].map((e) => [e.key, e.failing] as const);
    this.#pending.clear();
    this.#send(changes);
  }
}
