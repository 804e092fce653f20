/**
 * @module
 * Where a request comes from. Two layers, each decided once:
 *
 * 1. The **peer** of a connection ({@link peerAddressOf}): the source address a PROXY
 *    protocol header declared ({@link recordProxiedAddresses}, by the listener's
 *    {@link ProxyProtocolGate}), else the TCP peer. IPv4-mapped IPv6 (`::ffff:10.0.0.1`)
 *    is written as IPv4. A listener with the PROXY protocol on trusts its header: the
 *    declared address *is* the peer, whoever connected.
 * 2. The **client** of a request ({@link ClientAddress.resolve}): when the peer is one of
 *    the `trustedProxies`, its `X-Forwarded-For` is honoured the way nginx's realip module
 *    does with `real_ip_recursive on` (what the Deis router ran): walking the list from the
 *    right, each trusted address gives way to the one on its left; the client is the first
 *    address that is not trusted, or the leftmost one when all are. An entry that is not an
 *    address stops the walk: the client is then the last address reached. From any other
 *    peer the header is ignored: the client is the peer.
 *
 * `X-Forwarded-For` sent upstream is the honoured part of the chain — the client and the
 * trusted hops to its right, as received, each written as a bare address — followed by
 * the peer. Entries left of the client were written by someone nobody trusts, and are
 * dropped; from an untrusted peer the header is just the peer.
 *
 * Per snapshot, a {@link ClientAddress} is compiled once. The common cases cost no
 * allocation: no `trustedProxies` (nothing is looked at), or a peer that is not trusted
 * (one memoised lookup).
 */
import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6, type Socket } from 'node:net';
import { AllowList } from './allow-list.js';
import type { ProxiedAddresses } from './proxy-protocol.js';

const PROXIED = Symbol('fairway.proxiedAddresses');
type Tagged = Socket & { [PROXIED]?: ProxiedAddresses; _parent?: Tagged };

/** Records the addresses a PROXY header declared for the connection of `socket`. */
export function recordProxiedAddresses(socket: Socket, addresses: ProxiedAddresses): void {
  (socket as Tagged)[PROXIED] = addresses;
}

/**
 * Carries the addresses recorded on the TCP socket under a TLS socket over to it (call on
 * `secureConnection`, before any request on it is read). Node's TLSSocket keeps the socket
 * it wraps as `_parent`.
 */
export function adoptProxiedAddresses(tlsSocket: Socket): void {
  const declared = (tlsSocket as Tagged)._parent?.[PROXIED];
  if (declared !== undefined) (tlsSocket as Tagged)[PROXIED] = declared;
}

/** The PROXY-declared addresses of the connection of `socket`, if a header declared any. */
export function proxiedAddressesOf(socket: Socket): ProxiedAddresses | undefined {
  return (socket as Tagged)[PROXIED];
}

/**
 * Both ends of the connection of `socket` as its client sees them: the PROXY-declared
 * addresses, else the TCP peer and the local address (IPv4-mapped written as IPv4).
 */
export function connectionAddressesOf(socket: Socket): ProxiedAddresses {
  const declared = (socket as Tagged)[PROXIED];
  if (declared !== undefined) return declared;
  const sourceAddress = unmapped(socket.remoteAddress ?? '');
  const destinationAddress = unmapped(socket.localAddress ?? '');
  return {
    sourceAddress, sourcePort: socket.remotePort ?? 0, destinationAddress, destinationPort: socket.localPort ?? 0,
    family: isIPv4(sourceAddress) && isIPv4(destinationAddress) ? 'IPv4' : 'IPv6',
  };
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** The connection's peer: the PROXY-declared source, else the TCP peer (IPv4-mapped written as IPv4). */
export function peerAddressOf(socket: Socket): string {
  const declared = (socket as Tagged)[PROXIED];
  if (declared !== undefined) return declared.sourceAddress;
  const a = socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** The client of one request and the `X-Forwarded-For` to send upstream. */
export interface ResolvedClient {
  readonly client: string;
  readonly forwardedFor: string;
}

export class ClientAddress {
  readonly #trusted: AllowList | undefined;

  /** `trustedProxies`: `address/prefix` entries as in the model. Empty: no peer is trusted. */
  constructor(trustedProxies: readonly string[]) {
    this.#trusted = trustedProxies.length > 0 ? new AllowList(trustedProxies) : undefined;
  }

  /** Whether `X-Forwarded-For` sent by `peer` is honoured. */
  trusts(peer: string): boolean {
    return this.#trusted !== undefined && this.#trusted.allows(peer);
  }

  /**
   * The client of `req` (its socket's peer, its `X-Forwarded-For`), for code outside the
   * data plane's one-pass header scan (which calls {@link resolve} itself). Same rules.
   */
  ofRequest(req: IncomingMessage): ResolvedClient {
    const peer = peerAddressOf(req.socket);
    if (!this.trusts(peer)) return { client: peer, forwardedFor: peer };
    const xff = req.headers['x-forwarded-for'];
    return this.resolve(peer, Array.isArray(xff) ? xff.join(',') : xff);
  }

  /**
   * The client of a request from `peer` carrying `forwardedFor` (every `X-Forwarded-For`
   * field of the request, joined by `,` in order; undefined when there was none). Call it
   * only when {@link trusts}(peer) — for other peers the client is the peer and
   * `X-Forwarded-For` is the peer, with nothing to compute.
   */
  resolve(peer: string, forwardedFor: string | undefined): ResolvedClient {
    if (forwardedFor === undefined) return { client: peer, forwardedFor: peer };
    const entries = forwardedFor.split(',');
    const honoured: string[] = [];
    let client = peer;
    for (let i = entries.length - 1; i >= 0; i--) {
      const text = entries[i]!.trim();
      if (text === '') continue; // `a,,b` and trailing commas: nginx skips them too
      const address = addressOf(text);
      if (address === undefined) break;
      client = address;
      honoured.push(address);
      if (!this.trusts(address)) break;
    }
    honoured.reverse();
    honoured.push(peer);
    return { client, forwardedFor: honoured.join(', ') };
  }
}

/**
 * The bare address in one `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
 * `[2001:db8::1]` or `[2001:db8::1]:443` (IPv6 lower-cased, IPv4-mapped written as IPv4);
 * undefined for anything else (`unknown`, obfuscated names, garbage).
 */
export function addressOf(entry: string): string | undefined {
  let host = entry;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close < 0) return undefined;
    const rest = host.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    host = host.slice(1, close);
    return isIPv6(host) ? v6(host) : undefined;
  }
  if (isIPv4(host)) return host;
  if (isIPv6(host)) return v6(host);
  const colon = host.lastIndexOf(':');
  if (colon > 0 && host.indexOf(':') === colon && /^\d{1,5}$/.test(host.slice(colon + 1))) {
    host = host.slice(0, colon);
    if (isIPv4(host)) return host;
  }
  return undefined;
}

function v6(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && isIPv4(lower.slice(7)) ? lower.slice(7) : lower;
}
