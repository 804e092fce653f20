/**
 * ACME Renewal Information (RFC 9773) end to end: a real router orders from a real Pebble
 * through an HTTPS front that adds the `renewalInfo` resource Pebble 2.4 lacks and answers
 * it as each test chooses (test/helpers/ari-front.ts). All ACME traffic goes through the
 * front, which the router alone trusts.
 */
import t, { type Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { freeLoopbackPorts, startPebble, type Pebble } from './helpers/pebble.js';
import { startAriFront, windowAnswer, type AriFront } from './helpers/ari-front.js';
import { startUpstream } from './helpers/upstreams.js';
import { startTestRouter, type TestRouter } from './helpers/test-router.js';
import { hello } from './helpers/tls-client.js';

const echo = await startUpstream('echo');
t.teardown(() => echo.close());

const HOST = 'ari.example.test';
const MINUTE = 60_000;
const DAY = 86_400_000;
/** The CA's `Retry-After` is honoured down to this in tests (1 minute in production). */
const POLL = { min: 200, max: 60_000 };

interface Setup {
  pebble: Pebble;
  front: AriFront;
  r: TestRouter;
  httpsPort: number;
}

async function setup(t: Test, o: { offerRenewalInfo?: boolean; configure?: (front: AriFront) => void } = {}): Promise<Setup> {
  const [httpPort, httpsPort] = (await freeLoopbackPorts(2)) as [number, number];
  const pebble = await startPebble({ httpPort, tlsPort: httpsPort });
  t.teardown(() => pebble.stop());
  const front = await startAriFront(pebble, { offerRenewalInfo: o.offerRenewalInfo });
  t.teardown(() => front.close());
  o.configure?.(front);
  const dir = mkdtempSync(path.join(tmpdir(), 'fairway-ari-'));
  writeFileSync(path.join(dir, 'front-ca.pem'), front.caBundle);
  const r = await startTestRouter(
    `
listen:
  http: 127.0.0.1:${httpPort}
  https: 127.0.0.1:${httpsPort}
  admin: 127.0.0.1:0
  builder: 127.0.0.1:0
log: { level: debug }
tls:
  storage: ${path.join(dir, 'data')}
  acme:
    directory: ${front.directory}
    caBundle: front-ca.pem
    retry: { min: 200ms, max: 1s }
apps:
  web:
    domains: [${HOST}]
    versions: { v1: { weight: 1, endpoints: ["${echo.address}"] } }
`,
    { dir, acmePollMs: { min: 20, max: 200 }, acmeRenewalInfoPollMs: POLL },
  );
  t.teardown(() => r.close());
  return { pebble, front, r, httpsPort };
}

/** Polls `check` (bounded) for conditions with no event to await: a CA on the other side of a socket. */
async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(check()).catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The leaf served for HOST over a real handshake, verified against Pebble's current root. */
async function served(s: Setup) {
  const h = await hello(s.httpsPort, { servername: HOST, ca: await s.pebble.roots(), rejectUnauthorized: true });
  if (!h.authorized) throw new Error(`not authorized: ${h.authorizationError?.message}`);
  return new X509Certificate(h.cert.raw);
}

/** The content bytes of a DER certificate's serialNumber INTEGER, exactly as encoded. */
function derSerial(der: Buffer): Buffer {
  let p = 0;
  const header = () => {
    const tag = der[p++]!;
    let len = der[p++]!;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[p++]!;
    }
    return { tag, len };
  };
  header(); // Certificate
  header(); // TBSCertificate
  let h = header();
  if (h.tag === 0xa0) {
    p += h.len; // [0] version
    h = header();
  }
  if (h.tag !== 0x02) throw new Error('no serialNumber INTEGER');
  return der.subarray(p, p + h.len);
}

