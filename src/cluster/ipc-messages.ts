/**
 * @module
 * The IPC protocol between the primary (control process) and its data-plane workers
 * (`fairway serve --workers N`): one message type per `type`, sent with Node's
 * `advanced` serialisation (structured clone: Maps, Buffers and plain objects survive).
 *
 * Lifecycle of a worker, as the messages show it:
 * 1. The primary forks it; once the worker says `ready` (it listens to IPC messages: one
 *    sent before would be lost), the primary sends `start`: everything it needs to serve (the live
 *    snapshot, certificates, sticky key, TLS ticket keys, pending ACME answers, where to
 *    listen). The worker builds its data plane, applies that state, opens the listeners
 *    (shared with the other workers through node:cluster) and answers `listening`.
 * 2. Updates follow in the order they happened in the primary (IPC keeps order):
 *    `snapshot` (answered `applied`), `certificates`, `sticky-key` (followed by the live
 *    `snapshot`: a worker keeps no AppSpec to recompile with the new key), `sinks`, ACME
 *    `challenge` changes (answered `ack` once the answer is served), whether the ACME
 *    answers are shared through storage (`challenge-sharing`), and `health-marks` (the
 *    results of the active health checks, which only the primary runs).
 * 3. The worker sends `counters` every {@link COUNTER_PUSH_MS} and when asked (`collect`):
 *    request and endpoint-health counters (cumulative), its process stats and, when asked,
 *    the endpoints unavailable in it; and `access-log` batches while the primary's
 *    per-app logs or shipper are on. Requests with an id, answered by the other side:
 *    `endpoint-states` (primary → worker, for the admin API) and `challenge-lookup`
 *    (worker → primary: an ACME answer it does not hold, looked up in the primary's
 *    shared storage; answered `challenge-answer`, given up after {@link CHALLENGE_LOOKUP_MS}).
 * 4. Stop: `begin-drain`, then `close` (drain timeout) → the worker drains, sends its last
 *    `counters` and access-log batch, answers `closed` with what it cut, and exits 0.
 */
import type { AddressInfo } from 'node:net';
import type { DrainCut } from '../data/draining-listener.js';
import type { Snapshot } from '../model.js';
import type { EndpointState } from '../data/endpoint-health.js';
import type { EndpointHealthCounterData, UnavailableEndpoint } from '../observability/endpoint-health-stats.js';
import type { RequestCounterData } from '../observability/request-stats.js';
import type { PemPair } from '../tls/acme-challenges.js';

/** How often a worker pushes its counters unasked, ms. */
export const COUNTER_PUSH_MS = 500;
/** How long a worker waits for the primary's answer to a `challenge-lookup`, ms (then: no answer). */
export const CHALLENGE_LOOKUP_MS = 2_000;

/** A worker's process, sampled when it reports its counters. */
export interface ProcessSample {
  readonly residentBytes: number;
  readonly heapUsedBytes: number;
  /** User + system CPU time since the worker started, seconds. */
  readonly cpuSeconds: number;
  /** The 99th percentile of its event-loop delay since its previous sample, seconds. */
  readonly eventLoopLagSeconds: number;
}

/** An endpoint's count of failing active health checks (0: healthy), as the primary's checks found it. */
export type HealthMark = readonly [endpoint: string, failing: number];

/** The endpoint states of apps, per app: each version's endpoints (undefined: the worker does not serve the app). */
export type AppEndpointStates = readonly (readonly [app: string, states: Readonly<Record<string, readonly EndpointState[]>> | undefined])[];
/** A host and port to listen on. */
export interface ListenAt {
  readonly host: string;
  readonly port: number;
}

/**
 * The certificate index: bundles by id (an id always names the same PEM pair, so a worker
 * reuses the TLS context it built for it) and each served name's bundle id.
 */
export interface CertificateIndex {
  readonly bundles: readonly (readonly [id: number, pair: PemPair])[];
  readonly entries: readonly (readonly [name: string, id: number])[];
  readonly fallback: number;
}

