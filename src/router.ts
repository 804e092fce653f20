/**
 * @module
 * The composition root: the only place that wires providers, control plane, data plane,
 * admin API, metrics and logs together. Everything else receives its collaborators.
 *
 * Lifecycle: `startRouter()` loads the config (throwing ConfigError on a bad file, which
 * the CLI turns into exit code 2), publishes the first snapshot, then opens the
 * listeners. `drain()` (SIGTERM/SIGINT) and `close()` run the {@link ShutdownSequence}:
 * the listeners drain first, then cutovers, leases, providers, certificates, the admin
 * API and the log shipper stop, in that order.
 *
 * With `workers` >= 2 (`fairway serve --workers N`), this process is the primary: it runs
 * everything but the HTTP/HTTPS data plane — providers, control plane, certificates and
 * ACME, cutovers, the admin API and metrics, per-app logs and the shipper, TCP passthrough
 * routes, the stop — and a {@link WorkerPool} of N data-plane worker processes takes the
 * data plane's place: it receives every snapshot, certificate index, sticky key and ACME
 * answer, and its workers' counters are folded into this process's metrics. The active
 * health checks run here then, once, their results sent to the workers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import type { DestinationStream } from 'pino';
import { AdminAuth } from './admin/admin-auth.js';
import { AdminServer } from './admin/admin-server.js';
import { readAdminTokenFile } from './admin/admin-token-file.js';
import { loadConfigOffHeap } from './config/load-config-off-heap.js';
import { parseHostPort } from './config/host-port.js';
import { ControlPlane } from './control/control-plane.js';
import { ReadinessGate } from './control/readiness-gate.js';
import { WeightOverrides } from './control/weight-overrides.js';
import { CutoverController } from './cutover/cutover-controller.js';
import type { CutoverStore } from './cutover/cutover-store.js';
import { cutoverFileFor, FileCutoverStore } from './cutover/file-cutover-store.js';
import { forwardToLeader } from './cutover/forward-to-leader.js';
import { localStatsSource, type StatsSource } from './cutover/measurement-window.js';
import { ReplicaStatsSource } from './cutover/replica-stats-source.js';
import { WorkerPool } from './cluster/worker-pool.js';
import { DataPlane } from './data/data-plane.js';
import { StickyKeySource } from './data/sticky-key-source.js';
import { ProxyProtocolGate } from './data/proxy-protocol-gate.js';
import { TcpProxy } from './data/tcp-proxy.js';
import { ShutdownSequence, type ShutdownReport } from './shutdown-sequence.js';
import { FairwayError } from './errors.js';
import { createLogger, type Logger } from './observability/logger.js';
import { AppLogBuffer, DEFAULT_APP_LOG_SETTINGS } from './observability/app-log-buffer.js';
import { EndpointHealthStats } from './observability/endpoint-health-stats.js';
import { LogShipper } from './observability/log-shipper.js';
import { Metrics } from './observability/metrics.js';
import { FileProvider } from './providers/file-provider.js';
import { AcmeChallenges } from './tls/acme-challenges.js';
import { CertificateManager } from './tls/certificate-manager.js';
import { CertificateStore } from './tls/certificate-store.js';
import { FileStorage } from './tls/file-storage.js';
import type { RouterSettings } from './model.js';
import type { KubernetesProvider } from './providers/kubernetes/kubernetes-provider.js';
import type { KubernetesCutovers } from './providers/kubernetes/start-kubernetes-provider.js';

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
  /** Bounds on the CA's ACME RenewalInfo `Retry-After`, ms (default 1 minute – 1 day; tests use less). */
  readonly acmeRenewalInfoPollMs?: { min: number; max: number };
  /** Also route from the Kubernetes API (`fairway serve --kubernetes`). */
  readonly kubernetes?: KubernetesOptions;
  /**
   * Data-plane worker processes (`fairway serve --workers N`): 2 or more run the data plane
   * in that many node:cluster workers (see the module comment); absent or 1: in this
   * process. Only for a process of its own (the CLI): the workers run `dist/`'s modules.
   */
  readonly workers?: number;
}

