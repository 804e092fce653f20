// Records and report of bench/proxy-protocol.sh (plain Node, no dependencies).
//
//   node proxy-protocol-report.mjs record WRK_OUTPUT SCENARIO ROW REP CPU_S SERVER_BUSY% LOAD_BUSY% FOREIGN_CPU_S HEADERS
//     One JSON line: the wrk figures (bench/lib/wrk.mjs parseWrk), the server's CPU per
//     request, the busy CPUs, the CPU other processes used, and the PROXY headers the
//     Fairway with the protocol read during the measurement ("-": not a PROXY row).
//
//   node proxy-protocol-report.mjs summarize RAW_JSONL SUMMARY_JSON
//     The table of medians per scenario and row, each row's ratio to its relay row (the
//     same path without the header), and one COST line per PROXY row. Writes SUMMARY_JSON.
import { readFileSync, writeFileSync } from 'node:fs';
import { benchMeta, fmtInt, fmtMs, median, parseWrk, table } from './wrk.mjs';

const PATHS = {
  fairway: 'wrk → Fairway',
  'fairway-relay': 'wrk → HAProxy → Fairway',
  'fairway-pp-v1': 'wrk → HAProxy send-proxy → Fairway',
  'fairway-pp-v2': 'wrk → HAProxy send-proxy-v2 → Fairway',
  'nginx-relay': 'wrk → HAProxy → nginx',
  'nginx-pp-v2': 'wrk → HAProxy send-proxy-v2 → nginx',
};
/** The row a PROXY row is compared with: the same path without the header. */
const RELAY_OF = { 'fairway-pp-v1': 'fairway-relay', 'fairway-pp-v2': 'fairway-relay', 'nginx-pp-v2': 'nginx-relay' };

function record([file, scenario, row, rep, cpu, serverBusy, loadBusy, foreign, headers]) {
  const w = parseWrk(readFileSync(file, 'utf8'));
  const cpuSeconds = Number(cpu);
  process.stdout.write(JSON.stringify({
    scenario, row, rep: Number(rep), ...w,
    cpu_seconds: cpuSeconds, cpu_us_per_req: w.requests > 0 ? (cpuSeconds * 1e6) / w.requests : null,
    server_cpu_busy: Number(serverBusy), load_cpu_busy: Number(loadBusy), foreign_cpu_seconds: Number(foreign),
    proxy_headers: headers === '-' ? null : Number(headers),
  }) + '\n');
}

