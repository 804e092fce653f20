/**
 * @module
 * The access log as the data plane sees it: one `info(entry)` per finished request (or
 * upgraded connection), fanned out to the stdout JSON log and to in-process sinks (the
 * per-app ring buffer, the log shipper).
 *
 * Contract: an entry is serialised once ({@link entryFields}), and the stdout line and
 * every sink get that text: sinks keep text, never the entry object, so that what they
 * hold is flat (one string, or bytes off the V8 heap) whatever the entry's fields. A
 * sink's `add` must return at once: it never does I/O, never awaits, and never throws.
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
  /**
   * Takes an entry of `app` (undefined: a request no app took) and `version`, logged at
   * `time` (ms since the epoch), as its serialised `fields` (see {@link entryFields}).
   */
  add(app: string | undefined, version: string | undefined, time: number, fields: string): void;
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
    let fields: string | undefined;
    const sinks = this.#sinks;
    if (sinks.length > 0) {
      const now = Date.now();
      for (let i = 0; i < sinks.length; i++) {
        const sink = sinks[i]!;
        if (sink.active) sink.add(entry.app, entry.version, now, (fields ??= entryFields(entry)));
      }
    }
    this.#stdout?.(fields ?? entryFields(entry));
  }
}

/** A string JSON.stringify would change: a quote, a backslash, a control character or a (lone) surrogate. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
/** `,"key":` per field name seen (a fixed set in practice; bounded all the same). */
const KEY_PREFIXES = new Map<string, string>();
const MAX_KEY_PREFIXES = 256;

/**
 * An entry as the `,"key":value` pairs of a JSON object, in the entry's key order, `undefined` values
 * left out: what pino writes for the same object, but for lone surrogates, which JSON.stringify escapes
 * (`\ud800`) where pino writes them raw. Non-finite numbers are `null`, as JSON has no others.
 *
 * The text is exactly `JSON.stringify(entry)` without its braces (for the plain objects entries are).
 * It is built field by field, which takes about half the time (~0.9 against 1.4–1.9 µs per entry,
 * bench/README "Paired results"): a string with nothing to escape (nearly every one) is copied
 * between quotes, numbers and booleans are printed, and only other values (objects, arrays, strings
 * to escape) go through JSON.stringify.
 */
export function entryFields(entry: AccessLogEntry): string {
  let out = '';
  for (const key in entry) {
    const value = entry[key];
    const type = typeof value;
    // What JSON.stringify leaves out of an object.
    if (type === 'undefined' || type === 'function' || type === 'symbol') continue;
    let prefix = KEY_PREFIXES.get(key);
    if (prefix === undefined) {
      prefix = `,${JSON.stringify(key)}:`;
      if (KEY_PREFIXES.size < MAX_KEY_PREFIXES) KEY_PREFIXES.set(key, prefix);
    }
    if (type === 'string') out += NEEDS_ESCAPE.test(value as string) ? prefix + JSON.stringify(value) : `${prefix}"${value as string}"`;
    else if (type === 'number') out += Number.isFinite(value) ? prefix + String(value) : `${prefix}null`;
    else if (type === 'boolean') out += prefix + String(value);
    else {
      const json = JSON.stringify(value);
      if (json !== undefined) out += prefix + json;
    }
  }
  return out;
}

/**
 * `{"time": ISO, ...entry}` as one JSON text, from the entry's serialised `fields`: as the
 * logs endpoint, `fairway logs` and the shipper show an entry.
 */
export function entryJson(fields: string, time: number): string {
  return `{"time":"${new Date(time).toISOString()}"${fields}}`;
}
