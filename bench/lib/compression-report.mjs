// The compression benchmark's helpers (bench/compression.sh; plain Node, no dependencies).
//
//   node compression-report.mjs body
//     Prints the origin's JSON body (2,048 bytes, the same every time).
//
//   node compression-report.mjs wait URL HOST SECONDS [ACCEPT_ENCODING EXPECTED_CODING]
//     Waits until GET URL with `Host: HOST` (and `Accept-Encoding`, when given) answers 200
//     with the body above — decoded, when it came with `Content-Encoding` — and with the
//     expected coding (`identity`: none). Exit 0 when it does, 1 with the last problem on
//     stderr when time runs out.
//
//   node compression-report.mjs record WRK_OUTPUT ROW REP ACCEPT_ENCODING [CPU_S PROXY_BUSY% LOAD_BUSY% FOREIGN_S]
//     Prints one JSON line: wrk's figures (see wrk.mjs) plus the bytes read per response.
//
//   node compression-report.mjs summarize RAW_JSONL SUMMARY_JSON
//     Prints the table of medians — each Fairway row's req/s and CPU per request beside the
//     plain figure (Fairway, no Accept-Encoding), nginx's rows beside nginx's plain one —
//     and writes SUMMARY_JSON (medians, raw reps, BENCH_META_* metadata).
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { benchMeta, fmtInt, fmtMs, fmtRatio, median, parseWrk, table } from './wrk.mjs';

/** A 2,048-byte JSON document: what an API typically answers. */
export function body() {
  const items = [];
  for (let i = 0; JSON.stringify({ items }).length < 1900; i++) {
    items.push({ id: i, sku: `SKU-${String(1000 + i * 37)}`, name: `Bench item number ${i}`, price: Math.round(i * 137.5) / 100, tags: ['bench', i % 2 ? 'odd' : 'even'] });
  }
  const bare = JSON.stringify({ items, note: '' }).length;
  return JSON.stringify({ items, note: 'n'.repeat(2048 - bare) });
}

