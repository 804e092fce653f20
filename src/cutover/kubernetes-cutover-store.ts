/**
 * @module
 * The Kubernetes {@link CutoverStore}: each cutover is kept as JSON in the annotation
 * `router.deis.io/cutover` of the Service that defines its `to` version — the version
 * that lives on after a successful cutover, so the record stays next to it (and goes
 * away with it when a rolled-back version's Service is deleted). Every replica reads
 * the same record through its own Service watch.
 *
 * Contract (the one in `cutover-store.ts`, plus):
 * - `save()` writes the annotation with one merge patch (only that key changes; weights
 *   and the Deis annotations are left alone), then waits until this process's Service
 *   cache shows it (at most `syncTimeoutMs`; after that it resolves anyway, the write
 *   being durable in the API server, and logs that the cache lags). Saves are serialised.
 *   No Service defines the version (yet), or the API server refuses the patch (RBAC,
 *   size: annotations are limited to 256 kB per object): FW_STATE_WRITE.
 * - `load()` waits for the provider's first full sync, then reads every routable
 *   Service's annotation from the cache (`fresh`: the Services the cache shows with the
 *   annotation are read again from the API server, so a save another replica finished is
 *   never missed for a lagging watch; a failed read is FW_STATE_READ): per app, the
 *   record with the latest `startedAt`
 *   (an app's earlier cutovers stay on the Services of their own `to` versions). A record
 *   counts only when it sits on the Service that defines its `plan.to` version of its
 *   `plan.app` (the app's owners edit their own Services: a record on one app's Service
 *   never drives another app). An annotation that is not such a record (not JSON, not a
 *   cutover, on the wrong Service) is skipped and logged once, FW_STATE_READ: it does
 *   not stop the other apps' cutovers.
 * - `onChange()` calls its listener after each change of a routable Service in the cache.
 *
 * Written only by the replica that drives cutovers (the holder of the cutover Lease), so
 * a merge patch is enough: there is no other writer of the key to race with.
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Service } from '@kubernetes/client-node';
import { FairwayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { apiFailure, statusOf, withTimeout } from '../providers/kubernetes/api-failure.js';
import { CUTOVER_STATES, type CutoverRecord, type CutoverStore } from './cutover-store.js';

export const CUTOVER_ANNOTATION = 'router.deis.io/cutover';

/** What the store reads from the Kubernetes provider (its informer cache and translation). */
export interface ServiceCache {
  whenSynced(): Promise<void>;
  services(): readonly V1Service[];
  serviceOf(app: string, version: string): { namespace: string; name: string } | undefined;
  onServicesChange(listener: () => void): () => void;
}

export interface KubernetesCutoverStoreOptions {
  readonly kubeConfig: KubeConfig;
  readonly services: ServiceCache;
  readonly logger: Logger;
  /** How long `save()` waits for the cache to show the write, ms (default 10 s). */
  readonly syncTimeoutMs?: number;
  /** Per request to the API server, ms (default 30 s). */
  readonly requestTimeoutMs?: number;
}

export class KubernetesCutoverStore implements CutoverStore {
  readonly #o: KubernetesCutoverStoreOptions;
  readonly #core: CoreV1Api;
  readonly #server: string;
  #writing: Promise<void> = Promise.resolve();
  /** Annotation text → its record (or why it is none), so an unchanged annotation is parsed once. */
  #parsed = new Map<string, CutoverRecord | string>();
  /** Annotations reported as unreadable (`namespace/name text`), so each is logged once. */
  readonly #reported = new Set<string>();

  constructor(options: KubernetesCutoverStoreOptions) {
    this.#o = options;
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#server = options.kubeConfig.getCurrentCluster()?.server ?? '(no current cluster)';
  }

  async load(options: { readonly fresh?: boolean } = {}): Promise<CutoverRecord[]> {
    await this.#o.services.whenSynced();
    let services = this.#o.services.services();
    if (options.fresh) services = await this.#reread(services);
    const latest = new Map<string, CutoverRecord>();
    const parsed = new Map<string, CutoverRecord | string>();
    for (const service of services) {
      const text = service.metadata?.annotations?.[CUTOVER_ANNOTATION];
      if (text === undefined) continue;
      const where = `${service.metadata?.namespace}/${service.metadata?.name}`;
      let record = parsed.get(text) ?? this.#parsed.get(text);
      if (record === undefined) record = parseRecord(text);
      parsed.set(text, record);
      if (typeof record === 'object') {
        const owner = this.#o.services.serviceOf(record.plan.app, record.plan.to);
        if (owner?.namespace !== service.metadata?.namespace || owner?.name !== service.metadata?.name) {
          this.#report(where, text, `it records a cutover of ${record.plan.app} to ${record.plan.to}, which this Service does not define`);
          continue;
        }
        const other = latest.get(record.plan.app);
        if (!other || other.startedAt < record.startedAt) latest.set(record.plan.app, record);
      } else {
        this.#report(where, text, record);
      }
    }
    this.#parsed = parsed;
    // Copies: callers may keep and change what they load.
    return [...latest.values()].map((r) => structuredClone(r));
  }

