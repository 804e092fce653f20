/**
 * Input generators for fuzzing, shared by test/fuzz.test.ts (small fixed counts) and
 * bench/fuzz.ts (many more): a seeded PRNG, byte-level mutations, and corpora of real
 * inputs — config files, PROXY protocol headers, HTTP/1.1 request heads — to mutate.
 * Everything derives from one seed, so a seed printed by a failing run reproduces it
 * (`FUZZ_SEED=<seed>`).
 */
import { readFileSync } from 'node:fs';
import { encodeProxyHeader } from '../../src/data/proxy-protocol.js';

/** A small, fast, seedable PRNG (mulberry32): `next()` in [0, 1). */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let z = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** `FUZZ_SEED` if set (decimal), else a fresh random seed; print it so a run can be repeated. */
export function fuzzSeed(): number {
  const env = process.env.FUZZ_SEED;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env) >>> 0;
  return Math.floor(Math.random() * 2 ** 32);
}

/** Bytes that matter to the parsers under test: delimiters, whitespace, controls, digits. */
const INTERESTING = Buffer.from('\0\r\n\t :;,"=-+0179afxzAFXZ\x7f\x80\xff/?#%[]{}&*!|>@\'`');

/** Applies 1–4 random byte-level mutations to `input` (never longer than `maxLength`). */
export function mutate(rng: Rng, input: Buffer, maxLength = 64 * 1024): Buffer {
  let b = Buffer.from(input);
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const at = b.length === 0 ? 0 : rng.int(b.length);
    switch (rng.int(8)) {
      case 0: // flip a bit
        if (b.length > 0) b[at]! ^= 1 << rng.int(8);
        break;
      case 1: // overwrite with an interesting byte
        if (b.length > 0) b[at] = INTERESTING[rng.int(INTERESTING.length)]!;
        break;
      case 2: // insert interesting bytes
        b = Buffer.concat([b.subarray(0, at), Buffer.from([INTERESTING[rng.int(INTERESTING.length)]!]), b.subarray(at)]);
        break;
      case 3: // delete a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(8))]);
        break;
      case 4: { // duplicate a slice
        const len = 1 + rng.int(Math.min(64, b.length + 1));
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
        break;
      }
      case 5: // truncate
        b = b.subarray(0, at);
        break;
      case 6: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(8)), b.subarray(at)]);
        break;
      default: { // replace a run with a long repetition (sizes, lengths, overflows)
        const fill = Buffer.alloc(1 + rng.int(rng.next() < 0.1 ? 20_000 : 40), rng.pick(['9', 'f', ' ', 'a', '\t', '-']));
        b = Buffer.concat([b.subarray(0, at), fill, b.subarray(at + rng.int(4))]);
      }
    }
  }
  return b.length > maxLength ? b.subarray(0, maxLength) : b;
}

/** Real config files: the shipped example and the shapes the README documents. */
export function configCorpus(): string[] {
  const shipped = readFileSync(new URL('../../config/fairway.yaml', import.meta.url), 'utf8');
  return [
    shipped,
    `listen: { http: 127.0.0.1:8080, admin: 127.0.0.1:9090 }
timeouts: { connect: 2s, clientHeaders: 10s, clientRequest: 2m, clientIdle: 30s }
limits: { maxBodySize: 10mb, maxHeaderSize: 16kb, maxHeadersCount: 100, maxUrlLength: 8kb, maxConnectionsPerClient: 64 }
trustedProxies: [10.0.0.0/8]
proxyProtocol: { http: true, headerTimeout: 5s }
apps:
  web:
    domains: [web.example.com, "*.web.example.com"]
    sticky: true
    versions:
      v1: { weight: 90, endpoints: ["127.0.0.1:3001", "127.0.0.1:3002"] }
      v2: { weight: 10, endpoints: ["127.0.0.1:3003"] }
    allow: [192.168.0.0/16]
    timeouts: { connect: 1s, read: 30s }
    bodySize: 1mb
    versionHeader: { allowFrom: [10.1.0.0/16] }
`,
    `platformDomain: example.com
tls:
  sslEnforce: true
  hsts: { maxAge: 600 }
compression: { encodings: [gzip], gzipLevel: 6, types: [text/html, application/json] }
tcp:
  ssh: { listen: 0.0.0.0:2222, endpoints: ["127.0.0.1:22"], sendProxyProtocol: v2 }
apps:
  api:
    domains: [api]
    versions: { stable: { weight: 1, endpoints: ["10.0.0.5:8080"] } }
    maintenance: false
    errorPages: { "503": down.html }
log: { level: warn, access: true, perApp: { entries: 100, maxBytes: 1mb } }
`,
  ];
}

/** A config text: a mutated real config, a recombination of real lines, or random bytes. */
export function configInput(rng: Rng, corpus: readonly string[]): string {
  const roll = rng.next();
  if (roll < 0.7) return mutate(rng, Buffer.from(rng.pick(corpus)), 16 * 1024).toString('utf8');
  if (roll < 0.9) {
    const lines = corpus.flatMap((c) => c.split('\n'));
    return Array.from({ length: 1 + rng.int(30) }, () => rng.pick(lines)).join('\n');
  }
  return rng.bytes(rng.int(512)).toString('latin1');
}

const V4 = ['192.0.2.1', '10.0.0.1', '255.255.255.255', '0.0.0.0'];
const V6 = ['2001:db8::1', '::1', 'fe80::1', '::ffff:192.0.2.1'];

/** A valid PROXY header, v1 or v2, of either family. */
function proxyHeader(rng: Rng): Buffer {
  const v6 = rng.next() < 0.5;
  const family = v6 ? 'IPv6' : 'IPv4';
  const list = v6 ? V6 : V4;
  const addresses = { sourceAddress: rng.pick(list), destinationAddress: rng.pick(list), sourcePort: rng.int(65536), destinationPort: rng.int(65536), family } as const;
  if (rng.next() < 0.1) return Buffer.from(rng.next() < 0.5 ? 'PROXY UNKNOWN\r\n' : 'PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n');
  return encodeProxyHeader(rng.next() < 0.5 ? 1 : 2, addresses);
}

/** A PROXY header as a load balancer would send it (often followed by the client's bytes), mutated; or random bytes. */
export function proxyInput(rng: Rng): Buffer {
  const valid = Buffer.concat([proxyHeader(rng), rng.next() < 0.3 ? Buffer.from('GET / HTTP/1.1\r\n') : Buffer.alloc(0)]);
  const roll = rng.next();
  if (roll < 0.15) return valid;
  if (roll < 0.9) return mutate(rng, valid, 8 * 1024);
  return rng.bytes(rng.int(256));
}

/** Well-formed request heads (and bodies) for host `host`. */
export function requestCorpus(host: string): string[] {
  return [
    `GET /path?q=1 HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n`,
    `POST /form HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello`,
    `POST /upload HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n`,
    `GET http://${host}/absolute HTTP/1.1\r\nHost: ${host}\r\nCookie: a=b; c=d\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n`,
    `HEAD / HTTP/1.0\r\nHost: ${host}\r\nConnection: keep-alive\r\n\r\n`,
    `OPTIONS * HTTP/1.1\r\nHost: ${host}\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n`,
    `GET /ws HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  ];
}

/** A request: a mutated well-formed one (closing the connection after it, mostly), or random bytes. */
export function requestInput(rng: Rng, corpus: readonly string[]): Buffer {
  const roll = rng.next();
  if (roll < 0.9) return mutate(rng, Buffer.from(rng.pick(corpus), 'latin1'), 32 * 1024);
  return rng.bytes(1 + rng.int(1024));
}