export interface KubernetesOptions {
  /** A kubeconfig file; without it, the in-cluster service account is used. */
  readonly kubeconfig?: string;
  /** The router's namespace (platform certificate, builder, ACME Secrets and Leases); see `fairway serve --help`. */
  readonly namespace?: string;
  /** Provider tuning (tests make the watchdog and backoff short). */
  readonly backoff?: { min: number; max: number };
  readonly watchdogMs?: number;
  /** The cutover Lease and the replica Leases: durations, renewals, retries, ms (tests make them short). */
  readonly leases?: { readonly durationMs?: number; readonly renewMs?: number; readonly retryMs?: number };
  /** How long the replica driving a cutover waits for another replica's counters, ms (default 2 s). */
  readonly statsTimeoutMs?: number;
}

export interface Router {
  readonly httpAddress: AddressInfo;
  readonly httpsAddress: AddressInfo | undefined;
  readonly adminAddress: AddressInfo;
  /** Where each TCP passthrough route listens, by name. */
  readonly tcpAddresses: ReadonlyMap<string, AddressInfo>;
  readonly certificates: CertificateManager;
  readonly controlPlane: ControlPlane;
  /** The data plane of this process; undefined with workers (it runs in them: see `workers`). */
  readonly dataPlane: DataPlane | undefined;
  /** The data-plane workers, with `workers` >= 2. */
  readonly workers: WorkerPool | undefined;
  /** Cutovers of every app (`fairway cutover`, `/v1/apps/{app}/cutover`). */
  readonly cutovers: CutoverController;
  readonly provider: FileProvider;
  /** The Kubernetes provider, in Kubernetes mode. */
  readonly kubernetes: KubernetesProvider | undefined;
  readonly metrics: Metrics;
  /** Recent access-log entries per app (`GET /v1/apps/{app}/logs`, `fairway logs`). */
  readonly appLogs: AppLogBuffer;
  /** Posts access-log entries to `log.ship.url` (inactive without it). */
  readonly logShipper: LogShipper;
  readonly logger: Logger;
  /**
   * The graceful stop with the live `shutdown` settings (`fairway serve` on SIGTERM/SIGINT):
   * readiness false at once, listeners accepting for `shutdown.delay`, then what is in
   * flight gets `shutdown.drainTimeout`, then the rest stops. `reason` is logged.
   */
  drain(reason?: string): Promise<ShutdownReport>;
  /**
   * The same stop without the delay: listeners stop at once and what is in flight gets up
   * to `timeoutMs` (default: the live `shutdown.drainTimeout`). After `drain()`, or a
   * first `close()`, it resolves when that stop does.
   */
  close(timeoutMs?: number): Promise<ShutdownReport>;
}

/** At shutdown, the longest wait for cutover decisions being recorded, ms. */
const CUTOVER_STOP_MS = 5_000;

