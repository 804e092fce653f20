/**
 * Fairway's own HTTP/1.1 server (src/http1/http1-server.ts, with its connection, request
 * and response): the contract its module comments state, tested over real sockets.
 * Clients are raw `node:net` sockets writing exact bytes and reading the exact bytes
 * back (parsed here by {@link parseResponses}, which frames responses as a client must:
 * Content-Length, chunked, or the connection's close). A `clientError` listener answers
 * as the router's does (400, or 408 for `ERR_HTTP_REQUEST_TIMEOUT`, then `end`).
 *
 * Waiting is on events (bytes arrived, socket closed, handler called), each bounded by a
 * time limit; where a test must know that the server has read some bytes before it sends
 * more (a body dribbled in pieces), it waits for them on the server side's socket.
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { createServer as createNodeServer, type IncomingMessage } from 'node:http';
import { Client } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { Http1Server, type Http1ServerOptions, type RequestHandler } from '../src/http1/http1-server.js';
import type { Http1Request } from '../src/http1/http1-request.js';
import type { Http1Response } from '../src/http1/http1-response.js';

const TEST = (): { timeout: number } => ({ timeout: 15_000 });
/** How long any single wait may take before the test fails (not how long it takes). */
const WAIT_MS = 5_000;

type CodedError = Error & { code?: string };

// ---------------------------------------------------------------------------------------
// Reading responses off the wire

interface WireResponse {
  readonly status: number;
  readonly reason: string;
  /** The head as sent, without its final CRLF CRLF. */
  readonly head: string;
  /** `[name, value]` in order, names as sent. */
  readonly fields: readonly (readonly [string, string])[];
  /** The body decoded from its framing. */
  readonly body: Buffer;
  /** The body's bytes as sent (chunk framing included), latin1. */
  readonly wire: string;
  /** Where the response ends in the connection's bytes. */
  readonly end: number;
}

