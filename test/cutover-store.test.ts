import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cutoverFileFor, FileCutoverStore } from '../src/cutover/file-cutover-store.js';
import { MemoryCutoverStore } from '../src/cutover/memory-cutover-store.js';
import { cutoverStoreContract, record } from './cutover-store-contract.js';

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'fairway-cutovers-'));
}

cutoverStoreContract(t, 'MemoryCutoverStore', async () => {
  const store = new MemoryCutoverStore();
  return { store, reopen: () => store, cleanup: async () => {} };
});

cutoverStoreContract(t, 'FileCutoverStore', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'fairway.cutovers.json');
  return { store: new FileCutoverStore(file), reopen: () => new FileCutoverStore(file), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

t.test('the cutover file sits next to the weights state file', async (t) => {
  t.equal(cutoverFileFor('/etc/fairway/fairway.state.json'), '/etc/fairway/fairway.cutovers.json');
  t.equal(cutoverFileFor('/var/lib/fairway/state.json'), '/var/lib/fairway/state.cutovers.json');
  t.equal(cutoverFileFor('/var/lib/fairway/weights'), '/var/lib/fairway/weights.cutovers.json');
});

t.test('FileCutoverStore writes a versioned JSON file atomically and leaves no temp file', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sub', 'fairway.cutovers.json');
  await new FileCutoverStore(file).save(record('web', 2));
  t.same(JSON.parse(readFileSync(file, 'utf8')), { version: 1, cutovers: { web: record('web', 2) } });
  t.same(readdirSync(path.dirname(file)), ['fairway.cutovers.json']);
});

t.test('FileCutoverStore: an unreadable file is FW_STATE_READ; a failed write is FW_STATE_WRITE and keeps the previous record', async (t) => {
  const dir = tempDir();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'fairway.cutovers.json');
  writeFileSync(file, '{ not json');
  await t.rejects(new FileCutoverStore(file).load(), { code: 'FW_STATE_READ', message: /cannot parse cutover state file/ });
  writeFileSync(file, JSON.stringify({ version: 2, cutovers: {} }));
  await t.rejects(new FileCutoverStore(file).load(), { code: 'FW_STATE_READ', message: /version 1/ });

  rmSync(file);
  const store = new FileCutoverStore(file);
  await store.save(record('web', 1));
  // A directory where the temp file goes: the write fails (for root too).
  const tmp = `${file}.${process.pid}.tmp`;
  mkdirSync(tmp);
  await t.rejects(store.save(record('web', 2)), { code: 'FW_STATE_WRITE', message: /cannot write cutover state file/ });
  t.same((await new FileCutoverStore(file).load()).map((r) => r.step), [1], 'the file still holds the previous record');
  rmSync(tmp, { recursive: true });
  await store.save(record('shop', 3));
  t.same((await new FileCutoverStore(file).load()).map((r) => `${r.plan.app}:${r.step}`).sort(), ['shop:3', 'web:1'], 'a failed save does not block the next one, nor leak into it');
});
