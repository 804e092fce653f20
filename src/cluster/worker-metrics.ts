/**
 * @module
 * Prometheus text of the data-plane workers' own processes (`fairway_worker_*`, README
 * "Metrics"), from the latest {@link ProcessSample} each live worker sent with its
 * counters. Labelled by the worker's cluster id (a replacement gets a new id, so a dead
 * worker's series end rather than reset). The primary's own process metrics are
 * prom-client's `fairway_process_*` / `fairway_nodejs_*`.
 */
import type { ProcessSample } from './ipc-messages.js';

export function renderWorkerMetrics(samples: Iterable<readonly [worker: number, sample: ProcessSample]>): string {
  const all = [...samples];
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string, value: (s: ProcessSample) => number) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [worker, s] of all) out.push(`${name}{worker="${worker}"} ${value(s)}`);
  };
  family('fairway_worker_resident_memory_bytes', 'gauge', 'Resident memory of each data-plane worker process.', (s) => s.residentBytes);
  family('fairway_worker_heap_used_bytes', 'gauge', 'V8 heap used by each data-plane worker process.', (s) => s.heapUsedBytes);
  family('fairway_worker_cpu_seconds_total', 'counter', 'User and system CPU time of each data-plane worker process.', (s) => s.cpuSeconds);
  family('fairway_worker_event_loop_lag_seconds', 'gauge', '99th percentile of the event-loop delay of each data-plane worker over its last report interval (0.5 s).', (s) => s.eventLoopLagSeconds);
  return out.join('\n') + '\n';
}
