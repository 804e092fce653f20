/**
 * @module
 * Soak under faults (`npm run build`, then `node --import @tapjs/typescript/import bench/soak.ts`).
 * See bench/README.md, "Soak".
 *
 * Loopback only, bounded: SOAK_MINUTES of load, then a short cool-down, then it stops.
 * The router runs as a child process (`node dist/cli.js serve`, pinned to SOAK_ROUTER_CPU
 * when `taskset` exists) in front of SOAK_ENDPOINTS upstream servers in this process
 * (app `web`, `/` answers 100 bytes). Load: `wrk --latency` (pinned to SOAK_LOAD_CPU)
 * in back-to-back segments of SOAK_SEGMENT_S seconds with SOAK_CONNECTIONS keep-alive
 * connections, plus a trickle of requests with made-up Host headers (a new one each time,
 * SOAK_FLOOD_RPS per second) that must get 404 and must not grow the router.
 *
 * Faults, all through the run: every SOAK_CHURN_MS one endpoint is killed (its listener
 * closed and every socket destroyed, as a crash does) and started again on the same port
 * SOAK_DOWN_MS later, round-robin over the endpoints; every SOAK_RELOAD_S seconds the
 * config file is rewritten with other weights (a route-table swap under load).
 *
 * Sampled: the router's RSS every second (from /proc; each segment keeps its lowest and
 * highest), and after every segment its open file descriptors, V8 heap (from /metrics),
 * requests and failures. A single RSS reading moves by tens of MB with the garbage
 * collector's cycle; the lowest of a segment (right after a collection) is what a leak
 * would raise. Checks: zero failed requests (wrk non-2xx, socket errors and timeouts;
 * flood answers other than 404); RSS flat — the median of the segments' lowest RSS over the
 * last third of the run at most 10% (and at most 24 MB) above that of the first third after
 * the first minute; descriptors back to at most 16 above the idle baseline within 75 s of
 * the load's end (idle keep-alive connections to the endpoints live up to 60 s). Prints a
 * table and PASS/FAIL; writes bench/results/soak-<UTC time>/summary.json and report.txt;
 * exits 1 when a check failed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { parseWrk } from './lib/wrk.mjs';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const MINUTES = env('SOAK_MINUTES', 10);
const SEGMENT_S = env('SOAK_SEGMENT_S', 30);
const CONNECTIONS = env('SOAK_CONNECTIONS', 64);
const ENDPOINTS = env('SOAK_ENDPOINTS', 3);
const CHURN_MS = env('SOAK_CHURN_MS', 5000);
const DOWN_MS = env('SOAK_DOWN_MS', 1000);
const RELOAD_S = env('SOAK_RELOAD_S', 60);
const FLOOD_RPS = env('SOAK_FLOOD_RPS', 200);
const ROUTER_CPU = process.env.SOAK_ROUTER_CPU ?? '0';
const LOAD_CPU = process.env.SOAK_LOAD_CPU ?? '1';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(ROOT, 'dist/cli.js');
const BODY = 'x'.repeat(100);
/** Ends every wait of the fault loops at once when the run is over. */
const over = new AbortController();
const sleep = (ms: number) => delay(ms, undefined, { signal: over.signal }).catch(() => undefined);

/** One upstream that can be killed like a crashed process and started again on its port. */
class Endpoint {
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  port = 0;
  served = 0;

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.served++;
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
      res.end(BODY);
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: this.port }, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Stops at once: no new connections, every open one reset (requests in flight included). */
  kill(): void {
    this.#server?.close();
    for (const s of this.#sockets) s.resetAndDestroy();
    this.#server = undefined;
  }
}

