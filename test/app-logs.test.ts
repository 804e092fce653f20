import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { request } from 'undici';
import { formatLogLine } from '../src/cli/logs-command.js';
import { parseConfig } from '../src/config/load-config.js';
import { publicSettings } from '../src/model.js';
import { entryFields, entryJson, type AccessLogEntry, type AccessLogSink } from '../src/observability/access-log.js';
import { AppLogBuffer, type StoredEntry } from '../src/observability/app-log-buffer.js';
import { createLogger } from '../src/observability/logger.js';
import { LogShipper } from '../src/observability/log-shipper.js';
import { CLI, runCli } from './helpers/router-process.js';
import { refusedAddress, startUpstream, type TestUpstream } from './helpers/upstreams.js';
import { startTestRouter, type TestRouter } from './helpers/test-router.js';

const closers: (() => Promise<unknown>)[] = [];
t.teardown(async () => {
  for (const close of closers.reverse()) await close();
});

const web = await startUpstream('web');
closers.push(() => web.close());

async function router(yaml: string): Promise<TestRouter> {
  const r = await startTestRouter(yaml);
  closers.push(() => r.close());
  return r;
}

/** An app `web` with two versions on one endpoint; `X-Fairway-Version` picks one. */
const webApp = (up: TestUpstream, settings = '') => `${settings}
apps:
  web:
    domains: [web.test]
    versionHeader: true
    versions:
      v1: { weight: 1, endpoints: ["${up.address}"] }
      v2: { weight: 0, endpoints: ["${up.address}"] }
`;

const entry = (app: string, i: number, extra: Record<string, unknown> = {}): AccessLogEntry => ({
  reqId: `r${i}`, app, version: 'v1', method: 'GET', host: `${app}.test`, path: `/${i}`, status: 200, duration: 1.5, clientIp: '127.0.0.1', ...extra,
});

/** Gives `e` to `sink` as the access log does: its app, its version and its serialised fields. */
const addTo = (sink: AccessLogSink, e: AccessLogEntry, time: number) => sink.add(e.app, e.version, time, entryFields(e));
/** A stored entry as the logs endpoint shows it. */
const parsed = (s: StoredEntry) => JSON.parse(entryJson(s.fields, s.time)) as AccessLogEntry & { time: string };
const pathOf = (s: StoredEntry) => parsed(s).path;

/** A log service on loopback: records the batches POSTed to it; `mode` says how it answers. */
interface LogService {
  readonly url: string;
  readonly batches: AccessLogEntry[][];
  mode: 'ok' | 'fail' | 'hang';
  /** Resolves once `n` entries were received in all. */
  received(n: number): Promise<void>;
}