function summarize(rawFile, summaryFile) {
  const raw = readFileSync(rawFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const scenarios = [...new Set(raw.map((r) => r.scenario))];
  const med = {};
  for (const scenario of scenarios) {
    med[scenario] = {};
    for (const row of [...new Set(raw.filter((r) => r.scenario === scenario).map((r) => r.row))]) {
      const reps = raw.filter((r) => r.scenario === scenario && r.row === row);
      med[scenario][row] = {
        reps: reps.length,
        rps: median(reps.map((r) => r.rps)),
        rps_min: Math.min(...reps.map((r) => r.rps)),
        rps_max: Math.max(...reps.map((r) => r.rps)),
        p50_ms: median(reps.map((r) => r.p50_ms)),
        p99_ms: median(reps.map((r) => r.p99_ms)),
        cpu_us_per_req: median(reps.map((r) => r.cpu_us_per_req)),
        server_cpu_busy: median(reps.map((r) => r.server_cpu_busy)),
        load_cpu_busy: median(reps.map((r) => r.load_cpu_busy)),
        errors: reps.reduce((a, r) => a + r.non2xx + r.socketErrors, 0),
        requests: reps.reduce((a, r) => a + r.requests, 0),
        proxy_headers: reps.every((r) => r.proxy_headers != null) ? reps.reduce((a, r) => a + r.proxy_headers, 0) : null,
      };
    }
  }
  const out = [];
  const rows = [];
  const costs = [];
  for (const scenario of scenarios) {
    for (const [row, m] of Object.entries(med[scenario])) {
      const relay = med[scenario][RELAY_OF[row]];
      m.rps_vs_relay = relay ? m.rps / relay.rps : undefined;
      m.cpu_vs_relay = relay ? m.cpu_us_per_req / relay.cpu_us_per_req : undefined;
      rows.push([
        scenario, row + (m.errors ? ' (!errors)' : ''), PATHS[row] ?? row, fmtInt(m.rps), `${fmtInt(m.rps_min)}–${fmtInt(m.rps_max)}`,
        fmtMs(m.p50_ms), fmtMs(m.p99_ms), relay ? `${m.rps_vs_relay.toFixed(3)}×` : '—', `${m.cpu_us_per_req.toFixed(1)} µs`,
        relay ? `${m.cpu_vs_relay.toFixed(3)}×` : '—',
        m.proxy_headers == null ? '—' : `${fmtInt(m.proxy_headers)} / ${fmtInt(m.requests)}`,
        `${m.server_cpu_busy}% / ${m.load_cpu_busy}%`,
      ]);
      if (relay) {
        costs.push(
          `COST ${scenario} ${row}: req/s ${pct(m.rps_vs_relay - 1)} (${fmtInt(m.rps)} vs ${fmtInt(relay.rps)} without the header), ` +
            `server CPU per request ${sign(m.cpu_us_per_req - relay.cpu_us_per_req)}${Math.abs(m.cpu_us_per_req - relay.cpu_us_per_req).toFixed(1)} µs (${pct(m.cpu_vs_relay - 1)})`,
        );
      }
    }
  }
  out.push(table(['scenario', 'row', 'path', 'req/s (median)', 'min–max', 'p50', 'p99', 'req/s ÷ relay', 'server CPU/req', 'CPU ÷ relay', 'PROXY headers / requests', 'CPU busy server/load'], rows, 3));
  out.push('');
  out.push(...costs);
  const disturbed = raw.filter((r) => r.duration_s && r.foreign_cpu_seconds > 0.05 * r.duration_s);
  if (disturbed.length > 0) {
    const worst = Math.max(...disturbed.map((r) => (100 * r.foreign_cpu_seconds) / r.duration_s));
    out.push(`WARN other processes used CPU during ${disturbed.length} of ${raw.length} measurements (up to ${worst.toFixed(0)}% of a CPU): ` +
      disturbed.map((r) => `${r.scenario}/${r.row} rep ${r.rep}`).join(', ') + '; figures are low and noisy');
  }
  const failed = Object.values(med).flatMap((s) => Object.entries(s)).filter(([, m]) => m.errors > 0);
  for (const [row, m] of failed) out.push(`ERRORS ${row}: ${m.errors} non-2xx answers or socket errors (see the wrk outputs)`);
  out.push('');
  out.push('req/s ÷ relay, CPU ÷ relay: a PROXY row against the same path without the header (HAProxy in TCP mode either way).');
  out.push('server CPU/req: user+system CPU of the server process (Fairway; nginx: master + worker) per request, median over reps.');
  out.push('PROXY headers / requests: headers the Fairway with the protocol read during the reps, against the requests served.');
  process.stdout.write(out.join('\n') + '\n');
  const meta = benchMeta();
  writeFileSync(summaryFile, JSON.stringify({ meta, medians: med, raw }, null, 2) + '\n');
}

const pct = (f) => `${f >= 0 ? '+' : '−'}${Math.abs(100 * f).toFixed(1)}%`;
const sign = (d) => (d >= 0 ? '+' : '−');

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'record' && args.length === 9) record(args);
else if (cmd === 'summarize' && args.length === 2) summarize(args[0], args[1]);
else {
  process.stderr.write('usage: proxy-protocol-report.mjs record WRK_OUTPUT SCENARIO ROW REP CPU_S SERVER_BUSY LOAD_BUSY FOREIGN_S HEADERS | summarize RAW_JSONL SUMMARY_JSON\n');
  process.exit(2);
}
