/**
 * @module
 * Per-manager HTTP settings for acme-client, whose HTTP client is one shared axios
 * instance. Each ACME call runs inside {@link withAcmeContext}; interceptors on that
 * instance read the context through AsyncLocalStorage, so two managers (two routers in
 * one process, as in tests) never share a trust store or see each other's rate limits.
 *
 * - Request: uses the context's https agent (the `tls.acme.caBundle` trust, if set).
 * - Response: records the type of the last problem document the CA answered with, and a
 *   rate-limit problem (`urn:ietf:params:acme:error:rateLimited` or HTTP 429) with the
 *   `Retry-After` the CA asked for, which acme-client's own errors drop.
 * acme-client's built-in retry loop (which would sleep for a whole Retry-After inside a
 * call) is turned off; the ACME manager schedules retries itself.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import acme from 'acme-client';

export interface AcmeCallContext {
  readonly agent: Agent | undefined;
  /** Set when the CA answered with a rate-limit problem. */
  rateLimited: boolean;
  /** When the CA said to come back (from Retry-After or the problem's "retry after" text). */
  retryAt: Date | undefined;
  /** `type` of the last problem document (RFC 8555 §6.7) the CA answered with. */
  problem: string | undefined;
}

const storage = new AsyncLocalStorage<AcmeCallContext>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  const instance = acme.axios;
  (instance.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings!.retryMaxAttempts = 0;
  instance.interceptors.request.use((config) => {
    const ctx = storage.getStore();
    if (ctx?.agent) config.httpsAgent = ctx.agent;
    return config;
  });
  instance.interceptors.response.use((response) => {
    const ctx = storage.getStore();
    if (ctx && response.status >= 400) {
      const body = response.data as { type?: string; detail?: string } | undefined;
      if (typeof body?.type === 'string') ctx.problem = body.type;
      if (response.status === 429 || body?.type === 'urn:ietf:params:acme:error:rateLimited') {
        ctx.rateLimited = true;
        ctx.retryAt = parseRetryAfter(response.headers['retry-after'] as string | undefined) ?? parseRetryText(body?.detail) ?? ctx.retryAt;
      }
    }
    return response;
  });
}

/** Runs `fn` (which calls acme-client) with this context's trust and problem capture. */
export function withAcmeContext<T>(ctx: AcmeCallContext, fn: () => Promise<T>): Promise<T> {
  install();
  return storage.run(ctx, fn);
}

/** An https agent trusting the PEM file `caBundle` in addition to Node's CAs, or undefined for Node's CAs only. */
export function agentFor(caBundle: string | undefined): Agent | undefined {
  return caBundle === undefined ? undefined : new Agent({ ca: [...rootCertificates, readFileSync(caBundle, 'utf8')], keepAlive: true });
}

/** `Retry-After` as seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): Date | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return new Date(now + Number(value) * 1000);
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** Let's Encrypt writes "retry after 2026-01-01T00:00:00Z" in rate-limit details. */
function parseRetryText(detail: string | undefined): Date | undefined {
  const m = detail && /retry after ([0-9T:.+-]+Z?)/i.exec(detail);
  if (!m) return undefined;
  const t = Date.parse(m[1]!);
  return Number.isNaN(t) ? undefined : new Date(t);
}
