/**
 * @module
 * Zero-downtime check of a cutover under load (`npm run build`, then
 * `node --import @tapjs/typescript/import bench/cutover.ts`). See bench/README.md,
 * "Cutover under load".
 *
 * Loopback only. Two upstream HTTP servers run in this process (versions v1 and v2 of app
 * `web`; `/` answers 100 bytes, `/slow` streams 10 chunks over BENCH_CUTOVER_SLOW_MS); the
 * router runs as a child process (`node dist/cli.js serve`), and the cutover is driven by
 * the real CLI: `fairway cutover web --to v2 --steps … --hold … --json --wait`, then
 * `fairway rollback web`, both as child processes.
 *
 * Load, for the whole run: BENCH_CUTOVER_CONNECTIONS keep-alive connections (undici Pool,
 * pipelining 1) each sending the next `GET /` as soon as the previous answer ended
 * (closed loop), plus BENCH_CUTOVER_SLOW_CONNECTIONS connections looping on `/slow`, so
 * that requests are in flight across every weight change and the rollback.
 *
 * Checks (the Gateway API conformance method for weights): every step's share of v2, from
 * the answers that ended within the step (20 ms after its `step` decision to the next
 * decision), within ±5 points of the plan with >= 500 answers; after the rollback 0% on
 * v2; zero failed requests (errors or non-200), zero connections dropped (closed by
 * anything but this client at the end), every slow response complete. Prints a table and
 * PASS/FAIL; writes bench/results/cutover-<UTC time>/summary.json and report.txt; exits 1
 * when a check failed.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { runCli, startRouterProcess } from '../test/helpers/router-process.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const CONNECTIONS = env('BENCH_CUTOVER_CONNECTIONS', 16);
const SLOW_CONNECTIONS = env('BENCH_CUTOVER_SLOW_CONNECTIONS', 4);
const SLOW_MS = env('BENCH_CUTOVER_SLOW_MS', 1500);
const HOLD_MS = env('BENCH_CUTOVER_HOLD_MS', 2000);
const STEPS = (process.env.BENCH_CUTOVER_STEPS ?? '10,25,50,75,100').split(',').map(Number);
const MIN_PER_STEP = 500;
const TOLERANCE = 5;

const BODY = 'x'.repeat(100);

async function upstream(name: string): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    if (req.url === '/slow') {
      res.writeHead(200, { 'x-upstream': name, 'content-type': 'text/plain' });
      let n = 0;
      const timer = setInterval(() => {
        res.write(`${name} chunk ${n}\n`);
        if (++n === 10) {
          clearInterval(timer);
          res.end();
        }
      }, SLOW_MS / 10);
      res.on('close', () => clearInterval(timer));
      return;
    }
    res.writeHead(200, { 'x-upstream': name, 'content-type': 'text/plain', 'content-length': BODY.length });
    res.end(BODY);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

interface Answer {
  at: number;
  upstream: string;
  status: number;
}

function loadLoop(origin: string, pathname: string, connections: number, check: (body: string, upstream: string) => boolean) {
  const pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  let connects = 0;
  let disconnects = 0;
  pool.on('connect', () => connects++);
  pool.on('disconnect', () => disconnects++);
  const answers: Answer[] = [];
  const failures: string[] = [];
  let running = true;
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      try {
        const res = await pool.request({ path: pathname, method: 'GET', headers: { host: 'web.example.test' } });
        const body = await res.body.text();
        const up = String(res.headers['x-upstream'] ?? '');
        answers.push({ at: Date.now(), upstream: up, status: res.statusCode });
        if (res.statusCode !== 200) failures.push(`HTTP ${res.statusCode}`);
        else if (!check(body, up)) failures.push(`incomplete body from ${up} (${body.length} bytes)`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  });
  return {
    answers,
    failures,
    get connects() {
      return connects;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      const dropped = disconnects;
      await pool.close();
      return dropped;
    },
  };
}

interface Decision {
  type: string;
  index: number;
  at: string;
  kind: string;
  percent: number;
  state: string;
}

async function main(): Promise<number> {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', `cutover-${stamp}`);
  const v1 = await upstream('v1');
  const v2 = await upstream('v2');
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-bench-cutover-'));
  const config = path.join(dir, 'fairway.yaml');
  writeFileSync(config, `listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
log: { access: false }
apps:
  web:
    domains: [web.example.test]
    versions:
      v1: { weight: 100, endpoints: ["127.0.0.1:${(v1.address() as AddressInfo).port}"] }
      v2: { weight: 0, endpoints: ["127.0.0.1:${(v2.address() as AddressInfo).port}"] }
`);
  const router = await startRouterProcess(config);
  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    process.stdout.write(line + '\n');
  };
  try {
    const fast = loadLoop(router.http, '/', CONNECTIONS, (body) => body === BODY);
    const slow = loadLoop(router.http, '/slow', SLOW_CONNECTIONS, (body, up) => body === Array.from({ length: 10 }, (_, n) => `${up} chunk ${n}\n`).join(''));
    await sleep(500); // warm-up: connections open, JIT warm
    const started = Date.now();
    const cutover = await runCli(['cutover', 'web', '--to', 'v2', '--steps', STEPS.join(','), '--hold', `${HOLD_MS}ms`, '--min-requests', String(MIN_PER_STEP), '--max-p99', '5s', '--json', '--wait', '--admin', router.admin]);
    const rollback = await runCli(['rollback', 'web', '--json', '--admin', router.admin]);
    const rolledBack = JSON.parse(rollback.stdout) as { history: Decision[] };
    // The weights changed when the rollback decision was taken (the CLI needs a moment to start).
    const rollbackAt = Date.parse(rolledBack.history[rolledBack.history.length - 1]!.at);
    await sleep(HOLD_MS);
    const droppedFast = await fast.stop();
    const droppedSlow = await slow.stop();

    const events = cutover.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Decision);
    const decisions = events.filter((e) => e.type === 'decision');
    const checks: [string, boolean][] = [];
    checks.push([`fairway cutover --wait exit code 0 (completed): ${cutover.code}`, cutover.code === 0]);
    checks.push([`fairway rollback exit code 0: ${rollback.code}`, rollback.code === 0]);
    say(`Fairway cutover under load: ${CONNECTIONS} keep-alive connections (closed loop) + ${SLOW_CONNECTIONS} on ${SLOW_MS} ms streamed responses; steps ${STEPS.join(',')}%, hold ${HOLD_MS} ms`);
    say('');
    const delta = (d: number) => (Math.abs(d) < 0.05 ? '0.0' : d.toFixed(1)).padStart(7);
    say('step       planned v2   answers   measured v2   delta');
    for (const step of decisions.filter((d) => d.kind === 'step')) {
      const next = decisions[step.index + 1];
      const from = Date.parse(step.at) + 20;
      const to = next ? Date.parse(next.at) : rollbackAt;
      const inStep = fast.answers.filter((a) => a.at >= from && a.at <= to);
      const share = (100 * inStep.filter((a) => a.upstream === 'v2').length) / Math.max(inStep.length, 1);
      say(`${String(step.percent + '%').padEnd(10)} ${String(step.percent + '%').padStart(11)} ${String(inStep.length).padStart(9)} ${(share.toFixed(1) + '%').padStart(13)} ${delta(share - step.percent)}`);
      checks.push([`step ${step.percent}%: >= ${MIN_PER_STEP} answers (${inStep.length})`, inStep.length >= MIN_PER_STEP]);
      checks.push([`step ${step.percent}%: share within ±${TOLERANCE} points (${share.toFixed(1)}%)`, Math.abs(share - step.percent) <= TOLERANCE]);
    }
    const after = fast.answers.filter((a) => a.at >= rollbackAt + 20);
    const afterShare = (100 * after.filter((a) => a.upstream === 'v2').length) / Math.max(after.length, 1);
    say(`${'rollback'.padEnd(10)} ${'0%'.padStart(11)} ${String(after.length).padStart(9)} ${(afterShare.toFixed(1) + '%').padStart(13)} ${delta(afterShare)}`);
    checks.push([`after the rollback: 0% on v2 (${afterShare.toFixed(1)}%, ${after.length} answers)`, afterShare === 0 && after.length >= MIN_PER_STEP]);
    const total = fast.answers.length + slow.answers.length;
    checks.push([`failed requests: ${fast.failures.length + slow.failures.length} of ${total}`, fast.failures.length + slow.failures.length === 0]);
    checks.push([`slow streamed responses completed whole: ${slow.answers.length}`, slow.answers.length > 0 && slow.failures.length === 0]);
    checks.push([`connections opened: ${fast.connects + slow.connects} (expected ${CONNECTIONS + SLOW_CONNECTIONS})`, fast.connects + slow.connects === CONNECTIONS + SLOW_CONNECTIONS]);
    checks.push([`connections dropped: ${droppedFast + droppedSlow}`, droppedFast + droppedSlow === 0]);
    const seconds = (Date.now() - started) / 1000;
    say('');
    say(`${total} requests in ${seconds.toFixed(1)} s (${Math.round(fast.answers.length / seconds)} req/s on /)`);
    for (const [text, ok] of checks) say(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
    const failures = [...fast.failures, ...slow.failures];
    if (failures.length > 0) say(`first failures: ${failures.slice(0, 5).join('; ')}`);
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, 'report.txt'), lines.join('\n') + '\n');
    writeFileSync(path.join(out, 'summary.json'), JSON.stringify({ stamp, connections: CONNECTIONS, slowConnections: SLOW_CONNECTIONS, holdMs: HOLD_MS, steps: STEPS, decisions, checks: checks.map(([text, ok]) => ({ text, ok })) }, null, 2) + '\n');
    process.stdout.write(`results: ${path.relative(process.cwd(), out)}\n`);
    return checks.every(([, ok]) => ok) ? 0 : 1;
  } finally {
    await router.stop();
    v1.closeAllConnections();
    v2.closeAllConnections();
    v1.close();
    v2.close();
  }
}

process.exit(await main());