async function logService(mode: LogService['mode'] = 'ok'): Promise<LogService> {
  const batches: AccessLogEntry[][] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const sockets = new Set<Socket>();
  const service: LogService = {
    url: '',
    batches,
    mode,
    received: (n) => new Promise((resolve) => {
      waiters.push({ n, resolve });
      check();
    }),
  };
  const check = () => {
    const total = batches.reduce((sum, b) => sum + b.length, 0);
    for (const w of waiters.splice(0)) (total >= w.n ? w.resolve() : waiters.push(w));
  };
  const server: Server = createServer((req: IncomingMessage, res) => {
    if (service.mode === 'hang') return; // never answers
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      if (service.mode === 'fail') {
        res.writeHead(500).end();
        return;
      }
      batches.push(JSON.parse(body) as AccessLogEntry[]);
      res.writeHead(204).end();
      check();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  Object.assign(service, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest` });
  closers.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return service;
}

t.test('the per-app buffer keeps the newest entries of each app up to log.perApp.entries, and counts what it drops', async (t) => {
  const logs = new AppLogBuffer({ entries: 10, maxBytes: 1 << 20 });
  for (let i = 0; i < 25; i++) addTo(logs, entry('a', i), 1000 + i);
  for (let i = 0; i < 3; i++) addTo(logs, entry('b', i), 2000 + i);
  t.same(logs.read('a', 100).map(pathOf), Array.from({ length: 10 }, (_, i) => `/${15 + i}`), 'the newest 10 of a, oldest first');
  t.same(logs.read('a', 3).map((s) => s.time), [1022, 1023, 1024], 'the newest N, with their times');
  t.equal(logs.read('b', 100).length, 3, 'another app keeps its own');
  t.equal(logs.size, 13);
  t.equal(logs.droppedForEntries, 15);
  t.equal(logs.droppedOf('a'), 15);
  t.match(logs.renderMetrics(), /fairway_app_log_dropped_total\{reason="entries"\} 15/);
  t.same(logs.read('nobody', 10), []);

  logs.configure({ entries: 4, maxBytes: 1 << 20 });
  t.same(logs.read('a', 100).map(pathOf), ['/21', '/22', '/23', '/24'], 'a smaller bound applies at once');
  t.equal(logs.size, 7);
  addTo(logs, entry('a', 25), 1025);
  t.same(logs.read('a', 100).map(pathOf), ['/22', '/23', '/24', '/25']);
  logs.configure({ entries: 0, maxBytes: 1 << 20 });
  t.notOk(logs.active, 'entries: 0 turns it off');
  t.equal(logs.size, 0);
});

t.test('the version filter returns the newest N of that version', async (t) => {
  const logs = new AppLogBuffer({ entries: 100, maxBytes: 1 << 20 });
  for (let i = 0; i < 20; i++) addTo(logs, entry('a', i, { version: i % 2 ? 'v2' : 'v1' }), i);
  t.same(logs.read('a', 3, 'v2').map(pathOf), ['/15', '/17', '/19']);
  t.same(logs.read('a', 100, 'v3'), []);
});

t.test('all apps together stay under log.perApp.maxBytes: the router-wide oldest entries go first, whatever their app', async (t) => {
  const size = Buffer.byteLength(entryFields(entry('a', 10)));
  t.ok(size > 100 && size < 400, `an entry takes ${size} bytes`);
  const logs = new AppLogBuffer({ entries: 1000, maxBytes: size * 20 });
  for (let i = 10; i < 25; i++) addTo(logs, entry('a', i), i);
  for (let i = 10; i < 20; i++) addTo(logs, entry('b', i), 100 + i);
  t.ok(logs.bytes <= size * 20, `${logs.bytes} bytes held`);
  t.equal(logs.size, 20);
  t.equal(logs.droppedForBytes, 5);
  t.same(logs.read('a', 100).map(pathOf), ['/15', '/16', '/17', '/18', '/19', '/20', '/21', '/22', '/23', '/24'], "a's oldest went, b kept all");
  t.equal(logs.read('b', 100).length, 10);

  // Entries an app dropped by its own bound are not counted twice against the byte bound.
  const mixed = new AppLogBuffer({ entries: 5, maxBytes: size * 8 });
  for (let i = 10; i < 40; i++) addTo(mixed, entry('a', i), i); // a churns within its own 5
  for (let i = 10; i < 14; i++) addTo(mixed, entry('b', i), 100 + i);
  t.equal(mixed.size, 8);
  t.same(mixed.read('a', 100).map(pathOf), ['/36', '/37', '/38', '/39'], 'the oldest of all (a /35) went for b');
  t.equal(mixed.read('b', 100).length, 4);
  for (let i = 0; i < 100_000; i++) addTo(mixed, entry('c', i), i);
  t.ok(mixed.bytes <= size * 8 && mixed.size <= 8, 'a busy app keeps within both bounds');
});

t.test('entries read back as the very text they were logged with: multi-byte, escaped and long values', async (t) => {
  const logs = new AppLogBuffer({ entries: 50, maxBytes: 1 << 20 });
  const odd = [
    entry('a', 0, { path: '/caf\u00e9/\u{1f600}/\u4e2d\u6587' }),
    entry('a', 1, { path: '/q"uote\\back\nline', error: 'lone \ud800 surrogate' }),
    entry('a', 2, { path: `/${'x'.repeat(20_000)}` }), // larger than the first text buffer
    entry('a', 3, { version: undefined }),
  ];
  odd.forEach((e, i) => addTo(logs, e, 10 + i));
  t.same(logs.read('a', 10).map((s) => s.fields), odd.map(entryFields));
  t.same(logs.read('a', 10).map((s) => s.time), [10, 11, 12, 13]);
  t.equal(logs.bytes, odd.reduce((n, e) => n + Buffer.byteLength(entryFields(e)), 0), 'bytes are the UTF-8 bytes of the text');
  t.same(logs.read('a', 10, 'v1').map(pathOf), odd.slice(0, 3).map((e) => e.path), 'an entry without a version matches no version filter');
});

t.test('an app\'s text buffer shrinks when the byte bound takes most of its entries, and goes when it takes all of them', async (t) => {
  const big = (app: string, i: number) => entryFields(entry(app, i, { path: `/${'b'.repeat(400)}` }));
  const logs = new AppLogBuffer({ entries: 1000, maxBytes: 200 * big('busy', 0).length });
  for (let i = 0; i < 200; i++) logs.add('busy', 'v1', i, big('busy', i));
  const full = logs.bufferOf('busy');
  t.ok(full.buffer >= full.text && full.buffer <= 4 * full.text, `200 entries, ${full.text} bytes of text in ${full.buffer} bytes of buffer`);
  for (let i = 0; i < 170; i++) logs.add('other', 'v1', i, big('other', i)); // the byte bound takes busy's oldest
  const left = logs.bufferOf('busy');
  const kept = logs.read('busy', 1000).length;
  t.ok(kept >= 20 && kept <= 30, `busy keeps its newest ${kept}`);
  t.ok(left.buffer < full.buffer && left.buffer <= 4 * left.text, `busy's buffer shrank: ${left.buffer} bytes for ${left.text} of text`);
  for (let i = 170; i < 400; i++) logs.add('other', 'v1', i, big('other', i));
  t.same(logs.read('busy', 1000), [], 'busy has no entry left');
  t.same(logs.bufferOf('busy'), { buffer: 0, text: 0 }, 'and no buffer');
  addTo(logs, entry('busy', 1), 1);
  t.same(logs.read('busy', 10).map(pathOf), ['/1'], 'one comes back with the next entry');
});

t.test('an entry longer than log.perApp.maxBytes on its own is dropped and counted; the others stay', async (t) => {
  const logs = new AppLogBuffer({ entries: 10, maxBytes: 1000 });
  addTo(logs, entry('a', 1), 1);
  addTo(logs, entry('a', 2, { path: `/${'y'.repeat(2000)}` }), 2);
  addTo(logs, entry('a', 3), 3);
  t.same(logs.read('a', 10).map(pathOf), ['/1', '/3']);
  t.equal(logs.droppedForBytes, 1);
  t.equal(logs.droppedOf('a'), 1);
});

/** The per-app logs' contract, written plainly: a list of entries, oldest first. */
class ReferenceLogs {
  entries: { app: string; version: string | undefined; time: number; fields: string; bytes: number }[] = [];
  droppedForEntries = 0;
  droppedForBytes = 0;
  readonly dropped = new Map<string, number>();
  constructor(public cap: number, public maxBytes: number) {}
  get bytes() {
    return this.entries.reduce((n, e) => n + e.bytes, 0);
  }
  #drop(index: number) {
    const [gone] = this.entries.splice(index, 1);
    this.dropped.set(gone!.app, (this.dropped.get(gone!.app) ?? 0) + 1);
  }
  #trim() {
    while (this.bytes > this.maxBytes) {
      this.#drop(0);
      this.droppedForBytes++;
    }
  }
  #capApps() {
    for (const app of new Set(this.entries.map((e) => e.app))) {
      while (this.entries.filter((e) => e.app === app).length > this.cap) {
        this.#drop(this.entries.findIndex((e) => e.app === app));
        this.droppedForEntries++;
      }
    }
  }
  add(app: string, version: string | undefined, time: number, fields: string) {
    const bytes = Buffer.byteLength(fields);
    if (bytes > this.maxBytes) {
      this.dropped.set(app, (this.dropped.get(app) ?? 0) + 1);
      this.droppedForBytes++;
      return;
    }
    if (this.entries.filter((e) => e.app === app).length >= this.cap) {
      this.#drop(this.entries.findIndex((e) => e.app === app));
      this.droppedForEntries++;
    }
    this.entries.push({ app, version, time, fields, bytes });
    this.#trim();
  }
  configure(cap: number, maxBytes: number) {
    this.cap = cap;
    this.maxBytes = maxBytes;
    this.#capApps();
    this.#trim();
  }
  read(app: string, lines: number, version?: string) {
    const mine = this.entries.filter((e) => e.app === app && (version === undefined || e.version === version));
    return mine.slice(Math.max(0, mine.length - lines)).map((e) => ({ time: e.time, fields: e.fields }));
  }
}

