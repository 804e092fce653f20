/**
 * @module
 * The Deis builder's git-over-SSH port in Kubernetes mode: unless the config has a `tcp:`
 * route named `builder`, one is added that listens on `listen.builder` (default
 * `0.0.0.0:2222`) and forwards to the ready endpoints of the `deis-builder` Service in the
 * router's namespace, with the Deis router's defaults (connect 10 s, idle 1200 s) that
 * the Service's `router.deis.io/nginx.connectTimeout`/`tcpTimeout` annotations override.
 */
import type { RouterSettings } from '../../model.js';

export const BUILDER_SERVICE = 'deis-builder';

export function withBuilderRoute(settings: RouterSettings, namespace: string): RouterSettings {
  if (settings.tcp.some((r) => r.name === 'builder')) return settings;
  return {
    ...settings,
    tcp: [
      ...settings.tcp,
      { name: 'builder', listen: settings.listen.builder, endpoints: [], connectTimeout: 10_000, idleTimeout: 1_200_000, service: `${namespace}/${BUILDER_SERVICE}`, servicePort: undefined },
    ],
  };
}
