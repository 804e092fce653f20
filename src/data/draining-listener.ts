/**
 * @module
 * The seam between the shutdown sequence and what accepts client connections (the data
 * plane's HTTP and HTTPS listeners, each TCP passthrough route): how a listener drains.
 *
 * Lifecycle, driven by {@link ShutdownSequence} (`src/shutdown-sequence.ts`):
 * `beginDrain()` once, at the signal — the listener still accepts, but tells its clients
 * to go elsewhere where the protocol allows it; then, after the shutdown delay,
 * `close(timeoutMs)` once — it stops accepting at once, lets what it accepted finish
 * within `timeoutMs`, cuts what is left at that deadline, and resolves with what it cut
 * once everything it accepted has ended (or, for connections that do not end when cut,
 * after {@link CUT_GRACE_MS} more).
 */

/** What a listener cut at its drain deadline. */
export interface DrainCut {
  /** HTTP requests whose response was not finished. */
  readonly requests: number;
  /** Upgrade requests and their tunnels (WebSocket and others). */
  readonly tunnels: number;
  /** TCP passthrough sessions. */
  readonly tcpSessions: number;
}

export const NOTHING_CUT: DrainCut = { requests: 0, tunnels: 0, tcpSessions: 0 };

export interface DrainingListener {
  /** Draining begins; the listener keeps accepting. Idempotent. */
  beginDrain(): void;
  /** Stops accepting, waits up to `timeoutMs` for what is open, cuts the rest; see the module comment. */
  close(timeoutMs: number): Promise<DrainCut>;
}

/**
 * After a cut, how long a listener still waits for the cut connections to be gone (a
 * tunnel is given 1 s to take its FINs before it is destroyed), ms.
 */
export const CUT_GRACE_MS = 2_000;

/** Whether `promise` settles within `ms` (a timer no longer than that; it never holds the process open). */
export function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(resolve, Math.min(Math.max(ms, 0), 2 ** 31 - 1), false);
    timer.unref();
  });
  return Promise.race([promise.then(() => true, () => true), expired]).finally(() => clearTimeout(timer));
}

/** The sum of cuts. */
export function addCuts(cuts: readonly DrainCut[]): DrainCut {
  return cuts.reduce((sum, c) => ({ requests: sum.requests + c.requests, tunnels: sum.tunnels + c.tunnels, tcpSessions: sum.tcpSessions + c.tcpSessions }), NOTHING_CUT);
}
