/**
 * @module
 * The long fuzz run (`npm run build`, then `node --import @tapjs/typescript/import
 * bench/fuzz.ts`). See bench/README.md, "Fuzzing". The same generators and checks as
 * test/fuzz.test.ts (test/helpers/fuzz-inputs.ts, fuzz-checks.ts), with many more inputs:
 *
 * - config loader: FUZZ_ITERATIONS random and mutated config texts (default 50,000): each a
 *   config or FW_CONFIG_SYNTAX / FW_CONFIG_INVALID naming a location, within 2 s;
 * - PROXY protocol parser: 10 × FUZZ_ITERATIONS mutated v1/v2 headers: parsed or rejected
 *   with the defined results, never a throw;
 * - request heads: FUZZ_ITERATIONS / 10 mutated requests and random bytes (default 5,000)
 *   over raw sockets to a router child process (`node dist/cli.js serve`), 20 at a time:
 *   each answered or closed within 5 s; the endpoint (a Node server in this process, whose
 *   strict parser judges) only ever receives well-formed requests; the router serves a
 *   good request at the end.
 *
 * Loopback only; bounded in count and time. FUZZ_SEED repeats a run (the seed is printed
 * first). Prints PASS/FAIL per check, writes bench/results/fuzz-<UTC time>/report.txt,
 * exits 1 when a check failed.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { endpointJudge, fuzzConfigs, fuzzProxyHeaders, fuzzRequests, type FuzzOutcome } from '../test/helpers/fuzz-checks.js';
import { fuzzSeed, Rng } from '../test/helpers/fuzz-inputs.js';
import { startRouterProcess } from '../test/helpers/router-process.js';

const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 50_000);
const seed = fuzzSeed();
const rngFor = (salt: number) => new Rng(seed ^ Math.imul(salt, 0x9e3779b1));
const lines: string[] = [];
const say = (line: string) => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};
const checks: [string, boolean][] = [];
const report = (what: string, n: number, run: FuzzOutcome, ms: number) => {
  say(`${what}: ${n} inputs in ${(ms / 1000).toFixed(1)} s, slowest ${run.slowestMs.toFixed(1)} ms, ${JSON.stringify(run.outcomes)}`);
  for (const f of run.failures.slice(0, 20)) say(`  ${f}`);
  if (run.failures.length > 20) say(`  … and ${run.failures.length - 20} more`);
  checks.push([`${what}: no failure (${run.failures.length})`, run.failures.length === 0]);
};

say(`FUZZ_SEED=${seed} FUZZ_ITERATIONS=${ITERATIONS}`);

let started = performance.now();
report('config loader', ITERATIONS, fuzzConfigs(rngFor(1), ITERATIONS, 2000), performance.now() - started);
started = performance.now();
report('PROXY protocol parser', ITERATIONS * 10, fuzzProxyHeaders(rngFor(2), ITERATIONS * 10), performance.now() - started);

const judge = endpointJudge();
const origin = createServer(judge.handler);
origin.on('clientError', judge.onClientError);
await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
const dir = mkdtempSync(path.join(tmpdir(), 'fairway-fuzz-'));
const configFile = path.join(dir, 'fairway.yaml');
writeFileSync(configFile, `listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
log: { access: false }
timeouts: { clientHeaders: 1s, clientIdle: 1s, clientRequest: 2s, upstreamHeaders: 2s }
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["127.0.0.1:${(origin.address() as AddressInfo).port}"] } }
`);
const router = await startRouterProcess(configFile);
try {
  const requests = Math.max(1, Math.round(ITERATIONS / 10));
  started = performance.now();
  report('request heads', requests, await fuzzRequests(rngFor(3), requests, Number(new URL(router.http).port), 'app.test', 20, 5000), performance.now() - started);
  say(`  ${judge.hits} requests reached the endpoint; ${judge.malformed.length} malformed`);
  for (const m of judge.malformed.slice(0, 20)) say(`  endpoint saw: ${m}`);
  checks.push([`the endpoint only received well-formed requests (${judge.malformed.length} malformed)`, judge.malformed.length === 0]);
  const last = await request(`${router.http}/`, { headers: { host: 'app.test' } });
  await last.body.text();
  checks.push([`a good request is served at the end (${last.statusCode})`, last.statusCode === 200]);
  const memory = router.memory();
  say(`router RSS ${(memory.rss / 1048576).toFixed(0)} MB, peak ${(memory.peak / 1048576).toFixed(0)} MB`);
} finally {
  await router.stop();
  origin.close();
}

for (const [text, ok] of checks) say(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', `fuzz-${stamp}`);
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, 'report.txt'), lines.join('\n') + '\n');
process.stdout.write(`results: ${path.relative(process.cwd(), out)}\n`);
process.exitCode = checks.every(([, ok]) => ok) ? 0 : 1;
