/**
 * @module
 * Parsing of allow-list entries: an IPv4 or IPv6 address, optionally with a `/prefix`
 * (`10.0.0.0/8`, `192.168.1.7`, `2001:db8::/32`, `::1`). Shared by the config schema, the
 * Kubernetes translator and the route table, so every source accepts the same entries
 * and the model holds them in one form. Not on the hot path.
 */
import { isIP, SocketAddress } from 'node:net';

export interface Cidr {
  /** Canonical address text (IPv6 lower-case and compressed). */
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/**
 * The entry as an address and prefix (a bare address is a /32 or /128), or undefined
 * when it is not one. Host bits below the prefix are allowed and ignored, as nginx's
 * `allow` does (`10.1.2.3/8` means `10.0.0.0/8`). Zone ids (`fe80::1%eth0`) are refused.
 */
export function parseCidr(value: string): Cidr | undefined {
  const text = value.trim();
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const version = host.includes('%') ? 0 : isIP(host);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return undefined;
    prefix = Number(p);
  }
  const family = version === 4 ? 'ipv4' : 'ipv6';
  return { address: new SocketAddress({ address: host, family }).address, prefix, family };
}

/** The canonical `address/prefix` text of an entry, or undefined when it is not one. */
export function canonicalCidr(value: string): string | undefined {
  const c = parseCidr(value);
  return c && `${c.address}/${c.prefix}`;
}
