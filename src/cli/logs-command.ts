/**
 * @module
 * `fairway logs APP [-n N] [-f] [--version V] [--json]`: the app's recent access-log
 * entries as the router saw them (from `GET /v1/apps/{app}/logs`), one line each, oldest
 * first; with `-f`, then each new one as it is logged (`follow=1`), until interrupted.
 *
 * Exit codes: 0 done (with `-f`: interrupted by SIGINT/SIGTERM), 1 the admin API was
 * unreachable or the router ended the stream (it stopped), 2 bad usage or unknown app.
 */
import { request } from 'undici';
import { FairwayError } from '../errors.js';
import { adminRequest, answerError, adminHeaders, type AdminTarget } from './admin-client.js';

export interface LogsOptions {
  readonly admin: AdminTarget;
  /** How many of the newest entries to show first (a string from the command line). */
  readonly lines: string;
  readonly follow?: boolean;
  readonly version?: string;
  readonly json?: boolean;
}

/** An entry as the admin API sends it: the access-log fields and `time`. */
export interface LogLine {
  readonly time?: string;
  readonly status?: number;
  readonly method?: string;
  readonly host?: string;
  readonly path?: string;
  readonly version?: string;
  readonly duration?: number;
  readonly clientIp?: string;
  readonly error?: string;
  readonly upgrade?: string;
  readonly skipped?: number;
  readonly [field: string]: unknown;
}

/**
 * One entry as a plain line: time, status, method, host, path, version, duration, client;
 * then the error (a catalogue code or the upstream failure) and, for upgraded connections,
 * the protocol, when present. Missing fields print as `-`.
 */
export function formatLogLine(e: LogLine): string {
  const dash = (v: unknown) => (v === undefined || v === null || v === '' ? '-' : String(v));
  let line = [
    dash(e.time), dash(e.status), dash(e.method), dash(e.host), dash(e.path), dash(e.version),
    e.duration === undefined ? '-' : `${e.duration}ms`, dash(e.clientIp),
  ].join(' ');
  if (e.error !== undefined) line += ` error=${e.error}`;
  if (e.upgrade !== undefined) line += ` upgrade=${e.upgrade}`;
  return line;
}

/** Runs the command; resolves with the exit code (with `-f`, only when the stream ends). */
export async function logsCommand(app: string, opts: LogsOptions): Promise<number> {
  const lines = Number(opts.lines);
  if (!/^\d+$/.test(opts.lines) || !Number.isSafeInteger(lines)) {
    process.stderr.write(`fairway: -n must be a number of lines >= 0, not "${opts.lines}"\n`);
    return 2;
  }
  const query = new URLSearchParams({ lines: String(lines) });
  if (opts.version !== undefined) query.set('version', opts.version);
  const path = `v1/apps/${encodeURIComponent(app)}/logs`;
  const print = (e: LogLine) => {
    if (e.skipped !== undefined) {
      process.stderr.write(`fairway: ${e.skipped} entries skipped (this reader fell behind)\n`);
      return;
    }
    process.stdout.write(`${opts.json ? JSON.stringify(e) : formatLogLine(e)}\n`);
  };
  if (!opts.follow) {
    const answer = (await adminRequest(opts.admin, 'GET', `${path}?${query}`)) as { entries: LogLine[] };
    for (const e of answer.entries) print(e);
    return 0;
  }

  query.set('follow', '1');
  const adminUrl = opts.admin.url;
  const url = new URL(`${path}?${query}`, adminUrl.endsWith('/') ? adminUrl : `${adminUrl}/`);
  let res;
  try {
    res = await request(url, { headers: adminHeaders(opts.admin), bodyTimeout: 0 });
  } catch (err) {
    throw new FairwayError('FW_ADMIN_UNREACHABLE', `cannot reach the admin API at ${adminUrl}: ${(err as Error).message} (is fairway running? set --admin or FAIRWAY_ADMIN)`);
  }
  if (res.statusCode !== 200) throw await answerError(opts.admin, res);
  // Interrupted: a normal way to stop following.
  const stop = () => process.exit(0);
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let rest = '';
  try {
    for await (const chunk of res.body) {
      rest += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line !== '') print(JSON.parse(line) as LogLine);
      }
    }
  } catch {
    // The connection broke: reported below like an ended stream.
  }
  process.stderr.write('fairway: the router ended the log stream (it stopped or restarted)\n');
  return 1;
}
