/**
 * @module
 * The PROXY protocol (HAProxy's spec, versions 1 and 2) as a pure codec: {@link parseProxyHeader}
 * reads the header a load balancer sends before the client's first byte, and
 * {@link encodeProxyHeader} writes one for a TCP passthrough endpoint. No sockets here
 * (see {@link ProxyProtocolGate} for the listener side), so every rule is tested directly.
 *
 * Accepted:
 * - v1 (text): `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` and `PROXY UNKNOWN[ …]\r\n`,
 *   at most 107 bytes, single spaces, addresses of the family named, ports 0–65535 in decimal.
 * - v2 (binary): the 12-byte signature, version 2, command LOCAL or PROXY, families
 *   AF_UNSPEC, AF_INET, AF_INET6 and AF_UNIX, any transport; TLVs after the addresses are
 *   walked (each must fit) and skipped. The whole header is at most {@link MAX_HEADER_BYTES}.
 *
 * An address is declared only by PROXY over TCP4/TCP6 (v1) or AF_INET/AF_INET6 (v2). LOCAL
 * (the balancer's own health checks), `UNKNOWN`, AF_UNSPEC and AF_UNIX declare none: the
 * connection keeps its real peer address, as the spec asks.
 */
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

/** v2 signature: `\r\n\r\n\0\r\nQUIT\n`. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The longest v1 line, CRLF included (the spec's figure). */
export const V1_MAX_BYTES = 107;
/** The largest v2 header accepted, signature and TLVs included (the spec allows 16 + 65535; TLVs in use are far smaller). */
export const MAX_HEADER_BYTES = 4096;

/** The endpoints a PROXY header declares. */
export interface ProxiedAddresses {
  /** The client: IPv4 dotted, or IPv6 in lower case (IPv4-mapped IPv6 written as IPv4). */
  readonly sourceAddress: string;
  readonly sourcePort: number;
  /** The address the client connected to (the balancer's frontend). */
  readonly destinationAddress: string;
  readonly destinationPort: number;
  readonly family: 'IPv4' | 'IPv6';
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /** Bytes the header took; the connection's own data starts after them. */
  readonly length: number;
  /** Undefined for LOCAL, UNKNOWN, AF_UNSPEC and AF_UNIX: keep the connection's real peer. */
  readonly addresses: ProxiedAddresses | undefined;
}

/** Why bytes are not a PROXY header. */
export type ProxyHeaderFault = 'invalid' | 'too_large';

/** A header, `incomplete` (more bytes could still make one), or a fault. */
export type ParseResult = ProxyHeader | 'incomplete' | ProxyHeaderFault;

/**
 * Parses the PROXY header at the start of `data` (everything received so far). Decides
 * as early as the bytes allow: a first byte that starts neither version is `invalid` at
 * once, so a client that does not speak the protocol is refused without waiting.
 */
export function parseProxyHeader(data: Buffer): ParseResult {
  if (data.length === 0) return 'incomplete';
  if (data[0] === 0x50 /* P */) return parseV1(data);
  if (data[0] === 0x0d) return parseV2(data);
  return 'invalid';
}

function parseV1(data: Buffer): ParseResult {
  const prefix = Math.min(data.length, V1_PREFIX.length);
  if (data.compare(V1_PREFIX, 0, prefix, 0, prefix) !== 0) return 'invalid';
  const end = data.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (data.length >= V1_MAX_BYTES) return 'too_large';
    // A lone LF or any byte outside printable ASCII can never become a valid line.
    for (let i = 0; i < data.length; i++) if (!printable(data[i]!) && !(data[i] === 0x0d && i === data.length - 1)) return 'invalid';
    return 'incomplete';
  }
  if (end + 2 > V1_MAX_BYTES) return 'too_large';
  const line = data.toString('latin1', V1_PREFIX.length, end);
  const length = end + 2;
  const parts = line.split(' ');
  if (parts[0] === 'UNKNOWN') return { version: 1, length, addresses: undefined };
  if (parts.length !== 5 || (parts[0] !== 'TCP4' && parts[0] !== 'TCP6')) return 'invalid';
  const v4 = parts[0] === 'TCP4';
  const [, src, dst, sport, dport] = parts as [string, string, string, string, string];
  if (!(v4 ? isIPv4(src) && isIPv4(dst) : isIPv6(src) && isIPv6(dst))) return 'invalid';
  const sourcePort = port(sport);
  const destinationPort = port(dport);
  if (sourcePort < 0 || destinationPort < 0) return 'invalid';
  return {
    version: 1,
    length,
    addresses: { sourceAddress: canonical(src, v4), sourcePort, destinationAddress: canonical(dst, v4), destinationPort, family: v4 ? 'IPv4' : 'IPv6' },
  };
}

