/**
 * @module
 * The primary's side of `fairway serve --workers N`: N data-plane worker processes
 * (node:cluster, each running `data-plane-worker.ts`) sharing the HTTP and HTTPS
 * listening sockets, fed over IPC ({@link ToWorker}) with everything the control process
 * decides. In the composition root it stands where the in-process {@link DataPlane}
 * stands otherwise: `apply(snapshot)`, `setStickyKey()`, the listeners, draining.
 *
 * - **State**: the pool keeps the latest snapshot, certificate index, sticky key, pending
 *   ACME answers and whether access-log entries are wanted, and sends each change to
 *   every worker in order. A worker that starts gets all of it in one `start` message and
 *   opens its listeners only then, so it never serves without routes or certificates.
 * - **Barriers**: {@link applied} resolves when every live worker has applied a snapshot
 *   generation (weights set through the admin API are live everywhere when it answers);
 *   the ACME answers ({@link ChallengeMirror}) resolve when every live worker serves them,
 *   before the CA is told to validate. A worker that does not answer within
 *   `ackTimeoutMs` is logged (`FW_WORKER_TIMEOUT`) and not waited for.
 * - **Counters**: workers push cumulative counters ({@link COUNTER_PUSH_MS}, and on
 *   {@link collect}); each reading is folded into the primary's {@link RequestStats} and
 *   {@link EndpointHealthStats} as a difference from that worker's previous one
 *   ({@link WorkerCounters}), so `/metrics`, `/v1/apps`, `/v1/stats` and cutover windows
 *   read one set of counters, the sum over every worker that ever ran (a dead worker's
 *   counts stay; its gauges are taken out). With them come each worker's process sample
 *   and, on `collect`, the endpoints unavailable in it ({@link renderMetrics}).
 * - **Endpoint health**: the active health checks run here, once ({@link HealthCheckRelay}),
 *   their marks sent to every worker; outlier ejection is each worker's own, and
 *   {@link endpointStates} asks each for its view (merged, with each worker's).
 * - **ACME storage fallback**: while the answers are shared through storage
 *   ({@link sharing}), a worker's lookup of an answer it does not hold is answered from
 *   the primary's {@link AcmeChallenges}.
 * - **Workers that die**: logged (`FW_WORKER_EXITED`) and replaced on the same sockets;
 *   the others and their connections are untouched. A worker that dies within
 *   {@link STABLE_MS} of its start is replaced after a backoff (100 ms doubling to 10 s).
 * - **Stop** ({@link DrainingListener}): `beginDrain()` and `close(timeoutMs)` are passed to
 *   every worker; `close` resolves with the sum of what they cut once all have exited.
 *
 * Scheduling: `cluster.SCHED_NONE` — each worker accepts on the shared socket itself (the
 * primary handing connections over costs throughput on new connections).
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { addCuts, CUT_GRACE_MS, NOTHING_CUT, type DrainCut, type DrainingListener } from '../data/draining-listener.js';
import type { Snapshot } from '../model.js';
import type { AccessLogSink } from '../observability/access-log.js';
import { unavailableRows, type EndpointHealthStats, type UnavailableEndpoint } from '../observability/endpoint-health-stats.js';
import type { Logger } from '../observability/logger.js';
import type { RequestStats } from '../observability/request-stats.js';
import type { AcmeChallenges, ChallengeMirror, PemPair } from '../tls/acme-challenges.js';
import { HealthCheckRelay } from './health-check-relay.js';
import type { AppEndpointStates, CertificateIndex, ChallengeChange, FromWorker, ListenAt, ProcessSample, StartMessage, ToWorker } from './ipc-messages.js';
import { mergeEndpointStates, type MergedEndpointState } from './merge-endpoint-states.js';
import { WorkerCounters } from './worker-counters.js';
import { renderWorkerMetrics } from './worker-metrics.js';
import { workerExecArgv } from './worker-heap.js';

export { COUNTER_PUSH_MS } from './ipc-messages.js';

/** A worker that lived less than this long before dying is replaced after a backoff, ms. */
export const STABLE_MS = 10_000;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 10_000;
/** How long a `collect` waits for the workers' counters, ms. */
const COLLECT_TIMEOUT_MS = 1_000;

