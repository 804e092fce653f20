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

const policyOf = (annotations: Record<string, string>) => {
  const { apps, problems } = run([service('web', { annotations })]);
  return { policy: apps[0]!.policy, problems: problems.map((p) => `${p.field}: ${p.message}`) };
};

t.test('a Service without policy annotations admits everyone, is not in maintenance and uses the router-wide timeouts', async (t) => {
  t.same(policyOf({}), { policy: { allow: [], maintenance: false, connectTimeout: undefined, readTimeout: undefined }, problems: [] });
});

t.test('router.deis.io/whitelist: comma-separated IPv4/IPv6 addresses and CIDRs become the allow list, as address/prefix', async (t) => {
  const { policy, problems } = policyOf({ 'router.deis.io/whitelist': '10.0.0.0/8, 192.168.1.7 ,2001:DB8::/32,::1,10.0.0.0/8' });
  t.same(policy.allow, ['10.0.0.0/8', '192.168.1.7/32', '2001:db8::/32', '::1/128'], 'canonical, deduplicated');
  t.same(problems, []);
});

t.test('an invalid whitelist entry is reported and dropped; the valid entries still restrict the app', async (t) => {
  const { policy, problems } = policyOf({ 'router.deis.io/whitelist': '10.0.0.0/8,10.0.0.0/33,not-an-ip,fe80::1%eth0' });
  t.same(policy.allow, ['10.0.0.0/8']);
  t.same(problems, [
    'router.deis.io/whitelist: "10.0.0.0/33" is not an IP address or CIDR; ignored',
    'router.deis.io/whitelist: "not-an-ip" is not an IP address or CIDR; ignored',
    'router.deis.io/whitelist: "fe80::1%eth0" is not an IP address or CIDR; ignored',
  ]);
});

t.test('router.deis.io/maintenance: "true" or "false" in any case; anything else is reported and means false', async (t) => {
  for (const v of ['true', 'True', 'TRUE', ' true ']) t.equal(policyOf({ 'router.deis.io/maintenance': v }).policy.maintenance, true, JSON.stringify(v));
  t.same(policyOf({ 'router.deis.io/maintenance': 'False' }), { policy: { allow: [], maintenance: false, connectTimeout: undefined, readTimeout: undefined }, problems: [] });
  t.same(policyOf({ 'router.deis.io/maintenance': 'yes' }).problems, ['router.deis.io/maintenance: "yes" must be "true" or "false"; using false']);
  t.equal(policyOf({ 'router.deis.io/maintenance': 'yes' }).policy.maintenance, false);
});

t.test('router.deis.io/connectTimeout and tcpTimeout take nginx times (bare number = seconds) and become the connect and read timeouts', async (t) => {
  const cases: [string, number][] = [['30s', 30_000], ['45', 45_000], ['500ms', 500], ['5m', 300_000], ['1h', 3_600_000], ['2d', 172_800_000], ['1w', 604_800_000], ['1M', 2_592_000_000], ['1y', 31_536_000_000]];
  for (const [v, ms] of cases) {
    const { policy, problems } = policyOf({ 'router.deis.io/connectTimeout': v, 'router.deis.io/tcpTimeout': v });
    t.same([policy.connectTimeout, policy.readTimeout, problems], [ms, ms, []], v);
  }
});

t.test('an invalid timeout is reported and falls back to the router-wide timeouts', async (t) => {
  for (const v of ['0', '-5s', '1.5s', '30 s', '30S', '5min', '']) {
    const { policy, problems } = policyOf({ 'router.deis.io/connectTimeout': v, 'router.deis.io/tcpTimeout': v });
    t.same([policy.connectTimeout, policy.readTimeout], [undefined, undefined], JSON.stringify(v));
    t.same(problems, [
      `router.deis.io/connectTimeout: "${v}" must be an nginx time like 30s, 5m or 1h (a bare number is seconds); using the router-wide timeouts.connect`,
      `router.deis.io/tcpTimeout: "${v}" must be an nginx time like 30s, 5m or 1h (a bare number is seconds); using the router-wide timeouts.upstreamHeaders and upstreamIdle`,
    ]);
  }
});

