/**
 * @module
 * {@link Storage} over a data directory on a local or shared filesystem: the key
 * `certificates/web.example.com/cert.pem` is the file `<dir>/certificates/web.example.com/cert.pem`.
 *
 * Contract (the one in `storage.ts`, plus):
 * - `put()` writes a uniquely named temp file beside the target (`<name>~<random>.tmp`),
 *   fsyncs it, renames it over the target, then fsyncs the directory. Readers see the old
 *   or the new file, never a mix; a crash leaves at most a stray temp file, which `list()`
 *   ignores (`~` is not a key character).
 * - Directories are created 0700. `secret: true` files are created 0600; other files 0644
 *   (minus the umask).
 * - The top-level `locks` directory holds lock files and is reserved: a key whose first
 *   segment is `locks` is a bad key, and `list('')` never shows it.
 * - Errors name the path, never the value.
 *
 * Locks: `lock(name)` creates `locks/<name>.lock` with O_EXCL, holding
 * `{ pid, host, id, created, updated }`. While held, an unref'd heartbeat rewrites the file
 * through its open descriptor every `lockHeartbeatMs`, which keeps its mtime fresh. Waiters
 * poll every `lockPollMs` (plus up to 150 % jitter); waiters in this process are also woken
 * at once by a release. A lock file whose mtime is older than `lockStaleMs` is abandoned: a
 * waiter takes the breaker file `<name>.lock.break` with O_EXCL (one breaker at a time),
 * checks that the lock file is still the stale inode it judged, and only then deletes it.
 * The lock file's path is never emptied while a live lock is there (moving the stale file
 * aside did that: a waiter could move a lock another waiter had just taken, and a third
 * then took it too). A breaker file left by a crashed waiter is removed once it is older
 * than `lockStaleMs`. `release()` stops the heartbeat and deletes the file only if it still
 * carries this lock's id; it is safe to call twice.
 *
 * A lock is a lease: a holder whose event loop stalls for longer than `lockStaleMs` loses
 * it. Keep `lockStaleMs` several heartbeats long.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { FairwayError } from '../errors.js';
import type { Storage, StorageLock, StorageLockOptions } from './storage.js';

export interface FileStorageOptions {
  /** A lock file not heartbeated for this long is taken over (default 30 s). */
  readonly lockStaleMs?: number;
  /** How often a held lock's file is refreshed (default 5 s); must be below `lockStaleMs`. */
  readonly lockHeartbeatMs?: number;
  /** Base interval between attempts while waiting for a lock (default 100 ms, plus jitter). */
  readonly lockPollMs?: number;
}

/** The JSON inside a lock file. */
interface LockRecord {
  readonly pid: number;
  readonly host: string;
  readonly id: string;
  readonly created: number;
  readonly updated: number;
}

const SEGMENT = /^[A-Za-z0-9._*-]+$/;
const LOCKS = 'locks';
const DEFAULT_LOCK_TIMEOUT_MS = 60_000;
const KEY_RULE = 'keys are /-separated segments of [A-Za-z0-9._*-], with no empty, "." or ".." segment';

function isSegment(s: string): boolean {
  return SEGMENT.test(s) && s !== '.' && s !== '..';
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function ioError(message: string, file: string, cause: unknown): FairwayError {
  return new FairwayError('FW_STORAGE_IO', `${message}: ${(cause as Error).message}`, { path: file }, { cause });
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`FileStorage: ${name} must be a positive number of milliseconds, got ${String(value)}`);
  return v;
}

/** Waiters in this process for a lock file, woken when a holder in this process releases it. */
const waiters = new Map<string, Set<() => void>>();

function pause(file: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    let set = waiters.get(file);
    if (!set) waiters.set(file, (set = new Set()));
    const wake = (): void => {
      clearTimeout(timer);
      set.delete(wake);
      if (set.size === 0 && waiters.get(file) === set) waiters.delete(file);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    set.add(wake);
  });
}

function wakeWaiters(file: string): void {
  for (const wake of [...(waiters.get(file) ?? [])]) wake();
}

export class FileStorage implements Storage {
  readonly description: string;
  #root: string;
  #locks: string;
  #staleMs: number;
  #heartbeatMs: number;
  #pollMs: number;

  constructor(dir: string, options: FileStorageOptions = {}) {
    this.#root = path.resolve(dir);
    this.#locks = path.join(this.#root, LOCKS);
    this.#staleMs = positive(options.lockStaleMs, 30_000, 'lockStaleMs');
    this.#heartbeatMs = positive(options.lockHeartbeatMs, Math.min(5_000, this.#staleMs / 3), 'lockHeartbeatMs');
    this.#pollMs = positive(options.lockPollMs, 100, 'lockPollMs');
    if (this.#heartbeatMs >= this.#staleMs) {
      throw new RangeError(`FileStorage: lockHeartbeatMs (${this.#heartbeatMs}) must be below lockStaleMs (${this.#staleMs})`);
    }
    this.description = `directory ${this.#root}`;
  }

