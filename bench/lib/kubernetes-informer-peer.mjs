// The peer of the Kubernetes scale bench (bench/kubernetes.ts): a bare Node process that
// does only what the client library does for Fairway — two @kubernetes/client-node
// informers (ListWatch), the same paths, label selectors and list calls as
// src/providers/kubernetes/kubernetes-provider.ts (routable Services, EndpointSlices with
// a service-name label), holding every object in the informers' caches — and nothing
// else: no translation, no snapshot, no route table, no pools, no listeners.
//
//   node kubernetes-informer-peer.mjs KUBECONFIG
//
// Prints one JSON line on stdout when both informers have listed and filled their caches
// (the moment Fairway's provider counts as synced): {"synced": true, "services": N,
// "slices": M, "uptimeMs": ...}. Then keeps watching; on each stdin line "count" it prints
// {"services": N, "slices": M, "events": E}. Exits on SIGTERM or when stdin closes.
import { CoreV1Api, DiscoveryV1Api, KubeConfig, ListWatch, Watch } from '@kubernetes/client-node';
import { createInterface } from 'node:readline';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: kubernetes-informer-peer.mjs KUBECONFIG\n');
  process.exit(2);
}
const kc = new KubeConfig();
kc.loadFromFile(file);
const core = kc.makeApiClient(CoreV1Api);
const discovery = kc.makeApiClient(DiscoveryV1Api);
const ROUTABLE = 'router.deis.io/routable=true';
const SLICES = 'kubernetes.io/service-name';

let events = 0;
let pending = 2;
function informer(path, selector, list) {
  let listed = false;
  const lw = new ListWatch(path, new Watch(kc), async () => {
    const result = await list();
    // The informer fills its cache right after this resolves: count it on the next turn,
    // as Fairway's ResilientWatch does.
    setImmediate(() => {
      if (listed) return;
      listed = true;
      if (--pending === 0) synced();
    });
    return result;
  }, false, selector);
  for (const verb of ['add', 'update', 'delete']) lw.on(verb, () => events++);
  lw.on('error', (err) => process.stderr.write(`informer ${path}: ${err?.message ?? err}\n`));
  lw.start().catch((err) => process.stderr.write(`informer ${path} start: ${err.message}\n`));
  return lw;
}
const services = informer('/api/v1/services', ROUTABLE, () => core.listServiceForAllNamespaces({ labelSelector: ROUTABLE }));
const slices = informer('/apis/discovery.k8s.io/v1/endpointslices', SLICES, () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: SLICES }));

function counts() {
  return { services: services.list().length, slices: slices.list().length, events };
}
function synced() {
  process.stdout.write(JSON.stringify({ synced: true, ...counts(), uptimeMs: Math.round(process.uptime() * 1000) }) + '\n');
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'count') process.stdout.write(JSON.stringify(counts()) + '\n');
});
lines.on('close', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
