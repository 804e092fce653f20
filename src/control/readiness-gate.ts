/**
 * @module
 * When the router is ready (`/readyz` 200): once the snapshot built from every provider's
 * first full state is live. It stays ready until the stop begins (draining is the admin
 * server's to say).
 *
 * "Built" is counted in the control plane's rebuilds since Kubernetes' first full sync, not
 * read from `pending`: the router's own writes (its admin-token Secret, Events) make the
 * provider send again right after that sync, and "nothing pending" said "starting" to a
 * `/readyz` that came during such a rebuild, long after the start.
 *
 * Lifecycle: made once by the composition root; {@link check} is called at each snapshot
 * (after the data plane applied it) and whenever readiness is asked.
 */

export interface ReadinessInputs {
  /** Whether a route table is live (this process's data plane, or every worker). */
  readonly tableLive: () => boolean;
  /** The control plane's rebuilds so far and whether one is scheduled (see `ControlPlane.builds`). */
  readonly controlPlane: { readonly builds: number; readonly pending: boolean };
  /** Resolves once Kubernetes' first full state was sent to the control plane; absent: no provider to wait for. */
  readonly synced?: Promise<void>;
}

export class ReadinessGate {
  readonly #inputs: ReadinessInputs;
  /** The rebuild whose snapshot holds the first full state; +Infinity until that state was sent. */
  #fullStateBuild: number;
  #ready = false;

  constructor(inputs: ReadinessInputs) {
    this.#inputs = inputs;
    this.#fullStateBuild = inputs.synced ? Number.POSITIVE_INFINITY : 0;
    void inputs.synced?.then(() => {
      // The state was sent while `builds` was N: it is live at N + 1 if a rebuild is still to come, else at N.
      const cp = inputs.controlPlane;
      this.#fullStateBuild = cp.builds + (cp.pending ? 1 : 0);
      this.check();
    });
  }

  /** Whether the router is ready; once true, true for good. */
  check(): boolean {
    return (this.#ready ||= this.#inputs.tableLive() && this.#inputs.controlPlane.builds >= this.#fullStateBuild);
  }
}