export interface WorkerPoolOptions {
  /** How many workers (>= 1; the composition root uses the pool for 2 and more). */
  readonly size: number;
  readonly logger: Logger;
  /** Where the health checks' state changes are logged (component `endpoint-health`, as without workers). */
  readonly healthCheckLogger: Logger;
  /** The workers' log level. */
  readonly logLevel: string;
  /** The primary's counters; the workers' are folded in. */
  readonly stats: RequestStats;
  /** The primary's endpoint-health counters: the workers' ejections and refused retries are folded in, the health checks counted. */
  readonly endpointHealth: EndpointHealthStats;
  /** TLS session ticket keys, the same for every worker. */
  readonly ticketKeys: Buffer;
  /** The primary's ACME answers: a starting worker gets the pending ones. */
  readonly challenges: AcmeChallenges;
  /** Where the workers' access-log entries go (per-app logs, shipper) while one is active. */
  readonly accessLogSinks: readonly AccessLogSink[];
  /** How long a barrier waits for a worker's answer, ms (default 5 s). */
  readonly ackTimeoutMs?: number;
  /** The worker module (default: `data-plane-worker.js` beside this one). */
  readonly exec?: string;
}

/** One worker process as the pool follows it. */
interface Member {
  readonly worker: Worker;
  readonly startedAt: number;
  /** `forked` until it is sent `start` (updates are in that message); `starting` until it listens; `closing` once told to close. */
  phase: 'forked' | 'starting' | 'serving' | 'closing';
  /** The latest snapshot generation it applied. */
  generation: number;
  /** Its counters, folded into the primary's. */
  readonly counters: WorkerCounters;
  /** Its process at its latest report. */
  process: ProcessSample | undefined;
  /** The endpoints unavailable in it at its latest `collect` answer. */
  unavailable: readonly UnavailableEndpoint[];
  cut: DrainCut;
}

/** Waits for one answer from each of a set of workers (or their exit), within a timeout. */
class Barrier {
  readonly #waiting: Set<Member>;
  readonly #test: (message: FromWorker, member: Member) => boolean;
  readonly promise: Promise<Member[]>;
  #finish!: (late: Member[]) => void;
  readonly #timer: NodeJS.Timeout;

