/**
 * @module
 * What went wrong talking to the Kubernetes API server, in words fit for a message
 * ({@link apiFailure}), plus the two helpers every direct API call of Fairway uses: the
 * HTTP status of a failed call ({@link statusOf}) and per-request client options that
 * abort a call the server has not answered in time ({@link withTimeout}).
 *
 * Shared by the Secret storage, the Lease helper and the cutover store; nothing here
 * makes a request by itself.
 */
import { ApiException, Observable, type ConfigurationOptions } from '@kubernetes/client-node';

export interface ApiFailure {
  /** The HTTP status, when the server answered. */
  readonly status?: number;
  readonly reason?: string;
  /** The server's own message with `(HTTP <status>)`, or why it could not be asked. Never a request body. */
  readonly message: string;
}

/** Describes `err` from a call to `server` made with a timeout of `timeoutMs`. */
export function apiFailure(err: unknown, server: string, timeoutMs: number): ApiFailure {
  if (err instanceof ApiException) {
    const code = (err as ApiException<unknown>).code;
    const body = (err as ApiException<unknown>).body;
    let status: { message?: unknown; reason?: unknown } | undefined;
    try {
      status = typeof body === 'string' ? JSON.parse(body) : (body as typeof status);
    } catch {
      status = undefined;
    }
    const message = typeof status?.message === 'string' && status.message !== '' ? status.message : typeof body === 'string' && body !== '' ? body.slice(0, 200) : 'no message';
    return { status: code, reason: typeof status?.reason === 'string' ? status.reason : undefined, message: `${message} (HTTP ${code})` };
  }
  if ((err as Error | undefined)?.name === 'AbortError') return { message: `the Kubernetes API server ${server} did not answer within ${timeoutMs} ms` };
  return { message: `the Kubernetes API server ${server} could not be reached: ${(err as Error)?.message ?? String(err)}` };
}

/** The HTTP status of a failed call; undefined when the server did not answer. */
export function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? (err as ApiException<unknown>).code : undefined;
}

/** Client options for one request: it is aborted after `timeoutMs`. */
export function withTimeout(timeoutMs: number): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (request) => {
          request.setSignal(AbortSignal.timeout(timeoutMs));
          return new Observable(Promise.resolve(request));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
