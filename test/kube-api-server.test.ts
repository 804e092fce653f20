/**
 * @module
 * Proves the test Kubernetes API server (test/helpers/kube-api-server.ts) with the real
 * `@kubernetes/client-node` 1.4.0 and the real `kubectl`: informers and ListWatch get the
 * events the API conventions promise, the client's verbs (patch, replace, create, lists with
 * selectors and pages) behave as against kube-apiserver, and each injected fault (dropped,
 * expired, reset, unreachable, restored-from-backup and silently dead watches) produces the
 * client behaviour written in the test's name. Those names are the reference for what a
 * Kubernetes provider built on this client must cope with.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer, type KubeApiServerOptions, type KubeObject } from './helpers/kube-api-server.js';

const execFileAsync = promisify(execFile);
const ROUTABLE = 'router.deis.io/routable=true';
const SERVICES = '/api/v1/namespaces/default/services';

// ---------------------------------------------------------------------------------------
// Helpers

async function server(t: Test, options?: KubeApiServerOptions): Promise<KubeApiServer> {
  const s = await startKubeApiServer(options);
  t.teardown(() => s.close());
  return s;
}

function service(name: string, labels: Record<string, string> = { 'router.deis.io/routable': 'true' }, extra: Partial<KubeObject> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default', labels }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80 }] }, ...extra };
}

interface Seen {
  verb: 'add' | 'update' | 'delete';
  name: string;
  resourceVersion: string | undefined;
  object: k8s.KubernetesObject;
}

/** Records an informer's callbacks and lets a test await a condition on them. */
class InformerLog {
  readonly seen: Seen[] = [];
  readonly errors: unknown[] = [];
  connects = 0;
  readonly #wake = new Set<() => void>();

  constructor(informer: k8s.Informer<k8s.KubernetesObject>) {
    for (const verb of ['add', 'update', 'delete'] as const) {
      informer.on(verb, (object) => {
        this.seen.push({ verb, name: object.metadata?.name ?? '', resourceVersion: object.metadata?.resourceVersion, object });
        this.#notify();
      });
    }
    informer.on('error', (err) => {
      this.errors.push(err);
      this.#notify();
    });
    informer.on('connect', () => {
      this.connects++;
      this.#notify();
    });
  }

  #notify() {
    for (const wake of [...this.#wake]) wake();
  }

  has(verb: Seen['verb'], name: string, test: (s: Seen) => boolean = () => true): boolean {
    return this.seen.some((s) => s.verb === verb && s.name === name && test(s));
  }

  /** `verb name` for each callback since index `from`. */
  story(from = 0): string[] {
    return this.seen.slice(from).map((s) => `${s.verb} ${s.name}`);
  }

  until(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.#wake.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#wake.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; seen: ${this.story().join(', ')}; errors: ${this.errors.map(describeError).join(', ')}`));
      }, timeoutMs);
      this.#wake.add(check);
      check();
    });
  }
}

function describeError(err: unknown): string {
  const e = err as { name?: string; code?: string | number; statusCode?: number; message?: string; type?: string };
  return `${e.name ?? typeof err}${e.code !== undefined ? ` code=${e.code}` : ''}${e.statusCode !== undefined ? ` statusCode=${e.statusCode}` : ''}${e.type ? ` type=${e.type}` : ''}: ${e.message ?? String(err)}`;
}

/** An informer over default-namespace Services with a label selector, as a Kubernetes provider builds it. */
function serviceInformer(t: Test, s: KubeApiServer, labelSelector = ROUTABLE) {
  const kc = s.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const informer = k8s.makeInformer(kc, SERVICES, () => core.listNamespacedService({ namespace: 'default', labelSelector }), labelSelector) as k8s.ListWatch<k8s.V1Service>;
  const log = new InformerLog(informer as unknown as k8s.Informer<k8s.KubernetesObject>);
  t.teardown(() => informer.stop());
  return { informer, log, core, kc };
}

const lists = (s: KubeApiServer, path = SERVICES, from = 0) => s.requests.slice(from).filter((r) => r.method === 'GET' && r.path === path && !r.watch);
const watches = (s: KubeApiServer, path = SERVICES, from = 0) => s.requests.slice(from).filter((r) => r.method === 'GET' && r.path === path && r.watch);
const names = (objects: readonly k8s.KubernetesObject[]) => objects.map((o) => o.metadata?.name ?? '').sort();

