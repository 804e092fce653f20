/**
 * @module
 * A data-plane worker process of `fairway serve --workers N`, and the composition root of
 * that process: a {@link DataPlane} with its own {@link CertificateStore} (TLS contexts
 * built here from the PEM the primary sends) and {@link AcmeChallenges}, fed by the
 * primary over IPC ({@link ToWorker}; the protocol's lifecycle is in `ipc-messages.ts`).
 * It runs nothing else: providers, ACME, cutovers, the admin API and metrics are the
 * primary's.
 *
 * - It listens (on the sockets node:cluster shares between the workers) only once the
 *   `start` message gave it routes, certificates, the sticky key and the ticket keys.
 * - Its stdout access-log lines are its own (with `worker` and `pid`); the entries the
 *   per-app logs and the log shipper need are sent to the primary in batches, only while
 *   the primary says one of them is on.
 * - Counters are read off the hot path: every {@link COUNTER_PUSH_MS} and when asked, the
 *   versions that changed since the previous reading are sent, cumulative, with the
 *   endpoint-health counters and a sample of this process ({@link ProcessSampler}); when
 *   asked, also the endpoints unavailable here now.
 * - Endpoint health: passive outlier detection and retry budgets are this worker's own
 *   (it ejects on what it sees); the active health checks run in the primary, whose
 *   results (`health-marks`) mark this worker's Upstreams.
 * - ACME answers the worker does not hold are asked of the primary while they are shared
 *   through storage ({@link PrimaryChallenges}).
 * - SIGTERM and SIGINT are ignored (a terminal's Ctrl-C reaches the whole process group):
 *   the primary drives the stop (`begin-drain`, `close`). If the primary goes away (the
 *   IPC channel closes), the worker drains for {@link ORPHAN_DRAIN_MS} and exits.
 * - Memory: V8's old generation grows less between full collections than by default
 *   ({@link applyHeapGrowing}); nothing of a message is kept beyond what the data
 *   plane compiled from it: the route table keeps no AppSpec of the snapshot copies it
 *   gets (`keepSnapshots: false`), and since a deserialised `Uint8Array` is a view of the
 *   whole message's buffer (the `start` one carries 10,000 apps in a few MB), keys are
 *   copied out and the `start` message itself is not kept.
 */
import cluster from 'node:cluster';
import { DataPlane } from '../data/data-plane.js';
import type { AccessLogSink } from '../observability/access-log.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { RequestStats, type VersionStats } from '../observability/request-stats.js';
import { AcmeChallenges, type PemPair } from '../tls/acme-challenges.js';
import { CertificateStore } from '../tls/certificate-store.js';
import { COUNTER_PUSH_MS, type AccessLogRecord, type AppEndpointStates, type CertificateIndex, type ChallengeChange, type FromWorker, type StartMessage, type ToWorker } from './ipc-messages.js';
import { PrimaryChallenges } from './primary-challenges.js';
import { ProcessSampler } from './process-sampler.js';
import { applyHeapGrowing } from './worker-heap.js';

/** How long a worker whose primary is gone lets its requests finish, ms. */
const ORPHAN_DRAIN_MS = 5_000;
/** Access-log entries are sent at most this long after they were logged, ms… */
const ACCESS_LOG_FLUSH_MS = 100;
/** …or as soon as this many are waiting. */
const ACCESS_LOG_BATCH = 512;

/** The per-app logs and the shipper, seen from a worker: entries are batched to the primary. */
class AccessLogForwarder implements AccessLogSink {
  active: boolean;
  #batch: AccessLogRecord[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(active: boolean) {
    this.active = active;
  }

  add(app: string | undefined, version: string | undefined, time: number, fields: string): void {
    this.#batch.push([app, version, time, fields]);
    if (this.#batch.length >= ACCESS_LOG_BATCH) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), ACCESS_LOG_FLUSH_MS);
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#batch.length === 0) return;
    const entries = this.#batch;
    this.#batch = [];
    send({ type: 'access-log', entries });
  }
}

class DataPlaneWorker {
  readonly #logger: Logger;
  readonly #stats = new RequestStats();
  readonly #store: CertificateStore<PemPair>;
  readonly #challenges = new AcmeChallenges();
  readonly #primaryChallenges: PrimaryChallenges;
  readonly #sampler = new ProcessSampler();
  readonly #forwarder: AccessLogForwarder;
  readonly #dataPlane: DataPlane;
  /** Where to listen and the generation `start` carried (the rest of that message is not kept). */
  readonly #listenAt: Pick<StartMessage, 'http' | 'https' | 'maxHeaderSize'> & { readonly generation: number };
  /** Bundles by the primary's id: the same id keeps the same object, so its TLS context is reused. */
  #bundles = new Map<number, PemPair>();
  #fallback = 0;
  /** Each version's activity at the previous reading. */
  readonly #reported = new WeakMap<VersionStats, number>();
  readonly #pushTimer: NodeJS.Timeout;
  #closing = false;

