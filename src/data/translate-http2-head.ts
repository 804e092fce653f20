/**
 * @module
 * An HTTP/2 request head as HTTP/1.1 carries it, so that the data plane's one pass over
 * the request headers — and everything after it: routing, policies, `X-Forwarded-*`,
 * request IDs, what is forwarded — is the same code for both protocols. Upstreams are
 * HTTP/1.1, so this is also the translation RFC 9113 §8.2–8.3 asks of an intermediary.
 *
 * What nghttp2 (through Node) has already refused before a request gets here, with a
 * stream error (RST_STREAM PROTOCOL_ERROR): upper-case or invalid field names,
 * connection-specific fields (`Connection`, `Keep-Alive`, `Proxy-Connection`,
 * `Transfer-Encoding`, `Upgrade`), `TE` other than `trailers`, missing or repeated
 * pseudo-header fields, a `:path` that is neither origin-form nor `*`, and a body that
 * does not match its `Content-Length`.
 */

/**
 * The HTTP/1.1 form of `raw` (the request's flat `[name, value, …]` fields as received,
 * pseudo-header fields first):
 * - pseudo-header fields are left out (`:method` and `:path` are the request's method
 *   and target; `:scheme` is `https`: the listener is);
 * - `:authority` becomes `Host`, first. A `Host` field as well is dropped when it names
 *   the same authority (any case), and kept when it names another: the data plane then
 *   refuses the request as having two hosts (RFC 9113 §8.3.1 allows refusing it);
 * - `Cookie` fields, which HTTP/2 lets a client split, become one, joined with `; `
 *   (RFC 9113 §8.2.3), in place of the first;
 * - with `body` (the HEADERS frame did not end the stream) and no `Content-Length`, a
 *   `Transfer-Encoding: chunked` is added: the framing the body is forwarded with, and
 *   what makes the data plane stream it through its size limit as it arrives.
 */
export function translateHttp2Head(raw: readonly string[], body: boolean): string[] {
  let authority: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i] === ':authority') {
      authority = raw[i + 1]!;
      break;
    }
  }
  const head: string[] = authority === undefined ? [] : ['host', authority];
  let cookieAt = -1;
  let contentLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) continue;
    if (name === 'cookie') {
      if (cookieAt >= 0) {
        head[cookieAt] = `${head[cookieAt]!}; ${value}`;
        continue;
      }
      cookieAt = head.length + 1;
    } else if (name === 'host') {
      if (authority !== undefined && value.toLowerCase() === authority.toLowerCase()) continue;
    } else if (name === 'content-length') contentLength = true;
    head.push(name, value);
  }
  if (body && !contentLength) head.push('transfer-encoding', 'chunked');
  return head;
}
