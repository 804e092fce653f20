/**
 * @module
 * JSON logs on stdout (pino). The access log is a child logger (`"log":"access"`), one
 * line per request; other lines are the router's own events. Writes are asynchronous
 * and batched so a slow stdout never blocks the hot path; `flush()` before exit.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: string;
  /** Where lines go; defaults to an asynchronous, batching stdout writer. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: options.level ?? 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
