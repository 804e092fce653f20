/**
 * @module
 * What a Service named by a TCP route (the Deis builder, `deis/deis-builder`) says about
 * that route, read as the Deis router read it: `router.deis.io/nginx.connectTimeout`
 * (time to connect to an endpoint) and `router.deis.io/nginx.tcpTimeout` (a connection
 * idle this long either way is closed), nginx time syntax. An invalid value is reported
 * and the route's own setting stays.
 */
import type { KService, ServiceProblem } from './deis-translator.js';
import { parseNginxTime } from './nginx-time.js';

export const TCP_ANNOTATIONS = {
  connectTimeout: 'router.deis.io/nginx.connectTimeout',
  tcpTimeout: 'router.deis.io/nginx.tcpTimeout',
} as const;

export function tcpServiceSettings(service: KService | undefined): { timeouts: { connectTimeout?: number; idleTimeout?: number }; problems: ServiceProblem[] } {
  const timeouts: { connectTimeout?: number; idleTimeout?: number } = {};
  const problems: ServiceProblem[] = [];
  const ann = service?.metadata?.annotations ?? {};
  const read = (annotation: string, key: 'connectTimeout' | 'idleTimeout') => {
    const raw = ann[annotation];
    if (raw === undefined) return;
    const ms = parseNginxTime(raw);
    if (ms === undefined) {
      problems.push({ namespace: service?.metadata?.namespace ?? 'default', service: service?.metadata?.name ?? '', field: annotation, message: `"${raw}" is not a time like 10s, 5m or 1200 (seconds); using the route's setting` });
    } else {
      timeouts[key] = ms;
    }
  };
  read(TCP_ANNOTATIONS.connectTimeout, 'connectTimeout');
  read(TCP_ANNOTATIONS.tcpTimeout, 'idleTimeout');
  return { timeouts, problems };
}
