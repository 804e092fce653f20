/**
 * @module
 * The composition root: the only place that wires providers, control plane, data plane,
 * admin API, metrics and logs together. Everything else receives its collaborators.
 *
 * Lifecycle: `startRouter()` loads the config (throwing ConfigError on a bad file, which
 * the CLI turns into exit code 2), publishes the first snapshot, then opens the
 * listeners; `close()` stops the provider, drains the data plane and closes the admin API.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import { AdminServer } from './admin/admin-server.js';
import { loadConfigFile } from './config/load-config.js';
import { parseHostPort } from './config/host-port.js';
import { ControlPlane } from './control/control-plane.js';
import { WeightOverrides } from './control/weight-overrides.js';
import { CutoverController } from './cutover/cutover-controller.js';
import { cutoverFileFor, FileCutoverStore } from './cutover/file-cutover-store.js';
import { localStatsSource } from './cutover/measurement-window.js';
import { DataPlane } from './data/data-plane.js';
import { StickyKeySource } from './data/sticky-key-source.js';
import { TcpProxy } from './data/tcp-proxy.js';
import { FairwayError } from './errors.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { FileProvider } from './providers/file-provider.js';
import { AcmeChallenges } from './tls/acme-challenges.js';
import { CertificateManager } from './tls/certificate-manager.js';
import { CertificateStore } from './tls/certificate-store.js';
import { FileStorage } from './tls/file-storage.js';
import type { RouterSettings } from './model.js';
import type { KubernetesProvider } from './providers/kubernetes/kubernetes-provider.js';

export interface RouterOptions {
  readonly configFile: string;
  /** Log level, overriding the file's `log.level`. */
  readonly logLevel?: string;
  /** Where log lines go (default: stdout, asynchronously). */
  readonly logDestination?: DestinationStream;
  /** Collect Node process metrics (default true). */
  readonly processMetrics?: boolean;
  /** acme-client polling while an order is pending, ms (default 1–10 s; tests use less). */
  readonly acmePollMs?: { min: number; max: number };
  /** Also route from the Kubernetes API (`fairway serve --kubernetes`). */
  readonly kubernetes?: KubernetesOptions;
}

export interface KubernetesOptions {
  /** A kubeconfig file; without it, the in-cluster service account is used. */
  readonly kubeconfig?: string;
  /** The router's namespace (platform certificate, builder, ACME Secrets and Leases); see `fairway serve --help`. */
  readonly namespace?: string;
  /** Provider tuning (tests make the watchdog and backoff short). */
  readonly backoff?: { min: number; max: number };
  readonly watchdogMs?: number;
}

