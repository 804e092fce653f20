/**
 * @module
 * The control plane keeps the latest state of every provider, merges them into one
 * {@link Snapshot}, validates across providers (an app that conflicts is disabled and
 * reported; the rest serve), applies admin weight overrides, and publishes the snapshot.
 *
 * Level-triggered: any provider update only marks the state dirty; one rebuild per turn
 * of the event loop recomputes everything from the latest states, and a result equal to
 * the live snapshot is dropped. Subscribers (the data plane, later worker processes)
 * receive every new snapshot through the `snapshot` event, in generation order.
 */
import { EventEmitter } from 'node:events';
import { FairwayError } from '../errors.js';
import type { AppError, AppSpec, ProviderState, RouterSettings, Snapshot, SourceProblem, TcpFeed } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ProviderSink } from '../providers/provider.js';
import type { WeightOverrides } from './weight-overrides.js';

/** How the last load of a provider went, for the admin API and `fairway doctor`. */
export interface ProviderStatus {
  readonly provider: string;
  readonly ok: boolean;
  readonly at: string;
  /** Set when the last load failed: the provider's previous good state is still serving. */
  readonly error?: { code: string; message: string; details?: unknown };
  /** Problems in the last good state (defaults used, hosts lost to older claims). */
  readonly problems?: readonly SourceProblem[];
}

interface ControlPlaneEvents {
  snapshot: [Snapshot];
  'provider-error': [string, FairwayError];
}

export interface ControlPlaneOptions {
  readonly overrides: WeightOverrides;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * Applied to the settings-owning provider's settings before they are published: the
   * composition root's mode-specific defaults (Kubernetes mode adds the builder route).
   */
  readonly adjustSettings?: (settings: RouterSettings) => RouterSettings;
  /**
   * Resolves once `snapshot` is live where traffic is served, when that is not this
   * process alone (the data-plane workers): `setWeights()` waits for it before it
   * resolves. Absent: a snapshot is live when the `snapshot` event returns.
   */
  readonly applied?: (snapshot: Snapshot) => Promise<void>;
}

/** Each app's JSON, computed once per AppSpec object. */
const appJsonCache = new WeakMap<AppSpec, string>();
function appJson(app: AppSpec): string {
  let json = appJsonCache.get(app);
  if (json === undefined) appJsonCache.set(app, (json = JSON.stringify(app)));
  return json;
}

export class ControlPlane extends EventEmitter<ControlPlaneEvents> {
  readonly #overrides: WeightOverrides;
  readonly #metrics: Metrics;
  readonly #adjustSettings: (settings: RouterSettings) => RouterSettings;
  readonly #logger: Logger;
  readonly #states = new Map<string, ProviderState>();
  readonly #status = new Map<string, ProviderStatus>();
  #snapshot: Snapshot | undefined;
  #identity = '';
  #generation = 0;
  #scheduled = false;
  #builds = 0;
  readonly #applied: ((snapshot: Snapshot) => Promise<void>) | undefined;
  readonly #weightWriters = new Map<string, (app: AppSpec, weights: Record<string, number>) => Promise<void>>();

  constructor(options: ControlPlaneOptions) {
    super();
    this.#overrides = options.overrides;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#adjustSettings = options.adjustSettings ?? ((s) => s);
    this.#applied = options.applied;
  }

  /** The live snapshot, once the settings-owning provider has sent a state. */
  get snapshot(): Snapshot | undefined {
    return this.#snapshot;
  }

