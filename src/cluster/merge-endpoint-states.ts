/**
 * @module
 * The admin API's `endpointStates` with data-plane workers: each worker ejects endpoints on
 * what it sees, so an endpoint may be ejected in worker 2 and available in worker 1. Each
 * endpoint is shown once, merged — `state` the worst over the workers (`ejected`, then
 * `unhealthy`, then `available`), `outstanding` the sum, `consecutiveFailures` and
 * `ejections` the highest — with `workers`: each worker's own state, by cluster id.
 */
import type { EndpointState } from '../data/endpoint-health.js';

/** One worker's view of an endpoint. */
export type WorkerEndpointState = Omit<EndpointState, 'endpoint'>;

/** An endpoint merged over the workers, with each worker's view. */
export interface MergedEndpointState extends EndpointState {
  readonly workers: Readonly<Record<string, WorkerEndpointState>>;
}

const RANK: Readonly<Record<EndpointState['state'], number>> = { available: 0, unhealthy: 1, ejected: 2 };

/** Merges the workers' states of one app (version → endpoints); undefined when no worker serves the app. */
export function mergeEndpointStates(
  perWorker: Iterable<readonly [worker: number, states: Readonly<Record<string, readonly EndpointState[]>> | undefined]>,
): Record<string, MergedEndpointState[]> | undefined {
  let merged: Map<string, Map<string, { state: EndpointState['state']; outstanding: number; consecutiveFailures: number; ejections: number; workers: Record<string, WorkerEndpointState> }>> | undefined;
  for (const [worker, states] of perWorker) {
    if (!states) continue;
    merged ??= new Map();
    for (const [version, endpoints] of Object.entries(states)) {
      let byEndpoint = merged.get(version);
      if (!byEndpoint) merged.set(version, (byEndpoint = new Map()));
      for (const { endpoint, ...own } of endpoints) {
        const m = byEndpoint.get(endpoint);
        if (!m) {
          byEndpoint.set(endpoint, { ...own, workers: { [worker]: own } });
          continue;
        }
        if (RANK[own.state] > RANK[m.state]) m.state = own.state;
        m.outstanding += own.outstanding;
        m.consecutiveFailures = Math.max(m.consecutiveFailures, own.consecutiveFailures);
        m.ejections = Math.max(m.ejections, own.ejections);
        m.workers[worker] = own;
      }
    }
  }
  if (!merged) return undefined;
  return Object.fromEntries([...merged].map(([version, byEndpoint]) => [version, [...byEndpoint].map(([endpoint, m]) => ({ endpoint, ...m }))]));
}
