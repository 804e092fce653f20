/**
 * @module
 * The shared contract suite for {@link CutoverStore} (the contract is written in
 * `src/cutover/cutover-store.ts`). Every implementation runs it from its own test file:
 *
 *   cutoverStoreContract(t, 'FileCutoverStore', async () => ({ store, reopen, cleanup }));
 *
 * `make()` is called once per subtest and returns an empty store; `reopen()` answers a
 * store over the same data as a new process would see it (the memory store answers
 * itself); `cleanup()` runs when the subtest ends.
 */
import type { Test } from 'tap';
import type { CutoverRecord, CutoverStore } from '../src/cutover/cutover-store.js';

export interface CutoverStoreFixture {
  readonly store: CutoverStore;
  reopen(): CutoverStore;
  cleanup(): Promise<void>;
}

export function record(app: string, step: number, state: CutoverRecord['state'] = 'running'): CutoverRecord {
  return {
    id: `${app}-${step}`,
    plan: { app, from: 'v1', to: 'v2', steps: [5, 25, 50, 100], holdMs: 1000, maxErrorRate: 0.01, maxP99Ms: 500, minRequests: 50, onNoTraffic: 'hold', baseline: 'old' },
    state,
    step,
    total: 100,
    before: { v1: 90, v2: 10 },
    startedAt: '2026-11-27T08:00:00.000Z',
    updatedAt: '2026-11-27T08:00:01.000Z',
    history: [{ index: 0, at: '2026-11-27T08:00:00.000Z', kind: 'start', state: 'running', step: -1, percent: 10, weights: { v1: 90, v2: 10 }, message: 'start' }],
  };
}

export function cutoverStoreContract(t: Test, name: string, make: () => Promise<CutoverStoreFixture>): void {
  const withStore = (title: string, fn: (t: Test, f: CutoverStoreFixture) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const f = await make();
      t.teardown(() => f.cleanup());
      await fn(t, f);
    });

  withStore('an empty store loads no cutover', async (t, { store }) => {
    t.same(await store.load(), []);
  });

  withStore('a saved record is loaded as saved, by this store and by a reopened one', async (t, f) => {
    await f.store.save(record('web', 1));
    t.same(await f.store.load(), [record('web', 1)]);
    t.same(await f.reopen().load(), [record('web', 1)]);
  });

  withStore('a save replaces the app\'s record and keeps the other apps\'', async (t, f) => {
    await f.store.save(record('web', 0));
    await f.store.save(record('shop', 2, 'paused'));
    await f.store.save(record('web', 3, 'completed'));
    const byApp = Object.fromEntries((await f.reopen().load()).map((r) => [r.plan.app, r]));
    t.same(byApp, { web: record('web', 3, 'completed'), shop: record('shop', 2, 'paused') });
  });

  withStore('concurrent saves are applied in call order', async (t, f) => {
    await Promise.all([0, 1, 2, 3].map((step) => f.store.save(record('web', step))));
    t.same((await f.reopen().load()).map((r) => r.step), [3]);
  });

  withStore('the store keeps its own copy: changing the saved object later changes nothing', async (t, f) => {
    const r = { ...record('web', 1), history: [...record('web', 1).history] };
    await f.store.save(r);
    (r.history as unknown[]).push({ index: 1 });
    t.equal((await f.reopen().load())[0]!.history.length, 1);
  });
}