  async get(key: string): Promise<Buffer> {
    const file = this.#fileOf(key);
    try {
      return await readFile(file);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
        throw new FairwayError('FW_STORAGE_NOT_FOUND', `no value stored under ${JSON.stringify(key)} in ${this.#root}`, { key });
      }
      throw ioError(`cannot read ${file}`, file, err);
    }
  }

  async put(key: string, value: Buffer | string, options: { secret?: boolean } = {}): Promise<void> {
    const file = this.#fileOf(key);
    const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    const dir = path.dirname(file);
    const tmp = `${file}~${randomBytes(8).toString('hex')}.tmp`;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const handle = await open(tmp, 'wx', options.secret ? 0o600 : 0o644);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      throw ioError(`cannot write ${file}`, file, err);
    }
    await syncDirectory(dir);
  }

  async delete(key: string): Promise<void> {
    const file = this.#fileOf(key);
    try {
      await unlink(file);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return;
      throw ioError(`cannot delete ${file}`, file, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    const trimmed = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    const segments = trimmed === '' ? [] : this.#segmentsOf(trimmed);
    const keys: string[] = [];
    await this.#walk(path.join(this.#root, ...segments), segments.join('/'), keys);
    return keys.sort();
  }

  async lock(name: string, options: StorageLockOptions = {}): Promise<StorageLock> {
    if (typeof name !== 'string' || !isSegment(name)) {
      throw new FairwayError('FW_STORAGE_IO', `invalid lock name ${JSON.stringify(name)}: lock names are one segment of [A-Za-z0-9._*-], not "." or ".."`, { lock: name });
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    if (!(timeoutMs >= 0)) throw new RangeError(`FileStorage.lock: timeoutMs must be >= 0, got ${String(options.timeoutMs)}`);
    const file = path.join(this.#locks, `${name}.lock`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const held = await this.#tryCreate(file);
      if (held) return held;
      if (await this.#breakIfStale(file)) continue;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const holder = await readRecord(file);
        const by = holder ? ` by pid ${holder.pid} on ${holder.host}` : '';
        throw new FairwayError('FW_STORAGE_LOCK_TIMEOUT', `lock ${JSON.stringify(name)} in ${this.#locks} is still held${by} after ${timeoutMs} ms`, {
          lock: name,
          holder: holder ? { pid: holder.pid, host: holder.host, since: new Date(holder.created).toISOString() } : undefined,
        });
      }
      await pause(file, Math.min(remaining, this.#pollMs * (1 + Math.random() * 1.5)));
    }
  }

  /** Creates the lock file exclusively; `undefined` if someone else holds it. */
  async #tryCreate(file: string, retry = true): Promise<FileLock | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(file, 'wx', 0o600);
    } catch (err) {
      if (errno(err) === 'EEXIST') return undefined;
      if (errno(err) !== 'ENOENT' || !retry) throw ioError(`cannot create lock file ${file}`, file, err);
      try {
        await mkdir(this.#locks, { recursive: true, mode: 0o700 });
      } catch (mkdirErr) {
        throw ioError(`cannot create lock directory ${this.#locks}`, this.#locks, mkdirErr);
      }
      return this.#tryCreate(file, false);
    }
    const now = Date.now();
    const record: LockRecord = { pid: process.pid, host: hostname(), id: randomUUID(), created: now, updated: now };
    try {
      await writeRecord(handle, record);
    } catch (err) {
      await handle.close().catch(() => {});
      await unlink(file).catch(() => {});
      throw ioError(`cannot write lock file ${file}`, file, err);
    }
    return new FileLock(file, handle, record, this.#heartbeatMs);
  }

  /**
   * Removes the lock file if it is stale. Returns true when the caller should retry at once
   * (the file was removed, by us or by someone else), false when it should wait.
   */
  async #breakIfStale(file: string): Promise<boolean> {
    let seen;
    try {
      seen = await stat(file);
    } catch (err) {
      if (errno(err) === 'ENOENT') return true;
      throw ioError(`cannot inspect lock file ${file}`, file, err);
    }
    if (Date.now() - seen.mtimeMs <= this.#staleMs) return false;
    // One breaker at a time. Under the breaker file only a holder's own release removes the
    // lock file, so the inode checked below is the one deleted.
    const breaker = `${file}.break`;
    let handle: FileHandle;
    try {
      handle = await open(breaker, 'wx', 0o600);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw ioError(`cannot take over stale lock file ${file}`, breaker, err);
      // Another waiter is breaking it; a breaker file its crashed owner left goes once stale.
      const left = await stat(breaker).catch(() => undefined);
      if (left && Date.now() - left.mtimeMs > this.#staleMs) await unlink(breaker).catch(() => {});
      return false;
    }
    try {
      const now = await stat(file).catch(() => undefined);
      if (now === undefined) return true;
      // Replaced by a live lock, or its holder heartbeated, since we judged it: leave it.
      if (now.ino !== seen.ino || now.dev !== seen.dev || Date.now() - now.mtimeMs <= this.#staleMs) return false;
      try {
        await unlink(file);
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw ioError(`cannot take over stale lock file ${file}`, file, err);
      }
      return true;
    } finally {
      await handle.close().catch(() => {});
      await unlink(breaker).catch(() => {});
    }
  }

  async #walk(dir: string, keyPrefix: string, keys: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw ioError(`cannot list ${dir}`, dir, err);
    }
    for (const entry of entries) {
      if (!isSegment(entry.name) || (keyPrefix === '' && entry.name === LOCKS)) continue;
      const key = keyPrefix === '' ? entry.name : `${keyPrefix}/${entry.name}`;
      if (entry.isDirectory()) await this.#walk(path.join(dir, entry.name), key, keys);
      else if (entry.isFile()) keys.push(key);
    }
  }

  #segmentsOf(key: string): string[] {
    if (typeof key !== 'string' || key === '') throw badKey(key, KEY_RULE);
    const segments = key.split('/');
    if (!segments.every(isSegment)) throw badKey(key, KEY_RULE);
    if (segments[0] === LOCKS) throw badKey(key, `the top-level "${LOCKS}" directory is reserved for lock files`);
    return segments;
  }

  #fileOf(key: string): string {
    return path.join(this.#root, ...this.#segmentsOf(key));
  }
}

function badKey(key: unknown, why: string): FairwayError {
  return new FairwayError('FW_STORAGE_IO', `invalid storage key ${JSON.stringify(key)}: ${why}`, { key });
}

/** Makes a rename durable. Best effort: some filesystems cannot fsync a directory. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // The data is already in place; only durability across a power loss is weaker.
  } finally {
    await handle?.close().catch(() => {});
  }
}

async function writeRecord(handle: FileHandle, record: LockRecord): Promise<void> {
  const data = Buffer.from(JSON.stringify(record));
  await handle.write(data, 0, data.length, 0);
  await handle.truncate(data.length);
}

async function readRecord(file: string): Promise<LockRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as LockRecord;
  } catch {
    return undefined;
  }
}

/**
 * A held lock. Lifecycle: created holding an open descriptor on its lock file; heartbeats
 * through that descriptor (so it never writes into another holder's file) until
 * `release()`, which stops the heartbeat, deletes the file if it still carries our id,
 * closes the descriptor and wakes this process's waiters.
 */
class FileLock implements StorageLock {
  #file: string;
  #handle: FileHandle;
  #record: LockRecord;
  #timer: NodeJS.Timeout;
  #beat: Promise<void> | undefined;
  #releasing: Promise<void> | undefined;

  constructor(file: string, handle: FileHandle, record: LockRecord, heartbeatMs: number) {
    this.#file = file;
    this.#handle = handle;
    this.#record = record;
    this.#timer = setInterval(() => this.#heartbeat(), heartbeatMs).unref();
  }

  #heartbeat(): void {
    if (this.#beat) return;
    this.#record = { ...this.#record, updated: Date.now() };
    this.#beat = (async () => {
      // A lock whose file is gone was taken over (our lease lapsed); stop refreshing it.
      if ((await this.#handle.stat()).nlink === 0) clearInterval(this.#timer);
      else await writeRecord(this.#handle, this.#record);
    })()
      .catch(() => {}) // A failed heartbeat is retried at the next tick.
      .finally(() => (this.#beat = undefined));
  }

  release(): Promise<void> {
    if (this.#releasing) return this.#releasing.catch(() => {});
    this.#releasing = (async () => {
      clearInterval(this.#timer);
      await this.#beat;
      try {
        if ((await readRecord(this.#file))?.id === this.#record.id) await unlink(this.#file);
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw ioError(`cannot remove lock file ${this.#file}`, this.#file, err);
      } finally {
        await this.#handle.close().catch(() => {});
        wakeWaiters(this.#file);
      }
    })();
    return this.#releasing;
  }
}
