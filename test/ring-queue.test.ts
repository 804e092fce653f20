import t from 'tap';
import { MIN_CAPACITY, RingQueue } from '../src/observability/ring-queue.js';

/** A seeded generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('pushes, shifts and retains behave as a plain array used as a queue, in order, at every step', async (t) => {
  const seed = Number(process.env.RING_QUEUE_SEED ?? 7);
  const rnd = random(seed);
  const q = new RingQueue<number>();
  let model: number[] = [];
  let next = 0;
  let bad = '';
  for (let step = 0; step < 20_000 && bad === ''; step++) {
    const r = rnd();
    if (r < 0.55) {
      // Bursts of pushes, so that the array grows past several doublings.
      for (let n = Math.floor(rnd() * 8); n >= 0; n--) {
        q.push(next);
        model.push(next++);
      }
    } else if (r < 0.97) {
      const got = q.shift();
      const want = model.shift();
      if (got !== want) bad = `step ${step}: shift gave ${got}, want ${want}`;
    } else {
      const modulus = 2 + Math.floor(rnd() * 4);
      const seen: number[] = [];
      q.retain((item) => (seen.push(item), item % modulus !== 0));
      if (seen.join() !== model.join()) bad = `step ${step}: retain saw ${seen.length} items out of order`;
      model = model.filter((item) => item % modulus !== 0);
      if (q.capacity > Math.max(MIN_CAPACITY, 4 * q.size)) bad = `step ${step}: ${q.capacity} slots for ${q.size} items after retain`;
    }
    if (q.size !== model.length) bad ||= `step ${step}: size ${q.size}, want ${model.length}`;
  }
  t.equal(bad, '', `seed ${seed} (RING_QUEUE_SEED replays another)`);
  const rest: number[] = [];
  for (let item = q.shift(); item !== undefined; item = q.shift()) rest.push(item);
  t.same(rest, model, 'what is left comes out in order');
  t.equal(q.shift(), undefined, 'empty');
});

t.test('a queue that stays the same size reuses its array: no growth over 100,000 pushes and shifts', async (t) => {
  const q = new RingQueue<object>();
  const item = {};
  for (let i = 0; i < 1000; i++) q.push(item);
  const capacity = q.capacity;
  for (let i = 0; i < 100_000; i++) {
    q.push(item);
    q.shift();
  }
  t.equal(q.size, 1000);
  t.equal(q.capacity, capacity, `${capacity} slots throughout`);
  q.clear();
  t.equal(q.size, 0);
  t.equal(q.capacity, MIN_CAPACITY, 'clear lets the array go');
});
