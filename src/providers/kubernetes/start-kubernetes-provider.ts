/**
 * @module
 * Wires Kubernetes mode for the composition root (kept apart so the client library is
 * only loaded in Kubernetes mode): loads the kubeconfig and finds the router's namespace
 * ({@link openKubernetes}), then starts the provider without waiting for the API server
 * (the router serves its file config meanwhile and `/readyz` stays false until the first
 * full sync), makes weight changes for Kubernetes apps write the Services' annotations,
 * and keeps ACME data in Secrets with Lease locks so replicas share it. Also makes the
 * Kubernetes parts of cutovers ({@link KubernetesContext.cutovers}): the store on the
 * Services, the cutover Lease and the replica Leases.
 */
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { ControlPlane } from '../../control/control-plane.js';
import { CutoverLease } from '../../cutover/cutover-lease.js';
import { KubernetesCutoverStore } from '../../cutover/kubernetes-cutover-store.js';
import { replicaIdentity, ReplicaLeases } from '../../cutover/replica-leases.js';
import type { DomainRule, RouterSettings, TcpRoute } from '../../model.js';
import type { Logger } from '../../observability/logger.js';
import { SecretStorage } from '../../tls/secret-storage.js';
import type { Storage } from '../../tls/storage.js';
import { withBuilderRoute } from './builder-route.js';
import { KubernetesProvider } from './kubernetes-provider.js';

export interface KubernetesContextOptions {
  readonly kubeconfig?: string;
  /** The router's namespace; default: $POD_NAMESPACE, the service account's, the kubeconfig context's, else `deis`. */
  readonly namespace?: string;
  readonly backoff?: { min: number; max: number };
  readonly watchdogMs?: number;
  /** The cutover Lease and the replica Leases (tests make them short); defaults in cutover-lease.ts and replica-leases.ts. */
  readonly leases?: { readonly durationMs?: number; readonly renewMs?: number; readonly retryMs?: number };
}

/** The Kubernetes parts of cutovers with several replicas. */
export interface KubernetesCutovers {
  readonly store: KubernetesCutoverStore;
  readonly leadership: CutoverLease;
  readonly replicas: ReplicaLeases;
}

export interface StartKubernetesOptions {
  readonly controlPlane: ControlPlane;
  readonly logger: Logger;
  readonly platformDomain: () => string | undefined;
  readonly domainPolicy: () => readonly DomainRule[] | undefined;
  readonly tcpRoutes: () => readonly TcpRoute[];
  /** A storage Secret changed: another replica may have stored a certificate. */
  readonly onStorageChange: () => void;
}

/** Kubernetes mode before anything is started: the cluster to talk to and where the router lives. */
export interface KubernetesContext {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** This process's name among the replicas (Lease holder, decisions' `replica`): see `replicaIdentity()`. */
  readonly identity: string;
  /** The builder route added to the file config's settings (see builder-route.ts). */
  adjustSettings(settings: RouterSettings): RouterSettings;
  /** ACME storage: Secrets and Leases in the router's namespace. */
  storage(): Storage;
  start(options: StartKubernetesOptions): Promise<KubernetesProvider>;
  /** The cutover store (on `provider`'s Services), the cutover Lease and the replica Leases (none started). */
  cutovers(provider: KubernetesProvider, logger: Logger): KubernetesCutovers;
}

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export function openKubernetes(options: KubernetesContextOptions): KubernetesContext {
  const kubeConfig = new KubeConfig();
  if (options.kubeconfig) kubeConfig.loadFromFile(options.kubeconfig);
  else kubeConfig.loadFromCluster();
  const namespace = options.namespace ?? routerNamespace(kubeConfig);
  const identity = replicaIdentity();
  return {
    kubeConfig,
    namespace,
    identity,
    adjustSettings: (settings) => withBuilderRoute(settings, namespace),
    storage: () => new SecretStorage({ kubeConfig, namespace }),
    async start(o) {
      const provider = new KubernetesProvider({
        kubeConfig,
        namespace,
        platformDomain: o.platformDomain,
        domainPolicy: o.domainPolicy,
        tcpRoutes: o.tcpRoutes,
        onStorageChange: o.onStorageChange,
        logger: o.logger,
        backoff: options.backoff,
        watchdogMs: options.watchdogMs,
      });
      o.controlPlane.setWeightWriter('kubernetes', (app, weights) => provider.setWeights(app, weights));
      o.logger.info({ server: kubeConfig.getCurrentCluster()?.server, namespace }, 'watching the Kubernetes API');
      provider.start(o.controlPlane.sinkFor(provider.name)).then(
        () => o.logger.info('first Kubernetes sync done'),
        (err: Error) => o.logger.error({ err: err.message }, 'Kubernetes provider failed to start'),
      );
      return provider;
    },
    cutovers(provider, logger) {
      const leases = options.leases ?? {};
      return {
        store: new KubernetesCutoverStore({ kubeConfig, services: provider, logger }),
        leadership: new CutoverLease({ kubeConfig, namespace, identity, logger, ...leases }),
        replicas: new ReplicaLeases({ kubeConfig, namespace, identity, logger, durationMs: leases.durationMs, renewMs: leases.renewMs }),
      };
    },
  };
}

/** $POD_NAMESPACE (the manifests set it), the service account's namespace, the kubeconfig context's, else `deis`. */
function routerNamespace(kubeConfig: KubeConfig): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  try {
    const ns = readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim();
    if (ns) return ns;
  } catch {
    // not in a pod
  }
  return kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? 'deis';
}
