/**
 * @module
 * The router's graceful stop, in one place: what happens, in which order, on SIGTERM or
 * SIGINT (`fairway serve`, through `Router.drain()`) and on `Router.close(timeoutMs)`. The
 * composition root hands it the parts; this module only orders them, times them and logs
 * them (README "Stopping and draining").
 *
 * Phases of {@link ShutdownSequence.run}:
 * 1. Draining begins (logged): {@link ShutdownSequence.draining} turns true, so `/readyz`
 *    answers 503 at once, and every listener's `beginDrain()` runs (HTTP responses from
 *    now on carry `Connection: close`, so keep-alive clients leave after their request).
 * 2. For `delay` the listeners keep accepting and serving, while load balancers notice.
 * 3. The listeners stop accepting (logged) and close their idle connections; requests in
 *    flight, WebSocket tunnels and TCP passthrough sessions get `drainTimeout`, counted
 *    from this moment (so the whole drain takes at most `delay + drainTimeout`); what is
 *    still open then is cut, and a `FW_DRAIN_TIMEOUT` warning says how much.
 * 4. The rest stops — `stopRest`, in the composition root's order: cutovers, leases,
 *    providers, certificates and ACME, the admin API, the log shipper.
 * 5. `fairway stopped` is logged with what was cut (zeros normally) and how long it all
 *    took; the log is flushed.
 *
 * `run()` runs the sequence once: a later call (another `close()`, a `drain()` after a
 * `close()`) gets the first call's promise, with the first call's settings. A second
 * signal is the process's business: `run-server.ts` exits at once.
 */
import type { ShutdownSettings } from './model.js';
import type { Logger } from './observability/logger.js';
import { addCuts, type DrainCut, type DrainingListener } from './data/draining-listener.js';

/** Longest timer Node keeps (longer ones fire at once), ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ShutdownSequenceOptions {
  readonly logger: Logger;
  /** Drained side by side: the data plane and each TCP passthrough route. */
  readonly listeners: readonly DrainingListener[];
  /** Stops everything else, once the listeners are closed; its failures are logged, not thrown. */
  readonly stopRest: () => Promise<void>;
}

/** How a stop went. */
export interface ShutdownReport {
  /** What was still open at the drain deadline, and cut. */
  readonly cut: DrainCut;
  /** From the start of the sequence to its end, ms. */
  readonly durationMs: number;
}

export class ShutdownSequence {
  readonly #options: ShutdownSequenceOptions;
  #running: Promise<ShutdownReport> | undefined;

  constructor(options: ShutdownSequenceOptions) {
    this.#options = options;
  }

  /** True from the start of the sequence on (readiness is false then). */
  get draining(): boolean {
    return this.#running !== undefined;
  }

  /** Runs the sequence (see the module comment); `reason` is logged (the signal, or `close`). */
  run(settings: ShutdownSettings, reason: string): Promise<ShutdownReport> {
    return (this.#running ??= this.#run(settings, reason));
  }

  async #run(settings: ShutdownSettings, reason: string): Promise<ShutdownReport> {
    const { logger, listeners, stopRest } = this.#options;
    const started = performance.now();
    const delay = Math.min(settings.delay, MAX_TIMER_MS);
    const drainTimeout = Math.min(settings.drainTimeout, MAX_TIMER_MS);
    logger.info({ reason, delay, drainTimeout }, 'stopping: draining (readiness is false; responses close their connections; listeners accept for the delay)');
    for (const listener of listeners) listener.beginDrain();
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    logger.info({ drainTimeout }, 'stopping: listeners closed; requests, tunnels and TCP sessions in flight finish within the drain timeout');
    const cut = addCuts(await Promise.all(listeners.map((l) => l.close(drainTimeout))));
    if (cut.requests + cut.tunnels + cut.tcpSessions > 0) {
      logger.warn({ code: 'FW_DRAIN_TIMEOUT', cut, drainTimeout }, 'stopping: the drain timeout ended; what was still open was cut');
    }
    try {
      await stopRest();
    } catch (err) {
      logger.error({ code: 'FW_INTERNAL', err: (err as Error).message }, 'stopping: a component failed to stop');
    }
    const durationMs = Math.round(performance.now() - started);
    logger.info({ cut, durationMs }, 'fairway stopped');
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    return { cut, durationMs };
  }
}
