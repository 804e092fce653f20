/**
 * @module
 * The shared contract suite for {@link Storage} (the contract is written in
 * `src/tls/storage.ts`). Every implementation runs it from its own test file:
 *
 *   storageContract(t, 'FileStorage', async () => ({ storage, cleanup }));
 *
 * `make()` is called once per subtest and must return an empty store; `cleanup()` runs
 * when the subtest ends. Nothing here depends on how the store is kept.
 */
import type { Test } from 'tap';
import { setTimeout as delay } from 'node:timers/promises';
import { FairwayError } from '../src/errors.js';
import type { Storage } from '../src/tls/storage.js';

export interface StorageFixture {
  readonly storage: Storage;
  cleanup(): Promise<void>;
}

/** Runs `fn` while keeping count of how many runs overlap; resolves with the peak. */
function overlapMeter() {
  let inside = 0;
  let peak = 0;
  return {
    get peak() {
      return peak;
    },
    async run<T>(fn: () => Promise<T>): Promise<T> {
      inside++;
      peak = Math.max(peak, inside);
      try {
        return await fn();
      } finally {
        inside--;
      }
    },
  };
}

const BAD_KEYS = ['../x', 'a//b', '', '/abs', 'a/../b', 'a/./b', '.', 'trailing/', 'sp ace', 'back\\slash', 'a/b?c'];

