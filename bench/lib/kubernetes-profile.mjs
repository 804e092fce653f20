// Summarises a V8 .cpuprofile (from `node --cpu-prof`) of a router run by the Kubernetes
// bench (bench/kubernetes.ts, BENCH_K8S_PROFILE=1): total sampled time, then the
// functions with the most *inclusive* time (itself and everything it called: where
// start-up and snapshot rebuilds go), then the most *self* time, each with its file.
//
//   node kubernetes-profile.mjs FILE.cpuprofile [TOP=20] [LABEL:FROM-TO ...]
// Each LABEL:FROM-TO (milliseconds since the profile started, which is within a few tens
// of ms of the process's spawn) summarises only the samples in that window, e.g.
// `startup:0-8100 changes:10200-18000`; without windows, the whole profile.
import { readFileSync } from 'node:fs';

const [file, topArg, ...windowArgs] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: kubernetes-profile.mjs FILE.cpuprofile [TOP]\n');
  process.exit(2);
}
const top = Number(topArg ?? 20);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function short(url) {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const m = /node_modules\/(@[^/]+\/[^/]+|[^/]+)\/(.*)$/.exec(u);
  if (m) return `${m[1]}/${m[2].replace(/^dist\//, '')}`;
  const d = /\/dist\/(.*)$/.exec(u);
  if (d) return `fairway ${d[1]}`;
  return u.replace(/^node:/, 'node:');
}
function key(n) {
  const f = n.callFrame;
  const name = f.functionName || '(anonymous)';
  if (!f.url) return name;
  return `${name}  ${short(f.url)}:${f.lineNumber + 1}`;
}

const { samples, timeDeltas } = profile;
// Sample i's time since the profile started (ms), and how long it lasted (µs).
const at = new Float64Array(samples.length);
{
  let t = 0;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i] ?? 0;
    at[i] = t / 1000;
  }
}

function summarize(label, from, to) {
  const selfUs = new Map();
  const inclUs = new Map();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < samples.length; i++) {
    if (at[i] < from || at[i] > to) continue;
    const dt = timeDeltas[i + 1] ?? 0;
    const leaf = byId.get(samples[i]);
    const name = leaf.callFrame.functionName;
    if (name === '(idle)' || name === '(program)') {
      if (name === '(idle)') idle += dt;
      continue;
    }
    total += dt;
    const k = key(leaf);
    selfUs.set(k, (selfUs.get(k) ?? 0) + dt);
    const seen = new Set();
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id);
      if (n.callFrame.functionName === '(root)') break;
      const kk = key(n);
      if (seen.has(kk)) continue;
      seen.add(kk);
      inclUs.set(kk, (inclUs.get(kk) ?? 0) + dt);
    }
  }
  const f = (us) => `${(us / 1000).toFixed(0).padStart(6)} ms ${((100 * us) / (total || 1)).toFixed(1).padStart(5)}%`;
  console.log(`${label}: busy (not idle, not "program") ${(total / 1000).toFixed(0)} ms; idle ${(idle / 1000).toFixed(0)} ms`);
  console.log(`  inclusive (top ${top}; % of busy time):`);
  for (const [k, us] of [...inclUs].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`    ${f(us)}  ${k}`);
  console.log(`  self (top ${top}):`);
  for (const [k, us] of [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`    ${f(us)}  ${k}`);
}

const wall = (profile.endTime - profile.startTime) / 1000;
console.log(`profiled ${(wall / 1000).toFixed(1)} s`);
const windows = windowArgs.map((w) => /^([^:]+):(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(w)).filter(Boolean);
if (windows.length === 0) summarize('whole profile', 0, Infinity);
for (const m of windows) summarize(`${m[1]} (${(Number(m[2]) / 1000).toFixed(2)}–${(Number(m[3]) / 1000).toFixed(2)} s after start)`, Number(m[2]), Number(m[3]));