function parseV2(data: Buffer): ParseResult {
  const prefix = Math.min(data.length, V2_SIGNATURE.length);
  if (data.compare(V2_SIGNATURE, 0, prefix, 0, prefix) !== 0) return 'invalid';
  if (data.length < 16) return 'incomplete';
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) return 'invalid';
  const command = versionCommand & 0x0f;
  if (command > 1) return 'invalid';
  const family = data[13]! >> 4;
  const transport = data[13]! & 0x0f;
  if (family > 3 || transport > 2) return 'invalid';
  const length = 16 + data.readUInt16BE(14);
  if (length > MAX_HEADER_BYTES) return 'too_large';
  if (data.length < length) return 'incomplete';
  // AF_INET: 4+4+2+2 bytes of addresses; AF_INET6: 16+16+2+2; AF_UNIX: 108+108.
  const addressBytes = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
  if (length - 16 < addressBytes) return 'invalid';
  // TLVs: type (1), length (2), value; each must fit in what is left.
  for (let at = 16 + addressBytes; at < length; ) {
    if (at + 3 > length) return 'invalid';
    at += 3 + data.readUInt16BE(at + 1);
    if (at > length) return 'invalid';
  }
  if (command === 0 /* LOCAL */ || (family !== 1 && family !== 2)) return { version: 2, length, addresses: undefined };
  if (family === 1) {
    return {
      version: 2,
      length,
      addresses: {
        sourceAddress: `${data[16]}.${data[17]}.${data[18]}.${data[19]}`,
        destinationAddress: `${data[20]}.${data[21]}.${data[22]}.${data[23]}`,
        sourcePort: data.readUInt16BE(24),
        destinationPort: data.readUInt16BE(26),
        family: 'IPv4',
      },
    };
  }
  return {
    version: 2,
    length,
    addresses: {
      sourceAddress: ipv6Text(data, 16),
      destinationAddress: ipv6Text(data, 32),
      sourcePort: data.readUInt16BE(48),
      destinationPort: data.readUInt16BE(50),
      family: 'IPv6',
    },
  };
}

/**
 * A PROXY header declaring `addresses` (v1 text or v2 binary, command PROXY, TCP). Used
 * by TCP passthrough routes that send the client's address on to their endpoints. Both
 * addresses IPv4: TCP4/AF_INET; otherwise TCP6/AF_INET6, an IPv4 one written IPv4-mapped
 * (`::ffff:a.b.c.d`). `family` is not consulted.
 */
export function encodeProxyHeader(version: 1 | 2, addresses: ProxiedAddresses): Buffer {
  const v4 = isIPv4(addresses.sourceAddress) && isIPv4(addresses.destinationAddress);
  const text = (a: string) => (v4 || !isIPv4(a) ? a : `::ffff:${a}`);
  const s = text(addresses.sourceAddress);
  const d = text(addresses.destinationAddress);
  if (version === 1) {
    return Buffer.from(`PROXY ${v4 ? 'TCP4' : 'TCP6'} ${s} ${d} ${addresses.sourcePort} ${addresses.destinationPort}\r\n`, 'latin1');
  }
  const addressBytes = v4 ? 12 : 36;
  const out = Buffer.alloc(16 + addressBytes);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = v4 ? 0x11 : 0x21; // AF_INET / AF_INET6, STREAM
  out.writeUInt16BE(addressBytes, 14);
  const width = v4 ? 4 : 16;
  writeAddress(out, 16, s, v4);
  writeAddress(out, 16 + width, d, v4);
  out.writeUInt16BE(addresses.sourcePort, 16 + 2 * width);
  out.writeUInt16BE(addresses.destinationPort, 18 + 2 * width);
  return out;
}

function printable(byte: number): boolean {
  return byte >= 0x20 && byte <= 0x7e;
}

/** A decimal port 0–65535 (digits only, at most 5), or -1. */
function port(text: string): number {
  if (!/^\d{1,5}$/.test(text)) return -1;
  const n = Number(text);
  return n <= 65535 ? n : -1;
}

/** IPv6 as RFC 5952 text (as v2's addresses are written), IPv4-mapped as IPv4. */
function canonical(address: string, v4: boolean): string {
  if (v4) return address;
  const text = new SocketAddress({ address, family: 'ipv6' }).address;
  return text.startsWith('::ffff:') && isIPv4(text.slice(7)) ? text.slice(7) : text;
}

/** RFC 5952 text of the 16 bytes at `at` (IPv4-mapped written as IPv4). */
function ipv6Text(data: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(data.readUInt16BE(at + 2 * i));
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `${data[at + 12]}.${data[at + 13]}.${data[at + 14]}.${data[at + 15]}`;
  }
  // The longest run of two or more zero groups becomes "::" (the first such run on a tie).
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

function writeAddress(out: Buffer, at: number, address: string, v4: boolean): void {
  if (v4) {
    const parts = address.split('.');
    for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
    return;
  }
  let text = address;
  // An embedded IPv4 tail (`::ffff:10.0.0.1`) becomes its two groups.
  const dot = text.lastIndexOf('.');
  if (dot >= 0) {
    const colon = text.lastIndexOf(':');
    const p = text.slice(colon + 1).split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, colon + 1)}${((p[0] << 8) | p[1]).toString(16)}:${((p[2] << 8) | p[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(parseInt(groups[i]!, 16), at + 2 * i);
}
