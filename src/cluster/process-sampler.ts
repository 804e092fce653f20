/**
 * @module
 * A data-plane worker's process as its primary shows it at `/metrics`
 * (`fairway_worker_*`): resident memory, heap used, CPU time, and the event loop's delay.
 * Sampled when the worker reports its counters (every `COUNTER_PUSH_MS` and when asked),
 * never on the request path. The delay is measured by Node's event-loop delay histogram
 * (`perf_hooks.monitorEventLoopDelay`, a libuv timer every {@link RESOLUTION_MS}); each
 * sample reads its 99th percentile since the previous sample and starts it over.
 *
 * Lifecycle: created when the worker starts; {@link ProcessSampler.stop} when it closes.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { ProcessSample } from './ipc-messages.js';

/** The event-loop delay histogram's sampling period, ms. */
const RESOLUTION_MS = 20;

export class ProcessSampler {
  readonly #delay: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor() {
    this.#delay.enable();
  }

  /** The process now; the delay percentile covers the time since the previous call. */
  sample(): ProcessSample {
    const memory = process.memoryUsage();
    const cpu = process.cpuUsage();
    // No delay measured yet (a first sample within RESOLUTION_MS): 0, not the histogram's NaN.
    const lag = this.#delay.count > 0 ? this.#delay.percentile(99) / 1e9 : 0;
    this.#delay.reset();
    return { residentBytes: memory.rss, heapUsedBytes: memory.heapUsed, cpuSeconds: (cpu.user + cpu.system) / 1e6, eventLoopLagSeconds: lag };
  }

  stop(): void {
    this.#delay.disable();
  }
}