  providerStatus(): ProviderStatus[] {
    return [...this.#status.values()];
  }

  /** The sink a provider named `name` reports to. */
  sinkFor(name: string): ProviderSink {
    return {
      update: (state) => {
        this.#states.set(name, state);
        this.#status.set(name, { provider: name, ok: true, at: new Date().toISOString(), problems: state.problems ?? [] });
        this.#metrics.recordLoad(name, true);
        this.#metrics.sourceProblems.set({ provider: name }, state.problems?.length ?? 0);
        this.#schedule();
      },
      error: (err) => {
        this.#status.set(name, { provider: name, ok: false, at: new Date().toISOString(), error: err.toJSON() });
        this.#metrics.recordLoad(name, false);
        this.#logger.error({ provider: name, code: err.code, err: err.message }, 'configuration refused; the last good configuration keeps serving');
        this.emit('provider-error', name, err);
      },
    };
  }

  /** True while a provider's state has not yet been turned into a snapshot. */
  get pending(): boolean {
    return this.#scheduled;
  }

  /**
   * Rebuilds run so far, those that made no new snapshot (nothing changed) included: a
   * provider state sent while `builds` was N is in the live snapshot once `builds` is N + 1
   * (N if nothing was `pending` when it was sent, which means it was built already).
   */
  get builds(): number {
    return this.#builds;
  }

  /** Rebuilds now instead of at the end of this turn (start-up, admin changes). */
  flush(): Snapshot | undefined {
    this.#scheduled = false;
    this.#rebuild();
    return this.#snapshot;
  }

  /** The app as its provider describes it, before weight overrides. */
  providerApp(name: string): AppSpec | undefined {
    for (const state of this.#states.values()) {
      const app = state.apps.find((a) => a.name === name);
      if (app) return app;
    }
    return undefined;
  }

  /**
   * Sets weights of some versions of `appName` (others keep their current weight),
   * persists them, and makes them live before resolving (in every data-plane worker too). Throws FW_APP_NOT_FOUND,
   * FW_VERSION_NOT_FOUND, FW_ADMIN_BAD_REQUEST or FW_STATE_WRITE.
   */
  async setWeights(appName: string, weights: Record<string, unknown>): Promise<AppSpec> {
    const providerApp = this.providerApp(appName);
    const live = this.#snapshot?.apps.find((a) => a.name === appName);
    if (!providerApp) throw new FairwayError('FW_APP_NOT_FOUND', `no app named "${appName}"`);
    const names = Object.keys(weights);
    if (names.length === 0) throw new FairwayError('FW_ADMIN_BAD_REQUEST', 'give at least one version=weight');
    const full: Record<string, number> = Object.fromEntries((live ?? providerApp).versions.map((v) => [v.name, v.weight]));
    for (const name of names) {
      const w = weights[name];
      if (!(name in full)) {
        throw new FairwayError('FW_VERSION_NOT_FOUND', `app "${appName}" has no version "${name}" (versions: ${Object.keys(full).join(', ')})`);
      }
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
        throw new FairwayError('FW_ADMIN_BAD_REQUEST', `weight of ${appName}/${name} must be a number >= 0`);
      }
      full[name] = w;
    }
    if (!Object.values(full).some((w) => w > 0)) {
      throw new FairwayError('FW_ADMIN_BAD_REQUEST', `at least one version of "${appName}" must keep a weight > 0`);
    }
    const writer = this.#weightWriters.get(providerApp.source);
    if (writer) {
      // The provider's source holds the weights (Kubernetes annotations): write them
      // there and wait for them to come back through the watch, as every replica will.
      const applied = this.#waitFor((s) => sameWeights(s.apps.find((a) => a.name === appName), full), 10_000);
      await writer(providerApp, full);
      await applied;
    } else {
      await this.#overrides.set(providerApp, full);
      this.flush();
    }
    if (this.#applied && this.#snapshot) await this.#applied(this.#snapshot);
    this.#metrics.weightChanges.inc({ app: appName });
    this.#logger.info({ app: appName, weights: full }, 'weights set through the admin API');
    return this.#snapshot!.apps.find((a) => a.name === appName) ?? providerApp;
  }

  /**
   * Makes `setWeights()` for apps of `source` write through `writer` instead of the
   * local state file (a provider whose source is shared by every replica).
   */
  setWeightWriter(source: string, writer: (app: AppSpec, weights: Record<string, number>) => Promise<void>): void {
    this.#weightWriters.set(source, writer);
  }

  /** Resolves when a snapshot satisfying `test` is live (or after `timeoutMs`, whichever first). */
  #waitFor(test: (s: Snapshot) => boolean, timeoutMs: number): Promise<void> {
    if (this.#snapshot && test(this.#snapshot)) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.off('snapshot', onSnapshot);
        resolve();
      };
      const onSnapshot = (s: Snapshot) => {
        if (test(s)) finish();
      };
      const timer = setTimeout(finish, timeoutMs);
      this.on('snapshot', onSnapshot);
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      if (!this.#scheduled) return;
      this.#scheduled = false;
      this.#rebuild();
    });
  }

  #rebuild(): void {
    let settings: RouterSettings | undefined;
    for (const state of this.#states.values()) settings ??= state.settings;
    if (!settings) return;
    this.#builds++;
    settings = this.#adjustSettings(settings);
    // TCP routes fed by a provider (the builder Service's endpoints and timeouts in Kubernetes mode).
    const fed = new Map<string, TcpFeed>();
    for (const state of this.#states.values()) for (const [route, feed] of Object.entries(state.tcp ?? {})) fed.set(route, feed);
    if (fed.size > 0) {
      settings = { ...settings, tcp: settings.tcp.map((r) => ({ ...r, ...fed.get(r.name) })) };
    }

    const errors: AppError[] = [];
    const stale: string[] = [];
    const byName = new Map<string, AppSpec>();
    for (const state of this.#states.values()) {
      for (const app of state.apps) {
        if (byName.has(app.name)) {
          errors.push({ app: app.name, code: 'FW_APP_CONFLICT', message: `app "${app.name}" is defined by ${byName.get(app.name)!.source} and ${app.source}; the ${app.source} one is disabled` });
          continue;
        }
        const applied = this.#overrides.apply(app);
        if (applied.stale) stale.push(app.name);
        byName.set(app.name, applied.app);
      }
    }
    const apps = [...byName.values()].sort(byAppName);
    // Domain conflicts: an app that is already serving keeps its domains (a new app never
    // hijacks a live route); between new apps the first by name wins.
    const live = new Set(this.#snapshot?.apps.map((a) => a.name));
    const claimOrder = [...apps].sort((a, b) => Number(!live.has(a.name)) - Number(!live.has(b.name)) || byAppName(a, b));
    const owner = new Map<string, string>();
    const accepted = new Set<AppSpec>();
    for (const app of claimOrder) {
      const clash = app.domains.find((d) => owner.has(d));
      if (clash !== undefined) {
        errors.push({ app: app.name, code: 'FW_APP_CONFLICT', message: `domain "${clash}" is already served by app "${owner.get(clash)}"; app "${app.name}" is disabled` });
        continue;
      }
      for (const d of app.domains) owner.set(d, app.name);
      accepted.add(app);
    }
    const serving = apps.filter((a) => accepted.has(a));
    if (stale.length > 0) {
      this.#logger.info({ apps: stale }, 'the config changed these apps\' weights; dropping their admin weight overrides');
      this.#overrides.drop(stale).catch((err: Error) => this.#logger.error({ err: err.message }, 'cannot persist dropped weight overrides'));
    }

    errors.sort((a, b) => (a.app < b.app ? -1 : a.app > b.app ? 1 : 0));
    const certificates = [...this.#states.values()].flatMap((state) => state.certificates ?? []);
    // An app equal to the live snapshot's keeps that very object (the route table then
    // reuses its compiled route); equality is judged per app, by reference first, so a
    // change to one app among thousands costs one app's serialisation, not all of them.
    const previous = new Map(this.#snapshot?.apps.map((a) => [a.name, a]));
    let appsChanged = serving.length !== previous.size;
    for (let i = 0; i < serving.length; i++) {
      const before = previous.get(serving[i]!.name);
      if (before !== undefined && (before === serving[i] || appJson(before) === appJson(serving[i]!))) serving[i] = before;
      else appsChanged = true;
    }
    const identity = JSON.stringify([settings, errors, certificates]);
    if (!appsChanged && identity === this.#identity) return;
    this.#identity = identity;
    const snapshot: Snapshot = { generation: ++this.#generation, createdAt: new Date().toISOString(), settings, apps: serving, errors, certificates };
    this.#snapshot = snapshot;
    for (const e of errors) this.#logger.error({ app: e.app, code: e.code }, e.message);
    this.#metrics.snapshotGeneration.set(snapshot.generation);
    this.#metrics.apps.set({ state: 'serving' }, serving.length);
    this.#metrics.apps.set({ state: 'disabled' }, errors.length);
    this.emit('snapshot', snapshot);
  }
}

function byAppName(a: AppSpec, b: AppSpec): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function sameWeights(app: AppSpec | undefined, weights: Record<string, number>): boolean {
  return app !== undefined && app.versions.every((v) => weights[v.name] === undefined || weights[v.name] === v.weight);
}