/** Bounded polling for conditions no callback announces. */
async function eventually(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The Status object of a failed client call. */
function statusOf(err: unknown): { code?: number; reason?: string; message?: string } {
  const body = (err as { body?: unknown }).body;
  return typeof body === 'string' ? (JSON.parse(body) as { code?: number; reason?: string }) : ((body ?? {}) as { code?: number });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Opens a raw watch with the client's Watch; events are collected, `done` resolves with the done() argument. */
async function rawWatch(kc: k8s.KubeConfig, path: string, query: Record<string, string | number | boolean | undefined>) {
  const events: Array<{ type: string; object: KubeObject }> = [];
  const wake = new Set<() => void>();
  let finish!: (err: unknown) => void;
  const done = new Promise<unknown>((resolve) => (finish = resolve));
  const controller = await new k8s.Watch(kc).watch(
    path,
    query,
    (type, object: KubeObject) => {
      events.push({ type, object });
      for (const w of [...wake]) w();
    },
    (err) => finish(err),
  );
  const until = (what: string, predicate: () => boolean, timeoutMs = 5000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        wake.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        wake.delete(check);
        reject(new Error(`timed out waiting for ${what}; events: ${events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}@${e.object.metadata?.resourceVersion}`).join(', ')}`));
      }, timeoutMs);
      wake.add(check);
      check();
    });
  return { events, done, until, abort: () => controller.abort() };
}

// ---------------------------------------------------------------------------------------
// Informers and the watch protocol

t.test('an informer over labelled Services sees ADDED, MODIFIED and DELETED for store changes, selector transitions included, and nothing for unlabelled Services', async (t) => {
  const s = await server(t);
  s.apply(service('web'));
  s.apply(service('db', {}));
  const { informer, log } = serviceInformer(t, s);
  await informer.start();
  t.same(log.story(), ['add web'], 'the LIST gives the labelled Service only');
  const [list] = lists(s);
  t.equal(list?.query.labelSelector, ROUTABLE, 'the LIST carries the label selector');
  const [watch] = watches(s);
  t.equal(watch?.query.labelSelector, ROUTABLE, 'the WATCH carries the label selector');
  t.equal(watch?.query.resourceVersion, informer.latestResourceVersion(), 'the WATCH starts at the resourceVersion of the LIST');

  s.apply(service('api'));
  s.apply(service('web', undefined, { metadata: { name: 'web', namespace: 'default', labels: { 'router.deis.io/routable': 'true' }, annotations: { 'router.deis.io/domains': 'www' } } }));
  s.apply(service('db')); // gains the label: enters the selection
  s.apply(service('web', { app: 'web' })); // loses the label: leaves the selection
  s.remove('Service', 'default', 'api');
  await log.until('the delete of api', () => log.has('delete', 'api'));
  t.same(log.story(1), ['add api', 'update web', 'add db', 'delete web', 'delete api'], 'one callback per change, in order');
  t.same(names(informer.list('default')), ['db'], 'the cache holds what the selector selects now');
  const updated = log.seen.find((e) => e.verb === 'update')!.object as k8s.V1Service;
  t.equal(updated.metadata?.annotations?.['router.deis.io/domains'], 'www', 'the update carries the new object');
  t.equal(lists(s).length, 1, 'no relist');
  t.equal(informer.latestResourceVersion(), s.resourceVersion, 'the informer ends at the server resourceVersion');
});

t.test('a watch that ends cleanly is resumed from the last resourceVersion without a relist, and changes made meanwhile arrive from history', async (t) => {
  const s = await server(t);
  s.apply(service('web'));
  const { informer, log } = serviceInformer(t, s);
  await informer.start();
  const before = informer.latestResourceVersion();
  const rewatch = s.waitForWatch((w) => w.resource === 'services');
  s.dropWatches();
  s.apply(service('api')); // made while the informer is between two watches
  const resumed = await rewatch;
  t.equal(resumed.resourceVersion, before, 'the informer re-watches from its last resourceVersion');
  await log.until('add api', () => log.has('add', 'api'));
  t.equal(lists(s).length, 1, 'no relist');
  t.equal(log.errors.length, 0, 'a clean end of the stream is no error');
  t.equal(log.connects, 2, 'the connect callback fires for the first watch and for the resumed one');
});

t.test('after compaction a resumed watch gets 410 Expired and the informer relists by itself, recovering the changes it missed', async (t) => {
  const s = await server(t);
  s.apply(service('web'));
  s.apply(service('api'));
  const { informer, log } = serviceInformer(t, s);
  await informer.start();
  const stale = informer.latestResourceVersion();
  s.silenceWatches(); // the informer misses what follows
  s.apply(service('new'));
  s.remove('Service', 'default', 'api');
  s.apply(service('web', undefined, { metadata: { name: 'web', namespace: 'default', labels: { 'router.deis.io/routable': 'true' }, annotations: { changed: 'yes' } } }));
  s.compact();
  const mark = s.requests.length;
  const fresh = s.waitForWatch((w) => w.resource === 'services' && w.resourceVersion === s.resourceVersion);
  s.dropWatches();
  await fresh;
  await log.until('the relist', () => log.has('add', 'new') && log.has('delete', 'api') && log.has('update', 'web'));
  const sequence = s.requests.slice(mark).filter((r) => r.path === SERVICES).map((r) => (r.watch ? `WATCH rv=${r.query.resourceVersion} ${r.status}` : `LIST ${r.status}`));
  t.same(sequence, [`WATCH rv=${stale} 200`, 'LIST 200', `WATCH rv=${s.resourceVersion} 200`], 'expired watch (200 + ERROR 410 event), relist, new watch');
  t.same(names(informer.list()), ['new', 'web'], 'the cache matches the server again');
  t.equal(log.errors.length, 0, 'a 410 is handled without an error callback');
});

t.test('a reset connection stops the informer for good: its error callback fires, and start() resumes from the old resourceVersion without a relist', async (t) => {
  const s = await server(t);
  s.apply(service('web'));
  const { informer, log } = serviceInformer(t, s);
  await informer.start();
  const before = informer.latestResourceVersion();
  const mark = s.requests.length;
  s.resetConnections();
  await log.until('an error callback', () => log.errors.length === 1);
  t.comment(`error after a reset: ${describeError(log.errors[0])}`);
  t.match(describeError(log.errors[0]), /ECONNRESET|socket hang up|Premature close/, 'the error is the reset connection');
  s.apply(service('api'));
  // Absence cannot be awaited: give a resuming informer ample time to show itself.
  await new Promise((r) => setTimeout(r, 300));
  t.equal(s.requests.length, mark, 'the informer does not come back by itself');
  t.notOk(log.has('add', 'api'), 'and misses changes');

  const resumed = s.waitForWatch();
  await informer.start();
  t.equal((await resumed).resourceVersion, before, 'start() watches from the old resourceVersion');
  await log.until('add api', () => log.has('add', 'api'));
  t.equal(lists(s).length, 1, 'no relist');
});

t.test('an unreachable API server stops the informer; start() while it is down resolves with an ECONNREFUSED error callback; once it is back on the same port start() catches up from history', async (t) => {
  const s = await server(t);
  s.apply(service('web'));
  const { informer, log } = serviceInformer(t, s);
  await informer.start();
  const url = s.url;
  await s.stop();
  await log.until('an error callback', () => log.errors.length === 1);
  t.comment(`error when the server goes away: ${describeError(log.errors[0])}`);
  await informer.start();
  t.equal(log.errors.length, 2, 'start() against a closed port resolves, and reports through the error callback');
  t.comment(`error while it is down: ${describeError(log.errors[1])}`);
  t.match(describeError(log.errors[1]), /ECONNREFUSED/);

  s.apply(service('api')); // the store outlives the listener
  await s.start();
  t.equal(s.url, url, 'same port');
  await informer.start();
  await log.until('add api', () => log.has('add', 'api'));
  t.equal(lists(s).length, 1, 'no relist: the missed change came from the watch history');
});

t.test('after restartFresh() (an API server restored from an old backup) a restarted informer keeps its stale cache and sees only changes past its old resourceVersion; a new informer sees the truth', async (t) => {
  const s = await server(t);
  for (let i = 0; i < 20; i++) s.apply(service(`old-${i}`));
  const { informer, log } = serviceInformer(t, s);
  await informer.start();
  const oldRv = Number(informer.latestResourceVersion());
  await s.restartFresh();
  await log.until('an error callback', () => log.errors.length === 1);
  t.ok(Number(s.resourceVersion) < oldRv, `the server's resourceVersion went back (${s.resourceVersion} < ${oldRv})`);

  const resumed = s.waitForWatch();
  await informer.start();
  t.equal((await resumed).resourceVersion, String(oldRv), 'the informer resumes from a resourceVersion the server has not reached; the server accepts the watch');
  const fresh: string[] = [];
  while (Number(s.resourceVersion) <= oldRv) fresh.push(s.apply(service(`fresh-${fresh.length}`)).metadata!.name!);
  const last = fresh[fresh.length - 1]!;
  await log.until(`add ${last}`, () => log.has('add', last));
  t.same(log.story(20), [`add ${last}`], 'only the change past the old resourceVersion arrives');
  t.equal(informer.list().filter((o) => o.metadata?.name?.startsWith('old-')).length, 20, 'the deleted Services stay in the cache');
  t.equal(lists(s).length, 1, 'and nothing relists');

  const { informer: second } = serviceInformer(t, s);
  await second.start();
  t.same(names(second.list()), [...fresh].sort(), 'a new informer lists the restored state');
});

t.test('a silently dead watch delivers nothing and the informer does not notice: it asks for no bookmarks and no timeout; only the end of the connection brings the missed change', async (t) => {
  const s = await server(t);
  s.apply(service('web'));
  const { informer, log, kc } = serviceInformer(t, s);
  await informer.start();
  const [open] = s.activeWatches;
  t.equal(open?.allowWatchBookmarks, false, 'no allowWatchBookmarks');
  t.equal(open?.timeoutSeconds, undefined, 'no timeoutSeconds');
  const before = s.resourceVersion;
  s.silenceWatches();
  s.apply(service('api'));
  const other = await rawWatch(kc, SERVICES, { resourceVersion: before });
  await other.until('ADDED api on a live watch', () => other.events.some((e) => e.type === 'ADDED' && e.object.metadata?.name === 'api'));
  other.abort();
  t.notOk(log.has('add', 'api'), 'the silenced watch got nothing while a live one got the change');
  t.equal(log.errors.length, 0, 'and no error');
  s.dropWatches();
  await log.until('add api after the connection ends', () => log.has('add', 'api'));
});

t.test('a watch asked for bookmarks gets BOOKMARK events with the current resourceVersion; timeoutSeconds ends the watch cleanly', async (t) => {
  const s = await server(t, { bookmarkIntervalMs: 50 });
  const kc = s.kubeConfig();
  const opened = Date.now();
  const w = await rawWatch(kc, SERVICES, { allowWatchBookmarks: true, resourceVersion: s.resourceVersion, timeoutSeconds: 1 });
  await w.until('a bookmark', () => w.events.some((e) => e.type === 'BOOKMARK'));
  const first = w.events.find((e) => e.type === 'BOOKMARK')!;
  t.same(first.object, { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: s.resourceVersion } }, 'a bookmark is kind, apiVersion and resourceVersion only');
  s.apply(service('web'));
  const rv = s.resourceVersion;
  await w.until('a bookmark at the new resourceVersion', () => w.events.some((e) => e.type === 'BOOKMARK' && e.object.metadata?.resourceVersion === rv));
  t.equal(await w.done, null, 'the timeout ends the stream cleanly: done(null)');
  const elapsed = Date.now() - opened;
  t.ok(elapsed >= 990 && elapsed < 5000, `after timeoutSeconds (${elapsed} ms)`);
});

t.test('a watch from a compacted resourceVersion, or one older than the bounded history, gets an ERROR event with a 410 Expired Status, then a clean close', async (t) => {
  const s = await server(t, { historySize: 3 });
  s.apply(service('web'));
  const old = s.resourceVersion;
  s.apply(service('api'));
  s.compact();
  const w = await rawWatch(s.kubeConfig(), SERVICES, { resourceVersion: old });
  t.equal(await w.done, null);
  t.equal(w.events.length, 1);
  t.equal(w.events[0]?.type, 'ERROR');
  t.match(w.events[0]?.object, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired', message: `too old resource version: ${old} (${s.resourceVersion})` });

  const start = s.resourceVersion;
  for (const name of ['a', 'b', 'c']) s.apply(service(name));
  const replayed = await rawWatch(s.kubeConfig(), SERVICES, { resourceVersion: start });
  await replayed.until('the three retained events', () => replayed.events.length === 3);
  t.same(replayed.events.map((e) => `${e.type} ${e.object.metadata?.name}`), ['ADDED a', 'ADDED b', 'ADDED c'], 'the retained history replays');
  replayed.abort();
  s.apply(service('d')); // pushes 'a' out of the three-event history
  const tooOld = await rawWatch(s.kubeConfig(), SERVICES, { resourceVersion: start });
  t.equal(await tooOld.done, null);
  t.match(tooOld.events, [{ type: 'ERROR', object: { code: 410, reason: 'Expired' } }]);
});

t.test('informer.stop() ends the watch and calls the error callback with an AbortError', async (t) => {
  const s = await server(t);
  const { informer, log } = serviceInformer(t, s);
  await informer.start();
  t.equal(s.activeWatches.length, 1);
  await informer.stop();
  await log.until('an error callback', () => log.errors.length === 1);
  t.match(describeError(log.errors[0]), /^AbortError/, 'an error handler that restarts informers must ignore errors after stop()');
  await eventually('the server to see the watch end', () => s.activeWatches.length === 0);
});

t.test('a watch without a resourceVersion starts with synthetic ADDED events for the current state; with sendInitialEvents they end with an annotated BOOKMARK', async (t) => {
  const s = await server(t);
  s.apply(service('b'));
  s.apply(service('a'));
  const w = await rawWatch(s.kubeConfig(), SERVICES, { sendInitialEvents: true, allowWatchBookmarks: true, resourceVersionMatch: 'NotOlderThan' });
  await w.until('the end of the initial events', () => w.events.some((e) => e.type === 'BOOKMARK'));
  t.same(
    w.events.map((e) => `${e.type} ${e.object.metadata?.name ?? e.object.metadata?.annotations?.['k8s.io/initial-events-end']}`),
    ['ADDED a', 'ADDED b', 'BOOKMARK true'],
  );
  t.equal(w.events[0]?.object.kind, 'Service', 'watch objects carry kind and apiVersion');
  w.abort();
});

// ---------------------------------------------------------------------------------------
// Verbs through the typed clients

t.test('patchNamespacedService with a merge patch changes annotations and bumps the resourceVersion; a watcher sees MODIFIED; JSON and strategic merge patches work; a patch that changes nothing is a no-op', async (t) => {
  const s = await server(t);
  s.apply(service('web'));
  const kc = s.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const w = await rawWatch(kc, SERVICES, { resourceVersion: s.resourceVersion });
  const before = s.resourceVersion;

  const merged = await core.patchNamespacedService(
    { name: 'web', namespace: 'default', body: { metadata: { annotations: { 'router.deis.io/weight': '30' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  t.equal(merged.metadata?.annotations?.['router.deis.io/weight'], '30');
  t.equal(merged.metadata?.labels?.['router.deis.io/routable'], 'true', 'the rest is kept');
  t.ok(Number(merged.metadata?.resourceVersion) > Number(before), 'a new resourceVersion');
  await w.until('MODIFIED web', () => w.events.some((e) => e.type === 'MODIFIED' && e.object.metadata?.annotations?.['router.deis.io/weight'] === '30'));

  const jsonPatched = await core.patchNamespacedService({
    name: 'web',
    namespace: 'default',
    body: [{ op: 'replace', path: '/metadata/annotations/router.deis.io~1weight', value: '40' }],
  });
  t.equal(jsonPatched.metadata?.annotations?.['router.deis.io/weight'], '40', 'json-patch+json is the client default');

  const strategic = await core.patchNamespacedService(
    { name: 'web', namespace: 'default', body: { spec: { ports: [{ port: 443, name: 'https' }] } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
  );
  t.same(
    strategic.spec?.ports?.map((p) => `${p.name}:${p.port}/${p.protocol}`),
    ['http:80/TCP', 'https:443/TCP'],
    'a strategic merge patch merges Service ports by port',
  );

  const unchanged = strategic.metadata?.resourceVersion;
  const again = await core.patchNamespacedService(
    { name: 'web', namespace: 'default', body: { metadata: { annotations: { 'router.deis.io/weight': '40' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  t.equal(again.metadata?.resourceVersion, unchanged, 'no new resourceVersion for a no-op patch');

  const removed = await core.patchNamespacedService(
    { name: 'web', namespace: 'default', body: { metadata: { annotations: { 'router.deis.io/weight': null } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  t.notOk(removed.metadata?.annotations && 'router.deis.io/weight' in removed.metadata.annotations, 'null removes a key');
  await w.until('four MODIFIED events', () => w.events.filter((e) => e.type === 'MODIFIED').length === 4);
  w.abort();
});

t.test('a PUT with a stale resourceVersion is 409 Conflict; with the current one it succeeds and bumps generation; create twice is 409 AlreadyExists; read of a missing object is 404 NotFound', async (t) => {
  const s = await server(t);
  const core = s.kubeConfig().makeApiClient(k8s.CoreV1Api);
  const created = await core.createNamespacedService({ namespace: 'default', body: service('web') as k8s.V1Service });
  t.equal(created.metadata?.generation, 1);
  t.match(created.metadata?.uid, /^[0-9a-f-]{36}$/);
  t.ok(created.metadata?.creationTimestamp instanceof Date, 'creationTimestamp parses as a date');
  t.match(created.spec?.clusterIP, /^10\.96\.\d+\.\d+$/, 'a clusterIP is allocated');

  const read = await core.readNamespacedService({ name: 'web', namespace: 'default' });
  s.apply(service('web', undefined, { metadata: { name: 'web', namespace: 'default', labels: {}, annotations: { by: 'someone-else' } } }));
  read.spec!.ports = [{ port: 8080 }];
  const stale = await rejection(core.replaceNamespacedService({ name: 'web', namespace: 'default', body: read }));
  t.match(statusOf(stale), { kind: 'Status', status: 'Failure', code: 409, reason: 'Conflict', message: /the object has been modified/ });

  const fresh = await core.readNamespacedService({ name: 'web', namespace: 'default' });
  fresh.spec!.ports = [{ port: 8080 }];
  const replaced = await core.replaceNamespacedService({ name: 'web', namespace: 'default', body: fresh });
  t.equal(replaced.spec?.ports?.[0]?.port, 8080);
  t.equal(replaced.metadata?.generation, 2, 'a spec change bumps generation');
  t.equal(replaced.spec?.clusterIP, created.spec?.clusterIP, 'the clusterIP is kept');

  const twice = await rejection(core.createNamespacedService({ namespace: 'default', body: service('web') as k8s.V1Service }));
  t.match(statusOf(twice), { code: 409, reason: 'AlreadyExists', message: 'services "web" already exists' });
  const missing = await rejection(core.readNamespacedService({ name: 'nope', namespace: 'default' }));
  t.match(statusOf(missing), { code: 404, reason: 'NotFound', message: 'services "nope" not found' });
  const badName = await rejection(core.createNamespacedService({ namespace: 'default', body: service('Not_A_Name') as k8s.V1Service }));
  t.match(statusOf(badName), { code: 422, reason: 'Invalid' });
  const noNamespace = await rejection(
    core.createNamespacedService({ namespace: 'ghost', body: { ...service('web'), metadata: { name: 'web', namespace: 'ghost' } } as k8s.V1Service }),
  );
  t.match(statusOf(noNamespace), { code: 404, reason: 'NotFound', message: 'namespaces "ghost" not found' });
});

t.test('a Lease is created and renewed through CoordinationV1Api with optimistic concurrency, in a namespace that must exist', async (t) => {
  const s = await server(t);
  const kc = s.kubeConfig();
  const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const lease = (holder: string): k8s.V1Lease => ({
    metadata: { name: 'fairway-leader', namespace: 'fairway' },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: new k8s.V1MicroTime(), renewTime: new k8s.V1MicroTime() },
  });
  const noNamespace = await rejection(coordination.createNamespacedLease({ namespace: 'fairway', body: lease('a') }));
  t.match(statusOf(noNamespace), { code: 404, message: 'namespaces "fairway" not found' });
  await core.createNamespace({ body: { metadata: { name: 'fairway' } } });

  const withDate = await rejection(
    coordination.createNamespacedLease({ namespace: 'fairway', body: { ...lease('a'), spec: { holderIdentity: 'a', renewTime: new Date() } } }),
  );
  t.match(statusOf(withDate), { code: 400, reason: 'BadRequest', message: /cannot be handled as a Lease: parsing time/ }, 'a Date (millisecond precision) is refused as a MicroTime');

  const created = await coordination.createNamespacedLease({ namespace: 'fairway', body: lease('a') });
  t.equal(created.spec?.holderIdentity, 'a');
  t.match(created.spec?.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}000Z$/, 'V1MicroTime sends six digits; the client hands MicroTimes back as strings');
  const taken = await rejection(coordination.createNamespacedLease({ namespace: 'fairway', body: lease('b') }));
  t.match(statusOf(taken), { code: 409, reason: 'AlreadyExists', message: 'leases.coordination.k8s.io "fairway-leader" already exists' });

  const current = await coordination.readNamespacedLease({ name: 'fairway-leader', namespace: 'fairway' });
  const renewed = await coordination.replaceNamespacedLease({
    name: 'fairway-leader',
    namespace: 'fairway',
    body: { ...current, spec: { ...current.spec, renewTime: new k8s.V1MicroTime() } },
  });
  t.ok(Number(renewed.metadata?.resourceVersion) > Number(current.metadata?.resourceVersion), 'the renewal is a new resourceVersion');
  const lost = await rejection(
    coordination.replaceNamespacedLease({ name: 'fairway-leader', namespace: 'fairway', body: { ...current, spec: { ...current.spec, holderIdentity: 'b' } } }),
  );
  t.match(statusOf(lost), { code: 409, reason: 'Conflict', message: /leases.coordination.k8s.io "fairway-leader"/ });
  t.equal(s.get('Lease', 'fairway', 'fairway-leader')?.spec && (s.get('Lease', 'fairway', 'fairway-leader')!.spec as { holderIdentity: string }).holderIdentity, 'a', 'the loser did not write');
  const deleted = await coordination.deleteNamespacedLease({ name: 'fairway-leader', namespace: 'fairway' });
  t.match(deleted, { status: 'Success' }, 'deleting a Lease answers a Success Status');
});

t.test('EndpointSlices list and watch across namespaces through DiscoveryV1Api; a ListWatch applies its fieldSelector to LIST and WATCH, makeInformer has none', async (t) => {
  const s = await server(t);
  const slice = (namespace: string, name: string, ip: string): KubeObject => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [ip], conditions: { ready: true } }],
    ports: [{ name: 'http', port: 5000, protocol: 'TCP' }],
  });
  s.apply(slice('default', 'web-abc', '10.0.0.1'));
  s.apply(slice('apps', 'web-def', '10.0.1.1')); // creates namespace apps
  const kc = s.kubeConfig();
  const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
  const selector = 'kubernetes.io/service-name=web';
  const listed = await discovery.listEndpointSliceForAllNamespaces({ labelSelector: selector });
  t.same(listed.items.map((i) => `${i.metadata?.namespace}/${i.metadata?.name}`), ['apps/web-def', 'default/web-abc']);
  t.equal(listed.items[0]?.endpoints[0]?.addresses[0], '10.0.1.1');

  const path = '/apis/discovery.k8s.io/v1/endpointslices';
  const all = k8s.makeInformer(kc, path, () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: selector }), selector);
  const allLog = new InformerLog(all as k8s.Informer<k8s.KubernetesObject>);
  t.teardown(() => all.stop());
  const field = 'metadata.namespace=apps';
  const appsOnly = new k8s.ListWatch(path, new k8s.Watch(kc), () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: selector, fieldSelector: field }), false, selector, field);
  const appsLog = new InformerLog(appsOnly as k8s.Informer<k8s.KubernetesObject>);
  t.teardown(() => appsOnly.stop());
  await all.start();
  await appsOnly.start();
  t.same(names(all.list()), ['web-abc', 'web-def']);
  t.same(names(appsOnly.list()), ['web-def']);
  t.equal(watches(s, path).find((r) => r.query.fieldSelector)?.query.fieldSelector, field, 'the ListWatch WATCH carries the fieldSelector');

  s.apply(slice('default', 'web-abc', '10.0.0.2'));
  s.apply(slice('apps', 'web-def', '10.0.1.2'));
  s.remove('EndpointSlice', 'default', 'web-abc');
  await allLog.until('delete web-abc', () => allLog.has('delete', 'web-abc'));
  await appsLog.until('update web-def', () => appsLog.has('update', 'web-def'));
  t.same(allLog.story(2), ['update web-abc', 'update web-def', 'delete web-abc']);
  t.same(appsLog.story(1), ['update web-def'], 'the field-selected watch sees its namespace only');
  const updated = allLog.seen.find((e) => e.verb === 'update' && e.name === 'web-def')!.object as k8s.V1EndpointSlice;
  t.equal(updated.endpoints[0]?.addresses[0], '10.0.1.2');
});

t.test('LIST honours the label selector grammar and field selectors, and rejects unsupported fields with 400', async (t) => {
  const s = await server(t);
  s.apply(service('a', { tier: 'web', env: 'prod' }));
  s.apply(service('b', { tier: 'web', env: 'dev' }));
  s.apply(service('c', { tier: 'db' }));
  s.apply(service('d', {}));
  const core = s.kubeConfig().makeApiClient(k8s.CoreV1Api);
  const cases: Array<[string, { labelSelector?: string; fieldSelector?: string }, string[]]> = [
    ['equality', { labelSelector: 'tier=web' }, ['a', 'b']],
    ['double equals', { labelSelector: 'tier==db' }, ['c']],
    ['inequality includes objects without the key', { labelSelector: 'tier!=web' }, ['c', 'd']],
    ['in', { labelSelector: 'env in (prod, staging)' }, ['a']],
    ['notin includes objects without the key', { labelSelector: 'env notin (prod)' }, ['b', 'c', 'd']],
    ['exists', { labelSelector: 'env' }, ['a', 'b']],
    ['does not exist', { labelSelector: '!env' }, ['c', 'd']],
    ['requirements are ANDed', { labelSelector: 'tier=web,env in (dev,qa)' }, ['b']],
    ['field metadata.name', { fieldSelector: 'metadata.name=c' }, ['c']],
    ['field metadata.name!=', { fieldSelector: 'metadata.name!=c', labelSelector: 'tier' }, ['a', 'b']],
    ['field metadata.namespace', { fieldSelector: 'metadata.namespace=default' }, ['a', 'b', 'c', 'd']],
  ];
  for (const [name, selectors, expected] of cases) {
    const list = await core.listNamespacedService({ namespace: 'default', ...selectors });
    t.same(names(list.items), expected, name);
  }
  const bad = await rejection(core.listNamespacedService({ namespace: 'default', fieldSelector: 'spec.type=ClusterIP' }));
  t.match(statusOf(bad), { code: 400, reason: 'BadRequest', message: 'field label not supported: spec.type' });
  const badLabel = await rejection(core.listNamespacedService({ namespace: 'default', labelSelector: 'tier in web' }));
  t.match(statusOf(badLabel), { code: 400, reason: 'BadRequest' });
});

t.test('LIST pages with limit and continue over one consistent snapshot; a continue token does not survive compaction', async (t) => {
  const s = await server(t);
  for (let i = 0; i < 25; i++) s.apply(service(`svc-${String(i).padStart(2, '0')}`));
  const core = s.kubeConfig().makeApiClient(k8s.CoreV1Api);
  const first = await core.listNamespacedService({ namespace: 'default', limit: 10 });
  t.equal(first.items.length, 10);
  t.equal(first.metadata?.remainingItemCount, 15);
  s.apply(service('svc-99')); // not in the snapshot
  const second = await core.listNamespacedService({ namespace: 'default', limit: 10, _continue: first.metadata!._continue! });
  t.equal(second.metadata?.resourceVersion, first.metadata?.resourceVersion, 'every page is at the first page’s resourceVersion');
  const third = await core.listNamespacedService({ namespace: 'default', limit: 10, _continue: second.metadata!._continue! });
  t.equal(third.metadata?._continue, undefined, 'the last page has no continue');
  t.same(names([...first.items, ...second.items, ...third.items]), Array.from({ length: 25 }, (_, i) => `svc-${String(i).padStart(2, '0')}`));
  s.compact();
  const gone = await rejection(core.listNamespacedService({ namespace: 'default', limit: 10, _continue: first.metadata!._continue! }));
  t.match(statusOf(gone), { code: 410, reason: 'Expired' });
});

t.test('API conventions: one global resourceVersion across resources, LIST items without kind, Status errors, no-op updates, DELETED at the deletion resourceVersion, Secret stringData, status subresource', async (t) => {
  const s = await server(t);
  const rv0 = Number(s.resourceVersion);
  s.apply(service('web'));
  s.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'web-cert', namespace: 'default' }, stringData: { 'tls.crt': 'CERT' } });
  s.apply({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'default' }, spec: {} });
  t.same(
    [s.get('Service', 'default', 'web'), s.get('Secret', 'default', 'web-cert'), s.get('Lease', 'default', 'l')].map((o) => Number(o!.metadata!.resourceVersion)),
    [rv0 + 1, rv0 + 2, rv0 + 3],
    'each write anywhere takes the next resourceVersion',
  );
  t.same(s.get('Secret', 'default', 'web-cert')?.data, { 'tls.crt': Buffer.from('CERT').toString('base64') }, 'stringData is folded into data');
  s.apply(service('web'));
  t.equal(s.resourceVersion, String(rv0 + 3), 'a write that changes nothing takes no resourceVersion');

  const raw = (await (await fetch(`${s.url}${SERVICES}`)).json()) as { kind: string; apiVersion: string; items: KubeObject[] };
  t.equal(raw.kind, 'ServiceList');
  t.equal(raw.apiVersion, 'v1');
  t.equal(raw.items[0]?.kind, undefined, 'LIST items carry no kind, as kube-apiserver sends them');
  const missing = await fetch(`${s.url}/api/v1/namespaces/default/secrets/nope`);
  t.equal(missing.headers.get('content-type'), 'application/json');
  t.same(await missing.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'secrets "nope" not found', reason: 'NotFound', details: { name: 'nope', kind: 'secrets' }, code: 404 });

  const kc = s.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const w = await rawWatch(kc, SERVICES, { resourceVersion: s.resourceVersion });
  const withStatus = await core.replaceNamespacedService({
    name: 'web',
    namespace: 'default',
    body: { ...(await core.readNamespacedService({ name: 'web', namespace: 'default' })), status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } } },
  });
  t.same(withStatus.status, { loadBalancer: {} }, 'the main resource does not write status');
  const statusWritten = await core.patchNamespacedServiceStatus(
    { name: 'web', namespace: 'default', body: { status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  t.equal(statusWritten.status?.loadBalancer?.ingress?.[0]?.ip, '1.2.3.4', 'the status subresource does');
  t.equal(statusWritten.metadata?.generation, 1, 'a status change leaves generation alone');
  const deleted = await core.deleteNamespacedService({ name: 'web', namespace: 'default' });
  t.equal(deleted.metadata?.name, 'web', 'deleting a Service answers the Service');
  await w.until('DELETED web', () => w.events.some((e) => e.type === 'DELETED'));
  const gone = w.events.find((e) => e.type === 'DELETED')!;
  t.equal(gone.object.metadata?.resourceVersion, s.resourceVersion, 'the DELETED event carries the deletion resourceVersion');
  t.equal((gone.object.status as { loadBalancer: { ingress: unknown[] } }).loadBalancer.ingress.length, 1, 'and the final object');
  w.abort();
});

t.test('with a token the server answers only requests that carry it, and the kubeconfig it gives carries it', async (t) => {
  const s = await server(t, { token: 's3cret' });
  const core = s.kubeConfig().makeApiClient(k8s.CoreV1Api);
  t.same((await core.listNamespace()).items.length, 4, 'the default namespaces');
  const denied = await fetch(`${s.url}/api/v1/namespaces`);
  t.equal(denied.status, 401);
});

// ---------------------------------------------------------------------------------------
// Scale and kubectl

t.test('2,000 Services (and 2,000 EndpointSlices) list and start watching within seconds', async (t) => {
  const s = await server(t);
  for (let i = 0; i < 2000; i++) {
    s.apply(service(`app-${i}`));
    s.apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `app-${i}-x1`, namespace: 'default', labels: { 'kubernetes.io/service-name': `app-${i}` } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [`10.1.${i >> 8}.${i & 255}`], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 5000, protocol: 'TCP' }],
    });
  }
  const { informer, log, kc } = serviceInformer(t, s);
  let started = performance.now();
  await informer.start();
  const servicesMs = performance.now() - started;
  t.equal(informer.list().length, 2000);
  started = performance.now();
  s.apply(service('app-0', undefined, { metadata: { name: 'app-0', namespace: 'default', labels: { 'router.deis.io/routable': 'true' }, annotations: { x: 'y' } } }));
  await log.until('update app-0', () => log.has('update', 'app-0'));
  const eventMs = performance.now() - started;

  const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
  const slices = k8s.makeInformer(kc, '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', () => discovery.listNamespacedEndpointSlice({ namespace: 'default' }));
  t.teardown(() => slices.stop());
  const { informer: services2 } = serviceInformer(t, s);
  started = performance.now();
  await Promise.all([services2.start(), slices.start()]);
  const bothMs = performance.now() - started;
  t.equal(slices.list().length, 2000);
  t.equal(services2.list().length, 2000);
  t.comment(`2,000 Services list + watch: ${servicesMs.toFixed(0)} ms; one change to the informer: ${eventMs.toFixed(1)} ms; 2,000 Services + 2,000 EndpointSlices together: ${bothMs.toFixed(0)} ms`);
  t.ok(servicesMs < 10_000 && bothMs < 10_000, 'well within the time a provider may take to sync at start');
});

