/**
 * @module
 * The recent access-log entries of each app, in memory, for `GET /v1/apps/{app}/logs`
 * and `fairway logs`: what the router saw, version by version, during a cutover.
 *
 * Bounds (`log.perApp`): each app keeps at most `entries` entries (a ring: the app's
 * oldest goes first), and all apps together at most `maxBytes` bytes of entry text; past
 * that the router-wide oldest entry goes, whatever its app. Both kinds of drop are
 * counted. An entry longer than `maxBytes` on its own is dropped (counted as `bytes`).
 *
 * Off the V8 heap: an entry is kept as its serialised fields (the access log's
 * `,"key":value` text, see {@link entryFields}) in a Buffer of its app, and its time and
 * version in typed arrays, so that the garbage collector has nothing to trace or move for
 * them. Held as objects, the entries of a busy app lived just long enough to be promoted
 * and then died, and the old generation's collections that followed put the p99 latency
 * at twice its value with the ring off (bench/README "Where the p99 tail comes from").
 * Memory: an app's texts move to the front of a buffer 2–4 times their bytes (a power of
 * two, at least 256: the same one, a larger or a smaller one) whenever the next entry does
 * not fit, or the buffer is over four times what it holds; an app left with no entry lets
 * its buffer go. So an app's buffer is at most 4 times its entries' text (or 256 bytes),
 * and all apps' together at most 4 × `maxBytes` plus 256 bytes an app; plus 24 bytes a
 * slot. Amortised O(1) a byte: after a move the buffer holds 1/4–1/2 of its size, and the
 * next move needs it full or under a quarter.
 *
 * The request path cost of {@link AppLogBuffer.add} is a map lookup, a UTF-8 copy of the
 * text and a few typed-array writes. Followers (`follow=1`) are called once per
 * event-loop turn with the entries of that turn, never from inside `add`.
 *
 * Router-wide age order: every stored entry has a reference to its app in one FIFO, in
 * the order entries were added. An app's own ring drops its oldest entry without
 * touching the FIFO; the app counts the references that now point at nothing (`stale`,
 * always its earliest ones in the FIFO) and the FIFO skips them when it gets to them. The
 * FIFO is compacted when stale references make up more than half of it.
 */
import type { RequestLogSettings } from '../model.js';
import type { AccessLogSink } from './access-log.js';
import { RingQueue } from './ring-queue.js';

/** `log.perApp` (see {@link RequestLogSettings}). */
export type AppLogSettings = RequestLogSettings['perApp'];

export const DEFAULT_APP_LOG_SETTINGS: AppLogSettings = { entries: 1000, maxBytes: 8 * 1024 * 1024 };

/** An entry as read back: the time it was logged (ms since the epoch) and its serialised fields. */
export interface StoredEntry {
  readonly time: number;
  /** The `,"key":value` text of the entry's fields (see `entryFields`); `entryJson` makes it a JSON object. */
  readonly fields: string;
}

/** Called with each new entry of the followed app (and version, if given), once per event-loop turn. */
export type LogFollower = (fields: string, time: number) => void;

/** Smallest text buffer of an app, bytes. */
const MIN_TEXT = 256;
/** Slots an app starts with (they double up to `entries`). */
const MIN_SLOTS = 8;
/** No version (the entry had none). */
const NO_VERSION = -1;

const nextPowerOfTwo = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

/**
 * One app's ring of entries. Slot `i` of the typed arrays describes one entry: where its
 * text is in `#text`, how long it is, when it was logged and its version's index in
 * `versions`. The texts of the held entries lie back to back in `#text`, oldest first,
 * from the oldest's offset up to `#end`.
 */
class AppRing {
  readonly app: string;
  #offsets = new Uint32Array(0);
  #lengths = new Uint32Array(0);
  #times = new Float64Array(0);
  #versionIds = new Int32Array(0);
  /** Slot of the oldest entry. */
  #head = 0;
  #text: Buffer | undefined;
  /** Where the next entry's text goes. */
  #end = 0;
  /** Version names, by index; their indexes. */
  readonly #versions: string[] = [];
  readonly #versionIndex = new Map<string, number>();
  count = 0;
  /** Bytes of text of the held entries. */
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

