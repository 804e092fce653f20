/**
 * @module
 * The Kubernetes provider: watches routable Services, EndpointSlices and Secrets through
 * `@kubernetes/client-node` informers and sends the model the Deis translator makes of
 * them (apps, certificates from Secrets, TCP routes fed by a Service such as the
 * builder). It never touches the data plane. Problems are reported in the model, logged
 * once, and written as Kubernetes Events on the Service at fault (when RBAC allows).
 *
 * Level-triggered: any watch event only means "something changed" and the whole state is
 * recomputed from the informers' caches. The first event after a quiet period is
 * recomputed at once (next turn of the event loop: a lone change is live in a few ms);
 * events that follow within `coalesceMs` are folded into one recompute at the end of
 * that window, so a burst of a thousand events makes a handful of snapshots.
 *
 * Static stability: the client's informer stops for good on most errors and never times
 * out a silent watch (field notes). Each {@link ResilientWatch} therefore restarts its
 * informer with backoff and jitter after an error, and after `watchdogMs` without any
 * event; a restart builds a *new* informer (which relists), and the old cache keeps
 * answering until the new one has listed successfully. While the API server is away the
 * provider sends nothing new: the last good state keeps serving.
 *
 * Lifecycle: `start()` resolves after the first full sync of every watch (readiness);
 * `stop()` ends every watch and timer.
 */
import {
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
  type V1EndpointSlice,
  type V1Secret,
  type V1Service,
} from '@kubernetes/client-node';
import { FairwayError } from '../../errors.js';
import type { AppSpec, DomainRule, TcpRoute } from '../../model.js';
import type { Logger } from '../../observability/logger.js';
import type { Provider, ProviderSink } from '../provider.js';
import { A, ROUTABLE_LABEL, serviceEndpoints, translate, TranslateCache, type KEndpointSlice, type KService, type ServiceProblem } from './deis-translator.js';
import { ProblemEvents } from './problem-events.js';
import { secretCertificates, type KSecret } from './secret-certificates.js';
import { tcpServiceSettings } from './tcp-service-settings.js';

export interface KubernetesProviderOptions {
  readonly kubeConfig: KubeConfig;
  /** The namespace the router runs in: its platform certificate Secret lives there. */
  readonly namespace: string;
  /** The router's platform domain (owned by the file config; may change on reload: call {@link KubernetesProvider.refresh}). */
  readonly platformDomain: () => string | undefined;
  /** Which namespaces may claim which domains (file config `kubernetes.domainPolicy`); none: any. */
  readonly domainPolicy?: () => readonly DomainRule[] | undefined;
  /**
   * TCP routes of the file config that name a Service to take their endpoints (and
   * `router.deis.io/nginx.*` timeouts) from. Read at start: a route's `service` is watched
   * from then on.
   */
  readonly tcpRoutes?: () => readonly TcpRoute[];
  /** A Secret labelled `fairway.io/storage` changed (another replica stored a certificate). */
  readonly onStorageChange?: () => void;
  readonly logger: Logger;
  /** After a recompute, further events wait this long and are recomputed together, ms (default 50). */
  readonly coalesceMs?: number;
  /** Restart backoff after a watch error, ms (default 250 ms doubling to 30 s, ±20% jitter). */
  readonly backoff?: { min: number; max: number };
  /** Restart a watch that saw no event for this long, ms (default 5 min). */
  readonly watchdogMs?: number;
}

export class KubernetesProvider implements Provider {
  readonly name = 'kubernetes';
  readonly #o: KubernetesProviderOptions;
  readonly #core: CoreV1Api;
  readonly #services: ResilientWatch<V1Service>;
  readonly #slices: ResilientWatch<V1EndpointSlice>;
  readonly #secrets: ResilientWatch<V1Secret>;
  /** The Services named by TCP routes (not routable, so not in `#services`), by `namespace/name`. */
  readonly #tcpServices = new Map<string, ResilientWatch<V1Service>>();
  readonly #events: ProblemEvents;
  #sink: ProviderSink | undefined;
  /** The coalescing window after a recompute; events inside it only mark `#dirty`. */
  #window: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #dirty = false;
  /** Set once the first full state (after every watch listed) was sent. */
  #published = false;
  #reported = new Set<string>();
  #storageVersions = '';
  readonly #translated = new TranslateCache();
  /** app → version → the Service that defines it (to patch weights). */
  #owners = new Map<string, Map<string, { namespace: string; name: string }>>();
  readonly #serviceListeners = new Set<() => void>();
  readonly #synced: Promise<void>;
  #resolveSynced!: () => void;

