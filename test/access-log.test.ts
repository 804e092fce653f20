import t from 'tap';
import { AccessLog, entryFields, type AccessLogEntry } from '../src/observability/access-log.js';
import { createLogger } from '../src/observability/logger.js';

/** A logger like the router's whose lines are collected (after the end-of-turn batch is flushed). */
function capturingLogger(level = 'info') {
  const lines: string[] = [];
  const logger = createLogger({ level, destination: { write: (chunk: string) => void lines.push(...chunk.split('\n').filter(Boolean)) } });
  return {
    logger,
    lines(): string[] {
      logger.flush();
      return lines.splice(0).map((line) => line.replace(/"time":"[^"]+"/, '"time":"T"'));
    },
  };
}

const HOSTILE: AccessLogEntry = {
  reqId: 'a1b2',
  app: 'web',
  host: 'q"uote\\back.example',
  path: '/p?x=\u0000\u001f\u007f\n\r\t"\u2028\u2029',
  error: 'a pair \ud83d\ude00, ünïcödé',
  status: 502,
  bytes: 0,
  duration: 1.234,
  upstreamDuration: Number.NaN,
  attempts: Number.POSITIVE_INFINITY,
  encoding: undefined,
  sticky: true,
  nothing: null,
  tags: ['a', 'b'],
};

t.test('an access-log line is what pino writes for the same entry, hostile strings included', async (t) => {
  const { logger, lines } = capturingLogger();
  const child = logger.child({ worker: 2, pid: 77 }).child({ log: 'access' });
  const simple = { reqId: 'r', app: 'a', version: 'v1', status: 200, bytes: 100, duration: 0.5 };
  for (const entry of [HOSTILE, simple, {}]) {
    child.info(entry);
    const [fromPino] = lines();
    new AccessLog(child, []).info(entry);
    const [ours] = lines();
    t.equal(ours, fromPino);
    t.same(JSON.parse(ours!), JSON.parse(fromPino!), 'and it parses to the same object');
  }
});

t.test('a lone surrogate is escaped (well-formed JSON) where pino writes it raw and it turns into U+FFFD', async (t) => {
  const { logger, lines } = capturingLogger();
  new AccessLog(logger.child({ log: 'access' }), []).info({ path: '/\ud800' });
  const [line] = lines();
  t.match(line, '"path":"/\\ud800"');
  t.equal(JSON.parse(line!).path, '/\ud800');
});

t.test('undefined fields are left out and non-finite numbers are written as null', async (t) => {
  const fields = JSON.parse(`{${entryFields(HOSTILE).slice(1)}}`);
  t.notOk('encoding' in fields);
  t.equal(fields.upstreamDuration, null);
  t.equal(fields.attempts, null);
  t.equal(fields.path, HOSTILE.path);
  t.equal(fields.host, HOSTILE.host);
});

t.test('an entry\'s fields are JSON.stringify\'s text for it without the braces, whatever the values', async (t) => {
  const entries: AccessLogEntry[] = [
    HOSTILE,
    {},
    { reqId: 'r', status: 200, bytes: 100, duration: 0.5, upstreamDuration: 17.103, clientIp: '::ffff:127.0.0.1' },
    { zero: -0, big: 1e21, small: 5e-7, max: Number.MAX_SAFE_INTEGER, negative: -Infinity, flag: false },
    { pair: '\ud83d\ude00', lone: 'a\udc00b', del: '\u007f', separators: '\u2028\u2029', slash: 'a/b', empty: '' },
    { when: new Date(0), nested: { a: [undefined, 1, 'x"'], b: null }, fn: () => 1, sym: Symbol('s'), list: [] },
    { 'q"uote': 1, 'back\\slash': 'v', 'new\nline': true, 7: 'integer keys come first', after: 'x' },
  ];
  for (const entry of entries) {
    const json = JSON.stringify(entry);
    t.equal(entryFields(entry), json.length > 2 ? `,${json.slice(1, -1)}` : '', json);
  }
});

t.test('an access log whose logger is above info writes nothing but still feeds its sinks', async (t) => {
  const { logger, lines } = capturingLogger('warn');
  const seen: unknown[][] = [];
  new AccessLog(logger.child({ log: 'access' }), [{ active: true, add: (...args) => void seen.push(args.filter((a) => typeof a !== 'number')) }]).info({ app: 'web', version: 'v1', status: 200 });
  t.same(lines(), []);
  t.same(seen, [['web', 'v1', ',"app":"web","version":"v1","status":200']], 'the app, the version and the serialised fields');
});

t.test('sinks get the text the stdout line has, serialised once, and an inactive sink gets nothing', async (t) => {
  const { logger, lines } = capturingLogger();
  const texts: string[] = [];
  let inactiveCalled = false;
  const entry: AccessLogEntry = { app: 'web', path: '/a"b', status: 200 };
  new AccessLog(logger.child({ log: 'access' }), [
    { active: true, add: (_app, _version, _time, fields) => void texts.push(fields) },
    { active: false, add: () => void (inactiveCalled = true) },
    { active: true, add: (_app, _version, _time, fields) => void texts.push(fields) },
  ]).info(entry);
  t.equal(texts.length, 2);
  t.equal(texts[0], entryFields(entry));
  t.equal(texts[0], texts[1]);
  t.notOk(inactiveCalled);
  t.match(lines()[0], texts[0]!);
});
