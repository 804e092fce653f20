/**
 * Real HTTP servers on loopback that stand in for app endpoints in tests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';

export interface TestUpstream {
  readonly name: string;
  readonly port: number;
  /** `127.0.0.1:port`, as written in a config. */
  readonly address: string;
  /** Requests received so far. */
  hits: number;
  /** The last request's headers as received. */
  lastHeaders: IncomingMessage['headers'];
  lastRawHeaders: string[];
  readonly server: Server;
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, upstream: TestUpstream) => void;

/** Answers `{"upstream": name, "method", "url", "headers"}` unless given a handler. */
export async function startUpstream(name: string, handler?: Handler): Promise<TestUpstream> {
  const up = { name, hits: 0, lastHeaders: {}, lastRawHeaders: [] } as unknown as TestUpstream & { port: number; address: string; server: Server };
  const server = createServer((req, res) => {
    up.hits++;
    up.lastHeaders = req.headers;
    up.lastRawHeaders = req.rawHeaders;
    if (handler) return handler(req, res, up);
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ upstream: name, method: req.method, url: req.url, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  Object.assign(up, {
    server,
    port,
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return up;
}

/** A handler that answers `/big` with `size` bytes and any other path with `small`; see {@link bigAnswer}. */
export interface BigAnswer {
  readonly handler: Handler;
  /** Bytes of the big answer made so far. */
  written(): number;
  /** Resolves when the big answer's response closes (complete or cut). */
  readonly closed: Promise<void>;
}

/**
 * An endpoint's large answer paced by backpressure: each 64 KiB chunk is made only when the
 * response takes it, so `written()` tells how far a client that stops reading let it get.
 */
export function bigAnswer(size: number): BigAnswer {
  const CHUNK = 64 * 1024;
  let written = 0;
  let onClosed!: () => void;
  const closed = new Promise<void>((resolve) => (onClosed = resolve));
  const handler: Handler = (req, res) => {
    req.resume();
    if (req.url !== '/big') return void res.end('small');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    const chunk = Buffer.alloc(CHUNK, 'fairway-');
    Readable.from((function* () {
      for (let sent = 0; sent < size; sent += CHUNK) {
        written += CHUNK;
        yield chunk;
      }
    })()).pipe(res);
    res.on('close', onClosed);
  };
  return { handler, written: () => written, closed };
}

/** A loopback port with nothing listening (connections are refused). */
export async function refusedAddress(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

/** `startUpstream` for one test file: every upstream it starts is closed when `t` ends. */
export function upstreamStarter(t: { teardown(fn: () => unknown): void }): (name: string, handler?: Handler) => Promise<TestUpstream> {
  const started: TestUpstream[] = [];
  t.teardown(() => Promise.all(started.map((u) => u.close())));
  return async (name, handler) => {
    const u = await startUpstream(name, handler);
    started.push(u);
    return u;
  };
}