/** Every value of the field `name` (any case), in order. */
function all(res: WireResponse, name: string): string[] {
  const lower = name.toLowerCase();
  return res.fields.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

/** The field `name`'s only value; undefined when absent (a repeated field fails the caller's check). */
function field(res: WireResponse, name: string): string | undefined {
  const values = all(res, name);
  return values.length === 0 ? undefined : values.join(' | ');
}

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * The whole responses in `buf`, framed as a client must: 1xx, 204, 304 and answers to
 * HEAD (`bodiless`, by index among the final responses) without a body; then chunked,
 * Content-Length, or (`closed`) the rest of the bytes. A response not yet whole ends the list.
 */
function parseResponses(buf: Buffer, closed: boolean, bodiless: ReadonlySet<number> = new Set()): WireResponse[] {
  const out: WireResponse[] = [];
  let p = 0;
  let finals = 0;
  while (p < buf.length) {
    const headEnd = buf.indexOf(CRLFCRLF, p);
    if (headEnd === -1) break;
    const head = buf.toString('latin1', p, headEnd);
    const [statusLine = '', ...lines] = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) (.*)$/.exec(statusLine);
    if (m === null) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
    const status = Number(m[1]);
    const fields = lines.map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon), line.slice(colon + 1).trim()] as const;
    });
    const partial: Omit<WireResponse, 'body' | 'wire' | 'end'> = { status, reason: m[2]!, head, fields };
    const bodyStart = headEnd + 4;
    const finish = (body: Buffer, end: number): void => {
      out.push({ ...partial, body, wire: buf.toString('latin1', bodyStart, end), end });
      p = end;
    };
    if (status < 200) {
      finish(Buffer.alloc(0), bodyStart);
      continue;
    }
    const index = finals++;
    const te = all(partial as WireResponse, 'transfer-encoding');
    const cl = all(partial as WireResponse, 'content-length');
    if (status === 204 || status === 304 || bodiless.has(index)) finish(Buffer.alloc(0), bodyStart);
    else if (te.length > 0) {
      const chunks: Buffer[] = [];
      let q = bodyStart;
      let done = false;
      for (;;) {
        const lineEnd = buf.indexOf(CRLF, q);
        if (lineEnd === -1) break;
        const size = parseInt(buf.toString('latin1', q, lineEnd).split(';')[0]!, 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size line at ${q}: ${JSON.stringify(buf.toString('latin1', q, lineEnd))}`);
        q = lineEnd + 2;
        if (size === 0) {
          // Trailer fields, then the empty line.
          for (;;) {
            const e = buf.indexOf(CRLF, q);
            if (e === -1) break;
            const empty = e === q;
            q = e + 2;
            if (empty) {
              done = true;
              break;
            }
          }
          break;
        }
        if (q + size + 2 > buf.length) break;
        chunks.push(buf.subarray(q, q + size));
        if (!buf.subarray(q + size, q + size + 2).equals(CRLF)) throw new Error(`chunk data not followed by CRLF at ${q + size}`);
        q += size + 2;
      }
      if (!done) break;
      finish(Buffer.concat(chunks), q);
    } else if (cl.length > 0) {
      const n = Number(cl[0]);
      if (bodyStart + n > buf.length) break;
      finish(buf.subarray(bodyStart, bodyStart + n), bodyStart + n);
    } else {
      if (!closed) break;
      finish(buf.subarray(bodyStart), buf.length);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// A raw client

class RawClient {
  readonly socket: Socket;
  #chunks: Buffer[] = [];
  #bytes: Buffer | undefined;
  #waiters = new Set<() => void>();
  /** Bytes received so far. */
  received = 0;
  /** The connection closed (either side). */
  closed = false;
  /** When the connection closed (performance.now()). */
  closedAt = 0;
  readonly whenClosed: Promise<void>;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#chunks.push(d);
      this.#bytes = undefined;
      this.received += d.length;
      this.#wake();
    });
    // Writes after the server closed fail with EPIPE/ECONNRESET: part of some tests, never a crash.
    socket.on('error', () => {});
    this.whenClosed = new Promise((resolve) => socket.once('close', () => {
      this.closed = true;
      this.closedAt = performance.now();
      this.#wake();
      resolve();
    }));
  }

  /** `allowHalfOpen`: the client keeps its side open after the server's FIN (as a client slow to close, or about to send more). */
  static open(port: number, allowHalfOpen = false): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', allowHalfOpen });
      socket.setNoDelay(true);
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Everything received so far. */
  get bytes(): Buffer {
    return (this.#bytes ??= Buffer.concat(this.#chunks));
  }

  get text(): string {
    return this.bytes.toString('latin1');
  }

  /** Writes `data`; resolves once it was handed to the kernel. */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Resolves once `ready()` holds (checked as bytes arrive); fails after `ms`, or when the connection closed first. */
  until(what: string, ready: () => boolean, ms = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let ok: boolean;
        try {
          ok = ready();
        } catch (err) {
          finish();
          reject(err);
          return;
        }
        if (ok) {
          finish();
          resolve();
        } else if (this.closed) {
          finish();
          reject(new Error(`connection closed before ${what}; received ${JSON.stringify(this.text)}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${what} within ${ms} ms; received ${JSON.stringify(this.text)}`));
      }, ms);
      const finish = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The first `n` responses (waiting for them). */
  async responses(n: number, bodiless?: ReadonlySet<number>, ms = WAIT_MS): Promise<WireResponse[]> {
    let got: WireResponse[] = [];
    await this.until(`${n} response(s)`, () => (got = parseResponses(this.bytes, this.closed, bodiless)).length >= n, ms);
    return got;
  }

  /** Resolves once the connection closed; fails after `ms`. */
  closedWithin(ms = WAIT_MS): Promise<void> {
    return this.until('the connection\'s close', () => this.closed, ms);
  }

  #wake(): void {
    for (const check of [...this.#waiters]) check();
  }
}

/** Resolves within `ms` or fails with `what`. */
function within<T>(what: string, promise: Promise<T>, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms))),
  ]);
}

/** A promise with its resolver, for events inside handlers. */
function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

// ---------------------------------------------------------------------------------------
// A server under test

interface ServerSettings extends Http1ServerOptions {
  readonly keepAliveTimeout?: number;
  readonly headersTimeout?: number;
  readonly requestTimeout?: number;
}

interface Harness {
  readonly server: Http1Server;
  readonly port: number;
  /** The errors the `clientError` listener got, in order. */
  readonly clientErrors: CodedError[];
  /** Connections accepted so far. */
  readonly accepted: Socket[];
  /** Opens a client (closed in teardown); see {@link RawClient.open} for `allowHalfOpen`. */
  client(allowHalfOpen?: boolean): Promise<RawClient>;
  /** The server side of `client`'s connection. */
  serverSide(client: RawClient): Promise<Socket>;
  /** Resolves once the server side has read `total` bytes of `socket` in all. */
  received(socket: Socket, total: number): Promise<void>;
  /** Resolves on the next `clientError`, or the one already seen. */
  clientError(): Promise<CodedError>;
  /** Writes `pieces` one by one, each once the server has read the one before (so none is merged with another). */
  dribble(client: RawClient, pieces: readonly (string | Buffer)[]): Promise<void>;
}

/** An {@link Http1Server} on 127.0.0.1 with `handler`, a router-like `clientError` listener; closed in teardown. */
async function startServer(t: Test, handler: RequestHandler, settings: ServerSettings = {}): Promise<Harness> {
  const server = new Http1Server({ maxHeaderSize: settings.maxHeaderSize, connectionsCheckingInterval: settings.connectionsCheckingInterval ?? 100 }, handler);
  if (settings.keepAliveTimeout !== undefined) server.keepAliveTimeout = settings.keepAliveTimeout;
  if (settings.headersTimeout !== undefined) server.headersTimeout = settings.headersTimeout;
  if (settings.requestTimeout !== undefined) server.requestTimeout = settings.requestTimeout;
  const clientErrors: CodedError[] = [];
  const errorWaiters: ((err: CodedError) => void)[] = [];
  server.on('clientError', (err: CodedError, socket: Socket) => {
    clientErrors.push(err);
    for (const w of errorWaiters.splice(0)) w(err);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  const accepted: Socket[] = [];
  const acceptWaiters = new Set<() => void>();
  server.on('connection', (socket: Socket) => {
    accepted.push(socket);
    for (const w of [...acceptWaiters]) w();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const clients: RawClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.socket.destroy();
    server.closeAllConnections();
    // Upgraded sockets are no longer the server's: closed here.
    for (const s of accepted) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const harness: Harness = {
    server,
    port,
    clientErrors,
    accepted,
    async client(allowHalfOpen) {
      const c = await RawClient.open(port, allowHalfOpen);
      clients.push(c);
      return c;
    },
    serverSide(client) {
      const localPort = client.socket.localPort;
      const find = () => accepted.find((s) => s.remotePort === localPort);
      const found = find();
      if (found !== undefined) return Promise.resolve(found);
      return within('accepted connection', new Promise<Socket>((resolve) => {
        const check = () => {
          const s = find();
          if (s === undefined) return;
          acceptWaiters.delete(check);
          resolve(s);
        };
        acceptWaiters.add(check);
      }));
    },
    received(socket, total) {
      if (socket.bytesRead >= total) return Promise.resolve();
      return within(`server-side read of ${total} bytes`, new Promise<void>((resolve) => {
        const onData = () => {
          if (socket.bytesRead < total) return;
          socket.off('data', onData);
          resolve();
        };
        socket.on('data', onData);
      }));
    },
    clientError() {
      const seen = clientErrors[0];
      if (seen !== undefined) return Promise.resolve(seen);
      return within('clientError', new Promise<CodedError>((resolve) => errorWaiters.push(resolve)));
    },
    async dribble(client, pieces) {
      const side = await harness.serverSide(client);
      let total = side.bytesRead;
      for (const piece of pieces) {
        total += Buffer.byteLength(piece);
        await client.write(piece);
        await harness.received(side, total);
      }
    },
  };
  return harness;
}

/** Reads `req`'s body whole. */
async function bodyOf(req: Http1Request): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/;
const get = (path: string, fields = '') => `GET ${path} HTTP/1.1\r\nHost: app.test\r\n${fields}\r\n`;

// ---------------------------------------------------------------------------------------
// 1. Keep-alive

t.test('keep-alive: two requests on one connection get two answers with Connection: keep-alive, Keep-Alive: timeout=floor(keepAliveTimeout/1000), and a Date unless the handler set one', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => {
    if (req.url === '/own-date') res.setHeader('Date', 'Thu, 01 Jan 2037 00:00:00 GMT');
    if (req.url === '/own-date-in-head') {
      res.writeHead(200, ['date', 'Fri, 02 Jan 2037 00:00:00 GMT', 'content-length', '3']);
      res.end('own');
      return;
    }
    res.end(req.url);
  }, { keepAliveTimeout: 7_900 });
  const c = await h.client();
  await c.write(get('/first'));
  const [first] = await c.responses(1);
  await c.write(get('/own-date'));
  await c.write(get('/own-date-in-head'));
  const [, second, third] = await c.responses(3);
  t.equal(h.accepted.length, 1, 'one connection carried all three');
  t.equal(c.closed, false, 'and it is still open');

  t.equal(first!.status, 200);
  t.equal(first!.body.toString(), '/first');
  t.same(all(first!, 'connection'), ['keep-alive']);
  t.same(all(first!, 'keep-alive'), ['timeout=7'], 'floor(7900 / 1000)');
  const date = all(first!, 'date');
  t.equal(date.length, 1, 'one Date');
  t.match(date[0], HTTP_DATE, 'an IMF-fixdate');
  t.ok(Math.abs(Date.parse(date[0]!) - Date.now()) < 5_000, `now (${date[0]})`);

  t.same(all(second!, 'date'), ['Thu, 01 Jan 2037 00:00:00 GMT'], 'a Date set with setHeader is the only one');
  t.same(all(second!, 'connection'), ['keep-alive']);
  t.same(all(third!, 'date'), ['Fri, 02 Jan 2037 00:00:00 GMT'], 'a date given to writeHead (any case) is the only one');
  t.equal(third!.body.toString(), 'own');
});

// ---------------------------------------------------------------------------------------
// 2. Pipelining

t.test('pipelining: three requests in one write get three answers in order, each handled only after the answer before it ended', TEST(), async (t) => {
  const order: string[] = [];
  // The first answer is the slowest: were requests handled at once, the answers would come back reversed.
  const delays: Record<string, number> = { '/1': 40, '/2': 20, '/3': 0 };
  const h = await startServer(t, (req, res) => {
    order.push(`handle ${req.url}`);
    res.on('finish', () => order.push(`finish ${req.url}`));
    setTimeout(() => res.end(`body ${req.url}`), delays[req.url] ?? 0);
  });
  const c = await h.client();
  await c.write(get('/1') + get('/2') + get('/3'));
  const answers = await c.responses(3);
  t.same(answers.map((a) => a.body.toString()), ['body /1', 'body /2', 'body /3'], 'answers in request order');
  t.same(order, ['handle /1', 'finish /1', 'handle /2', 'finish /2', 'handle /3', 'finish /3'], 'request n+1 handled after response n finished');
  t.equal(c.bytes.length, answers[2]!.end, 'nothing else was sent');
});

// ---------------------------------------------------------------------------------------
// 3. HTTP/1.0

t.test('HTTP/1.0 without Connection: keep-alive is answered with Connection: close and the server closes the connection', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => res.end('hello'));
  const c = await h.client();
  await c.write('GET /x HTTP/1.0\r\nHost: app.test\r\n\r\n');
  const [res] = await c.responses(1);
  t.equal(res!.status, 200);
  t.same(all(res!, 'connection'), ['close']);
  t.same(all(res!, 'keep-alive'), [], 'no Keep-Alive field');
  t.same(all(res!, 'content-length'), ['5']);
  t.equal(res!.body.toString(), 'hello');
  await c.closedWithin();
  t.equal(c.bytes.length, res!.end, 'nothing after the answer');
});

t.test('HTTP/1.0 with Connection: keep-alive and a Content-Length answer keeps the connection for the next request', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => res.end(req.url), { keepAliveTimeout: 5_000 });
  const c = await h.client();
  await c.write('GET /a HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n');
  const [first] = await c.responses(1);
  t.same(all(first!, 'connection'), ['keep-alive']);
  t.same(all(first!, 'keep-alive'), ['timeout=5']);
  t.same(all(first!, 'content-length'), ['2']);
  await c.write('GET /b HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n');
  const [, second] = await c.responses(2);
  t.equal(second!.body.toString(), '/b', 'the second request on the same connection is answered');
  t.equal(h.accepted.length, 1);
  t.equal(c.closed, false);
});

t.test('an HTTP/1.0 answer without a length is delimited by the connection\'s close, never chunked, even when the client asked for keep-alive', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => {
    res.write('abc');
    res.write(Buffer.from('def'));
    res.end();
  });
  const c = await h.client();
  await c.write('GET /stream HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n');
  await c.closedWithin();
  const [res] = parseResponses(c.bytes, true);
  t.equal(res?.status, 200);
  t.same(all(res!, 'transfer-encoding'), [], 'no Transfer-Encoding');
  t.same(all(res!, 'content-length'), [], 'no Content-Length');
  t.same(all(res!, 'connection'), ['close'], 'Connection: close');
  t.equal(res!.wire, 'abcdef', 'the body bytes as written, up to the close');
});

// ---------------------------------------------------------------------------------------
// 4. Response framing

t.test('a body without Content-Length goes to an HTTP/1.1 client chunked: hex size, CRLF, data, CRLF, and 0 CRLF CRLF at the end', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => {
    if (req.url === '/two') {
      res.write('a');
      res.end('b');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('hello');
    res.write('héllo wörld', 'utf8'); // 13 bytes
    res.write(Buffer.alloc(0)); // nothing: no empty chunk (it would end the body)
    res.write(Buffer.alloc(300, 'x'));
    res.end();
  });
  const c = await h.client();
  await c.write(get('/') + get('/two'));
  const [one, two] = await c.responses(2);
  t.same(all(one!, 'transfer-encoding'), ['chunked']);
  t.same(all(one!, 'content-length'), []);
  const expected = Buffer.concat([
    Buffer.from('5\r\nhello\r\n'),
    Buffer.from('d\r\n'), Buffer.from('héllo wörld', 'utf8'), Buffer.from('\r\n'),
    Buffer.from('12c\r\n'), Buffer.alloc(300, 'x'), Buffer.from('\r\n'),
    Buffer.from('0\r\n\r\n'),
  ]);
  t.equal(one!.wire, expected.toString('latin1'), 'the exact chunk framing');
  t.same(all(two!, 'transfer-encoding'), ['chunked']);
  t.equal(two!.wire, '1\r\na\r\n1\r\nb\r\n0\r\n\r\n', 'write then end(data): two chunks and the last chunk');
});

t.test('end(data) with no head written before sets Content-Length to the byte length of data (0 for end())', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => {
    if (req.url === '/empty') res.end();
    else if (req.url === '/utf8') res.end('é€');
    else res.end(Buffer.from('abc'));
  });
  const c = await h.client();
  await c.write(get('/buffer') + get('/utf8') + get('/empty'));
  const [buffer, utf8, empty] = await c.responses(3);
  t.same(all(buffer!, 'content-length'), ['3']);
  t.same(all(buffer!, 'transfer-encoding'), []);
  t.equal(buffer!.wire, 'abc');
  t.same(all(utf8!, 'content-length'), ['5'], 'bytes, not characters');
  t.equal(utf8!.body.toString('utf8'), 'é€');
  t.same(all(empty!, 'content-length'), ['0']);
  t.equal(empty!.wire, '');
  t.equal(c.bytes.length, empty!.end, 'no stray bytes between or after the answers');
});

t.test('answers to HEAD, 204 and 304 carry no body bytes even when the handler writes some; the next answer follows the head directly', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => {
    if (req.method === 'HEAD') {
      res.write('body');
      res.end('more');
    } else if (req.url === '/204-status') {
      res.statusCode = 204;
      res.end('x');
    } else if (req.url === '/204-head') {
      res.writeHead(204);
      res.write('x');
      res.end('y');
    } else if (req.url === '/304') {
      res.writeHead(304, { etag: '"v1"' });
      res.end('z');
    } else res.end('after');
  });
  const c = await h.client();
  await c.write(`HEAD /head HTTP/1.1\r\nHost: app.test\r\n\r\n${get('/204-status')}${get('/204-head')}${get('/304')}${get('/after')}`);
  const answers = await c.responses(5, new Set([0]));
  t.same(answers.map((a) => a.status), [200, 204, 204, 304, 200]);
  // Split on the heads' ends: each head is followed at once by the next status line.
  const parts = c.text.split('\r\n\r\n');
  t.equal(parts.length, 6, 'five heads and the last body');
  for (let i = 1; i < 5; i++) t.match(parts[i], /^HTTP\/1\.1 \d{3} /, `answer ${i + 1} starts right after head ${i}`);
  t.equal(parts[5], 'after', 'only the last answer has body bytes');
  for (const a of answers.slice(0, 4)) t.same(all(a, 'transfer-encoding'), [], `no Transfer-Encoding on ${a.status}`);
  // RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any response with a status code of ... 204"; Node sends none.
  t.same(all(answers[1]!, 'content-length'), [], 'no Content-Length on a 204 made by statusCode = 204; end(data)');
  t.same(all(answers[2]!, 'content-length'), [], 'no Content-Length on a 204 made by writeHead(204)');
  t.same(all(answers[3]!, 'etag'), ['"v1"']);
});

// ---------------------------------------------------------------------------------------
// 5. Request bodies

t.test('a Content-Length body arrives intact through req, which the handler gets before the body has arrived', TEST(), async (t) => {
  const called = signal();
  const h = await startServer(t, (req, res) => {
    called.resolve();
    void bodyOf(req).then((body) => res.end(JSON.stringify({ body: body.toString(), complete: req.complete })));
  });
  const c = await h.client();
  await h.dribble(c, ['POST /len HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\n\r\n']);
  await within('the handler\'s call after the head alone', called.promise);
  await h.dribble(c, ['hel', 'lo wor', 'ld']);
  const [res] = await c.responses(1);
  t.same(JSON.parse(res!.body.toString()), { body: 'hello world', complete: true });
});

t.test('a chunked body arrives intact even when split inside the chunk-size line, the extension, the data and every CRLF; trailers are dropped and the next request is read', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => {
    if (req.method === 'GET') {
      res.end(`next ${req.url}`);
      return;
    }
    void bodyOf(req).then((body) => res.end(JSON.stringify({ body: body.toString(), complete: req.complete })));
  });
  const c = await h.client();
  await h.dribble(c, [
    'POST /chunked HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n',
    '5', '\r', '\nhel', 'lo', '\r', '\n',
    '1', 'a;na', 'me=val', '\r', '\n', 'abc', 'defghijklmnopqrstuvwxy', 'z\r', '\n',
    '0', '\r', '\n', 'X-Trailer:', ' t\r', '\n', '\r', `\n${get('/after')}`,
  ]);
  const [body, next] = await c.responses(2);
  t.same(JSON.parse(body!.body.toString()), { body: 'helloabcdefghijklmnopqrstuvwxyz', complete: true });
  t.equal(next!.body.toString(), 'next /after', 'the request after the body is framed right');
  t.same(h.clientErrors, []);
});

t.test('an 8 MiB body read slowly by the handler (pause/resume) arrives intact; the server stops reading the socket while the reader is behind', TEST(), async (t) => {
  const size = 8 * 1024 * 1024;
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = (i * 31 + (i >>> 11)) & 0xff;
  const h = await startServer(t, (req, res) => {
    const hash = createHash('sha256');
    let n = 0;
    let socketPaused = false;
    req.on('data', (d: Buffer) => {
      hash.update(d);
      n += d.length;
      req.pause();
      // A slow reader: the next piece is taken a moment later.
      setTimeout(() => {
        socketPaused ||= req.socket.isPaused();
        req.resume();
      }, 1);
    });
    req.on('end', () => res.end(JSON.stringify({ n, sha: hash.digest('hex'), socketPaused })));
  });
  const c = await h.client();
  await c.write(`POST /big HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${size}\r\n\r\n`);
  await c.write(body);
  const [res] = await c.responses(1, undefined, 12_000);
  const got = JSON.parse(res!.body.toString()) as { n: number; sha: string; socketPaused: boolean };
  t.equal(got.n, size, 'every byte');
  t.equal(got.sha, createHash('sha256').update(body).digest('hex'), 'in order, unchanged');
  t.equal(got.socketPaused, true, 'the socket was paused while the reader was behind (backpressure)');
});

t.test('bodies sent with undici are read whole, and the connection carries the next request (one undici Client, one connection)', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => {
    void bodyOf(req).then((body) => res.end(createHash('sha256').update(body).digest('hex')));
  });
  const client = new Client(`http://127.0.0.1:${h.port}`, { headersTimeout: WAIT_MS, bodyTimeout: WAIT_MS });
  t.teardown(() => client.destroy());
  for (const [i, b] of [Buffer.alloc(200_000, 'p'), Buffer.from('second')].entries()) {
    const res = await client.request({ path: `/u${i}`, method: 'POST', body: b });
    t.equal(res.statusCode, 200);
    t.equal(await res.body.text(), createHash('sha256').update(b).digest('hex'), `body ${i} (${b.length} bytes)`);
  }
  t.equal(h.accepted.length, 1, 'one connection for both (the server kept it)');
});

// ---------------------------------------------------------------------------------------
// 6. Expect

t.test('Expect: 100-continue is answered HTTP/1.1 100 Continue before the final answer', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => void bodyOf(req).then((body) => res.end(`got ${body.toString()}`)));
  const c = await h.client();
  await c.write('POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  await c.until('100 Continue', () => c.text.length >= 25);
  t.equal(c.text, 'HTTP/1.1 100 Continue\r\n\r\n', 'the interim answer alone, before the body was sent');
  await c.write('hello');
  const [interim, final] = await c.responses(2);
  t.equal(interim!.status, 100);
  t.equal(final!.status, 200);
  t.equal(final!.body.toString(), 'got hello');
});