/** RFC 9773 §4.1, computed here from the DER: base64url(AKI keyIdentifier) "." base64url(serial). */
function ariId(cert: X509Certificate): string {
  const aki = new x509.X509Certificate(cert.raw).getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new Error('no AKI keyIdentifier');
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${derSerial(cert.raw).toString('base64url')}`;
}

const status = async (r: TestRouter) =>
  ((await r.adminGet('/v1/certificates')).json().certificates as { host: string; nextRenewal?: string; notAfter?: string }[]).find((x) => x.host === HOST)!;
const issued = async (r: TestRouter) => Number(/fairway_acme_orders_total\{result="issued"\} (\d+)/.exec((await r.adminGet('/metrics')).body)?.[1] ?? 0);

t.test('a window opening seconds after issuance: renewed inside it, asked for by the RFC 9773 id, and the order names the certificate it replaces', async (t) => {
  let first: { id: string; start: number; end: number } | undefined;
  const s = await setup(t, {
    configure: (front) => {
      front.renewalInfo = (id) => {
        // Pebble's certificates live 5 years: renewAt (2/3) would be years away.
        first ??= { id, start: Date.now() + 2_000, end: Date.now() + 3_000 };
        return id === first.id ? windowAnswer(first.start, first.end, 3600) : windowAnswer(Date.now() + 30 * DAY, Date.now() + 31 * DAY, 3600);
      };
    },
  });
  await s.r.router.certificates.idle();
  const before = await served(s);
  t.ok(first, 'the router asked for the renewal window of its new certificate');
  t.equal(first!.id, ariId(before), 'by base64url(AKI).base64url(serial) of the certificate it serves');
  const planned = Date.parse((await status(s.r)).nextRenewal!);
  t.ok(planned >= first!.start && planned <= first!.end, `nextRenewal ${new Date(planned).toISOString()} lies inside the window`);

  const after = await until('the renewed certificate to be served', async () => {
    const c = await served(s);
    return c.serialNumber !== before.serialNumber && c;
  });
  t.ok(s.front.newOrders[1]!.at >= first!.start, 'the renewal was ordered once the window had opened, not before');
  t.ok(Date.parse(after.validFrom) <= Date.now() && Date.parse(after.validTo) > Date.parse(before.validTo), 'a newer certificate');
  t.equal(s.front.newOrders.length, 2, 'two orders: the first certificate and its renewal');
  t.equal(s.front.newOrders[0]!.payload.replaces, undefined, 'the first order replaces nothing');
  t.equal(s.front.newOrders[1]!.payload.replaces, first!.id, 'the renewal order carries replaces = the renewalInfo id of the old certificate');
  t.ok(s.front.renewalInfoRequests.some((q) => q.id === ariId(after)), 'and the new certificate\'s window is asked for at once');
  const next = Date.parse((await status(s.r)).nextRenewal!);
  t.ok(next > Date.now() + 29 * DAY, 'whose window (a month away) is the next renewal');
  t.ok(s.r.logs.some((l) => l.msg === 'the CA suggested a renewal window' && l.host === HOST), 'the window is logged');
});

t.test('a window that is already over means renew now', async (t) => {
  let firstId: string | undefined;
  const s = await setup(t, {
    configure: (front) => {
      front.renewalInfo = (id) => {
        firstId ??= id;
        return id === firstId ? windowAnswer(Date.now() - 2 * 3_600_000, Date.now() - 3_600_000) : windowAnswer(Date.now() + 30 * DAY, Date.now() + 31 * DAY);
      };
    },
  });
  const renewed = await until('the replacement certificate to be served', async () => {
    const c = await served(s);
    return ariId(c) !== firstId && c;
  });
  await s.r.router.certificates.idle();
  t.equal(await issued(s.r), 2, 'ordered, then renewed at once');
  t.same(s.front.newOrders.map((o) => o.payload.replaces), [undefined, firstId]);
  t.ok(s.front.renewalInfoRequests.some((q) => q.id === ariId(renewed)));
  t.ok(Date.parse((await status(s.r)).nextRenewal!) > Date.now() + 29 * DAY, 'and then waits for the new window');
});

t.test('renewalInfo failing (404, 500, garbage, an invalid window) falls back to renewAt, logs at debug, and renewals go on', async (t) => {
  const s = await setup(t);
  await s.r.router.certificates.idle();
  const cases: [string, () => ReturnType<AriFront['renewalInfo']>][] = [
    ['404', () => ({ status: 404, body: { type: 'urn:ietf:params:acme:error:malformed', detail: 'unknown certificate' } })],
    ['500', () => ({ status: 500, body: 'oops' })],
    ['garbage JSON', () => ({ status: 200, body: '{"suggestedWindow": {' })],
    ['a window that ends before it starts', () => windowAnswer(Date.now() + DAY, Date.now())],
  ];
  for (const [name, failure] of cases) {
    s.front.renewalInfo = failure;
    const asked = s.front.renewalInfoRequests.length;
    await s.r.router.certificates.renew(HOST);
    const cert = await served(s);
    t.ok(s.front.renewalInfoRequests.length > asked, `${name}: renewalInfo was asked`);
    const notBefore = Date.parse(cert.validFrom);
    const renewAt = notBefore + (Date.parse(cert.validTo) - notBefore) * (2 / 3);
    // validFrom/validTo have whole seconds; notBefore/notAfter as parsed by the router too.
    t.ok(Math.abs(Date.parse((await status(s.r)).nextRenewal!) - renewAt) < 1_000, `${name}: nextRenewal is renewAt (2/3) of the lifetime`);
    const line = s.r.logs.filter((l) => l.msg === 'renewalInfo unavailable; renewing at renewAt of the lifetime').at(-1);
    t.match(line, { level: 'debug', host: HOST }, `${name}: logged at debug`);
  }
  t.equal(await issued(s.r), 1 + cases.length, 'every renewal was issued');
  t.same(s.r.logs.filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level))), [], 'nothing worse than debug was logged');

  // A CA whose renewalInfo is down says when to come back, then suggests a window that is open.
  s.front.renewalInfo = () => ({ status: 503, headers: { 'retry-after': '1' }, body: 'busy' });
  await s.r.router.certificates.renew(HOST);
  const before = await served(s);
  const id = ariId(before);
  await until('a second fetch, at the Retry-After of the 503', () => s.front.renewalInfoRequests.filter((q) => q.id === id).length >= 2);
  s.front.renewalInfo = (asked) => (asked === id ? windowAnswer(Date.now() - MINUTE, Date.now()) : windowAnswer(Date.now() + 30 * DAY, Date.now() + 31 * DAY));
  const after = await until('the certificate renewed in the window that followed the errors', async () => {
    const c = await served(s);
    return c.serialNumber !== before.serialNumber && c;
  });
  t.ok(after);
  t.equal(s.front.newOrders.at(-1)!.payload.replaces, id);
});

t.test('while a window is far away, renewalInfo is fetched again per Retry-After, and a window the CA moves earlier is honoured', async (t) => {
  let moved: { start: number; end: number } | undefined;
  let firstId: string | undefined;
  const far = Date.now() + 30 * DAY;
  const s = await setup(t, {
    configure: (front) => {
      front.renewalInfo = (id) => {
        firstId ??= id;
        if (id !== firstId) return windowAnswer(Date.now() + 30 * DAY, Date.now() + 31 * DAY, 3600);
        if (moved) return windowAnswer(moved.start, moved.end, 1, { explanationURL: 'https://ca.example.test/incident/42' });
        return windowAnswer(far, far + DAY, 1);
      };
    },
  });
  await s.r.router.certificates.idle();
  const before = await served(s);
  const planned = Date.parse((await status(s.r)).nextRenewal!);
  t.ok(planned >= far && planned <= far + DAY, 'nextRenewal shows the far window');

  const polls = await until('three fetches of the same certificate\'s renewalInfo', () => {
    const q = s.front.renewalInfoRequests.filter((x) => x.id === firstId);
    return q.length >= 3 && q;
  });
  for (let i = 1; i < polls.length; i++) {
    const gap = polls[i]!.at - polls[i - 1]!.at;
    t.ok(gap >= 900 && gap < 5_000, `fetch ${i + 1} came ${gap} ms after the one before: at its Retry-After (1 s), not sooner`);
  }
  t.equal(await issued(s.r), 1, 'no renewal while the window stays far away');

  // The CA moves the window to now (as on a revocation).
  moved = { start: Date.now() - MINUTE, end: Date.now() + 2_000 };
  const after = await until('the certificate renewed in the moved window', async () => {
    const c = await served(s);
    return c.serialNumber !== before.serialNumber && c;
  });
  t.ok(after);
  t.equal(s.front.newOrders.at(-1)!.payload.replaces, firstId, 'the renewal names the certificate it replaces');
  t.ok(s.r.logs.some((l) => l.msg === 'the CA suggested a renewal window' && l.explanationUrl === 'https://ca.example.test/incident/42'), 'the CA\'s explanation URL is logged');
});

t.test('a CA answering alreadyReplaced gets the order again without replaces', async (t) => {
  const s = await setup(t, {
    configure: (front) => {
      front.renewalInfo = () => windowAnswer(Date.now() + 30 * DAY, Date.now() + 31 * DAY);
      front.newOrder = (payload) =>
        payload.replaces === undefined ? undefined : { status: 409, body: { type: 'urn:ietf:params:acme:error:alreadyReplaced', detail: 'already replaced' } };
    },
  });
  await s.r.router.certificates.idle();
  const before = await served(s);
  const result = await s.r.router.certificates.renew(HOST);
  t.notOk(result.lastError, 'the renewal succeeded');
  t.not((await served(s)).serialNumber, before.serialNumber);
  t.same(s.front.newOrders.map((o) => o.payload.replaces), [undefined, ariId(before), undefined]);
  t.ok(s.r.logs.some((l) => /replaced already; ordering again without "replaces"/.test(String(l.msg))));
});

t.test('a CA without renewalInfo: renewAt decides, and orders carry no replaces', async (t) => {
  const s = await setup(t, { offerRenewalInfo: false });
  await s.r.router.certificates.idle();
  await s.r.router.certificates.renew(HOST);
  const cert = await served(s);
  const notBefore = Date.parse(cert.validFrom);
  t.ok(Math.abs(Date.parse((await status(s.r)).nextRenewal!) - (notBefore + (Date.parse(cert.validTo) - notBefore) * (2 / 3))) < 1_000);
  t.same(s.front.newOrders.map((o) => o.payload.replaces), [undefined, undefined]);
  t.same(s.front.renewalInfoRequests, []);
  t.notOk(s.r.logs.some((l) => /renewalInfo/.test(String(l.msg))), 'and nothing about renewalInfo is logged');
});