t.test('kubectl applies a Service manifest (create, then a patch), lists it with get svc, and deletes it; an informer sees each change', async (t) => {
  const s = await server(t);
  const dir = await mkdtemp(join(tmpdir(), 'fairway-kubectl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'kubeconfig');
  await s.writeKubeconfig(kubeconfig);
  const kubectl = async (...args: string[]) => {
    try {
      return (await execFileAsync('kubectl', args, { env: { ...process.env, HOME: dir, KUBECONFIG: '' }, timeout: 30_000 })).stdout;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('kubectl is not installed: apt-get install -y kubernetes-client');
      throw err;
    }
  };
  const { informer, log } = serviceInformer(t, s);
  await informer.start();
  const manifest = (domains: string) => `apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    router.deis.io/routable: "true"
  annotations:
    router.deis.io/domains: ${domains}
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 5000
`;
  const file = join(dir, 'web.yaml');
  await writeFile(file, manifest('web'));
  t.match(await kubectl('--server', s.url, 'apply', '-f', file), /service\/web created/);
  await log.until('add web', () => log.has('add', 'web'));

  const table = await kubectl('--kubeconfig', kubeconfig, 'get', 'svc');
  t.match(table, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\n/);
  t.match(table, /\nweb\s+ClusterIP\s+10\.96\.\d+\.\d+\s+<none>\s+80\/TCP\s+\d+s\n/);

  await writeFile(file, manifest('web,www'));
  t.match(await kubectl('--server', s.url, 'apply', '-f', file), /service\/web configured/);
  await log.until('update web', () => log.has('update', 'web', (e) => (e.object as k8s.V1Service).metadata?.annotations?.['router.deis.io/domains'] === 'web,www'));
  t.ok(s.requests.some((r) => r.method === 'PATCH' && r.path === `${SERVICES}/web`), 'the second apply is a PATCH');
  t.equal((s.get('Service', 'default', 'web')!.spec as { ports: Array<{ targetPort: number }> }).ports[0]?.targetPort, 5000);

  t.match(await kubectl('--kubeconfig', kubeconfig, 'get', 'svc', 'web', '-o', 'jsonpath={.metadata.annotations.router\\.deis\\.io/domains}'), /^web,www$/);
  t.match(await kubectl('--kubeconfig', kubeconfig, 'delete', 'svc', 'web'), /service "web" deleted/);
  await log.until('delete web', () => log.has('delete', 'web'));
});

// ---------------------------------------------------------------------------------------
// Identity, RBAC and the kinds of the install manifests

const SA_USER = 'system:serviceaccount:deis:fairway';

/** Runs kubectl from the PATH with an empty HOME in `dir`; resolves with exit code and output (never rejects on a non-zero exit). */
async function kubectlIn(dir: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('kubectl', args, { env: { ...process.env, HOME: dir, KUBECONFIG: '' }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { code?: number | string; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('kubectl is not installed: apt-get install -y kubernetes-client');
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** RBAC objects: `reader` may read Services everywhere, `lease-writer` may write Leases in `deis` only. */
function rbacObjects(): KubeObject[] {
  const ref = (kind: string, name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name });
  const sa = [{ kind: 'ServiceAccount', name: 'fairway', namespace: 'deis' }];
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'deis' } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'reader' }, rules: [{ apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] }] },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'fairway-reader' }, roleRef: ref('ClusterRole', 'reader'), subjects: sa },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'lease-writer', namespace: 'deis' },
      rules: [
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
        { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['acme-account'] },
      ],
    },
    // No namespace on the subject: a RoleBinding's ServiceAccount defaults to the binding's namespace.
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'fairway-leases', namespace: 'deis' }, roleRef: ref('Role', 'lease-writer'), subjects: [{ kind: 'ServiceAccount', name: 'fairway' }] },
  ];
}

