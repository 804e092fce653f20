/**
 * @module
 * The access log as the data plane sees it: one `info(entry)` per finished request (or
 * upgraded connection), fanned out to the stdout JSON log and to in-process sinks (the
 * per-app ring buffer, the log shipper).
 *
 * Contract: the entry object is built fresh by the caller for this one call and never
 * changed afterwards, so sinks may keep the reference and serialise it only when they
 * are read (no second formatting cost on the request path). A sink's `add` must return at
 * once: it never does I/O, never awaits, and never throws.
 */
import type { Logger } from './logger.js';

/**
 * One access-log line before serialisation. Fields are those documented in README
 * ("Logs"); `undefined` fields are left out when written.
 */
export interface AccessLogEntry {
  readonly app?: string;
  readonly version?: string;
  readonly status?: number;
  readonly [field: string]: unknown;
}

/** Somewhere besides stdout that access-log entries go. */
export interface AccessLogSink {
  /** False while the sink is configured off: it is skipped. */
  readonly active: boolean;
  /** Takes `entry` (kept by reference, never changed), logged at `time` (ms since the epoch). */
  add(entry: AccessLogEntry, time: number): void;
}

export class AccessLog {
  readonly #stdout: Logger | undefined;
  readonly #sinks: readonly AccessLogSink[];

  /** `stdout`: the `"log":"access"` child logger, or undefined when `log.access` is off. */
  constructor(stdout: Logger | undefined, sinks: readonly AccessLogSink[]) {
    this.#stdout = stdout;
    this.#sinks = sinks;
  }

  info(entry: AccessLogEntry): void {
    const sinks = this.#sinks;
    if (sinks.length > 0) {
      const now = Date.now();
      for (let i = 0; i < sinks.length; i++) {
        const sink = sinks[i]!;
        if (sink.active) sink.add(entry, now);
      }
    }
    this.#stdout?.info(entry);
  }
}

/** `{"time": ISO, ...entry}` as one JSON text, as the logs endpoint, `fairway logs` and the shipper show an entry. */
export function entryJson(entry: AccessLogEntry, time: number): string {
  return JSON.stringify({ time: new Date(time).toISOString(), ...entry });
}
