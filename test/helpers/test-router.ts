/**
 * A real router started in-process from a YAML config written to a temp directory,
 * with its log lines captured (in `logs`, and for the log scan after the run: see
 * log-capture.ts), and a client bound to its listeners.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { once } from 'node:events';
import { Agent, request } from 'undici';
import { startRouter, type KubernetesOptions, type Router } from '../../src/router.js';
import type { Snapshot } from '../../src/model.js';
import { captureLog } from './log-capture.js';

export interface TestRouter {
  readonly router: Router;
  readonly configFile: string;
  readonly dir: string;
  readonly http: string;
  readonly admin: string;
  /** Parsed JSON log lines, in order. */
  readonly logs: Record<string, unknown>[];
  /** GET (or other) through the data plane with a Host header; resolves with status, headers, body text. */
  get(host: string, pathname?: string, init?: RequestInit): Promise<Answer>;
  adminGet(pathname: string): Promise<Answer>;
  adminPut(pathname: string, body: unknown): Promise<Answer>;
  /** Rewrites the config file and resolves with the snapshot (or rejects with the provider error) it causes. */
  rewrite(yaml: string): Promise<Snapshot>;
  close(): Promise<void>;
}

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer | NodeJS.ReadableStream;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = any>(): T;
}

/** Ephemeral loopback ports for every listener (the builder's opens in Kubernetes mode only). */
const LISTEN = 'listen:\n  http: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  builder: 127.0.0.1:0\n';

/** `yaml` may use `{{http}}`/`{{admin}}`; listeners default to ephemeral loopback ports. */
export async function startTestRouter(yaml: string, options: { dir?: string; acmePollMs?: { min: number; max: number }; acmeRenewalInfoPollMs?: { min: number; max: number }; kubernetes?: KubernetesOptions } = {}): Promise<TestRouter> {
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'fairway-test-'));
  const configFile = path.join(dir, 'fairway.yaml');
  if (!/^listen:/m.test(yaml)) yaml = `${LISTEN}${yaml}`;
  writeFileSync(configFile, yaml);
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      captureLog(chunk);
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const router = await startRouter({ configFile, logDestination: destination, processMetrics: false, acmePollMs: options.acmePollMs, acmeRenewalInfoPollMs: options.acmeRenewalInfoPollMs, kubernetes: options.kubernetes });
  const agent = new Agent({ keepAliveTimeout: 1000 });
  const http = `http://127.0.0.1:${router.httpAddress.port}`;
  const admin = `http://127.0.0.1:${router.adminAddress.port}`;
  const call = async (url: string, init: RequestInit = {}): Promise<Answer> => {
    const res = await request(url, { dispatcher: agent, method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body as string });
    const body = await res.body.text();
    return { status: res.statusCode, headers: res.headers as Answer['headers'], body, json: () => JSON.parse(body) };
  };
  return {
    router,
    configFile,
    dir,
    http,
    admin,
    logs,
    get: (host, pathname = '/', init = {}) => call(`${http}${pathname}`, { ...init, headers: { host, ...init.headers } }),
    adminGet: (pathname) => call(`${admin}${pathname}`),
    adminPut: (pathname, body) => call(`${admin}${pathname}`, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    async rewrite(text: string) {
      if (!/^listen:/m.test(text)) text = `${LISTEN}${text}`;
      const cp = router.controlPlane;
      const outcome = new Promise<Snapshot>((resolve, reject) => {
        const onSnapshot = (s: Snapshot) => { cp.off('provider-error', onError); resolve(s); };
        const onError = (_p: string, err: Error) => { cp.off('snapshot', onSnapshot); reject(err); };
        cp.once('snapshot', onSnapshot);
        cp.once('provider-error', onError);
      });
      writeFileSync(configFile, text);
      return outcome;
    },
    async close() {
      await router.close(2000);
      await agent.close();
    },
  };
}


/** Waits for a log line: lines are written asynchronously after the response. */
export async function waitForLog(r: TestRouter, match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const found = r.logs.find(match);
    if (found) return found;
    r.router.logger.flush();
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('log line not found');
}

/** Resolves with the first live snapshot (now or later) that satisfies `test`. */
export function snapshotWhere(r: TestRouter, test: (s: Snapshot) => boolean, what: string, ms = 10_000): Promise<Snapshot> {
  const cp = r.router.controlPlane;
  if (cp.snapshot && test(cp.snapshot)) return Promise.resolve(cp.snapshot);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cp.off('snapshot', on);
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    const on = (s: Snapshot) => {
      if (!test(s)) return;
      clearTimeout(timer);
      cp.off('snapshot', on);
      resolve(s);
    };
    cp.on('snapshot', on);
  });
}

/** `startTestRouter(yaml)` for one test file: every router it starts is closed when `t` ends. */
export function routerStarter(t: { teardown(fn: () => unknown): void }): (yaml: string) => Promise<TestRouter> {
  return async (yaml) => {
    const r = await startTestRouter(yaml);
    t.teardown(() => r.close());
    return r;
  };
}

export { once };