t.test('an expectation other than 100-continue is answered 417 with Connection: close, the handler is not called, and the connection closes', TEST(), async (t) => {
  let calls = 0;
  const h = await startServer(t, (_req, res) => {
    calls++;
    res.end('no');
  });
  const c = await h.client();
  await c.write('POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: the-moon\r\n\r\n');
  const [res] = await c.responses(1);
  t.equal(res!.status, 417);
  t.same(all(res!, 'connection'), ['close']);
  await c.closedWithin();
  t.equal(calls, 0, 'the handler never saw the request');
});

// ---------------------------------------------------------------------------------------
// 7. A response before its request's body

t.test('an answer sent before its request\'s body was read: the rest of the body is discarded and the next request on the connection is served', TEST(), async (t) => {
  const seen: string[] = [];
  const h = await startServer(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end(`answer ${req.url}`);
  });
  const c = await h.client();
  const big = Buffer.alloc(100_000, 'G'); // a body that, read as requests, would be garbage
  big.write('GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n', 500);
  await c.write(`POST /early HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${big.length}\r\n\r\n`);
  await c.write(big.subarray(0, 1000));
  const [early] = await c.responses(1);
  t.equal(early!.body.toString(), 'answer /early');
  t.same(all(early!, 'connection'), ['keep-alive']);
  await c.write(big.subarray(1000));
  await c.write(get('/next'));
  const [, next] = await c.responses(2);
  t.equal(next!.body.toString(), 'answer /next');
  t.same(seen, ['POST /early', 'GET /next'], 'the body was never read as requests');
  t.same(h.clientErrors, []);
  t.equal(c.closed, false);
});

