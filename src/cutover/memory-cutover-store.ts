/**
 * @module
 * A {@link CutoverStore} in memory: cutovers do not survive a restart. For routers
 * without a state file, and as the reference implementation in the contract test.
 */
import type { CutoverRecord, CutoverStore } from './cutover-store.js';

export class MemoryCutoverStore implements CutoverStore {
  readonly #records = new Map<string, string>();

  async load(): Promise<CutoverRecord[]> {
    return [...this.#records.values()].map((text) => JSON.parse(text) as CutoverRecord);
  }

  async save(record: CutoverRecord): Promise<void> {
    // Kept as JSON text so a caller mutating its object later cannot change what is stored.
    this.#records.set(record.plan.app, JSON.stringify(record));
  }
}
