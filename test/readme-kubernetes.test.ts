/**
 * The README's Kubernetes example, run as a reader would: the manifest block is applied
 * with the real `kubectl --server` against the test API server, the Secret is made with
 * `kubectl create secret tls`, and the `fairway routes` / `fairway weights` commands of the
 * example run against a router in Kubernetes mode. Keeps the README's example true.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateSelfSigned } from '../src/tls/self-signed.js';
import { startKubeApiServer, type KubeObject } from './helpers/kube-api-server.js';
import { runCli } from './helpers/router-process.js';
import { startTestRouter } from './helpers/test-router.js';
import { hello } from './helpers/tls-client.js';
import { startUpstream } from './helpers/upstreams.js';

const execFileAsync = promisify(execFile);
const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The fenced block after `<!-- kubectl-example: NAME -->`. */
function example(name: string): string {
  const at = README.indexOf(`<!-- kubectl-example: ${name} -->`);
  if (at < 0) throw new Error(`README has no kubectl example "${name}"`);
  const block = /```yaml\n([\s\S]*?)```/.exec(README.slice(at));
  if (!block) throw new Error(`README example "${name}" has no yaml block`);
  return block[1]!;
}

t.test('the README Kubernetes example applies with kubectl and routes as it says: two weighted versions, a Secret certificate, weights patched by fairway weights', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-readme-k8s-'));
  const api = await startKubeApiServer();
  t.teardown(() => api.close());
  const kubectl = async (...args: string[]) => {
    try {
      return (await execFileAsync('kubectl', ['--server', api.url, ...args], { env: { ...process.env, HOME: dir, KUBECONFIG: '' }, timeout: 30_000 })).stdout;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('kubectl is not installed: apt-get install -y kubernetes-client');
      throw err;
    }
  };

  writeFileSync(path.join(dir, 'web.yaml'), example('web'));
  const www = await generateSelfSigned({ names: ['www.example.com'] });
  writeFileSync(path.join(dir, 'www.pem'), www.certPem);
  writeFileSync(path.join(dir, 'www.key'), www.keyPem);
  t.match(await kubectl('apply', '-f', path.join(dir, 'web.yaml')), /namespace\/shop created\nservice\/web-v1 created\nservice\/web-v2 created/);
  const secretYaml = await kubectl('-n', 'shop', 'create', 'secret', 'tls', 'www-example-com-cert', `--cert=${path.join(dir, 'www.pem')}`, `--key=${path.join(dir, 'www.key')}`, '--dry-run=client', '-o', 'yaml');
  writeFileSync(path.join(dir, 'secret.yaml'), secretYaml);
  t.match(await kubectl('apply', '-f', path.join(dir, 'secret.yaml')), /secret\/www-example-com-cert created/);

  // What the cluster's EndpointSlice controller would add for the Deployments behind the selectors.
  const [v1, v2] = await Promise.all([startUpstream('v1'), startUpstream('v2')]);
  t.teardown(() => Promise.all([v1.close(), v2.close()]));
  for (const [svc, up] of [['web-v1', v1], ['web-v2', v2]] as const) {
    const slice: KubeObject = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${svc}-abcde`, namespace: 'shop', labels: { 'kubernetes.io/service-name': svc } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: up.port, protocol: 'TCP' }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    };
    api.apply(slice);
  }

  const kubeconfig = path.join(dir, 'kubeconfig');
  await api.writeKubeconfig(kubeconfig);
  const r = await startTestRouter('listen: { http: 127.0.0.1:0, https: 127.0.0.1:0, admin: 127.0.0.1:0, builder: 127.0.0.1:0 }\nplatformDomain: example.org\napps: {}\n', {
    dir,
    kubernetes: { kubeconfig, namespace: 'deis' },
  });
  t.teardown(() => r.close());
  const admin = ['--admin', r.admin];
  const ready = async () => (await r.adminGet('/readyz')).status === 200 && (await r.router.certificates.applied(), r.router.controlPlane.snapshot?.certificates.length === 1);
  while (!(await ready())) await new Promise((resolve) => r.router.controlPlane.once('snapshot', resolve));

  const routes = await runCli(['routes', ...admin]);
  t.equal(routes.code, 0);
  t.match(routes.stdout, /www\.example\.com\s+exact\s+web\s+v1=90 \(1 endpoint\), v2=10 \(1 endpoint\)/);
  t.match(routes.stdout, /web\.example\.org\s+exact\s+web\s+v1=90/);
  t.equal((await hello(r.router.httpsAddress!.port, { servername: 'www.example.com' })).cert.serialNumber.toUpperCase(), www.serialNumber.toUpperCase(), 'www.example.com is served the certificate of the Secret');

  const weights = await runCli(['weights', 'web', 'v1=50', 'v2=50', ...admin]);
  t.equal(weights.code, 0, weights.stderr);
  const columns = await kubectl('-n', 'shop', 'get', 'svc', '-o', 'custom-columns=NAME:.metadata.name,WEIGHT:.metadata.annotations.router\\.deis\\.io/weight');
  t.match(columns, /web-v1\s+50\n/);
  t.match(columns, /web-v2\s+50\n/);
});
