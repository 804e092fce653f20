// Latency at an equal offered load, for bench/run.sh (plain Node, no dependencies).
//
// The plain bench's wrk runs are closed loops: 64 connections each send a request as soon as
// the previous answer arrives, so each proxy runs at its own capacity and, by Little's law,
// its mean latency is 64 ÷ its rate. A proxy at 0.39× nginx's rate has 2.6× nginx's mean
// latency before any tail. This step runs every proxy at the same fixed rate instead
// (h2load --rps: each of 64 connections sends rate/64 requests a second), below every
// proxy's capacity, so that the latencies compare the proxies' own delays at one load.
//
//   node rate-latency.mjs parse H2LOAD_LOG H2LOAD_OUTPUT PROXY REP RATE
//     Prints one JSON line: {proxy, rep, rate, requests, ok, failed, p50_ms, p90_ms, p99_ms,
//     p999_ms, max_ms}. H2LOAD_LOG is h2load's --log-file (one line per request: start time
//     in µs, status, duration in µs; the measured period only); H2LOAD_OUTPUT its stdout.
//
//   node rate-latency.mjs summarize RATE_JSONL
//     Prints the table of medians over the reps and one LATENCY line per proxy against nginx.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { fmtInt, fmtMs, fmtRatio, median, table } from './wrk.mjs';

/** The value at quantile `q` of ascending `sorted` (nearest rank). */
export function quantile(sorted, q) {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Reads an h2load per-request log into the figures of one run. */
export function parseRun(logText, outputText) {
  const durations = [];
  let ok = 0;
  for (const line of logText.split('\n')) {
    const [, status, us] = line.split('\t');
    if (us === undefined) continue;
    durations.push(Number(us) / 1000);
    const code = Number(status);
    if (code >= 200 && code < 400) ok++;
  }
  durations.sort((a, b) => a - b);
  const failed = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(outputText);
  return {
    requests: durations.length,
    ok,
    failed: failed ? Number(failed[1]) + Number(failed[2]) + Number(failed[3]) : 0,
    p50_ms: quantile(durations, 0.5),
    p90_ms: quantile(durations, 0.9),
    p99_ms: quantile(durations, 0.99),
    p999_ms: quantile(durations, 0.999),
    max_ms: durations.at(-1),
  };
}

/** Medians over the reps of each proxy, in the order first seen. */
export function summarize(rows) {
  const byProxy = new Map();
  for (const r of rows) {
    if (!byProxy.has(r.proxy)) byProxy.set(r.proxy, []);
    byProxy.get(r.proxy).push(r);
  }
  const fields = ['p50_ms', 'p90_ms', 'p99_ms', 'p999_ms', 'max_ms'];
  return [...byProxy].map(([proxy, reps]) => ({
    proxy,
    rate: reps[0].rate,
    reps: reps.length,
    requests: reps.reduce((a, r) => a + r.requests, 0),
    notOk: reps.reduce((a, r) => a + (r.requests - r.ok) + r.failed, 0),
    ...Object.fromEntries(fields.map((f) => [f, median(reps.map((r) => r[f]))])),
  }));
}

export function report(rows) {
  const s = summarize(rows);
  if (s.length === 0) return 'no equal-load latency measured';
  const out = [
    `Latency at an equal load: ${fmtInt(s[0].rate)} req/s for every proxy (h2load --rps, 64 connections; medians of ${s[0].reps} reps)`,
    '',
    table(
      ['proxy', 'req/s', 'p50', 'p90', 'p99', 'p99.9', 'max', 'not 2xx/3xx'],
      s.map((r) => [r.proxy, fmtInt(r.rate), fmtMs(r.p50_ms), fmtMs(r.p90_ms), fmtMs(r.p99_ms), fmtMs(r.p999_ms), fmtMs(r.max_ms), String(r.notOk)]),
    ),
    '',
  ];
  const nginx = s.find((r) => r.proxy === 'nginx');
  for (const r of s) {
    if (r === nginx) continue;
    if (r.notOk > 0) out.push(`WARN ${r.proxy} answered ${r.notOk} requests at the equal load with an error or not at all`);
    if (nginx === undefined) continue;
    out.push(
      `LATENCY ${r.proxy} at an equal load of ${fmtInt(r.rate)} req/s: p99 ${fmtRatio(r.p99_ms / nginx.p99_ms)} nginx's ` +
        `(${fmtMs(r.p99_ms)} vs ${fmtMs(nginx.p99_ms)}), p99.9 ${fmtRatio(r.p999_ms / nginx.p999_ms)} (${fmtMs(r.p999_ms)} vs ${fmtMs(nginx.p999_ms)}), ` +
        `p50 ${fmtRatio(r.p50_ms / nginx.p50_ms)}`,
    );
  }
  return out.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'parse') {
    const [log, output, proxy, rep, rate] = args;
    const run = parseRun(readFileSync(log, 'utf8'), readFileSync(output, 'utf8'));
    if (run.requests === 0) {
      console.error(`no request in the h2load log ${log}`);
      process.exit(1);
    }
    console.log(JSON.stringify({ proxy, rep: Number(rep), rate: Number(rate), ...run }));
  } else if (cmd === 'summarize') {
    const rows = readFileSync(args[0], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    console.log(report(rows));
  } else {
    console.error('usage: rate-latency.mjs parse H2LOAD_LOG H2LOAD_OUTPUT PROXY REP RATE | summarize RATE_JSONL');
    process.exit(2);
  }
}
