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
import { infoLineWriter, type Logger } from './logger.js';

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
  /** Writes one stdout line from an entry's serialised fields; undefined when the stdout access log is off. */
  readonly #stdout: ((fields: string) => void) | undefined;
  readonly #sinks: readonly AccessLogSink[];

  /**
   * `stdout`: the `"log":"access"` child logger, or undefined when `log.access` is off. Its lines are
   * written as `stdout.info(entry)` would write them, by {@link entryFields} instead of pino's
   * serialisation.
   */
  constructor(stdout: Logger | undefined, sinks: readonly AccessLogSink[]) {
    this.#stdout = stdout && infoLineWriter(stdout);
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
    this.#stdout?.(entryFields(entry));
  }
}

/**
 * An entry as the `,"key":value` pairs of a JSON object, in the entry's key order, `undefined` values
 * left out: what pino writes for the same object, but for lone surrogates, which JSON.stringify escapes
 * (`\ud800`) where pino writes them raw. Non-finite numbers are `null`, as JSON has no others.
 */
export function entryFields(entry: AccessLogEntry): string {
  const json = JSON.stringify(entry);
  return json.length > 2 ? `,${json.slice(1, -1)}` : '';
}

/** `{"time": ISO, ...entry}` as one JSON text, as the logs endpoint, `fairway logs` and the shipper show an entry. */
export function entryJson(entry: AccessLogEntry, time: number): string {
  return JSON.stringify({ time: new Date(time).toISOString(), ...entry });
}
