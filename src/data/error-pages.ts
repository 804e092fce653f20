/**
 * @module
 * The pages the data plane answers with when it cannot proxy. An {@link ErrorPages} is
 * built once per route table (router-wide) or per compiled app (when the app has pages of
 * its own): every catalogue code is resolved to its page there, so answering is one map
 * lookup and one write, with no formatting, no I/O and no request data echoed back.
 *
 * Which page a code gets, first that exists: for `FW_APP_MAINTENANCE` the app's
 * `maintenance` page, the app's `503` page, the router-wide `maintenance` page, the
 * router-wide `503` page; for any other code the app's page for its status, then the
 * router-wide one; else the built-in page. Every answer carries the catalogue code in
 * `X-Fairway-Error` so a user can look it up in docs/errors.md, whichever page it has.
 * A custom page is sent as its file is, with the content type of its extension.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import { errorCatalogue, type ErrorCode } from '../errors.js';
import type { ErrorPages as ErrorPageFiles } from '../model.js';

interface Page {
  readonly body: Buffer;
  readonly contentType: string;
  readonly contentLength: string;
}

const HTML = 'text/html; charset=utf-8';
const CODES = Object.keys(errorCatalogue) as ErrorCode[];

/** The built-in page of every code; `anonymous`: without the product name (`disableServerTokens`). */
function builtin(anonymous: boolean): ReadonlyMap<ErrorCode, Page> {
  const pages = new Map<ErrorCode, Page>();
  for (const code of CODES) {
    const spec = errorCatalogue[code];
    const title = `${spec.status} ${STATUS_CODES[spec.status] ?? ''}`.trim();
    const footer = anonymous ? code : `fairway · ${code}`;
    const body = Buffer.from(`<!doctype html>\n<html><head><title>${title}</title></head><body><h1>${title}</h1><p>${spec.summary}</p><hr><p>${footer}</p></body></html>\n`);
    pages.set(code, { body, contentType: HTML, contentLength: String(body.length) });
  }
  return pages;
}
const BUILTIN = builtin(false);
const BUILTIN_ANONYMOUS = builtin(true);

export interface ErrorPagesOptions {
  /** The router-wide pages. */
  readonly router?: ErrorPageFiles;
  /** The app's own pages, preferred over the router-wide ones. */
  readonly app?: ErrorPageFiles;
  /** Built-in pages without the product name. */
  readonly anonymous?: boolean;
}

export class ErrorPages {
  readonly #byCode = new Map<ErrorCode, Page>();

  constructor(options: ErrorPagesOptions = {}) {
    const fallback = options.anonymous ? BUILTIN_ANONYMOUS : BUILTIN;
    // A file shared by several keys (or apps) becomes one Buffer per instance, not per key.
    const buffers = new Map<string, Page>();
    const compiled = (files: ErrorPageFiles | undefined, key: string): Page | undefined => {
      const file = files?.[key];
      if (file === undefined) return undefined;
      let page = buffers.get(file.file);
      if (page === undefined) {
        const body = Buffer.from(file.body, 'utf8');
        buffers.set(file.file, (page = { body, contentType: file.contentType, contentLength: String(body.length) }));
      }
      return page;
    };
    const { router, app } = options;
    for (const code of CODES) {
      const status = String(errorCatalogue[code].status);
      const page = code === 'FW_APP_MAINTENANCE'
        ? compiled(app, 'maintenance') ?? compiled(app, status) ?? compiled(router, 'maintenance') ?? compiled(router, status)
        : compiled(app, status) ?? compiled(router, status);
      this.#byCode.set(code, page ?? fallback.get(code)!);
    }
  }

  /**
   * Answers `res` with the page for `code` and returns the status sent. With `close`, the
   * client connection is closed after the response (used when a request body may be
   * left unread). `extra` is more `[name, value, …]` headers (e.g. `Retry-After`).
   */
  send(res: ServerResponse, code: ErrorCode, close = false, extra?: readonly string[]): number {
    const status = errorCatalogue[code].status;
    if (res.headersSent || res.destroyed) return status;
    const page = this.#byCode.get(code)!;
    const headers = ['content-type', page.contentType, 'content-length', page.contentLength, 'cache-control', 'no-store', 'x-fairway-error', code];
    if (close) headers.push('connection', 'close');
    if (extra !== undefined) for (const h of extra) headers.push(h);
    res.writeHead(status, headers);
    res.end(page.body);
    return status;
  }
}

/** The built-in pages, for answers given before any configuration applies. */
export const BUILTIN_PAGES = new ErrorPages();

/** Answers with the built-in page for `code` (see {@link ErrorPages.send}). */
export function sendError(res: ServerResponse, code: ErrorCode, close = false, extra?: readonly string[]): number {
  return BUILTIN_PAGES.send(res, code, close, extra);
}
