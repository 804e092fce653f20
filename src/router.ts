/**
 * @module
 * The composition root: the only place that wires providers, control plane, data plane,
 * admin API, metrics and logs together. Everything else receives its collaborators.
 *
 * Lifecycle: `startRouter()` loads the config (throwing ConfigError on a bad file, which
 * the CLI turns into exit code 2), publishes the first snapshot, then opens the
 * listeners; `close()` stops the provider, drains the data plane and closes the admin API.
 */
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import { AdminServer } from './admin/admin-server.js';
import { loadConfigFile } from './config/load-config.js';
import { parseHostPort } from './config/host-port.js';
import { ControlPlane } from './control/control-plane.js';
import { WeightOverrides } from './control/weight-overrides.js';
import { DataPlane } from './data/data-plane.js';
import { FairwayError } from './errors.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { FileProvider } from './providers/file-provider.js';

export interface RouterOptions {
  readonly configFile: string;
  /** Log level, overriding the file's `log.level`. */
  readonly logLevel?: string;
  /** Where log lines go (default: stdout, asynchronously). */
  readonly logDestination?: DestinationStream;
  /** Collect Node process metrics (default true). */
  readonly processMetrics?: boolean;
}

export interface Router {
  readonly httpAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  readonly controlPlane: ControlPlane;
  readonly dataPlane: DataPlane;
  readonly provider: FileProvider;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Drains and stops everything; in-flight requests get up to `timeoutMs`. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startRouter(options: RouterOptions): Promise<Router> {
  const config = loadConfigFile(options.configFile);
  const logger = createLogger({ level: options.logLevel ?? config.logLevel, destination: options.logDestination });
  const metrics = new Metrics({ processMetrics: options.processMetrics });

  const overrides = new WeightOverrides(config.stateFile);
  try {
    overrides.load();
  } catch (err) {
    logger.error({ code: (err as FairwayError).code, err: (err as Error).message }, 'ignoring the weights state file');
  }
  const controlPlane = new ControlPlane({ overrides, metrics, logger });
  const dataPlane = new DataPlane({ stats: metrics.requests, logger, maxHeaderSize: config.settings.limits.maxHeaderSize });
  const listen = config.settings.listen;
  controlPlane.on('snapshot', (snapshot) => {
    dataPlane.apply(snapshot);
    logger.info({ generation: snapshot.generation, apps: snapshot.apps.length, disabled: snapshot.errors.length }, 'snapshot applied');
    const now = snapshot.settings;
    if (now.listen.http !== listen.http || now.listen.admin !== listen.admin || now.limits.maxHeaderSize !== config.settings.limits.maxHeaderSize) {
      logger.warn('listen addresses and limits.maxHeaderSize take effect at the next restart');
    }
  });

  const provider = new FileProvider(options.configFile, { initial: config, logger });
  await provider.start(controlPlane.sinkFor(provider.name));
  controlPlane.flush();

  const admin = new AdminServer({ controlPlane, metrics, logger, ready: () => dataPlane.table !== undefined });
  const httpAt = parseHostPort(listen.http, true)!;
  const adminAt = parseHostPort(listen.admin, true)!;
  let httpAddress: AddressInfo;
  let adminAddress: AddressInfo;
  try {
    httpAddress = await dataPlane.listen(httpAt.host, httpAt.port);
    adminAddress = await admin.listen(adminAt.host, adminAt.port);
  } catch (err) {
    await provider.stop();
    await Promise.allSettled([dataPlane.close(0), admin.close()]);
    throw err;
  }
  logger.info({ http: addressText(httpAddress), admin: addressText(adminAddress), config: provider.file }, 'fairway is serving');

  let closing: Promise<void> | undefined;
  return {
    httpAddress,
    adminAddress,
    controlPlane,
    dataPlane,
    provider,
    metrics,
    logger,
    close(timeoutMs = 10_000) {
      closing ??= (async () => {
        await provider.stop();
        await Promise.all([dataPlane.close(timeoutMs), admin.close()]);
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
