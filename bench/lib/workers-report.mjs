// Records and report of bench/workers.sh: Fairway and nginx with 1 and 2 workers (plain Node,
// no dependencies).
//
//   node workers-report.mjs record file=WRK_OUTPUT scenario=S server=NAME rep=N tag=T workers=N
//        runs_on=TEXT clk_tck=HZ server_ticks=T workers_before="PID:TICKS ..." workers_after="..."
//        load_ticks=T proxy_cpu_busy=% load_cpu_busy=% foreign_ticks=T handshakes_full=N|-
//        handshakes_resumed=N|-
//     Prints one JSON line for raw.jsonl (stdout) and a one-line summary (stderr). runs_on:
//     the server's CPUs ("CPU 0 (alone)", "every CPU (shared)"). Ticks are
//     user+system CPU in clock ticks during the measurement: server_ticks of the server with
//     its worker processes; workers_before/after of each worker process (the split between
//     them); load_ticks of wrk and the origin; foreign_ticks of processes the bench did not
//     start. The busy percentages are of the proxy CPU and the load CPU as a whole.
//     handshakes_*: the Fairway's own count during the measurement ("-": none; nginx's come
//     from its session log, read by `summarize`).
//
//   node workers-report.mjs summarize RAW_JSONL SUMMARY_JSON LOGS_DIR
//     Prints the table of medians (ratio to nginx of the same worker count, 2w ÷ 1w), the
//     SCALING and SESSIONS lines, the check that sessions resume across Fairway's 2 workers,
//     and writes SUMMARY_JSON (medians, checks, every rep, BENCH_META_*). LOGS_DIR holds
//     `<nginx server>.sessions.log`: "TAG r|." per request tagged X-Bench-Tag
//     ($ssl_session_reused). Exit 0, or 3 with BENCH_STRICT=1 when a check failed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchMeta, fmtInt, fmtMs, fmtRatio, median, nginxSessions, parseWrk, table } from './wrk.mjs';

const SCENARIOS = {
  http: { title: 'plain HTTP keep-alive', unit: 'req', rateUnit: 'req/s' },
  https: { title: 'HTTPS keep-alive', unit: 'req', rateUnit: 'req/s' },
  resumed: { title: 'new TLS connection per request, session resumed', unit: 'conn', rateUnit: 'conn/s' },
};
const SERVER_ORDER = ['nginx-1w', 'fairway-1w', 'nginx-2w', 'fairway-2w'];
/** Sessions resume across Fairway's workers when its 2-worker share is at least this part of its 1-worker share. */
const RESUMED_SHARE_KEPT = 0.9;
/** Below this share of the worker CPU, one worker took (almost) every connection: no evidence either way. */
const MIN_WORKER_SHARE = 0.1;

const fmtUs = (n) => (n == null ? '—' : n >= 100 ? `${n.toFixed(0)} µs` : `${n.toFixed(1)} µs`);
const fmtPct = (n) => (n == null ? '—' : `${(100 * n).toFixed(0)}%`);
const num = (s) => (s === undefined || s === '-' || s === '' ? null : Number(s));
const proxyOf = (server) => server.replace(/-\dw$/, '');
const workersOf = (server) => Number(/-(\d)w$/.exec(server)[1]);

/** "PID:TICKS PID:TICKS" -> Map(pid -> ticks). */
function ticksByPid(text) {
  const m = new Map();
  for (const item of (text ?? '').trim().split(/\s+/).filter(Boolean)) {
    const [pid, ticks] = item.split(':');
    m.set(pid, Number(ticks));
  }
  return m;
}