  /** `services` with those that hold a record read again from the API server (gone ones left out). */
  async #reread(services: readonly V1Service[]): Promise<V1Service[]> {
    const timeoutMs = this.#o.requestTimeoutMs ?? 30_000;
    const read = await Promise.all(
      services.map(async (service) => {
        const { name, namespace } = service.metadata ?? {};
        if (service.metadata?.annotations?.[CUTOVER_ANNOTATION] === undefined || !name || !namespace) return service;
        try {
          return await this.#core.readNamespacedService({ name, namespace }, withTimeout(timeoutMs));
        } catch (err) {
          if (statusOf(err) === 404) return undefined;
          const failure = apiFailure(err, this.#server, timeoutMs);
          throw new FairwayError('FW_STATE_READ', `cannot read the cutover of Service ${namespace}/${name}: ${failure.message}`, { service: `${namespace}/${name}`, status: failure.status }, { cause: err });
        }
      }),
    );
    return read.filter((s): s is V1Service => s !== undefined);
  }

  save(record: CutoverRecord): Promise<void> {
    const text = JSON.stringify(record);
    const run = this.#writing.then(() => this.#write(record, text));
    this.#writing = run.catch(() => {});
    return run;
  }

  onChange(listener: () => void): () => void {
    return this.#o.services.onServicesChange(listener);
  }

  async #write(record: CutoverRecord, text: string): Promise<void> {
    await this.#o.services.whenSynced();
    const { app, to } = record.plan;
    const owner = this.#o.services.serviceOf(app, to);
    if (!owner) {
      throw new FairwayError('FW_STATE_WRITE', `cannot save the cutover of ${app}: no Service defines its version ${to} (in Kubernetes mode a cutover is kept on the Service of its new version, so only apps defined by Services can be cut over)`, { app, version: to });
    }
    const where = `Service ${owner.namespace}/${owner.name}`;
    const timeoutMs = this.#o.requestTimeoutMs ?? 30_000;
    try {
      await this.#core.patchNamespacedService(
        { name: owner.name, namespace: owner.namespace, body: { metadata: { annotations: { [CUTOVER_ANNOTATION]: text } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch, withTimeout(timeoutMs)),
      );
    } catch (err) {
      const failure = apiFailure(err, this.#server, timeoutMs);
      throw new FairwayError('FW_STATE_WRITE', `cannot save the cutover of ${app} in the ${CUTOVER_ANNOTATION} annotation of ${where}: ${failure.message}`, { app, service: `${owner.namespace}/${owner.name}`, status: failure.status }, { cause: err });
    }
    await this.#cached(owner, text, where);
  }

  /** Resolves once the cache shows `text` on the Service (or after `syncTimeoutMs`). */
  #cached(owner: { namespace: string; name: string }, text: string, where: string): Promise<void> {
    const shows = () =>
      this.#o.services.services().some((s) => s.metadata?.name === owner.name && s.metadata?.namespace === owner.namespace && s.metadata?.annotations?.[CUTOVER_ANNOTATION] === text);
    if (shows()) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        stop();
        resolve();
      };
      const stop = this.#o.services.onServicesChange(() => {
        if (shows()) finish();
      });
      const timer = setTimeout(() => {
        this.#o.logger.warn({ service: where }, 'the cutover was saved, but this replica\'s Service watch has not shown it yet; going on');
        finish();
      }, this.#o.syncTimeoutMs ?? 10_000);
    });
  }

  #report(where: string, text: string, why: string): void {
    const key = `${where} ${text}`;
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.#o.logger.warn({ code: 'FW_STATE_READ', service: where }, `ignoring the ${CUTOVER_ANNOTATION} annotation of Service ${where}: ${why} (remove it with kubectl annotate service -n ${where.split('/')[0]} ${where.split('/')[1]} ${CUTOVER_ANNOTATION}-)`);
  }
}

/** The record in an annotation, or why it is none. */
function parseRecord(text: string): CutoverRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `it is not JSON (${(err as Error).message})`;
  }
  const r = value as Partial<CutoverRecord> | null;
  const plan = r?.plan;
  if (
    r === null || typeof r !== 'object' || typeof r.id !== 'string' || typeof r.startedAt !== 'string' || !CUTOVER_STATES.includes(r.state!) ||
    typeof r.step !== 'number' || !Array.isArray(r.history) || typeof plan !== 'object' || plan === null ||
    typeof plan.app !== 'string' || typeof plan.from !== 'string' || typeof plan.to !== 'string' || !Array.isArray(plan.steps)
  ) {
    return 'it is not a Fairway cutover record';
  }
  return r as CutoverRecord;
}
