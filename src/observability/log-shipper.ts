/**
 * @module
 * Posts access-log entries in JSON batches to a log service (`log.ship`), beside the
 * stdout log that stays the primary stream.
 *
 * Contract: {@link LogShipper.add} is O(1) and never waits: it puts the entry (its
 * serialised fields) in a bounded queue; when the queue holds `maxQueue` entries the oldest is
 * dropped and counted (`fairway_log_shipper_dropped_total`). Nothing on the request path
 * awaits the service, so a service that is down, refuses or never answers costs requests
 * nothing; it only makes the queue fill and drop.
 *
 * Sending: one POST at a time, of up to `batch` entries (the oldest queued), as a JSON
 * array of `{"time": ISO, ...entry}` objects; sent when `batch` entries are waiting, or
 * every `interval` otherwise. A 2xx answer removes the batch from the queue; anything
 * else (a refused connection, an error status, no answer within `timeout`) leaves it
 * there and waits before the next try: `interval`, doubling on each failure up to 30 s.
 * Entries the queue dropped meanwhile (oldest first) are not sent again.
 *
 * Lifecycle: `configure(settings)` (undefined: off, queue emptied) may be called at any
 * time; `close()` makes one last attempt, bounded in time, and stops.
 */
import { Agent, request } from 'undici';
import { publicUrl, type LogShipSettings } from '../model.js';
import type { AccessLogSink } from './access-log.js';
import { entryJson } from './access-log.js';
import type { Logger } from './logger.js';


/** Longest wait between failed attempts, ms. */
const MAX_BACKOFF = 30_000;

export interface LogShipperOptions {
  readonly logger: Logger;
}

export class LogShipper implements AccessLogSink {
  readonly #logger: Logger;
  #settings: LogShipSettings | undefined;
  #agent: Agent | undefined;
  /** The queue: a ring of `capacity` slots; entry with sequence number s is at s % capacity. */
  #entries: (string | undefined)[] = [];
  #times: number[] = [];
  /** Sequence number of the oldest queued entry, and of the next one added. */
  #headSeq = 0;
  #tailSeq = 0;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  /** Sequence numbers of the batch being posted. */
  #flightFrom = 0;
  #flightTo = 0;
  /** Entries of that batch the full queue pushed out meanwhile: lost only if the POST fails. */
  #droppedInFlight = 0;
  #backoff = 0;
  #retryAt = 0;
  #failing = false;
  #closed = false;
  /** Entries the service accepted. */
  sent = 0;
  /** Entries dropped from a full queue. */
  dropped = 0;
  /** POSTs that failed (error, non-2xx, timeout). */
  failures = 0;

  constructor(options: LogShipperOptions) {
    this.#logger = options.logger;
  }

  get active(): boolean {
    return this.#settings !== undefined && !this.#closed;
  }

  /** Entries waiting to be sent. */
  get queued(): number {
    return this.#tailSeq - this.#headSeq;
  }