export interface Router {
  readonly httpAddress: AddressInfo;
  readonly httpsAddress: AddressInfo | undefined;
  readonly adminAddress: AddressInfo;
  /** Where each TCP passthrough route listens, by name. */
  readonly tcpAddresses: ReadonlyMap<string, AddressInfo>;
  readonly certificates: CertificateManager;
  readonly controlPlane: ControlPlane;
  readonly dataPlane: DataPlane;
  /** Cutovers of every app (`fairway cutover`, `/v1/apps/{app}/cutover`). */
  readonly cutovers: CutoverController;
  readonly provider: FileProvider;
  /** The Kubernetes provider, in Kubernetes mode. */
  readonly kubernetes: KubernetesProvider | undefined;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Drains and stops everything; in-flight requests get up to `timeoutMs`. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startRouter(options: RouterOptions): Promise<Router> {
  const loaded = loadConfigFile(options.configFile);
  // Loaded only in Kubernetes mode: the client library is large.
  const kube = options.kubernetes && (await import('./providers/kubernetes/start-kubernetes-provider.js')).openKubernetes(options.kubernetes);
  const adjustSettings = kube ? kube.adjustSettings : (s: RouterSettings) => s;
  const config = { ...loaded, settings: adjustSettings(loaded.settings) };
  const logger = createLogger({ level: options.logLevel ?? config.logLevel, destination: options.logDestination });
  const metrics = new Metrics({ processMetrics: options.processMetrics });

  const overrides = new WeightOverrides(config.stateFile);
  try {
    overrides.load();
  } catch (err) {
    logger.error({ code: (err as FairwayError).code, err: (err as Error).message }, 'ignoring the weights state file');
  }
  const controlPlane = new ControlPlane({ overrides, metrics, logger, adjustSettings });
  const store = new CertificateStore(randomBytes(48));
  const challenges = new AcmeChallenges();
  const dataPlane = new DataPlane({ stats: metrics.requests, logger, maxHeaderSize: config.settings.limits.maxHeaderSize, certificates: store, challenges });
  // Kubernetes mode: Secrets and Leases shared by every replica; else `tls.storage`.
  const openStorage = kube ? () => kube.storage() : (dir: string) => new FileStorage(dir);
  // The sticky-cookie key: `sticky.secret`/`secretFile`, else one kept in that storage.
  const stickyKeys = new StickyKeySource({ storage: openStorage, onKey: (key) => dataPlane.setStickyKey(key), logger: logger.child({ component: 'sticky' }) });
  const certificates = new CertificateManager({
    store,
    challenges,
    storage: openStorage,
    logger: logger.child({ component: 'tls' }),
    metrics,
    onDefaultChange: () => dataPlane.refreshDefaultCertificate(),
    acmePollMs: options.acmePollMs,
  });
  const listen = config.settings.listen;
  let certificatesStarted = false;
  const tcpProxies = new Map(
    config.settings.tcp.map((route) => [route.name, new TcpProxy(route, metrics.requests.forTcp(route.name), logger.child({ component: 'tcp' }))]),
  );
  let kubernetes: KubernetesProvider | undefined;
  let kubernetesInputs = JSON.stringify([config.settings.platformDomain, config.settings.kubernetes?.domainPolicy]);
  controlPlane.on('snapshot', (snapshot) => {
    dataPlane.apply(snapshot);
    void stickyKeys.apply(snapshot);
    for (const route of snapshot.settings.tcp) tcpProxies.get(route.name)?.update(route);
    if (certificatesStarted) certificates.apply(snapshot).catch((err: Error) => logger.error({ err: err.message }, 'certificate update failed'));
    logger.info({ generation: snapshot.generation, apps: snapshot.apps.length, disabled: snapshot.errors.length }, 'snapshot applied');
    const now = snapshot.settings;
    // The Kubernetes model depends on these router-wide settings: translate again when they change.
    const translatedWith = JSON.stringify([now.platformDomain, now.kubernetes?.domainPolicy]);
    if (translatedWith !== kubernetesInputs) {
      kubernetesInputs = translatedWith;
      kubernetes?.refresh();
    }
    const tcpListen = (s: typeof now) => JSON.stringify(s.tcp.map((r) => [r.name, r.listen]));
    if (now.listen.http !== listen.http || now.listen.admin !== listen.admin || now.listen.https !== listen.https || now.limits.maxHeaderSize !== config.settings.limits.maxHeaderSize || tcpListen(now) !== tcpListen(config.settings)) {
      logger.warn('listen addresses (tcp routes included) and limits.maxHeaderSize take effect at the next restart');
    }
  });

  const provider = new FileProvider(options.configFile, { initial: config, logger });
  await provider.start(controlPlane.sinkFor(provider.name));
  controlPlane.flush();
  if (kube) {
    kubernetes = await kube.start({
      controlPlane,
      logger: logger.child({ component: 'kubernetes' }),
      platformDomain: () => controlPlane.snapshot?.settings.platformDomain ?? config.settings.platformDomain,
      domainPolicy: () => (controlPlane.snapshot?.settings ?? config.settings).kubernetes?.domainPolicy,
      tcpRoutes: () => controlPlane.snapshot?.settings.tcp ?? config.settings.tcp,
      onStorageChange: () => certificates.refreshStored(),
    });
  }
  const first = controlPlane.flush()!;
  await certificates.start(first);
  certificatesStarted = true;
  // Cutovers persist next to the weights state file; running ones resume here, before traffic is served.
  const cutovers = new CutoverController({
    control: controlPlane,
    stats: localStatsSource(metrics.requests),
    store: new FileCutoverStore(cutoverFileFor(config.stateFile)),
    metrics,
    logger: logger.child({ component: 'cutover' }),
  });
  await cutovers.start();
  // Cookies issued from the first request on are signed with the shared key.
  await stickyKeys.apply(first);

  // Ready once the first snapshot holding every provider's first full state is live; it stays so.
  let ready = false;
  const admin = new AdminServer({ controlPlane, cutovers, certificates, metrics, logger, ready: () => (ready ||= dataPlane.table !== undefined && (kubernetes?.synced ?? true) && !controlPlane.pending) });
  const httpAt = parseHostPort(listen.http, true)!;
  const adminAt = parseHostPort(listen.admin, true)!;
  const httpsAt = listen.https ? parseHostPort(listen.https, true)! : undefined;
  const tcpAddresses = new Map<string, AddressInfo>();
  let httpAddress: AddressInfo;
  let httpsAddress: AddressInfo | undefined;
  let adminAddress: AddressInfo;
  try {
    httpAddress = await dataPlane.listen(httpAt.host, httpAt.port);
    if (httpsAt) httpsAddress = await dataPlane.listenHttps(httpsAt.host, httpsAt.port, config.settings.limits.maxHeaderSize);
    adminAddress = await admin.listen(adminAt.host, adminAt.port);
    for (const route of config.settings.tcp) {
      const at = parseHostPort(route.listen, true)!;
      tcpAddresses.set(route.name, await tcpProxies.get(route.name)!.listen(at.host, at.port));
    }
  } catch (err) {
    cutovers.close();
    await Promise.all([provider.stop(), kubernetes?.stop()]);
    stickyKeys.stop();
    await Promise.allSettled([dataPlane.close(0), admin.close(), certificates.stop(), ...[...tcpProxies.values()].map((p) => p.close(0))]);
    throw err;
  }
  logger.info({ http: addressText(httpAddress), https: httpsAddress && addressText(httpsAddress), admin: addressText(adminAddress), tcp: Object.fromEntries([...tcpAddresses].map(([n, a]) => [n, addressText(a)])), config: provider.file }, 'fairway is serving');

  let closing: Promise<void> | undefined;
  return {
    httpAddress,
    httpsAddress,
    adminAddress,
    tcpAddresses,
    certificates,
    controlPlane,
    dataPlane,
    cutovers,
    provider,
    kubernetes,
    metrics,
    logger,
    close(timeoutMs = 10_000) {
      closing ??= (async () => {
        cutovers.close();
        await Promise.all([provider.stop(), kubernetes?.stop()]);
        stickyKeys.stop();
        await Promise.all([dataPlane.close(timeoutMs), admin.close(), certificates.stop(), ...[...tcpProxies.values()].map((p) => p.close(timeoutMs))]);
        logger.info('fairway stopped');
        await new Promise<void>((resolve) => logger.flush(() => resolve()));
      })();
      return closing;
    },
  };
}

export function addressText(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
