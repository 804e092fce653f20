/**
 * @module
 * Smooth weighted round-robin (the nginx algorithm): over any window of `sum(weights)`
 * picks each item is chosen exactly `weight` times, and the picks are interleaved rather
 * than bursty (90/10 gives nine v1 then one v2, never 90 v1 in a row). Items with weight 0
 * are never picked. State is per instance: a new route table starts a new sequence.
 *
 * A route table holds one per app, so its arrays are allocated at their exact length,
 * and a picker of at most one item (most apps have one version) holds no weights at all.
 */
/** The weights and running scores of a picker with at most one item (shared: never written). */
const NONE: number[] = [];

export class SmoothWeightedPicker<T> {
  readonly #items: T[];
  readonly #weights: number[];
  readonly #current: number[];
  readonly #total: number;

  /** `weights[i]` belongs to `items[i]`; weights must be finite and >= 0. */
  constructor(items: readonly T[], weights: readonly number[]) {
    const kept: number[] = [];
    for (let i = 0; i < items.length; i++) if (weights[i]! > 0) kept.push(i);
    // map allocates exactly what it returns (push and filter leave room to grow).
    this.#items = kept.map((i) => items[i]!);
    this.#weights = kept.length > 1 ? kept.map((i) => weights[i]!) : NONE;
    this.#current = kept.length > 1 ? kept.map(() => 0) : NONE;
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