t.test('an answer sent before a chunked body was read: the rest of the chunked body is decoded, dropped, and the next request is served', TEST(), async (t) => {
  const seen: string[] = [];
  const h = await startServer(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end(`answer ${req.url}`);
  });
  const c = await h.client();
  await c.write('POST /early HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n');
  await c.responses(1);
  const data = 'GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n';
  await c.write(`${data.length.toString(16)}\r\n${data}\r\n`);
  await c.write(`4000\r\n${'x'.repeat(0x4000)}\r\n0\r\n\r\n${get('/next')}`);
  const [, next] = await c.responses(2);
  t.equal(next!.body.toString(), 'answer /next');
  t.same(seen, ['POST /early', 'GET /next']);
  t.same(h.clientErrors, []);
});

// ---------------------------------------------------------------------------------------
// 8. Timeouts

t.test('headersTimeout: a head dribbled slowly is refused with 408 through clientError (ERR_HTTP_REQUEST_TIMEOUT) and the connection closed', TEST(), async (t) => {
  let calls = 0;
  const h = await startServer(t, (_req, res) => {
    calls++;
    res.end();
  }, { headersTimeout: 300, requestTimeout: 10_000, connectionsCheckingInterval: 50 });
  // Before the connect: the head's time runs from the accept, which comes before the client's 'connect'.
  const started = performance.now();
  const c = await h.client();
  await c.write('GET / HTTP/1.1\r\n');
  // One field line every 50 ms, at most 60 of them: the head would take 3 s.
  const dribbler = setInterval(() => {
    if (!c.closed) c.socket.write('X-Slow: 1\r\n');
  }, 50);
  t.teardown(() => clearInterval(dribbler));
  await c.closedWithin(3_000);
  clearInterval(dribbler);
  const ms = c.closedAt - started;
  t.ok(ms >= 300 && ms < 1_500, `cut after ~300 ms (${Math.round(ms)} ms)`);
  t.match(c.text, /^HTTP\/1\.1 408 /, 'answered 408');
  t.equal((await h.clientError()).code, 'ERR_HTTP_REQUEST_TIMEOUT');
  t.equal(calls, 0);
});

