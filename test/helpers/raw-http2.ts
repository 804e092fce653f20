/**
 * An HTTP/2 client that writes its own frames, for requests Node's client refuses to send
 * (connection-specific fields such as `TE: gzip`). Header blocks are HPACK literals
 * without indexing or Huffman coding (RFC 7541 §6.2.2), so any field goes out as written.
 * Frames received are kept whole; the server's SETTINGS are acknowledged. Only what the
 * tests need: no flow control of its own (the default 64 KiB windows suffice), no
 * decoding of the server's header blocks.
 */
import { once } from 'node:events';
import { connect, type TLSSocket } from 'node:tls';

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, GOAWAY: 0x7 } as const;
/** The flag of a frame that ends its stream (DATA, HEADERS). */
export const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

export class RawHttp2 {
  readonly frames: Frame[] = [];
  readonly #socket: TLSSocket;
  #buffer = Buffer.alloc(0);
  #waiters: (() => void)[] = [];

  private constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('error', () => {});
  }

  /** Connects with ALPN `h2` and sends the connection preface and an empty SETTINGS frame. */
  static async open(port: number, servername: string): Promise<RawHttp2> {
    const socket = connect({ host: '127.0.0.1', port, servername, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    await once(socket, 'secureConnect');
    if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN chose ${String(socket.alpnProtocol)}, not h2`);
    const client = new RawHttp2(socket);
    socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    client.#frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0));
    return client;
  }

  /** A GET on `stream` (odd, increasing) with the fields given, in order, after the pseudo-headers. */
  get(stream: number, authority: string, path: string, fields: readonly [string, string][] = []): void {
    const all: [string, string][] = [[':method', 'GET'], [':scheme', 'https'], [':authority', authority], [':path', path], ...fields];
    this.#frame(FRAME.HEADERS, END_STREAM | END_HEADERS, stream, Buffer.concat(all.map(([n, v]) => literal(n, v))));
  }

  /** Resolves with the first frame received (before or after the call) that `match` accepts; rejects after `ms`. */
  async frame(match: (f: Frame) => boolean, ms = 5000): Promise<Frame> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.frames.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such frame within ${ms} ms (got types ${this.frames.map((f) => `${f.type}@${f.stream}`).join(' ')})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The DATA payloads of `stream` received so far, joined. */
  body(stream: number): string {
    return Buffer.concat(this.frames.filter((f) => f.type === FRAME.DATA && f.stream === stream).map((f) => f.payload)).toString();
  }

  close(): void {
    this.#socket.destroy();
  }

  #frame(type: number, flags: number, stream: number, payload: Buffer): void {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    this.#socket.write(Buffer.concat([head, payload]));
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 9) {
      const length = this.#buffer.readUIntBE(0, 3);
      if (this.#buffer.length < 9 + length) break;
      const frame = { type: this.#buffer[3]!, flags: this.#buffer[4]!, stream: this.#buffer.readUInt32BE(5) & 0x7fffffff, payload: this.#buffer.subarray(9, 9 + length) };
      this.#buffer = this.#buffer.subarray(9 + length);
      this.frames.push(frame);
      if (frame.type === FRAME.SETTINGS && (frame.flags & ACK) === 0) this.#frame(FRAME.SETTINGS, ACK, 0, Buffer.alloc(0));
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** A header field as an HPACK literal without indexing, new name, no Huffman coding (names and values under 127 bytes). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  if (n.length > 126 || v.length > 126) throw new Error('field too long for this encoder');
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

/** The error code of a RST_STREAM or GOAWAY frame. */
export function errorCode(f: Frame): number {
  return f.type === FRAME.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}
