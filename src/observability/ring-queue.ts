/**
 * @module
 * A FIFO of references in one circular array: `push` and `shift` move two indices and
 * allocate nothing once the array is large enough, where an array used as a queue
 * (`push` + a head index, cut with `slice` now and then) keeps allocating copies. The
 * per-app log buffer pushes one reference per request; copies that live a few hundred
 * milliseconds outlast V8's young generation, and each one promoted brings the next full
 * collection closer.
 *
 * Contract: items come out in the order they went in; the array doubles when full, and
 * `retain` halves it (down to {@link MIN_CAPACITY}) while under a quarter of it is kept,
 * so after a `retain` its length is at most 4 × `size` or {@link MIN_CAPACITY}.
 */

/** The smallest array (a power of two, as every capacity is). */
export const MIN_CAPACITY = 16;

export class RingQueue<T> {
  #items: (T | undefined)[] = new Array<T | undefined>(MIN_CAPACITY);
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Slots of the array (for tests of the bound). */
  get capacity(): number {
    return this.#items.length;
  }

  push(item: T): void {
    if (this.#size === this.#items.length) this.#resize(this.#items.length * 2);
    this.#items[(this.#head + this.#size) & (this.#items.length - 1)] = item;
    this.#size++;
  }

  /** The oldest item, taken out; undefined when empty. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#items.length - 1);
    this.#size--;
    return item;
  }

  /** Keeps, in order, only the items `keep` returns true for (called once per item, oldest first). */
  retain(keep: (item: T) => boolean): void {
    const items = this.#items;
    const mask = items.length - 1;
    let kept = 0;
    for (let i = 0; i < this.#size; i++) {
      const item = items[(this.#head + i) & mask] as T;
      if (keep(item)) items[(this.#head + kept++) & mask] = item;
    }
    for (let i = kept; i < this.#size; i++) items[(this.#head + i) & mask] = undefined;
    this.#size = kept;
    let capacity = items.length;
    while (capacity > MIN_CAPACITY && kept * 4 < capacity) capacity /= 2;
    if (capacity !== items.length) this.#resize(capacity);
  }

  clear(): void {
    this.#items = new Array<T | undefined>(MIN_CAPACITY);
    this.#head = 0;
    this.#size = 0;
  }

  /** Moves the items, in order, to the front of a new array of `capacity` (a power of two >= size). */
  #resize(capacity: number): void {
    const items = new Array<T | undefined>(capacity);
    const mask = this.#items.length - 1;
    for (let i = 0; i < this.#size; i++) items[i] = this.#items[(this.#head + i) & mask];
    this.#items = items;
    this.#head = 0;
  }
}
