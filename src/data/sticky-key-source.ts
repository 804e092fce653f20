/**
 * @module
 * Where the key that signs sticky-version cookies comes from. It runs beside the control
 * plane, never on the hot path: the composition root hands it every snapshot, and it
 * hands the data plane a key (`onKey`, i.e. `DataPlane.setStickyKey`) when the key to use
 * changes. The data plane itself only ever holds a Buffer.
 *
 * Which key, from the snapshot's `settings.sticky`:
 * 1. `secret`: its UTF-8 bytes.
 * 2. `secretFile`: the file's bytes without a trailing newline, read when the settings
 *    name it (at start and when the config changes), at least 16 bytes.
 * 3. Neither: a random 32-byte key generated once and kept in the certificate storage
 *    under `sticky/key` ({@link loadStickyKey}), so every replica sharing the storage
 *    (`tls.storage`, or the router namespace's Secrets in Kubernetes mode) and every
 *    restart signs alike. Only read (or created) while at least one app is sticky, so a
 *    router without sticky apps never writes it.
 *
 * A key that cannot be had (unreadable file, storage down) is logged and the data plane
 * keeps the key it has (at start: a random one for this process, so cookies work but do
 * not survive a restart); the storage is retried with backoff (1 s doubling to 1 min).
 * A result that arrives after the settings moved on is dropped.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { FairwayError } from '../errors.js';
import type { Snapshot, StickySettings } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { Storage, StorageLockOptions } from '../tls/storage.js';

/** The storage key of the shared sticky key. */
export const STICKY_KEY = 'sticky/key';
/** The storage lock taken to create it. */
export const STICKY_KEY_LOCK = 'sticky-key';
/** Shortest key accepted from a file or from storage. */
const MIN_KEY_BYTES = 16;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 60_000;

export interface StickyKeySourceOptions {
  /** Opens the storage for a `tls.storage` directory (the factory the certificate manager uses). */
  readonly storage: (dir: string) => Storage;
  /** Receives each new key. */
  readonly onKey: (key: Buffer) => void;
  readonly logger: Logger;
}

export class StickyKeySource {
  readonly #o: StickyKeySourceOptions;
  /** What the current key comes from; a change starts a new epoch. */
  #source = '';
  #epoch = 0;
  /** Settles when the current source's key was handed over or found unavailable. */
  #pending: Promise<void> = Promise.resolve();
  /** Keys read from storage, by `tls.storage` directory. */
  readonly #stored = new Map<string, Buffer>();
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: StickyKeySourceOptions) {
    this.#o = options;
  }

  /**
   * Follows `snapshot`'s settings: resolves when the key they call for was handed over, or
   * was found unavailable (logged). Cheap when nothing changed (it then returns the
   * pending work for the same settings, if any). Never rejects.
   */
  apply(snapshot: Snapshot): Promise<void> {
    const sticky: StickySettings | undefined = snapshot.settings.sticky;
    const needed = snapshot.apps.some((a) => a.versionPick?.sticky === true);
    const source =
      sticky?.secret !== undefined ? `secret\u0000${sticky.secret}`
      : sticky?.secretFile !== undefined ? `file\u0000${sticky.secretFile}`
      : needed ? `storage\u0000${snapshot.settings.tls.storage}`
      : '';
    if (source === this.#source) return this.#pending;
    this.#source = source;
    const epoch = ++this.#epoch;
    clearTimeout(this.#retry);
    this.#pending = this.#resolve(epoch, sticky, needed ? snapshot.settings.tls.storage : undefined);
    return this.#pending;
  }

  /** Stops retrying. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
  }

  async #resolve(epoch: number, sticky: StickySettings | undefined, storageDir: string | undefined): Promise<void> {
    if (sticky?.secret !== undefined) return this.#use(epoch, Buffer.from(sticky.secret, 'utf8'));
    if (sticky?.secretFile !== undefined) {
      try {
        const key = stripNewline(await readFile(sticky.secretFile));
        if (key.length < MIN_KEY_BYTES) throw new Error(`holds ${key.length} bytes; at least ${MIN_KEY_BYTES} are needed`);
        this.#use(epoch, key);
      } catch (err) {
        this.#o.logger.error({ file: sticky.secretFile, err: (err as Error).message }, 'sticky.secretFile cannot be used; sticky cookies keep the previous key');
      }
      return;
    }
    if (storageDir !== undefined) await this.#fromStorage(epoch, storageDir, RETRY_MIN_MS);
  }

  async #fromStorage(epoch: number, dir: string, backoff: number): Promise<void> {
    try {
      let key = this.#stored.get(dir);
      if (!key) this.#stored.set(dir, (key = await loadStickyKey(this.#o.storage(dir), { timeoutMs: 10_000 })));
      this.#use(epoch, key);
    } catch (err) {
      if (epoch !== this.#epoch || this.#stopped) return;
      this.#o.logger.error({ code: (err as FairwayError).code, err: (err as Error).message, retryInMs: backoff }, 'the shared sticky-cookie key could not be read or stored; cookies are signed with this process\'s own key meanwhile');
      this.#retry = setTimeout(() => void this.#fromStorage(epoch, dir, Math.min(backoff * 2, RETRY_MAX_MS)), backoff);
      this.#retry.unref();
    }
  }

  #use(epoch: number, key: Buffer): void {
    if (epoch === this.#epoch && !this.#stopped) this.#o.onKey(key);
  }
}

/**
 * The shared sticky key in `storage`, created if absent: read it; if it is not there,
 * take the lock `sticky-key`, read again (another replica may have created it while this
 * one waited), and only then store a new random 32-byte key (`secret: true`). A stored
 * value shorter than 16 bytes is treated as absent and replaced.
 */
export async function loadStickyKey(storage: Storage, lockOptions?: StorageLockOptions): Promise<Buffer> {
  const found = await readKey(storage);
  if (found) return found;
  const lock = await storage.lock(STICKY_KEY_LOCK, lockOptions);
  try {
    const again = await readKey(storage);
    if (again) return again;
    const key = randomBytes(32);
    await storage.put(STICKY_KEY, key, { secret: true });
    return key;
  } finally {
    await lock.release();
  }
}

async function readKey(storage: Storage): Promise<Buffer | undefined> {
  try {
    const value = await storage.get(STICKY_KEY);
    return value.length >= MIN_KEY_BYTES ? value : undefined;
  } catch (err) {
    if (err instanceof FairwayError && err.code === 'FW_STORAGE_NOT_FOUND') return undefined;
    throw err;
  }
}

function stripNewline(value: Buffer): Buffer {
  let end = value.length;
  if (end > 0 && value[end - 1] === 10) end--;
  if (end > 0 && value[end - 1] === 13) end--;
  return value.subarray(0, end);
}