  /** Starts, changes or (undefined) stops shipping; a changed queue size keeps the newest entries. */
  configure(settings: LogShipSettings | undefined): void {
    const before = this.#settings;
    if (JSON.stringify(before) === JSON.stringify(settings)) return;
    this.#settings = settings;
    if (settings === undefined) {
      this.#headSeq = this.#tailSeq;
      this.#entries = [];
      this.#times = [];
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = undefined;
      void this.#agent?.close().catch(() => {});
      this.#agent = undefined;
      return;
    }
    if (before === undefined || before.maxQueue !== settings.maxQueue) this.#resize(settings.maxQueue);
    if (before === undefined || before.timeout !== settings.timeout || before.url !== settings.url) {
      void this.#agent?.close().catch(() => {});
      this.#agent = new Agent({ connect: { timeout: settings.timeout }, keepAliveTimeout: 10_000 });
    }
    if (before === undefined || before.interval !== settings.interval) {
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = setInterval(() => this.#send(false), settings.interval);
      this.#timer.unref();
    }
    this.#backoff = 0;
    this.#retryAt = 0;
  }

  add(_app: string | undefined, _version: string | undefined, time: number, fields: string): void {
    const settings = this.#settings;
    if (settings === undefined) return;
    const capacity = settings.maxQueue;
    if (this.#tailSeq - this.#headSeq >= capacity) {
      const seq = this.#headSeq++;
      this.#entries[seq % capacity] = undefined;
      if (this.#inFlight !== undefined && seq >= this.#flightFrom && seq < this.#flightTo) this.#droppedInFlight++;
      else this.dropped++;
    }
    const slot = this.#tailSeq % capacity;
    this.#entries[slot] = fields;
    this.#times[slot] = time;
    this.#tailSeq++;
    // A full batch goes at once (after this turn), unless a POST is out or a retry is due later.
    if (this.#tailSeq - this.#headSeq === settings.batch && this.#inFlight === undefined) setImmediate(() => this.#send(false));
  }

  /** Stops the timer and makes one last attempt to send what is queued, for at most `timeoutMs`. */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref());
    if (this.#settings !== undefined) {
      await Promise.race([
        (async () => {
          await this.#inFlight;
          if (this.queued > 0 && this.#backoff === 0) await this.#send(true);
        })(),
        deadline,
      ]);
    }
    this.#closed = true;
    await this.#agent?.destroy().catch(() => {});
    this.#agent = undefined;
  }

  /** Prometheus text for the shipper's counters (rendered whether or not shipping is on). */
  renderMetrics(): string {
    return [
      '# HELP fairway_log_shipper_sent_total Access-log entries the log service (log.ship.url) accepted.',
      '# TYPE fairway_log_shipper_sent_total counter',
      `fairway_log_shipper_sent_total ${this.sent}`,
      '# HELP fairway_log_shipper_dropped_total Access-log entries dropped because the shipping queue was full (log.ship.maxQueue); the oldest go first.',
      '# TYPE fairway_log_shipper_dropped_total counter',
      `fairway_log_shipper_dropped_total ${this.dropped}`,
      '# HELP fairway_log_shipper_failures_total POSTs to the log service that failed (refused, error status, no answer in log.ship.timeout).',
      '# TYPE fairway_log_shipper_failures_total counter',
      `fairway_log_shipper_failures_total ${this.failures}`,
      '# HELP fairway_log_shipper_queue Access-log entries waiting to be shipped.',
      '# TYPE fairway_log_shipper_queue gauge',
      `fairway_log_shipper_queue ${this.queued}`,
      '',
    ].join('\n');
  }

  #resize(capacity: number): void {
    const entries: (string | undefined)[] = [];
    const times: number[] = [];
    const old = this.#entries.length;
    const first = Math.max(this.#headSeq, this.#tailSeq - capacity);
    this.dropped += first - this.#headSeq;
    for (let seq = first; seq < this.#tailSeq; seq++) {
      entries[seq % capacity] = this.#entries[seq % old];
      times[seq % capacity] = this.#times[seq % old]!;
    }
    this.#entries = entries;
    this.#times = times;
    this.#headSeq = first;
  }

  /** Sends the oldest batch, unless one is out, a retry is not due yet (unless `force`), or the queue is empty. */
  #send(force: boolean): Promise<void> {
    const settings = this.#settings;
    if (settings === undefined || this.#inFlight !== undefined || this.queued === 0) return Promise.resolve();
    if (!force && Date.now() < this.#retryAt) return Promise.resolve();
    const capacity = settings.maxQueue;
    const from = this.#headSeq;
    const to = Math.min(this.#tailSeq, from + settings.batch);
    const parts: string[] = [];
    for (let seq = from; seq < to; seq++) parts.push(entryJson(this.#entries[seq % capacity]!, this.#times[seq % capacity]!));
    const body = `[${parts.join(',')}]`;
    const agent = this.#agent!;
    this.#flightFrom = from;
    this.#flightTo = to;
    this.#droppedInFlight = 0;
    const done = (async () => {
      try {
        const res = await request(settings.url, {
          method: 'POST',
          dispatcher: agent,
          headers: { ...settings.headers, 'content-type': 'application/json' },
          body,
          headersTimeout: settings.timeout,
          bodyTimeout: settings.timeout,
        });
        await res.body.dump();
        if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
        this.#succeeded(from, to);
      } catch (err) {
        this.#failed(settings, err as Error);
      } finally {
        this.#inFlight = undefined;
      }
    })();
    this.#inFlight = done;
    return done;
  }

  #succeeded(from: number, to: number): void {
    const settings = this.#settings;
    this.sent += to - from;
    this.#droppedInFlight = 0;
    // Entries below the head were pushed out while the POST was out; their slots hold newer entries now.
    if (settings !== undefined) {
      for (let seq = Math.max(from, this.#headSeq); seq < to; seq++) this.#entries[seq % settings.maxQueue] = undefined;
    }
    if (this.#headSeq < to) this.#headSeq = to;
    this.#backoff = 0;
    this.#retryAt = 0;
    if (this.#failing) {
      this.#failing = false;
      this.#logger.info({ url: settings && publicUrl(settings.url) }, 'log shipping resumed');
    }
    // More than a batch waiting: go on at once.
    if (settings !== undefined && this.queued >= settings.batch) setImmediate(() => this.#send(false));
  }

  #failed(settings: LogShipSettings, err: Error): void {
    this.failures++;
    this.dropped += this.#droppedInFlight;
    this.#droppedInFlight = 0;
    this.#backoff = Math.min(this.#backoff === 0 ? settings.interval : this.#backoff * 2, MAX_BACKOFF);
    this.#retryAt = Date.now() + this.#backoff;
    // One line when shipping starts failing, not one per attempt.
    if (!this.#failing) {
      this.#failing = true;
      this.#logger.warn({ code: 'FW_LOG_SHIP_FAILED', url: publicUrl(settings.url), err: err.message, retryInMs: this.#backoff }, 'log shipping failed; entries stay queued (the oldest are dropped when the queue is full)');
    }
  }
}
