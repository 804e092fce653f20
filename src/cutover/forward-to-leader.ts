/**
 * @module
 * How a replica that does not drive cutovers hands an operator call to the one that
 * does: `POST <leader admin URL>/<path>` with the same JSON body and the header
 * `x-fairway-forwarded-by: <this replica>` (a replica never forwards a forwarded call
 * again), and `authorization` (this replica's admin token: every replica has the same)
 * when given. Resolves with the leader's JSON answer; rejects with the leader's own
 * FairwayError (same code and message), or FW_CUTOVER_NO_LEADER when the leader cannot
 * be reached, does not answer like a Fairway admin API, or refuses this replica's token.
 */
import { request } from 'undici';
import { errorCatalogue, FairwayError, type ErrorCode } from '../errors.js';

export const FORWARDED_BY_HEADER = 'x-fairway-forwarded-by';

export interface ForwardOptions {
  /** This replica's name (the `x-fairway-forwarded-by` header). */
  readonly from: string;
  /** The `Authorization` header value (`Bearer <admin token>`); absent: none sent. */
  readonly authorization?: string;
  readonly timeoutMs?: number;
}

export async function forwardToLeader(adminUrl: string, path: string, body: unknown, options: ForwardOptions): Promise<unknown> {
  const url = new URL(path, adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
  const timeoutMs = options.timeoutMs ?? 60_000;
  let res;
  try {
    res = await request(url, {
      method: 'POST',
      headers: {
        [FORWARDED_BY_HEADER]: options.from,
        'user-agent': 'fairway-replica',
        ...(options.authorization === undefined ? {} : { authorization: options.authorization }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
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
    if (code === 'FW_ADMIN_UNAUTHORIZED' || code === 'FW_ADMIN_FORBIDDEN') {
      // The operator was let in here; the leader refused this replica: a deployment problem, not the operator's.
      throw new FairwayError('FW_CUTOVER_NO_LEADER', `the replica that drives cutovers (${adminUrl}) refused this replica's call (${code}: ${e?.message ?? `HTTP ${res.statusCode}`}); every replica must use the same admin token (admin.tokenFile, or the admin.tokenSecret Secret)`, { leader: adminUrl });
    }
    throw new FairwayError(code, e?.message ?? `the replica that drives cutovers answered HTTP ${res.statusCode}`, e?.details);
  }
  return json;
}
