/**
 * @module
 * The CLI's client for the admin API. Resolves with the parsed JSON body of a 2xx
 * answer; throws FairwayError with the API's own code otherwise (a refusal, 401 or 403,
 * with a message saying what to set), or FW_ADMIN_UNREACHABLE when no router answers at
 * the URL.
 *
 * The token (README "Admin API"): `--token-file FILE` on the command line, else
 * `FAIRWAY_ADMIN_TOKEN`, else the file named by `FAIRWAY_ADMIN_TOKEN_FILE`; none: no
 * `Authorization` header (enough on the router's own machine: loopback needs no token).
 * It is sent as `Authorization: Bearer <token>` and never printed.
 */
import { readFileSync } from 'node:fs';
import { request, type Dispatcher } from 'undici';
import { FairwayError, errorCatalogue, type ErrorCode } from '../errors.js';

/** Where the admin API is, and the token to send it (absent: none). */
export interface AdminTarget {
  readonly url: string;
  readonly token?: string;
}

/** Where the token comes from, as the command line and environment say. */
export interface TokenSources {
  /** `--token-file` given on the command line. */
  readonly tokenFileOption?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** The token to send (see the module comment); throws a plain Error naming the file when it cannot be read. */
export function resolveAdminToken(sources: TokenSources): string | undefined {
  const env = sources.env ?? process.env;
  const file = sources.tokenFileOption ?? (env.FAIRWAY_ADMIN_TOKEN ? undefined : env.FAIRWAY_ADMIN_TOKEN_FILE || undefined);
  if (file === undefined) return env.FAIRWAY_ADMIN_TOKEN?.trim() || undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`cannot read the admin token file ${file} (${code === 'ENOENT' ? 'file not found' : (code ?? 'error')})`);
  }
  const token = text.trim();
  if (token === '') throw new Error(`the admin token file ${file} is empty`);
  return token;
}

/** The request headers of every call: the CLI names itself (the audit log shows it) and sends the token, if any. */
export function adminHeaders(target: AdminTarget): Record<string, string> {
  return { 'user-agent': 'fairway-cli', ...(target.token === undefined ? {} : { authorization: `Bearer ${target.token}` }) };
}

export async function adminRequest(target: AdminTarget, method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const adminUrl = target.url;
  const url = new URL(path, adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
  let res;
  try {
    res = await request(url, {
      method,
      headers: { ...adminHeaders(target), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      // A renewal waits for the CA.
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
  } catch (err) {
    throw new FairwayError('FW_ADMIN_UNREACHABLE', `cannot reach the admin API at ${adminUrl}: ${(err as Error).message} (is fairway running? set --admin or FAIRWAY_ADMIN)`);
  }
  if (res.statusCode >= 300) throw await answerError(target, res);
  const text = await res.body.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new FairwayError('FW_ADMIN_UNREACHABLE', `${adminUrl} did not answer like a Fairway admin API (HTTP ${res.statusCode})`);
  }
}

/**
 * The FairwayError of a non-2xx answer (its body is read): the API's own code and
 * message, a refusal explained (see {@link refusal}), or `fallback` when the answer is
 * not a Fairway error.
 */
export async function answerError(target: AdminTarget, res: Dispatcher.ResponseData, fallback: ErrorCode = 'FW_ADMIN_UNREACHABLE'): Promise<FairwayError> {
  const text = await res.body.text();
  let e: { code?: string; message?: string } | undefined;
  try {
    e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
  } catch {
    return new FairwayError(fallback, `${target.url} did not answer like a Fairway admin API (HTTP ${res.statusCode})`);
  }
  const code = e?.code && e.code in errorCatalogue ? (e.code as ErrorCode) : 'FW_INTERNAL';
  if (code === 'FW_ADMIN_UNAUTHORIZED' || code === 'FW_ADMIN_FORBIDDEN') return refusal(target, code);
  return new FairwayError(code, e?.message ?? `HTTP ${res.statusCode}`);
}

/** A 401/403 of the admin API, with what the user should set. */
function refusal(target: AdminTarget, code: 'FW_ADMIN_UNAUTHORIZED' | 'FW_ADMIN_FORBIDDEN'): FairwayError {
  const where = `the admin API at ${target.url}`;
  if (code === 'FW_ADMIN_FORBIDDEN') {
    return new FairwayError(code, `${where} answers only clients on the router's own machine: the router has no admin token (set admin.tokenFile in its config), or run the command there`);
  }
  const set = "set FAIRWAY_ADMIN_TOKEN to the router's admin token, or give --token-file FILE (or FAIRWAY_ADMIN_TOKEN_FILE) naming a file that holds it (in Kubernetes the token is the Secret fairway-admin-token: kubectl get secret -n NAMESPACE fairway-admin-token -o jsonpath='{.data.token}' | base64 -d)";
  return new FairwayError(code, target.token === undefined ? `${where} needs a token from this machine: ${set}` : `${where} refused the token sent: it is not the router's admin token; ${set}`);
}
