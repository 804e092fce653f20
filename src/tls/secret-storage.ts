/**
 * @module
 * {@link Storage} in Kubernetes: one Secret per key, and one `coordination.k8s.io` Lease per
 * held lock, in one namespace. Replicas of the router sharing the namespace (and prefix)
 * share the certificates and exclude each other through the Leases.
 *
 * Contract (the one in `storage.ts`, plus):
 * - The key `certificates/web.example.com/cert.pem` is the Secret
 *   `<prefix>-certificates--web.example.com--cert.pem` (type `Opaque`), its value base64 in
 *   `data.value`, labelled `app.kubernetes.io/managed-by: fairway` and
 *   `fairway.io/storage: <prefix>`, annotated `fairway.io/key: <the exact key>`. So
 *   `kubectl get secrets -l fairway.io/storage=fairway` lists the store, and the annotation
 *   says which key each Secret holds.
 * - Secret names. The readable name is `<prefix>-` + the key with each `/` written `--`. It
 *   is used when it is a valid DNS-1123 subdomain of at most 253 characters (so the key is
 *   lower case, without `*` or `_`, and no segment starts with `.`), no segment contains
 *   `--` or starts or ends with `-`, and it does not end in `-` and ten hex digits. Those
 *   rules make it unambiguous: `/` → `.` would give `a/b.c` and `a.b/c` one name, while
 *   `--` can only be a separator, so every readable name comes from exactly one key. Any
 *   other key (upper case, `*`, `_`, `xn--` labels, too long) is
 *   `<prefix>-<sanitised tail>-<first 10 hex of sha256(key)>`: the tail is the key lower
 *   cased, `/` → `--`, `*` → `wildcard`, `_` → `-`, cut from the left to fit 253. Readable
 *   names never end like a hashed one, so the two kinds never meet.
 * - Collision safety: a Secret counts as the key's only when its `fairway.io/key`
 *   annotation equals the key and its `fairway.io/storage` label equals the prefix (two
 *   prefixes such as `fairway` and `fairway-a` could otherwise reach one name, as could two
 *   keys whose hashes share 40 bits). `get()` of a Secret holding something else is
 *   FW_STORAGE_NOT_FOUND; `put()` never overwrites it (FW_STORAGE_IO names it); `delete()`
 *   leaves it; `list()` shows only Secrets whose name is the name of the key they hold.
 * - `put()` creates the Secret; if it exists, one JSON patch tests the annotation and the
 *   label and replaces `data`: a single atomic write, so readers see the old or the new
 *   value. (An instance that has seen the Secret exist patches first and creates on 404,
 *   so an overwrite uploads the value once.) `delete()` reads the Secret, checks it, and
 *   deletes it with a uid precondition. `list()` lists by label selector, in pages (it
 *   reads the values too: Kubernetes has no metadata-only list in this client).
 *   Every value is a Secret, so `secret: true`
 *   changes nothing: who may read Secrets in the namespace may read every value. A value
 *   is limited by the API server's object size (1 MiB in etcd by default).
 * - Errors: FW_STORAGE_IO names the namespace and object and carries the API server's
 *   message (`secrets "x" is forbidden: …`), or, when the server cannot be reached or does
 *   not answer within `requestTimeoutMs`, its address. Never the value.
 *
 * Locks (the Lease mechanics are `providers/kubernetes/held-lease.ts`, shared with the
 * cutover leadership and the replica Leases): `lock(name)` holds the Lease
 * `<prefix>-lock-<name>` (names mapped as keys are: readable when `name` is lower case
 * and DNS-valid, else hashed), annotated
 * `fairway.io/lock: <name>`, with `holderIdentity` (this instance's `identity`),
 * `leaseDurationSeconds` = ceil(`staleMs` / 1000), `acquireTime`, `renewTime` (MicroTimes
 * with six fractional digits, as the API requires) and `leaseTransitions`.
 * - Acquire = create the Lease. If it exists and its holder is empty or its
 *   `renewTime + leaseDurationSeconds` has passed (by this machine's clock), take it over by
 *   an update carrying the resourceVersion read, with `leaseTransitions` + 1: of several
 *   waiters only one update succeeds, the others get 409 Conflict and wait again.
 *   Otherwise wait `pollMs` (plus up to 150 % jitter) and retry, until `timeoutMs`:
 *   FW_STORAGE_LOCK_TIMEOUT naming the holder.
 * - Callers in one instance queue in memory for a lock name (a release wakes the next at
 *   once); only the head of the queue talks to the API server. Locks are not re-entrant.
 * - While held, an unref'd heartbeat updates `renewTime` every `heartbeatMs` (with the
 *   resourceVersion). A heartbeat that finds the Lease gone or held by someone else marks
 *   the lock lost: it stops, and `release()` then touches nothing. A failed heartbeat is
 *   retried at the next tick.
 * - `release()` stops the heartbeat and deletes the Lease with a uid + resourceVersion
 *   precondition, so it never deletes a Lease someone else has taken over; an idle lock
 *   leaves no object behind. Safe to call twice.
 *
 * A lock is a lease: a holder that cannot renew for `staleMs` (a stalled event loop, a
 * partition from the API server) loses it. Keep `staleMs` several heartbeats long, and
 * the replicas' clocks within a fraction of it.
 *
 * Nothing happens at import or construction: the first request is the first call.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  CoordinationV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type ConfigurationOptions,
  type KubeConfig,
  type V1Secret,
} from '@kubernetes/client-node';
import { FairwayError } from '../errors.js';
import { apiFailure, statusOf, withTimeout } from '../providers/kubernetes/api-failure.js';
import { HeldLease, microTimeText, tryAcquireLease, type LeaseContext } from '../providers/kubernetes/held-lease.js';
import type { Storage, StorageLock, StorageLockOptions } from './storage.js';

export interface SecretStorageOptions {
  readonly kubeConfig: KubeConfig;
  /** The namespace holding the Secrets and Leases. */
  readonly namespace: string;
  /** Starts every Secret and Lease name and is the `fairway.io/storage` label (default `fairway`). */
  readonly prefix?: string;
  /** The Leases' `holderIdentity` (default: host name + random suffix, unique per instance). */
  readonly identity?: string;
  /** A Lease not renewed for this long is taken over (default 30 s; whole seconds on the Lease). */
  readonly staleMs?: number;
  /** How often a held Lease is renewed (default min(5 s, staleMs / 3)); must be below `staleMs`. */
  readonly heartbeatMs?: number;
  /** Base interval between attempts while waiting for a Lease held elsewhere (default 250 ms, plus jitter). */
  readonly pollMs?: number;
  /** A request the API server has not answered after this long fails with FW_STORAGE_IO (default 30 s). */
  readonly requestTimeoutMs?: number;
}

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const STORAGE_LABEL = 'fairway.io/storage';
export const KEY_ANNOTATION = 'fairway.io/key';
export const LOCK_ANNOTATION = 'fairway.io/lock';

