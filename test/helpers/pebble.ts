/**
 * @module
 * A real Pebble (Let's Encrypt's test ACME server) for one test, started and stopped by
 * the test.
 *
 * Contract:
 * - `startPebble()` resolves once Pebble's ACME directory answers over HTTPS, or rejects
 *   within 10 s with Pebble's own output in the message. Without the `pebble` package it
 *   rejects with `pebble is not installed: apt-get install -y pebble` — tests fail loudly,
 *   they never skip.
 * - Everything listens on 127.0.0.1 only, on ports picked here (directory, management,
 *   and pebble-challtestsrv's DNS and management ports). pebble-challtestsrv answers every
 *   A query with 127.0.0.1 (no AAAA), so any name in an order resolves to this machine.
 * - Pebble's validator dials `127.0.0.1:httpPort` for HTTP-01 and `127.0.0.1:tlsPort` for
 *   TLS-ALPN-01: pass the ports of the router under test.
 * - Pebble's own HTTPS listeners (directory and management) present a `localhost` /
 *   `127.0.0.1` certificate signed by a throwaway CA made for this instance with the
 *   `openssl` CLI (node:crypto cannot sign X.509 certificates); `caBundle` is that CA.
 *   It is NOT the CA that signs issued certificates: that is `roots()`.
 * - Pebble keeps everything in memory: accounts, orders and its issuing root and
 *   intermediate are new at every start. After `restart()` the directory URL and
 *   `caBundle` are unchanged, but `roots()` returns a different root and old accounts are
 *   gone.
 * - `stop()` kills both processes and removes the temp dir; it is idempotent and final.
 *   The processes also die with the test process: they are not detached, an 'exit'
 *   handler kills them, and where util-linux's `setpriv` exists they are started with
 *   `--pdeathsig SIGKILL`, which covers a test process killed by a signal.
 * - Environment given to Pebble: `PEBBLE_VA_NOSLEEP=1` (no random sleep before
 *   validating), `PEBBLE_WFE_NONCEREJECT=0` (no deliberately rejected nonces) and
 *   `PEBBLE_AUTHZREUSE=0` (every order's authorizations are validated anew, so a test
 *   that counts challenges is deterministic; Pebble's default reuses valid ones 50% of
 *   the time). `options.env` overrides or adds to these.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { Agent, request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import * as acme from 'acme-client';

const execFileAsync = promisify(execFile);

export interface PebbleOptions {
  /** Port Pebble's validator dials on 127.0.0.1 for HTTP-01 (the router's HTTP listener). */
  httpPort: number;
  /** Port Pebble's validator dials on 127.0.0.1 for TLS-ALPN-01 (the router's HTTPS listener). */
  tlsPort: number;
  /** Lifetime of issued certificates in seconds (Pebble 2.4 config key `certificateValidityPeriod`; Pebble's default is 5 years). */
  certificateValidityPeriod?: number;
  /** Extra environment for Pebble, e.g. `{ PEBBLE_AUTHZREUSE: '50' }` or `{ PEBBLE_CHAIN_LENGTH: '2' }`. */
  env?: Record<string, string>;
}

export interface Pebble {
  /** ACME directory URL, `https://127.0.0.1:PORT/dir`. */
  readonly directory: string;
  /** PEM of the throwaway CA that signed Pebble's HTTPS certificate: trust it for `directory` and `managementUrl`. */
  readonly caBundle: string;
  /** `https://127.0.0.1:PORT` of Pebble's management interface (same certificate as the directory). */
  readonly managementUrl: string;
  /** PEM of Pebble's current issuing root (`/roots/0`), to verify issued chains. Changes at every (re)start. */
  roots(): Promise<string>;
  /** Kills Pebble and pebble-challtestsrv and removes the temp dir. Idempotent; the instance cannot be restarted after it. */
  stop(): Promise<void>;
  /** Stops both processes and starts them again on the same ports: new root, no accounts, no orders. */
  restart(): Promise<void>;
  /** Stops the processes but keeps ports, URL and files, as a CA outage; `up()` ends it (same caveats as `restart()`). */
  down(): Promise<void>;
  up(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 2_000;
const OUTPUT_LIMIT = 64 * 1024;

/** Every child started here and still running, killed if the test process exits first. */
const live = new Set<ChildProcess>();
let exitHandlerInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHandlerInstalled) {
    exitHandlerInstalled = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      accessSync(file, fsConstants.X_OK);
      return file;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * `count` distinct loopback TCP ports that were free a moment ago, for listeners a test
 * binds, closes and binds again (Pebble validates against fixed ports). They are drawn at
 * random BELOW the kernel's ephemeral range: a port from that range (what `listen(0)`
 * gives) can be taken between two binds by any other test's `listen(0)` or outgoing
 * connection, one below it only by another test picking the same port on purpose.
 */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const top = Math.max(20_000, (low ?? 32_768) - 1);
  const ports: number[] = [];
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 200) throw new Error('freeLoopbackPorts: no free port found below the ephemeral range');
    const port = 10_000 + Math.floor(Math.random() * (top - 10_000));
    if (ports.includes(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) ports.push(port);
  }
  return ports;
}