  constructor(options: KubernetesProviderOptions) {
    this.#o = options;
    const kc = options.kubeConfig;
    this.#core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    this.#synced = new Promise((resolve) => (this.#resolveSynced = resolve));
    const common = { kubeConfig: kc, logger: options.logger, backoff: options.backoff, watchdogMs: options.watchdogMs, onChange: () => this.#changed() };
    this.#services = new ResilientWatch<V1Service>({
      ...common,
      onChange: () => {
        this.#changed();
        this.#servicesChanged();
      },
      what: 'services',
      path: '/api/v1/services',
      labelSelector: `${ROUTABLE_LABEL}=true`,
      list: () => this.#core.listServiceForAllNamespaces({ labelSelector: `${ROUTABLE_LABEL}=true` }),
    });
    this.#slices = new ResilientWatch<V1EndpointSlice>({
      ...common,
      what: 'endpointslices',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      labelSelector: 'kubernetes.io/service-name',
      list: () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: 'kubernetes.io/service-name' }),
    });
    // Every Secret: Deis names certificate Secrets by convention (`<name>-cert`), not by label.
    this.#secrets = new ResilientWatch<V1Secret>({
      ...common,
      what: 'secrets',
      path: '/api/v1/secrets',
      list: () => this.#core.listSecretForAllNamespaces(),
    });
    for (const route of options.tcpRoutes?.() ?? []) {
      if (!route.service || this.#tcpServices.has(route.service)) continue;
      const [namespace, name] = route.service.split('/') as [string, string];
      this.#tcpServices.set(
        route.service,
        new ResilientWatch<V1Service>({
          ...common,
          what: `service ${route.service}`,
          path: `/api/v1/namespaces/${namespace}/services`,
          fieldSelector: `metadata.name=${name}`,
          list: () => this.#core.listNamespacedService({ namespace, fieldSelector: `metadata.name=${name}` }),
        }),
      );
    }
    this.#events = new ProblemEvents({ core: this.#core, logger: options.logger });
  }

  #watches(): ResilientWatch<KubernetesObject>[] {
    return [this.#services, this.#slices, this.#secrets, ...this.#tcpServices.values()] as ResilientWatch<KubernetesObject>[];
  }

  async start(sink: ProviderSink): Promise<void> {
    this.#sink = sink;
    await Promise.all(this.#watches().map((w) => w.start()));
    this.#publish();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#window);
    clearImmediate(this.#immediate);
    this.#sink = undefined;
    await Promise.all(this.#watches().map((w) => w.stop()));
  }

  /** Recomputes the model: a router-wide setting it depends on (platformDomain, domainPolicy) changed. */
  refresh(): void {
    this.#changed();
  }

  /** Resolves when every Event recorded so far was written (or refused). */
  eventsWritten(): Promise<void> {
    return this.#events.flushed();
  }

  /** True once every watch has listed at least once and the state made of it was sent (readiness). */
  get synced(): boolean {
    return this.#published;
  }

  /** Resolves once the first full state was sent (see {@link synced}); never if stopped before. */
  whenSynced(): Promise<void> {
    return this.#synced;
  }

  /** The routable Services as the informer cache holds them now (shared objects: do not change them). */
  services(): readonly V1Service[] {
    return this.#services.list();
  }

  /** The Service that defines `version` of `app`, as of the last recompute. */
  serviceOf(app: string, version: string): { namespace: string; name: string } | undefined {
    return this.#owners.get(app)?.get(version);
  }

  /**
   * Calls `listener` after every change of a routable Service in the cache and after
   * every recompute (so {@link serviceOf} is current then); returns the function that
   * unsubscribes. For readers of Service annotations (the cutover store).
   */
  onServicesChange(listener: () => void): () => void {
    this.#serviceListeners.add(listener);
    return () => this.#serviceListeners.delete(listener);
  }

  #servicesChanged(): void {
    for (const listener of [...this.#serviceListeners]) listener();
  }

  #listed(): boolean {
    return this.#watches().every((w) => w.synced);
  }

  /**
   * Writes weights to the `router.deis.io/weight` annotations of the app's Services, so
   * every replica converges on them through its own watch. Versions not named keep theirs.
   */
  async setWeights(app: AppSpec, weights: Readonly<Record<string, number>>): Promise<void> {
    const owners = this.#owners.get(app.name);
    if (!owners) throw new FairwayError('FW_APP_NOT_FOUND', `no Kubernetes app named "${app.name}"`);
    for (const [version, weight] of Object.entries(weights)) {
      const svc = owners.get(version);
      if (!svc) continue;
      await this.#core.patchNamespacedService(
        { name: svc.name, namespace: svc.namespace, body: { metadata: { annotations: { [A.weight]: String(weight) } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    }
  }

  #changed(): void {
    if (this.#window || this.#immediate) {
      this.#dirty = true;
      return;
    }
    this.#immediate = setImmediate(() => {
      this.#immediate = undefined;
      this.#publish();
    });
  }

  /** Ends a coalescing window: recomputes if events arrived during it (and opens another). */
  #windowEnd(): void {
    this.#window = undefined;
    if (this.#dirty) this.#publish();
  }

  #publish(): void {
    const sink = this.#sink;
    if (!sink || !this.#listed()) return;
    // Everything that happened so far is in the caches read below.
    this.#dirty = false;
    clearImmediate(this.#immediate);
    this.#immediate = undefined;
    clearTimeout(this.#window);
    this.#window = setTimeout(() => this.#windowEnd(), this.#o.coalesceMs ?? 50);
    const services = this.#services.list() as unknown as KService[];
    const slices = this.#slices.list() as unknown as KEndpointSlice[];
    const secrets = this.#secrets.list() as unknown as KSecret[];
    const platformDomain = this.#o.platformDomain();
    const translation = translate({ services, slices, platformDomain, domainPolicy: this.#o.domainPolicy?.(), cache: this.#translated });
    const { apps, owners } = translation;
    this.#owners = owners;
    const certs = secretCertificates({ services, secrets, apps, owners, platformDomain, routerNamespace: this.#o.namespace });
    const problems = [...translation.problems, ...certs.problems];
    const tcp: Record<string, { endpoints: ReturnType<typeof serviceEndpoints>; connectTimeout?: number; idleTimeout?: number }> = {};
    for (const route of this.#o.tcpRoutes?.() ?? []) {
      if (!route.service) continue;
      const service = this.#tcpServices.get(route.service)?.list()[0] as KService | undefined;
      const settings = tcpServiceSettings(service);
      problems.push(...settings.problems);
      tcp[route.name] = { endpoints: serviceEndpoints(slices, route.service, route.servicePort), ...settings.timeouts };
    }
    this.#report(problems);
    this.#noticeStorage(secrets);
    sink.update({
      apps,
      tcp,
      certificates: certs.certificates,
      problems: problems.map((p) => ({ object: `${p.namespace}/${p.service}`, field: p.field, message: p.message, ...(p.unrouted ? { unrouted: p.unrouted } : {}) })),
    });
    this.#published = true;
    this.#resolveSynced();
    this.#servicesChanged();
  }

  /** Tells the certificate manager when a storage Secret changed (another replica stored a certificate). */
  #noticeStorage(secrets: readonly KSecret[]): void {
    const versions = secrets
      .filter((s) => (s.metadata as { labels?: Record<string, string> } | undefined)?.labels?.['fairway.io/storage'] !== undefined)
      .map((s) => `${s.metadata?.namespace}/${s.metadata?.name}@${(s.metadata as { resourceVersion?: string }).resourceVersion}`)
      .join(',');
    if (versions === this.#storageVersions) return;
    const first = this.#storageVersions === '';
    this.#storageVersions = versions;
    if (!first) this.#o.onStorageChange?.();
  }

  /** Logs each problem once while it lasts, and records it as an Event on its Service. */
  #report(problems: readonly ServiceProblem[]): void {
    const now = new Set<string>();
    for (const p of problems) {
      const key = `${p.namespace}/${p.service} ${p.field}: ${p.message}`;
      now.add(key);
      if (this.#reported.has(key)) continue;
      this.#o.logger.warn({ namespace: p.namespace, service: p.service, annotation: p.field }, p.message);
      this.#events.record(p, this.#serviceUid(p));
    }
    this.#reported = now;
  }

  #serviceUid(p: ServiceProblem): string | undefined {
    return (this.#services.list() as V1Service[]).find((s) => s.metadata?.namespace === p.namespace && s.metadata?.name === p.service)?.metadata?.uid;
  }
}

interface ResilientWatchOptions<T extends KubernetesObject> {
  readonly what: string;
  readonly kubeConfig: KubeConfig;
  readonly path: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly logger: Logger;
  readonly onChange: () => void;
  readonly backoff?: { min: number; max: number } | undefined;
  readonly watchdogMs?: number | undefined;
}

/**
 * An informer that comes back: restarted (as a new informer, so it relists) after an
 * error or a silent period, with backoff; its previous cache serves reads until the new
 * one has listed.
 */
export class ResilientWatch<T extends KubernetesObject> {
  readonly #o: ResilientWatchOptions<T>;
  #informer: ListWatch<T> | undefined;
  #serving: ListWatch<T> | undefined;
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #stopped = false;
  #firstSync: Promise<void>;
  #resolveFirstSync!: () => void;
  synced = false;

  constructor(options: ResilientWatchOptions<T>) {
    this.#o = options;
    this.#firstSync = new Promise((resolve) => (this.#resolveFirstSync = resolve));
  }

  /** Starts watching; resolves after the first successful list (retrying until then). */
  async start(): Promise<void> {
    this.#launch();
    await this.#firstSync;
  }

  list(): readonly T[] {
    return this.#serving?.list() ?? [];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#watchdog);
    this.#resolveFirstSync();
    const informers = new Set([this.#informer, this.#serving]);
    await Promise.all([...informers].map((i) => i?.stop().catch(() => {})));
  }

  #launch(): void {
    if (this.#stopped) return;
    let listed = false;
    const listFn = async () => {
      const result = await this.#o.list();
      listed = true;
      // The informer fills its cache from the list right after this resolves; once that
      // is done (next turn), its cache is the truth, even for an empty list (no events).
      setImmediate(() => {
        if (informer !== this.#informer || this.#serving === informer) return;
        this.#feedWatchdog();
        this.#promote(informer);
        this.#o.onChange();
      });
      return result;
    };
    const informer: ListWatch<T> = new ListWatch<T>(this.#o.path, new Watch(this.#o.kubeConfig), listFn, false, this.#o.labelSelector, this.#o.fieldSelector);
    this.#informer = informer;
    const event = () => {
      if (informer !== this.#informer) return;
      this.#feedWatchdog();
      if (listed && this.#serving !== informer) this.#promote(informer);
      this.#o.onChange();
    };
    informer.on('add', event);
    informer.on('update', event);
    informer.on('delete', event);
    informer.on('connect', () => {
      if (informer !== this.#informer) return;
      this.#feedWatchdog();
      // The list succeeded and the watch is open: this informer's cache is now the truth.
      if (listed && this.#serving !== informer) {
        this.#promote(informer);
        this.#o.onChange();
      }
    });
    informer.on('error', (err: unknown) => {
      if (informer !== this.#informer || this.#stopped) return;
      this.#scheduleRestart(`watch failed: ${(err as Error)?.message ?? String(err)}`);
    });
    informer.start().catch((err: Error) => this.#scheduleRestart(`start failed: ${err.message}`));
    this.#feedWatchdog();
  }

  #promote(informer: ListWatch<T>): void {
    const previous = this.#serving;
    this.#serving = informer;
    this.#failures = 0;
    if (previous && previous !== informer) void previous.stop().catch(() => {});
    if (!this.synced) {
      this.synced = true;
      this.#resolveFirstSync();
    }
  }

  #scheduleRestart(reason: string): void {
    if (this.#stopped || this.#restartTimer) return;
    this.#failures++;
    const { min, max } = this.#o.backoff ?? { min: 250, max: 30_000 };
    const delay = Math.min(max, min * 2 ** (this.#failures - 1)) * (0.8 + Math.random() * 0.4);
    this.#o.logger.warn({ watch: this.#o.what, failures: this.#failures, retryInMs: Math.round(delay) }, `${reason}; keeping the last good state and retrying`);
    const failed = this.#informer;
    this.#informer = undefined;
    if (failed && failed !== this.#serving) void failed.stop().catch(() => {});
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#launch();
    }, delay);
  }

  #feedWatchdog(): void {
    clearTimeout(this.#watchdog);
    const ms = this.#o.watchdogMs ?? 300_000;
    this.#watchdog = setTimeout(() => this.#scheduleRestart(`no watch event for ${ms} ms`), ms);
    this.#watchdog.unref();
  }
}
