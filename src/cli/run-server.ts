/**
 * @module
 * `fairway serve` and `fairway demo` as a process: start, print where it listens, and
 * stop on SIGTERM/SIGINT — the first signal runs the graceful stop (`Router.drain()`, see
 * `src/shutdown-sequence.ts`) and exits 0; a second one exits at once with 128 + the
 * signal's number (130 for SIGINT, 143 for SIGTERM). Rejects with ConfigError for a bad
 * config (exit 2 in the CLI).
 */
import { constants } from 'node:os';
import { loadConfigFile } from '../config/load-config.js';
import { startDemoBackends, type DemoBackends } from '../demo/demo-backends.js';
import { FairwayError } from '../errors.js';
import { addressText, startRouter, type KubernetesOptions } from '../router.js';

export interface RunServerOptions {
  readonly configFile: string;
  readonly logLevel: string | undefined;
  /** Start demo backends for the config's loopback endpoints first. */
  readonly demo: boolean;
  readonly kubernetes?: KubernetesOptions;
  /** Data-plane worker processes (`--workers`); 1: the data plane runs in this process. */
  readonly workers?: number;
}

export async function runServer(options: RunServerOptions): Promise<void> {
  let backends: DemoBackends | undefined;
  if (options.demo) {
    const config = loadConfigFile(options.configFile);
    try {
      backends = await startDemoBackends(config.apps);
    } catch (err) {
      throw new FairwayError('FW_INTERNAL', `cannot start the demo backends: ${(err as Error).message}`);
    }
  }
  let router;
  try {
    router = await startRouter({ configFile: options.configFile, logLevel: options.logLevel, kubernetes: options.kubernetes, workers: options.workers });
  } catch (err) {
    await backends?.close();
    if (err instanceof FairwayError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      throw new FairwayError('FW_INTERNAL', `cannot listen: ${e.message} (another fairway or server on that port? change listen in ${options.configFile})`);
    }
    throw err;
  }
  const http = addressText(router.httpAddress);
  if (backends) {
    const host = router.controlPlane.snapshot?.apps[0]?.domains.find((d) => !d.startsWith('*.')) ?? 'web.localtest.me';
    process.stderr.write(
      `\nFairway demo: backends on ${backends.addresses.join(', ')}\n` +
        `  curl -H 'Host: ${host}' http://${http}/\n` +
        `  npx fairway routes          # hosts, versions, weights\n` +
        `  npx fairway weights web v1=50 v2=50\n` +
        `  curl http://${addressText(router.adminAddress)}/metrics\n` +
        `Edit ${options.configFile} and watch it reload. Ctrl-C stops.\n\n`,
    );
  }
  // The first signal drains (Router.drain: the live `shutdown` settings), then exit 0; a
  // second one exits at once, with the shell's code for death by that signal.
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      router.logger.warn({ signal }, 'stopping at once: a second signal during the drain');
      router.logger.flush();
      process.exit(128 + constants.signals[signal]);
    }
    stopping = true;
    void router
      .drain(signal)
      // The demo backends serve the requests being drained: they stop after them.
      .then(() => backends?.close())
      .then(
        () => process.exit(0),
        (err: Error) => {
          router.logger.error({ code: 'FW_INTERNAL', err: err.message }, 'the stop failed');
          router.logger.flush();
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
