/**
 * @module
 * Request IDs the Deis way (`requestIDs: true`; the Deis router's
 * `router.deis.io/nginx.requestIDs`), as its nginx template did: every request gets a new
 * ID made by the router — 32 lower-case hex digits, the form of nginx's `$request_id` —
 * whatever `X-Request-Id` the client sent; `X-Correlation-Id` becomes the client's value
 * with `,<id>` appended, or the ID alone when the client sent none. The upstream receives
 * both, and both are returned to the client on every answer, proxied or the router's own
 * (upstream response headers of the same names are not relayed, so each appears once).
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/**
 * Makes the request's ID, rewrites `X-Correlation-Id` in `headers` (the flat headers
 * forwarded upstream, from which it moves to the end; the caller adds `X-Request-Id`),
 * sets both on `res` for whatever answer follows, and returns the ID.
 */
export function stampRequestIds(res: ServerResponse, headers: string[]): string {
  const id = randomUUID().replaceAll('-', '');
  let incoming: string | undefined;
  for (let i = 0; i < headers.length; ) {
    if (headers[i]!.length === 16 && headers[i]!.toLowerCase() === 'x-correlation-id') {
      incoming ??= headers[i + 1]!.trim();
      headers.splice(i, 2);
    } else i += 2;
  }
  const correlation = incoming ? `${incoming},${id}` : id;
  headers.push('x-correlation-id', correlation);
  res.setHeader('X-Request-Id', id);
  res.setHeader('X-Correlation-Id', correlation);
  return id;
}
