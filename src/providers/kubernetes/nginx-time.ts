/**
 * @module
 * nginx time values as the Deis router accepted them in annotations: a positive integer
 * with an optional unit, `ms`, `s`, `m`, `h`, `d`, `w`, `M` (30 days) or `y` (365 days);
 * a bare number is seconds (`"30"` = `"30s"`). Anything else is `undefined`, so the caller
 * can report the annotation and fall back to its default, as Deis did.
 */
const NGINX_TIME = /^([1-9]\d*)(ms|[smhdwMy])?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };

/** Milliseconds, or undefined when `value` is not an nginx time. */
export function parseNginxTime(value: string): number | undefined {
  const m = NGINX_TIME.exec(value.trim());
  return m ? Number(m[1]) * UNIT_MS[m[2] ?? 's']! : undefined;
}
