/**
 * @module
 * The admin token of every replica in Kubernetes mode: the `token` key of one Secret in
 * the router namespace (`admin.tokenSecret`, default `fairway-admin-token`), so the
 * replicas' calls to each other's admin API (cutover forwarding, replica counters)
 * authenticate, and operators fetch it with `kubectl get secret`.
 *
 * Lifecycle:
 * - `start()` reads the Secret once and resolves (whatever the outcome) so the router
 *   starts with a token when the API server answers; then re-reads it every `refreshMs`
 *   (unref'd timer) until `stop()`: a token changed with `kubectl` is used within that
 *   time, by every replica.
 * - Absent Secret: this replica creates it with a random token (32 random bytes,
 *   base64url). Race-safe: when several replicas start together, one create wins and
 *   the others get 409 Conflict and read the winner's; so a deleted Secret is also
 *   replaced by one new token that every replica picks up.
 * - A Secret whose `token` is missing or unusable is never overwritten (someone made
 *   it): it is logged once per distinct problem, and the previous token stays in use.
 * - A failed read (API server away, RBAC) is logged and retried at the next tick, sooner
 *   (every `retryMs`) while this replica has no token yet; the previous token stays.
 * `onToken` is called with each new token (never with the same one twice). Log lines and
 * errors name the Secret, never its value.
 */
import { randomBytes } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../observability/logger.js';
import { apiFailure, statusOf, withTimeout } from '../providers/kubernetes/api-failure.js';
import { tokenProblem } from './admin-auth.js';

export const ADMIN_TOKEN_KEY = 'token';

export interface KubernetesAdminTokenOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** The Secret's name (`admin.tokenSecret`). */
  readonly name: string;
  readonly logger: Logger;
  readonly onToken: (token: string) => void;
  /** How often the Secret is re-read, ms (default 30 s). */
  readonly refreshMs?: number;
  /** How often a replica without a token tries again, ms (default 2 s). */
  readonly retryMs?: number;
  /** One API request at most this long, ms (default 10 s). */
  readonly requestTimeoutMs?: number;
}

export class KubernetesAdminToken {
  readonly #o: KubernetesAdminTokenOptions;
  readonly #core: CoreV1Api;
  readonly #server: string;
  #token: string | undefined;
  #lastProblem: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: KubernetesAdminTokenOptions) {
    this.#o = options;
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#server = options.kubeConfig.getCurrentCluster()?.server ?? '(no current cluster)';
  }

  /** `namespace/name` of the Secret, for messages. */
  get where(): string {
    return `${this.#o.namespace}/${this.#o.name}`;
  }

  /** Reads (or creates) the Secret once, then keeps re-reading it; see the module comment. */
  async start(): Promise<void> {
    await this.#refresh();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;
    const ms = this.#token === undefined ? (this.#o.retryMs ?? 2_000) : (this.#o.refreshMs ?? 30_000);
    this.#timer = setTimeout(() => void this.#refresh().finally(() => this.#schedule()), ms);
    this.#timer.unref();
  }

  async #refresh(): Promise<void> {
    try {
      const token = await this.#read();
      if (token !== undefined && token !== this.#token) {
        const first = this.#token === undefined;
        this.#token = token;
        this.#lastProblem = undefined;
        this.#o.onToken(token);
        this.#o.logger.info({ secret: this.where }, first ? 'admin token loaded from its Secret' : 'admin token changed in its Secret; using the new one');
      }
    } catch (err) {
      this.#problem((err as Error).message);
    }
  }

  /** The Secret's token; creates the Secret when absent. Undefined (and logged) when it holds no usable token. */
  async #read(): Promise<string | undefined> {
    const { namespace, name } = this.#o;
    let secret: V1Secret;
    try {
      secret = await this.#core.readNamespacedSecret({ name, namespace }, this.#call());
    } catch (err) {
      if (statusOf(err) !== 404) throw new Error(`cannot read Secret ${this.where}: ${this.#failure(err)}`);
      const created = await this.#create();
      if (created !== undefined) return created;
      try {
        secret = await this.#core.readNamespacedSecret({ name, namespace }, this.#call());
      } catch (again) {
        throw new Error(`cannot read Secret ${this.where} another replica created: ${this.#failure(again)}`);
      }
    }
    const encoded = secret.data?.[ADMIN_TOKEN_KEY];
    const token = encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8').trim();
    const problem = token === undefined ? `has no "${ADMIN_TOKEN_KEY}" key` : tokenProblem(token);
    if (problem !== undefined) {
      this.#problem(`Secret ${this.where} ${problem}; it is left as it is${this.#token ? ' and the previous token stays in use' : ''}`);
      return undefined;
    }
    return token;
  }

  /** Creates the Secret with a new random token; undefined when another replica created it first. */
  async #create(): Promise<string | undefined> {
    const { namespace, name } = this.#o;
    const token = randomBytes(32).toString('base64url');
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'fairway' } },
      type: 'Opaque',
      data: { [ADMIN_TOKEN_KEY]: Buffer.from(token, 'utf8').toString('base64') },
    };
    try {
      await this.#core.createNamespacedSecret({ namespace, body }, this.#call());
    } catch (err) {
      if (statusOf(err) === 409) return undefined;
      throw new Error(`cannot create Secret ${this.where}: ${this.#failure(err)}`);
    }
    this.#o.logger.info({ secret: this.where }, 'created the admin token Secret with a new random token');
    return token;
  }

  #problem(message: string): void {
    if (message === this.#lastProblem) return;
    this.#lastProblem = message;
    this.#o.logger.error({ secret: this.where }, `admin token: ${message}`);
  }

  #failure(err: unknown): string {
    return apiFailure(err, this.#server, this.#o.requestTimeoutMs ?? 10_000).message;
  }

  #call() {
    return withTimeout(this.#o.requestTimeoutMs ?? 10_000);
  }
}
