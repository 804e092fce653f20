/**
 * @module
 * Passive outlier detection for one app version, Envoy's: exchanges report each
 * attempt's outcome, and an endpoint that fails `consecutiveFailures` times in a row is
 * ejected — pickers skip it — for `baseEjectionTime` × the times it was ejected, capped at
 * `maxEjectionTime`. A failure is a connect failure or timeout, a reset or timeout before
 * the response, or a 5xx response; any other response ends the run.
 *
 * Guard rails: at most `maxEjectionPercent` % of the version's endpoints (rounded down)
 * are ejected at once, and never its last available one, so a one-endpoint version is
 * never ejected. A failure that may not eject keeps counting: the next one tries again.
 *
 * The state is the {@link Upstream}'s (it outlives route tables, so a reload keeps it);
 * a detector holds only its version's settings (an object apps with the same settings
 * share) and endpoint list. Reporting is a field
 * write or two on the hot path; ejection runs on a failure, readmission on a timer.
 */
import type { OutlierDetection } from '../model.js';
import type { Upstream } from './upstream-registry.js';

/** Where ejections and readmissions are told (logged and counted by `EndpointHealth`). */
export interface OutlierEvents {
  ejected(app: string, version: string, upstream: Upstream, ms: number): void;
  readmitted(app: string, version: string, upstream: Upstream): void;
}

export class OutlierDetector {
  readonly #app: string;
  readonly #version: string;
  readonly #upstreams: readonly Upstream[];
  readonly #settings: OutlierDetection;
  readonly #events: OutlierEvents;
  /** Most endpoints of the version ejected at once. */
  readonly #maxEjected: number;

  constructor(app: string, version: string, upstreams: readonly Upstream[], settings: OutlierDetection, events: OutlierEvents) {
    this.#app = app;
    this.#version = version;
    this.#upstreams = upstreams;
    this.#settings = settings;
    this.#events = events;
    this.#maxEjected = Math.floor((upstreams.length * settings.maxEjectionPercent) / 100);
  }

  /** Whether this detector can ever eject (consecutiveFailures > 0 and room under the percentage). */
  get enabled(): boolean {
    return this.#settings.consecutiveFailures > 0 && this.#maxEjected > 0;
  }

  /** An attempt got a response below 500: the endpoint's run of failures ends. */
  success(u: Upstream): void {
    if (u.consecutiveFailures !== 0) u.consecutiveFailures = 0;
  }

  /** An attempt failed (see the module comment); may eject `u`. */
  failure(u: Upstream): void {
    if (u.ejected || !this.enabled) return;
    if (++u.consecutiveFailures < this.#settings.consecutiveFailures || !this.#mayEject(u)) return;
    const s = this.#settings;
    const ms = Math.min(s.baseEjectionTime * (u.ejections + 1), s.maxEjectionTime);
    u.eject(ms, s.baseEjectionTime, () => this.#events.readmitted(this.#app, this.#version, u));
    this.#events.ejected(this.#app, this.#version, u, ms);
  }

  /** Under the percentage, and another endpoint of the version stays available. */
  #mayEject(u: Upstream): boolean {
    let ejected = 0;
    let othersAvailable = 0;
    for (const x of this.#upstreams) {
      if (x.ejected) ejected++;
      if (x !== u && x.available) othersAvailable++;
    }
    return ejected < this.#maxEjected && othersAvailable > 0;
  }
}