/**
 * Makes every acme-client `Client` in this process trust `caBundle` for the ACME
 * directory's HTTPS, and returns a function that undoes it.
 *
 * The mechanism: acme-client (5.x) sends every ACME request through ONE axios instance,
 * which it exports as `acme.axios` (its README: "HTTP client defaults"). Setting
 * `acme.axios.defaults.httpsAgent` to a `node:https` Agent whose `ca` option holds the
 * bundle makes TLS verification use it. Verification stays on: no
 * `rejectUnauthorized: false`, no `NODE_TLS_REJECT_UNAUTHORIZED`.
 *
 * Notes for product code with a configurable `tls.acme.caBundle`:
 * - `ca` REPLACES Node's built-in roots for that agent. To trust a private CA in
 *   addition to the public ones, pass `ca: [...tls.rootCertificates, caBundle]`.
 * - The setting is process-wide: acme-client has no per-Client agent option, so all
 *   ACME accounts in one process share one trust setting.
 * - axios also honours `HTTPS_PROXY`/`NO_PROXY` from the environment.
 */
export function trustPebble(caBundle: string): () => void {
  const previous = acme.axios.defaults.httpsAgent as unknown;
  const agent = new Agent({ ca: caBundle });
  acme.axios.defaults.httpsAgent = agent;
  return () => {
    acme.axios.defaults.httpsAgent = previous;
    agent.destroy();
  };
}

/**
 * A throwaway CA and a `localhost`/`127.0.0.1` server certificate it signed (PEM), as
 * Pebble's listeners get, for a test's own HTTPS server that a client trusts by `ca`.
 */