t.test('under random adds of any size and live changes of both bounds, the buffer holds exactly what the plain contract says', async (t) => {
  const seed = Number(process.env.APP_LOG_SEED ?? 20261128);
  let state = seed >>> 0;
  const random = (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
  let cap = 6;
  let maxBytes = 4000;
  const logs = new AppLogBuffer({ entries: cap, maxBytes });
  const model = new ReferenceLogs(cap, maxBytes);
  const apps = ['a', 'b', 'c', 'd'];
  let mismatches = 0;
  for (let step = 0; step < 6000 && mismatches === 0; step++) {
    const roll = random(100);
    if (roll < 2) {
      cap = 1 + random(12);
      maxBytes = 200 + random(8000);
      logs.configure({ entries: cap, maxBytes });
      model.configure(cap, maxBytes);
    } else {
      const app = apps[random(apps.length)]!;
      const version = ['v1', 'v2', undefined][random(3)];
      const e = entry(app, step, { version, path: `/${'p\u00e9'.repeat(random(roll < 5 ? 3000 : 200))}` });
      logs.add(app, version, step, entryFields(e));
      model.add(app, version, step, entryFields(e));
    }
    const checks: [string, unknown, unknown][] = [
      ['buffers within 4 × the text + 256 an app', logs.bufferBytes <= 4 * logs.bytes + 256 * apps.length, true],
      ['size', logs.size, model.entries.length],
      ['bytes', logs.bytes, model.bytes],
      ['droppedForEntries', logs.droppedForEntries, model.droppedForEntries],
      ['droppedForBytes', logs.droppedForBytes, model.droppedForBytes],
    ];
    for (const app of apps) {
      checks.push([`read ${app}`, logs.read(app, 100), model.read(app, 100)]);
      checks.push([`read ${app} v2`, logs.read(app, 3, 'v2'), model.read(app, 3, 'v2')]);
      checks.push([`dropped ${app}`, logs.droppedOf(app), model.dropped.get(app) ?? 0]);
    }
    for (const [what, got, want] of checks) {
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        mismatches++;
        t.same(got, want, `step ${step} (seed ${seed}): ${what}`);
      }
    }
  }
  t.equal(mismatches, 0, `6000 random steps agree with the contract (seed ${seed}, APP_LOG_SEED to change it)`);
});