t.test('headersTimeout: a connection that sends nothing is cut after it too, as Node\'s', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => res.end(), { headersTimeout: 300, requestTimeout: 10_000, connectionsCheckingInterval: 50 });
  const started = performance.now();
  const c = await h.client();
  await c.closedWithin(3_000);
  const ms = c.closedAt - started;
  t.ok(ms >= 300 && ms < 1_500, `cut after ~300 ms (${Math.round(ms)} ms)`);
  t.match(c.text, /^HTTP\/1\.1 408 /);
  t.equal((await h.clientError()).code, 'ERR_HTTP_REQUEST_TIMEOUT');
});

t.test('requestTimeout: a body that keeps trickling is cut with 408 once the request is older than requestTimeout, and req emits aborted', TEST(), async (t) => {
  const aborted = signal<number>();
  const h = await startServer(t, (req) => {
    req.on('aborted', () => aborted.resolve(performance.now()));
    req.on('error', () => {});
    req.resume();
  }, { headersTimeout: 300, requestTimeout: 700, connectionsCheckingInterval: 50 });
  const c = await h.client();
  const started = performance.now();
  await c.write('POST /slow HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000\r\n\r\n');
  // A byte every 50 ms: never idle, never done within the limit.
  const trickle = setInterval(() => {
    if (!c.closed) c.socket.write('b');
  }, 50);
  t.teardown(() => clearInterval(trickle));
  await c.closedWithin(3_000);
  clearInterval(trickle);
  const ms = c.closedAt - started;
  t.ok(ms >= 700 && ms < 2_000, `cut after ~700 ms, not at the 300 ms head limit (${Math.round(ms)} ms)`);
  t.match(c.text, /^HTTP\/1\.1 408 /);
  t.equal((await h.clientError()).code, 'ERR_HTTP_REQUEST_TIMEOUT');
  await within('aborted on req', aborted.promise);
  t.pass('req emitted aborted');
});

t.test('keepAliveTimeout: an idle keep-alive connection is closed that long after its answer, silently', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => res.end('ok'), { keepAliveTimeout: 400, headersTimeout: 10_000, connectionsCheckingInterval: 50 });
  const c = await h.client();
  await c.write(get('/'));
  const [res] = await c.responses(1);
  const answered = performance.now();
  t.same(all(res!, 'keep-alive'), ['timeout=0'], 'floor(400 / 1000)');
  await c.closedWithin(3_000);
  const ms = c.closedAt - answered;
  t.ok(ms >= 300 && ms < 1_500, `closed ~400 ms after the answer (${Math.round(ms)} ms)`);
  t.equal(c.bytes.length, res!.end, 'nothing sent at the close');
  t.same(h.clientErrors, []);
});

// ---------------------------------------------------------------------------------------
// 9. Closing

t.test('closeIdleConnections closes the idle keep-alive connections and leaves one with a request in flight', TEST(), async (t) => {
  const slow = signal<Http1Response>();
  const h = await startServer(t, (req, res) => {
    if (req.url === '/slow') slow.resolve(res);
    else res.end('quick');
  });
  const idle = await h.client();
  await idle.write(get('/quick'));
  await idle.responses(1);
  const busy = await h.client();
  await busy.write(get('/slow'));
  const pending = await within('the slow request', slow.promise);
  h.server.closeIdleConnections();
  await idle.closedWithin();
  t.pass('the idle connection was closed');
  pending.end('slow done');
  const [answer] = await busy.responses(1);
  t.equal(answer!.body.toString(), 'slow done', 'the busy connection got its whole answer');
  await busy.write(get('/again'));
  const [, again] = await busy.responses(2);
  t.equal(again!.body.toString(), 'quick', 'and still carries requests');
});