const SEGMENT = /^[A-Za-z0-9._*-]+$/;
const LOCKS = 'locks';
const KEY_RULE = 'keys are /-separated segments of [A-Za-z0-9._*-], with no empty, "." or ".." segment';
const DEFAULT_LOCK_TIMEOUT_MS = 60_000;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HASHED_ENDING = /-[0-9a-f]{10}$/;
const MAX_NAME = 253;
const PAGE_SIZE = 250;
/** At most this many Secret names are remembered as existing (see `put()`). */
const SEEN_LIMIT = 10_000;
/** Immediate retries after a race (the object vanished or changed between two requests). */
const MAX_RACE_RETRIES = 5;

function isSegment(s: string): boolean {
  return SEGMENT.test(s) && s !== '.' && s !== '..';
}

function badKey(key: unknown, why: string): FairwayError {
  return new FairwayError('FW_STORAGE_IO', `invalid storage key ${JSON.stringify(key)}: ${why}`, { key });
}

/** The key's segments; throws FW_STORAGE_IO for a bad key, as the contract says. */
function segmentsOf(key: string): string[] {
  if (typeof key !== 'string' || key === '') throw badKey(key, KEY_RULE);
  const segments = key.split('/');
  if (!segments.every(isSegment)) throw badKey(key, KEY_RULE);
  if (segments[0] === LOCKS) throw badKey(key, `the top-level "${LOCKS}" segment is reserved for locks`);
  return segments;
}