export async function startRouter(options: RouterOptions): Promise<Router> {
  // A large file is parsed in a thread: its garbage (100+ MB for 10,000 apps) never grows this heap.
  const loaded = await loadConfigOffHeap(options.configFile);
  // Loaded only in Kubernetes mode: the client library is large.
  const kube = options.kubernetes && (await import('./providers/kubernetes/start-kubernetes-provider.js')).openKubernetes(options.kubernetes);
  const adjustSettings = kube ? kube.adjustSettings : (s: RouterSettings) => s;
  const config = { ...loaded, settings: adjustSettings(loaded.settings) };
  // With workers, they write to the same stdout: lines are written whole (see logger.ts).
  const logger = createLogger({ level: options.logLevel ?? config.logLevel, destination: options.logDestination, sharedStdout: (options.workers ?? 1) >= 2 });
  const metrics = new Metrics({ processMetrics: options.processMetrics });
  // The admin API's token (README "Admin API"): admin.tokenFile, read now (a bad one stops
  // the start) and at each reload (a bad one keeps the previous token); without it, in
  // Kubernetes mode, the Secret every replica shares (admin.tokenSecret). Which of the two
  // is used is decided at start.
  const adminAuth = new AdminAuth();
  const tokenFromSecret = kube !== undefined && config.settings.admin?.tokenFile === undefined;
  if (!tokenFromSecret && config.settings.admin?.tokenFile !== undefined) adminAuth.setToken(readAdminTokenFile(config.settings.admin.tokenFile));
  const reloadAdminToken = (s: RouterSettings) => {
    const file = s.admin?.tokenFile;
    if (kube && (file === undefined) !== tokenFromSecret) {
      logger.warn('in Kubernetes mode, switching between admin.tokenFile and the admin.tokenSecret Secret takes effect at the next restart');
      return;
    }
    if (tokenFromSecret) return;
    try {
      adminAuth.setToken(file === undefined ? undefined : readAdminTokenFile(file));
    } catch (err) {
      logger.error({ code: (err as FairwayError).code, err: (err as Error).message }, 'admin.tokenFile cannot be used; the admin API keeps the previous token');
    }
  };

  const overrides = new WeightOverrides(config.stateFile);
  try {
    overrides.load();
  } catch (err) {
    logger.error({ code: (err as FairwayError).code, err: (err as Error).message }, 'ignoring the weights state file');
  }
  // Set below with `workers` >= 2; the control plane and the certificate store tell it what changes.
  let pool: WorkerPool | undefined;
  const controlPlane = new ControlPlane({ overrides, metrics, logger, adjustSettings, applied: (snapshot) => pool?.applied(snapshot) ?? Promise.resolve() });
  const store = new CertificateStore(randomBytes(48), (entries, fallback) => pool?.certificates(entries, fallback));
  const challenges = new AcmeChallenges();
  // Access-log entries also go to the per-app logs and, with `log.ship`, to a log service; both follow reloads.
  const appLogs = new AppLogBuffer(config.settings.requestLogs?.perApp ?? DEFAULT_APP_LOG_SETTINGS);
  const logShipper = new LogShipper({ logger: logger.child({ component: 'log-shipper' }) });
  const applyRequestLogs = (s: RouterSettings) => {
    appLogs.configure(s.requestLogs?.perApp ?? DEFAULT_APP_LOG_SETTINGS);
    logShipper.configure(s.requestLogs?.ship);
  };
  applyRequestLogs(config.settings);
  metrics.addSource(() => appLogs.renderMetrics() + logShipper.renderMetrics());
  const accessLogSinks = [appLogs, logShipper];
  const workers = options.workers ?? 1;
  if (workers >= 2) {
    pool = new WorkerPool({
      size: workers, logger: logger.child({ component: 'workers' }), healthCheckLogger: logger.child({ component: 'endpoint-health' }), logLevel: options.logLevel ?? config.logLevel ?? 'info', stats: metrics.requests,
      endpointHealth: new EndpointHealthStats(), ticketKeys: store.ticketKeys, challenges, accessLogSinks,
    });
    challenges.mirror(pool);
    // Readers that must count every request answered so far ask the workers first.
    const workerPool = pool;
    metrics.addRefresh(() => workerPool.collect());
  }
  const dataPlane = pool ? undefined : new DataPlane({
    stats: metrics.requests, logger, maxHeaderSize: config.settings.limits.maxHeaderSize, certificates: store, challenges, accessLogSinks,
  });
  // With workers: their endpoint-health counters summed (refreshed with the request counters) and their processes.
  metrics.addSource(() => (dataPlane ? dataPlane.endpointHealth.renderMetrics() : pool!.renderMetrics()));
  /** Where snapshots, sticky keys and the stop go: this process's data plane, or the workers. */
  const front = (dataPlane ?? pool)!;
  // Kubernetes mode: Secrets and Leases shared by every replica; else `tls.storage`.
  const openStorage = kube ? () => kube.storage() : (dir: string) => new FileStorage(dir);
  // The sticky-cookie key: `sticky.secret`/`secretFile`, else one kept in that storage.
  const stickyKeys = new StickyKeySource({ storage: openStorage, onKey: (key) => front.setStickyKey(key), logger: logger.child({ component: 'sticky' }) });
  const certificates = new CertificateManager({
    store,
    challenges,
    storage: openStorage,
    logger: logger.child({ component: 'tls' }),
    metrics,
    // Workers re-read it when the certificate index they receive has a new default.
    onDefaultChange: () => dataPlane?.refreshDefaultCertificate(),
    acmePollMs: options.acmePollMs,
    acmeRenewalInfoPollMs: options.acmeRenewalInfoPollMs,
  });
  const listen = config.settings.listen;
  let certificatesStarted = false;
  const tcpProxies = new Map(
    config.settings.tcp.map((route) => {
      const tcpLogger = logger.child({ component: 'tcp' });
      const gate = new ProxyProtocolGate(`tcp/${route.name}`, metrics.requests.forProxyProtocol(`tcp/${route.name}`), tcpLogger);
      return [route.name, new TcpProxy(route, metrics.requests.forTcp(route.name), tcpLogger, gate)];
    }),
  );
  let kubernetes: KubernetesProvider | undefined;
  let kubernetesInputs = JSON.stringify([config.settings.platformDomain, config.settings.kubernetes?.domainPolicy]);
  controlPlane.on('snapshot', (snapshot) => {
    applyRequestLogs(snapshot.settings);
    reloadAdminToken(snapshot.settings);
    front.apply(snapshot);
    pool?.setSinksActive(accessLogSinks.some((sink) => sink.active));
    void stickyKeys.apply(snapshot);
    for (const route of snapshot.settings.tcp) tcpProxies.get(route.name)?.update(route, snapshot.settings.proxyProtocol);
    if (certificatesStarted) certificates.apply(snapshot).catch((err: Error) => logger.error({ err: err.message }, 'certificate update failed'));
    const applied = { generation: snapshot.generation, apps: snapshot.apps.length, disabled: snapshot.errors.length };
    if (pool) void pool.applied(snapshot).then(() => logger.info({ ...applied, workers: pool!.pids.length }, 'snapshot applied'));
    else logger.info(applied, 'snapshot applied');
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
  // This process among the router's replicas: the id of this start tells the replica
  // driving a cutover that a restarted one's counters began again from zero.
  const replica = { name: kube ? kube.identity : hostname(), start: randomUUID(), startedAt: Date.now() };
  const cutoverLogger = logger.child({ component: 'cutover' });
  // File mode: cutovers persist next to the weights state file; running ones resume here,
  // before traffic is served. Kubernetes mode: on the Services, driven by the replica
  // holding the cutover Lease (which resumes them) and judged on every replica's traffic.
  const kubeCutovers: KubernetesCutovers | undefined = kube && kubernetes ? kube.cutovers(kubernetes, cutoverLogger) : undefined;
  let cutoverStore: CutoverStore = new FileCutoverStore(cutoverFileFor(config.stateFile));
  let stats: StatsSource = localStatsSource(metrics.requests, replica);
  if (kubeCutovers) {
    cutoverStore = kubeCutovers.store;
    stats = new ReplicaStatsSource({ self: replica, stats: metrics.requests, directory: kubeCutovers.replicas, timeoutMs: options.kubernetes?.statsTimeoutMs, authorization: () => adminAuth.authorization() });
  }
  if (pool) {
    // A window judges every request the workers answered so far.
    const counted = stats;
    stats = { read: async (app, versions) => (await metrics.refresh(), counted.read(app, versions)) };
  }
  const cutovers = new CutoverController({
    control: controlPlane,
    stats,
    store: cutoverStore,
    metrics,
    logger: cutoverLogger,
    ...(kubeCutovers ? { leadership: kubeCutovers.leadership, forward: (url: string, path: string, body?: unknown) => forwardToLeader(url, path, body, { from: replica.name, authorization: adminAuth.authorization() }) } : {}),
  });
  await cutovers.start();
  // Cookies issued from the first request on are signed with the shared key.
  await stickyKeys.apply(first);

  // Kubernetes mode: the replicas' shared admin token, read (or created) before the admin API opens.
  const adminSecret = tokenFromSecret
    ? new (await import('./admin/kubernetes-admin-token.js')).KubernetesAdminToken({
        kubeConfig: kube.kubeConfig,
        namespace: kube.namespace,
        name: config.settings.admin?.tokenSecret ?? 'fairway-admin-token',
        logger: logger.child({ component: 'admin' }),
        onToken: (token) => adminAuth.setToken(token),
      })
    : undefined;
  await adminSecret?.start();

  // The graceful stop: the listeners drain first; the rest stops after them, the admin API (probes, metrics) last but the log shipper.
  const shutdown = new ShutdownSequence({
    logger,
    listeners: [front, ...tcpProxies.values()],
    stopRest: async () => {
      // Decisions being taken are recorded before the cutover Lease is given up to another replica.
      await Promise.race([cutovers.close(), new Promise((resolve) => setTimeout(resolve, CUTOVER_STOP_MS).unref())]);
      await Promise.all([kubeCutovers?.leadership.stop(), kubeCutovers?.replicas.stop()]);
      await Promise.all([provider.stop(), kubernetes?.stop()]);
      stickyKeys.stop();
      adminSecret?.stop();
      await Promise.all([certificates.stop(), admin.close()]);
      // After the data plane: the lines of the last requests and tunnels are in the queue.
      await logShipper.close();
    },
  });
  const liveShutdown = () => (controlPlane.snapshot?.settings ?? config.settings).shutdown;

  // `/readyz`: ready once the snapshot of every provider's first full state is live, and for good.
  const readiness = new ReadinessGate({
    tableLive: () => (dataPlane ? dataPlane.table !== undefined : pool!.ready),
    controlPlane,
    synced: kubernetes?.whenSynced(),
  });
  controlPlane.on('snapshot', () => readiness.check());
  const admin = new AdminServer({
    controlPlane,
    cutovers,
    certificates,
    metrics,
    logger,
    auth: adminAuth,
    ready: () => readiness.check(),
    draining: () => shutdown.draining,
    replica: { name: replica.name, start: replica.start, startedAt: new Date(replica.startedAt).toISOString() },
    appLogs,
    endpointStates: dataPlane
      ? async (apps) => new Map(apps.map((app) => [app, dataPlane.endpointHealth.endpointStates(app)]))
      : (apps) => pool!.endpointStates(apps),
  });
  const httpAt = parseHostPort(listen.http, true)!;
  const adminAt = parseHostPort(listen.admin, true)!;
  const httpsAt = listen.https ? parseHostPort(listen.https, true)! : undefined;
  const tcpAddresses = new Map<string, AddressInfo>();
  let httpAddress: AddressInfo;
  let httpsAddress: AddressInfo | undefined;
  let adminAddress: AddressInfo;
  try {
    if (dataPlane) {
      httpAddress = await dataPlane.listen(httpAt.host, httpAt.port);
      if (httpsAt) httpsAddress = await dataPlane.listenHttps(httpsAt.host, httpsAt.port, config.settings.limits.maxHeaderSize);
    } else {
      ({ http: httpAddress, https: httpsAddress } = await pool!.listen(httpAt, httpsAt, config.settings.limits.maxHeaderSize));
    }
    adminAddress = await admin.listen(adminAt.host, adminAt.port);
    for (const route of config.settings.tcp) {
      const at = parseHostPort(route.listen, true)!;
      tcpAddresses.set(route.name, await tcpProxies.get(route.name)!.listen(at.host, at.port));
    }
  } catch (err) {
    await cutovers.close();
    await Promise.all([provider.stop(), kubernetes?.stop()]);
    stickyKeys.stop();
    adminSecret?.stop();
    await Promise.allSettled([front.close(0), admin.close(), certificates.stop(), logShipper.close(0), ...[...tcpProxies.values()].map((p) => p.close(0))]);
    throw err;
  }
  if (kubeCutovers) {
    // The other replicas read this one's counters and forward cutover calls to it here.
    const adminUrl = advertisedAdminUrl(adminAddress);
    if (process.env.POD_IP && isLoopback(adminAddress.address)) cutoverLogger.warn({ admin: addressText(adminAddress), advertised: adminUrl }, 'the admin API listens on loopback: other replicas cannot read this replica\'s counters or forward cutover calls to it (set listen.admin to 0.0.0.0:9090 in a cluster)');
    kubeCutovers.replicas.start(adminUrl);
    kubeCutovers.leadership.start(adminUrl);
  }
  logger.info({ http: addressText(httpAddress), https: httpsAddress && addressText(httpsAddress), admin: addressText(adminAddress), tcp: Object.fromEntries([...tcpAddresses].map(([n, a]) => [n, addressText(a)])), config: provider.file }, 'fairway is serving');

  return {
    httpAddress,
    httpsAddress,
    adminAddress,
    tcpAddresses,
    certificates,
    controlPlane,
    dataPlane,
    workers: pool,
    cutovers,
    provider,
    kubernetes,
    metrics,
    appLogs,
    logShipper,
    logger,
    drain(reason = 'drain') {
      return shutdown.run(liveShutdown(), reason);
    },
    close(timeoutMs) {
      return shutdown.run({ delay: 0, drainTimeout: timeoutMs ?? liveShutdown().drainTimeout }, 'close');
    },
  };
}

export function addressText(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/**
 * Where the other replicas reach this one's admin API: `$POD_IP` (the manifests set it
 * from the downward API) and the admin port; else the address the admin API is bound to,
 * or for a wildcard one, the first non-internal IPv4 address of this host.
 */
function advertisedAdminUrl(a: AddressInfo): string {
  let host = process.env.POD_IP || a.address;
  if (!process.env.POD_IP && (a.address === '0.0.0.0' || a.address === '::')) {
    host = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1';
  }
  return `http://${host.includes(':') ? `[${host}]` : host}:${a.port}`;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === '::ffff:127.0.0.1';
}