t.test('the entries are held off the V8 heap: a full buffer adds almost nothing to it', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const logs = new AppLogBuffer({ entries: 1000, maxBytes: 64 << 20 });
  // Each entry's text is made afresh, as the access log makes it: only the buffer can keep it alive.
  const fill = (round: number) => {
    for (const app of ['a', 'b', 'c', 'd']) {
      for (let i = 0; i < 1000; i++) logs.add(app, 'v1', round, entryFields(entry(app, i, { path: `/some/longer/path/${i}?q=${'x'.repeat(200)}&r=${round}` })));
    }
  };
  gc();
  const before = process.memoryUsage().heapUsed;
  fill(0);
  fill(1);
  gc();
  const heapGrowth = process.memoryUsage().heapUsed - before;
  t.equal(logs.size, 4000);
  t.ok(logs.bytes > 4000 * 250, `${logs.bytes} bytes of entries held`);
  t.same(logs.read('c', 1).map((s) => parsed(s).path), ['/some/longer/path/999?q=' + 'x'.repeat(200) + '&r=1']);
  // Held as objects or as strings, 4000 entries of over 250 bytes would be over 1 MB of heap.
  t.ok(heapGrowth < 256 * 1024, `the heap grew ${heapGrowth} bytes holding ${logs.size} entries`);
});

t.test('followers get each new entry of their app (and version) once, after the turn that logged it', async (t) => {
  const logs = new AppLogBuffer({ entries: 3, maxBytes: 1 << 20 });
  addTo(logs, entry('a', 0), 0);
  const seen: string[] = [];
  const v2: string[] = [];
  const path = (fields: string) => (JSON.parse(entryJson(fields, 0)) as AccessLogEntry).path as string;
  const stop = logs.follow('a', undefined, (fields) => seen.push(path(fields)));
  logs.follow('a', 'v2', (fields) => v2.push(path(fields)));
  addTo(logs, entry('a', 1), 1);
  addTo(logs, entry('b', 2), 2);
  addTo(logs, entry('a', 3, { version: 'v2' }), 3);
  t.same(seen, [], 'not from inside add()');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(seen, ['/1', '/3'], 'an entry from before the follow is not repeated');
  t.same(v2, ['/3']);
  stop();
  addTo(logs, entry('a', 4), 4);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(seen, ['/1', '/3'], 'stopped');
});