function get(url, host, accept) {
  return new Promise((resolve, reject) => {
    const headers = { host };
    if (accept) headers['accept-encoding'] = accept;
    const req = http.get(url, { headers, agent: false, timeout: 2000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, coding: res.headers['content-encoding'] ?? 'identity', body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function wait(url, host, seconds, accept, expected = 'identity') {
  const want = body();
  const deadline = Date.now() + Number(seconds) * 1000;
  let problem = 'no attempt';
  while (Date.now() < deadline) {
    try {
      const res = await get(url, host, accept);
      const decoded = res.coding === 'gzip' ? gunzipSync(res.body) : res.coding === 'br' ? brotliDecompressSync(res.body) : res.body;
      if (res.status === 200 && res.coding === expected && decoded.toString() === want) return 0;
      problem = `answered ${res.status}, coding ${res.coding} (want ${expected}), ${res.body.length} bytes on the wire, ${decoded.length} decoded (want ${want.length})`;
    } catch (err) {
      problem = err.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stderr.write(`${url} (Host: ${host}, Accept-Encoding: ${accept || '-'}): ${problem}\n`);
  return 1;
}

function summarize(rawFile, summaryFile) {
  const raw = readFileSync(rawFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const order = [];
  for (const r of raw) if (!order.includes(r.row)) order.push(r.row);
  const med = {};
  for (const row of order) {
    const reps = raw.filter((r) => r.row === row);
    med[row] = {
      accept: reps[0].accept,
      reps: reps.length,
      rps: median(reps.map((r) => r.rps)),
      rps_min: Math.min(...reps.map((r) => r.rps)),
      rps_max: Math.max(...reps.map((r) => r.rps)),
      p99_ms: median(reps.map((r) => r.p99_ms)),
      bytes_per_response: median(reps.map((r) => r.bytes_per_response)),
      errors: reps.reduce((a, r) => a + r.non2xx + r.socketErrors, 0),
      cpu_us_per_req: reps.every((r) => r.cpu_us_per_req != null) ? median(reps.map((r) => r.cpu_us_per_req)) : null,
      proxy_cpu_busy: median(reps.map((r) => r.proxy_cpu_busy ?? 0)),
      load_cpu_busy: median(reps.map((r) => r.load_cpu_busy ?? 0)),
    };
  }
  // Each row beside its server's plain figure: the same server, no Accept-Encoding.
  const plainOf = (row) => (row.startsWith('nginx') ? med['nginx'] : med['fairway']);
  for (const row of order) {
    const plain = plainOf(row);
    med[row].rps_vs_plain = plain ? med[row].rps / plain.rps : undefined;
    med[row].cpu_vs_plain = plain && plain.cpu_us_per_req && med[row].cpu_us_per_req ? med[row].cpu_us_per_req / plain.cpu_us_per_req : undefined;
  }
  const rows = order.map((row) => {
    const m = med[row];
    return [
      row + (m.errors ? ' (!errors)' : ''),
      m.accept || '-',
      fmtInt(m.rps),
      `${fmtInt(m.rps_min)}–${fmtInt(m.rps_max)}`,
      fmtRatio(m.rps_vs_plain),
      fmtMs(m.p99_ms),
      m.cpu_us_per_req == null ? '—' : `${m.cpu_us_per_req.toFixed(1)} µs`,
      fmtRatio(m.cpu_vs_plain),
      fmtInt(m.bytes_per_response),
      `${m.proxy_cpu_busy}% / ${m.load_cpu_busy}%`,
    ];
  });
  const out = [
    table(['row', 'Accept-Encoding', 'req/s (median)', 'req/s min–max', 'req/s ÷ plain', 'p99 (median)', 'proxy CPU/req', 'CPU ÷ plain', 'bytes/response', 'CPU busy proxy/load'], rows, 2),
    '',
    'plain: the same server with no Accept-Encoding (fairway rows: the `fairway` row; nginx rows: `nginx`).',
    'bytes/response: what wrk read per response, headers included (compressed on the wire when a coding was used).',
  ];
  for (const row of order) if (med[row].errors) out.push(`FAIL ${row}: ${med[row].errors} non-2xx answers or socket errors over ${med[row].reps} reps`);
  const disturbed = raw.filter((r) => r.foreign_cpu_seconds != null && r.duration_s && r.foreign_cpu_seconds > 0.05 * r.duration_s);
  if (disturbed.length > 0) {
    const worst = Math.max(...disturbed.map((r) => (100 * r.foreign_cpu_seconds) / r.duration_s));
    out.push(`WARN other processes used CPU during ${disturbed.length} of ${raw.length} measurements (up to ${worst.toFixed(0)}% of a CPU); compare rows of this run only`);
  }
  const text = out.join('\n') + '\n';
  process.stdout.write(text);
  const meta = benchMeta();
  writeFileSync(summaryFile, JSON.stringify({ meta, medians: med, raw }, null, 2) + '\n');
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'body') {
  process.stdout.write(body());
} else if (cmd === 'wait' && args.length >= 3) {
  process.exit(await wait(...args));
} else if (cmd === 'record' && args.length >= 4) {
  const [file, row, rep, accept, cpu, proxyBusy, loadBusy, foreign] = args;
  const text = readFileSync(file, 'utf8');
  const parsed = parseWrk(text);
  const read = /^\s*\d+ requests in [^,]+, ([\d.]+)(B|KB|MB|GB) read/m.exec(text);
  const bytes = read ? Number(read[1]) * { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[read[2]] : 0;
  const cpuSeconds = cpu === undefined ? -1 : Number(cpu);
  process.stdout.write(JSON.stringify({
    row, rep: Number(rep), accept, ...parsed,
    bytes_per_response: parsed.requests > 0 ? bytes / parsed.requests : 0,
    cpu_seconds: cpuSeconds >= 0 ? cpuSeconds : null,
    cpu_us_per_req: cpuSeconds >= 0 && parsed.requests > 0 ? (cpuSeconds * 1e6) / parsed.requests : null,
    proxy_cpu_busy: proxyBusy === undefined ? null : Number(proxyBusy),
    load_cpu_busy: loadBusy === undefined ? null : Number(loadBusy),
    foreign_cpu_seconds: foreign === undefined ? null : Number(foreign),
  }) + '\n');
} else if (cmd === 'summarize' && args.length === 2) {
  summarize(args[0], args[1]);
} else {
  process.stderr.write('usage: compression-report.mjs body | wait URL HOST SECONDS [ACCEPT CODING] | record WRK_OUTPUT ROW REP ACCEPT [CPU_S PROXY% LOAD% FOREIGN_S] | summarize RAW_JSONL SUMMARY_JSON\n');
  process.exit(2);
}