function configText(ports: number[], httpPort: number, adminPort: number, flip: boolean): string {
  // Two versions over the same endpoints; a reload moves the weights (a table swap).
  const endpoints = JSON.stringify(ports.map((p) => `127.0.0.1:${p}`));
  return `listen:
  http: 127.0.0.1:${httpPort}
  admin: 127.0.0.1:${adminPort}
log:
  level: warn
  access: true
apps:
  web:
    domains: [web.soak.test]
    versions:
      v1: { weight: ${flip ? 30 : 70}, endpoints: ${endpoints} }
      v2: { weight: ${flip ? 70 : 30}, endpoints: ${endpoints} }
`;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

const hasTaskset = spawnSync('taskset', ['--version']).status === 0;
const pinned = (cpu: string, cmd: string, args: string[]): [string, string[]] => (hasTaskset ? ['taskset', ['-c', cpu, cmd, ...args]] : [cmd, args]);

function procStatus(pid: number): { rssMb: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
  return { rssMb: rss, fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function heapMb(admin: string): Promise<number> {
  const res = await request(`${admin}/metrics`);
  const text = await res.body.text();
  const m = /^fairway_nodejs_heap_size_used_bytes (\S+)/m.exec(text);
  return m ? Number(m[1]) / 1048576 : NaN;
}

function runWrk(url: string, seconds: number): Promise<string> {
  const [cmd, args] = pinned(LOAD_CPU, 'wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '10s', '--latency', '-H', 'Host: web.soak.test', url]);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited with ${code}`))));
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is not installed (apt-get install wrk)');
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-soak-'));
  const endpoints = Array.from({ length: ENDPOINTS }, () => new Endpoint());
  for (const e of endpoints) await e.start();
  const [httpPort, adminPort] = [await freePort(), await freePort()];
  const configFile = path.join(dir, 'fairway.yaml');
  let flip = false;
  writeFileSync(configFile, configText(endpoints.map((e) => e.port), httpPort, adminPort, flip));

  const [cmd, args] = pinned(ROUTER_CPU, process.execPath, [CLI, 'serve', '--workers', '1', '--config', configFile]);
  const router: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  router.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c).slice(-20_000)));
  const http = `http://127.0.0.1:${httpPort}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  for (let i = 0; ; i++) {
    const ready = await request(`${admin}/readyz`).then(async (res) => (await res.body.dump(), res.statusCode === 200), () => false);
    if (ready) break;
    if (i > 100) throw new Error(`the router did not start:\n${stderr}`);
    await sleep(100);
  }
  // With taskset the child is taskset's exec of node: the same pid.
  const pid = router.pid!;
  const idle = procStatus(pid);

  let stop = false;
  const faults = { kills: 0, reloads: 0 };
  // Endpoint churn: one at a time, round-robin.
  const churn = (async () => {
    for (let k = 0; !stop; k++) {
      await sleep(CHURN_MS);
      if (stop) break;
      const e = endpoints[k % endpoints.length]!;
      e.kill();
      faults.kills++;
      await sleep(DOWN_MS);
      await e.start();
    }
  })();
  const reloads = (async () => {
    while (!stop) {
      await sleep(RELOAD_S * 1000);
      if (stop) break;
      flip = !flip;
      writeFileSync(configFile, configText(endpoints.map((e) => e.port), httpPort, adminPort, flip));
      faults.reloads++;
    }
  })();
  // Made-up hosts: each must be answered 404 and leave nothing behind.
  const flood = { sent: 0, wrong: 0 };
  const floodAgent = new Agent({ connections: 4 });
  const flooding = (async () => {
    const gap = FLOOD_RPS > 0 ? 1000 / FLOOD_RPS : 0;
    while (!stop && gap > 0) {
      const n = flood.sent++;
      request(http, { dispatcher: floodAgent, headers: { host: `h${n}-${Math.random().toString(36).slice(2)}.flood.test` } })
        .then(async (res) => {
          await res.body.dump();
          if (res.statusCode !== 404) flood.wrong++;
        })
        .catch(() => flood.wrong++);
      await sleep(gap);
    }
  })();

  type Sample = { minute: number; rps: number; p99: number; requests: number; failed: number; rssMinMb: number; rssMaxMb: number; heapMb: number; fds: number };
  const samples: Sample[] = [];
  const started = Date.now();
  const segments = Math.max(1, Math.round((MINUTES * 60) / SEGMENT_S));
  console.log(`Fairway soak: ${MINUTES} min, ${segments} segments of ${SEGMENT_S} s, wrk -c${CONNECTIONS}, ${ENDPOINTS} endpoints, a kill every ${CHURN_MS} ms (down ${DOWN_MS} ms), a reload every ${RELOAD_S} s, ${FLOOD_RPS} made-up hosts/s`);
  console.log('minute    req/s   p99 ms   requests  failed  RSS min–max MB  heap MB   fds');
  for (let s = 0; s < segments; s++) {
    let rssMin = Infinity;
    let rssMax = 0;
    const probe = setInterval(() => {
      const { rssMb } = procStatus(pid);
      rssMin = Math.min(rssMin, rssMb);
      rssMax = Math.max(rssMax, rssMb);
    }, 1000);
    const w = parseWrk(await runWrk(`${http}/`, SEGMENT_S));
    clearInterval(probe);
    const { rssMb, fds } = procStatus(pid);
    const sample = {
      minute: (Date.now() - started) / 60_000, rps: w.rps, p99: w.p99_ms, requests: w.requests, failed: w.non2xx + w.socketErrors,
      rssMinMb: Math.min(rssMin, rssMb), rssMaxMb: Math.max(rssMax, rssMb), heapMb: await heapMb(admin), fds,
    };
    samples.push(sample);
    const rss = `${sample.rssMinMb.toFixed(0)}–${sample.rssMaxMb.toFixed(0)}`;
    console.log(
      `${sample.minute.toFixed(1).padStart(6)} ${sample.rps.toFixed(0).padStart(8)} ${sample.p99.toFixed(1).padStart(8)} ${String(sample.requests).padStart(10)} ${String(sample.failed).padStart(7)} ${rss.padStart(15)} ${sample.heapMb.toFixed(1).padStart(8)} ${String(fds).padStart(5)}`,
    );
  }
  stop = true;
  over.abort();
  await Promise.all([churn, reloads, flooding]);
  await floodAgent.close();
  // Idle keep-alive connections to the endpoints close when the endpoints' keep-alive hint
  // runs out (at most the pools' 60 s cap): poll until the descriptors are back, or 75 s.
  const releasedBy = Date.now() + 75_000;
  let after = procStatus(pid);
  const stopped = Date.now();
  while (after.fds > idle.fds + 16 && Date.now() < releasedBy) {
    await delay(1000);
    after = procStatus(pid);
  }
  const releaseSeconds = (Date.now() - stopped) / 1000;

  // After the first minute (warm-up); a short run compares what it has.
  const warm = samples.filter((x) => x.minute > 1);
  const settled = warm.length >= 3 ? warm : samples;
  const third = Math.max(1, Math.floor(settled.length / 3));
  const early = median(settled.slice(0, third).map((x) => x.rssMinMb));
  const late = median(settled.slice(-third).map((x) => x.rssMinMb));
  const requests = samples.reduce((a, x) => a + x.requests, 0);
  const failed = samples.reduce((a, x) => a + x.failed, 0);
  const checks: [boolean, string][] = [
    [failed === 0, `failed requests under load: ${failed} of ${requests} (${faults.kills} endpoint kills, ${faults.reloads} reloads)`],
    [flood.wrong === 0, `made-up hosts answered other than 404: ${flood.wrong} of ${flood.sent}`],
    [late <= early * 1.1 && late - early <= 24, `RSS flat: segments' lowest RSS, median ${early.toFixed(1)} MB early, ${late.toFixed(1)} MB late (at most +10% and +24 MB)`],
    [after.fds <= idle.fds + 16, `file descriptors released: ${idle.fds} idle before, ${after.fds} ${releaseSeconds.toFixed(0)} s after the load (at most +16, within 75 s)`],
  ];
  const lines = checks.map(([ok, text]) => `${ok ? 'PASS' : 'FAIL'}  ${text}`);
  for (const l of lines) console.log(l);

  router.kill('SIGTERM');
  await new Promise((resolve) => router.once('exit', resolve));
  for (const e of endpoints) e.kill();
  const out = path.join(ROOT, 'bench/results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'summary.json'), JSON.stringify({ minutes: MINUTES, segmentSeconds: SEGMENT_S, connections: CONNECTIONS, endpoints: ENDPOINTS, faults, flood, idle, after, samples, checks: lines }, null, 2));
  writeFileSync(path.join(out, 'report.txt'), lines.join('\n') + '\n');
  console.log(`results: ${path.relative(ROOT, out)}`);
  process.exitCode = checks.every(([ok]) => ok) ? 0 : 1;
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
