// Per-measurement records and the final report of bench/tls.sh (plain Node, no dependencies).
//
//   node tls-report.mjs record-wrk WRK_OUTPUT SCENARIO PROXY REP CPU_S PROXY_BUSY% LOAD_BUSY% FOREIGN_S HS_FULL HS_RESUMED TAG
//   node tls-report.mjs record-client CLIENT_JSON SCENARIO PROXY REP CPU_S PROXY_BUSY% LOAD_BUSY% FOREIGN_S HS_FULL HS_RESUMED TAG
//     Print one JSON line for raw.jsonl. CPU_S: CPU time of the server process during the
//     measurement; the busy percentages are of the server's CPU and the load CPU as a
//     whole; FOREIGN_S: CPU time of processes the bench did not start; HS_FULL/HS_RESUMED:
//     the server's own count of full/resumed handshakes during the measurement ("-" when
//     it has none: nginx's come from its session log, read by `summarize`); TAG: the
//     X-Bench-Tag the load sent ("scenario-rep.attempt"), the key into that log.
//
//   node tls-report.mjs summarize RAW_JSONL SUMMARY_JSON [NGINX_SESSION_LOG]
//     Prints the table of medians, the session-resumption check and the PASS/FAIL lines of
//     the targets, and writes SUMMARY_JSON (medians, checks, every rep, BENCH_META_*).
//     NGINX_SESSION_LOG: lines "TAG r|." written by the nginx peer for requests
//     carrying `X-Bench-Tag` (`$ssl_session_reused`). Exit 0, or 3 with BENCH_STRICT=1
//     when a target failed.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { benchMeta, fmtInt, fmtMs, fmtRatio, median, nginxSessions, parseWrk, table } from './wrk.mjs';

/** Scenarios, their unit and Fairway's target against nginx measured in the same run. */
export const SCENARIOS = {
  keepalive: { title: 'HTTPS keep-alive requests', unit: 'req', rateUnit: 'req/s', target: 0.35, cpuTolerance: 1 / 0.35 },
  resumed: { title: 'new connection per request, session resumed', unit: 'conn', rateUnit: 'conn/s', target: 0.8, cpuTolerance: 1 / 0.8 },
  full: { title: 'full handshakes (no resumption)', unit: 'handshake', rateUnit: 'hs/s', target: 0.9, cpuTolerance: 1.1 },
  // Optional, no target: every connection resumes (the client offers one ticket again and again).
  reuse: { title: 'new connection per request, the same ticket every time', unit: 'conn', rateUnit: 'conn/s' },
};
/** A row is client-bound when the load CPU was saturated and the server's CPU was not. */
const LOAD_SATURATED = 90;
const SERVER_SATURATED = 90;

const fmtUs = (n) => (n == null ? '—' : n >= 100 ? `${n.toFixed(0)} µs` : `${n.toFixed(1)} µs`);
const num = (s) => (s === undefined || s === '-' || s === '' ? null : Number(s));

function record(kind, file, scenario, proxy, rep, cpu, proxyBusy, loadBusy, foreign, hsFull, hsResumed, tag) {
  if (!SCENARIOS[scenario]) throw new Error(`unknown scenario ${scenario}`);
  let m;
  if (kind === 'wrk') {
    const w = parseWrk(readFileSync(file, 'utf8'));
    m = { count: w.requests, duration_s: w.duration_s, rate: w.rps, p50_ms: w.p50_ms, p99_ms: w.p99_ms, errors: w.non2xx + w.socketErrors, client: 'wrk' };
  } else {
    const c = JSON.parse(readFileSync(file, 'utf8').trim().split('\n').pop());
    m = {
      count: c.ok, duration_s: c.seconds, rate: c.rate, p50_ms: c.p50_ms, p99_ms: c.p99_ms, errors: c.errors + c.status_errors,
      client: c.client, client_resumed: c.resumed, tls: `${c.protocol} ${c.cipher} ${c.group} alpn=${c.alpn || '-'}`,
      first_error: c.first_error || undefined,
    };
  }
  const cpuSeconds = num(cpu);
  return {
    scenario, proxy, rep: Number(rep), tag, ...m,
    cpu_seconds: cpuSeconds,
    cpu_us_per_unit: cpuSeconds != null && cpuSeconds >= 0 && m.count > 0 ? (cpuSeconds * 1e6) / m.count : null,
    proxy_cpu_busy: num(proxyBusy), load_cpu_busy: num(loadBusy), foreign_cpu_seconds: num(foreign),
    handshakes_full: num(hsFull), handshakes_resumed: num(hsResumed),
  };
}

