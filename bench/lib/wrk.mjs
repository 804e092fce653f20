// wrk output parsing and the final report of bench/run.sh (plain Node, no dependencies).
//
//   node wrk.mjs parse WRK_OUTPUT_FILE PROXY REP [PROXY_CPU_SECONDS PROXY_CPU_BUSY% LOAD_CPU_BUSY% FOREIGN_CPU_SECONDS]
//     Prints one JSON line: {proxy, rep, rps, p50_ms, p99_ms, requests, non2xx,
//     socketErrors, cpu_seconds, cpu_us_per_req, proxy_cpu_busy, load_cpu_busy}. Needs
//     wrk's `--latency` output (the "Latency Distribution" block). PROXY_CPU_SECONDS is
//     the CPU time the proxy process used during the measurement (negative: unknown, e.g.
//     for "direct"); the busy percentages are of the two pinned CPUs as a whole (kernel
//     network work in softirq included), to tell which side was the bottleneck;
//     FOREIGN_CPU_SECONDS is the CPU time used meanwhile by processes the bench did not start.
//
//   node wrk.mjs summarize RAW_JSONL SUMMARY_JSON
//     Reads the per-rep lines, prints the table of medians and the PASS/FAIL lines of
//     the targets, and writes SUMMARY_JSON (medians + every raw rep + run metadata taken
//     from BENCH_META_* environment variables). Exit 0, or 3 when BENCH_STRICT=1 and a
//     target failed.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Targets: Fairway vs the peers measured in the same run (the performance issue's; the foundation's floor). */
const TARGET_NGINX_RATIO = 0.35;
const FLOOR_NGINX_RATIO = 0.25;

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`cannot read the duration "${text}"`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

export function parseWrk(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const rps = num(/^Requests\/sec:\s+([\d.]+)/m);
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(text);
    return m ? toMs(m[1]) : undefined;
  };
  const p50 = pct(50);
  const p99 = pct(99);
  if (rps === undefined || p50 === undefined || p99 === undefined) {
    throw new Error('not a complete wrk --latency output (no Requests/sec or latency distribution)');
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    rps,
    p50_ms: p50,
    p99_ms: p99,
    requests: num(/^\s*(\d+) requests in/m) ?? 0,
    duration_s: (() => {
      const m = /^\s*\d+ requests in ([\d.]+(?:us|ms|s|m|h))/m.exec(text);
      return m ? toMs(m[1]) / 1000 : undefined;
    })(),
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) ?? 0,
    socketErrors: socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
export const fmtMs = (n) => (n < 1 ? `${(n * 1000).toFixed(0)} µs` : `${n.toFixed(2)} ms`);
export const fmtRatio = (n) => (n === undefined || !Number.isFinite(n) ? '—' : `${n.toFixed(2)}×`);