  constructor(start: StartMessage) {
    this.#listenAt = { http: start.http, https: start.https, maxHeaderSize: start.maxHeaderSize, generation: start.snapshot.generation };
    this.#logger = createLogger({ level: start.logLevel, sharedStdout: true }).child({ worker: cluster.worker?.id, pid: process.pid });
    this.#store = new CertificateStore<PemPair>(Buffer.from(start.ticketKeys));
    this.#forwarder = new AccessLogForwarder(start.sinks);
    this.#dataPlane = new DataPlane({
      stats: this.#stats,
      logger: this.#logger,
      maxHeaderSize: start.maxHeaderSize,
      certificates: this.#store,
      challenges: this.#challenges,
      stickyKey: Buffer.from(start.stickyKey),
      accessLogSinks: [this.#forwarder],
      remoteHealthChecks: true,
      // Each snapshot is a fresh copy: the table keeps only what it compiled (the pool sends the snapshot again after a new sticky key).
      keepSnapshots: false,
    });
    this.#primaryChallenges = new PrimaryChallenges((message) => send(message), (pair) => this.#store.contextFor(pair));
    this.#certificates(start.certificates);
    for (const change of start.challenges) this.#challenge(change);
    this.#challengeSharing(start.challengeSharing);
    this.#dataPlane.endpointHealth.applyHealthMarks(start.healthMarks);
    this.#dataPlane.apply(start.snapshot);
    this.#pushTimer = setInterval(() => this.#pushCounters(undefined), COUNTER_PUSH_MS).unref();
  }

  async listen(): Promise<void> {
    const { http, https, maxHeaderSize, generation } = this.#listenAt;
    try {
      const httpAddress = await this.#dataPlane.listen(http.host, http.port);
      const httpsAddress = https ? await this.#dataPlane.listenHttps(https.host, https.port, maxHeaderSize) : undefined;
      send({ type: 'applied', generation });
      send({ type: 'listening', http: httpAddress, https: httpsAddress });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      send({ type: 'failed', code: e.code, message: e.message }, () => process.exit(1));
    }
  }

  handle(message: ToWorker): void {
    switch (message.type) {
      case 'snapshot':
        this.#dataPlane.apply(message.snapshot);
        send({ type: 'applied', generation: message.snapshot.generation });
        break;
      case 'certificates':
        this.#certificates(message.certificates);
        break;
      case 'sticky-key':
        this.#dataPlane.setStickyKey(Buffer.from(message.key));
        break;
      case 'sinks':
        this.#forwarder.active = message.active;
        break;
      case 'challenge':
        this.#challenge(message.change);
        send({ type: 'ack', seq: message.seq });
        break;
      case 'challenge-sharing':
        this.#challengeSharing(message.active);
        break;
      case 'challenge-answer':
        this.#primaryChallenges.answered(message.id, message.answer);
        break;
      case 'health-marks':
        this.#dataPlane.endpointHealth.applyHealthMarks(message.changes);
        break;
      case 'collect':
        this.#pushCounters(message.seq);
        break;
      case 'endpoint-states': {
        const health = this.#dataPlane.endpointHealth;
        const states: AppEndpointStates = message.apps.map((app) => [app, health.endpointStates(app)] as const);
        send({ type: 'endpoint-states', seq: message.seq, states });
        break;
      }
      case 'begin-drain':
        this.#dataPlane.beginDrain();
        break;
      case 'close':
        void this.close(message.timeoutMs);
        break;
      case 'start':
        break;
    }
  }

  /** Drains for `timeoutMs`, reports its last counters, entries and what it cut, and exits 0. */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const cut = await this.#dataPlane.close(timeoutMs);
    clearInterval(this.#pushTimer);
    if (process.connected) {
      this.#pushCounters(undefined);
      this.#forwarder.flush();
      await new Promise<void>((resolve) => send({ type: 'closed', cut }, () => resolve()));
    }
    this.#sampler.stop();
    await new Promise<void>((resolve) => this.#logger.flush(() => resolve()));
    process.exit(0);
  }

  #certificates(index: CertificateIndex): void {
    const bundles = new Map<number, PemPair>();
    for (const [id, pair] of index.bundles) bundles.set(id, this.#bundles.get(id) ?? pair);
    const entries = new Map(index.entries.map(([name, id]) => [name, bundles.get(id)!] as const));
    const defaultChanged = index.fallback !== this.#fallback;
    this.#bundles = bundles;
    this.#fallback = index.fallback;
    this.#store.update(entries, bundles.get(index.fallback)!);
    if (defaultChanged) this.#dataPlane?.refreshDefaultCertificate();
  }

  #challenge(change: ChallengeChange): void {
    const c = this.#challenges;
    if (change.op === 'set-http01') void c.setHttp01(change.token, change.keyAuthorization);
    else if (change.op === 'delete-http01') void c.deleteHttp01(change.token);
    else if (change.op === 'set-alpn') void c.setAlpn(change.host, this.#store.contextFor(change.pair), change.pair);
    else void c.deleteAlpn(change.host);
  }

  /** The storage fallback on or off: a miss asks the primary while it is on. */
  #challengeSharing(active: boolean): void {
    this.#challenges.share(active ? this.#primaryChallenges : undefined);
  }

  /**
   * Sends the counters of the versions that changed since the previous reading (all other
   * counters too) and a process sample; when asked (`seq`), the endpoints unavailable now.
   */
  #pushCounters(seq: number | undefined): void {
    const reported = this.#reported;
    const counters = this.#stats.data((s) => {
      const activity = s.activity;
      if (activity === (reported.get(s) ?? 0)) return false;
      reported.set(s, activity);
      return true;
    });
    const health = this.#dataPlane.endpointHealth;
    send({ type: 'counters', seq, counters, health: health.counterData(), process: this.#sampler.sample(), unavailable: seq === undefined ? undefined : health.unavailable() });
  }
}

function send(message: FromWorker, done?: () => void): void {
  if (!process.connected) return done?.();
  process.send!(message, undefined, undefined, () => done?.());
}

if (cluster.isWorker) {
  applyHeapGrowing(process.execArgv);
  let worker: DataPlaneWorker | undefined;
  // The primary drives the stop; see the module comment.
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  process.on('disconnect', () => {
    if (worker) void worker.close(ORPHAN_DRAIN_MS);
    else process.exit(0);
  });
  process.on('message', (message: ToWorker) => {
    if (message.type === 'start') {
      worker = new DataPlaneWorker(message);
      void worker.listen();
    } else worker?.handle(message);
  });
  send({ type: 'ready' });
}
