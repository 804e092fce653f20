// Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most
// self time, and self time grouped by where the code lives (Fairway, undici, pino,
// prom-client, Node internals, native/GC). Used by bench/run.sh with BENCH_PROFILE=1.
//
//   node profile-top.mjs FILE.cpuprofile [TOP=25] [REQUESTS]
// With REQUESTS (requests the process served while profiled), each line also shows its
// main-thread CPU time per request.
import { readFileSync } from 'node:fs';

const [file, topArg, requestsArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: profile-top.mjs FILE.cpuprofile [TOP]\n');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));

// Self time per node id: each sample is attributed to the node on top of the stack,
// and lasted until the next sample (timeDeltas[i + 1]).
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map();
const { samples, timeDeltas } = profile;
for (let i = 0; i < samples.length; i++) {
  const dt = timeDeltas[i + 1] ?? 0;
  selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
}

function where(url) {
  if (!url) return 'native/V8';
  if (url.includes('/dist/data/')) return 'fairway data plane';
  if (url.includes('/dist/')) return 'fairway (other)';
  if (url.includes('node_modules/undici/')) return 'undici';
  if (url.includes('node_modules/pino') || url.includes('node_modules/sonic-boom') || url.includes('node_modules/fast-')) return 'pino (access log)';
  if (url.includes('node_modules/prom-client')) return 'prom-client';
  if (url.startsWith('node:')) return 'node internals';
  if (url.includes('node_modules/')) return 'other packages';
  return 'other';
}

const byFunction = new Map();
const byPlace = new Map();
let total = 0;
let idle = 0;
for (const [id, us] of selfUs) {
  const f = byId.get(id).callFrame;
  total += us;
  if (f.functionName === '(idle)') idle += us;
  const short = f.url ? f.url.replace(/^.*\/(node_modules\/|dist\/)/, '$1').replace(/^file:\/\//, '') : '';
  const key = `${f.functionName || '(anonymous)'}  ${short}${f.url ? `:${f.lineNumber + 1}` : ''}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const place = ['(idle)', '(garbage collector)', '(program)'].includes(f.functionName) ? f.functionName : where(f.url);
  byPlace.set(place, (byPlace.get(place) ?? 0) + us);
}
const busy = total - idle;
const requests = Number(requestsArg) || 0;
const pct = (us) =>
  `${((100 * us) / busy).toFixed(1).padStart(5)}%` + (requests ? `  ${(us / requests).toFixed(2).padStart(6)} µs/req` : '');

console.log(`profile: ${file}`);
console.log(`sampled ${(total / 1e6).toFixed(1)} s, busy (not idle) ${(busy / 1e6).toFixed(1)} s; percentages are of busy time`);
if (requests) console.log(`${requests} requests: ${(busy / requests).toFixed(1)} µs of main-thread time per request`);
console.log('');
console.log('self time by place:');
for (const [place, us] of [...byPlace].filter(([p]) => p !== '(idle)').sort((a, b) => b[1] - a[1])) {
  console.log(`  ${pct(us)}  ${place}`);
}
console.log(`\ntop ${top} functions by self time:`);
for (const [key, us] of [...byFunction].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`  ${pct(us)}  ${key}`);
}
