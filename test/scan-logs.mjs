#!/usr/bin/env node
/**
 * The log scan after the test run (`npm test`'s `posttest`; plain JS, so it needs no
 * build and tap does not take it for a test): reads every router log line and CLI output
 * the tests captured under `.tap/fairway-logs/` (test/helpers/log-capture.ts) and fails
 * (exit 1, `file:line: what` for each hit) when a line holds
 * - a PEM private-key marker (`-----BEGIN … PRIVATE KEY-----`), also base64-encoded as in
 *   a Secret's `data`;
 * - base64 DER private-key material (PKCS#1, PKCS#8 or SEC1: a SEQUENCE starting with
 *   INTEGER 0, or INTEGER 1 then an OCTET STRING), or a JWK private member (`"d":"…"`);
 * - a test secret: the `fwtest-secret-` form, or a value a test remembered in a
 *   `*.secrets` file there.
 * `--reset` (npm's `pretest`) empties the directory instead, so a run scans its own lines.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// FAIRWAY_LOG_SCAN_DIR: another directory (the scanner's own test).
const dir = process.env.FAIRWAY_LOG_SCAN_DIR || fileURLToPath(new URL('../.tap/fairway-logs/', import.meta.url));

if (process.argv.includes('--reset')) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  process.exit(0);
}

const PEM_PRIVATE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
const TEST_SECRET = /fwtest-secret-/i;
const JWK_PRIVATE = /"d"\s*:\s*"[A-Za-z0-9_-]{20,}"/;
/** Base64 runs long enough to hold a key's start (a PEM line is 64). */
const BASE64_RUN = /[A-Za-z0-9+/]{40,}={0,2}/g;

/** Whether `bytes` start like a DER private key. */
function derPrivateKey(bytes) {
  if (bytes[0] !== 0x30) return false;
  let i = 1;
  const len = bytes[i];
  if (len === undefined) return false;
  if (len & 0x80) i += 1 + (len & 0x7f);
  else i += 1;
  // INTEGER 0 (PKCS#1 RSA, PKCS#8) then more; or INTEGER 1 then an OCTET STRING (SEC1 EC).
  if (bytes[i] !== 0x02 || bytes[i + 1] !== 0x01) return false;
  if (bytes[i + 2] === 0x00) return bytes[i + 3] === 0x30 || bytes[i + 3] === 0x02;
  return bytes[i + 2] === 0x01 && bytes[i + 3] === 0x04;
}

function base64Problem(line) {
  for (const [run] of line.matchAll(BASE64_RUN)) {
    const bytes = Buffer.from(run, 'base64');
    if (derPrivateKey(bytes)) return 'base64 DER private-key material';
    if (PEM_PRIVATE.test(bytes.toString('latin1'))) return 'a base64-encoded PEM private key';
  }
  return undefined;
}

const files = existsSync(dir) ? readdirSync(dir).sort() : [];
const secrets = new Set();
for (const f of files.filter((f) => f.endsWith('.secrets'))) {
  for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) if (line) secrets.add(JSON.parse(line));
}
const remembered = [...secrets].filter((s) => typeof s === 'string' && s.length >= 8);

let lines = 0;
const hits = [];
const logs = files.filter((f) => f.endsWith('.log'));
for (const f of logs) {
  const text = readFileSync(path.join(dir, f), 'utf8').split('\n');
  text.forEach((line, i) => {
    if (line === '') return;
    lines++;
    let what;
    if (PEM_PRIVATE.test(line)) what = 'a PEM private-key marker';
    else if (TEST_SECRET.test(line)) what = 'a test secret (fwtest-secret-…)';
    else if (JWK_PRIVATE.test(line)) what = 'a JWK private member ("d")';
    else if (remembered.some((s) => line.includes(s))) what = 'a secret value a test remembered';
    else what = base64Problem(line);
    if (what) hits.push(`${path.join(path.relative(process.cwd(), dir) || '.', f)}:${i + 1}: ${what}`);
  });
}

if (hits.length > 0) {
  process.stderr.write(`log scan: ${hits.length} line(s) with key material or secrets:\n${hits.join('\n')}\n`);
  process.exit(1);
}
if (logs.length === 0) {
  process.stdout.write('log scan: no router log was captured (no test started a router); nothing to scan\n');
} else {
  process.stdout.write(`log scan: ${lines} line(s) in ${logs.length} file(s), ${remembered.length} remembered secret(s): no key material, no secret\n`);
}
