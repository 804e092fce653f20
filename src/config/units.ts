/**
 * @module
 * Parsing of the human units the config file accepts: durations (`500ms`, `5s`, `2m`,
 * `1h`, or a bare number of milliseconds) and sizes (`512`, `16kb`, `10mb`, `1gb`; binary
 * multiples: 1kb = 1024 bytes). Both return `undefined` for input they do not accept, so
 * the schema can report the exact key.
 */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = DURATION.exec(value.trim().toLowerCase());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * DURATION_MS[m[2]!]!);
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|k|mb|m|gb|g)?$/;
const SIZE_BYTES: Record<string, number> = { b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = SIZE.exec(value.trim().toLowerCase());
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * SIZE_BYTES[m[2] ?? 'b']!);
}
