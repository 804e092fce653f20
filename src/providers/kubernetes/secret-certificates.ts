/**
 * @module
 * The Deis router's certificate contract, as a pure function from Services and Secrets to
 * the certificates the router serves:
 * - `router.deis.io/certificates: "www.example.com:example-com,api.example.com:api"` on a
 *   routable Service: each `domain:certname` pair serves `domain` with the Secret
 *   `<certname>-cert` (keys `tls.crt`, `tls.key`) in the Service's namespace. A bare
 *   domain (no dot) is `<domain>.<platformDomain>`, as in `router.deis.io/domains`.
 * - The Secret `deis-router-platform-cert` in the router's namespace is the platform
 *   certificate: the default for unknown SNI and for the names it covers (typically
 *   `*.<platformDomain>`).
 *
 * A Service can only bring a certificate for a host its app actually serves (one it
 * claims and did not lose to an older Service): a namespace cannot take over another
 * app's TLS. Missing Secrets, keys and hosts are reported on the Service; the PEM itself
 * is checked by the certificate manager.
 */
import type { AppSpec, CertificatePem } from '../../model.js';
import type { KService, ServiceProblem } from './deis-translator.js';

export const CERTIFICATES_ANNOTATION = 'router.deis.io/certificates';
export const PLATFORM_CERT_SECRET = 'deis-router-platform-cert';

/** The parts of a Secret read here. */
export interface KSecret {
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, string>;
}

export interface SecretCertificatesInput {
  readonly services: readonly KService[];
  readonly secrets: readonly KSecret[];
  /** Translated apps, and which Service defines each of their versions. */
  readonly apps: readonly AppSpec[];
  readonly owners: ReadonlyMap<string, ReadonlyMap<string, { namespace: string; name: string }>>;
  readonly platformDomain: string | undefined;
  /** Where the router runs (and its platform certificate Secret lives). */
  readonly routerNamespace: string;
}

export function secretCertificates(input: SecretCertificatesInput): { certificates: CertificatePem[]; problems: ServiceProblem[] } {
  const secrets = new Map(input.secrets.map((s) => [`${s.metadata?.namespace}/${s.metadata?.name}`, s]));
  const appOf = new Map<string, AppSpec>();
  const byName = new Map(input.apps.map((a) => [a.name, a]));
  for (const [app, versions] of input.owners) {
    const spec = byName.get(app);
    if (spec) for (const svc of versions.values()) appOf.set(`${svc.namespace}/${svc.name}`, spec);
  }
  const certificates: CertificatePem[] = [];
  const problems: ServiceProblem[] = [];

  const platform = secrets.get(`${input.routerNamespace}/${PLATFORM_CERT_SECRET}`);
  if (platform) {
    const pem = pemOf(platform);
    if (typeof pem === 'string') {
      problems.push({ namespace: input.routerNamespace, service: PLATFORM_CERT_SECRET, kind: 'Secret', field: 'Secret', message: pem });
    } else {
      certificates.push({ ...pem, origin: `secret ${input.routerNamespace}/${PLATFORM_CERT_SECRET}`, role: 'platform' });
    }
  }

  for (const service of input.services) {
    const raw = service.metadata?.annotations?.[CERTIFICATES_ANNOTATION];
    const name = service.metadata?.name;
    if (raw === undefined || !name) continue;
    const namespace = service.metadata?.namespace ?? 'default';
    const app = appOf.get(`${namespace}/${name}`);
    if (!app) continue; // not routed (e.g. a duplicate version); the translator reported why
    const report = (message: string) => problems.push({ namespace, service: name, field: CERTIFICATES_ANNOTATION, message });
    const hostsBySecret = new Map<string, string[]>();
    for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
      const colon = pair.indexOf(':');
      const certName = colon > 0 ? pair.slice(colon + 1).trim() : '';
      let domain = colon > 0 ? pair.slice(0, colon).trim().toLowerCase().replace(/\.$/, '') : '';
      if (!domain || !certName) {
        report(`"${pair}" is not "domain:certname"; ignored`);
        continue;
      }
      if (!domain.includes('.')) {
        if (!input.platformDomain) {
          report(`"${domain}" needs the router's platformDomain to be set; ignored`);
          continue;
        }
        domain = `${domain}.${input.platformDomain}`;
      }
      if (!app.domains.includes(domain)) {
        report(`"${domain}" is not a domain app "${app.name}" serves; its certificate is ignored`);
        continue;
      }
      const secretName = `${certName}-cert`;
      const hosts = hostsBySecret.get(secretName) ?? [];
      if (!hosts.includes(domain)) hosts.push(domain);
      hostsBySecret.set(secretName, hosts);
    }
    for (const [secretName, hosts] of hostsBySecret) {
      const secret = secrets.get(`${namespace}/${secretName}`);
      if (!secret) {
        report(`Secret "${namespace}/${secretName}" for ${hosts.join(', ')} not found`);
        continue;
      }
      const pem = pemOf(secret);
      if (typeof pem === 'string') report(`Secret "${namespace}/${secretName}": ${pem}`);
      else certificates.push({ ...pem, origin: `secret ${namespace}/${secretName}`, role: 'app', app: app.name, hosts });
    }
  }
  certificates.sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0));
  return { certificates, problems };
}

/** The PEM pair of a TLS Secret, or what is wrong with it. */
function pemOf(secret: KSecret): { certPem: string; keyPem: string } | string {
  const crt = secret.data?.['tls.crt'];
  const key = secret.data?.['tls.key'];
  if (!crt || !key) return `has no ${!crt ? '"tls.crt"' : '"tls.key"'} key`;
  return { certPem: Buffer.from(crt, 'base64').toString('utf8'), keyPem: Buffer.from(key, 'base64').toString('utf8') };
}
