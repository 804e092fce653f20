import t from 'tap';
import { MAX_PERIOD_MS, MIN_PERIOD_MS, UpstreamDeadlines, type DeadlineHolder } from '../src/data/upstream-deadlines.js';

/**
 * A holder that records when its deadline passed (ms after it was made; -1 if it was still
 * tracked when told) and resolves `passed`.
 */
function holder(): DeadlineHolder & { fired: number[]; passed: Promise<number> } {
  const made = performance.now();
  let resolve!: (ms: number) => void;
  const h = {
    deadlineSlot: -1,
    deadlineAt: 0,
    fired: [] as number[],
    passed: new Promise<number>((r) => (resolve = r)),
    deadlinePassed() {
      const ms = h.deadlineSlot === -1 ? performance.now() - made : -1;
      h.fired.push(ms);
      resolve(ms);
    },
  };
  return h;
}

// The tracker's interval is unref'd (a router's sockets keep its process alive): this keeps the test's.
const keepAlive = setInterval(() => {}, 60_000);
t.teardown(() => clearInterval(keepAlive));

/** Resolves after `ms` on a timer of its own (the waits under test are the tracker's). */
const after = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts the intervals set and not cleared while `fn` runs (the tracker's sweep is one). */
async function liveIntervals(fn: (live: () => number) => Promise<void>): Promise<void> {
  const { setInterval: set, clearInterval: clear } = globalThis;
  const live = new Set<unknown>();
  globalThis.setInterval = ((...args: Parameters<typeof set>) => {
    const timer = set(...args);
    live.add(timer);
    return timer;
  }) as typeof set;
  globalThis.clearInterval = ((timer: Parameters<typeof clear>[0]) => {
    live.delete(timer);
    clear(timer);
  }) as typeof clear;
  try {
    await fn(() => live.size);
  } finally {
    Object.assign(globalThis, { setInterval: set, clearInterval: clear });
  }
}

t.test('a deadline passes once, never before its wait and at most two sweep periods after it', async (t) => {
  const d = new UpstreamDeadlines();
  const h = holder();
  d.track(h, 200); // period: 20 ms
  t.equal(d.size, 1);
  const ms = await h.passed;
  t.ok(ms >= 200, `passed after ${ms.toFixed(1)} ms, not before the 200 ms wait, and untracked first`);
  t.ok(ms < 200 + 2 * 20 + 150, `passed after ${ms.toFixed(1)} ms (two periods are 40 ms; 150 ms for a busy machine)`);
  t.equal(d.size, 0, 'no longer tracked');
  await after(100);
  t.same(h.fired.length, 1, 'once');
});

t.test('re-arming moves the deadline; untracking drops it', async (t) => {
  const d = new UpstreamDeadlines();
  const moved = holder();
  const dropped = holder();
  d.track(moved, 400);
  d.track(dropped, 100);
  d.untrack(dropped);
  t.equal(d.size, 1);
  // Re-armed every 50 ms for 300 ms: a 400 ms wait that keeps being refreshed never passes.
  for (let i = 0; i < 6; i++) {
    await after(50);
    d.track(moved, 400);
  }
  t.same(moved.fired, [], 'refreshed in time: not passed');
  t.same(dropped.fired, [], 'untracked: never passes');
  const ms = await moved.passed;
  t.ok(ms >= 700, `passed ${ms.toFixed(0)} ms after it was made: its full wait after the last re-arming`);
  t.equal(d.size, 0);
  t.same(dropped.fired, []);
});

t.test('many holders: untracking any of them in any order leaves exactly the others to pass', async (t) => {
  const d = new UpstreamDeadlines();
  const all = Array.from({ length: 50 }, () => holder());
  for (const h of all) d.track(h, 100);
  // Every third one goes, in an order that moves holders between slots.
  const gone = all.filter((_, i) => i % 3 === 0).reverse();
  for (const h of gone) d.untrack(h);
  for (const h of gone) d.untrack(h); // a second untrack does nothing
  const kept = all.filter((h) => !gone.includes(h));
  t.equal(d.size, kept.length);
  await Promise.all(kept.map((h) => h.passed));
  t.ok(kept.every((h) => h.fired.length === 1 && h.fired[0]! >= 100), 'each kept holder passed once, untracked first');
  t.ok(gone.every((h) => h.fired.length === 0), 'no untracked holder passed');
  t.equal(d.size, 0);
});

t.test('a holder that re-arms another, or itself, while its own deadline passes is kept right', async (t) => {
  const d = new UpstreamDeadlines();
  const other = holder();
  const rearmed = holder();
  let calls = 0;
  const first: DeadlineHolder = {
    deadlineSlot: -1,
    deadlineAt: 0,
    deadlinePassed() {
      calls++;
      d.untrack(other); // as an aborted request's retry might
      if (calls === 1) d.track(first, 50); // armed again from inside the sweep
    },
  };
  d.track(first, 50);
  d.track(other, 5000);
  d.track(rearmed, 100);
  await rearmed.passed;
  await after(150);
  t.equal(calls, 2, 'the re-armed holder passed again, once');
  t.same(other.fired, [], 'the holder it untracked did not pass');
  t.equal(d.size, 0);
});

t.test('the sweep runs only while something is tracked, at a tenth of the shortest wait within its bounds', async (t) => {
  await liveIntervals(async (live) => {
    const d = new UpstreamDeadlines();
    t.equal(live(), 0, 'none before anything is tracked');
    const h = holder();
    d.track(h, 60_000);
    t.equal(live(), 1, 'one interval while a wait is armed');
    const short = holder();
    d.track(short, 1); // period: MIN_PERIOD_MS
    t.equal(live(), 1, 'a shorter wait restarts the one interval, not a second');
    const ms = await short.passed;
    t.ok(ms < 1 + 2 * MIN_PERIOD_MS + 150, `a 1 ms wait passed after ${ms.toFixed(1)} ms: the period went down to ${MIN_PERIOD_MS} ms`);
    d.untrack(h);
    t.equal(d.size, 0);
    t.equal(live(), 0, 'no timer once nothing is tracked');
    t.equal(MAX_PERIOD_MS, 1000, 'a long wait is kept to within two seconds');
  });
});
