/**
 * @module
 * The response object of an HTTP/2 request, as the data plane writes it. Node's
 * compatibility response (`Http2ServerResponse`) already takes what the proxy exchange,
 * the error pages and the compression writer do with an HTTP/1.1 `ServerResponse` —
 * `writeHead(status, [name, value, …])`, `setHeader`, `write` returning false under
 * backpressure then `'drain'`, `end`, `destroy`, `'close'` when the stream ends either
 * way, and it can be piped to — so they take the same path for both protocols. This
 * subclass adapts the two places where HTTP/2 differs:
 *
 * - No reason phrase (RFC 9113 §8.3.1): `writeHead(status, statusText, headers)` drops
 *   the text (Node would print a warning otherwise).
 * - No connection-specific header fields (RFC 9113 §8.2.2): `Connection`, `Keep-Alive`,
 *   `Proxy-Connection`, `Transfer-Encoding` and `Upgrade` are never sent (Node refuses to
 *   send the last four: the response would fail). The proxy exchange drops them from
 *   upstream responses already; what arrives here is the router's own `Connection: close`,
 *   which on HTTP/1.1 means "the request body may be left unread: close the connection
 *   after this answer". Its HTTP/2 counterpart is applied instead: once the response is
 *   complete, a client still sending its request body gets RST_STREAM with NO_ERROR
 *   (RFC 9113 §8.1), which stops the body and frees the stream's slot, not the connection.
 *   (Node does this itself for a body nobody read; this covers a body read in part, e.g.
 *   one cut at the app's size limit.) The reset follows the response's last DATA frame.
 *
 * - A response the router cuts (`destroy()`: a client that stopped reading, an endpoint
 *   that failed after the head went out) is reset with CANCEL. Node's own `destroy()`
 *   resets it with NO_ERROR, which a client may take for the normal end of a body sent
 *   without Content-Length: a cut response must never look complete (HTTP/1.1 closes the
 *   connection before the body's end for the same reason). Other streams go on.
 *
 * Not provided: `shouldKeepAlive` (HTTP/2 draining is GOAWAY, see {@link Http2Sessions})
 * and `destroyed` (the data plane's checks of it are also covered by `'close'`).
 */
import { constants, Http2ServerResponse, type OutgoingHttpHeaders } from 'node:http2';

/** Header fields HTTP/2 forbids (RFC 9113 §8.2.2); `te` is a request header and never written by the router. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

export class Http2Response extends Http2ServerResponse {
  /** The answer asked for its connection to close (see the module comment). */
  #refuseBody = false;

  override writeHead(statusCode: number, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(statusCode: number, statusMessage: string | undefined, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(statusCode: number, a?: string | OutgoingHttpHeaders | readonly string[], b?: OutgoingHttpHeaders | readonly string[]): this {
    let headers = typeof a === 'string' || a === undefined ? b : a;
    if (Array.isArray(headers)) headers = this.#withoutConnectionFields(headers as readonly string[]);
    else if (headers !== undefined) headers = this.#objectWithoutConnectionFields(headers as OutgoingHttpHeaders);
    // Node's compatibility response takes flat arrays too (its types say objects only).
    return super.writeHead(statusCode, headers as OutgoingHttpHeaders | undefined);
  }

  override end(...args: unknown[]): this {
    (super.end as (...a: unknown[]) => this).apply(this, args);
    if (this.#refuseBody) {
      const stream = this.stream;
      // Ends with NO_ERROR after the response's last frame (Node waits for it); nothing to do once the client has sent its END_STREAM.
      if (!stream.closed && !stream.destroyed && stream.state.remoteClose === 0) stream.close(constants.NGHTTP2_NO_ERROR);
    }
    return this;
  }

  override destroy(err?: Error): this {
    const stream = this.stream;
    // Before Node's destroy, which would reset with NO_ERROR; the reset goes out at once, ahead of DATA still queued.
    if (stream !== undefined && !stream.closed && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
    return super.destroy(err);
  }

  /** `headers` without connection-specific fields (itself when it has none, the usual case); notes a `Connection` one. */
  #withoutConnectionFields(headers: readonly string[]): readonly string[] {
    let kept: string[] | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (!CONNECTION_SPECIFIC.has(name)) {
        kept?.push(headers[i]!, headers[i + 1]!);
        continue;
      }
      if (name === 'connection') this.#refuseBody = true;
      kept ??= headers.slice(0, i);
    }
    return kept ?? headers;
  }

  /** The same for headers given as an object (the router writes arrays on HTTP/2; kept for completeness). */
  #objectWithoutConnectionFields(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
    let kept: OutgoingHttpHeaders | undefined;
    for (const name of Object.keys(headers)) {
      const lower = name.toLowerCase();
      if (!CONNECTION_SPECIFIC.has(lower)) continue;
      if (lower === 'connection') this.#refuseBody = true;
      kept ??= { ...headers };
      delete kept[name];
    }
    return kept ?? headers;
  }
}
