/**
 * @module
 * An app's client allow list compiled for the hot path. Matching is node:net `BlockList`
 * (subnets of both families; IPv4 clients also match IPv4-mapped IPv6 rules). Checking a
 * string with `BlockList` builds a native `SocketAddress` each time (~1.6 µs), so
 * answers are remembered per address in a bounded map: a client seen before costs one
 * map lookup and no allocation. Built once per route table; never changed afterwards
 * except for that memo.
 *
 * Which list an app gets is {@link AllowListRules}' decision: the app's own entries and
 * the router-wide Deis rules (`defaultWhitelist`, `whitelistMode`, `enforceWhitelists`).
 */
import { BlockList } from 'node:net';
import { parseCidr } from '../config/cidr.js';
import type { WhitelistSettings } from '../model.js';

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

/**
 * The router-wide allow-list rules compiled once per route table, giving each app its
 * effective list exactly as the Deis router's nginx template did: a list applies when
 * `enforce` is on, or the default list or the app's own list is non-empty; it is the
 * default list (left out when the app has a list of its own and the mode is `override`)
 * plus the app's list; with no list applying, every client is let in. An app without a
 * list of its own shares one compiled default list (and its memo) with every other such app.
 */
export class AllowListRules {
  /** Equal for equal settings: a route table may reuse an app compiled under the same rules. */
  readonly key: string;
  readonly #default: readonly string[];
  readonly #override: boolean;
  /** The list of an app without entries of its own; undefined: such apps admit everyone. */
  readonly #shared: AllowList | undefined;

  constructor(settings: WhitelistSettings | undefined) {
    this.#default = settings?.defaultWhitelist ?? [];
    this.#override = settings?.mode === 'override';
    const enforce = settings?.enforce ?? false;
    this.#shared = enforce || this.#default.length > 0 ? new AllowList(this.#default) : undefined;
    this.key = JSON.stringify([this.#default, this.#override, enforce]);
  }

  /** The list for an app whose own entries are `own`; undefined: every client may reach it. */
  forApp(own: readonly string[]): AllowList | undefined {
    if (own.length === 0) return this.#shared;
    return new AllowList(this.#override ? own : [...this.#default, ...own]);
  }
}
