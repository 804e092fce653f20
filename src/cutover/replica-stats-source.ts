/**
 * @module
 * A {@link StatsSource} over every replica of the router: this process's counters read
 * in memory, the other replicas' read from their admin API (`GET /v1/stats/{app}`, raw
 * counters and the id of their process start), the replicas found through a
 * {@link ReplicaDirectory} (Kubernetes: the replica Leases). The window math
 * (`windowOf`) sums each replica's own difference and detects restarts.
 *
 * - All replicas are read in parallel, each within `timeoutMs`. One that does not answer,
 *   answers an error, or answers something else than raw counters is listed in the
 *   reading's `unreachable` (with its URL and why), and the window is judged on the
 *   others: the decision records which replicas were counted and which were not.
 * - An answer from another replica than the one the directory named at that URL (a
 *   restarted pod reusing the address of a Lease not yet expired) is ignored: that
 *   replica is reached under its own name.
 */
import { request } from 'undici';
import type { RequestStats } from '../observability/request-stats.js';
import { localReading, type LocalReplica, type MissingReplica, type ReplicaCounters, type StatsReading, type StatsSource, type VersionCounters } from './measurement-window.js';

/** Another replica: its name and where its admin API answers. */
export interface ReplicaPeer {
  readonly identity: string;
  readonly adminUrl: string;
}

/** Where the other live replicas are. */
export interface ReplicaDirectory {
  /** The other replicas alive now (not this one). */
  peers(): Promise<ReplicaPeer[]>;
}

/** `GET /v1/stats/{app}`: one replica's raw counters of an app's versions. */
export interface ReplicaStats {
  readonly replica: string;
  /** Id of this process start: it changes when the process restarts. */
  readonly start: string;
  readonly startedAt: string;
  readonly app: string;
  readonly versions: Readonly<Record<string, VersionCounters>>;
}

export interface ReplicaStatsSourceOptions {
  readonly self: LocalReplica;
  readonly stats: RequestStats;
  readonly directory: ReplicaDirectory;
  /** How long one replica may take to answer, ms (default 2 s). */
  readonly timeoutMs?: number;
  /** The `Authorization` header value for the other replicas' admin API (`Bearer <admin token>`), read at each call; undefined: none. */
  readonly authorization?: () => string | undefined;
}

export class ReplicaStatsSource implements StatsSource {
  readonly #o: ReplicaStatsSourceOptions;

  constructor(options: ReplicaStatsSourceOptions) {
    this.#o = options;
  }

  async read(app: string, versions: readonly string[]): Promise<StatsReading> {
    const at = Date.now();
    const { self, stats } = this.#o;
    const replicas: Record<string, ReplicaCounters> = { [self.name]: localReading(stats, self, app, versions) };
    const unreachable: MissingReplica[] = [];
    const peers = await this.#o.directory.peers().catch(() => [] as ReplicaPeer[]);
    const answers = await Promise.all(peers.filter((p) => p.identity !== self.name).map(async (peer) => ({ peer, answer: await this.#fetch(peer, app, versions) })));
    for (const { peer, answer } of answers) {
      if (typeof answer === 'string') unreachable.push({ replica: peer.identity, reason: `${peer.adminUrl}: ${answer}` });
      else if (answer.replica === peer.identity) replicas[peer.identity] = { start: answer.start, startedAt: Date.parse(answer.startedAt), versions: answer.versions };
    }
    return { at, replicas, unreachable };
  }

  /** The peer's counters, or why they could not be read. */
  async #fetch(peer: ReplicaPeer, app: string, versions: readonly string[]): Promise<ReplicaStats | string> {
    const timeoutMs = this.#o.timeoutMs ?? 2_000;
    const base = peer.adminUrl.endsWith('/') ? peer.adminUrl : `${peer.adminUrl}/`;
    const url = new URL(`v1/stats/${encodeURIComponent(app)}?versions=${versions.map(encodeURIComponent).join(',')}`, base);
    try {
      const authorization = this.#o.authorization?.();
      const headers = authorization === undefined ? {} : { authorization };
      const res = await request(url, { method: 'GET', headers, signal: AbortSignal.timeout(timeoutMs), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      const text = await res.body.text();
      if (res.statusCode !== 200) return `answered HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200).trim()}` : ''}`;
      const body = JSON.parse(text) as ReplicaStats;
      if (typeof body?.replica !== 'string' || typeof body.start !== 'string' || typeof body.versions !== 'object' || body.versions === null) return 'did not answer raw counters';
      return body;
    } catch (err) {
      const e = err as Error;
      return e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : e.message || String(err);
    }
  }
}
