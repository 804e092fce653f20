/**
 * The fuzz runs behind test/fuzz.test.ts and bench/fuzz.ts: each feeds `n` inputs from
 * {@link ./fuzz-inputs.ts} to one parser and returns what became of them, with a list of
 * failures (each naming its input number, so a seed and a number reproduce it).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { ConfigError, parseConfig } from '../../src/config/load-config.js';
import { parseProxyHeader } from '../../src/data/proxy-protocol.js';
import { configCorpus, configInput, proxyInput, requestCorpus, requestInput, type Rng } from './fuzz-inputs.js';

export interface FuzzOutcome {
  /** Inputs by outcome (`parsed`, `FW_CONFIG_SYNTAX`, `invalid`, `answered 400`…). */
  readonly outcomes: Record<string, number>;
  /** Broken contracts; empty when the run passed. */
  readonly failures: string[];
  /** The slowest input, ms. */
  readonly slowestMs: number;
}

const FILE = '/fuzz/fairway.yaml';
const LOCATED = /^\/fuzz\/fairway\.yaml(:\d+:\d+)?: [^\x00-\x1f]/;

/**
 * Config loader: each text must give a config, or a {@link ConfigError} `FW_CONFIG_SYNTAX`
 * / `FW_CONFIG_INVALID` whose every line names the file (and a line:column when the
 * problem has a place), within `limitMs`. Any other exception is a failure.
 */
export function fuzzConfigs(rng: Rng, n: number, limitMs: number): FuzzOutcome {
  const corpus = configCorpus();
  const outcomes: Record<string, number> = {};
  const failures: string[] = [];
  let slowestMs = 0;
  for (let i = 0; i < n; i++) {
    const text = configInput(rng, corpus);
    const started = performance.now();
    let outcome: string;
    try {
      parseConfig(text, FILE);
      outcome = 'parsed';
    } catch (err) {
      if (!(err instanceof ConfigError) || (err.code !== 'FW_CONFIG_SYNTAX' && err.code !== 'FW_CONFIG_INVALID')) {
        failures.push(`config #${i}: threw ${(err as Error)?.constructor?.name} ${(err as Error)?.message?.slice(0, 200)} for ${JSON.stringify(text.slice(0, 200))}`);
        outcome = 'other error';
      } else {
        outcome = err.code;
        const bad = err.message.split('\n').find((line) => !LOCATED.test(line));
        if (bad !== undefined) failures.push(`config #${i}: ${err.code} line without a location: ${JSON.stringify(bad.slice(0, 200))}`);
      }
    }
    const ms = performance.now() - started;
    slowestMs = Math.max(slowestMs, ms);
    if (ms > limitMs) failures.push(`config #${i}: took ${Math.round(ms)} ms (limit ${limitMs})`);
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  return { outcomes, failures, slowestMs };
}

/**
 * PROXY protocol parser: each input must give a header no longer than the input, or
 * `incomplete`, `invalid` or `too_large`; never a throw. A header's declared addresses
 * must be strings and its ports 0–65535.
 */
export function fuzzProxyHeaders(rng: Rng, n: number): FuzzOutcome {
  const outcomes: Record<string, number> = {};
  const failures: string[] = [];
  let slowestMs = 0;
  for (let i = 0; i < n; i++) {
    const input = proxyInput(rng);
    const started = performance.now();
    let outcome: string;
    try {
      const result = parseProxyHeader(input);
      if (typeof result === 'string') {
        outcome = result;
        if (!['incomplete', 'invalid', 'too_large'].includes(result)) failures.push(`proxy #${i}: unknown result ${result}`);
      } else {
        outcome = `v${result.version}${result.addresses ? '' : ' (no address)'}`;
        const a = result.addresses;
        if (result.length < 1 || result.length > input.length) failures.push(`proxy #${i}: length ${result.length} of a ${input.length}-byte input`);
        if (a && (typeof a.sourceAddress !== 'string' || !(a.sourcePort >= 0 && a.sourcePort <= 65535) || !(a.destinationPort >= 0 && a.destinationPort <= 65535))) {
          failures.push(`proxy #${i}: bad addresses ${JSON.stringify(a)}`);
        }
      }
    } catch (err) {
      outcome = 'threw';
      failures.push(`proxy #${i}: threw ${(err as Error).message} for ${input.toString('hex').slice(0, 200)}`);
    }
    slowestMs = Math.max(slowestMs, performance.now() - started);
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  return { outcomes, failures, slowestMs };
}

/**
 * Request heads over real sockets to a router on `port` serving `host`, `concurrency` at a
 * time: each connection must get a response or be closed within `limitMs` (no hang).
 * What reached the endpoint is the caller's to check.
 */
export async function fuzzRequests(rng: Rng, n: number, port: number, host: string, concurrency: number, limitMs: number): Promise<FuzzOutcome> {
  const corpus = requestCorpus(host);
  const inputs = Array.from({ length: n }, () => requestInput(rng, corpus));
  const outcomes: Record<string, number> = {};
  const failures: string[] = [];
  let slowestMs = 0;
  let next = 0;
  const one = (i: number): Promise<void> => new Promise((resolve) => {
    const input = inputs[i]!;
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let settled = false;
    const done = (outcome: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const ms = performance.now() - started;
      slowestMs = Math.max(slowestMs, ms);
      if (outcome === 'hung') failures.push(`request #${i}: neither answered nor closed within ${limitMs} ms: ${JSON.stringify(input.toString('latin1').slice(0, 300))}`);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      resolve();
    };
    const timer = setTimeout(() => done('hung'), limitMs);
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      // A final (non-1xx) status line, after any interim ones: answered.
      const status = /(?:^|\r\n\r\n)HTTP\/1\.[01] ([2-5])\d\d /.exec(received);
      if (status) done(`answered ${status[1]}xx`);
    });
    socket.on('error', () => {});
    socket.on('close', () => done(received === '' ? 'closed' : 'closed after bytes'));
    socket.on('connect', () => socket.write(input));
  });
  const worker = async () => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { outcomes, failures, slowestMs };
}

/**
 * The endpoint behind the request fuzzing judges what reaches it with its own strict
 * parser: install `handler` as its request handler and `onClientError` on its server.
 * `malformed` lists what should never have come through the router: a request whose
 * method is not an upper-case token or whose target is not origin-form, or a parse error —
 * except a body cut short (the router aborts an upstream request whose client body turned
 * out malformed) and a reset.
 */
export interface EndpointJudge {
  readonly malformed: string[];
  /** Requests that reached the endpoint. */
  readonly hits: number;
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly onClientError: (err: NodeJS.ErrnoException, socket: Duplex) => void;
}

export function endpointJudge(): EndpointJudge {
  const malformed: string[] = [];
  let hits = 0;
  return {
    malformed,
    get hits() {
      return hits;
    },
    handler(req, res) {
      hits++;
      if (!/^[A-Z]+$/.test(req.method ?? '') || !/^\//.test(req.url ?? '')) malformed.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.end('ok'));
    },
    onClientError(err, socket) {
      if (err.code !== 'HPE_INVALID_EOF_STATE' && err.code !== 'ECONNRESET') malformed.push(`${err.code}: ${err.message}`);
      socket.destroy();
    },
  };
}
