/**
 * @module
 * Smooth weighted round-robin (the nginx algorithm): over any window of `sum(weights)`
 * picks each item is chosen exactly `weight` times, and the picks are interleaved rather
 * than bursty (90/10 gives nine v1 then one v2, never 90 v1 in a row). Items with weight 0
 * are never picked. State is per instance: a new route table starts a new sequence.
 */
export class SmoothWeightedPicker<T> {
  readonly #items: T[];
  readonly #weights: number[];
  readonly #current: number[];
  readonly #total: number;

  /** `weights[i]` belongs to `items[i]`; weights must be finite and >= 0. */
  constructor(items: readonly T[], weights: readonly number[]) {
    this.#items = [];
    this.#weights = [];
    for (let i = 0; i < items.length; i++) {
      const w = weights[i]!;
      if (w > 0) {
        this.#items.push(items[i]!);
        this.#weights.push(w);
      }
    }
    this.#current = this.#weights.map(() => 0);
    this.#total = this.#weights.reduce((a, b) => a + b, 0);
  }

  /** True when nothing can ever be picked (no item with weight > 0). */
  get empty(): boolean {
    return this.#items.length === 0;
  }

  /** The next item, or `undefined` when {@link empty}. Constant memory, O(items). */
  pick(): T | undefined {
    const n = this.#items.length;
    if (n <= 1) return this.#items[0];
    let best = 0;
    const cur = this.#current;
    for (let i = 0; i < n; i++) {
      cur[i]! += this.#weights[i]!;
      if (cur[i]! > cur[best]!) best = i;
    }
    cur[best]! -= this.#total;
    return this.#items[best];
  }
}
