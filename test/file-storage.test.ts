import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fsp from 'node:fs/promises';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStorage } from '../src/tls/file-storage.js';
import { storageContract } from './storage-contract.js';

const WORKER = fileURLToPath(new URL('./fixtures/lock-counter-worker.ts', import.meta.url));

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fairway-storage-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file under `dir`, relative, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid!;
}

async function writeLockFile(dir: string, name: string, pid: number, mtime: Date): Promise<string> {
  const file = path.join(dir, 'locks', `${name}.lock`);
  await mkdir(path.dirname(file), { recursive: true });
  const at = mtime.getTime();
  await writeFile(file, JSON.stringify({ pid, host: hostname(), id: 'left-behind', created: at, updated: at }));
  await utimes(file, mtime, mtime);
  return file;
}

storageContract(t, 'FileStorage', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fairway-storage-'));
  return { storage: new FileStorage(path.join(dir, 'data')), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

t.test('the description names the absolute directory', async (t) => {
  t.equal(new FileStorage('relative/data').description, `directory ${path.resolve('relative/data')}`);
});

t.test('lock timing options are validated', async (t) => {
  t.throws(() => new FileStorage('d', { lockStaleMs: 100, lockHeartbeatMs: 100 }), RangeError);
  t.throws(() => new FileStorage('d', { lockPollMs: 0 }), RangeError);
  t.throws(() => new FileStorage('d', { lockStaleMs: Number.NaN }), RangeError);
  t.doesNotThrow(() => new FileStorage('d', { lockStaleMs: 300 }), 'the default heartbeat shrinks to fit a short stale time');
});

t.test('secret files are 0600 in 0700 directories', async (t) => {
  const dir = await tempDir(t);
  const storage = new FileStorage(path.join(dir, 'data'));
  await storage.put('certificates/web.example.com/key.pem', 'private', { secret: true });
  await storage.put('certificates/web.example.com/cert.pem', 'public');
  await storage.put('acme/account-key.pem', 'first plain', {});
  await storage.put('acme/account-key.pem', 'then secret', { secret: true });
  const mode = async (rel: string) => (await stat(path.join(dir, 'data', rel))).mode & 0o777;
  t.equal(await mode('certificates/web.example.com/key.pem'), 0o600);
  t.equal(await mode('acme/account-key.pem'), 0o600, 'overwriting with a secret value makes the file secret');
  const plain = await mode('certificates/web.example.com/cert.pem');
  t.ok((plain & 0o600) === 0o600 && (plain & ~0o644) === 0, `plain files are at most 0644 (${plain.toString(8)})`);
  t.equal(await mode('certificates/web.example.com'), 0o700);
  t.equal(await mode('certificates'), 0o700);
  t.equal(await mode(''), 0o700, 'a missing data directory is created 0700');
});

t.test('a bad key never touches a file outside the directory', async (t) => {
  const dir = await tempDir(t);
  const storage = new FileStorage(path.join(dir, 'data'));
  await t.rejects(storage.put('../escaped', 'x'), { code: 'FW_STORAGE_IO', message: /invalid storage key "\.\.\/escaped"/ });
  await t.rejects(storage.put('locks/x', 'x'), { code: 'FW_STORAGE_IO', message: /reserved for lock files/ }, 'locks/ is reserved');
  t.same(await filesUnder(dir), []);
});

t.test('errors name the path, never the value', async (t) => {
  const dir = await tempDir(t);
  const storage = new FileStorage(path.join(dir, 'data'));
  await storage.put('acme', 'a key, so acme/ cannot be a directory');
  const err = await storage.put('acme/account-key.pem', 'SECRET-KEY-MATERIAL', { secret: true }).catch((e: unknown) => e);
  t.match(err, { code: 'FW_STORAGE_IO', message: /cannot write .*acme\/account-key\.pem/ });
  t.notMatch((err as Error).message, /SECRET-KEY-MATERIAL/);
});

t.test('put leaves no temporary files behind, and list ignores stray ones', async (t) => {
  const dir = await tempDir(t);
  const storage = new FileStorage(dir);
  await Promise.all(Array.from({ length: 20 }, (_, i) => storage.put('certificates/web.example.com/cert.pem', `v${i}`)));
  t.same(await filesUnder(dir), ['certificates/web.example.com/cert.pem']);
  await writeFile(path.join(dir, 'certificates/web.example.com/cert.pem~0123abcd.tmp'), 'a crashed write');
  t.same(await storage.list(''), ['certificates/web.example.com/cert.pem']);
});

t.test('a held lock is locks/<name>.lock naming its holder; release removes it', async (t) => {
  const dir = await tempDir(t);
  const storage = new FileStorage(dir);
  const lock = await storage.lock('issue-web.example.com');
  const file = path.join(dir, 'locks', 'issue-web.example.com.lock');
  const record = JSON.parse(await readFile(file, 'utf8'));
  t.match(record, { pid: process.pid, host: hostname(), id: String, created: Number, updated: Number });
  t.equal((await stat(file)).mode & 0o777, 0o600);
  t.same(await storage.list(''), [], 'lock files are not keys');
  await lock.release();
  t.same(await readdir(path.join(dir, 'locks')), []);
});

t.test('a stale lock left by a dead process is taken over after lockStaleMs', async (t) => {
  const dir = await tempDir(t);
  const storage = new FileStorage(dir, { lockStaleMs: 300, lockHeartbeatMs: 50, lockPollMs: 20 });
  const pid = await deadPid();
  const file = await writeLockFile(dir, 'issue', pid, new Date());

  const started = Date.now();
  const lock = await storage.lock('issue', { timeoutMs: 5_000 });
  const waited = Date.now() - started;
  t.ok(waited >= 250, `not before the file went stale (waited ${waited} ms)`);
  t.match(JSON.parse(await readFile(file, 'utf8')), { pid: process.pid }, 'the lock file is now ours');
  await lock.release();

  await writeLockFile(dir, 'issue', pid, new Date(Date.now() - 3_600_000));
  const again = await storage.lock('issue', { timeoutMs: 5_000 });
  t.match(JSON.parse(await readFile(file, 'utf8')), { pid: process.pid }, 'a long-abandoned lock is taken over too');
  await again.release();
  t.same(await readdir(path.join(dir, 'locks')), [], 'the takeover leaves nothing behind');
});

t.test('of many waiters racing for one stale lock, one at a time takes it', async (t) => {
  const dir = await tempDir(t);
  await writeLockFile(dir, 'issue', await deadPid(), new Date(Date.now() - 3_600_000));
  let inside = 0;
  let peak = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    const storage = new FileStorage(dir, { lockStaleMs: 300, lockHeartbeatMs: 50, lockPollMs: 5 });
    const lock = await storage.lock('issue', { timeoutMs: 10_000 });
    peak = Math.max(peak, ++inside);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inside--;
    await lock.release();
  }));
  t.equal(peak, 1);
  t.same(await readdir(path.join(dir, 'locks')), []);
});

