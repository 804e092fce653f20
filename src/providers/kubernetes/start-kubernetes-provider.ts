/**
 * @module
 * Wires the Kubernetes provider for the composition root (kept apart so the client
 * library is only loaded in Kubernetes mode): loads the kubeconfig, starts the provider
 * without waiting for the API server (the router serves its file config meanwhile and
 * `/readyz` stays false until the first full sync), and makes weight changes for
 * Kubernetes apps write the Services' annotations.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { ControlPlane } from '../../control/control-plane.js';
import type { TcpRoute } from '../../model.js';
import type { Logger } from '../../observability/logger.js';
import { KubernetesProvider } from './kubernetes-provider.js';

export interface StartKubernetesOptions {
  readonly kubeconfig?: string;
  readonly backoff?: { min: number; max: number };
  readonly watchdogMs?: number;
  readonly controlPlane: ControlPlane;
  readonly logger: Logger;
  readonly platformDomain: () => string | undefined;
  readonly tcpRoutes: () => readonly TcpRoute[];
}

export async function startKubernetesProvider(options: StartKubernetesOptions): Promise<KubernetesProvider> {
  const kubeConfig = new KubeConfig();
  if (options.kubeconfig) kubeConfig.loadFromFile(options.kubeconfig);
  else kubeConfig.loadFromCluster();
  const provider = new KubernetesProvider({
    kubeConfig,
    platformDomain: options.platformDomain,
    tcpRoutes: options.tcpRoutes,
    logger: options.logger,
    backoff: options.backoff,
    watchdogMs: options.watchdogMs,
  });
  options.controlPlane.setWeightWriter('kubernetes', (app, weights) => provider.setWeights(app, weights));
  options.logger.info({ server: kubeConfig.getCurrentCluster()?.server }, 'watching the Kubernetes API');
  provider.start(options.controlPlane.sinkFor(provider.name)).then(
    () => options.logger.info('first Kubernetes sync done'),
    (err: Error) => options.logger.error({ err: err.message }, 'Kubernetes provider failed to start'),
  );
  return provider;
}