t.test('close(cb) stops accepting, closes idle connections, and calls cb only after the in-flight answer ended and its connection closed', TEST(), async (t) => {
  const slow = signal<Http1Response>();
  const events: string[] = [];
  let serverSide: Socket | undefined;
  const h = await startServer(t, (req, res) => {
    if (req.url !== '/slow') {
      res.end('quick');
      return;
    }
    res.on('finish', () => events.push('response finished'));
    serverSide = req.socket;
    slow.resolve(res);
  });
  const idle = await h.client();
  await idle.write(get('/quick'));
  await idle.responses(1);
  const busy = await h.client();
  await busy.write(get('/slow', 'Connection: close\r\n'));
  const pending = await within('the slow request', slow.promise);
  const closed = signal();
  h.server.close(() => {
    events.push(`close cb, the connection ${serverSide?.destroyed === true ? 'closed' : 'open'}`);
    closed.resolve();
  });
  await idle.closedWithin();
  t.pass('the idle connection was closed at once');
  await t.rejects(RawClient.open(h.port), { code: 'ECONNREFUSED' }, 'no new connection is accepted');
  t.same(events, [], 'cb waits for the in-flight request');
  pending.end('slow done');
  const [answer] = await busy.responses(1);
  t.equal(answer!.body.toString(), 'slow done');
  await within('close cb', closed.promise);
  t.same(events, ['response finished', 'close cb, the connection closed']);
  await busy.closedWithin();
  t.equal(busy.bytes.length, answer!.end, 'the client got the answer and then the close');
});

t.test('closeAllConnections cuts every connection, a response in flight included (it is destroyed and emits close)', TEST(), async (t) => {
  const slow = signal<Http1Response>();
  const h = await startServer(t, (req, res) => {
    if (req.url === '/slow') slow.resolve(res);
    else res.end('quick');
  });
  const idle = await h.client();
  await idle.write(get('/quick'));
  await idle.responses(1);
  const busy = await h.client();
  await busy.write(get('/slow'));
  const pending = await within('the slow request', slow.promise);
  const resClosed = once(pending, 'close');
  h.server.closeAllConnections();
  await Promise.all([idle.closedWithin(), busy.closedWithin()]);
  await within('close on the response', resClosed);
  t.equal(pending.destroyed, true);
  t.equal(pending.writableFinished, false);
  t.equal(busy.text, '', 'the busy client got nothing');
});

// ---------------------------------------------------------------------------------------
// 10. Upgrade and CONNECT

t.test('upgrade: Connection: Upgrade + Upgrade: websocket emits upgrade with (req, socket, head), head the bytes after the request head; later bytes reach only the listener', TEST(), async (t) => {
  let calls = 0;
  const h = await startServer(t, (_req, res) => {
    calls++;
    res.end('http');
  });
  const upgraded = signal<{ url: string; upgrade: unknown; head: string; dataListeners: number }>();
  h.server.on('upgrade', (req: Http1Request, socket: Socket, head: Buffer) => {
    upgraded.resolve({ url: req.url, upgrade: req.headers.upgrade, head: head.toString('latin1'), dataListeners: socket.listenerCount('data') });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString('latin1')}`));
    // The socket is handed over paused (http1-connection.ts): its new reader resumes it.
    socket.resume();
  });
  const c = await h.client();
  await c.write('GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nEARLY');
  const up = await within('upgrade', upgraded.promise);
  t.same(up, { url: '/chat', upgrade: 'websocket', head: 'EARLY', dataListeners: 0 }, 'the request, the bytes after its head, and no HTTP reader left on the socket');
  const [switching] = await c.responses(1);
  t.equal(switching!.status, 101);
  const after = get('/not-http');
  await c.write(after);
  await c.until('the echo', () => c.text.endsWith(`echo:${after}`));
  t.equal(c.text.slice(switching!.end), `echo:${after}`, 'only the listener answered');
  t.equal(calls, 0, 'the HTTP handler never saw the bytes after the upgrade');
});

t.test('upgrade: bytes that arrive before the listener starts reading the socket are kept for it, not lost', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => res.end());
  const upgraded = signal<Socket>();
  h.server.on('upgrade', (_req: Http1Request, socket: Socket) => {
    // The listener takes its time (e.g. connects upstream) before it reads.
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    upgraded.resolve(socket);
  });
  const c = await h.client();
  const head = 'GET /chat HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
  await c.write(head);
  const socket = await within('upgrade', upgraded.promise);
  await c.responses(1);
  await c.write('PING');
  // Wait, bounded, until the server's side has taken the bytes off the wire (no event tells it without reading them).
  const deadline = performance.now() + WAIT_MS;
  while (socket.bytesRead < head.length + 4 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.equal(socket.bytesRead, head.length + 4, 'the server side took PING off the wire');
  // Now the listener reads (and resumes the socket, as the contract asks of it).
  const got: Buffer[] = [];
  const first = within('the bytes kept for the listener', once(socket, 'data'), 1_000).catch(() => undefined);
  socket.on('data', (d: Buffer) => got.push(d));
  socket.resume();
  await first;
  t.equal(Buffer.concat(got).toString(), 'PING', 'the listener reads the bytes that came before it started reading');
});

t.test('upgrade works with ws\'s WebSocketServer.handleUpgrade as on node:http (its reader only adds a data listener)', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => res.end());
  const wss = new WebSocketServer({ noServer: true });
  t.teardown(() => wss.close());
  h.server.on('upgrade', (req: Http1Request, socket: Socket, head: Buffer) => {
    wss.handleUpgrade(req as unknown as IncomingMessage, socket, head, (ws) => ws.on('message', (m) => ws.send(`echo ${String(m)}`)));
  });
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/chat`);
  t.teardown(() => ws.terminate());
  await within('open', once(ws, 'open'));
  ws.send('hi');
  const [message] = await within('the echo', once(ws, 'message'), 2_000).catch(() => [undefined]);
  t.equal(message === undefined ? undefined : String(message), 'echo hi', 'the message reached the server and its answer came back');
});

t.test('CONNECT without a connect listener closes the connection without an answer; the handler is not called', TEST(), async (t) => {
  let calls = 0;
  const h = await startServer(t, (_req, res) => {
    calls++;
    res.end();
  });
  const c = await h.client();
  await c.write('CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n');
  await c.closedWithin();
  t.equal(c.text, '', 'nothing was sent');
  t.equal(calls, 0);
  t.same(h.clientErrors, []);
});

// ---------------------------------------------------------------------------------------
// 11. Bad input

