/**
 * @module
 * Writes a Service's configuration problems (an invalid annotation, a host lost to an
 * older Service, a missing certificate Secret) as Kubernetes Events on that Service, so
 * `kubectl describe service` shows them to the app's owner.
 *
 * Contract: fire-and-forget, one request at a time, at most {@link MAX_PENDING} waiting
 * (more are dropped: the log and the admin API still have them). The Event's name is
 * derived from the problem, so replicas reporting the same problem write one Event (the
 * second gets 409 AlreadyExists, which is fine). Without RBAC to create Events, one
 * warning is logged and no more attempts are made.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from '../../observability/logger.js';
import type { ServiceProblem } from './deis-translator.js';

const MAX_PENDING = 100;

export interface ProblemEventsOptions {
  readonly core: CoreV1Api;
  readonly logger: Logger;
}

export class ProblemEvents {
  readonly #o: ProblemEventsOptions;
  #pending = 0;
  #chain: Promise<void> = Promise.resolve();
  #forbidden = false;

  constructor(options: ProblemEventsOptions) {
    this.#o = options;
  }

  /** Records `problem` as a Warning Event on its object (a Service, or the platform certificate Secret). */
  record(problem: ServiceProblem, uid: string | undefined): void {
    if (this.#forbidden || this.#pending >= MAX_PENDING) return;
    this.#pending++;
    this.#chain = this.#chain.then(() => this.#create(problem, uid)).finally(() => this.#pending--);
  }

  /** Resolves when every recorded Event was written (or failed). */
  async flushed(): Promise<void> {
    while (this.#pending > 0) await this.#chain;
  }

  async #create(p: ServiceProblem, uid: string | undefined): Promise<void> {
    if (this.#forbidden) return;
    const kind = p.kind ?? 'Service';
    const digest = createHash('sha256').update(`${kind}\0${p.namespace}\0${p.service}\0${p.field}\0${p.message}`).digest('hex').slice(0, 16);
    const now = new Date();
    try {
      await this.#o.core.createNamespacedEvent({
        namespace: p.namespace,
        body: {
          metadata: { name: `${p.service}.fairway-${digest}`, namespace: p.namespace },
          involvedObject: { kind, apiVersion: 'v1', namespace: p.namespace, name: p.service, ...(uid ? { uid } : {}) },
          reason: eventReason(p),
          message: `${p.field}: ${p.message}`,
          type: 'Warning',
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: 'fairway' },
          reportingComponent: 'fairway',
          reportingInstance: hostname(),
        },
      });
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 409) return; // another replica (or an earlier run) recorded it
      if (code === 403) {
        this.#forbidden = true;
        this.#o.logger.warn('not allowed to create Events (RBAC: create events); configuration problems stay in the log and the admin API');
        return;
      }
      this.#o.logger.debug({ err: (err as Error).message, service: `${p.namespace}/${p.service}` }, 'could not record an Event');
    }
  }
}

/** Why a host is not routed (`HostConflict`, `DomainNotAllowed`); `InvalidConfiguration` otherwise. */
function eventReason(p: ServiceProblem): string {
  return p.unrouted?.reason ?? 'InvalidConfiguration';
}