t.test('GET /v1/apps/{app}/logs answers the newest entries, by version, with the access-log fields; unknown apps 404, bad lines 400', async (t) => {
  const r = await router(webApp(web));
  for (let i = 0; i < 6; i++) await r.get('web.test', `/page/${i}`, { headers: { 'x-fairway-version': i % 2 ? 'v2' : 'v1' } });
  const all = await r.adminGet('/v1/apps/web/logs?lines=4');
  t.equal(all.status, 200);
  const body = all.json<{ app: string; enabled: boolean; dropped: number; entries: Record<string, unknown>[] }>();
  t.equal(body.app, 'web');
  t.equal(body.enabled, true);
  t.same(body.entries.map((e) => e.path), ['/page/2', '/page/3', '/page/4', '/page/5']);
  t.match(body.entries[3], { app: 'web', version: 'v2', method: 'GET', host: 'web.test', status: 200, clientIp: '127.0.0.1', pick: 'header', endpoint: web.address });
  t.match(body.entries[3]!.time, /^\d{4}-\d\d-\d\dT/);
  const v1 = (await r.adminGet('/v1/apps/web/logs?version=v1')).json<{ entries: { path: string }[] }>();
  t.same(v1.entries.map((e) => e.path), ['/page/0', '/page/2', '/page/4']);
  t.equal((await r.adminGet('/v1/apps/nobody/logs')).status, 404);
  t.equal((await r.adminGet('/v1/apps/nobody/logs')).json().error.code, 'FW_APP_NOT_FOUND');
  t.equal((await r.adminGet('/v1/apps/web/logs?lines=-1')).json().error.code, 'FW_ADMIN_BAD_REQUEST');
  // The router's own answers for the app are there too.
  await r.get('web.test', '/nope', { headers: { 'x-fairway-version': 'v9' } });
  const last = (await r.adminGet('/v1/apps/web/logs?lines=1')).json<{ entries: Record<string, unknown>[] }>().entries[0]!;
  t.match(last, { status: 404, error: 'FW_VERSION_NOT_FOUND', path: '/nope' });
});

t.test('with log.access: false the per-app logs still fill; log.perApp.entries: 0 turns them off, live', async (t) => {
  const r = await router(webApp(web, 'log: { access: false }'));
  await r.get('web.test', '/quiet');
  r.router.logger.flush();
  t.equal(r.logs.filter((l) => l.log === 'access').length, 0, 'nothing on stdout');
  t.match((await r.adminGet('/v1/apps/web/logs')).json().entries, [{ path: '/quiet' }]);
  t.match((await r.adminGet('/metrics')).body, /fairway_app_log_entries 1\n/);
  await r.rewrite(webApp(web, 'log: { access: false, perApp: { entries: 0 } }'));
  await r.get('web.test', '/unkept');
  const off = (await r.adminGet('/v1/apps/web/logs')).json();
  t.equal(off.enabled, false);
  t.same(off.entries, []);
});

t.test('follow=1 streams NDJSON: the backlog, then a request made after the follow started', async (t) => {
  const r = await router(webApp(web));
  await r.get('web.test', '/before');
  const res = await request(`${r.admin}/v1/apps/web/logs?follow=1&lines=1`);
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /application\/x-ndjson/);
  const lines = createInterface({ input: res.body });
  const next = async () => JSON.parse((await once(lines, 'line'))[0] as string) as Record<string, unknown>;
  t.match(await next(), { path: '/before' });
  await r.get('web.test', '/after', { headers: { 'x-fairway-version': 'v2' } });
  t.match(await next(), { path: '/after', version: 'v2', status: 200 });
  lines.on('error', () => {}); // the abort below, passed on by readline
  res.body.destroy();
});

