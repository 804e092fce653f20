#!/usr/bin/env node
/**
 * @module
 * The `fairway` command. Exit codes (stable, documented in README): 0 ok, 1 failed
 * (e.g. the router or admin API could not do it), 2 bad usage or bad config.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { MAX_WORKERS, parseWorkerCount } from './cluster/worker-count.js';
import type { RouteRow, UnroutedRow } from './admin/admin-server.js';
import { formatCertificates } from './cli/certificates-table.js';
import { formatRoutes } from './cli/routes-table.js';
import type { CertificateRow } from './tls/certificate-manager.js';
import type { AdminTarget } from './cli/admin-client.js';
import { FairwayError } from './errors.js';

// Commands load what they need on use, so `fairway validate` or `--help` start fast.
const adminRequest = async (...args: Parameters<typeof import('./cli/admin-client.js').adminRequest>) =>
  (await import('./cli/admin-client.js')).adminRequest(...args);
const runServer = async (...args: Parameters<typeof import('./cli/run-server.js').runServer>) =>
  (await import('./cli/run-server.js')).runServer(...args);
const doctor = async (...args: Parameters<typeof import('./cli/doctor.js').doctorCommand>) =>
  (await import('./cli/doctor.js')).doctorCommand(...args);
const cutover = async (...args: Parameters<typeof import('./cli/cutover-command.js').cutoverCommand>) =>
  (await import('./cli/cutover-command.js')).cutoverCommand(...args);
const rollback = async (...args: Parameters<typeof import('./cli/cutover-command.js').rollbackCommand>) =>
  (await import('./cli/cutover-command.js')).rollbackCommand(...args);
const logs = async (...args: Parameters<typeof import('./cli/logs-command.js').logsCommand>) =>
  (await import('./cli/logs-command.js')).logsCommand(...args);

const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** The embedded default config, shipped in the package's `config/`. */
export const DEFAULT_CONFIG = fileURLToPath(new URL('../config/fairway.yaml', import.meta.url));

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** `--workers N|auto` of `serve` and `demo` (README "Workers"). */
function workersOption(): Option {
  return new Option('--workers <n>', 'data-plane worker processes sharing the listeners: a number, or auto (the CPUs this process may use); 1 runs everything in one process')
    .env('FAIRWAY_WORKERS')
    .default('auto')
    .argParser((value: string) => {
      if (parseWorkerCount(value) === undefined) throw new InvalidArgumentError(`expected auto or a whole number from 1 to ${MAX_WORKERS}`);
      return value;
    });
}

function adminOption(): Option {
  return new Option('--admin <url>', 'admin API of the router').env('FAIRWAY_ADMIN').default(DEFAULT_ADMIN_URL);
}

/** Read by `adminTarget` (not commander's env), so the command line wins over FAIRWAY_ADMIN_TOKEN. */
function tokenFileOption(): Option {
  return new Option('--token-file <file>', 'file holding the admin token, needed from other machines than the router\'s [env: the token in FAIRWAY_ADMIN_TOKEN, or its file in FAIRWAY_ADMIN_TOKEN_FILE]');
}

/** The admin API to call and the token to send it (see cli/admin-client.ts); a token file that cannot be read is bad usage. */
async function adminTarget(url: string, tokenFile: string | undefined): Promise<AdminTarget> {
  const { resolveAdminToken } = await import('./cli/admin-client.js');
  try {
    return { url, token: resolveAdminToken({ tokenFileOption: tokenFile }) };
  } catch (err) {
    process.stderr.write(`fairway: ${(err as Error).message}\n`);
    process.exit(EXIT.usage);
  }
}

/** Codes that mean the user asked for something that does not exist or is malformed. */
const USAGE_CODES = new Set(['FW_ADMIN_BAD_REQUEST', 'FW_APP_NOT_FOUND', 'FW_VERSION_NOT_FOUND', 'FW_CERT_NOT_FOUND', 'FW_CUTOVER_INVALID', 'FW_CUTOVER_NOT_FOUND']);