t.test('a malformed head reaches clientError with an HPE_ code, is answered 400 and the connection closes; the handler is not called', TEST(), async (t) => {
  let calls = 0;
  const h = await startServer(t, (_req, res) => {
    calls++;
    res.end();
  });
  const cases: [string, string][] = [
    ['GET / HTTP/1.1\r\nBad Header: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
    ['GET / HTTP/1.1\r\nHost: app.test\nX: y\r\n\r\n', 'HPE_CR_EXPECTED'],
    ['GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
  ];
  for (const [bytes, code] of cases) {
    const before = h.clientErrors.length;
    const c = await h.client();
    await c.write(bytes);
    await c.closedWithin();
    t.match(c.text, /^HTTP\/1\.1 400 /, `${JSON.stringify(bytes)} answered 400`);
    t.equal(h.clientErrors[before]?.code, code, code);
  }
  t.equal(calls, 0);
});

t.test('bytes that cannot begin a valid head (a TLS ClientHello sent to the plain port) are refused at once, long before headersTimeout', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => res.end());
  h.server.headersTimeout = 60_000;
  const c = await h.client();
  const started = performance.now();
  await c.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
  await c.closedWithin();
  t.match(c.text, /^HTTP\/1\.1 400 /, 'answered 400');
  t.equal(h.clientErrors.at(-1)?.code, 'HPE_INVALID_METHOD');
  t.ok(performance.now() - started < 5000, 'within seconds, not at the 60 s head timeout');
});

t.test('a malformed chunk in a body reaches clientError with an HPE_ code; its request emits aborted and an ECONNRESET error after the data before the fault', TEST(), async (t) => {
  const called = signal();
  const outcome = signal<{ data: string; aborted: boolean; error: string | undefined }>();
  const h = await startServer(t, (req) => {
    let data = '';
    let aborted = false;
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('aborted', () => (aborted = true));
    req.on('error', (err: CodedError) => outcome.resolve({ data, aborted, error: err.code }));
    req.on('end', () => outcome.resolve({ data, aborted, error: undefined }));
    called.resolve();
  });
  const c = await h.client();
  await c.write('POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n');
  await within('the handler', called.promise);
  await c.write('5\r\nhello\r\nzz\r\n');
  t.same(await within('the body\'s end', outcome.promise), { data: 'hello', aborted: true, error: 'ECONNRESET' });
  t.match((await h.clientError()).code, /^HPE_/);
  t.equal(h.clientErrors[0]?.code, 'HPE_INVALID_CHUNK_SIZE');
  await c.closedWithin();
  t.match(c.text, /^HTTP\/1\.1 400 /);
});

t.test('a client that half-closes after a complete request still gets its answer, then the server closes', TEST(), async (t) => {
  const h = await startServer(t, (req, res) => {
    // Answer only once the client's FIN has arrived.
    req.socket.once('end', () => res.end('after your FIN'));
  });
  const c = await h.client();
  await c.write(get('/half'));
  c.socket.end();
  const [res] = await c.responses(1);
  t.equal(res!.body.toString(), 'after your FIN');
  await c.closedWithin();
  t.same(h.clientErrors, []);
});

t.test('after a Connection: close answer the client\'s FIN does not end the socket a second time (Node would build and drop an error for it)', TEST(), async (t) => {
  let ends = 0;
  const serverClosed = signal();
  const h = await startServer(t, (_req, res) => {
    const socket = res.socket;
    const end = socket.end;
    socket.end = function (this: unknown, ...args: unknown[]) {
      ends++;
      return (end as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof end;
    socket.once('close', () => serverClosed.resolve());
    res.end('bye');
  });
  const c = await h.client();
  await c.write(get('/close', 'Connection: close\r\n'));
  const [res] = await c.responses(1);
  t.same(all(res!, 'connection'), ['close']);
  await c.closedWithin();
  c.socket.end(); // the client's FIN, after the server's
  await within('the server side\'s close', serverClosed.promise);
  t.equal(ends, 1, 'the socket was ended once, by the answer');
  t.same(h.clientErrors, []);
});

t.test('the answer to a request that asked for Connection: close closes the connection once written, without waiting for the client\'s FIN', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => res.end('bye'));
  const c = await h.client(true);
  const side = await h.serverSide(c);
  const sideClosed = once(side, 'close');
  await c.write(get('/close', 'Connection: close\r\n'));
  const [res] = await c.responses(1);
  t.same(all(res!, 'connection'), ['close']);
  t.equal(res!.body.toString(), 'bye');
  await within('the server side\'s close while the client keeps its side open', sideClosed);
  t.equal(c.socket.writableEnded, false, 'the client never sent its FIN');
});

t.test('a keep-alive connection the server closes (its answer says Connection: close) is half-closed and read until the client closes: the client\'s late request meets no reset', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => {
    res.setHeader('Connection', 'close');
    res.end('last one');
  });
  const c = await h.client(true);
  const side = await h.serverSide(c);
  let clientError: Error | undefined;
  c.socket.on('error', (err) => (clientError = err));
  const ended = once(c.socket, 'end');
  await c.write(get('/a'));
  const [res] = await c.responses(1);
  t.same(all(res!, 'connection'), ['close']);
  await within('the server\'s FIN', ended);
  // The next request, sent before the client has seen the close: read (and dropped) by the server, not refused.
  const late = get('/b');
  await c.write(late);
  await h.received(side, Buffer.byteLength(get('/a')) + Buffer.byteLength(late));
  t.equal(side.destroyed, false, 'the server side is still open, reading');
  const sideClosed = once(side, 'close');
  c.socket.end();
  await within('the server side\'s close after the client\'s FIN', sideClosed);
  t.equal(clientError, undefined, 'no reset reached the client');
  t.equal(parseResponses(c.bytes, true).length, 1, 'one answer only');
});

// ---------------------------------------------------------------------------------------
// 12. Response head and backpressure

t.test('writeHead refuses a value with CR/LF (ERR_INVALID_CHAR) and a name that is not a token (ERR_INVALID_HTTP_TOKEN), sending nothing; the response can then be written', TEST(), async (t) => {
  const codes: string[] = [];
  const h = await startServer(t, (_req, res) => {
    const attempts: (() => unknown)[] = [
      () => res.writeHead(200, { 'X-Bad': 'a\r\nInjected: yes' }),
      () => res.writeHead(200, ['X-Bad', 'a\nInjected: yes']),
      () => res.writeHead(200, { 'Bad Name': 'x' }),
      () => res.writeHead(200, ['Bad:Name', 'x']),
      () => res.setHeader('X-Bad', 'a\rb'),
    ];
    for (const attempt of attempts) {
      try {
        attempt();
        codes.push('no error');
      } catch (err) {
        codes.push(`${(err as CodedError).code} headersSent=${res.headersSent}`);
      }
    }
    res.end('ok');
  });
  const c = await h.client();
  await c.write(get('/'));
  const [res] = await c.responses(1);
  t.same(codes, [
    'ERR_INVALID_CHAR headersSent=false',
    'ERR_INVALID_CHAR headersSent=false',
    'ERR_INVALID_HTTP_TOKEN headersSent=false',
    'ERR_INVALID_HTTP_TOKEN headersSent=false',
    'ERR_INVALID_CHAR headersSent=false',
  ]);
  t.equal(res!.status, 200);
  t.equal(res!.body.toString(), 'ok');
  t.notMatch(c.text, /Injected|Bad/, 'nothing of the refused fields was sent');
});

