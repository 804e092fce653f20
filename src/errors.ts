/**
 * @module
 * The error catalogue: every failure Fairway reports to a user has a stable code listed
 * here, with the HTTP status it maps to where it is answered over HTTP. `docs/errors.md`
 * documents each code; a test keeps the two in sync. Codes never change meaning once
 * released; new failures get new codes.
 */

export interface ErrorSpec {
  /** HTTP status used when the error is answered over HTTP (data plane or admin API). */
  readonly status: number;
  /** One line for docs and `fairway` output. */
  readonly summary: string;
}

export const errorCatalogue = {
  FW_CONFIG_READ: { status: 500, summary: 'The config file could not be read.' },
  FW_CONFIG_SYNTAX: { status: 400, summary: 'The config file is not valid YAML.' },
  FW_CONFIG_INVALID: { status: 400, summary: 'The config file does not match the schema; the message names the key path.' },
  FW_APP_CONFLICT: { status: 409, summary: 'Two apps claim the same domain, or two providers the same app; the newcomer is disabled.' },
  FW_STATE_READ: { status: 500, summary: 'The weights or cutover state file could not be read or parsed; it is ignored.' },
  FW_STATE_WRITE: { status: 500, summary: 'The weights or cutover state file could not be written; the change was not applied.' },
  FW_ADMIN_NOT_FOUND: { status: 404, summary: 'No such admin API path.' },
  FW_ADMIN_BAD_REQUEST: { status: 400, summary: 'The admin API request body or parameters are invalid.' },
  FW_ADMIN_UNAUTHORIZED: { status: 401, summary: 'The admin API needs `Authorization: Bearer <token>` from this address, and the request had none or a wrong one.' },
  FW_ADMIN_FORBIDDEN: { status: 403, summary: 'The admin API answers only loopback clients unless admin.tokenFile is set.' },
  FW_APP_NOT_FOUND: { status: 404, summary: 'No app with that name in the current snapshot.' },
  FW_VERSION_NOT_FOUND: { status: 404, summary: 'The app has no version with that name.' },
  FW_NOT_READY: { status: 503, summary: 'No snapshot is live yet.' },
  FW_NO_ROUTE: { status: 404, summary: 'No app serves the requested host.' },
  FW_NO_ENDPOINTS: { status: 503, summary: 'The app has no version with weight > 0 and ready endpoints.' },
  FW_CLIENT_FORBIDDEN: { status: 403, summary: 'The app only admits clients on its allow list, and this client is not on it.' },
  FW_APP_MAINTENANCE: { status: 503, summary: 'The app is down for maintenance; please try again later.' },
  FW_UPSTREAM_REFUSED: { status: 502, summary: 'Every endpoint tried refused the connection.' },
  FW_UPSTREAM_FAILED: { status: 502, summary: 'The upstream failed or sent a malformed response.' },
  FW_UPSTREAM_TIMEOUT: { status: 504, summary: 'The upstream did not connect, answer or send data in time.' },
  FW_BODY_TOO_LARGE: { status: 413, summary: "The request body exceeds the app's bodySize (by default limits.maxBodySize)." },
  FW_HEADERS_TOO_LARGE: { status: 431, summary: 'The request headers exceed limits.maxHeaderSize or limits.maxHeadersCount.' },
  FW_BAD_REQUEST: { status: 400, summary: 'The request is malformed (missing Host, bad target).' },
  FW_URL_TOO_LONG: { status: 414, summary: 'The request target (path and query) exceeds limits.maxUrlLength.' },
  FW_CLIENT_CONNECTION_LIMIT: { status: 429, summary: 'A client address opened more connections than limits.maxConnectionsPerClient; the new ones were closed.' },
  FW_UPGRADE_WITH_BODY: { status: 400, summary: 'An Upgrade request (WebSocket or other) carried a body; the router only tunnels Upgrade requests without one.' },
  FW_PROXY_PROTOCOL_INVALID: { status: 400, summary: 'A connection on a listener with the PROXY protocol on did not start with a valid PROXY header in time; it was closed.' },
  FW_STORAGE_NOT_FOUND: { status: 404, summary: 'No value is stored under that key.' },
  FW_STORAGE_IO: { status: 500, summary: 'The certificate storage could not be read or written.' },
  FW_STORAGE_LOCK_TIMEOUT: { status: 503, summary: 'A storage lock stayed held by another process for too long.' },
  FW_TLS_CERT_INVALID: { status: 400, summary: 'A certificate/key pair is unreadable, mismatched or expired; the host keeps its previous certificate.' },
  FW_ACME_ORDER_FAILED: { status: 502, summary: 'The ACME CA refused or failed an order; it is retried with backoff.' },
  FW_ACME_RATE_LIMITED: { status: 429, summary: 'The ACME CA rate-limited the account; retried after the time it asked for.' },
  FW_CERT_NOT_FOUND: { status: 404, summary: 'No certificate is managed for that host.' },
  FW_INTERNAL: { status: 500, summary: 'An unexpected failure; the router log has the details.' },
  FW_DRAIN_TIMEOUT: { status: 503, summary: 'At shutdown, requests, tunnels or TCP sessions were still open when shutdown.drainTimeout ended; they were cut.' },
  FW_LOG_SHIP_FAILED: { status: 502, summary: 'The log service (log.ship.url) refused, failed or did not answer a batch in time; it is retried with backoff.' },
  FW_ADMIN_UNREACHABLE: { status: 502, summary: 'The CLI could not reach the admin API.' },
  FW_CUTOVER_INVALID: { status: 400, summary: 'The cutover plan is invalid (steps, thresholds, from == to, a target version without endpoints).' },
  FW_CUTOVER_ACTIVE: { status: 409, summary: 'The app already has a cutover running or paused; only one at a time.' },
  FW_CUTOVER_NOT_FOUND: { status: 404, summary: 'The app has no cutover (none was ever started on this router).' },
  FW_CUTOVER_STATE: { status: 409, summary: "The cutover action does not apply in the cutover's current state (e.g. resume a running one)." },
  FW_CUTOVER_NO_LEADER: { status: 503, summary: 'Kubernetes mode: no replica drives cutovers right now, or the one that does cannot be reached; retry.' },
  FW_WORKER_EXITED: { status: 500, summary: 'A data-plane worker process (`fairway serve --workers N`) exited unexpectedly or could not start; it is replaced (with backoff if it keeps dying), the other workers keep serving.' },
  FW_WORKER_TIMEOUT: { status: 503, summary: 'A data-plane worker did not confirm a change (snapshot, ACME answer) or did not stop within its time; it was not waited for further (or was killed at the stop).' },
  FW_LEASE_IO: { status: 500, summary: 'Kubernetes mode: a Lease of the router namespace (cutover leadership, replica discovery) could not be read or written; retried.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorCatalogue;

/** An error with a stable catalogue code. `details` is safe to show users (no secrets). */
export class FairwayError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FairwayError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return errorCatalogue[this.code].status;
  }

  toJSON(): { code: ErrorCode; message: string; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}