/** A Markdown table: the first `left` columns left-aligned, the others right-aligned. */
export function table(header, rows, left = 1) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => '| ' + cells.map((c, i) => (i < left ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
  const rule = '|' + widths.map((w, i) => (i < left ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/**
 * nginx's full and resumed TLS handshakes per bench tag, from a session log of
 * `<tag> <$ssl_session_reused>` lines (warm-up lines left out); empty without a log.
 */
export function nginxSessions(file) {
  const counts = new Map();
  if (!file || !existsSync(file)) return counts;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [tag, reused] = line.split(' ');
    if (!tag || tag === 'warmup') continue;
    const c = counts.get(tag) ?? { full: 0, resumed: 0 };
    if (reused === 'r') c.resumed++;
    else c.full++;
    counts.set(tag, c);
  }
  return counts;
}

/** The run's metadata: every BENCH_META_* variable the scripts export, keyed in lower case. */
export function benchMeta() {
  return Object.fromEntries(
    Object.entries(process.env)
      .filter(([k]) => k.startsWith('BENCH_META_'))
      .map(([k, v]) => [k.slice('BENCH_META_'.length).toLowerCase(), v]),
  );
}

function summarize(rawFile, summaryFile) {
  const raw = readFileSync(rawFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const order = [];
  for (const r of raw) if (!order.includes(r.proxy)) order.push(r.proxy);
  const med = {};
  for (const proxy of order) {
    const reps = raw.filter((r) => r.proxy === proxy);
    med[proxy] = {
      reps: reps.length,
      rps: median(reps.map((r) => r.rps)),
      rps_min: Math.min(...reps.map((r) => r.rps)),
      rps_max: Math.max(...reps.map((r) => r.rps)),
      p50_ms: median(reps.map((r) => r.p50_ms)),
      p99_ms: median(reps.map((r) => r.p99_ms)),
      errors: reps.reduce((a, r) => a + r.non2xx + r.socketErrors, 0),
      cpu_us_per_req: reps.every((r) => r.cpu_us_per_req != null) ? median(reps.map((r) => r.cpu_us_per_req)) : null,
      proxy_cpu_busy: reps.every((r) => r.proxy_cpu_busy != null) ? median(reps.map((r) => r.proxy_cpu_busy)) : null,
      load_cpu_busy: reps.every((r) => r.load_cpu_busy != null) ? median(reps.map((r) => r.load_cpu_busy)) : null,
    };
  }
  const nginx = med.nginx;
  for (const proxy of order) {
    med[proxy].rps_vs_nginx = nginx ? med[proxy].rps / nginx.rps : undefined;
    med[proxy].p99_vs_nginx = nginx ? med[proxy].p99_ms / nginx.p99_ms : undefined;
  }

  const rows = order.map((proxy) => {
    const m = med[proxy];
    return [
      proxy + (m.errors ? ' (!errors)' : ''),
      fmtInt(m.rps),
      `${fmtInt(m.rps_min)}–${fmtInt(m.rps_max)}`,
      fmtMs(m.p50_ms),
      fmtMs(m.p99_ms),
      fmtRatio(m.rps_vs_nginx),
      fmtRatio(m.p99_vs_nginx),
      m.cpu_us_per_req == null ? '—' : `${m.cpu_us_per_req.toFixed(1)} µs`,
      m.proxy_cpu_busy == null ? '—' : `${m.proxy_cpu_busy}% / ${m.load_cpu_busy}%`,
    ];
  });
  const out = [];
  out.push(table(['proxy', 'req/s (median)', 'req/s min–max', 'p50 (median)', 'p99 (median)', 'req/s ÷ nginx', 'p99 ÷ nginx', 'proxy CPU/req', 'CPU busy proxy/load'], rows));
  out.push('');

  // Targets, judged on medians of the same run only: [name, numerator, denominator, bound, kind].
  const checks = [];
  const targets = [
    [`fairway req/s >= ${TARGET_NGINX_RATIO}x nginx`, 'fairway', 'nginx', TARGET_NGINX_RATIO, 'rps'],
    [`fairway req/s >= ${FLOOR_NGINX_RATIO}x nginx (the foundation floor)`, 'fairway', 'nginx', FLOOR_NGINX_RATIO, 'rps'],
    ['fairway req/s >= 1.5x caddy', 'fairway', 'caddy', 1.5, 'rps'],
    ['fairway req/s >= 2.5x http-proxy-3', 'fairway', 'http-proxy-3', 2.5, 'rps'],
    ['fairway req/s > node-http', 'fairway', 'node-http', 1, 'rps'],
    ['fairway req/s > undici-stream', 'fairway', 'undici-stream', 1, 'rps'],
    ['fairway req/s > undici-min (bare dispatch)', 'fairway', 'undici-min', 1, 'rps'],
    ['fairway p99 <= 2x nginx p99', 'fairway', 'nginx', 2, 'p99'],
    ['fairway-10k req/s within 5% of fairway', 'fairway-10k', 'fairway', 0.95, 'rps'],
  ];
  for (const [name, a, b, bound, kind] of targets) {
    const x = med[a];
    const y = med[b];
    if (!x || !y) {
      // A pair nobody asked for is not reported; one that was asked for but is missing is.
      if (x || y) checks.push({ name, result: 'SKIP', detail: `${x ? b : a} not measured` });
      continue;
    }
    const ratio = kind === 'rps' ? x.rps / y.rps : x.p99_ms / y.p99_ms;
    const ok = kind === 'rps' ? ratio >= bound && (bound !== 1 || ratio > 1) : ratio <= bound;
    const detail = kind === 'rps' ? `${ratio.toFixed(2)}x (${fmtInt(x.rps)} vs ${fmtInt(y.rps)} req/s)` : `${ratio.toFixed(2)}x (${fmtMs(x.p99_ms)} vs ${fmtMs(y.p99_ms)})`;
    checks.push({ name, result: ok ? 'PASS' : 'FAIL', detail });
  }
  for (const proxy of order) {
    if (med[proxy].errors) {
      checks.push({ name: `${proxy} answered only 2xx without socket errors`, result: 'FAIL', detail: `${med[proxy].errors} errors over ${med[proxy].reps} reps (see the wrk outputs)` });
    }
  }
  for (const c of checks) out.push(`${c.result} ${c.name}: ${c.detail}`);

  // Other processes busy during a measurement make its figures low and noisy.
  const disturbed = raw.filter((r) => r.foreign_cpu_seconds != null && r.duration_s && r.foreign_cpu_seconds > 0.05 * r.duration_s);
  if (disturbed.length > 0) {
    const worst = Math.max(...disturbed.map((r) => (100 * r.foreign_cpu_seconds) / r.duration_s));
    out.push(
      `WARN other processes used CPU during ${disturbed.length} of ${raw.length} measurements (up to ${worst.toFixed(0)}% of a CPU): ` +
        disturbed.map((r) => `${r.proxy} rep ${r.rep}`).join(', ') + '; rerun on an idle machine for figures to quote',
    );
  }
  out.push('');
  out.push('proxy CPU/req: user+system CPU time of the proxy process (nginx: master + worker) per request, median over reps.');
  out.push('CPU busy proxy/load: how busy the proxy\'s CPU and the origin+wrk CPU were as a whole (kernel network');
  out.push('work included); a proxy CPU well below 100% means the load side, not the proxy, limited that row.');
  const text = out.join('\n') + '\n';
  process.stdout.write(text);

  const meta = benchMeta();
  writeFileSync(summaryFile, JSON.stringify({ meta, medians: med, checks, raw }, null, 2) + '\n');
  return checks.some((c) => c.result === 'FAIL') ? 1 : 0;
}

// The command line runs only when this file is the script (tls-report.mjs imports parseWrk).
const [cmd, ...args] = import.meta.url === pathToFileURL(process.argv[1] ?? '').href ? process.argv.slice(2) : ['--imported'];
if (cmd === '--imported') {
  // imported as a module: nothing to run
} else if (cmd === 'parse' && args.length >= 3 && args.length <= 7) {
  const [file, proxy, rep, cpu, proxyBusy, loadBusy, foreign] = args;
  const parsed = parseWrk(readFileSync(file, 'utf8'));
  const cpuSeconds = cpu === undefined ? -1 : Number(cpu);
  const cpu_us_per_req = cpuSeconds >= 0 && parsed.requests > 0 ? (cpuSeconds * 1e6) / parsed.requests : null;
  process.stdout.write(JSON.stringify({ proxy, rep: Number(rep), ...parsed, cpu_seconds: cpuSeconds >= 0 ? cpuSeconds : null, cpu_us_per_req,
    proxy_cpu_busy: proxyBusy === undefined ? null : Number(proxyBusy), load_cpu_busy: loadBusy === undefined ? null : Number(loadBusy),
    foreign_cpu_seconds: foreign === undefined ? null : Number(foreign) }) + '\n');
} else if (cmd === 'summarize' && args.length === 2) {
  const failed = summarize(args[0], args[1]);
  process.exit(failed && process.env.BENCH_STRICT === '1' ? 3 : 0);
} else {
  process.stderr.write('usage: wrk.mjs parse WRK_OUTPUT PROXY REP [CPU_S PROXY_BUSY LOAD_BUSY FOREIGN_S] | wrk.mjs summarize RAW_JSONL SUMMARY_JSON\n');
  process.exit(2);
}
