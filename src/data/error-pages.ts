/**
 * @module
 * The small pages the data plane answers with when it cannot proxy. Built once at load
 * (no per-request formatting, and no request data echoed back). Each carries the
 * catalogue code in `X-Fairway-Error` so a user can look it up in docs/errors.md.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import { errorCatalogue, type ErrorCode } from '../errors.js';

const pages = new Map<ErrorCode, Buffer>();
for (const [code, spec] of Object.entries(errorCatalogue)) {
  const title = `${spec.status} ${STATUS_CODES[spec.status] ?? ''}`.trim();
  pages.set(
    code as ErrorCode,
    Buffer.from(`<!doctype html>\n<html><head><title>${title}</title></head><body><h1>${title}</h1><p>${spec.summary}</p><hr><p>fairway · ${code}</p></body></html>\n`),
  );
}

/**
 * Answers `res` with the page for `code` and returns the status sent. With `close`, the
 * client connection is closed after the response (used when a request body may be
 * left unread). `extra` is more `[name, value, …]` headers (e.g. `Retry-After`).
 */
export function sendError(res: ServerResponse, code: ErrorCode, close = false, extra?: readonly string[]): number {
  const status = errorCatalogue[code].status;
  const body = pages.get(code)!;
  if (res.headersSent || res.destroyed) return status;
  res.writeHead(status, [
    'content-type', 'text/html; charset=utf-8',
    'content-length', String(body.length),
    'cache-control', 'no-store',
    'x-fairway-error', code,
    ...(close ? ['connection', 'close'] : []),
    ...(extra ?? []),
  ]);
  res.end(body);
  return status;
}
