/**
 * @module
 * The seam between sources of desired state and the control plane.
 *
 * Contract for every provider:
 * - it only translates its source into {@link ProviderState}; it never touches the data
 *   plane or other providers;
 * - it always sends its *whole* current state (level-triggered): the control plane keeps
 *   the latest state per provider, so a missed intermediate state is harmless;
 * - when its source is bad, it calls `error()` and sends nothing: the control plane keeps
 *   serving the provider's last good state;
 * - `start()` resolves once the first state (or error) was sent; `stop()` releases every
 *   watch and timer and is safe to call twice.
 */
import type { FairwayError } from '../errors.js';
import type { ProviderState } from '../model.js';

export interface ProviderSink {
  update(state: ProviderState): void;
  error(err: FairwayError): void;
}

export interface Provider {
  readonly name: string;
  start(sink: ProviderSink): Promise<void>;
  stop(): Promise<void>;
}
