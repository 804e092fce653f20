/**
 * @module
 * The CLI's client for the admin API. Resolves with the parsed JSON body of a 2xx
 * answer; throws FairwayError with the API's own code otherwise, or
 * FW_ADMIN_UNREACHABLE when no router answers at the URL.
 */
import { request } from 'undici';
import { FairwayError, errorCatalogue, type ErrorCode } from '../errors.js';

export async function adminRequest(adminUrl: string, method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const url = new URL(path, adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
  let res;
  try {
    res = await request(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      // A renewal waits for the CA.
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
  } catch (err) {
    throw new FairwayError('FW_ADMIN_UNREACHABLE', `cannot reach the admin API at ${adminUrl}: ${(err as Error).message} (is fairway running? set --admin or FAIRWAY_ADMIN)`);
  }
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new FairwayError('FW_ADMIN_UNREACHABLE', `${adminUrl} did not answer like a Fairway admin API (HTTP ${res.statusCode})`);
  }
  if (res.statusCode >= 300) {
    const e = (json as { error?: { code?: string; message?: string } }).error;
    const code = e?.code && e.code in errorCatalogue ? (e.code as ErrorCode) : 'FW_INTERNAL';
    throw new FairwayError(code, e?.message ?? `HTTP ${res.statusCode}`);
  }
  return json;
}
