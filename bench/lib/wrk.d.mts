// Types of the part of wrk.mjs that TypeScript benches import.
export interface WrkResult {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  requests: number;
  duration_s: number | undefined;
  non2xx: number;
  socketErrors: number;
}
/** Reads `wrk --latency` output; throws when it is incomplete. */
export function parseWrk(text: string): WrkResult;