  /** `test`: whether a message is the awaited answer. Resolves with the members that did not answer in time. */
  constructor(members: Iterable<Member>, test: (message: FromWorker, member: Member) => boolean, timeoutMs: number) {
    this.#waiting = new Set(members);
    this.#test = test;
    this.promise = new Promise((resolve) => (this.#finish = resolve));
    this.#timer = setTimeout(() => this.#finish([...this.#waiting]), timeoutMs).unref();
    this.#check();
  }

  /** A message from `member`: it counts if it is the answer. */
  heard(member: Member, message: FromWorker): void {
    if (this.#waiting.has(member) && this.#test(message, member)) this.gone(member);
  }

  /** `member` exited: it is not waited for. */
  gone(member: Member): void {
    if (this.#waiting.delete(member)) this.#check();
  }

  #check(): void {
    if (this.#waiting.size > 0) return;
    clearTimeout(this.#timer);
    this.#finish([]);
  }
}

export class WorkerPool implements DrainingListener, ChallengeMirror {
  readonly #o: WorkerPoolOptions;
  readonly #ackTimeoutMs: number;
  readonly #members = new Set<Member>();
  readonly #barriers = new Set<Barrier>();
  readonly #bundleIds = new WeakMap<PemPair, number>();
  #nextBundleId = 1;
  #seq = 0;
  #snapshot: Snapshot | undefined;
  #certificates: CertificateIndex = { bundles: [], entries: [], fallback: 0 };
  #stickyKey: Buffer | undefined;
  #sinks = false;
  #listen: { http: ListenAt; https: ListenAt | undefined; maxHeaderSize: number } | undefined;
  #ready = false;
  #draining = false;
  #closing: Promise<DrainCut> | undefined;
  /** Deaths in a row of workers that did not live {@link STABLE_MS}. */
  #failures = 0;
  readonly #replacements = new Set<NodeJS.Timeout>();
  #collecting: Promise<void> | undefined;
  /** During the first `listen()`: fails it when a worker cannot start. */
  #startFailed: ((err: Error) => void) | undefined;
  readonly #healthChecks: HealthCheckRelay;
  #challengeSharing: boolean;

  constructor(options: WorkerPoolOptions) {
    this.#o = options;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 5_000;
    this.#challengeSharing = options.challenges.sharing;
    this.#healthChecks = new HealthCheckRelay({
      stats: options.endpointHealth,
      logger: options.healthCheckLogger,
      send: (changes) => this.#broadcast({ type: 'health-marks', changes }),
    });
  }

  /** True once every worker of the first start listens (it stays so; the stop is `/readyz`'s `draining`). */
  get ready(): boolean {
    return this.#ready;
  }

  /** The pids of the live workers. */
  get pids(): number[] {
    return [...this.#members].map((m) => m.worker.process.pid!);
  }

  /** Sends `snapshot` to every worker (see {@link applied}). */
  apply(snapshot: Snapshot): void {
    this.#snapshot = snapshot;
    this.#broadcast({ type: 'snapshot', snapshot });
    this.#healthChecks.apply(snapshot);
  }

  /** Resolves once every live worker applied `snapshot` (or a later one), or after the ack timeout. */
  async applied(snapshot: Snapshot): Promise<void> {
    const g = snapshot.generation;
    const behind = [...this.#members].filter((m) => m.generation < g);
    await this.#await(behind, (msg) => msg.type === 'applied' && msg.generation >= g, 'snapshot');
  }

  /**
   * Sends the key to every worker, then the live snapshot: a worker keeps no AppSpec, so it
   * recompiles its table with the key from that. The same key again sends nothing.
   */
  setStickyKey(key: Buffer): void {
    if (this.#stickyKey?.equals(key)) return;
    this.#stickyKey = Buffer.from(key);
    this.#broadcast({ type: 'sticky-key', key: this.#stickyKey });
    if (this.#snapshot !== undefined) this.#broadcast({ type: 'snapshot', snapshot: this.#snapshot });
  }

  /** The certificate store's new index (its `onUpdate` listener): sent to every worker. */
  certificates(entries: ReadonlyMap<string, PemPair>, fallback: PemPair): void {
    const bundles = new Map<number, PemPair>();
    const id = (pair: PemPair): number => {
      let n = this.#bundleIds.get(pair);
      if (n === undefined) this.#bundleIds.set(pair, (n = this.#nextBundleId++));
      if (!bundles.has(n)) bundles.set(n, { certPem: pair.certPem, keyPem: pair.keyPem });
      return n;
    };
    const index: CertificateIndex = { entries: [...entries].map(([name, pair]) => [name, id(pair)] as const), fallback: id(fallback), bundles: [...bundles] };
    this.#certificates = index;
    this.#broadcast({ type: 'certificates', certificates: index });
  }

  /** Whether the workers send their access-log entries (per-app logs or the shipper are on). */
  setSinksActive(active: boolean): void {
    if (active === this.#sinks) return;
    this.#sinks = active;
    this.#broadcast({ type: 'sinks', active });
  }

  setHttp01(token: string, keyAuthorization: string): Promise<void> {
    return this.#challenge({ op: 'set-http01', token, keyAuthorization });
  }

  deleteHttp01(token: string): Promise<void> {
    return this.#challenge({ op: 'delete-http01', token });
  }

  setAlpn(host: string, pair: PemPair): Promise<void> {
    return this.#challenge({ op: 'set-alpn', host, pair: { certPem: pair.certPem, keyPem: pair.keyPem } });
  }

  deleteAlpn(host: string): Promise<void> {
    return this.#challenge({ op: 'delete-alpn', host });
  }

  /** The storage fallback of the ACME answers is on or off: workers ask this process for a miss while it is on. */
  sharing(active: boolean): void {
    if (active === this.#challengeSharing) return;
    this.#challengeSharing = active;
    this.#broadcast({ type: 'challenge-sharing', active });
  }

  /**
   * Starts the workers: each opens the HTTP (and HTTPS) listener once it has the state.
   * Resolves with the addresses when all listen; rejects when one cannot (the error of
   * the first that failed, e.g. `EADDRINUSE`), after stopping the others.
   */
  async listen(http: ListenAt, https: ListenAt | undefined, maxHeaderSize: number): Promise<{ http: AddressInfo; https: AddressInfo | undefined }> {
    this.#listen = { http, https, maxHeaderSize };
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({
      exec: this.#o.exec ?? fileURLToPath(new URL('./data-plane-worker.js', import.meta.url)),
      args: [],
      execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS),
      serialization: 'advanced',
    });
    const failed = new Promise<never>((_, reject) => (this.#startFailed = reject));
    const members = Array.from({ length: this.#o.size }, () => this.#fork());
    const listening = members.map((m) => new Promise<Extract<FromWorker, { type: 'listening' }>>((resolve) => {
      const onMessage = (msg: FromWorker) => {
        if (msg.type !== 'listening') return;
        m.worker.off('message', onMessage);
        resolve(msg);
      };
      m.worker.on('message', onMessage);
    }));
    try {
      const first = (await Promise.race([Promise.all(listening), failed]))[0]!;
      // Replacements ask for the same host and port as the first workers: node:cluster keys the
      // shared socket by them, so they get that socket (port 0 included) while one worker holds it.
      this.#ready = true;
      this.#o.logger.info({ workers: this.pids }, 'data-plane workers listening');
      return { http: first.http, https: first.https };
    } catch (err) {
      await this.close(0);
      throw err;
    } finally {
      this.#startFailed = undefined;
    }
  }

  /**
   * Fresh counters from every serving worker, folded in (shared by concurrent callers);
   * resolves after {@link COLLECT_TIMEOUT_MS} at most. For readers that must see every
   * request answered so far: `/metrics`, `/v1/apps`, `/v1/stats`, cutover windows.
   */
  collect(): Promise<void> {
    return (this.#collecting ??= (async () => {
      const seq = ++this.#seq;
      const serving = [...this.#members].filter((m) => m.phase === 'serving');
      for (const m of serving) this.#send(m, { type: 'collect', seq });
      await this.#barrier(serving, (msg) => msg.type === 'counters' && msg.seq === seq, COLLECT_TIMEOUT_MS);
    })().finally(() => (this.#collecting = undefined)));
  }

  /**
   * Each serving worker's endpoint states of `apps`, merged (see `merge-endpoint-states.ts`);
   * a worker that does not answer within {@link COLLECT_TIMEOUT_MS} is left out.
   */
  async endpointStates(apps: readonly string[]): Promise<Map<string, Record<string, MergedEndpointState[]> | undefined>> {
    const seq = ++this.#seq;
    const serving = [...this.#members].filter((m) => m.phase === 'serving');
    const answers = new Map<Member, AppEndpointStates>();
    const answered = (msg: FromWorker, m: Member): boolean => {
      if (msg.type !== 'endpoint-states' || msg.seq !== seq) return false;
      answers.set(m, msg.states);
      return true;
    };
    const barrier = this.#barrier(serving, answered, COLLECT_TIMEOUT_MS);
    for (const m of serving) this.#send(m, { type: 'endpoint-states', seq, apps });
    await barrier;
    const byWorker = [...answers].map(([m, states]) => [m.worker.id, new Map(states)] as const);
    return new Map(apps.map((app) => [app, mergeEndpointStates(byWorker.map(([id, states]) => [id, states.get(app)] as const))]));
  }

  /** Prometheus text of the endpoint-health metrics summed over the workers and of each worker's process (README "Metrics"). */
  renderMetrics(): string {
    const members = [...this.#members];
    const health = this.#o.endpointHealth;
    const samples = members.flatMap((m) => (m.process ? [[m.worker.id, m.process] as const] : []));
    return health.render(unavailableRows(members.map((m) => m.unavailable)), health.exhausted) + renderWorkerMetrics(samples);
  }

  /** Draining begins in every worker (and in those that start from now on). */
  beginDrain(): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#broadcast({ type: 'begin-drain' });
  }

  /**
   * Every worker stops accepting and drains for `timeoutMs` (see {@link DrainingListener});
   * resolves with the sum of what they cut once all have exited. No worker is replaced
   * from now on; one that has not exited {@link CUT_GRACE_MS} + 5 s after the deadline is killed.
   */
  close(timeoutMs: number): Promise<DrainCut> {
    return (this.#closing ??= this.#close(timeoutMs));
  }

  async #close(timeoutMs: number): Promise<DrainCut> {
    this.beginDrain();
    this.#healthChecks.close();
    for (const timer of this.#replacements) clearTimeout(timer);
    this.#replacements.clear();
    const members = [...this.#members];
    const exited = members.map((m) => new Promise<DrainCut>((resolve) => {
      if (m.worker.isDead()) return resolve(m.cut);
      m.worker.once('exit', () => resolve(m.cut));
    }));
    for (const m of members) {
      // One that never got `start` serves nothing: it just goes.
      if (m.phase === 'forked') m.worker.process.kill('SIGKILL');
      else this.#send(m, { type: 'close', timeoutMs });
      m.phase = 'closing';
    }
    const kill = setTimeout(() => {
      for (const m of this.#members) {
        this.#o.logger.warn({ code: 'FW_WORKER_TIMEOUT', worker: m.worker.id, pid: m.worker.process.pid }, 'a data-plane worker did not stop in time: killed');
        m.worker.process.kill('SIGKILL');
      }
    }, Math.max(timeoutMs, 0) + CUT_GRACE_MS + 5_000).unref();
    const cuts = await Promise.all(exited);
    clearTimeout(kill);
    return members.length > 0 ? addCuts(cuts) : NOTHING_CUT;
  }

  #fork(): Member {
    const worker = cluster.fork();
    const m: Member = {
      worker, startedAt: Date.now(), phase: 'forked', generation: Number.MAX_SAFE_INTEGER,
      counters: new WorkerCounters(this.#o.stats, this.#o.endpointHealth), process: undefined, unavailable: [], cut: NOTHING_CUT,
    };
    this.#members.add(m);
    worker.on('message', (msg: FromWorker) => this.#onMessage(m, msg));
    worker.on('error', (err) => this.#o.logger.warn({ worker: worker.id, err: err.message }, 'data-plane worker IPC error'));
    worker.once('exit', (code, signal) => this.#onExit(m, code, signal));
    return m;
  }

  /** `m` listens to IPC: it gets the whole current state. */
  #start(m: Member): void {
    const listen = this.#listen!;
    m.phase = 'starting';
    m.generation = this.#snapshot!.generation;
    const start: StartMessage = {
      type: 'start',
      logLevel: this.#o.logLevel,
      maxHeaderSize: listen.maxHeaderSize,
      http: listen.http,
      https: listen.https,
      ticketKeys: this.#o.ticketKeys,
      stickyKey: (this.#stickyKey ??= Buffer.alloc(32)),
      snapshot: this.#snapshot!,
      certificates: this.#certificates,
      challenges: [
        ...[...this.#o.challenges.http01Entries()].map(([token, keyAuthorization]) => ({ op: 'set-http01', token, keyAuthorization }) as const),
        ...[...this.#o.challenges.alpnEntries()].map(([host, pair]) => ({ op: 'set-alpn', host, pair }) as const),
      ],
      sinks: this.#sinks,
      challengeSharing: this.#challengeSharing,
      healthMarks: this.#healthChecks.marks(),
    };
    this.#send(m, start);
    if (this.#draining) this.#send(m, { type: 'begin-drain' });
  }

  #onMessage(m: Member, msg: FromWorker): void {
    switch (msg.type) {
      case 'ready':
        if (m.phase === 'forked' && !this.#closing) this.#start(m);
        break;
      case 'listening':
        if (m.phase === 'starting') m.phase = 'serving';
        if (this.#ready) this.#o.logger.info({ worker: m.worker.id, pid: m.worker.process.pid }, 'data-plane worker replaced: listening');
        break;
      case 'applied':
        m.generation = Math.max(m.generation, msg.generation);
        break;
      case 'counters':
        m.counters.fold(msg.counters, msg.health);
        m.process = msg.process;
        if (msg.unavailable) m.unavailable = msg.unavailable;
        break;
      case 'challenge-lookup':
        void this.#lookUp(m, msg.id, msg.kind, msg.name);
        break;
      case 'access-log':
        for (const sink of this.#o.accessLogSinks) {
          if (!sink.active) continue;
          for (const [app, version, time, fields] of msg.entries) sink.add(app, version, time, fields);
        }
        break;
      case 'closed':
        m.cut = msg.cut;
        break;
      case 'failed':
        this.#o.logger.error({ code: 'FW_WORKER_EXITED', worker: m.worker.id, err: msg.message }, 'a data-plane worker could not start');
        this.#startFailed?.(Object.assign(new Error(msg.message), { code: msg.code }));
        break;
      case 'ack':
      case 'endpoint-states':
        break;
    }
    for (const b of this.#barriers) b.heard(m, msg);
  }

  #onExit(m: Member, code: number | null, signal: string | null): void {
    this.#members.delete(m);
    for (const b of this.#barriers) b.gone(m);
    // What it counted stays counted; what it had open is not open any more.
    m.counters.retire();
    if (m.phase === 'closing' || this.#closing) return;
    const lived = Date.now() - m.startedAt;
    this.#failures = lived < STABLE_MS ? this.#failures + 1 : 0;
    const delay = this.#failures === 0 ? 0 : Math.min(BACKOFF_MIN_MS * 2 ** (this.#failures - 1), BACKOFF_MAX_MS);
    this.#o.logger.error({ code: 'FW_WORKER_EXITED', worker: m.worker.id, pid: m.worker.process.pid, exitCode: code, signal, livedMs: lived, replaceInMs: delay }, 'a data-plane worker exited; replacing it');
    // At the first start, a worker that dies fails the start (a wrong setting would make every replacement die too).
    if (this.#startFailed) return this.#startFailed(new Error(`a data-plane worker exited while starting (exit code ${code}, signal ${signal})`));
    const timer = setTimeout(() => {
      this.#replacements.delete(timer);
      if (!this.#closing) this.#fork();
    }, delay);
    this.#replacements.add(timer);
  }

  /** Answers a worker's lookup of an ACME answer it does not hold: this process's, else the shared storage's. */
  async #lookUp(m: Member, id: number, kind: 'http01' | 'alpn', name: string): Promise<void> {
    const challenges = this.#o.challenges;
    const answer = await (kind === 'http01' ? challenges.findHttp01(name) : challenges.findAlpnPair(name)).catch(() => undefined);
    this.#send(m, { type: 'challenge-answer', id, answer });
  }

  async #challenge(change: ChallengeChange): Promise<void> {
    const seq = ++this.#seq;
    this.#broadcast({ type: 'challenge', seq, change });
    // A worker not sent `start` yet gets the answer in it, and listens only after.
    const told = [...this.#members].filter((m) => m.phase === 'starting' || m.phase === 'serving');
    await this.#await(told, (msg) => msg.type === 'ack' && msg.seq === seq, `ACME ${change.op}`);
  }

  /** Waits for an answer of each of `members` (see {@link Barrier}); the late ones are logged. */
  async #await(members: Iterable<Member>, test: (msg: FromWorker, m: Member) => boolean, what: string): Promise<void> {
    const late = await this.#barrier(members, test, this.#ackTimeoutMs);
    if (late.length > 0) {
      this.#o.logger.warn({ code: 'FW_WORKER_TIMEOUT', what, workers: late.map((m) => m.worker.id), timeoutMs: this.#ackTimeoutMs }, 'data-plane workers did not confirm a change in time');
    }
  }

  /** Resolves with the members that did not answer within `timeoutMs`. */
  async #barrier(members: Iterable<Member>, test: (msg: FromWorker, m: Member) => boolean, timeoutMs: number): Promise<Member[]> {
    const barrier = new Barrier(members, test, timeoutMs);
    this.#barriers.add(barrier);
    try {
      return await barrier.promise;
    } finally {
      this.#barriers.delete(barrier);
    }
  }

  #broadcast(message: ToWorker): void {
    for (const m of this.#members) if (m.phase === 'starting' || m.phase === 'serving') this.#send(m, message);
  }

  #send(m: Member, message: ToWorker): void {
    if (!m.worker.isConnected()) return;
    m.worker.send(message, (err: Error | null) => {
      if (err) this.#o.logger.debug({ worker: m.worker.id, type: message.type, err: err.message }, 'a message to a data-plane worker was not sent');
    });
  }
}