export function storageContract(t: Test, name: string, make: () => Promise<StorageFixture>): void {
  t.test(`${name} satisfies the Storage contract`, async (t) => {
    async function fresh(t: Test): Promise<Storage> {
      const fixture = await make();
      t.teardown(() => fixture.cleanup());
      return fixture.storage;
    }

    t.test('describes itself for logs', async (t) => {
      const storage = await fresh(t);
      t.type(storage.description, 'string');
      t.ok(storage.description.length > 0);
    });

    t.test('get returns exactly the bytes put, for a Buffer and for a string', async (t) => {
      const storage = await fresh(t);
      const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await storage.put('certificates/web.example.com/cert.der', binary);
      await storage.put('certificates/web.example.com/cert.pem', '-----BEGIN CERTIFICATE-----\nÅ✓\n');
      await storage.put('certificates/*.example.com/key.pem', 'wildcard', { secret: true });
      await storage.put('empty', '');
      t.same(await storage.get('certificates/web.example.com/cert.der'), binary);
      t.equal((await storage.get('certificates/web.example.com/cert.pem')).toString('utf8'), '-----BEGIN CERTIFICATE-----\nÅ✓\n');
      t.equal((await storage.get('certificates/*.example.com/key.pem')).toString(), 'wildcard');
      t.equal((await storage.get('empty')).length, 0);
      t.ok(Buffer.isBuffer(await storage.get('empty')), 'get resolves with a Buffer');
    });

    t.test('put over an existing key replaces its value', async (t) => {
      const storage = await fresh(t);
      await storage.put('acme/account.json', 'a much longer first value');
      await storage.put('acme/account.json', 'second');
      t.equal((await storage.get('acme/account.json')).toString(), 'second');
      await storage.put('acme/account.json', 'third', { secret: true });
      t.equal((await storage.get('acme/account.json')).toString(), 'third');
    });

    t.test('get of a missing key throws FW_STORAGE_NOT_FOUND', async (t) => {
      const storage = await fresh(t);
      await t.rejects(storage.get('certificates/missing.example.com/cert.pem'), { name: 'FairwayError', code: 'FW_STORAGE_NOT_FOUND' });
      await storage.put('certificates/a.example.com/cert.pem', 'x');
      await t.rejects(storage.get('certificates/a.example.com'), { code: 'FW_STORAGE_NOT_FOUND' }, 'a prefix of keys is not itself a key');
      await t.rejects(storage.get('certificates/a.example.com/cert.pem/deeper'), { code: 'FW_STORAGE_NOT_FOUND' }, 'nor is a path below a key');
      const err = await storage.get('nope').catch((e: unknown) => e);
      t.ok(err instanceof FairwayError);
    });

    t.test('delete removes a key, and deleting a missing key succeeds', async (t) => {
      const storage = await fresh(t);
      await storage.put('ocsp/web.example.com', 'staple');
      await storage.delete('ocsp/web.example.com');
      await t.rejects(storage.get('ocsp/web.example.com'), { code: 'FW_STORAGE_NOT_FOUND' });
      await t.resolves(storage.delete('ocsp/web.example.com'), 'deleting it again succeeds');
      await t.resolves(storage.delete('never/existed/at-all'));
      t.same(await storage.list('ocsp'), []);
    });

    t.test('list returns every key under a prefix, recursively and sorted', async (t) => {
      const storage = await fresh(t);
      const keys = [
        'certificates/b.example.com/cert.pem',
        'certificates/a.example.com/key.pem',
        'certificates/a.example.com/cert.pem',
        'certificates/*.example.com/cert.pem',
        'certificates/a.example.com/ocsp/staple.der',
        'certificates-old/a.example.com/cert.pem',
        'acme/account.json',
        'top',
      ];
      for (const key of keys) await storage.put(key, key, { secret: key.endsWith('key.pem') });
      const lock = await storage.lock('list-test');
      await lock.release();

      t.same(await storage.list(''), [...keys].sort(), 'the empty prefix lists every key (and nothing else)');
      t.same(await storage.list('certificates'), [
        'certificates/*.example.com/cert.pem',
        'certificates/a.example.com/cert.pem',
        'certificates/a.example.com/key.pem',
        'certificates/a.example.com/ocsp/staple.der',
        'certificates/b.example.com/cert.pem',
      ], 'a prefix is a directory: certificates-old/ is not under certificates/');
      t.same(await storage.list('certificates/a.example.com/'), [
        'certificates/a.example.com/cert.pem',
        'certificates/a.example.com/key.pem',
        'certificates/a.example.com/ocsp/staple.der',
      ], 'a trailing slash is allowed');

      await storage.delete('certificates/a.example.com/key.pem');
      t.same(await storage.list('certificates/a.example.com'), ['certificates/a.example.com/cert.pem', 'certificates/a.example.com/ocsp/staple.der'], 'a deleted key is no longer listed');
    });

    t.test('list of a prefix with no keys is empty', async (t) => {
      const storage = await fresh(t);
      t.same(await storage.list(''), [], 'an empty store');
      await storage.put('acme/account.json', '{}');
      t.same(await storage.list('certificates'), []);
      t.same(await storage.list('certificates/web.example.com'), []);
      t.same(await storage.list('acme/account.json'), [], 'a key has nothing under it');
    });

    t.test('bad keys and lock names are rejected with FW_STORAGE_IO', async (t) => {
      const storage = await fresh(t);
      for (const key of BAD_KEYS) {
        await t.rejects(storage.put(key, 'x'), { code: 'FW_STORAGE_IO' }, `put(${JSON.stringify(key)})`);
        await t.rejects(storage.get(key), { code: 'FW_STORAGE_IO' }, `get(${JSON.stringify(key)})`);
        await t.rejects(storage.delete(key), { code: 'FW_STORAGE_IO' }, `delete(${JSON.stringify(key)})`);
        // '' lists everything and a prefix may end in '/': those two are fine for list().
        if (key !== '' && key !== 'trailing/') await t.rejects(storage.list(key), { code: 'FW_STORAGE_IO' }, `list(${JSON.stringify(key)})`);
      }
      for (const lockName of ['', '.', '..', 'a/b', '../x', 'sp ace']) {
        await t.rejects(storage.lock(lockName, { timeoutMs: 100 }), { code: 'FW_STORAGE_IO' }, `lock(${JSON.stringify(lockName)})`);
      }
      t.same(await storage.list(''), [], 'nothing was written');
    });

    t.test('a concurrent get sees the old or the new value in full, never a mix', async (t) => {
      const storage = await fresh(t);
      const key = 'certificates/web.example.com/bundle.pem';
      const values = Array.from({ length: 8 }, (_, i) => Buffer.alloc(512 * 1024 + i * 4099, 0x41 + i));
      await storage.put(key, values[0]!);
      let writing = true;
      let reads = 0;
      const torn: string[] = [];
      const reader = (async () => {
        while (writing) {
          const got = await storage.get(key);
          reads++;
          const expected = values[got[0]! - 0x41];
          if (!expected || !got.equals(expected)) torn.push(`read ${reads}: ${got.length} bytes starting ${got[0]}`);
        }
      })();
      // Keep rewriting until enough reads have overlapped the writes (bounded).
      for (let round = 0; round < 3 || (reads < 30 && round < 200); round++) await Promise.all(values.map((v) => storage.put(key, v)));
      writing = false;
      await reader;
      t.ok(reads >= 30, `${reads} reads overlapped the writes`);
      t.same(torn, [], `all ${reads} reads saw one whole value`);
    });

    t.test('concurrent puts to different keys all land', async (t) => {
      const storage = await fresh(t);
      const keys = Array.from({ length: 60 }, (_, i) => `certificates/host-${i % 7}.example.com/file-${String(i).padStart(2, '0')}.pem`);
      await Promise.all(keys.map((key) => storage.put(key, `value of ${key}`, { secret: key.endsWith('3.pem') })));
      const values = await Promise.all(keys.map(async (key) => (await storage.get(key)).toString()));
      t.same(values, keys.map((key) => `value of ${key}`));
      t.same(await storage.list('certificates'), [...keys].sort());
    });

    t.test('a lock is held by one caller at a time', async (t) => {
      const storage = await fresh(t);
      const meter = overlapMeter();
      let counter = 0;
      const worker = async () => {
        for (let i = 0; i < 4; i++) {
          const lock = await storage.lock('renew-web', { timeoutMs: 20_000 });
          try {
            await meter.run(async () => {
              const seen = counter;
              await delay(2);
              counter = seen + 1;
            });
          } finally {
            await lock.release();
          }
        }
      };
      await Promise.all(Array.from({ length: 5 }, worker));
      t.equal(meter.peak, 1, 'no two holders overlapped');
      t.equal(counter, 20, 'no increment was lost');
    });

    t.test('locks with different names do not block each other', async (t) => {
      const storage = await fresh(t);
      const a = await storage.lock('issue-a');
      const b = await storage.lock('issue-b', { timeoutMs: 1_000 });
      await b.release();
      await a.release();
      t.pass('both were held at once');
    });

    t.test('waiting longer than timeoutMs throws FW_STORAGE_LOCK_TIMEOUT', async (t) => {
      const storage = await fresh(t);
      const held = await storage.lock('issue-web');
      const started = Date.now();
      await t.rejects(storage.lock('issue-web', { timeoutMs: 250 }), { name: 'FairwayError', code: 'FW_STORAGE_LOCK_TIMEOUT' });
      const waited = Date.now() - started;
      t.ok(waited >= 240 && waited < 5_000, `gave up after about timeoutMs (${waited} ms)`);
      await held.release();
      const again = await storage.lock('issue-web', { timeoutMs: 1_000 });
      await again.release();
      t.pass('the lock is free once released; the waiter that gave up left no trace');
    });

    t.test('release is safe to call twice and never releases a later holder', async (t) => {
      const storage = await fresh(t);
      const first = await storage.lock('issue-web');
      await first.release();
      await t.resolves(first.release(), 'a second release succeeds');
      const second = await storage.lock('issue-web', { timeoutMs: 1_000 });
      await first.release();
      await t.rejects(storage.lock('issue-web', { timeoutMs: 150 }), { code: 'FW_STORAGE_LOCK_TIMEOUT' }, 'a stale release left the new holder in place');
      await second.release();
    });

    t.test('lock then re-check: of concurrent issuers only one writes the certificate', async (t) => {
      const storage = await fresh(t);
      const key = 'certificates/web.example.com/cert.pem';
      let writes = 0;
      const issue = async (who: string) => {
        const lock = await storage.lock('issue-web.example.com', { timeoutMs: 20_000 });
        try {
          const exists = await storage.get(key).then(() => true, (err: FairwayError) => {
            if (err.code !== 'FW_STORAGE_NOT_FOUND') throw err;
            return false;
          });
          if (exists) return;
          await delay(20); // the ACME order
          await storage.put(key, `issued by ${who}`);
          writes++;
        } finally {
          await lock.release();
        }
      };
      await Promise.all([issue('a'), issue('b'), issue('c')]);
      t.equal(writes, 1);
      t.match((await storage.get(key)).toString(), /^issued by [abc]$/);
    });
  });
}
