// Rows and report of the paired benchmark (bench/paired.sh): each proxy measured at the same
// time as the reference (nginx, unless BENCH_PAIRED_REFERENCE names another row), on the same
// CPU; compared by CPU time per request.
//
//   node paired-report.mjs row PROXY REFERENCE REP WRK_OUT REF_WRK_OUT PROXY_TICKS REF_TICKS CLK_TCK DURATION LOAD_BUSY
//       prints one JSON row (appended to rows.jsonl by the script)
//   node paired-report.mjs line < ROW            a one-line summary of a row, for the progress log
//   node paired-report.mjs summary ROWS.jsonl    the table and the targets (PASS/FAIL/SKIP)
import { readFileSync } from 'node:fs';
import { benchMeta, fmtInt, fmtMs, fmtRatio, median, parseWrk, table } from './wrk.mjs';

const [command, ...args] = process.argv.slice(2);

/** µs of CPU per request, from clock ticks over a wrk run. */
const cpuPerRequest = (ticks, hz, requests) => (requests > 0 ? (ticks / hz / requests) * 1e6 : undefined);
const fmtUs = (us) => (us === undefined ? '—' : `${us.toFixed(1)} µs`);

function row([proxy, reference, rep, out, ref, proxyTicks, refTicks, hz, duration, loadBusy]) {
  const p = parseWrk(readFileSync(out, 'utf8'));
  const n = parseWrk(readFileSync(ref, 'utf8'));
  const pCpu = cpuPerRequest(Number(proxyTicks), Number(hz), p.requests);
  const nCpu = cpuPerRequest(Number(refTicks), Number(hz), n.requests);
  return {
    proxy,
    rep: Number(rep),
    duration_s: Number(duration),
    rps: p.rps,
    p99_ms: p.p99_ms,
    errors: p.non2xx + p.socketErrors,
    cpu_us: pCpu,
    reference: { name: reference, rps: n.rps, p99_ms: n.p99_ms, errors: n.non2xx + n.socketErrors, cpu_us: nCpu },
    // The reference's CPU per request over the proxy's: the proxy's req/s ÷ the reference's with a core each.
    ratio: pCpu && nCpu ? nCpu / pCpu : undefined,
    load_busy: Number(loadBusy),
  };
}

function line(r) {
  return `${r.proxy.padEnd(13)} ${fmtInt(r.rps)} req/s at ${fmtUs(r.cpu_us)}/req, ${r.reference.name} beside it ${fmtInt(r.reference.rps)} at ${fmtUs(r.reference.cpu_us)}/req: ${fmtRatio(r.ratio)}`;
}

