/**
 * @module
 * The recent access-log entries of each app, in memory, for `GET /v1/apps/{app}/logs`
 * and `fairway logs`: what the router saw, version by version, during a cutover.
 *
 * Bounds (`log.perApp`): each app keeps at most `entries` entries (a ring: the app's
 * oldest goes first), and all apps together at most `maxBytes` of estimated memory; past
 * that the router-wide oldest entry goes, whatever its app. Both kinds of drop are
 * counted. The estimate is the entry's field count and string lengths (see
 * {@link estimateEntryBytes}), not a serialisation.
 *
 * The request path cost of {@link AppLogBuffer.add} is a map lookup, a walk over the
 * entry's fields for the estimate and a few array writes: entries are kept as the very
 * objects the access log was given (see access-log.ts) and serialised only when read.
 * Followers (`follow=1`) are called once per event-loop turn with the entries of that
 * turn, never from inside `add`.
 *
 * Router-wide age order: every stored entry has a reference to its app in one FIFO, in
 * the order entries were added. An app's own ring drops its oldest entry without
 * touching the FIFO; the app counts the references that now point at nothing (`stale`,
 * always its earliest ones in the FIFO) and the FIFO skips them when it gets to them. The
 * FIFO is compacted when stale references make up more than half of it.
 */
import type { RequestLogSettings } from '../model.js';
import type { AccessLogEntry, AccessLogSink } from './access-log.js';

/** `log.perApp` (see {@link RequestLogSettings}). */
export type AppLogSettings = RequestLogSettings['perApp'];

export const DEFAULT_APP_LOG_SETTINGS: AppLogSettings = { entries: 1000, maxBytes: 8 * 1024 * 1024 };

/** An entry as read back: the time it was logged (ms since the epoch) and the entry itself. */
export interface StoredEntry {
  readonly time: number;
  readonly entry: AccessLogEntry;
}

/** Called with each new entry of the followed app (and version, if given), once per event-loop turn. */
export type LogFollower = (entry: AccessLogEntry, time: number) => void;

/** Fixed cost of an entry object and of each of its fields; a string field adds its length and a string header. */
const ENTRY_BYTES = 32;
const FIELD_BYTES = 8;
const STRING_BYTES = 16;

/**
 * Estimated heap bytes of an entry: object header, one slot per field, and each string
 * field's characters and header (strings shared with the route table, like app names,
 * are counted too: the estimate errs high).
 */
export function estimateEntryBytes(entry: AccessLogEntry): number {
  let n = ENTRY_BYTES;
  for (const key in entry) {
    const v = entry[key];
    n += FIELD_BYTES;
    if (typeof v === 'string') n += STRING_BYTES + v.length;
  }
  return n;
}

/** One app's ring of entries. */
class AppRing {
  readonly app: string;
  #entries: (AccessLogEntry | undefined)[] = [];
  #times: number[] = [];
  #sizes: number[] = [];
  /** Slot of the oldest entry. */
  #head = 0;
  count = 0;
  bytes = 0;
  /** Entries this app dropped (its own cap, or the router-wide one). */
  dropped = 0;
  /** FIFO references to entries this app already dropped by its own cap (its earliest references). */
  stale = 0;
  /** Sequence number of the next entry added; the oldest held is `nextSeq - count`. */
  nextSeq = 0;
  /** The next sequence number to hand to followers. */
  deliveredSeq = 0;
  followers: Set<{ version: string | undefined; fn: LogFollower }> | undefined;

  constructor(app: string) {
    this.app = app;
  }

