/**
 * @module
 * The data plane's set of Upgrade exchanges and open tunnels, which the shutdown waits to
 * see empty: a tunnel leaves it only when both its sockets have closed and its access-log
 * line is written, which can be after the listener's last client connection closed.
 * Entries come and go once per tunnel, never per request.
 */
export class TunnelSet<T> extends Set<T> {
  #whenEmpty: (() => void)[] = [];

  override delete(value: T): boolean {
    const had = super.delete(value);
    if (this.size === 0 && this.#whenEmpty.length > 0) for (const resolve of this.#whenEmpty.splice(0)) resolve();
    return had;
  }

  /** Resolves once the set is empty (at once if it is). */
  whenEmpty(): Promise<void> {
    return this.size === 0 ? Promise.resolve() : new Promise((resolve) => this.#whenEmpty.push(resolve));
  }
}