function isValidKey(key: unknown): key is string {
  try {
    segmentsOf(key as string);
    return true;
  } catch {
    return false;
  }
}

/** `<base>-<sanitised tail of text>-<10 hex of sha256(text)>`, a DNS-1123 subdomain of at most 253 characters. */
function hashedName(base: string, text: string): string {
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 10);
  const room = MAX_NAME - base.length - 2 - hash.length;
  let tail = text
    .toLowerCase()
    .replaceAll('/', '--')
    .replaceAll('*', 'wildcard')
    .replace(/[^a-z0-9.-]/g, '-');
  const tidy = (s: string) =>
    s
      .split('.')
      .map((label) => label.replace(/^-+|-+$/g, ''))
      .filter((label) => label !== '')
      .join('.');
  tail = tidy(tail);
  if (tail.length > room) tail = tidy(tail.slice(tail.length - room));
  return tail === '' ? `${base}-${hash}` : `${base}-${tail}-${hash}`;
}

/**
 * The Secret name for `key` under `prefix` (see the module comment). Exported for tests and
 * tools; `key` must be a valid key.
 */
export function secretNameFor(prefix: string, key: string): string {
  const segments = key.split('/');
  const readable = `${prefix}-${segments.join('--')}`;
  const separable = segments.every((s) => !s.includes('--') && !s.startsWith('-') && !s.endsWith('-'));
  if (separable && readable.length <= MAX_NAME && DNS1123_SUBDOMAIN.test(readable) && !HASHED_ENDING.test(readable)) return readable;
  return hashedName(prefix, key);
}

/** The Lease name for the lock `name` under `prefix`. */
export function leaseNameFor(prefix: string, name: string): string {
  const base = `${prefix}-lock`;
  const readable = `${base}-${name}`;
  if (readable.length <= MAX_NAME && DNS1123_SUBDOMAIN.test(readable) && !HASHED_ENDING.test(readable)) return readable;
  return hashedName(base, name);
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`SecretStorage: ${name} must be a positive number of milliseconds, got ${String(value)}`);
  return v;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `promise` settles or `ms` pass, whichever is first; leaves no timer behind. */
function settledOrAfter(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}

export class SecretStorage implements Storage {
  readonly description: string;
  readonly #namespace: string;
  readonly #prefix: string;
  readonly #identity: string;
  readonly #server: string;
  readonly #staleMs: number;
  readonly #heartbeatMs: number;
  readonly #pollMs: number;
  readonly #requestTimeoutMs: number;
  readonly #core: CoreV1Api;
  readonly #leaseContext: LeaseContext;
  readonly #labels: Record<string, string>;
  /** Names of Secrets of this store this instance last saw existing: a hint for put(), bounded. */
  readonly #seen = new Set<string>();
  /** Lock names held (or being acquired) by a caller of this instance → settles on release. */
  readonly #gates = new Map<string, Promise<void>>();

