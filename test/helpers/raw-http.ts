/**
 * Raw TCP clients and servers for tests of what HTTP libraries would refuse to send or
 * would tidy up: malformed requests to the router, malformed responses from an endpoint.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RawAnswer {
  /** The status code of the first response line, if one came. */
  readonly status: number | undefined;
  /** Everything the server sent (latin1). */
  readonly text: string;
  /** The server closed the connection (not our time limit). */
  readonly closed: boolean;
  /** How long until the server closed, or the limit, ms. */
  readonly ms: number;
}

/**
 * Opens a connection to `port`, writes `bytes` (several writes when given a list, each
 * after the previous one was flushed), and resolves once the server closes the
 * connection, or after `limitMs` (the socket is then destroyed and `closed` is false).
 */
export function rawExchange(port: number, bytes: string | Buffer | readonly (string | Buffer)[], limitMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : undefined, text, closed, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done(false), limitMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => done(true));
    socket.on('close', () => done(true));
    socket.on('error', () => done(true));
    const parts = typeof bytes === 'string' || Buffer.isBuffer(bytes) ? [bytes] : bytes;
    const writeNext = (i: number): void => {
      if (i < parts.length && !socket.destroyed) socket.write(parts[i]!, () => writeNext(i + 1));
    };
    socket.once('connect', () => writeNext(0));
  });
}

/** Opens a connection and resolves once it is established. */
export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Resolves once `socket` is closed by the other side (or errors), with the time it took
 * from the call. What arrives meanwhile is read and dropped (a socket nobody reads never
 * sees the other side's FIN), unless `keepPaused`, for a client that must not read.
 */
export function closedWithin(socket: Socket, keepPaused = false): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(0);
    socket.once('close', () => resolve(performance.now() - started));
    socket.on('error', () => {});
    if (!keepPaused) socket.resume();
  });
}

export interface RawUpstream {
  readonly address: string;
  /** Connections accepted so far. */
  connections: number;
  /** Request heads received, as text. */
  readonly heads: string[];
  close(): Promise<void>;
}

/**
 * An endpoint that reads each request head and answers with `respond(socket, head)`,
 * writing raw bytes (possibly malformed) and closing when it wants.
 */
export async function startRawUpstream(respond: (socket: Socket, head: string) => void): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const up = { connections: 0, heads: [] as string[] } as RawUpstream & { connections: number; address: string; close(): Promise<void> };
  const server: Server = createServer((socket) => {
    up.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffered.slice(0, end);
      buffered = buffered.slice(end + 4);
      up.heads.push(head);
      respond(socket, head);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  up.close = () => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  return up;
}
