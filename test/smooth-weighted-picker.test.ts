import t from 'tap';
import { SmoothWeightedPicker } from '../src/data/smooth-weighted-picker.js';

function count(p: SmoothWeightedPicker<string>, n: number): Record<string, number> {
  const c: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const x = p.pick()!;
    c[x] = (c[x] ?? 0) + 1;
  }
  return c;
}

t.test('a 90/10 split over 1000 picks is exact', async (t) => {
  t.same(count(new SmoothWeightedPicker(['v1', 'v2'], [90, 10]), 1000), { v1: 900, v2: 100 });
});

t.test('a 70/30/0 split gives nothing to the weight-0 item', async (t) => {
  t.same(count(new SmoothWeightedPicker(['a', 'b', 'c'], [70, 30, 0]), 1000), { a: 700, b: 300 });
});

t.test('picks are interleaved: a 90/10 split never serves the minority twice in a row nor the majority more than 9 times running', async (t) => {
  const p = new SmoothWeightedPicker(['v1', 'v2'], [90, 10]);
  let run = 0;
  let longest = 0;
  let prev = '';
  for (let i = 0; i < 1000; i++) {
    const x = p.pick()!;
    run = x === prev ? run + 1 : 1;
    prev = x;
    if (x === 'v2') t.not(run, 2, 'v2 twice in a row');
    else longest = Math.max(longest, run);
  }
  t.ok(longest <= 9, `longest v1 run ${longest}`);
});

t.test('every window of sum(weights) picks holds each item exactly weight times', async (t) => {
  const p = new SmoothWeightedPicker(['a', 'b', 'c'], [5, 3, 2]);
  for (let w = 0; w < 20; w++) t.same(count(p, 10), { a: 5, b: 3, c: 2 });
});

t.test('with no positive weight the picker is empty and picks nothing', async (t) => {
  const p = new SmoothWeightedPicker(['a', 'b'], [0, 0]);
  t.equal(p.empty, true);
  t.equal(p.pick(), undefined);
  t.equal(new SmoothWeightedPicker([], []).pick(), undefined);
});

t.test('fractional weights keep their proportion', async (t) => {
  t.same(count(new SmoothWeightedPicker(['a', 'b'], [0.5, 1.5]), 400), { a: 100, b: 300 });
});
