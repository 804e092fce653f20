/**
 * @module
 * Where certificates, keys and ACME account data live, shared by every replica.
 *
 * Contract (every implementation passes the shared suite in test/storage-contract.ts):
 * - Keys are `/`-separated relative paths of `[A-Za-z0-9._*-]` segments, e.g.
 *   `certificates/web.example.com/cert.pem`; no empty, `.` or `..` segment. A bad key
 *   throws FW_STORAGE_IO. The top-level segment `locks` is reserved for locks.
 * - `get()` of a missing key throws FairwayError FW_STORAGE_NOT_FOUND; every other
 *   failure throws FW_STORAGE_IO. `delete()` of a missing key succeeds.
 * - `put()` is atomic: a concurrent `get()` sees the old or the new value, never a mix.
 *   `secret: true` values (private keys) are readable by the owner only (0600 on files).
 * - `list(prefix)` returns every key under `prefix` (recursively), sorted; `[]` if none.
 * - Safe for concurrent use by many async callers in one process and by many processes
 *   sharing the same backing store.
 * - `lock(name)` waits until it holds the exclusive lock `name` across all processes and
 *   returns a {@link StorageLock}. The lock is a lease kept alive by a heartbeat while
 *   held; a lock whose holder stopped heartbeating for `staleMs` is taken over. Waiting
 *   longer than `timeoutMs` throws FW_STORAGE_LOCK_TIMEOUT. Locks are not re-entrant.
 * - Callers lock, then *re-check* whether the work is still needed (another process may
 *   have done it while they waited), then work, then release.
 */

export interface StorageLockOptions {
  /** Give up waiting after this long (default 60 s). */
  readonly timeoutMs?: number;
}

export interface StorageLock {
  /** Releases the lock; safe to call twice. */
  release(): Promise<void>;
}

export interface Storage {
  get(key: string): Promise<Buffer>;
  put(key: string, value: Buffer | string, options?: { secret?: boolean }): Promise<void>;
  delete(key: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
  lock(name: string, options?: StorageLockOptions): Promise<StorageLock>;
  /** A human description for logs and `/v1/certificates` (e.g. the directory). */
  readonly description: string;
}
