import t from 'tap';
import { translate, type KEndpointSlice, type KService } from '../src/providers/kubernetes/deis-translator.js';

let clock = Date.parse('2026-01-01T00:00:00Z');
function service(name: string, o: { ns?: string; annotations?: Record<string, string>; labels?: Record<string, string>; ports?: KService['spec'] extends infer S ? S extends { ports?: infer P } ? P : never : never; type?: string; externalName?: string; created?: string } = {}): KService {
  return {
    metadata: {
      name,
      namespace: o.ns ?? name,
      creationTimestamp: o.created ?? new Date((clock += 1000)).toISOString(),
      labels: { 'router.deis.io/routable': 'true', ...o.labels },
      annotations: o.annotations ?? {},
    },
    spec: { type: o.type ?? 'ClusterIP', externalName: o.externalName, ports: o.ports ?? [{ name: 'http', port: 80 }] },
  };
}
function slice(svc: string, ns: string, endpoints: { ip: string; ready?: boolean; terminating?: boolean }[], port = 5000, portName = 'http'): KEndpointSlice {
  return {
    metadata: { name: `${svc}-abc`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: portName, port }],
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true, terminating: e.terminating ?? false } })),
  };
}
const run = (services: KService[], slices: KEndpointSlice[] = []) => translate({ services, slices, platformDomain: 'example.com' });

t.test('a routable Service is an app: app label or name, bare domains expanded, ready endpoints on the routed port', async (t) => {
  const { apps, problems } = run(
    [service('web', { labels: { app: 'web' }, annotations: { 'router.deis.io/domains': 'web,www.example.org,WWW.Example.org' } }), { ...service('hidden'), metadata: { name: 'hidden', namespace: 'x', labels: {} } }],
    [slice('web', 'web', [{ ip: '10.0.0.2' }, { ip: '10.0.0.1' }, { ip: '10.0.0.3', ready: false }, { ip: '10.0.0.4', terminating: true }])],
  );
  t.same(problems, []);
  t.same(apps.map((a) => a.name), ['web'], 'Services without the routable label are ignored');
  t.same(apps[0]!.domains, ['web.example.com', 'www.example.org']);
  t.same(apps[0]!.versions, [{ name: 'web', weight: 100, endpoints: [{ host: '10.0.0.1', port: 5000 }, { host: '10.0.0.2', port: 5000 }] }]);
  t.equal(apps[0]!.source, 'kubernetes');
});

t.test('Services sharing router.deis.io/app are versions, named and weighted by annotations; domains are unioned', async (t) => {
  const { apps } = run(
    [
      service('web-v1', { ns: 'web', annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': 'v1', 'router.deis.io/weight': '90', 'router.deis.io/domains': 'web' } }),
      service('web-v2', { ns: 'web', annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': 'v2', 'router.deis.io/weight': '10', 'router.deis.io/domains': 'web,beta.example.org' } }),
    ],
    [slice('web-v1', 'web', [{ ip: '10.0.1.1' }]), slice('web-v2', 'web', [{ ip: '10.0.2.1' }])],
  );
  t.equal(apps.length, 1);
  t.same(apps[0]!.versions.map((v) => [v.name, v.weight, v.endpoints[0]!.host]), [['v1', 90, '10.0.1.1'], ['v2', 10, '10.0.2.1']]);
  t.same(apps[0]!.domains, ['web.example.com', 'beta.example.org']);
});

t.test('invalid annotation values are reported on their Service and fall back to defaults', async (t) => {
  const { apps, problems } = run([
    service('api', { annotations: { 'router.deis.io/weight': '-3', 'router.deis.io/domains': 'ok.example.org,not a domain', 'router.deis.io/ssl.enforce': 'yes', 'router.deis.io/port': 'grpc' } }),
  ]);
  t.same(apps[0]!.versions[0]!.weight, 100);
  t.same(apps[0]!.domains, ['ok.example.org']);
  t.equal(apps[0]!.tls.sslEnforce, false);
  t.same(problems.map((p) => `${p.namespace}/${p.service} ${p.field}: ${p.message}`), [
    'api/api router.deis.io/weight: "-3" must be a number >= 0; using 100',
    'api/api router.deis.io/domains: "not a domain" is not a domain name; ignored',
    'api/api router.deis.io/ssl.enforce: "yes" must be "true" or "false"; using false',
    'api/api router.deis.io/port: the Service has no port named or numbered "grpc"; using port 80',
  ]);
});

t.test('only port 80 is routed unless router.deis.io/port names another', async (t) => {
  const ports = [{ name: 'metrics', port: 9100 }, { name: 'web', port: 8080 }];
  const metricsSlice: KEndpointSlice = { ...slice('api', 'api', [{ ip: '10.0.0.1' }], 9100, 'metrics'), ports: [{ name: 'metrics', port: 9100 }, { name: 'web', port: 8081 }] };
  t.same(run([service('api', { ports })], [metricsSlice]).apps[0]!.versions[0]!.endpoints, [], 'no port 80: no endpoints');
  t.same(run([service('api', { ports, annotations: { 'router.deis.io/port': 'web' } })], [metricsSlice]).apps[0]!.versions[0]!.endpoints, [{ host: '10.0.0.1', port: 8081 }]);
  t.same(run([service('api', { ports, annotations: { 'router.deis.io/port': '8080' } })], [metricsSlice]).apps[0]!.versions[0]!.endpoints, [{ host: '10.0.0.1', port: 8081 }], 'by number too');
});

t.test('ExternalName Services are versions pointing at the external DNS name', async (t) => {
  const { apps } = run([
    service('web', { annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': 'here', 'router.deis.io/weight': '50' } }),
    service('web-there', { ns: 'web', type: 'ExternalName', externalName: 'Web.Other-Cluster.example.net.', annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': 'there', 'router.deis.io/weight': '50' } }),
  ]);
  t.same(apps[0]!.versions.find((v) => v.name === 'there')!.endpoints, [{ host: 'web.other-cluster.example.net', port: 80 }]);
});

t.test('a host claimed by two apps goes to the oldest Service, deterministically; the loser is reported', async (t) => {
  const older = service('blog', { created: '2025-01-01T00:00:00Z', annotations: { 'router.deis.io/domains': 'shared.example.org,blog' } });
  const newer = service('shop', { created: '2026-01-01T00:00:00Z', annotations: { 'router.deis.io/domains': 'shared.example.org,shop' } });
  for (const order of [[older, newer], [newer, older]]) {
    const { apps, problems } = run(order);
    t.same(apps.find((a) => a.name === 'blog')!.domains, ['shared.example.org', 'blog.example.com']);
    t.same(apps.find((a) => a.name === 'shop')!.domains, ['shop.example.com'], 'the newer app keeps its other hosts');
    t.match(problems, [{ namespace: 'shop', service: 'shop', field: 'router.deis.io/domains', message: /host "shared\.example\.org" is already served by app "blog"/ }]);
  }
});

t.test('the same app name in two namespaces becomes <namespace>.<app>', async (t) => {
  const { apps } = run([service('web', { ns: 'team-a', labels: { app: 'web' } }), service('web', { ns: 'team-b', labels: { app: 'web' } })]);
  t.same(apps.map((a) => a.name), ['team-a.web', 'team-b.web']);
});

t.test('ssl.enforce "true" turns on the HTTPS redirect for the app', async (t) => {
  t.equal(run([service('web', { annotations: { 'router.deis.io/ssl.enforce': 'true' } })]).apps[0]!.tls.sslEnforce, true);
});