function summary(file) {
  const rows = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const proxies = [...new Set(rows.map((r) => r.proxy))];
  const ref = rows[0]?.reference.name ?? 'nginx';
  const meta = benchMeta();
  const out = [];
  out.push(`Fairway paired bench ${meta.date ?? ''}: ${meta.settings ?? ''}; nproc ${meta.nproc ?? '?'}; pinning: each proxy and ${ref} together on one CPU, their two wrk and the origin on the other (${meta.pinning ?? '?'})`);
  out.push(`node ${meta.node ?? '?'}, nginx ${meta.nginx ?? '?'}, haproxy ${meta.haproxy ?? '?'}, caddy ${meta.caddy ?? '?'}, wrk ${meta.wrk ?? '?'}, origin: ${meta.origin ?? '?'}; machine busy before start: ${meta.busy_before ?? '?'}`);
  out.push('');
  const stats = new Map();
  const body = proxies.map((name) => {
    const rs = rows.filter((r) => r.proxy === name);
    const ratios = rs.map((r) => r.ratio).filter((x) => x !== undefined);
    const s = {
      ratio: ratios.length ? median(ratios) : undefined,
      min: ratios.length ? Math.min(...ratios) : undefined,
      max: ratios.length ? Math.max(...ratios) : undefined,
      errors: rs.reduce((a, r) => a + r.errors, 0),
      loadBusy: Math.max(...rs.map((r) => r.load_busy)),
    };
    stats.set(name, s);
    return [
      s.errors > 0 ? `${name} (!errors)` : name,
      fmtInt(median(rs.map((r) => r.rps))),
      fmtUs(median(rs.map((r) => r.cpu_us))),
      fmtMs(median(rs.map((r) => r.p99_ms))),
      fmtInt(median(rs.map((r) => r.reference.rps))),
      fmtUs(median(rs.map((r) => r.reference.cpu_us))),
      fmtRatio(s.ratio),
      ratios.length ? `${s.min.toFixed(2)}–${s.max.toFixed(2)}×` : '—',
      `${s.loadBusy}%`,
    ];
  });
  // Errors and a saturated load side, whatever the reference.
  const problems = () => {
    for (const [name, s] of stats) {
      if (s.errors > 0) out.push(`FAIL ${name} answered only 2xx without socket errors: ${s.errors} errors over the reps (see the wrk outputs)`);
      if (s.loadBusy > 90) out.push(`WARN ${name}: the load CPU was ${s.loadBusy}% busy; the pair may have been limited by the load side`);
    }
  };
  out.push(table(['proxy', 'req/s (median)', 'CPU/req', 'p99', `${ref} req/s beside it`, `${ref} CPU/req`, `CPU ratio ÷ ${ref}`, 'ratio min–max', 'load CPU busy (max)'], body));
  out.push('');
  if (ref !== 'nginx') {
    // An A/B (say fairway-b beside fairway): the ratio is the answer; nginx's targets do not apply.
    for (const [name, s] of stats) out.push(`AB ${name} ÷ ${ref}: ${s.ratio?.toFixed(3)}× (CPU per request, median of ${rows.filter((r) => r.proxy === name).length} reps; min–max ${s.min?.toFixed(3)}–${s.max?.toFixed(3)}×)`);
    problems();
    out.push('');
    out.push(`CPU ratio ÷ ${ref}: ${ref}'s CPU per request over the proxy's, both measured in the same window on one CPU (median over reps).`);
    return out.join('\n');
  }
  const fw = stats.get('fairway')?.ratio;
  const check = (label, value, target, peer, exceed = false) => {
    if (fw === undefined) return out.push(`SKIP ${label}: fairway not measured`);
    if (value === undefined) return out.push(`SKIP ${label}: ${peer} not measured`);
    const pass = exceed ? value > target : value >= target;
    out.push(`${pass ? 'PASS' : 'FAIL'} ${label}: ${value.toFixed(2)}x`);
  };
  const against = (peer) => (fw !== undefined && stats.get(peer)?.ratio ? fw / stats.get(peer).ratio : undefined);
  check('fairway >= 0.35x nginx (CPU per request, measured together)', fw, 0.35, 'nginx');
  check('fairway >= 0.25x nginx (the foundation floor)', fw, 0.25, 'nginx');
  check('fairway >= 1.5x caddy', against('caddy'), 1.5, 'caddy');
  check('fairway >= 2.5x http-proxy-3', against('http-proxy-3'), 2.5, 'http-proxy-3');
  check('fairway > undici-min (bare dispatch)', against('undici-min'), 1, 'undici-min', true);
  const tenK = stats.get('fairway-10k')?.ratio;
  check('fairway-10k within 5% of fairway', tenK !== undefined && fw !== undefined ? tenK / fw : undefined, 0.95, 'fairway-10k');
  problems();
  out.push('');
  out.push('CPU/req: user+system CPU time of the process (all threads; nginx: master + worker) per request, while it and nginx');
  out.push('shared one CPU, each under its own wrk. CPU ratio ÷ nginx: nginx\'s CPU per request over the proxy\'s (median over reps):');
  out.push('the proxy\'s requests per second relative to nginx\'s when each has a core to itself. Peer ratios (fairway ÷ caddy, ...)');
  out.push('divide the two proxies\' ratios, each measured beside nginx.');
  return out.join('\n');
}

if (command === 'row') process.stdout.write(`${JSON.stringify(row(args))}\n`);
else if (command === 'line') process.stdout.write(`${line(JSON.parse(readFileSync(0, 'utf8')))}\n`);
else if (command === 'summary') process.stdout.write(`${summary(args[0])}\n`);
else {
  process.stderr.write('usage: paired-report.mjs row|line|summary ...\n');
  process.exit(2);
}