t.test('fairway logs prints plain lines (or JSON with --json); -f follows until interrupted; unknown apps exit 2', async (t) => {
  const r = await router(webApp(web));
  await r.get('web.test', '/one');
  await r.get('web.test', '/two', { headers: { 'x-fairway-version': 'v2' } });
  const plain = await runCli(['logs', 'web', '-n', '5', '--admin', r.admin]);
  t.equal(plain.code, 0, plain.stderr);
  const rows = plain.stdout.trim().split('\n');
  t.equal(rows.length, 2);
  t.match(rows[0], /^\d{4}-\d\d-\d\dT\S+ 200 GET web\.test \/one v1 [\d.]+ms 127\.0\.0\.1$/);
  t.match(rows[1], / 200 GET web\.test \/two v2 /);
  const json = await runCli(['logs', 'web', '--json', '--version', 'v2', '--admin', r.admin]);
  t.match(JSON.parse(json.stdout.trim()), { path: '/two', version: 'v2', status: 200 });
  const missing = await runCli(['logs', 'nobody', '--admin', r.admin]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /FW_APP_NOT_FOUND/);

  const child = spawn(process.execPath, [CLI, 'logs', 'web', '-f', '-n', '1', '--admin', r.admin], { stdio: ['ignore', 'pipe', 'pipe'] });
  closers.push(async () => void child.kill('SIGKILL'));
  const out = createInterface({ input: child.stdout });
  const line = async () => (await once(out, 'line'))[0] as string;
  t.match(await line(), / \/two v2 /, 'the backlog first (the follow is registered when it is written)');
  await r.get('web.test', '/three');
  t.match(await line(), / 200 GET web\.test \/three v1 /, 'then a request made after it started');
  child.kill('SIGINT');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 0, 'Ctrl-C ends it with 0');
});

t.test('fairway logs -f exits 1 when the router goes away', async (t) => {
  const r = await startTestRouter(webApp(web));
  await r.get('web.test', '/ping');
  const child = spawn(process.execPath, [CLI, 'logs', 'web', '-f', '-n', '1', '--admin', r.admin], { stdio: ['ignore', 'pipe', 'pipe'] });
  closers.push(async () => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  // The backlog line is written when the follow is registered.
  await once(createInterface({ input: child.stdout }), 'line');
  await r.close();
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 1);
  t.match(stderr, /the router ended the log stream/);
});

t.test('formatLogLine: missing fields print as -, errors and upgrades are appended', async (t) => {
  t.equal(formatLogLine({ time: 'T', status: 502, method: 'GET', host: 'h', path: '/p', version: 'v1', duration: 3.2, clientIp: '10.0.0.1', error: 'refused' }), 'T 502 GET h /p v1 3.2ms 10.0.0.1 error=refused');
  t.equal(formatLogLine({ time: 'T', status: 404, method: 'GET', host: 'h', path: '/', error: 'FW_NO_ROUTE' }), 'T 404 GET h / - -ms - error=FW_NO_ROUTE'.replace('-ms', '-'));
  t.equal(formatLogLine({ time: 'T', status: 101, method: 'GET', host: 'h', path: '/ws', version: 'v2', duration: 9000, clientIp: '::1', upgrade: 'websocket' }), 'T 101 GET h /ws v2 9000ms ::1 upgrade=websocket');
});

t.test('log.perApp and log.ship are validated with their key paths; ship headers are hidden from /v1/config', async (t) => {
  t.throws(() => parseConfig('log:\n  ship: { url: "ftp://logs.test/x", batch: 0 }\n', 'f.yaml'), {
    message: /f\.yaml:2:\d+: log\.ship\.url: must be the http:\/\/ or https:\/\/ URL of a log service\n.*log\.ship\.batch: must be an integer from 1 to 10000/,
  });
  t.throws(() => parseConfig('log:\n  ship: { batch: 5 }\n', 'f.yaml'), { message: /log\.ship\.url: is required/ });
  t.throws(() => parseConfig('log:\n  perApp: { entries: -1, maxBytes: lots }\n', 'f.yaml'), {
    message: /log\.perApp\.entries: must be an integer >= 0\n.*log\.perApp\.maxBytes: must be a size like 512, 16kb or 10mb/,
  });
  const c = parseConfig('log:\n  perApp: { entries: 50, maxBytes: 1mb }\n  ship: { url: "https://logs.test/in", interval: 2s, headers: { authorization: "Bearer t" } }\n', 'f.yaml');
  t.same(c.settings.requestLogs, {
    perApp: { entries: 50, maxBytes: 1024 * 1024 },
    ship: { url: 'https://logs.test/in', batch: 100, interval: 2000, maxQueue: 10000, timeout: 10000, headers: { authorization: 'Bearer t' } },
  });
  t.same(publicSettings(c.settings).requestLogs!.ship!.headers, { authorization: '(hidden)' });
});

