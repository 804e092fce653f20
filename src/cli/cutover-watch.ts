/**
 * @module
 * The CLI's reader of a cutover's event stream (`GET /v1/apps/{app}/cutover?watch=1`,
 * NDJSON): yields the stream's lines as they arrive, and when the stream ends before the
 * cutover did (the router restarted or the connection broke), connects again with
 * `after=<last decision index>` so no decision is missed or repeated. Gives up with
 * FW_ADMIN_UNREACHABLE after `reconnectMs` without a router.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import type { CutoverDecisionEvent } from '../cutover/cutover-controller.js';
import type { CutoverProgress, CutoverStatus } from '../cutover/cutover-run.js';
import { isActive } from '../cutover/cutover-store.js';
import { FairwayError } from '../errors.js';
import { answerError, adminHeaders, type AdminTarget } from './admin-client.js';

export type CutoverStreamLine =
  | ({ type: 'status' } & CutoverStatus)
  | ({ type: 'decision' } & CutoverDecisionEvent)
  | ({ type: 'progress' } & CutoverProgress);

export interface WatchOptions {
  /** Decisions with an index up to this one are not sent again (-1: all). */
  readonly after: number;
  /** How long to keep reconnecting to a router that went away, ms (default 60 s). */
  readonly reconnectMs?: number;
  /** Told when the stream broke and a reconnection starts. */
  readonly onReconnect?: (reason: string) => void;
}

export async function* watchCutover(admin: AdminTarget, app: string, options: WatchOptions): AsyncGenerator<CutoverStreamLine> {
  const adminUrl = admin.url;
  let after = options.after;
  let id: string | undefined;
  let lostAt: number | undefined;
  let backoff = 100;
  for (;;) {
    const url = new URL(`v1/apps/${encodeURIComponent(app)}/cutover?watch=1&after=${after}`, adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
    let res;
    try {
      res = await request(url, { method: 'GET', headers: adminHeaders(admin), headersTimeout: 30_000, bodyTimeout: 0 });
    } catch (err) {
      lostAt ??= Date.now();
      if (Date.now() - lostAt > (options.reconnectMs ?? 60_000)) {
        throw new FairwayError('FW_ADMIN_UNREACHABLE', `lost the admin API at ${adminUrl}: ${(err as Error).message}`);
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 2000);
      continue;
    }
    if (res.statusCode >= 300) throw await answerError(admin, res);
    lostAt = undefined;
    backoff = 100;
    let finished = false;
    let buffered = '';
    try {
      for await (const chunk of res.body) {
        buffered += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          const event = JSON.parse(line) as CutoverStreamLine;
          if (event.type === 'status') {
            if (id !== undefined && event.id !== id) {
              throw new FairwayError('FW_CUTOVER_NOT_FOUND', `the cutover of ${app} being watched (${id}) was replaced by another one (${event.id})`);
            }
            id = event.id;
            if (!isActive(event.state) && event.history.every((d) => d.index <= after)) finished = true;
          }
          if (event.type === 'decision') {
            after = event.index;
            if (!isActive(event.state)) finished = true;
          }
          yield event;
        }
      }
    } catch (err) {
      if (err instanceof FairwayError) throw err;
      // The connection broke: reconnect below.
    }
    if (finished) return;
    options.onReconnect?.('the event stream ended before the cutover did (router restarting?)');
    lostAt ??= Date.now();
    await sleep(backoff);
  }
}