t.test('a SelfSubjectAccessReview is answered for the token user from the stored RBAC, with kube-apiserver reasons; the admin is allowed everything', async (t) => {
  const s = await server(t, { tokens: { 'sa-token': SA_USER, 'dev-token': 'jane' }, objects: rbacObjects() });
  const asSa = s.kubeConfig({ token: 'sa-token' }).makeApiClient(k8s.AuthorizationV1Api);
  const review = async (api: k8s.AuthorizationV1Api, resourceAttributes: k8s.V1ResourceAttributes) =>
    (await api.createSelfSubjectAccessReview({ body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes } } })).status!;

  t.same(await review(asSa, { verb: 'list', resource: 'services' }), {
    allowed: true,
    reason: 'RBAC: allowed by ClusterRoleBinding "fairway-reader" of ClusterRole "reader" to ServiceAccount "fairway/deis"',
  }, 'a ClusterRoleBinding grants at the cluster scope (all namespaces)');
  t.equal((await review(asSa, { verb: 'watch', resource: 'services', namespace: 'web' })).allowed, true, 'and in every namespace');
  t.same(await review(asSa, { verb: 'patch', resource: 'services', namespace: 'web', name: 'web' }), { allowed: false }, 'a verb no rule names: denied, no reason');
  t.same(await review(asSa, { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'deis', name: 'fairway-acme' }), {
    allowed: true,
    reason: 'RBAC: allowed by RoleBinding "fairway-leases/deis" of Role "lease-writer" to ServiceAccount "fairway/deis"',
  });
  t.equal((await review(asSa, { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'default' })).allowed, false, 'a RoleBinding grants in its namespace only');
  t.equal((await review(asSa, { verb: 'update', resource: 'leases', namespace: 'deis' })).allowed, false, 'the API group must match');
  t.equal((await review(asSa, { verb: 'get', resource: 'services', subresource: 'status', namespace: 'web' })).allowed, false, 'a subresource needs its own rule');
  t.equal((await review(asSa, { verb: 'get', resource: 'secrets', namespace: 'deis', name: 'acme-account' })).allowed, true, 'resourceNames: the named object');
  t.equal((await review(asSa, { verb: 'get', resource: 'secrets', namespace: 'deis', name: 'other' })).allowed, false, 'resourceNames: no other');
  t.equal((await review(asSa, { verb: 'list', resource: 'secrets', namespace: 'deis' })).allowed, false, 'resourceNames: never a list');

  // Wildcards, Group and User subjects, and a binding to a missing role.
  s.apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'status-all' }, rules: [{ apiGroups: ['*'], resources: ['*/status'], verbs: ['*'] }] });
  s.apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'sas-status' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'status-all' },
    subjects: [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:serviceaccounts:deis' }],
  });
  t.equal((await review(asSa, { verb: 'update', group: 'apps', resource: 'deployments', subresource: 'status', namespace: 'x' })).allowed, true, '`*` + `/status` and `*` verbs, through the namespace group');
  const asJane = s.kubeConfig({ token: 'dev-token' }).makeApiClient(k8s.AuthorizationV1Api);
  t.equal((await review(asJane, { verb: 'update', group: 'apps', resource: 'deployments', subresource: 'status', namespace: 'x' })).allowed, false, 'jane is not a service account');
  s.apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'jane', namespace: 'default' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'gone' },
    subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'jane' }],
  });
  t.same(await review(asJane, { verb: 'get', resource: 'pods', namespace: 'default' }), { allowed: false, reason: 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found' });

  const asAdmin = s.kubeConfig().makeApiClient(k8s.AuthorizationV1Api);
  t.same(await review(asAdmin, { verb: 'delete', resource: 'namespaces', name: 'kube-system' }), { allowed: true }, 'no token: the admin');

  const both = await rejection(asSa.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { verb: 'get' }, nonResourceAttributes: { path: '/x', verb: 'get' } } } }));
  t.match(statusOf(both), { code: 422, reason: 'Invalid', message: /exactly one of nonResourceAttributes or resourceAttributes must be specified/ });
  t.equal((await fetch(`${s.url}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews`)).status, 405, 'a review is create-only');
  t.equal((await fetch(`${s.url}/api/v1/services`, { headers: { authorization: 'Bearer nobody' } })).status, 401, 'a token nobody has is 401');
  t.ok(s.requests.some((r) => r.user === SA_USER) && s.requests.some((r) => r.user === undefined), 'requests record who asked');
});

