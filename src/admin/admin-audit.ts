/**
 * @module
 * The audit log of the admin API: every request that may change state (any method but
 * `GET` and `HEAD`: weights, cutover start/pause/resume/promote/abort, rollback,
 * certificate renewal), refused ones included, is logged once when its answer has gone
 * (or the client went), as one line `"msg":"admin change"` of the `admin-audit`
 * component with who and when (`time`):
 * `peer` (the TCP peer address), `auth` (`loopback` | `token`, or `refused`),
 * `userAgent`, `forwardedBy` (the replica that forwarded an operator call to this one),
 * `method`, `path`, `change` (what the handler read: the weights, the cutover plan, the
 * action or host), and the outcome: `status`, and `code` for an error answer.
 * Never a header value other than the user agent, so never the token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FORWARDED_BY_HEADER } from '../cutover/forward-to-leader.js';
import type { Logger } from '../observability/logger.js';
import type { AdminAccess } from './admin-auth.js';

/** One audited request, completed by the admin server while it handles it. */
export interface AuditEntry {
  /** How the request was let in; unset while not (yet) authorised. */
  access?: AdminAccess;
  /** What the request asks to change, as the handler understood it. */
  change?: unknown;
  /** The catalogue code of an error answer. */
  code?: string;
}

/** Whether a request with this method is audited. */
export function isAudited(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD';
}

/** Starts the audit of `req`: its line is written once, when `res` closes. */
export function auditRequest(logger: Logger, req: IncomingMessage, res: ServerResponse, path: string): AuditEntry {
  const entry: AuditEntry = {};
  const by = req.headers[FORWARDED_BY_HEADER];
  const userAgent = req.headers['user-agent'];
  res.once('close', () => {
    logger.info(
      {
        peer: req.socket.remoteAddress,
        auth: entry.access ?? 'refused',
        userAgent,
        ...(by === undefined ? {} : { forwardedBy: String(by) }),
        method: req.method,
        path,
        ...(entry.change === undefined ? {} : { change: entry.change }),
        status: res.headersSent ? res.statusCode : undefined,
        ...(entry.code === undefined ? {} : { code: entry.code }),
        ...(res.writableFinished ? {} : { aborted: true }),
      },
      'admin change',
    );
  });
  return entry;
}