  constructor(options: SecretStorageOptions) {
    const { kubeConfig, namespace } = options;
    if (!kubeConfig) throw new TypeError('SecretStorage: kubeConfig is required');
    if (typeof namespace !== 'string' || namespace.length > 63 || !DNS1123_LABEL.test(namespace)) {
      throw new RangeError(`SecretStorage: namespace must be a DNS-1123 label, got ${JSON.stringify(namespace)}`);
    }
    const prefix = options.prefix ?? 'fairway';
    // The prefix is also a label value (at most 63 characters); keep room for the names.
    if (typeof prefix !== 'string' || prefix.length > 63 || !DNS1123_LABEL.test(prefix)) {
      throw new RangeError(`SecretStorage: prefix must be a DNS-1123 label of at most 63 characters, got ${JSON.stringify(prefix)}`);
    }
    const identity = options.identity ?? `${hostname()}_${randomBytes(5).toString('hex')}`;
    if (typeof identity !== 'string' || identity === '') throw new RangeError('SecretStorage: identity must be a non-empty string');
    this.#staleMs = positive(options.staleMs, 30_000, 'staleMs');
    this.#heartbeatMs = positive(options.heartbeatMs, Math.min(5_000, this.#staleMs / 3), 'heartbeatMs');
    this.#pollMs = positive(options.pollMs, 250, 'pollMs');
    this.#requestTimeoutMs = positive(options.requestTimeoutMs, 30_000, 'requestTimeoutMs');
    if (this.#heartbeatMs >= this.#staleMs) {
      throw new RangeError(`SecretStorage: heartbeatMs (${this.#heartbeatMs}) must be below staleMs (${this.#staleMs})`);
    }
    this.#namespace = namespace;
    this.#prefix = prefix;
    this.#identity = identity;
    this.#server = kubeConfig.getCurrentCluster()?.server ?? '(no current cluster)';
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#leaseContext = {
      coordination: kubeConfig.makeApiClient(CoordinationV1Api),
      namespace,
      identity,
      heartbeatTimeoutMs: Math.min(this.#requestTimeoutMs, this.#staleMs),
      call: (ms) => this.#call(ms),
      ioError: (a, e, d) => this.#ioError(a, e, d),
    };
    this.#labels = { [MANAGED_BY_LABEL]: 'fairway', [STORAGE_LABEL]: prefix };
    this.description = `Kubernetes Secrets ${STORAGE_LABEL}=${prefix} in namespace ${namespace} at ${this.#server}`;
  }

  /** This instance's Lease `holderIdentity`. */
  get identity(): string {
    return this.#identity;
  }