/** One ACME challenge change; `seq` is echoed by the worker's `ack`. */
export type ChallengeChange =
  | { readonly op: 'set-http01'; readonly token: string; readonly keyAuthorization: string }
  | { readonly op: 'delete-http01'; readonly token: string }
  | { readonly op: 'set-alpn'; readonly host: string; readonly pair: PemPair }
  | { readonly op: 'delete-alpn'; readonly host: string };

export interface StartMessage {
  readonly type: 'start';
  readonly logLevel: string;
  readonly maxHeaderSize: number;
  readonly http: ListenAt;
  readonly https: ListenAt | undefined;
  /** Session ticket keys: the same bytes in every worker, so a session resumes on any of them. */
  readonly ticketKeys: Uint8Array;
  readonly stickyKey: Uint8Array;
  readonly snapshot: Snapshot;
  readonly certificates: CertificateIndex;
  readonly challenges: readonly ChallengeChange[];
  /** Whether access-log entries are wanted by the primary (per-app logs or shipper on). */
  readonly sinks: boolean;
  /** Whether ACME answers are shared through storage: a miss asks the primary (`challenge-lookup`). */
  readonly challengeSharing: boolean;
  /** The endpoints the primary's health checks find failing now. */
  readonly healthMarks: readonly HealthMark[];
}

/** An access-log entry a worker passes on to the primary's sinks: the arguments of `AccessLogSink.add`. */
export type AccessLogRecord = readonly [app: string | undefined, version: string | undefined, time: number, fields: string];

/** Primary → worker. */
export type ToWorker =
  | StartMessage
  | { readonly type: 'snapshot'; readonly snapshot: Snapshot }
  | { readonly type: 'certificates'; readonly certificates: CertificateIndex }
  | { readonly type: 'sticky-key'; readonly key: Uint8Array }
  | { readonly type: 'sinks'; readonly active: boolean }
  | { readonly type: 'challenge'; readonly seq: number; readonly change: ChallengeChange }
  | { readonly type: 'challenge-sharing'; readonly active: boolean }
  /** `answer`: the key authorisation (HTTP-01) or certificate (TLS-ALPN-01); undefined: none anywhere. */
  | { readonly type: 'challenge-answer'; readonly id: number; readonly answer: string | PemPair | undefined }
  | { readonly type: 'health-marks'; readonly changes: readonly HealthMark[] }
  | { readonly type: 'collect'; readonly seq: number }
  | { readonly type: 'endpoint-states'; readonly seq: number; readonly apps: readonly string[] }
  | { readonly type: 'begin-drain' }
  | { readonly type: 'close'; readonly timeoutMs: number };

/** Worker → primary. */
export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'listening'; readonly http: AddressInfo; readonly https: AddressInfo | undefined }
  | { readonly type: 'applied'; readonly generation: number }
  | { readonly type: 'ack'; readonly seq: number }
  /** `seq`: the `collect` this answers, which also gets `unavailable`; absent when pushed unasked. */
  | {
      readonly type: 'counters'; readonly seq: number | undefined; readonly counters: RequestCounterData;
      readonly health: EndpointHealthCounterData; readonly process: ProcessSample; readonly unavailable: readonly UnavailableEndpoint[] | undefined;
    }
  | { readonly type: 'endpoint-states'; readonly seq: number; readonly states: AppEndpointStates }
  | { readonly type: 'challenge-lookup'; readonly id: number; readonly kind: 'http01' | 'alpn'; readonly name: string }
  | { readonly type: 'access-log'; readonly entries: readonly AccessLogRecord[] }
  | { readonly type: 'closed'; readonly cut: DrainCut }
  /** It could not start (cannot listen: `code` is the system error's, e.g. EADDRINUSE); it exits next. */
  | { readonly type: 'failed'; readonly code: string | undefined; readonly message: string };
