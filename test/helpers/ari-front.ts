/**
 * @module
 * An HTTPS front between an ACME client and a Pebble that has no ACME Renewal Information
 * (Pebble 2.4), adding it: the directory gains a `renewalInfo` URL pointing here, and
 * `GET {renewalInfo}/{id}` is answered by the test ({@link AriFront.renewalInfo}).
 *
 * Contract:
 * - Every other request goes to Pebble unchanged, Host header included. Pebble builds
 *   every URL it hands out (directory entries, Location, Link) and checks each JWS `url`
 *   from the request's Host, so all of the client's ACME traffic comes through here
 *   without rewriting a byte: a client that trusts only {@link AriFront.caBundle} proves
 *   it (a request sent to Pebble directly would fail TLS verification).
 * - The decoded JWS payload of every newOrder POST is recorded in `newOrders`, in order;
 *   `newOrder`, when set, may answer one itself instead of Pebble (a problem document).
 * - Listens on 127.0.0.1 only, with a `localhost`/`127.0.0.1` certificate signed by a
 *   throwaway CA (`caBundle`). `close()` ends it and every open connection.
 */
import { createServer, request as httpsRequest } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { localhostCertificate, type Pebble } from './pebble.js';

/** What the front answers: a status, optional headers, and a body (an object is sent as JSON). */
export interface FrontAnswer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
}

export interface AriFront {
  /** The ACME directory URL to give the client: `https://127.0.0.1:PORT/dir`. */
  readonly directory: string;
  /** PEM of the CA that signed the front's certificate: the client's `caBundle`. */
  readonly caBundle: string;
  /** Every `GET {renewalInfo}/{id}`, in order: the certificate id asked for, and when (epoch ms). */
  readonly renewalInfoRequests: { id: string; at: number }[];
  /** Every newOrder POST, in order: its decoded JWS payload, and when (epoch ms). */
  readonly newOrders: { payload: Record<string, unknown>; at: number }[];
  /** Answers `GET {renewalInfo}/{id}` (default: 404). */
  renewalInfo: (id: string) => FrontAnswer;
  /** Answers a newOrder instead of Pebble when it returns an answer (default: none). */
  newOrder: ((payload: Record<string, unknown>) => FrontAnswer | undefined) | undefined;
  close(): Promise<void>;
}

const RENEWAL_INFO_PATH = '/renewal-info';

/** `{ suggestedWindow }` between two times (epoch ms), with a `Retry-After` in seconds if given. */
export function windowAnswer(start: number, end: number, retryAfterSeconds?: number, extra: Record<string, unknown> = {}): FrontAnswer {
  return {
    status: 200,
    headers: retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) },
    body: { suggestedWindow: { start: new Date(start).toISOString(), end: new Date(end).toISOString() }, ...extra },
  };
}

/** Starts a front for `pebble`. `offerRenewalInfo: false` forwards the directory unchanged (a CA without ARI). */
export async function startAriFront(pebble: Pebble, options: { offerRenewalInfo?: boolean } = {}): Promise<AriFront> {
  const offer = options.offerRenewalInfo ?? true;
  const target = new URL(pebble.directory);
  const { ca, cert, key } = await localhostCertificate();
  let newOrderPath: string | undefined;
  const front: AriFront = {
    directory: '',
    caBundle: ca,
    renewalInfoRequests: [],
    newOrders: [],
    renewalInfo: () => ({ status: 404, body: { type: 'urn:ietf:params:acme:error:malformed', detail: 'no such certificate' } }),
    newOrder: undefined,
    close: async () => {},
  };

  const answer = (res: ServerResponse, a: FrontAnswer) => {
    const body = a.body === undefined ? '' : typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
    res.writeHead(a.status, { 'content-type': a.status >= 400 ? 'application/problem+json' : 'application/json', ...a.headers });
    res.end(body);
  };

  /** Sends the request on to Pebble; `edit` may change a JSON answer (the directory). */
  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse, edit?: (json: Record<string, unknown>) => void) => {
    const up = httpsRequest(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers, ca: pebble.caBundle, agent: false },
      (upRes) => {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          let out = Buffer.concat(chunks);
          const headers = { ...upRes.headers };
          if (edit && upRes.statusCode === 200) {
            const json = JSON.parse(out.toString('utf8')) as Record<string, unknown>;
            edit(json);
            out = Buffer.from(JSON.stringify(json));
            headers['content-length'] = String(out.length);
          }
          res.writeHead(upRes.statusCode ?? 502, headers);
          res.end(out);
        });
      },
    );
    up.on('error', (err) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`front: ${err.message}`);
    });
    up.end(body);
  };

  const server = createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? '/';
      if (req.method === 'GET' && path === target.pathname) {
        return forward(req, body, res, (dir) => {
          newOrderPath = new URL(String(dir.newOrder)).pathname;
          if (offer) dir.renewalInfo = `${front.directory.replace(/\/dir$/, '')}${RENEWAL_INFO_PATH}`;
        });
      }
      if (offer && req.method === 'GET' && path.startsWith(`${RENEWAL_INFO_PATH}/`)) {
        const id = decodeURIComponent(path.slice(RENEWAL_INFO_PATH.length + 1));
        front.renewalInfoRequests.push({ id, at: Date.now() });
        return answer(res, front.renewalInfo(id));
      }
      if (req.method === 'POST' && path === newOrderPath) {
        const jws = JSON.parse(body.toString('utf8')) as { payload: string };
        const payload = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as Record<string, unknown>;
        front.newOrders.push({ payload, at: Date.now() });
        const own = front.newOrder?.(payload);
        if (own) return answer(res, own);
      }
      forward(req, body, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  (front as { directory: string }).directory = `https://127.0.0.1:${port}${target.pathname}`;
  front.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return front;
}