  async get(key: string): Promise<Buffer> {
    segmentsOf(key);
    const name = secretNameFor(this.#prefix, key);
    let secret: V1Secret;
    try {
      secret = await this.#core.readNamespacedSecret({ name, namespace: this.#namespace }, this.#call());
    } catch (err) {
      if (statusOf(err) === 404) {
        this.#see(name, false);
        throw this.#notFound(key, name);
      }
      throw this.#ioError(`cannot read Secret ${this.#namespace}/${name} (key ${JSON.stringify(key)})`, err, { key });
    }
    if (!this.#holds(secret, key)) throw this.#notFound(key, name, secret);
    this.#see(name, true);
    return Buffer.from(secret.data?.value ?? '', 'base64');
  }

  async put(key: string, value: Buffer | string, _options: { secret?: boolean } = {}): Promise<void> {
    segmentsOf(key);
    const name = secretNameFor(this.#prefix, key);
    const data = (typeof value === 'string' ? Buffer.from(value, 'utf8') : value).toString('base64');
    const where = `Secret ${this.#namespace}/${name} (key ${JSON.stringify(key)})`;
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: this.#namespace, labels: { ...this.#labels }, annotations: { [KEY_ANNOTATION]: key } },
      type: 'Opaque',
      data: { value: data },
    };
    // Replace only a Secret that holds this key: the tests and the new data are one write.
    const patch = [
      { op: 'test', path: `/metadata/annotations/${pointer(KEY_ANNOTATION)}`, value: key },
      { op: 'test', path: `/metadata/labels/${pointer(STORAGE_LABEL)}`, value: this.#prefix },
      { op: 'add', path: '/data', value: { value: data } },
    ];
    // Overwriting a Secret this instance has seen is one request (the patch); a new one is
    // one request (the create). Guessing wrong costs one more, never correctness.
    let exists = this.#seen.has(name);
    for (let attempt = 0; ; attempt++) {
      if (!exists) {
        try {
          await this.#core.createNamespacedSecret({ namespace: this.#namespace, body }, this.#call());
          this.#see(name, true);
          return;
        } catch (err) {
          if (statusOf(err) !== 409) throw this.#ioError(`cannot create ${where}`, err, { key });
        }
      }
      try {
        await this.#core.patchNamespacedSecret({ name, namespace: this.#namespace, body: patch }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch, this.#call()));
        this.#see(name, true);
        return;
      } catch (err) {
        const status = statusOf(err);
        if (status === 404 && attempt < MAX_RACE_RETRIES) {
          exists = false; // deleted meanwhile (or never there): create it
          continue;
        }
        if (status === 422) await this.#explainRefusedPatch(name, key, where, err);
        throw this.#ioError(`cannot update ${where}`, err, { key });
      }
    }
  }

  async delete(key: string): Promise<void> {
    segmentsOf(key);
    const name = secretNameFor(this.#prefix, key);
    const where = `Secret ${this.#namespace}/${name} (key ${JSON.stringify(key)})`;
    this.#see(name, false);
    for (let attempt = 0; ; attempt++) {
      let secret: V1Secret;
      try {
        secret = await this.#core.readNamespacedSecret({ name, namespace: this.#namespace }, this.#call());
      } catch (err) {
        if (statusOf(err) === 404) return;
        throw this.#ioError(`cannot read ${where} to delete it`, err, { key });
      }
      if (!this.#holds(secret, key)) return;
      try {
        await this.#core.deleteNamespacedSecret({ name, namespace: this.#namespace, body: { preconditions: { uid: secret.metadata?.uid } } }, this.#call());
        return;
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) return;
        if (status === 409 && attempt < MAX_RACE_RETRIES) continue; // replaced by another object in between
        throw this.#ioError(`cannot delete ${where}`, err, { key });
      }
    }
  }

  async list(prefix: string): Promise<string[]> {
    const trimmed = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    const under = trimmed === '' ? '' : `${segmentsOf(trimmed).join('/')}/`;
    const keys = new Set<string>();
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.#core.listNamespacedSecret({
          namespace: this.#namespace,
          labelSelector: `${MANAGED_BY_LABEL}=fairway,${STORAGE_LABEL}=${this.#prefix}`,
          limit: PAGE_SIZE,
          ...(token ? { _continue: token } : {}),
        }, this.#call());
      } catch (err) {
        throw this.#ioError(`cannot list Secrets ${STORAGE_LABEL}=${this.#prefix} in namespace ${this.#namespace}`, err, { prefix });
      }
      for (const secret of page.items) {
        const key = secret.metadata?.annotations?.[KEY_ANNOTATION];
        if (!isValidKey(key) || !key.startsWith(under)) continue;
        // Only the Secret get() would read counts: a copy under another name is not the key.
        if (secret.metadata?.name === secretNameFor(this.#prefix, key)) keys.add(key);
      }
      token = page.metadata?._continue || undefined;
    } while (token);
    return [...keys].sort();
  }

  async lock(name: string, options: StorageLockOptions = {}): Promise<StorageLock> {
    if (typeof name !== 'string' || !isSegment(name)) {
      throw new FairwayError('FW_STORAGE_IO', `invalid lock name ${JSON.stringify(name)}: lock names are one segment of [A-Za-z0-9._*-], not "." or ".."`, { lock: name });
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    if (!(timeoutMs >= 0)) throw new RangeError(`SecretStorage.lock: timeoutMs must be >= 0, got ${String(options.timeoutMs)}`);
    const leaseName = leaseNameFor(this.#prefix, name);
    const started = Date.now();
    const deadline = started + timeoutMs;
    const leave = await this.#enterGate(leaseName, deadline, () =>
      this.#timeout(name, leaseName, timeoutMs, `another caller of this instance (${JSON.stringify(this.#identity)})`, { holder: this.#identity }),
    );
    const claim = {
      name: leaseName,
      durationSeconds: Math.max(1, Math.ceil(this.#staleMs / 1000)),
      labels: this.#labels,
      annotations: { [LOCK_ANNOTATION]: name },
      where: `Lease ${this.#namespace}/${leaseName} (lock ${JSON.stringify(name)})`,
      details: { lock: name },
    };
    try {
      let races = 0;
      for (;;) {
        const attempt = await tryAcquireLease(this.#leaseContext, claim);
        if (attempt.lease) {
          const held = new HeldLease(this.#leaseContext, attempt.lease, claim, { renewMs: this.#heartbeatMs, onReleased: leave });
          return { release: () => held.release() };
        }
        if (attempt.race && races++ < MAX_RACE_RETRIES) continue;
        races = 0;
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          const held = attempt.held;
          const holder = held?.spec?.holderIdentity;
          const renewed = microTimeText(held?.spec?.renewTime);
          const by = holder ? `${JSON.stringify(holder)}${renewed ? `, renewed ${renewed}` : ''}` : 'another replica';
          throw this.#timeout(name, leaseName, timeoutMs, by, { holder, renewTime: renewed });
        }
        await delay(Math.min(remaining, this.#pollMs * (1 + Math.random() * 1.5)));
      }
    } catch (err) {
      leave();
      throw err;
    }
  }

  /** Waits until no other caller of this instance holds or is acquiring `leaseName`; returns the function that lets the next one in. */
  async #enterGate(leaseName: string, deadline: number, timeout: () => FairwayError): Promise<() => void> {
    for (;;) {
      const current = this.#gates.get(leaseName);
      if (!current) {
        let open!: () => void;
        const gate = new Promise<void>((resolve) => (open = resolve));
        this.#gates.set(leaseName, gate);
        let left = false;
        return () => {
          if (left) return;
          left = true;
          if (this.#gates.get(leaseName) === gate) this.#gates.delete(leaseName);
          open();
        };
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw timeout();
      await settledOrAfter(current, remaining);
    }
  }

  /** A JSON patch test failed: say which key the Secret holds, or pass the API's answer on. */
  async #explainRefusedPatch(name: string, key: string, where: string, cause: unknown): Promise<void> {
    let secret: V1Secret;
    try {
      secret = await this.#core.readNamespacedSecret({ name, namespace: this.#namespace }, this.#call());
    } catch {
      return;
    }
    if (this.#holds(secret, key)) return;
    const other = secret.metadata?.annotations?.[KEY_ANNOTATION];
    const storage = secret.metadata?.labels?.[STORAGE_LABEL];
    throw new FairwayError(
      'FW_STORAGE_IO',
      `cannot write ${where}: the Secret already exists and is not this key's (${KEY_ANNOTATION}=${JSON.stringify(other ?? null)}, ${STORAGE_LABEL}=${JSON.stringify(storage ?? null)}); it was left unchanged`,
      { key, secret: `${this.#namespace}/${name}` },
      { cause },
    );
  }

  /** Client options for one request: it is aborted after `timeoutMs`. */
  #call(timeoutMs = this.#requestTimeoutMs): ConfigurationOptions {
    return withTimeout(timeoutMs);
  }

  #see(name: string, exists: boolean): void {
    if (!exists) {
      this.#seen.delete(name);
      return;
    }
    if (this.#seen.size >= SEEN_LIMIT) this.#seen.clear();
    this.#seen.add(name);
  }

  #holds(secret: V1Secret, key: string): boolean {
    return secret.metadata?.annotations?.[KEY_ANNOTATION] === key && secret.metadata?.labels?.[STORAGE_LABEL] === this.#prefix;
  }

  #notFound(key: string, name: string, other?: V1Secret): FairwayError {
    const held = other ? ` (Secret ${this.#namespace}/${name} exists but holds ${JSON.stringify(other.metadata?.annotations?.[KEY_ANNOTATION] ?? null)})` : '';
    return new FairwayError('FW_STORAGE_NOT_FOUND', `no value stored under ${JSON.stringify(key)} in namespace ${this.#namespace}${held}`, { key });
  }

  #timeout(name: string, leaseName: string, timeoutMs: number, by: string, details: Record<string, unknown>): FairwayError {
    return new FairwayError('FW_STORAGE_LOCK_TIMEOUT', `lock ${JSON.stringify(name)} (Lease ${this.#namespace}/${leaseName}) is still held by ${by} after ${timeoutMs} ms`, {
      lock: name,
      lease: `${this.#namespace}/${leaseName}`,
      ...details,
    });
  }

  #ioError(action: string, err: unknown, details: Record<string, unknown> = {}): FairwayError {
    const failure = apiFailure(err, this.#server, this.#requestTimeoutMs);
    return new FairwayError('FW_STORAGE_IO', `${action}: ${failure.message}`, { namespace: this.#namespace, server: this.#server, status: failure.status, reason: failure.reason, ...details }, { cause: err });
  }
}

/** A JSON pointer token (RFC 6901). */
function pointer(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}
