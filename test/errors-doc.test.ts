import t from 'tap';
import { readFileSync } from 'node:fs';
import { errorCatalogue, FairwayError } from '../src/errors.js';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const rows = new Map([...doc.matchAll(/^\| `(FW_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));

t.test('docs/errors.md documents every catalogue code with its status, and nothing else', async (t) => {
  t.same([...rows.keys()].sort(), Object.keys(errorCatalogue).sort());
  for (const [code, spec] of Object.entries(errorCatalogue)) t.equal(rows.get(code), spec.status, code);
});

t.test('a FairwayError carries its code, status and details as JSON', async (t) => {
  const e = new FairwayError('FW_APP_NOT_FOUND', 'no app named "x"', { app: 'x' });
  t.equal(e.status, 404);
  t.same(e.toJSON(), { code: 'FW_APP_NOT_FOUND', message: 'no app named "x"', details: { app: 'x' } });
  t.same(new FairwayError('FW_INTERNAL', 'boom').toJSON(), { code: 'FW_INTERNAL', message: 'boom' });
});
