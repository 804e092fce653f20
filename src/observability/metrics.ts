/**
 * @module
 * The process's metrics: control-plane metrics and Node process metrics through
 * prom-client (its own registry, so several routers can live in one test process), and
 * the data plane's {@link RequestStats}. `render()` is the body of `GET /metrics`.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { RequestStats } from './request-stats.js';

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new RequestStats();
  /** Plain counters other modules keep (per-app logs, log shipper), rendered after the rest. */
  readonly #sources: (() => string)[] = [];
  /** Brings counters kept elsewhere up to date before they are read (the data-plane workers'). */
  readonly #refreshers: (() => Promise<void>)[] = [];
  readonly configLoads: Counter<'provider' | 'result'>;
  readonly configLastLoadSuccess: Gauge<'provider'>;
  readonly configLastLoadTime: Gauge<'provider'>;
  readonly snapshotGeneration: Gauge;
  readonly apps: Gauge<'state'>;
  readonly weightChanges: Counter<'app'>;
  readonly sourceProblems: Gauge<'provider'>;
  readonly tlsNotAfter: Gauge<'host' | 'source'>;
  readonly tlsExpiring: Gauge;
  readonly acmeOrders: Counter<'result'>;
  readonly cutoverState: Gauge<'app' | 'state'>;
  readonly cutoverPercent: Gauge<'app'>;
  readonly cutoverSteps: Counter<'app'>;
  readonly cutoverRollbacks: Counter<'app' | 'cause'>;
  readonly cutoverDecisions: Counter<'app' | 'decision'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.configLoads = new Counter({
      name: 'fairway_config_reloads_total',
      help: 'Configuration loads by provider and result (success, failure).',
      labelNames: ['provider', 'result'],
      registers,
    });
    this.configLastLoadSuccess = new Gauge({
      name: 'fairway_config_last_reload_successful',
      help: '1 if the last configuration load of the provider succeeded, else 0.',
      labelNames: ['provider'],
      registers,
    });
    this.configLastLoadTime = new Gauge({
      name: 'fairway_config_last_reload_timestamp_seconds',
      help: 'Unix time of the last configuration load attempt of the provider.',
      labelNames: ['provider'],
      registers,
    });
    this.snapshotGeneration = new Gauge({
      name: 'fairway_snapshot_generation',
      help: 'Generation of the snapshot the data plane is serving.',
      registers,
    });
    this.apps = new Gauge({
      name: 'fairway_apps',
      help: 'Apps in the live snapshot, by state (serving, disabled).',
      labelNames: ['state'],
      registers,
    });
    this.weightChanges = new Counter({
      name: 'fairway_weight_changes_total',
      help: 'Weight changes made through the admin API or CLI, by app.',
      labelNames: ['app'],
      registers,
    });
    this.sourceProblems = new Gauge({
      name: 'fairway_config_problems',
      help: 'Problems in the last good state of each provider (invalid annotations that fell back to defaults, hosts lost to older claims); see GET /v1/config.',
      labelNames: ['provider'],
      registers,
    });
    this.tlsNotAfter = new Gauge({
      name: 'fairway_tls_certificate_not_after_seconds',
      help: 'Expiry (Unix time) of the certificate served for each name, by source (acme, file, platform, self-signed); host="" is the default certificate.',
      labelNames: ['host', 'source'],
      registers,
    });
    this.tlsExpiring = new Gauge({
      name: 'fairway_tls_certificates_expiring',
      help: 'ACME certificates past their renewal time whose renewal keeps failing, with less than 10% of their lifetime left.',
      registers,
    });
    this.acmeOrders = new Counter({
      name: 'fairway_acme_orders_total',
      help: 'ACME order attempts by result (issued, failed, rate_limited, from_storage: installed from shared storage, ordered by another replica).',
      labelNames: ['result'],
      registers,
    });
    this.cutoverState = new Gauge({
      name: 'fairway_cutover_state',
      help: "1 for the state of each app's latest cutover (running, paused, completed, rolled_back, aborted, failed), 0 for the others.",
      labelNames: ['app', 'state'],
      registers,
    });
    this.cutoverPercent = new Gauge({
      name: 'fairway_cutover_step_percent',
      help: "Percent of the two versions' traffic the latest cutover of each app has put on the new version.",
      labelNames: ['app'],
      registers,
    });
    this.cutoverSteps = new Counter({
      name: 'fairway_cutover_steps_total',
      help: 'Cutover steps whose weights were set, by app.',
      labelNames: ['app'],
      registers,
    });
    this.cutoverRollbacks = new Counter({
      name: 'fairway_cutover_rollbacks_total',
      help: 'Cutover rollbacks, by app and cause (error_rate, p99, no_endpoints, manual).',
      labelNames: ['app', 'cause'],
      registers,
    });
    this.cutoverDecisions = new Counter({
      name: 'fairway_cutover_decisions_total',
      help: 'Cutover decisions recorded, by app and decision (start, step, pass, no_traffic, rollback, complete, pause, resume, promote, abort, restart, fail).',
      labelNames: ['app', 'decision'],
      registers,
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'fairway_' });
  }

  /** Records one load attempt of a provider. */
  recordLoad(provider: string, ok: boolean): void {
    this.configLoads.inc({ provider, result: ok ? 'success' : 'failure' });
    this.configLastLoadSuccess.set({ provider }, ok ? 1 : 0);
    this.configLastLoadTime.set({ provider }, Date.now() / 1000);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    await this.refresh();
    return (await this.registry.metrics()) + this.requests.render() + this.#sources.map((render) => render()).join('');
  }

  /**
   * Brings {@link requests} up to date with counters kept in other processes (the
   * data-plane workers), for readers that must count every request answered so far.
   */
  async refresh(): Promise<void> {
    await Promise.all(this.#refreshers.map((r) => r()));
  }

  /** Adds a step {@link refresh} runs (it must not reject). */
  addRefresh(refresh: () => Promise<void>): void {
    this.#refreshers.push(refresh);
  }

  /** Adds Prometheus text that `render` appends (each line ending in a newline), for counters kept outside prom-client. */
  addSource(render: () => string): void {
    this.#sources.push(render);
  }
}
