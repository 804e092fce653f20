/**
 * @module
 * How a replica that does not drive cutovers hands an operator call to the one that
 * does: `POST <leader admin URL>/<path>` with the same JSON body and the header
 * `x-fairway-forwarded-by: <this replica>` (a replica never forwards a forwarded call
 * again). Resolves with the leader's JSON answer; rejects with the leader's own
 * FairwayError (same code and message), or FW_CUTOVER_NO_LEADER when the leader cannot
 * be reached or does not answer like a Fairway admin API.
 */
import { request } from 'undici';
import { errorCatalogue, FairwayError, type ErrorCode } from '../errors.js';

export const FORWARDED_BY_HEADER = 'x-fairway-forwarded-by';

export async function forwardToLeader(adminUrl: string, path: string, body: unknown, options: { readonly from: string; readonly timeoutMs?: number }): Promise<unknown> {
  const url = new URL(path, adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
  const timeoutMs = options.timeoutMs ?? 60_000;
  let res;
  try {
    res = await request(url, {
      method: 'POST',
      headers: { [FORWARDED_BY_HEADER]: options.from, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  } catch (err) {
    throw new FairwayError('FW_CUTOVER_NO_LEADER', `the replica that drives cutovers cannot be reached at ${adminUrl} (${(err as Error).message}); its admin port must be reachable from the other replicas`, { leader: adminUrl }, { cause: err });
  }
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new FairwayError('FW_CUTOVER_NO_LEADER', `the replica that drives cutovers (${adminUrl}) did not answer like a Fairway admin API (HTTP ${res.statusCode})`, { leader: adminUrl });
  }
  if (res.statusCode >= 300) {
    const e = (json as { error?: { code?: string; message?: string; details?: unknown } }).error;
    const code = e?.code && e.code in errorCatalogue ? (e.code as ErrorCode) : 'FW_INTERNAL';
    throw new FairwayError(code, e?.message ?? `the replica that drives cutovers answered HTTP ${res.statusCode}`, e?.details);
  }
  return json;
}