export async function localhostCertificate(): Promise<{ ca: string; cert: string; key: string }> {
  const openssl = findExecutable('openssl');
  if (!openssl) throw new Error('openssl is not installed: apt-get install -y openssl');
  const dir = await mkdtemp(join(tmpdir(), 'fairway-cert-'));
  try {
    const files = await makeListenerCertificate(dir, openssl);
    const [ca, cert, key] = await Promise.all([files.ca, files.cert, files.key].map((f) => readFile(f, 'utf8')));
    return { ca: ca!, cert: cert!, key: key! };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Makes a throwaway CA and a `localhost`/`127.0.0.1` server certificate for Pebble's listeners. */
async function makeListenerCertificate(dir: string, openssl: string): Promise<{ ca: string; cert: string; key: string }> {
  const caKey = join(dir, 'ca.key');
  const ca = join(dir, 'ca.pem');
  const key = join(dir, 'key.pem');
  const csr = join(dir, 'server.csr');
  const cert = join(dir, 'cert.pem');
  const ext = join(dir, 'server.ext');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await execFileAsync(openssl, [
    'req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '2',
    '-subj', '/CN=Fairway test Pebble listener CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await execFileAsync(openssl, ['req', '-new', ...ec, '-keyout', key, '-out', csr, '-subj', '/CN=localhost']);
  await writeFile(ext, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '',
  ].join('\n'));
  await execFileAsync(openssl, [
    'x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial',
    '-days', '2', '-extfile', ext, '-out', cert,
  ]);
  return { ca, cert, key };
}

/** One GET with a short timeout; resolves with the status and body, rejects on any socket error. */
function get(url: string, ca?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      { method: 'GET', timeout: 1_000, ...(ca ? { ca, agent: false } : { agent: false }) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

interface Running {
  pebble: ChildProcess;
  challtestsrv: ChildProcess;
  output: () => string;
}

function startProcess(argv: string[], env: NodeJS.ProcessEnv, name: string, log: (line: string) => void): ChildProcess {
  const setpriv = findExecutable('setpriv');
  const [command, ...args] = setpriv ? [setpriv, '--pdeathsig', 'SIGKILL', '--', ...argv] : argv;
  const child = spawn(command!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  const onData = (chunk: Buffer) => log(`[${name}] ${chunk.toString('utf8')}`);
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.on('error', (err) => log(`[${name}] spawn error: ${err.message}\n`));
  return child;
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Starts pebble-challtestsrv and Pebble on fixed ports and waits until both answer. */
async function launch(
  bin: { pebble: string; challtestsrv: string },
  ports: { directory: number; management: number; dns: number; dnsManagement: number },
  configFile: string,
  ca: string,
  env: NodeJS.ProcessEnv,
): Promise<Running> {
  let out = '';
  const log = (s: string) => {
    out += s;
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT);
  };
  const challtestsrv = startProcess([
    bin.challtestsrv,
    '-dns01', `127.0.0.1:${ports.dns}`,
    '-http01', '', '-https01', '', '-tlsalpn01', '',
    '-management', `127.0.0.1:${ports.dnsManagement}`,
    '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
  ], env, 'pebble-challtestsrv', log);
  const pebble = startProcess([
    bin.pebble, '-config', configFile, '-dnsserver', `127.0.0.1:${ports.dns}`, '-strict=false',
  ], env, 'pebble', log);
  const running: Running = { pebble, challtestsrv, output: () => out };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  const directory = `https://127.0.0.1:${ports.directory}/dir`;
  const dnsManagement = `http://127.0.0.1:${ports.dnsManagement}/`;
  let lastError = 'not polled yet';
  const ready = { pebble: false, challtestsrv: false };
  while (!(ready.pebble && ready.challtestsrv)) {
    for (const [name, child] of [['pebble', pebble], ['pebble-challtestsrv', challtestsrv]] as const) {
      if (child.exitCode !== null || child.signalCode !== null) {
        await Promise.all([kill(pebble), kill(challtestsrv)]);
        throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${out}`);
      }
    }
    if (Date.now() > deadline) {
      await Promise.all([kill(pebble), kill(challtestsrv)]);
      throw new Error(`Pebble was not ready within ${READY_TIMEOUT_MS} ms (last: ${lastError}):\n${out}`);
    }
    try {
      // Any HTTP answer means the management listener (and so the DNS server) is up.
      if (!ready.challtestsrv) ready.challtestsrv = (await get(dnsManagement)).status > 0;
      if (!ready.pebble) {
        const res = await get(directory, ca);
        ready.pebble = res.status === 200 && res.body.includes('newNonce');
        if (!ready.pebble) lastError = `GET ${directory}: ${res.status}`;
      }
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (!(ready.pebble && ready.challtestsrv)) await new Promise((r) => setTimeout(r, 50));
  }
  return running;
}

/** Starts a Pebble (and its DNS stand-in) for one test. See the module comment for the contract. */
export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const pebbleBin = findExecutable('pebble');
  const challtestsrvBin = findExecutable('pebble-challtestsrv');
  if (!pebbleBin || !challtestsrvBin) throw new Error('pebble is not installed: apt-get install -y pebble');
  const openssl = findExecutable('openssl');
  if (!openssl) throw new Error('openssl is not installed: apt-get install -y openssl');

  const dir = await mkdtemp(join(tmpdir(), 'fairway-pebble-'));
  try {
    const files = await makeListenerCertificate(dir, openssl);
    const caBundle = await readFile(files.ca, 'utf8');
    const [directoryPort, managementPort, dnsPort, dnsManagementPort] = await freeLoopbackPorts(4) as [number, number, number, number];
    const ports = { directory: directoryPort, management: managementPort, dns: dnsPort, dnsManagement: dnsManagementPort };
    const configFile = join(dir, 'pebble-config.json');
    await writeFile(configFile, JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${ports.directory}`,
        managementListenAddress: `127.0.0.1:${ports.management}`,
        certificate: files.cert,
        privateKey: files.key,
        httpPort: options.httpPort,
        tlsPort: options.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(options.certificateValidityPeriod !== undefined ? { certificateValidityPeriod: options.certificateValidityPeriod } : {}),
      },
    }, null, 2));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
      PEBBLE_AUTHZREUSE: '0',
      ...options.env,
    };
    const bin = { pebble: pebbleBin, challtestsrv: challtestsrvBin };

    let running: Running | undefined = await launch(bin, ports, configFile, caBundle, env);
    let stopped = false;
    const managementUrl = `https://127.0.0.1:${ports.management}`;
    const halt = async () => {
      const r = running;
      running = undefined;
      if (r) await Promise.all([kill(r.pebble), kill(r.challtestsrv)]);
    };

    return {
      directory: `https://127.0.0.1:${ports.directory}/dir`,
      caBundle,
      managementUrl,
      async roots() {
        const res = await get(`${managementUrl}/roots/0`, caBundle);
        if (res.status !== 200) throw new Error(`GET ${managementUrl}/roots/0: ${res.status} ${res.body}`);
        return res.body;
      },
      async restart() {
        if (stopped) throw new Error('Pebble was stopped; start a new one');
        await halt();
        running = await launch(bin, ports, configFile, caBundle, env);
      },
      async down() {
        if (stopped) throw new Error('Pebble was stopped; start a new one');
        await halt();
      },
      async up() {
        if (stopped) throw new Error('Pebble was stopped; start a new one');
        if (!running) running = await launch(bin, ports, configFile, caBundle, env);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await halt();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