t.test('a waiter that judged a lock stale never breaks a newer lock that replaced it', async (t) => {
  const dir = await tempDir(t);
  const file = await writeLockFile(dir, 'issue', await deadPid(), new Date(Date.now() - 3_600_000));
  // Between the waiter's stat (which sees the stale file) and its rename, another waiter
  // breaks the stale lock and takes a fresh one: the race a naive unlink loses.
  let raced = false;
  const { FileStorage: Racing } = await t.mockImport<typeof import('../src/tls/file-storage.js')>('../src/tls/file-storage.js', {
    'node:fs/promises': {
      ...fsp,
      stat: async (target: string) => {
        const seen = await fsp.stat(target);
        if (target === file && !raced) {
          raced = true;
          await fsp.unlink(file);
          await fsp.writeFile(file, JSON.stringify({ pid: process.pid, host: hostname(), id: 'newer', created: Date.now(), updated: Date.now() }));
        }
        return seen;
      },
    },
  });
  const storage = new Racing(dir, { lockStaleMs: 300, lockHeartbeatMs: 50, lockPollMs: 20 });
  await t.rejects(storage.lock('issue', { timeoutMs: 150 }), { code: 'FW_STORAGE_LOCK_TIMEOUT' });
  t.ok(raced);
  t.match(JSON.parse(await readFile(file, 'utf8')), { id: 'newer' }, 'the newer lock is back in place');
  t.same(await readdir(path.join(dir, 'locks')), ['issue.lock'], 'and nothing else is left behind');
});

t.test('a heartbeat keeps a held lock from being taken over by another instance', async (t) => {
  const dir = await tempDir(t);
  const options = { lockStaleMs: 300, lockHeartbeatMs: 50, lockPollMs: 20 };
  const a = new FileStorage(dir, options);
  const b = new FileStorage(dir, options);
  const held = await a.lock('renew');
  const file = path.join(dir, 'locks', 'renew.lock');
  const created = (await stat(file)).mtimeMs;

  await t.rejects(b.lock('renew', { timeoutMs: 1_200 }), { code: 'FW_STORAGE_LOCK_TIMEOUT', message: new RegExp(`held by pid ${process.pid}`) }, 'four stale periods later it is still held');
  const { mtimeMs } = await stat(file);
  t.ok(mtimeMs > created, 'the lock file was refreshed');
  t.ok(mtimeMs - created >= 600, `and kept being refreshed (last ${Math.round(mtimeMs - created)} ms after it was taken)`);
  t.match(JSON.parse(await readFile(file, 'utf8')), { pid: process.pid }, 'the heartbeat keeps the record valid');

  await held.release();
  const taken = await b.lock('renew', { timeoutMs: 1_000 });
  await taken.release();
});

t.test('two processes sharing the directory never hold the lock at once', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const run = () => {
    const child = spawn(process.execPath, [...process.execArgv, WORKER, dir, '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, output }));
    });
  };
  const results = await Promise.all([run(), run()]);
  for (const { code, output } of results) t.equal(code, 0, output);
  t.equal((await new FileStorage(dir).get('counter')).toString(), '40');
});