function fail(err: unknown): never {
  if (err instanceof FairwayError && err.code.startsWith('FW_CONFIG_')) {
    process.stderr.write(`${err.message}\n`);
    process.exit(EXIT.usage);
  }
  if (err instanceof FairwayError) {
    process.stderr.write(`fairway: ${err.message} [${err.code}]\n`);
    process.exit(USAGE_CODES.has(err.code) ? EXIT.usage : EXIT.failed);
  }
  throw err;
}

export function buildProgram(): Command {
  const program = new Command('fairway')
    .description('Edge router and traffic manager: routes hosts to weighted app versions.')
    .version(pkg.version)
    // `--version` after a command is that command's (`fairway logs web --version v2`).
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();

  program
    .command('serve')
    .description('run the router from a config file (watched: valid changes apply live)')
    .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
    .option('--log-level <level>', "log level, overriding the file's log.level")
    .option('--kubernetes', 'also route the routable Services of the Kubernetes cluster (in-cluster credentials unless --kubeconfig)')
    .option('--kubeconfig <file>', 'kubeconfig for --kubernetes (implies --kubernetes)')
    .addOption(new Option('--namespace <ns>', "the router's namespace in Kubernetes mode (platform certificate, builder, ACME Secrets) [default: $POD_NAMESPACE, the service account's, the kubeconfig context's, else deis]").env('POD_NAMESPACE'))
    .addOption(workersOption())
    .action(async (opts: { config: string; logLevel?: string; kubernetes?: boolean; kubeconfig?: string; namespace?: string; workers: string }) => {
      const kubernetes = opts.kubernetes || opts.kubeconfig ? { kubeconfig: opts.kubeconfig, namespace: opts.namespace } : undefined;
      await runServer({ configFile: opts.config, logLevel: opts.logLevel, demo: false, kubernetes, workers: parseWorkerCount(opts.workers)! }).catch(fail);
    });

  program
    .command('demo')
    .description('start demo backends for the loopback endpoints of the config, then serve it (what `npm start` runs)')
    .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
    .option('--log-level <level>', "log level, overriding the file's log.level")
    .addOption(workersOption())
    .action(async (opts: { config: string; logLevel?: string; workers: string }) => {
      await runServer({ configFile: opts.config, logLevel: opts.logLevel, demo: true, workers: parseWorkerCount(opts.workers)! }).catch(fail);
    });

  program
    .command('validate')
    .description('check a config file; prints every problem with file:line:column and key path')
    .argument('[file]', 'config file', DEFAULT_CONFIG)
    .action(async (file: string) => {
      try {
        const { loadConfigFile } = await import('./config/load-config.js');
        const config = loadConfigFile(file);
        const domains = config.apps.reduce((n, a) => n + a.domains.length, 0);
        process.stdout.write(`${file}: ok (${config.apps.length} app${config.apps.length === 1 ? '' : 's'}, ${domains} domain${domains === 1 ? '' : 's'})\n`);
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('routes')
    .description('show hosts → app → versions with weights and endpoint counts, from a running router')
    .addOption(adminOption())
    .addOption(tokenFileOption())
    .option('--json', 'print the admin API answer as JSON')
    .action(async (opts: { admin: string; tokenFile?: string; json?: boolean }) => {
      const admin = await adminTarget(opts.admin, opts.tokenFile);
      try {
        const answer = (await adminRequest(admin, 'GET', 'v1/routes')) as { routes: RouteRow[]; unrouted: UnroutedRow[] };
        process.stdout.write(opts.json ? JSON.stringify(answer, null, 2) + '\n' : formatRoutes(answer.routes, answer.unrouted));
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('weights')
    .description('show the weights of an app, or set them: fairway weights web v1=90 v2=10')
    .argument('<app>', 'app name')
    .argument('[version=weight...]', 'new weights; versions not named keep theirs')
    .addOption(adminOption())
    .addOption(tokenFileOption())
    .option('--json', 'print the result as JSON')
    .action(async (app: string, pairs: string[], opts: { admin: string; tokenFile?: string; json?: boolean }) => {
      const weights: Record<string, number> = {};
      for (const pair of pairs) {
        const m = /^([^=\s]+)=(\d+(?:\.\d+)?)$/.exec(pair);
        if (!m) {
          process.stderr.write(`fairway: "${pair}" is not version=weight (weight a number >= 0), e.g. v1=90\n`);
          process.exit(EXIT.usage);
        }
        weights[m[1]!] = Number(m[2]);
      }
      const admin = await adminTarget(opts.admin, opts.tokenFile);
      try {
        const path = `v1/apps/${encodeURIComponent(app)}/weights`;
        const result = pairs.length === 0
          ? ((await adminRequest(admin, 'GET', path)) as Record<string, number>)
          : Object.fromEntries(((await adminRequest(admin, 'PUT', path, weights)) as { versions: { name: string; weight: number }[] }).versions.map((v) => [v.name, v.weight]));
        process.stdout.write(opts.json ? JSON.stringify({ app, weights: result }, null, 2) + '\n' : `${app}: ${Object.entries(result).map(([v, w]) => `${v}=${w}`).join(' ')}\n`);
      } catch (err) {
        fail(err);
      }
    });

  const certs = program
    .command('certs')
    .description('show the certificate of every host: source, issuer, expiry, next renewal, last error')
    .addOption(adminOption())
    .addOption(tokenFileOption())
    .option('--json', 'print the admin API answer as JSON')
    .action(async (opts: { admin: string; tokenFile?: string; json?: boolean }) => {
      const admin = await adminTarget(opts.admin, opts.tokenFile);
      try {
        const answer = (await adminRequest(admin, 'GET', 'v1/certificates')) as { certificates: CertificateRow[] };
        process.stdout.write(opts.json ? JSON.stringify(answer, null, 2) + '\n' : formatCertificates(answer.certificates));
      } catch (err) {
        fail(err);
      }
    });
  certs
    .command('renew')
    .description('order a new certificate for HOST over ACME now (exit 1 if the order failed; the current certificate keeps serving)')
    .argument('<host>', 'host name')
    .addOption(adminOption())
    .addOption(tokenFileOption())
    .option('--json', 'print the admin API answer as JSON')
    .action(async (host: string, _opts: unknown, cmd: Command) => {
      // --admin, --token-file and --json may stand before (`certs --admin URL renew HOST`) or after `renew HOST`.
      const parent = cmd.parent!.opts<{ admin: string; tokenFile?: string; json?: boolean }>();
      const local = cmd.opts<{ admin: string; tokenFile?: string; json?: boolean }>();
      const opts = { admin: cmd.getOptionValueSource('admin') === 'default' ? parent.admin : local.admin, json: local.json ?? parent.json };
      const admin = await adminTarget(opts.admin, local.tokenFile ?? parent.tokenFile);
      try {
        const row = (await adminRequest(admin, 'POST', `v1/certificates/${encodeURIComponent(host)}/renew`)) as CertificateRow;
        process.stdout.write(opts.json ? JSON.stringify(row, null, 2) + '\n' : formatCertificates([row]));
        if (row.lastError) {
          process.stderr.write(`fairway: renewal of ${host} failed: ${row.lastError.message} [${row.lastError.code}]\n`);
          process.exit(EXIT.failed);
        }
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('cutover')
    .description('move APP\'s traffic from one version to another in steps, judging the new version on error rate and p99 and rolling back by itself on a breach; or show/pause/resume/promote/abort the running one. With --wait, exit 0 completed, 3 rolled back, 4 aborted, 1 failed')
    .argument('<app>', 'app name')
    .option('--to <version>', 'the new version (starts a cutover)')
    .option('--from <version>', 'the old version [default: the other version with the highest weight]')
    .option('--steps <list>', 'percent of the two versions\' traffic on the new one at each step; --steps 100 is blue-green [default: 5,25,50,100]')
    .option('--hold <duration>', 'how long each step is held and judged [default: 30s]')
    .option('--max-error-rate <rate>', 'highest error rate (5xx and failed upstream attempts) of the new version above the old one\'s, e.g. 1% or 0.01 [default: 1%]')
    .option('--max-p99 <duration>', 'highest p99 latency of the new version (unless the old one is as slow), or none [default: 500ms]')
    .option('--min-requests <n>', 'requests the new version must serve in a step before it is judged [default: 50]')
    .addOption(new Option('--on-no-traffic <what>', 'when a hold ends with fewer than --min-requests: keep holding, or go on unjudged [default: hold]').choices(['hold', 'proceed']))
    .addOption(new Option('--baseline <which>', 'judge against the old version in the same window too (old), or the thresholds only (none) [default: old]').choices(['old', 'none']))
    .option('--status', 'show the app\'s current or last cutover')
    .option('--pause', 'stop advancing (the guardrails stay on)')
    .option('--resume', 'go on; the current step\'s hold starts over')
    .option('--promote', 'jump to 100%: all traffic on the new version, completed')
    .option('--abort', 'stop and put back the weights from before the cutover')
    .option('--wait', 'follow the cutover until it ends (live line on a terminal); exit 0 completed, 3 rolled back, 4 aborted, 1 failed')
    .option('--json', 'print JSON (with --wait: NDJSON decision events and a result line)')
    .addOption(adminOption())
    .addOption(tokenFileOption())
    .action(async (app: string, opts: Omit<Parameters<typeof cutover>[1], 'admin'> & { admin: string; tokenFile?: string }) => {
      const { tokenFile, ...flags } = opts;
      const admin = await adminTarget(opts.admin, tokenFile);
      try {
        process.exit(await cutover(app, { ...flags, admin }));
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('rollback')
    .description('put all traffic back on the version that was live before APP\'s last cutover, at once (also after it completed)')
    .argument('<app>', 'app name')
    .option('--json', 'print the cutover status as JSON')
    .addOption(adminOption())
    .addOption(tokenFileOption())
    .action(async (app: string, opts: { admin: string; tokenFile?: string; json?: boolean }) => {
      const admin = await adminTarget(opts.admin, opts.tokenFile);
      try {
        process.exit(await rollback(app, { admin, json: opts.json }));
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('logs')
    .description("show APP's recent requests as the router saw them (time, status, method, host, path, version, duration, client), oldest first; with -f, then each new one until interrupted")
    .argument('<app>', 'app name')
    .option('-n, --lines <n>', 'how many of the newest requests to show first', '100')
    .option('-f, --follow', 'keep printing requests as they are logged (exit 0 on Ctrl-C, 1 if the router ends the stream)')
    .option('--version <version>', "only this version's requests")
    .option('--json', 'print each entry as a JSON line (all access-log fields)')
    .addOption(adminOption())
    .addOption(tokenFileOption())
    .action(async (app: string, opts: { admin: string; tokenFile?: string; lines: string; follow?: boolean; version?: string; json?: boolean }) => {
      const { tokenFile, ...rest } = opts;
      const admin = await adminTarget(opts.admin, tokenFile);
      try {
        process.exit(await logs(app, { ...rest, admin }));
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('doctor')
    .description('check the installation: config, Kubernetes API and RBAC, and a running router (endpoints, certificates, host conflicts); exit 1 if a check failed')
    .option('--kubeconfig <file>', 'kubeconfig (default: the in-cluster service account)')
    .addOption(new Option('--namespace <ns>', "the router's namespace (Leases, ACME Secrets)").env('POD_NAMESPACE').default('deis'))
    .option('-c, --config <file>', 'config file of the router', DEFAULT_CONFIG)
    .addOption(new Option('--admin <url>', "admin API of a running router [default: the config's listen.admin]").env('FAIRWAY_ADMIN'))
    .addOption(tokenFileOption())
    .option('--json', 'print the report as JSON')
    .action(async (opts: { kubeconfig?: string; namespace: string; config: string; admin?: string; tokenFile?: string; json?: boolean }) => {
      const { token } = await adminTarget(opts.admin ?? '', opts.tokenFile);
      try {
        process.exit(await doctor({ kubeconfig: opts.kubeconfig, namespace: opts.namespace, configFile: opts.config, admin: opts.admin, adminToken: token, json: opts.json }));
      } catch (err) {
        fail(err);
      }
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    throw err;
  }
}

await main(process.argv);