  /**
   * Adds an entry of `length` bytes of text; if the ring holds `cap` entries, its oldest
   * goes first and its bytes are returned (else 0).
   */
  push(version: string | undefined, time: number, fields: string, length: number, cap: number): number {
    let freed = 0;
    if (this.count >= cap) {
      freed = this.dropOldest();
      this.stale++;
    }
    if (this.count === this.#offsets.length) this.#layOut(Math.min(cap, Math.max(MIN_SLOTS, this.count * 2)));
    if (this.#text === undefined || this.#end + length > this.#text.length || this.#oversized(length)) this.#compact(length);
    const text = this.#text!;
    const slot = (this.#head + this.count) % this.#offsets.length;
    this.#offsets[slot] = this.#end;
    this.#lengths[slot] = length;
    this.#times[slot] = time;
    this.#versionIds[slot] = this.#versionId(version);
    text.write(fields, this.#end, length, 'utf8');
    this.#end += length;
    this.count++;
    this.bytes += length;
    this.nextSeq++;
    return freed;
  }

  /** Drops the oldest entry; returns its bytes. */
  dropOldest(): number {
    const slot = this.#head;
    const length = this.#lengths[slot]!;
    this.#head = (slot + 1) % this.#offsets.length;
    this.count--;
    this.bytes -= length;
    this.dropped++;
    if (this.count === 0) {
      this.#head = 0;
      this.#end = 0;
    }
    return length;
  }

  /**
   * After entries went for the router-wide bound: lets go of the text buffer of an app left
   * with none, and moves the texts of one left with under a quarter of its buffer to a
   * smaller one.
   */
  shed(): void {
    const text = this.#text;
    if (text === undefined) return;
    if (this.count === 0) this.#text = undefined;
    else if (this.#oversized(0)) this.#compact(0);
  }

  /** Whether the text buffer is over four times the held texts and `more` bytes (and over its least size). */
  #oversized(more: number): boolean {
    const size = this.#text?.length ?? 0;
    return size > MIN_TEXT && (this.bytes + more) * 4 < size;
  }

  /** The entry with sequence number `seq` and its version, if still held. */
  at(seq: number): { stored: StoredEntry; version: string | undefined } | undefined {
    const first = this.nextSeq - this.count;
    if (seq < first || seq >= this.nextSeq) return undefined;
    const slot = (this.#head + (seq - first)) % this.#offsets.length;
    return { stored: this.#stored(slot), version: this.#versions[this.#versionIds[slot]!] };
  }

  /** The newest `lines` entries of `version` (any when undefined), oldest first. */
  newest(lines: number, version: string | undefined): StoredEntry[] {
    const out: StoredEntry[] = [];
    const wanted = version === undefined ? undefined : this.#versionIndex.get(version);
    if (version !== undefined && wanted === undefined) return out;
    const len = this.#offsets.length;
    for (let i = this.count - 1; i >= 0 && out.length < lines; i--) {
      const slot = (this.#head + i) % len;
      if (wanted === undefined || this.#versionIds[slot] === wanted) out.push(this.#stored(slot));
    }
    return out.reverse();
  }

  /** Keeps the newest `cap` entries; returns the bytes freed. */
  resize(cap: number): number {
    let freed = 0;
    while (this.count > cap) {
      freed += this.dropOldest();
      this.stale++;
    }
    this.#layOut(Math.min(cap, Math.max(MIN_SLOTS, this.count)));
    if (this.#text !== undefined) this.#compact(0);
    return freed;
  }

  /** Bytes of the text buffer (0 without one). */
  get capacity(): number {
    return this.#text?.length ?? 0;
  }

  clear(): void {
    this.dropped += this.count;
    this.#offsets = new Uint32Array(0);
    this.#lengths = new Uint32Array(0);
    this.#times = new Float64Array(0);
    this.#versionIds = new Int32Array(0);
    this.#text = undefined;
    this.#head = 0;
    this.#end = 0;
    this.count = 0;
    this.bytes = 0;
    this.stale = 0;
  }

  #stored(slot: number): StoredEntry {
    const offset = this.#offsets[slot]!;
    return { time: this.#times[slot]!, fields: this.#text!.toString('utf8', offset, offset + this.#lengths[slot]!) };
  }

  #versionId(version: string | undefined): number {
    if (version === undefined) return NO_VERSION;
    let id = this.#versionIndex.get(version);
    if (id === undefined) {
      id = this.#versions.push(version) - 1;
      this.#versionIndex.set(version, id);
    }
    return id;
  }

  /** Moves the held entries' slots to a new set of `slots` slots, the oldest at 0. */
  #layOut(slots: number): void {
    const offsets = new Uint32Array(slots);
    const lengths = new Uint32Array(slots);
    const times = new Float64Array(slots);
    const versionIds = new Int32Array(slots);
    const len = this.#offsets.length;
    for (let i = 0; i < this.count; i++) {
      const from = (this.#head + i) % len;
      offsets[i] = this.#offsets[from]!;
      lengths[i] = this.#lengths[from]!;
      times[i] = this.#times[from]!;
      versionIds[i] = this.#versionIds[from]!;
    }
    this.#offsets = offsets;
    this.#lengths = lengths;
    this.#times = times;
    this.#versionIds = versionIds;
    this.#head = 0;
  }

  /**
   * Moves the held texts to the front of a text buffer with room for `more` bytes after
   * them: the same buffer, or one of 2–4 times their bytes and `more` (a power of two, at
   * least {@link MIN_TEXT}) when those would fill over half of it or under a quarter.
   */
  #compact(more: number): void {
    const needed = this.bytes + more;
    const old = this.#text;
    let size = old?.length ?? 0;
    if (needed * 2 > size || needed * 4 < size) size = Math.max(MIN_TEXT, nextPowerOfTwo(needed * 2));
    const text = size === old?.length ? old : Buffer.allocUnsafeSlow(size);
    const len = this.#offsets.length;
    const start = this.count > 0 ? this.#offsets[this.#head]! : 0;
    if (old !== undefined && this.count > 0) old.copy(text, 0, start, this.#end);
    for (let i = 0; i < this.count; i++) this.#offsets[(this.#head + i) % len]! -= start;
    this.#text = text;
    this.#end = this.bytes;
  }
}

export class AppLogBuffer implements AccessLogSink {
  readonly #rings = new Map<string, AppRing>();
  /** The router-wide FIFO: one reference to its app's ring per entry added and not yet dropped, oldest first. */
  readonly #order = new RingQueue<AppRing>();
  #settings: AppLogSettings = DEFAULT_APP_LOG_SETTINGS;
  #count = 0;
  #bytes = 0;
  /** Entries dropped because their app held `entries` already. */
  droppedForEntries = 0;
  /** Entries dropped because all apps together held `maxBytes` (or the entry alone was longer). */
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

  /** Bytes of entry text held, all apps together. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes of the apps' text buffers, all apps together (at most 4 × {@link bytes} + 256 an app). */
  get bufferBytes(): number {
    let n = 0;
    for (const ring of this.#rings.values()) n += ring.capacity;
    return n;
  }

  /** Bytes of `app`'s text buffer (0 without one), and of the text it holds. */
  bufferOf(app: string): { buffer: number; text: number } {
    const ring = this.#rings.get(app);
    return { buffer: ring?.capacity ?? 0, text: ring?.bytes ?? 0 };
  }

  /** Applies new bounds at once: entries past them are dropped (oldest first). */
  configure(settings: AppLogSettings): void {
    const before = this.#settings;
    this.#settings = settings;
    if (!this.active) {
      for (const ring of this.#rings.values()) ring.clear();
      this.#order.clear();
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

  add(app: string | undefined, version: string | undefined, time: number, fields: string): void {
    if (app === undefined) return;
    let ring = this.#rings.get(app);
    if (ring === undefined) this.#rings.set(app, (ring = new AppRing(app)));
    const length = Buffer.byteLength(fields);
    if (length > this.#settings.maxBytes) {
      ring.dropped++;
      this.droppedForBytes++;
      return;
    }
    const before = ring.count;
    const freed = ring.push(version, time, fields, length, this.#settings.entries);
    if (ring.count === before) this.droppedForEntries++;
    else this.#count++;
    this.#bytes += length - freed;
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
      '# HELP fairway_app_log_bytes Bytes of those entries (their JSON text; log.perApp.maxBytes bounds it).',
      '# TYPE fairway_app_log_bytes gauge',
      `fairway_app_log_bytes ${this.#bytes}`,
      '# HELP fairway_app_log_dropped_total Entries dropped from the per-app logs, by the bound that dropped them (entries: the app had log.perApp.entries; bytes: all apps had log.perApp.maxBytes, or the entry alone was longer).',
      '# TYPE fairway_app_log_dropped_total counter',
      `fairway_app_log_dropped_total{reason="entries"} ${this.droppedForEntries}`,
      `fairway_app_log_dropped_total{reason="bytes"} ${this.droppedForBytes}`,
      '',
    ].join('\n');
  }

  /** Drops the router-wide oldest entries until the bytes fit. */
  #trimToBytes(): void {
    const max = this.#settings.maxBytes;
    while (this.#bytes > max && this.#order.size > 0) {
      const ring = this.#order.shift()!;
      if (ring.stale > 0) {
        ring.stale--;
        continue;
      }
      this.#bytes -= ring.dropOldest();
      ring.shed();
      this.#count--;
      this.droppedForBytes++;
    }
  }

  /**
   * Drops the stale references (entries their app already dropped for its `entries` bound)
   * from the FIFO once they outnumber the live ones (amortised O(1)).
   */
  #compactIfStale(): void {
    if (this.#order.size <= 2 * this.#count + 1024) return;
    this.#order.retain((ring) => {
      if (ring.stale === 0) return true;
      ring.stale--;
      return false;
    });
  }

  readonly #deliver = (): void => {
    this.#deliveryScheduled = false;
    for (const ring of this.#pending) {
      const followers = ring.followers;
      const from = Math.max(ring.deliveredSeq, ring.nextSeq - ring.count);
      ring.deliveredSeq = ring.nextSeq;
      if (followers === undefined || followers.size === 0) continue;
      for (let seq = from; seq < ring.nextSeq; seq++) {
        const { stored, version } = ring.at(seq)!;
        for (const f of followers) {
          if (f.version === undefined || version === f.version) f.fn(stored.fields, stored.time);
        }
      }
    }
    this.#pending.clear();
  };
}