function summarize(rawFile, summaryFile, sessionLog) {
  const raw = readFileSync(rawFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const sessions = nginxSessions(sessionLog);
  for (const r of raw) {
    const s = sessions.get(r.tag);
    if (r.proxy === 'nginx' && r.handshakes_full == null && s) {
      r.handshakes_full = s.full;
      r.handshakes_resumed = s.resumed;
      r.handshakes_source = 'nginx log ($ssl_session_reused)';
    }
  }
  const med = {};
  const order = [];
  for (const scenario of Object.keys(SCENARIOS)) {
    for (const r of raw) {
      if (r.scenario !== scenario) continue;
      const key = `${scenario}/${r.proxy}`;
      if (!order.includes(key)) order.push(key);
    }
  }
  for (const key of order) {
    const [scenario, proxy] = key.split('/');
    const reps = raw.filter((r) => r.scenario === scenario && r.proxy === proxy);
    const all = (f) => reps.every((r) => r[f] != null);
    const hsFull = reps.reduce((a, r) => a + (r.handshakes_full ?? 0), 0);
    const hsResumed = reps.reduce((a, r) => a + (r.handshakes_resumed ?? 0), 0);
    med[key] = {
      scenario, proxy, reps: reps.length,
      rate: median(reps.map((r) => r.rate)),
      rate_min: Math.min(...reps.map((r) => r.rate)),
      rate_max: Math.max(...reps.map((r) => r.rate)),
      p50_ms: median(reps.map((r) => r.p50_ms)),
      p99_ms: median(reps.map((r) => r.p99_ms)),
      errors: reps.reduce((a, r) => a + r.errors, 0),
      cpu_us_per_unit: all('cpu_us_per_unit') ? median(reps.map((r) => r.cpu_us_per_unit)) : null,
      proxy_cpu_busy: all('proxy_cpu_busy') ? median(reps.map((r) => r.proxy_cpu_busy)) : null,
      load_cpu_busy: all('load_cpu_busy') ? median(reps.map((r) => r.load_cpu_busy)) : null,
      resumed_share: reps.some((r) => r.handshakes_full != null) && hsFull + hsResumed > 0 ? hsResumed / (hsFull + hsResumed) : null,
      handshakes_full: hsFull, handshakes_resumed: hsResumed,
      client_resumed: reps.some((r) => r.client_resumed != null) ? reps.reduce((a, r) => a + (r.client_resumed ?? 0), 0) : null,
      tls: reps.find((r) => r.tls)?.tls,
      client: reps[0].client,
    };
    const m = med[key];
    m.client_bound = m.load_cpu_busy != null && m.proxy_cpu_busy != null && m.load_cpu_busy >= LOAD_SATURATED && m.proxy_cpu_busy < SERVER_SATURATED;
  }
  for (const key of order) {
    const m = med[key];
    const n = med[`${m.scenario}/nginx`];
    m.rate_vs_nginx = n ? m.rate / n.rate : undefined;
    m.cpu_vs_nginx = n && m.cpu_us_per_unit != null && n.cpu_us_per_unit ? m.cpu_us_per_unit / n.cpu_us_per_unit : undefined;
  }

  const out = [];
  const rows = order.map((key) => {
    const m = med[key];
    const sc = SCENARIOS[m.scenario];
    return [
      m.scenario,
      m.proxy + (m.errors ? ' (!errors)' : ''),
      `${fmtInt(m.rate)} ${sc.rateUnit}`,
      `${fmtInt(m.rate_min)}–${fmtInt(m.rate_max)}`,
      fmtMs(m.p50_ms),
      fmtMs(m.p99_ms),
      fmtRatio(m.rate_vs_nginx),
      m.cpu_us_per_unit == null ? '—' : `${fmtUs(m.cpu_us_per_unit)}/${sc.unit}`,
      fmtRatio(m.cpu_vs_nginx),
      m.resumed_share == null ? '—' : `${(100 * m.resumed_share).toFixed(0)}%`,
      m.proxy_cpu_busy == null ? '—' : `${m.proxy_cpu_busy}% / ${m.load_cpu_busy}%${m.client_bound ? ' (client-bound)' : ''}`,
    ];
  });
  out.push(table(['scenario', 'server', 'rate (median)', 'min–max', 'p50', 'p99', 'rate ÷ nginx', 'server CPU per unit', 'CPU ÷ nginx', 'resumed', 'CPU busy server/load'], rows, 2));
  out.push('');

  // Session resumption as the servers counted it.
  for (const key of order) {
    const m = med[key];
    if (m.scenario === 'keepalive' || m.resumed_share == null) continue;
    const want = m.scenario === 'full' ? 'full' : 'resumed';
    const pct = (100 * m.resumed_share).toFixed(1);
    out.push(`SESSIONS ${m.scenario}/${m.proxy}: ${fmtInt(m.handshakes_resumed)} resumed, ${fmtInt(m.handshakes_full)} full handshakes (${pct}% resumed; want ${want})` +
      (m.client_resumed != null ? `; the client counted ${fmtInt(m.client_resumed)} resumed` : ''));
  }

  // Targets, judged on medians of the same run only.
  const checks = [];
  for (const [scenario, sc] of Object.entries(SCENARIOS)) {
    if (sc.target === undefined) continue;
    const name = `${scenario}: fairway ${sc.rateUnit} >= ${sc.target}x nginx`;
    const fw = med[`${scenario}/fairway`];
    const ng = med[`${scenario}/nginx`];
    if (!fw || !ng) {
      checks.push({ name, result: 'SKIP', detail: !fw && !ng ? 'scenario not measured' : `${fw ? 'nginx' : 'fairway'} not measured` });
      continue;
    }
    const ratio = fw.rate / ng.rate;
    const rateText = `${ratio.toFixed(2)}x (${fmtInt(fw.rate)} vs ${fmtInt(ng.rate)} ${sc.rateUnit})`;
    const boundRows = [fw, ng].filter((m) => m.client_bound);
    if (boundRows.length === 0) {
      checks.push({ name, result: ratio >= sc.target ? 'PASS' : 'FAIL', detail: rateText });
      continue;
    }
    // The load generator, not the server, set the rate of at least one row: compare the
    // CPU each server spent per unit instead.
    const who = boundRows.map((m) => `${m.proxy} (server CPU ${m.proxy_cpu_busy}%, load CPU ${m.load_cpu_busy}%)`).join(' and ');
    const cpuRatio = fw.cpu_us_per_unit != null && ng.cpu_us_per_unit ? fw.cpu_us_per_unit / ng.cpu_us_per_unit : undefined;
    const result = cpuRatio === undefined ? 'SKIP' : cpuRatio <= sc.cpuTolerance ? 'PASS' : 'FAIL';
    checks.push({
      name: `${name} [client-bound: judged on CPU per ${sc.unit}]`,
      result,
      client_bound: true,
      detail:
        `Fairway ${fmtUs(fw.cpu_us_per_unit)} vs nginx ${fmtUs(ng.cpu_us_per_unit)} per ${sc.unit} = ${fmtRatio(cpuRatio)} ` +
        `(target <= ${sc.cpuTolerance.toFixed(2)}x); ${sc.rateUnit} ${rateText} is not a server comparison: the load CPU ` +
        `was saturated during the reps of ${who}`,
    });
  }
  for (const key of order) {
    const m = med[key];
    if (m.errors) checks.push({ name: `${key} answered only 200 without socket errors`, result: 'FAIL', detail: `${m.errors} errors over ${m.reps} reps (see the raw outputs)` });
    if (m.scenario === 'full' && ((m.handshakes_resumed ?? 0) > 0 || (m.client_resumed ?? 0) > 0)) {
      checks.push({ name: `${key} made full handshakes only`, result: 'FAIL', detail: `${m.handshakes_resumed} resumed (server), ${m.client_resumed} (client)` });
    }
  }
  for (const c of checks) out.push(`${c.result} ${c.name}: ${c.detail}`);
  for (const key of order) {
    const m = med[key];
    if (m.client_bound) {
      out.push(`CLIENT-BOUND ${key}: the load CPU (${m.client} + origin) was ${m.load_cpu_busy}% busy while the server's CPU was ` +
        `${m.proxy_cpu_busy}%: the client, not ${m.proxy}, set this row's ${SCENARIOS[m.scenario].rateUnit}; compare CPU per ${SCENARIOS[m.scenario].unit}.`);
    }
  }

  const disturbed = raw.filter((r) => r.foreign_cpu_seconds != null && r.duration_s && r.foreign_cpu_seconds > 0.05 * r.duration_s);
  if (disturbed.length > 0) {
    const worst = Math.max(...disturbed.map((r) => (100 * r.foreign_cpu_seconds) / r.duration_s));
    out.push(`WARN other processes used CPU during ${disturbed.length} of ${raw.length} measurements (up to ${worst.toFixed(0)}% of a CPU): ` +
      disturbed.map((r) => `${r.scenario}/${r.proxy} rep ${r.rep}`).join(', ') + '; rerun on an idle machine for figures to quote');
  }
  const disturbedFile = rawFile.replace(/raw\.jsonl$/, 'disturbed.jsonl');
  if (disturbedFile !== rawFile && existsSync(disturbedFile)) {
    const n = readFileSync(disturbedFile, 'utf8').split('\n').filter(Boolean).length;
    out.push(`RETRIED ${n} measurement attempt(s) disturbed by other processes were discarded and measured again (disturbed.jsonl)`);
  }
  const tls = [...new Set(order.map((k) => med[k].tls && `${med[k].proxy}: ${med[k].tls}`).filter(Boolean))];
  if (tls.length) out.push(`negotiated (full-handshake client): ${tls.join('; ')}`);
  out.push('');
  out.push('server CPU per unit: user+system CPU time of the server process (nginx: master + worker) during the measurement,');
  out.push('divided by requests (keepalive), connections (resumed) or handshakes (full); median over reps. "resumed": share of');
  out.push('handshakes the server resumed (Fairway: fairway_tls_handshakes_total; nginx: $ssl_session_reused in a log).');
  out.push(`CPU busy server/load: the server's CPU and the load CPU (client + origin) as a whole; "client-bound": load >= ${LOAD_SATURATED}%`);
  out.push(`and server < ${SERVER_SATURATED}%, so that row's rate measures the client: such targets are judged on CPU per unit.`);
  const text = out.join('\n') + '\n';
  process.stdout.write(text);

  const meta = benchMeta();
  writeFileSync(summaryFile, JSON.stringify({ meta, medians: med, checks, raw }, null, 2) + '\n');
  return checks.some((c) => c.result === 'FAIL') ? 1 : 0;
}

const [cmd, ...args] = process.argv.slice(2);
if ((cmd === 'record-wrk' || cmd === 'record-client') && args.length === 11) {
  process.stdout.write(JSON.stringify(record(cmd === 'record-wrk' ? 'wrk' : 'client', ...args)) + '\n');
} else if (cmd === 'summarize' && (args.length === 2 || args.length === 3)) {
  const failed = summarize(...args);
  process.exit(failed && process.env.BENCH_STRICT === '1' ? 3 : 0);
} else {
  process.stderr.write(
    'usage: tls-report.mjs record-wrk|record-client FILE SCENARIO PROXY REP CPU_S PROXY_BUSY LOAD_BUSY FOREIGN_S HS_FULL HS_RESUMED TAG\n' +
      '       tls-report.mjs summarize RAW_JSONL SUMMARY_JSON [NGINX_SESSION_LOG]\n',
  );
  process.exit(2);
}
