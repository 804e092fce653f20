/**
 * @module
 * Retry budgets (Finagle's and Envoy's idea), so that retries cannot amplify an outage:
 * per app, a retry is allowed only while the retries of the last {@link WINDOW_SECONDS}
 * seconds stay within `percent` % of the app's requests in that window plus a reserve
 * of `minPerSecond` × the window (so a quiet app can still retry). When every endpoint
 * fails, the app's upstream attempts stay near requests × (1 + percent/100) instead of
 * requests × `retries.attempts`.
 *
 * The window is {@link WINDOW_SECONDS} one-second slots on a coarse clock: a tick that an
 * unref'd one-second interval advances, so counting a request is an array write and a
 * comparison, never a clock read. The slots are allocated on the app's first request: a
 * router with 10,000 apps keeps 10,000 budgets, most of which may never count anything. Budgets are kept per app by {@link RetryBudgets} across
 * route tables (a reload does not refill them); the clock stops with {@link RetryBudgets.close}.
 */
import type { RetryBudgetSettings } from '../model.js';

/** The budget's sliding window, in one-second slots. */
export const WINDOW_SECONDS = 10;

/** A tick that advances once a second; read instead of the clock. */
class CoarseClock {
  tick = 0;
  readonly #timer = setInterval(() => this.tick++, 1000).unref();

  stop(): void {
    clearInterval(this.#timer);
  }
}

export class RetryBudget {
  #percent: number;
  /** Retries allowed in a window besides the percentage: minPerSecond × the window. */
  #reserve: number;
  readonly #clock: CoarseClock;
  /** Requests per slot, then retries per slot ({@link WINDOW_SECONDS} each); allocated on first use. */
  #slots: number[] | undefined;
  #requestSum = 0;
  #retrySum = 0;
  /** The clock tick of the current slot. */
  #tick: number;
  /** Retries refused so far (`fairway_retries_budget_exhausted_total`). */
  exhausted = 0;

  constructor(settings: RetryBudgetSettings, clock: CoarseClock) {
    this.#percent = settings.percent;
    this.#reserve = settings.minPerSecond * WINDOW_SECONDS;
    this.#clock = clock;
    this.#tick = clock.tick;
  }

  /** New settings (a reload), keeping the window's counts. */
  configure(settings: RetryBudgetSettings): void {
    this.#percent = settings.percent;
    this.#reserve = settings.minPerSecond * WINDOW_SECONDS;
  }

  /** Counts one client request (once per request, not per attempt). */
  request(): void {
    if (this.#clock.tick !== this.#tick) this.#rotate();
    (this.#slots ??= new Array<number>(2 * WINDOW_SECONDS).fill(0))[this.#tick % WINDOW_SECONDS]!++;
    this.#requestSum++;
  }

  /** Whether one more retry fits in the budget; if so, it is counted. */
  withdraw(): boolean {
    if (this.#clock.tick !== this.#tick) this.#rotate();
    if (this.#retrySum + 1 > (this.#percent / 100) * this.#requestSum + this.#reserve) {
      this.exhausted++;
      return false;
    }
    (this.#slots ??= new Array<number>(2 * WINDOW_SECONDS).fill(0))[WINDOW_SECONDS + (this.#tick % WINDOW_SECONDS)]!++;
    this.#retrySum++;
    return true;
  }

  /** Retries counted in the window now (for tests and the admin view). */
  get retries(): number {
    if (this.#clock.tick !== this.#tick) this.#rotate();
    return this.#retrySum;
  }

  /** Empties the slots of the seconds that passed since the last count. */
  #rotate(): void {
    const now = this.#clock.tick;
    const slots = this.#slots;
    if (slots !== undefined) {
      const steps = Math.min(now - this.#tick, WINDOW_SECONDS);
      for (let i = 1; i <= steps; i++) {
        const slot = (this.#tick + i) % WINDOW_SECONDS;
        this.#requestSum -= slots[slot]!;
        this.#retrySum -= slots[WINDOW_SECONDS + slot]!;
        slots[slot] = 0;
        slots[WINDOW_SECONDS + slot] = 0;
      }
    }
    this.#tick = now;
  }
}

/** The budgets of every app, kept across route tables; one coarse clock for all. */
export class RetryBudgets {
  readonly #byApp = new Map<string, RetryBudget>();
  #clock: CoarseClock | undefined;

  /** App `app`'s budget under `settings` (the same object while the app lives, its settings updated). */
  for(app: string, settings: RetryBudgetSettings): RetryBudget {
    let b = this.#byApp.get(app);
    if (b === undefined) this.#byApp.set(app, (b = new RetryBudget(settings, (this.#clock ??= new CoarseClock()))));
    else b.configure(settings);
    return b;
  }

  /** Every app's budget. */
  entries(): IterableIterator<[string, RetryBudget]> {
    return this.#byApp.entries();
  }

  /** Forgets the budgets of the apps `keep` says no to. */
  retainOnly(keep: (app: string) => boolean): void {
    for (const app of this.#byApp.keys()) if (!keep(app)) this.#byApp.delete(app);
  }

  close(): void {
    this.#clock?.stop();
    this.#clock = undefined;
  }
}