t.test('with enforceRbac a token user is refused what RBAC does not grant with a 403 worded as kube-apiserver words it; discovery and reviews stay open; the admin is unaffected', async (t) => {
  const s = await server(t, { tokens: { 'sa-token': SA_USER }, enforceRbac: true, objects: [...rbacObjects(), service('web')] });
  const kc = s.kubeConfig({ token: 'sa-token' });
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const leases = kc.makeApiClient(k8s.CoordinationV1Api);

  t.equal((await core.listServiceForAllNamespaces()).items.length, 1, 'granted by the ClusterRoleBinding');
  t.equal((await kc.makeApiClient(k8s.VersionApi).getCode()).gitVersion, 'v1.32.0-fairway-test', '/version is public');

  const denied = statusOf(await rejection(core.listSecretForAllNamespaces()));
  t.same(denied, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `secrets is forbidden: User "${SA_USER}" cannot list resource "secrets" in API group "" at the cluster scope`,
    reason: 'Forbidden',
    details: { kind: 'secrets' },
    code: 403,
  });
  t.match(statusOf(await rejection(core.deleteNamespacedService({ namespace: 'default', name: 'web' }))), {
    code: 403,
    message: `services "web" is forbidden: User "${SA_USER}" cannot delete resource "services" in API group "" in the namespace "default"`,
    details: { name: 'web', kind: 'services' },
  });
  t.match(statusOf(await rejection(core.patchNamespacedServiceStatus({ namespace: 'default', name: 'web', body: { status: {} } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)))), {
    message: `services "web" is forbidden: User "${SA_USER}" cannot patch resource "services/status" in API group "" in the namespace "default"`,
  });
  t.match(statusOf(await rejection(leases.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'l' }, spec: {} } }))), {
    message: `leases.coordination.k8s.io is forbidden: User "${SA_USER}" cannot create resource "leases" in API group "coordination.k8s.io" in the namespace "default"`,
    details: { group: 'coordination.k8s.io', kind: 'leases' },
  });
  t.match(statusOf(await rejection(core.readNamespacedService({ namespace: 'nowhere', name: 'missing' }))), { code: 404 }, 'a granted read of a missing object is still 404');
  const created = await leases.createNamespacedLease({ namespace: 'deis', body: { metadata: { name: 'l' }, spec: { holderIdentity: 'a' } } });
  t.equal(created.metadata?.name, 'l', 'granted in deis by the RoleBinding');
  t.match(statusOf(await rejection(leases.deleteNamespacedLease({ namespace: 'deis', name: 'l' }))), { code: 403 }, 'the Role has no delete');

  const watch = await fetch(`${s.url}/api/v1/secrets?watch=1`, { headers: { authorization: 'Bearer sa-token' } });
  t.equal(watch.status, 403, 'a watch is authorized as verb watch');
  t.match(((await watch.json()) as { message: string }).message, /cannot watch resource "secrets"/);
  const path = await fetch(`${s.url}/metrics`, { headers: { authorization: 'Bearer sa-token' } });
  t.match(await path.json(), { code: 403, message: `forbidden: User "${SA_USER}" cannot get path "/metrics"` }, 'a non-resource path no rule grants');

  // The admin (no token) is never authorized; the RBAC objects change what the token user may do at once.
  await s.kubeConfig().makeApiClient(k8s.CoreV1Api).deleteNamespacedService({ namespace: 'default', name: 'web' });
  s.remove('ClusterRoleBinding', undefined, 'fairway-reader');
  t.match(statusOf(await rejection(core.listServiceForAllNamespaces())), { code: 403 });
});

