/**
 * @module
 * A data-plane worker's ACME storage fallback: the {@link SharedChallenges} it uses while
 * the primary says the answers are shared through storage. A challenge request (or an
 * `acme-tls/1` handshake) for an answer the worker does not hold — another replica placed
 * the order — asks the primary over IPC (`challenge-lookup`, an id), which answers from
 * its memory or its storage (`challenge-answer`). Only challenge requests take this path,
 * never a normal request or handshake. An answer that does not come within
 * {@link CHALLENGE_LOOKUP_MS} (or a primary that is gone) counts as none.
 */
import type { SecureContext } from 'node:tls';
import type { PemPair, SharedChallenges } from '../tls/acme-challenges.js';
import { CHALLENGE_LOOKUP_MS, type FromWorker } from './ipc-messages.js';

export class PrimaryChallenges implements SharedChallenges {
  readonly #send: (message: FromWorker) => void;
  readonly #contextFor: (pair: PemPair) => SecureContext;
  readonly #pending = new Map<number, (answer: string | PemPair | undefined) => void>();
  #nextId = 1;

  /** `send`: to the primary; `contextFor`: the TLS context of a certificate (the worker's store builds it). */
  constructor(send: (message: FromWorker) => void, contextFor: (pair: PemPair) => SecureContext) {
    this.#send = send;
    this.#contextFor = contextFor;
  }

  async http01(token: string): Promise<string | undefined> {
    const answer = await this.#ask('http01', token);
    return typeof answer === 'string' ? answer : undefined;
  }

  async alpnPair(host: string): Promise<PemPair | undefined> {
    const answer = await this.#ask('alpn', host);
    return typeof answer === 'object' ? answer : undefined;
  }

  async alpn(host: string): Promise<SecureContext | undefined> {
    const pair = await this.alpnPair(host);
    return pair && this.#contextFor(pair);
  }

  /** The primary's `challenge-answer` to lookup `id` (a late one, after the timeout, is dropped). */
  answered(id: number, answer: string | PemPair | undefined): void {
    this.#pending.get(id)?.(answer);
  }

  #ask(kind: 'http01' | 'alpn', name: string): Promise<string | PemPair | undefined> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), CHALLENGE_LOOKUP_MS).unref();
      const finish = (answer: string | PemPair | undefined) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(answer);
      };
      this.#pending.set(id, finish);
      this.#send({ type: 'challenge-lookup', id, kind, name });
    });
  }
}
