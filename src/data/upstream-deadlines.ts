/**
 * @module
 * The waits of in-flight proxied requests (`timeouts.upstreamHeaders`,
 * `timeouts.upstreamIdle`, an app's `timeouts.read`, and `timeouts.clientIdle` while the
 * client does not read the answer), kept by one sweep instead of a timer per request.
 *
 * Why: undici arms a timer object for each request's headers wait and keeps it in its
 * timer list for up to a second after it is cleared. At tens of thousands of requests a
 * second those objects outlive the young generation and fill the old one, which then needs
 * a full collection every few seconds: the pauses that made the router's longest
 * latencies (bench/README "Upstream waits without a timer per request"). Here a wait is two
 * numbers on the request and a slot in one array; nothing is allocated per request.
 *
 * Contract: {@link UpstreamDeadlines.track} (re)arms a holder's deadline `ms` from now;
 * {@link UpstreamDeadlines.untrack} disarms it; a holder whose deadline has passed is
 * untracked, then its `deadlinePassed()` is called, once. A deadline fires between `ms`
 * and `ms` plus two sweep periods after it was armed; the period is a tenth of the
 * shortest wait tracked since the tracker was last empty, between {@link MIN_PERIOD_MS}
 * and {@link MAX_PERIOD_MS}: a 60 s wait is kept to within 2 s, a 300 ms one to within
 * 60 ms.
 *
 * Lifecycle: the sweep is an unref'd interval that runs only while something is tracked
 * (an idle router has no timer), so there is nothing to close.
 */

/** Something {@link UpstreamDeadlines} tracks: its two fields belong to the tracker. */
export interface DeadlineHolder {
  /** Index in the tracker's array; -1 while untracked. Set by the tracker only. */
  deadlineSlot: number;
  /** When the deadline passes, on the tracker's clock. Set by the tracker only. */
  deadlineAt: number;
  /** The deadline passed: called once, after the holder was untracked. Must not throw. */
  deadlinePassed(): void;
}

/** The shortest sweep period, ms (a wait shorter than ten of these fires up to two periods late). */
export const MIN_PERIOD_MS = 10;
/** The longest sweep period, ms. */
export const MAX_PERIOD_MS = 1000;

export class UpstreamDeadlines {
  readonly #holders: DeadlineHolder[] = [];
  #timer: NodeJS.Timeout | undefined;
  #period = MAX_PERIOD_MS;
  /** The clock deadlines are on: `performance.now()` as of the last sweep or (re)start of the sweep. */
  #now = 0;

  /** How many holders are tracked. */
  get size(): number {
    return this.#holders.length;
  }

  /** (Re)arms `holder`'s deadline `ms` (> 0) from now, tracking it if it was not. */
  track(holder: DeadlineHolder, ms: number): void {
    if (holder.deadlineSlot < 0) {
      holder.deadlineSlot = this.#holders.push(holder) - 1;
    }
    const period = Math.min(MAX_PERIOD_MS, Math.max(MIN_PERIOD_MS, Math.floor(ms / 10)));
    if (this.#timer === undefined || period < this.#period) this.#start(period);
    // The clock is up to a period behind: one period more, so that a deadline is never early.
    holder.deadlineAt = this.#now + ms + this.#period;
  }

  /** Stops tracking `holder` (nothing when it is not tracked). */
  untrack(holder: DeadlineHolder): void {
    const slot = holder.deadlineSlot;
    if (slot < 0) return;
    const holders = this.#holders;
    const last = holders.pop()!;
    if (last !== holder) {
      holders[slot] = last;
      last.deadlineSlot = slot;
    }
    holder.deadlineSlot = -1;
    if (holders.length === 0) this.#stop();
  }

  #start(period: number): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#now = performance.now();
    this.#period = period;
    this.#timer = setInterval(this.#sweep, period);
    this.#timer.unref();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#period = MAX_PERIOD_MS;
  }

  readonly #sweep = (): void => {
    const now = (this.#now = performance.now());
    const holders = this.#holders;
    // Backwards: untracking moves the last holder into the freed slot, one already looked at.
    for (let i = holders.length - 1; i >= 0; i--) {
      const holder = holders[i];
      if (holder === undefined || holder.deadlineAt > now) continue;
      this.untrack(holder);
      holder.deadlinePassed();
    }
  };
}