t.test('kubectl applies a Deployment, a ConfigMap, a PodDisruptionBudget, a ServiceAccount and RBAC; a second apply patches the Deployment merging containers by name; kubectl auth can-i answers for a token user', async (t) => {
  // TLS: kubectl sends a bearer token over https only (and, without credentials, asks for a
  // user name over https): the admin has a token too.
  const s = await server(t, { token: 'admin-token', tokens: { 'sa-token': SA_USER }, tls: true });
  t.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const dir = await mkdtemp(join(tmpdir(), 'fairway-kubectl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const admin = join(dir, 'admin');
  const sa = join(dir, 'sa');
  await s.writeKubeconfig(admin);
  await s.writeKubeconfig(sa, { token: 'sa-token', namespace: 'deis' });
  const manifest = (image: string, extraEnv: string) => `apiVersion: v1
kind: Namespace
metadata: { name: deis }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: fairway, namespace: deis }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: fairway, namespace: deis }
data:
  fairway.yaml: |
    platformDomain: example.com
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: fairway }
rules:
- { apiGroups: [""], resources: [services], verbs: [get, list, watch, patch] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: fairway }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: fairway }
subjects: [{ kind: ServiceAccount, name: fairway, namespace: deis }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: fairway, namespace: deis }
rules:
- { apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: fairway, namespace: deis }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: fairway }
subjects: [{ kind: ServiceAccount, name: fairway, namespace: deis }]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: { name: fairway, namespace: deis }
spec:
  minAvailable: 1
  selector: { matchLabels: { app: fairway } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: fairway, namespace: deis }
spec:
  replicas: 2
  selector: { matchLabels: { app: fairway } }
  template:
    metadata: { labels: { app: fairway } }
    spec:
      serviceAccountName: fairway
      containers:
      - name: fairway
        image: ${image}
        args: [serve, --kubernetes]
        env:
        - { name: POD_NAMESPACE, valueFrom: { fieldRef: { fieldPath: metadata.namespace } } }${extraEnv}
        ports:
        - { name: http, containerPort: 8080 }
        - { name: admin, containerPort: 9090 }
        readinessProbe: { httpGet: { path: /readyz, port: admin } }
`;
  const file = join(dir, 'install.yaml');
  await writeFile(file, manifest('ghcr.io/fairway-router/fairway:0.1.0', ''));
  const first = await kubectlIn(dir, '--kubeconfig', admin, 'apply', '-f', file);
  t.equal(first.code, 0, first.stderr);
  for (const line of [
    'namespace/deis created',
    'serviceaccount/fairway created',
    'configmap/fairway created',
    'clusterrole.rbac.authorization.k8s.io/fairway created',
    'clusterrolebinding.rbac.authorization.k8s.io/fairway created',
    'role.rbac.authorization.k8s.io/fairway created',
    'rolebinding.rbac.authorization.k8s.io/fairway created',
    'poddisruptionbudget.policy/fairway created',
    'deployment.apps/fairway created',
  ]) t.ok(first.stdout.includes(line), line);

  const deployment = s.get('Deployment', 'deis', 'fairway')!;
  const spec = deployment.spec as { replicas: number; strategy: unknown; template: { spec: { containers: Array<Record<string, any>>; terminationGracePeriodSeconds: number } } };
  t.equal(spec.replicas, 2);
  t.same(spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } }, 'defaulted');
  t.equal(spec.template.spec.terminationGracePeriodSeconds, 30, 'defaulted');
  t.match(spec.template.spec.containers[0], { imagePullPolicy: 'IfNotPresent', ports: [{ protocol: 'TCP' }, { protocol: 'TCP' }], readinessProbe: { periodSeconds: 10, httpGet: { scheme: 'HTTP' } } });

  await writeFile(file, manifest('ghcr.io/fairway-router/fairway:0.2.0', '\n        - { name: NODE_ENV, value: production }'));
  const second = await kubectlIn(dir, '--kubeconfig', admin, 'apply', '-f', file);
  t.equal(second.code, 0, second.stderr);
  t.match(second.stdout, /deployment\.apps\/fairway configured/);
  t.match(second.stdout, /clusterrole\.rbac\.authorization\.k8s\.io\/fairway unchanged/);
  t.ok(s.requests.some((r) => r.method === 'PATCH' && r.path === '/apis/apps/v1/namespaces/deis/deployments/fairway'), 'the second apply is a strategic merge PATCH');
  const container = (s.get('Deployment', 'deis', 'fairway')!.spec as typeof spec).template.spec.containers;
  t.equal(container.length, 1, 'containers merged by name, not appended');
  t.match(container[0], { image: 'ghcr.io/fairway-router/fairway:0.2.0', env: [{ name: 'POD_NAMESPACE' }, { name: 'NODE_ENV', value: 'production' }], readinessProbe: { httpGet: { path: '/readyz' } } });

  const table = await kubectlIn(dir, '--kubeconfig', admin, 'get', 'deploy,pdb,sa,cm', '-n', 'deis');
  t.match(table.stdout, /deployment\.apps\/fairway/);
  t.match(table.stdout, /poddisruptionbudget\.policy\/fairway/);

  const can = (...args: string[]) => kubectlIn(dir, '--kubeconfig', sa, 'auth', 'can-i', ...args);
  t.match(await can('patch', 'services', '--all-namespaces'), { code: 0, stdout: 'yes\n' });
  t.match(await can('update', 'leases.coordination.k8s.io'), { code: 0, stdout: 'yes\n' }, 'in the context namespace, deis');
  t.match(await can('update', 'leases.coordination.k8s.io', '-n', 'default'), { code: 1, stdout: 'no\n' });
  t.match(await can('delete', 'services', '-n', 'web'), { code: 1, stdout: 'no\n' });

  const broken = join(dir, 'broken.yaml');
  await writeFile(broken, `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: fairway }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: other }
subjects: [{ kind: ServiceAccount, name: fairway, namespace: deis }]
`);
  t.match((await kubectlIn(dir, '--kubeconfig', admin, 'apply', '-f', broken)).stderr, /cannot change roleRef/, 'roleRef is immutable');
});
