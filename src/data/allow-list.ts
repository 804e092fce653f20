/**
 * @module
 * An app's client allow list compiled for the hot path. Matching is node:net `BlockList`
 * (subnets of both families; IPv4 clients also match IPv4-mapped IPv6 rules). Checking a
 * string with `BlockList` builds a native `SocketAddress` each time (~1.6 µs), so
 * answers are remembered per address in a bounded map: a client seen before costs one
 * map lookup and no allocation. Built once per route table; never changed afterwards
 * except for that memo.
 */
import { BlockList } from 'node:net';
import { parseCidr } from '../config/cidr.js';

/** Distinct client addresses remembered per list; the memo starts over when full. */
const MEMO_LIMIT = 4096;

export class AllowList {
  readonly #rules = new BlockList();
  readonly #memo = new Map<string, boolean>();

  /** `entries` are `address/prefix` strings as in the model; unparsable ones are skipped (providers validate). */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const c = parseCidr(entry);
      if (c) this.#rules.addSubnet(c.address, c.prefix, c.family);
    }
  }

  /**
   * Whether `clientIp` (an IPv4 address, or IPv6 without brackets; IPv4-mapped IPv6
   * already written as IPv4) may reach the app.
   */
  allows(clientIp: string): boolean {
    const known = this.#memo.get(clientIp);
    if (known !== undefined) return known;
    const allowed = this.#rules.check(clientIp, clientIp.includes(':') ? 'ipv6' : 'ipv4');
    if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear();
    this.#memo.set(clientIp, allowed);
    return allowed;
  }
}