t.test('the shipper posts JSON batches of entries to log.ship.url, and the config reference applies live', async (t) => {
  const service = await logService();
  const r = await router(webApp(web, `log: { ship: { url: "${service.url}", batch: 5, interval: 100ms } }`));
  for (let i = 0; i < 12; i++) await r.get('web.test', `/shipped/${i}`);
  await service.received(12);
  const entries = service.batches.flat();
  t.same(entries.map((e) => e.path), Array.from({ length: 12 }, (_, i) => `/shipped/${i}`), 'every entry once, in order');
  t.ok(service.batches.every((b) => b.length <= 5), 'at most batch entries per POST');
  t.match(entries[0], { app: 'web', version: 'v1', status: 200, method: 'GET', host: 'web.test' });
  t.match(entries[0]!.time, /^\d{4}-\d\d-\d\dT/);
  t.match((await r.adminGet('/metrics')).body, /fairway_log_shipper_sent_total 12/);
  const shown = (await r.adminGet('/v1/config')).json().settings.requestLogs;
  t.match(shown, { perApp: { entries: 1000, maxBytes: 8 * 1024 * 1024 }, ship: { url: service.url, batch: 5, interval: 100, maxQueue: 10000, timeout: 10000 } });

  await r.rewrite(webApp(web));
  t.notOk(r.router.logShipper.active, 'removing log.ship stops shipping');
});

t.test('a failed POST is retried with its entries; entries pushed out of a full queue meanwhile are counted as dropped', async (t) => {
  const service = await logService('fail');
  const shipper = new LogShipper({ logger: createLogger({ level: 'silent' }) });
  closers.push(() => shipper.close(0));
  shipper.configure({ url: service.url, batch: 4, interval: 50, maxQueue: 6, timeout: 1000, headers: { authorization: 'Bearer x' } });
  for (let i = 0; i < 4; i++) addTo(shipper, entry('a', i), i);
  while (shipper.failures === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  for (let i = 4; i < 10; i++) addTo(shipper, entry('a', i), i); // 10 queued into 6 slots: 4 dropped
  t.equal(shipper.dropped, 4);
  t.equal(shipper.queued, 6);
  service.mode = 'ok';
  await service.received(6);
  t.same(service.batches.flat().map((e) => e.path), ['/4', '/5', '/6', '/7', '/8', '/9'], 'the newest 6, once each, in order');
  await shipper.close(1000); // waits for the answer to the last POST
  t.equal(shipper.sent, 6);
  t.equal(shipper.dropped, 4);
});

/** Median latency of `n` sequential requests through the router, ms. */
async function medianLatency(r: TestRouter, n: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await r.get('web.test', `/timed/${i}`);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[n >> 1]!;
}

t.test('with the log service down (refusing, or never answering) requests are not slowed, and what the queue cannot hold is dropped and counted', async (t) => {
  const baseline = await router(webApp(web));
  await medianLatency(baseline, 50); // warm up
  const plain = await medianLatency(baseline, 300);

  const refused = await refusedAddress();
  const hanging = await logService('hang');
  for (const [name, url] of [['refused', `http://${refused}/ingest`], ['never answering', hanging.url]] as const) {
    const r = await router(webApp(web, `log: { ship: { url: "${url}", batch: 10, interval: 50ms, maxQueue: 20, timeout: 5s } }`));
    const started = performance.now();
    await medianLatency(r, 50);
    const shipped = await medianLatency(r, 300);
    t.ok(shipped < plain * 2 + 1, `${name}: ${shipped.toFixed(3)} ms a request (median), against ${plain.toFixed(3)} ms without shipping`);
    // The never-answering service holds its POST for log.ship.timeout (5 s): no request waited for it.
    t.ok(performance.now() - started < 5000, `${name}: 350 requests in ${(performance.now() - started).toFixed(0)} ms, within one ship timeout`);
    const metrics = (await r.adminGet('/metrics')).body;
    const dropped = Number(/fairway_log_shipper_dropped_total (\d+)/.exec(metrics)![1]);
    t.ok(dropped >= 350 - 20 - 10, `${name}: ${dropped} entries dropped and counted`);
    t.match(metrics, /fairway_log_shipper_queue (1\d|20)\b/, `${name}: the queue is full, not more`);
    t.match(metrics, /fairway_log_shipper_sent_total 0/);
  }
});