t.test('an app\'s policy merges its versions: allow lists unioned, maintenance if any version, the longest timeouts set', async (t) => {
  const version = (name: string, annotations: Record<string, string>) =>
    service(name, { ns: 'web', annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': name, ...annotations } });
  const { apps, problems } = run([
    version('v1', { 'router.deis.io/whitelist': '10.0.0.0/8', 'router.deis.io/connectTimeout': '5s', 'router.deis.io/tcpTimeout': '10m' }),
    version('v2', { 'router.deis.io/whitelist': '192.168.0.0/16,10.0.0.0/8', 'router.deis.io/maintenance': 'true', 'router.deis.io/connectTimeout': '20s' }),
    version('v3', {}),
  ]);
  t.same(problems, []);
  t.same(apps[0]!.policy, { allow: ['10.0.0.0/8', '192.168.0.0/16'], maintenance: true, connectTimeout: 20_000, readTimeout: 600_000 },
    'a version without a whitelist opens nothing; a version without a timeout does not lower it');
});

t.test('ssl.enforce accepts "True" as the Deis router did', async (t) => {
  t.equal(run([service('web', { annotations: { 'router.deis.io/ssl.enforce': 'True' } })]).apps[0]!.tls.sslEnforce, true);
});

t.test('domain policy: a domain is routed only when a rule names the Service\'s namespace and covers the domain', async (t) => {
  const domainPolicy = [
    { namespaces: ['shop'], domains: ['shop.example.org', '*.apps.example.net'] },
    { namespaces: ['*'], domains: ['example.com'] },
  ];
  const { apps, problems } = translate({
    platformDomain: 'example.com',
    domainPolicy,
    slices: [],
    services: [
      service('shop', { annotations: { 'router.deis.io/domains': 'shop.example.org,www.shop.example.org,a.apps.example.net,apps.example.net,*.x.apps.example.net,shop' } }),
      service('blog', { annotations: { 'router.deis.io/domains': 'shop.example.org,blog.example.com,example.com,*.example.com,blog.example.org' } }),
    ],
  });
  t.same(apps.find((a) => a.name === 'shop')!.domains, ['shop.example.org', 'www.shop.example.org', 'a.apps.example.net', '*.x.apps.example.net', 'shop.example.com'],
    'a rule domain covers itself and every name below; *.domain only the names below; bare names are checked expanded');
  t.same(apps.find((a) => a.name === 'blog')!.domains, ['blog.example.com', 'example.com', '*.example.com'], 'a * rule applies to every namespace');
  t.same(problems.map((p) => `${p.namespace}/${p.service} ${p.field}: ${p.message}`), [
    'shop/shop router.deis.io/domains: namespace "shop" may not route "apps.example.net" (kubernetes.domainPolicy); not routed',
    'blog/blog router.deis.io/domains: namespace "blog" may not route "shop.example.org" (kubernetes.domainPolicy); not routed',
    'blog/blog router.deis.io/domains: namespace "blog" may not route "blog.example.org" (kubernetes.domainPolicy); not routed',
  ]);
});

t.test('domain policy: a refused claim takes no host from the namespace allowed to have it, even from an older Service', async (t) => {
  const squatter = service('squat', { created: '2020-01-01T00:00:00Z', annotations: { 'router.deis.io/domains': 'pay.example.org' } });
  const owner = service('pay', { created: '2026-01-01T00:00:00Z', annotations: { 'router.deis.io/domains': 'pay.example.org' } });
  const { apps, problems } = translate({ services: [squatter, owner], slices: [], platformDomain: undefined, domainPolicy: [{ namespaces: ['pay'], domains: ['pay.example.org'] }] });
  t.same(apps.find((a) => a.name === 'pay')!.domains, ['pay.example.org']);
  t.same(apps.find((a) => a.name === 'squat')!.domains, []);
  t.same(problems.map((p) => `${p.namespace}: ${p.message}`), ['squat: namespace "squat" may not route "pay.example.org" (kubernetes.domainPolicy); not routed']);
});

t.test('without a domain policy any namespace may claim any domain (the Deis behaviour); an empty policy allows none', async (t) => {
  const svc = service('any', { annotations: { 'router.deis.io/domains': 'anything.example.org' } });
  t.same(translate({ services: [svc], slices: [], platformDomain: undefined }).apps[0]!.domains, ['anything.example.org']);
  t.same(translate({ services: [svc], slices: [], platformDomain: undefined, domainPolicy: [] }).apps[0]!.domains, []);
});

const pickOf = (annotations: Record<string, string>) => {
  const { apps, problems } = run([service('web', { annotations })]);
  return { pick: apps[0]!.versionPick, problems: problems.map((p) => `${p.field}: ${p.message}`) };
};

t.test('without sticky or version-header annotations an app is picked by weight only', async (t) => {
  t.same(pickOf({}), { pick: { sticky: false, header: undefined }, problems: [] });
});

t.test('router.deis.io/sticky: "true" (any case) makes the app sticky; anything else is reported and means false', async (t) => {
  for (const v of ['true', 'True', ' TRUE ']) t.same(pickOf({ 'router.deis.io/sticky': v }), { pick: { sticky: true, header: undefined }, problems: [] }, JSON.stringify(v));
  t.same(pickOf({ 'router.deis.io/sticky': 'false' }).pick?.sticky, false);
  t.same(pickOf({ 'router.deis.io/sticky': 'on' }), { pick: { sticky: false, header: undefined }, problems: ['router.deis.io/sticky: "on" must be "true" or "false"; using false'] });
});

t.test('router.deis.io/versionHeader: "true" accepts X-Fairway-Version from any client; versionHeaderAllowFrom narrows it to those CIDRs', async (t) => {
  t.same(pickOf({ 'router.deis.io/versionHeader': 'true' }), { pick: { sticky: false, header: { allowFrom: [] } }, problems: [] });
  t.same(pickOf({ 'router.deis.io/versionHeader': 'True', 'router.deis.io/versionHeaderAllowFrom': '10.0.0.0/8, 192.168.1.7,2001:DB8::/32,10.0.0.0/8' }),
    { pick: { sticky: false, header: { allowFrom: ['10.0.0.0/8', '192.168.1.7/32', '2001:db8::/32'] } }, problems: [] }, 'canonical, deduplicated');
  t.same(pickOf({ 'router.deis.io/versionHeader': 'maybe' }), { pick: { sticky: false, header: undefined }, problems: ['router.deis.io/versionHeader: "maybe" must be "true" or "false"; using false'] });
});

t.test('invalid versionHeaderAllowFrom entries are reported and dropped; a list with none valid keeps the header off rather than open to all', async (t) => {
  t.same(pickOf({ 'router.deis.io/versionHeader': 'true', 'router.deis.io/versionHeaderAllowFrom': '10.0.0.0/8,banana' }), {
    pick: { sticky: false, header: { allowFrom: ['10.0.0.0/8'] } },
    problems: ['router.deis.io/versionHeaderAllowFrom: "banana" is not an IP address or CIDR; ignored'],
  });
  t.same(pickOf({ 'router.deis.io/versionHeader': 'true', 'router.deis.io/versionHeaderAllowFrom': 'banana, 10.0.0.0/33' }), {
    pick: { sticky: false, header: undefined },
    problems: [
      'router.deis.io/versionHeaderAllowFrom: "banana" is not an IP address or CIDR; ignored',
      'router.deis.io/versionHeaderAllowFrom: "10.0.0.0/33" is not an IP address or CIDR; ignored',
      'router.deis.io/versionHeaderAllowFrom: "banana, 10.0.0.0/33" has no valid IP address or CIDR; the version header stays off for this Service',
    ],
  });
  t.same(pickOf({ 'router.deis.io/versionHeaderAllowFrom': '10.0.0.0/8' }), {
    pick: { sticky: false, header: undefined },
    problems: ['router.deis.io/versionHeaderAllowFrom: has no effect without router.deis.io/versionHeader: "true"; ignored'],
  });
});

t.test('an app\'s version pick merges its versions: sticky if any, the header on if any, from the union of the lists given', async (t) => {
  const version = (name: string, annotations: Record<string, string>) =>
    service(name, { ns: 'web', annotations: { 'router.deis.io/app': 'web', 'router.deis.io/version': name, ...annotations } });
  const merged = (...services: KService[]) => run(services).apps[0]!.versionPick;
  t.same(merged(version('v1', { 'router.deis.io/sticky': 'true' }), version('v2', {})), { sticky: true, header: undefined }, 'one sticky Service makes the app sticky');
  t.same(merged(version('v1', { 'router.deis.io/versionHeader': 'true' }), version('v2', {})), { sticky: false, header: { allowFrom: [] } }, 'one Service turns the header on');
  t.same(
    merged(
      version('v1', { 'router.deis.io/versionHeader': 'true', 'router.deis.io/versionHeaderAllowFrom': '10.0.0.0/8' }),
      version('v2', { 'router.deis.io/versionHeader': 'true', 'router.deis.io/versionHeaderAllowFrom': '192.168.0.0/16,10.0.0.0/8' }),
      version('v3', { 'router.deis.io/versionHeader': 'true' }),
    ),
    { sticky: false, header: { allowFrom: ['10.0.0.0/8', '192.168.0.0/16'] } },
    'the lists are unioned; a Service without a list does not open the header to every client',
  );
});
