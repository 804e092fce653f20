/**
 * @module
 * JSON logs on stdout (pino). The access log is a child logger (`"log":"access"`), one
 * line per request; other lines are the router's own events.
 *
 * The access log is on the hot path, so its costs are kept off it (the whole stdout path of
 * one access-log line, batching and write(2) included, measured ~2.2 µs in isolation):
 * - lines are collected and written once per turn of the event loop, so a busy router
 *   makes one write(2) for many requests instead of one per request;
 * - that write is synchronous, as Node's own stdout writes to pipes and files are on
 *   Linux: handing each batch to the libuv thread pool cost more than the write itself.
 *   Like nginx's access log, a stdout that stops reading stalls the router;
 * - the ISO timestamp is formatted once per millisecond, not once per line.
 * Lines leave at the end of the turn that produced them; `flush()` before exit.
 *
 * With data-plane workers, several processes write to the same stdout: with
 * `sharedStdout`, each write(2) holds whole lines and at most {@link PIPE_BUF} bytes (a
 * longer line alone), which a pipe writes atomically, so lines of different processes
 * never mix inside a line.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: string;
  /** Where lines go; defaults to stdout (see above). */
  destination?: DestinationStream;
  /** Other processes write to the same stdout (see the module comment). */
  sharedStdout?: boolean;
}

/** Bytes a pipe writes atomically (POSIX minimum 512; Linux 4096). */
export const PIPE_BUF = 4096;

export function createLogger(options: LoggerOptions = {}): Logger {
  const target = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level: options.level ?? 'info',
      base: undefined,
      timestamp: isoTimeCachedPerMillisecond,
      formatters: { level: (label) => ({ level: label }) },
    },
    new TickBatchedDestination(target, options.sharedStdout === true),
  );
}

/**
 * A writer of `info` lines whose fields the caller has serialised itself (`,"key":value` pairs), for the
 * access log: pino's generic serialisation of an entry took 2.6 µs, one `JSON.stringify` of it 1.2 µs
 * (a micro-benchmark of the bench's entry). Each line goes to `logger`'s destination and starts exactly as
 * `logger.info(entry)` would write it (level, time, the logger's bindings), read through `pino.symbols`,
 * pino's interface for such integrations. Undefined when `info` is not enabled; the level is the one at
 * the call (the router sets it once, at start).
 */
export function infoLineWriter(logger: Logger): ((fields: string) => void) | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const symbols = pino.symbols;
  const state = logger as unknown as Record<symbol, unknown>;
  const start = (state[symbols.lsCacheSym] as Record<number, string>)[logger.levels.values['info']!]!;
  const time = state[symbols.timeSym] as () => string;
  const bindings = state[symbols.chindingsSym] as string;
  const end = state[symbols.endSym] as string;
  const stream = state[symbols.streamSym] as DestinationStream;
  return (fields) => stream.write(start + time() + bindings + fields + end);
}

let lastMs = 0;
let lastTime = '';
function isoTimeCachedPerMillisecond(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

type FlushableDestination = DestinationStream & { flush?: (cb?: (err?: Error) => void) => void; flushSync?: () => void };

/** Buffers lines written during one event-loop turn and writes them to `target` as one string. */
class TickBatchedDestination implements DestinationStream {
  readonly #target: FlushableDestination;
  #buffer = '';
  #scheduled = false;
  readonly #atomicLines: boolean;

  constructor(target: FlushableDestination, atomicLines: boolean) {
    this.#target = target;
    this.#atomicLines = atomicLines;
  }

  write(line: string): void {
    this.#buffer += line;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#drain);
    }
  }

  /** Called by `logger.flush()`: hands over what is buffered, then flushes the target. */
  flush(cb?: (err?: Error) => void): void {
    this.#drain();
    if (this.#target.flush) this.#target.flush(cb);
    else cb?.();
  }

  flushSync(): void {
    this.#drain();
    this.#target.flushSync?.();
  }

  readonly #drain = (): void => {
    this.#scheduled = false;
    if (this.#buffer === '') return;
    const chunk = this.#buffer;
    this.#buffer = '';
    if (!this.#atomicLines || chunk.length <= PIPE_BUF / 4 || Buffer.byteLength(chunk) <= PIPE_BUF) {
      this.#target.write(chunk);
      return;
    }
    // Whole lines, up to PIPE_BUF bytes per write (a longer line alone).
    let start = 0;
    let bytes = 0;
    let end = 0;
    while (end < chunk.length) {
      let nl = chunk.indexOf('\n', end);
      nl = nl === -1 ? chunk.length : nl + 1;
      const lineBytes = Buffer.byteLength(chunk.slice(end, nl));
      if (bytes > 0 && bytes + lineBytes > PIPE_BUF) {
        this.#target.write(chunk.slice(start, end));
        start = end;
        bytes = 0;
      }
      bytes += lineBytes;
      end = nl;
    }
    if (start < chunk.length) this.#target.write(chunk.slice(start));
  };
}