t.test('setHeader fields are sent; a field of the same name (any case) given to writeHead replaces them, others stay', TEST(), async (t) => {
  const h = await startServer(t, (_req, res) => {
    res.setHeader('X-Replaced', 'from setHeader');
    res.setHeader('X-Kept', ['one', 'two']);
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.writeHead(201, { 'x-replaced': 'from writeHead', 'Content-Length': '4' });
    res.end('body');
  });
  const c = await h.client();
  await c.write(get('/'));
  const [res] = await c.responses(1);
  t.equal(res!.status, 201);
  t.same(all(res!, 'x-replaced'), ['from writeHead'], 'writeHead\'s field replaced setHeader\'s');
  t.same(all(res!, 'x-kept'), ['one', 'two'], 'an array value is sent as repeated fields');
  t.same(all(res!, 'set-cookie'), ['a=1', 'b=2']);
  t.equal(field(res!, 'content-length'), '4');
  t.equal(res!.body.toString(), 'body');
});

t.test('a first body chunk of up to 16 KiB leaves in one socket write with the head; a larger one, and later chunks, as written; every write callback is called', TEST(), async (t) => {
  const writes: number[] = [];
  const callbacks: string[] = [];
  const h = await startServer(t, (req, res) => {
    const size = req.url === '/small' ? 100 : 64 * 1024;
    writes.length = 0;
    const socketWrite = res.socket.write;
    res.socket.write = function (this: unknown, ...args: unknown[]) {
      writes.push(typeof args[0] === 'string' ? args[0].length : (args[0] as Buffer).length);
      return (socketWrite as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof socketWrite;
    res.writeHead(200, { 'content-length': size + 3 });
    res.write(Buffer.alloc(size, 's'), () => callbacks.push(`${req.url} first`));
    res.end(Buffer.from('end'), () => callbacks.push(`${req.url} end`));
    res.socket.write = socketWrite;
  });
  const c = await h.client();
  await c.write(get('/small'));
  const [small] = await c.responses(1);
  t.equal(writes.length, 2, 'the head with the first chunk, then the last chunk');
  t.equal(writes[0], small!.head.length + 4 + 100, 'the first write is the head and the whole first chunk');
  t.equal(small!.body.toString(), 's'.repeat(100) + 'end');
  await c.write(get('/large'));
  const [, large] = await c.responses(2);
  t.equal(writes.length, 3, 'a 64 KiB first chunk is not copied behind the head: head, chunk, last chunk');
  t.equal(large!.body.length, 64 * 1024 + 3);
  t.same(callbacks.sort(), ['/large end', '/large first', '/small end', '/small first']);
});

t.test('a later body chunk of a response with a length leaves as one plain socket write, not corked into a writev', TEST(), async (t) => {
  const corks: number[] = [];
  const h = await startServer(t, (_req, res) => {
    res.writeHead(200, { 'content-length': 300 });
    res.write(Buffer.alloc(100, 'a')); // with the head
    const socket = res.socket;
    const cork = socket.cork;
    let n = 0;
    socket.cork = function (this: typeof socket) {
      n++;
      return cork.call(this);
    };
    res.write(Buffer.alloc(100, 'b'));
    corks.push(n);
    res.end(Buffer.alloc(100, 'c'));
    socket.cork = cork;
  });
  const c = await h.client();
  await c.write(get('/'));
  const [res] = await c.responses(1);
  t.same(corks, [0], 'the middle chunk was written without cork');
  t.equal(res!.body.toString(), 'a'.repeat(100) + 'b'.repeat(100) + 'c'.repeat(100));
});

t.test('res.write returns false while a client does not read a large answer, and drain follows only once the client has read', TEST(), async (t) => {
  const size = 32 * 1024 * 1024; // more than the kernel's socket buffers on both sides hold
  const blocked = signal<{ ok: boolean; needDrain: boolean }>();
  const drained = signal<{ clientHad: number; needDrain: boolean }>();
  let client: RawClient | undefined;
  const h = await startServer(t, (_req, res) => {
    res.writeHead(200, { 'content-length': size });
    const ok = res.write(Buffer.alloc(size, 'r'));
    res.once('drain', () => {
      drained.resolve({ clientHad: client!.received, needDrain: res.writableNeedDrain });
      res.end();
    });
    blocked.resolve({ ok, needDrain: res.writableNeedDrain });
  });
  const c = (client = await h.client());
  c.socket.pause(); // the client reads nothing yet
  await c.write(get('/large'));
  t.same(await within('the write', blocked.promise), { ok: false, needDrain: true }, 'write returned false, writableNeedDrain set');
  c.socket.resume();
  const drain = await within('drain', drained.promise, 10_000);
  t.ok(drain.clientHad >= size / 4, `drain came once the client had read most of the answer (${drain.clientHad} of ${size} bytes)`);
  t.equal(drain.needDrain, false, 'writableNeedDrain cleared at drain');
  await c.until('the whole answer', () => c.received >= size, 10_000);
  const [res] = await c.responses(1);
  t.equal(res!.body.length, size, 'the whole answer arrived');
});

t.test('req.headers follows Node\'s rules for repeated fields: single-valued ones keep their first value, cookie joins with "; ", set-cookie is a list, others join with ", "', TEST(), async (t) => {
  const head = [
    'GET /h HTTP/1.1', 'Host: a.test', 'Host: b.test', 'Content-Type: text/plain', 'Content-Type: text/html',
    'User-Agent: one', 'User-Agent: two', 'Cookie: a=1', 'Cookie: b=2', 'Set-Cookie: x=1', 'Set-Cookie: y=2',
    'Accept: text/html', 'Accept: */*', 'X-Custom: 1', 'x-custom: 2', 'Authorization: first', 'Authorization: second',
  ].join('\r\n') + '\r\n\r\n';
  const read = async (listen: (onHeaders: (h: Record<string, unknown>) => void) => Promise<{ port: number; close: () => void }>) => {
    let resolve!: (h: Record<string, unknown>) => void;
    const seen = new Promise<Record<string, unknown>>((r) => (resolve = r));
    const server = await listen(resolve);
    t.teardown(server.close);
    const socket = connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(head);
    const headers = await within('headers', seen);
    socket.destroy();
    return { ...headers };
  };
  const ours = await read(async (onHeaders) => {
    const server = new Http1Server({}, (req, res) => {
      onHeaders(req.headers);
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, close: () => server.close() };
  });
  const node = await read(async (onHeaders) => {
    const server = createNodeServer({ requireHostHeader: false }, (req, res) => {
      onHeaders(req.headers);
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, close: () => server.close() };
  });
  t.same(ours, node, 'the same object as Node\'s');
  t.equal(ours['host'], 'a.test');
  t.equal(ours['cookie'], 'a=1; b=2');
  t.same(ours['set-cookie'], ['x=1', 'y=2']);
  t.equal(ours['x-custom'], '1, 2');
});