  /** Adds an entry; if the ring is at `cap`, its oldest goes first and its bytes are returned (else 0). */
  push(entry: AccessLogEntry, time: number, size: number, cap: number): number {
    let freed = 0;
    if (this.count >= cap) {
      freed = this.dropOldest();
      this.stale++;
    }
    const slot = (this.#head + this.count) % cap;
    if (slot === this.#entries.length) {
      this.#entries.push(entry);
      this.#times.push(time);
      this.#sizes.push(size);
    } else {
      this.#entries[slot] = entry;
      this.#times[slot] = time;
      this.#sizes[slot] = size;
    }
    this.count++;
    this.bytes += size;
    this.nextSeq++;
    return freed;
  }

  /** Drops the oldest entry; returns its bytes. */
  dropOldest(): number {
    const slot = this.#head;
    const size = this.#sizes[slot]!;
    this.#entries[slot] = undefined;
    this.#head = (slot + 1) % this.#entries.length;
    this.count--;
    this.bytes -= size;
    this.dropped++;
    if (this.count === 0) this.#head = 0;
    return size;
  }

  /** The entry with sequence number `seq`, if still held. */
  at(seq: number): StoredEntry | undefined {
    const first = this.nextSeq - this.count;
    if (seq < first || seq >= this.nextSeq) return undefined;
    const slot = (this.#head + (seq - first)) % this.#entries.length;
    return { time: this.#times[slot]!, entry: this.#entries[slot]! };
  }

  /** The newest `lines` entries of `version` (any when undefined), oldest first. */
  newest(lines: number, version: string | undefined): StoredEntry[] {
    const out: StoredEntry[] = [];
    const len = this.#entries.length;
    for (let i = this.count - 1; i >= 0 && out.length < lines; i--) {
      const slot = (this.#head + i) % len;
      const entry = this.#entries[slot]!;
      if (version === undefined || entry.version === version) out.push({ time: this.#times[slot]!, entry });
    }
    return out.reverse();
  }

  /** Keeps the newest `cap` entries, laid out from slot 0; returns the bytes freed. */
  resize(cap: number): number {
    let freed = 0;
    while (this.count > cap) {
      freed += this.dropOldest();
      this.stale++;
    }
    const entries: AccessLogEntry[] = [];
    const times: number[] = [];
    const sizes: number[] = [];
    const len = this.#entries.length;
    for (let i = 0; i < this.count; i++) {
      const slot = (this.#head + i) % len;
      entries.push(this.#entries[slot]!);
      times.push(this.#times[slot]!);
      sizes.push(this.#sizes[slot]!);
    }
    this.#entries = entries;
    this.#times = times;
    this.#sizes = sizes;
    this.#head = 0;
    return freed;
  }

  clear(): void {
    this.dropped += this.count;
    this.#entries = [];
    this.#times = [];
    this.#sizes = [];
    this.#head = 0;
    this.count = 0;
    this.bytes = 0;
    this.stale = 0;
  }
}

export class AppLogBuffer implements AccessLogSink {
  readonly #rings = new Map<string, AppRing>();
  /** One reference per entry added and not yet passed by the FIFO, oldest at `#orderHead`. */
  #order: AppRing[] = [];
  #orderHead = 0;
  #settings: AppLogSettings = DEFAULT_APP_LOG_SETTINGS;
  #count = 0;
  #bytes = 0;
  /** Entries dropped because their app held `entries` already. */
  droppedForEntries = 0;
  /** Entries dropped because all apps together held `maxBytes`. */
  droppedForBytes = 0;
  /** Rings with entries not yet handed to their followers. */
  readonly #pending = new Set<AppRing>();
  #deliveryScheduled = false;

  constructor(settings: AppLogSettings = DEFAULT_APP_LOG_SETTINGS) {
    this.configure(settings);
  }

  get active(): boolean {
    return this.#settings.entries > 0 && this.#settings.maxBytes > 0;
  }

  get settings(): AppLogSettings {
    return this.#settings;
  }

  /** Entries held, all apps together. */
  get size(): number {
    return this.#count;
  }

  /** Estimated bytes held, all apps together. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Applies new bounds at once: entries past them are dropped (oldest first). */
  configure(settings: AppLogSettings): void {
    const before = this.#settings;
    this.#settings = settings;
    if (!this.active) {
      for (const ring of this.#rings.values()) ring.clear();
      this.#order = [];
      this.#orderHead = 0;
      this.#count = 0;
      this.#bytes = 0;
      return;
    }
    if (settings.entries !== before.entries) {
      for (const ring of this.#rings.values()) {
        const n = ring.count;
        this.#bytes -= ring.resize(settings.entries);
        this.droppedForEntries += n - ring.count;
        this.#count -= n - ring.count;
      }
    }
    this.#trimToBytes();
    this.#compactIfStale();
  }

  add(entry: AccessLogEntry, time: number): void {
    const app = entry.app;
    if (app === undefined) return;
    let ring = this.#rings.get(app);
    if (ring === undefined) this.#rings.set(app, (ring = new AppRing(app)));
    const size = estimateEntryBytes(entry);
    const before = ring.count;
    const freed = ring.push(entry, time, size, this.#settings.entries);
    if (ring.count === before) this.droppedForEntries++;
    else this.#count++;
    this.#bytes += size - freed;
    this.#order.push(ring);
    if (this.#bytes > this.#settings.maxBytes) this.#trimToBytes();
    this.#compactIfStale();
    if (ring.followers !== undefined && ring.followers.size > 0) {
      this.#pending.add(ring);
      if (!this.#deliveryScheduled) {
        this.#deliveryScheduled = true;
        setImmediate(this.#deliver);
      }
    }
  }

  /** The newest `lines` entries of `app` (only `version`'s, if given), oldest first. */
  read(app: string, lines: number, version?: string): StoredEntry[] {
    return this.#rings.get(app)?.newest(lines, version) ?? [];
  }

  /** Entries dropped from `app` so far (by either bound). */
  droppedOf(app: string): number {
    return this.#rings.get(app)?.dropped ?? 0;
  }

  /** Whether the buffer has ever held an entry of `app`. */
  knows(app: string): boolean {
    return this.#rings.has(app);
  }

  /**
   * Calls `fn` with each entry of `app` (of `version` only, if given) added from now on,
   * once per event-loop turn; returns the function that stops it.
   */
  follow(app: string, version: string | undefined, fn: LogFollower): () => void {
    let ring = this.#rings.get(app);
    if (ring === undefined) this.#rings.set(app, (ring = new AppRing(app)));
    if (ring.followers === undefined || ring.followers.size === 0) {
      ring.followers = new Set();
      ring.deliveredSeq = ring.nextSeq;
    }
    const follower = { version, fn };
    ring.followers.add(follower);
    const r = ring;
    return () => {
      r.followers?.delete(follower);
    };
  }

  /** Prometheus text for the buffer's gauges and counters. */
  renderMetrics(): string {
    return [
      '# HELP fairway_app_log_entries Access-log entries held in memory for GET /v1/apps/{app}/logs, all apps together.',
      '# TYPE fairway_app_log_entries gauge',
      `fairway_app_log_entries ${this.#count}`,
      '# HELP fairway_app_log_bytes Estimated memory held by those entries (log.perApp.maxBytes bounds it).',
      '# TYPE fairway_app_log_bytes gauge',
      `fairway_app_log_bytes ${this.#bytes}`,
      '# HELP fairway_app_log_dropped_total Entries dropped from the per-app logs, by the bound that dropped them (entries: the app had log.perApp.entries; bytes: all apps had log.perApp.maxBytes).',
      '# TYPE fairway_app_log_dropped_total counter',
      `fairway_app_log_dropped_total{reason="entries"} ${this.droppedForEntries}`,
      `fairway_app_log_dropped_total{reason="bytes"} ${this.droppedForBytes}`,
      '',
    ].join('\n');
  }

  /** Drops the router-wide oldest entries until the bytes fit. */
  #trimToBytes(): void {
    const max = this.#settings.maxBytes;
    while (this.#bytes > max && this.#orderHead < this.#order.length) {
      const ring = this.#order[this.#orderHead++]!;
      if (ring.stale > 0) {
        ring.stale--;
        continue;
      }
      this.#bytes -= ring.dropOldest();
      this.#count--;
      this.droppedForBytes++;
    }
  }

  /**
   * Rebuilds the FIFO without passed and stale references once stale ones outnumber the
   * live ones, or cuts off the passed ones once they outnumber the rest (amortised O(1)).
   */
  #compactIfStale(): void {
    const held = this.#order.length - this.#orderHead;
    if (held > 2 * this.#count + 1024) {
      const order: AppRing[] = [];
      for (let i = this.#orderHead; i < this.#order.length; i++) {
        const ring = this.#order[i]!;
        if (ring.stale > 0) ring.stale--;
        else order.push(ring);
      }
      this.#order = order;
      this.#orderHead = 0;
    } else if (this.#orderHead > 1024 && this.#orderHead > held) {
      this.#order = this.#order.slice(this.#orderHead);
      this.#orderHead = 0;
    }
  }

  readonly #deliver = (): void => {
    this.#deliveryScheduled = false;
    for (const ring of this.#pending) {
      const followers = ring.followers;
      const from = Math.max(ring.deliveredSeq, ring.nextSeq - ring.count);
      ring.deliveredSeq = ring.nextSeq;
      if (followers === undefined || followers.size === 0) continue;
      for (let seq = from; seq < ring.nextSeq; seq++) {
        const stored = ring.at(seq)!;
        for (const f of followers) {
          if (f.version === undefined || stored.entry.version === f.version) f.fn(stored.entry, stored.time);
        }
      }
    }
    this.#pending.clear();
  };
}