function record(args) {
  const a = Object.fromEntries(args.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  for (const k of ['file', 'scenario', 'server', 'rep', 'clk_tck', 'server_ticks', 'load_ticks']) {
    if (a[k] === undefined) throw new Error(`record: missing ${k}=`);
  }
  if (!SCENARIOS[a.scenario]) throw new Error(`unknown scenario ${a.scenario}`);
  const w = parseWrk(readFileSync(a.file, 'utf8'));
  const hz = Number(a.clk_tck);
  const before = ticksByPid(a.workers_before);
  const after = ticksByPid(a.workers_after);
  // Only the workers alive for the whole measurement (a replaced one would skew the split).
  const workerSeconds = [...after].filter(([pid]) => before.has(pid)).map(([pid, t]) => (t - before.get(pid)) / hz);
  const serverSeconds = Number(a.server_ticks) / hz;
  const r = {
    scenario: a.scenario, server: a.server, proxy: proxyOf(a.server), workers: Number(a.workers), runs_on: a.runs_on ?? '?',
    rep: Number(a.rep), tag: a.tag,
    rate: w.rps, p50_ms: w.p50_ms, p99_ms: w.p99_ms, count: w.requests, duration_s: w.duration_s, errors: w.non2xx + w.socketErrors,
    server_cpu_seconds: serverSeconds,
    server_cpu_us_per_unit: w.requests > 0 ? (serverSeconds * 1e6) / w.requests : null,
    worker_cpu_seconds: workerSeconds,
    // The process above the workers (Fairway's primary, nginx's master); null without workers under it.
    primary_cpu_seconds: workerSeconds.length >= 2 ? Math.max(0, serverSeconds - workerSeconds.reduce((x, y) => x + y, 0)) : null,
    load_cpu_seconds: Number(a.load_ticks) / hz,
    proxy_cpu_busy: num(a.proxy_cpu_busy), load_cpu_busy: num(a.load_cpu_busy),
    foreign_cpu_seconds: a.foreign_ticks === undefined ? null : Number(a.foreign_ticks) / hz,
    handshakes_full: num(a.handshakes_full), handshakes_resumed: num(a.handshakes_resumed),
  };
  const d = r.duration_s || 1;
  const split = workerShares(r);
  const hs = r.handshakes_full == null ? '' : `, handshakes ${r.handshakes_full} full/${r.handshakes_resumed} resumed`;
  process.stderr.write(
    `${fmtInt(r.rate)} ${SCENARIOS[r.scenario].rateUnit} p99 ${fmtMs(r.p99_ms)}, CPUs server ${(serverSeconds / d).toFixed(2)} / load ${(r.load_cpu_seconds / d).toFixed(2)}` +
      `${split ? `, workers ${split.map(fmtPct).join('/')}` : ''}${hs}${r.errors ? `, ${r.errors} errors` : ''}\n`,
  );
  process.stdout.write(JSON.stringify(r) + '\n');
}

/** Each worker's share of the workers' CPU, largest first; null with fewer than 2 workers. */
function workerShares(r) {
  const s = r.worker_cpu_seconds;
  const total = s.reduce((x, y) => x + y, 0);
  if (s.length < 2 || total <= 0) return null;
  return s.map((x) => x / total).sort((x, y) => y - x);
}

function summarize(rawFile, summaryFile, logsDir) {
  const raw = readFileSync(rawFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  for (const server of new Set(raw.map((r) => r.server))) {
    if (proxyOf(server) !== 'nginx') continue;
    const sessions = nginxSessions(join(logsDir, `${server}.sessions.log`));
    for (const r of raw) {
      const s = r.server === server && r.scenario === 'resumed' ? sessions.get(r.tag) : undefined;
      if (s) Object.assign(r, { handshakes_full: s.full, handshakes_resumed: s.resumed, handshakes_source: 'nginx log ($ssl_session_reused)' });
    }
  }

  const med = {};
  const order = [];
  for (const scenario of Object.keys(SCENARIOS)) {
    for (const server of SERVER_ORDER) {
      const reps = raw.filter((r) => r.scenario === scenario && r.server === server);
      if (reps.length === 0) continue;
      const key = `${scenario}/${server}`;
      order.push(key);
      const perSecond = (f) => median(reps.map((r) => r[f] / (r.duration_s || 1)));
      const hsFull = reps.reduce((x, r) => x + (r.handshakes_full ?? 0), 0);
      const hsResumed = reps.reduce((x, r) => x + (r.handshakes_resumed ?? 0), 0);
      const shares = reps.map(workerShares).filter(Boolean);
      med[key] = {
        scenario, server, proxy: proxyOf(server), workers: workersOf(server), runs_on: reps[0].runs_on, reps: reps.length,
        rate: median(reps.map((r) => r.rate)),
        rate_min: Math.min(...reps.map((r) => r.rate)),
        rate_max: Math.max(...reps.map((r) => r.rate)),
        p50_ms: median(reps.map((r) => r.p50_ms)),
        p99_ms: median(reps.map((r) => r.p99_ms)),
        errors: reps.reduce((x, r) => x + r.errors, 0),
        server_cpu_us_per_unit: reps.every((r) => r.server_cpu_us_per_unit != null) ? median(reps.map((r) => r.server_cpu_us_per_unit)) : null,
        server_cpus: perSecond('server_cpu_seconds'),
        load_cpus: perSecond('load_cpu_seconds'),
        worker_shares: shares.length ? shares[0].map((_, i) => median(shares.map((s) => s[i] ?? 0))) : null,
        primary_share: reps.every((r) => r.primary_cpu_seconds != null && r.server_cpu_seconds > 0)
          ? median(reps.map((r) => r.primary_cpu_seconds / r.server_cpu_seconds)) : null,
        proxy_cpu_busy: median(reps.map((r) => r.proxy_cpu_busy)),
        load_cpu_busy: median(reps.map((r) => r.load_cpu_busy)),
        handshakes_full: hsFull, handshakes_resumed: hsResumed,
        resumed_share: reps.some((r) => r.handshakes_full != null) && hsFull + hsResumed > 0 ? hsResumed / (hsFull + hsResumed) : null,
      };
    }
  }
  for (const key of order) {
    const m = med[key];
    const nginx = med[`${m.scenario}/nginx-${m.workers}w`];
    m.rate_vs_nginx = nginx ? m.rate / nginx.rate : undefined;
    const one = m.workers === 2 ? med[`${m.scenario}/${m.proxy}-1w`] : undefined;
    m.scaling = one ? m.rate / one.rate : undefined;
  }

  const out = [];
  if (raw.some((r) => r.workers === 1 && r.runs_on.startsWith('CPU'))) {
    out.push('1-worker servers pinned to one CPU, origin + wrk to the other; 2-worker servers unpinned, sharing the origin + wrk CPU:');
    out.push('the 2w figures and 2w ÷ 1w are a floor (the load generator takes CPU from the 2 workers), not the ceiling of 2 workers.');
  } else {
    out.push('No CPU pinning (fewer than 2 CPUs): every server shares every CPU with origin + wrk; 2w ÷ 1w says little here.');
  }
  const rows = order.map((key) => {
    const m = med[key];
    const sc = SCENARIOS[m.scenario];
    return [
      m.scenario,
      m.server + (m.errors ? ' (!errors)' : ''),
      m.runs_on,
      `${fmtInt(m.rate)} ${sc.rateUnit}`,
      `${fmtInt(m.rate_min)}–${fmtInt(m.rate_max)}`,
      fmtMs(m.p50_ms),
      fmtMs(m.p99_ms),
      fmtRatio(m.rate_vs_nginx),
      fmtRatio(m.scaling),
      m.server_cpu_us_per_unit == null ? '—' : `${fmtUs(m.server_cpu_us_per_unit)}/${sc.unit}`,
      `${m.server_cpus.toFixed(2)} / ${m.load_cpus.toFixed(2)}`,
      m.worker_shares ? `${m.worker_shares.map(fmtPct).join(' / ')}${m.primary_share == null ? '' : ` (${fmtPct(m.primary_share)})`}` : '—',
      fmtPct(m.resumed_share),
      `${m.proxy_cpu_busy}% / ${m.load_cpu_busy}%`,
    ];
  });
  out.push(table(['scenario', 'server', 'runs on', 'rate (median)', 'min–max', 'p50', 'p99', '÷ nginx same workers', '2w ÷ 1w', 'server CPU per unit',
    'CPUs used server / load', 'worker split (primary)', 'resumed', 'busy proxy / load CPU'], rows, 3));
  out.push('');

  for (const scenario of Object.keys(SCENARIOS)) {
    const parts = [];
    for (const proxy of ['fairway', 'nginx']) {
      const one = med[`${scenario}/${proxy}-1w`];
      const two = med[`${scenario}/${proxy}-2w`];
      if (one && two) parts.push(`${proxy} ${fmtRatio(two.scaling)} (${fmtInt(one.rate)} → ${fmtInt(two.rate)} ${SCENARIOS[scenario].rateUnit})`);
    }
    if (parts.length) out.push(`SCALING ${scenario} 2w ÷ 1w (a floor): ${parts.join('; ')}`);
  }
  for (const key of order) {
    const m = med[key];
    if (m.scenario !== 'resumed' || m.resumed_share == null) continue;
    out.push(`SESSIONS ${key}: ${fmtInt(m.handshakes_resumed)} resumed, ${fmtInt(m.handshakes_full)} full handshakes (${(100 * m.resumed_share).toFixed(1)}% resumed)`);
  }

  const checks = [];
  const fw1 = med['resumed/fairway-1w'];
  const fw2 = med['resumed/fairway-2w'];
  if (fw2) {
    const name = "sessions resume across Fairway's 2 workers";
    const split = fw2.worker_shares;
    const minShare = split ? Math.min(...split) : 0;
    if (fw2.resumed_share == null) {
      checks.push({ name, result: 'SKIP', detail: 'fairway-2w counted no handshakes (fairway_tls_handshakes_total unreadable)' });
    } else if (!fw1 || fw1.resumed_share == null || fw1.resumed_share === 0) {
      checks.push({ name, result: 'SKIP', detail: `fairway-2w resumed ${fmtPct(fw2.resumed_share)}; no fairway-1w share that resumes to compare with` });
    } else if (minShare < MIN_WORKER_SHARE) {
      checks.push({ name, result: 'SKIP', detail: `one worker took almost every connection (worker CPU split ${split ? split.map(fmtPct).join('/') : '—'}): no evidence either way` });
    } else {
      // With a ticket key per worker, a reconnection resumes only when it lands on the worker
      // that issued its ticket: about sum(p_i^2) of the 1-worker share.
      const unshared = fw1.resumed_share * split.reduce((x, p) => x + p * p, 0);
      const ok = fw2.resumed_share >= RESUMED_SHARE_KEPT * fw1.resumed_share;
      checks.push({
        name, result: ok ? 'PASS' : 'FAIL',
        detail: `fairway-2w resumed ${(100 * fw2.resumed_share).toFixed(1)}% of ${fmtInt(fw2.handshakes_full + fw2.handshakes_resumed)} handshakes, ` +
          `fairway-1w ${(100 * fw1.resumed_share).toFixed(1)}% (want >= ${RESUMED_SHARE_KEPT}x); its workers took ${split.map(fmtPct).join('/')} of the worker CPU, ` +
          `so without shared ticket keys it would be about ${(100 * unshared).toFixed(0)}%`,
      });
    }
  }
  for (const key of order) {
    const m = med[key];
    if (m.errors) checks.push({ name: `${key} answered only 2xx without socket errors`, result: 'FAIL', detail: `${m.errors} errors over ${m.reps} reps (see the wrk outputs)` });
  }
  for (const c of checks) out.push(`${c.result} ${c.name}: ${c.detail}`);

  const disturbed = raw.filter((r) => r.foreign_cpu_seconds != null && r.duration_s && r.foreign_cpu_seconds > 0.05 * r.duration_s);
  if (disturbed.length > 0) {
    const worst = Math.max(...disturbed.map((r) => (100 * r.foreign_cpu_seconds) / r.duration_s));
    out.push(`WARN other processes used CPU during ${disturbed.length} of ${raw.length} measurements (up to ${worst.toFixed(0)}% of a CPU): ` +
      disturbed.map((r) => `${r.scenario}/${r.server} rep ${r.rep}`).join(', ') + '; rerun on an idle machine for figures to quote');
  }
  out.push('');
  out.push('÷ nginx same workers: rate against nginx with as many workers. 2w ÷ 1w: the 2-worker rate against the same proxy\'s 1-worker rate.');
  out.push('server CPU per unit: user+system CPU of the server (nginx: master + workers; Fairway: primary + workers) per request');
  out.push('or connection. CPUs used: CPU seconds per second of the server, and of the load (wrk + origin). worker split: how the');
  out.push('2 workers shared the workers\' CPU; (primary): the share of the server\'s CPU used by Fairway\'s primary or nginx\'s master.');
  out.push('resumed: share of handshakes the server resumed (Fairway: fairway_tls_handshakes_total, summed over its workers;');
  out.push('nginx: $ssl_session_reused). busy: the proxy CPU and the load CPU as a whole, kernel network work included.');
  const text = out.join('\n') + '\n';
  process.stdout.write(text);

  const meta = benchMeta();
  writeFileSync(summaryFile, JSON.stringify({ meta, medians: med, checks, raw }, null, 2) + '\n');
  return checks.some((c) => c.result === 'FAIL');
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'record' && args.length > 0) {
  record(args);
} else if (cmd === 'summarize' && args.length === 3) {
  const failed = summarize(...args);
  process.exit(failed && process.env.BENCH_STRICT === '1' ? 3 : 0);
} else {
  process.stderr.write('usage: workers-report.mjs record file=WRK_OUTPUT scenario=S server=NAME rep=N ... | workers-report.mjs summarize RAW_JSONL SUMMARY_JSON LOGS_DIR\n');
  process.exit(2);
}
