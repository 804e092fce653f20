/**
 * @module
 * Proves the Pebble harness (test/helpers/pebble.ts) against the real Pebble with the real
 * acme-client: a certificate is issued over HTTP-01 answered by a server in this test,
 * and its chain verifies against Pebble's root; restart gives a working directory with a
 * new root; a missing Pebble is reported, never skipped.
 */
import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import * as acme from 'acme-client';
import { startPebble, trustPebble, freeLoopbackPorts, type Pebble } from './helpers/pebble.js';

/** Key authorizations by token, answered at /.well-known/acme-challenge/<token>. */
const tokens = new Map<string, string>();
const challengeHits: string[] = [];
const challengeServer: Server = createServer((req, res) => {
  const prefix = '/.well-known/acme-challenge/';
  const token = req.url?.startsWith(prefix) ? req.url.slice(prefix.length) : undefined;
  const keyAuthorization = token === undefined ? undefined : tokens.get(token);
  if (keyAuthorization === undefined) {
    res.writeHead(404).end();
    return;
  }
  challengeHits.push(token!);
  res.writeHead(200, { 'content-type': 'text/plain' }).end(keyAuthorization);
});

let pebble: Pebble;
let untrust: () => void = () => {};

t.before(async () => {
  await new Promise<void>((resolve) => challengeServer.listen(0, '127.0.0.1', resolve));
  const [tlsPort] = await freeLoopbackPorts(1); // nothing listens there: only HTTP-01 is used
  pebble = await startPebble({
    httpPort: (challengeServer.address() as AddressInfo).port,
    tlsPort: tlsPort!,
    certificateValidityPeriod: 3600,
  });
  untrust = trustPebble(pebble.caBundle);
});

t.teardown(async () => {
  untrust();
  await pebble?.stop();
  await new Promise((resolve) => challengeServer.close(resolve));
});

/** GET over HTTPS trusting only `ca`. */
function getJson(url: string, ca: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    request(url, { ca, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    }).on('error', reject).end();
  });
}

t.test('a certificate ordered over HTTP-01 from the harness Pebble chains to roots()', async (t) => {
  const client = new acme.Client({
    directoryUrl: pebble.directory,
    accountKey: await acme.crypto.createPrivateEcdsaKey(),
    backoffMin: 20,
    backoffMax: 500,
    backoffAttempts: 20,
  });
  const account = await client.createAccount({ termsOfServiceAgreed: true, contact: ['mailto:ops@example.com'] });
  t.equal(account.status, 'valid', 'the account is created');

  const [, csr] = await acme.crypto.createCsr({ commonName: 'test.example.com', altNames: ['test.example.com'] });
  const started = performance.now();
  const chainPem = await client.auto({
    csr,
    email: 'ops@example.com',
    termsOfServiceAgreed: true,
    challengePriority: ['http-01'],
    skipChallengeVerification: true,
    challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
      tokens.set(challenge.token, keyAuthorization);
    },
    challengeRemoveFn: async (_authz, challenge) => {
      tokens.delete(challenge.token);
    },
  });
  t.comment(`issuance took ${Math.round(performance.now() - started)} ms`);

  t.ok(challengeHits.length >= 1, "Pebble's validator fetched the token from the test's httpPort");
  t.equal(tokens.size, 0, 'challengeRemoveFn ran');

  const [leafPem, intermediatePem] = acme.crypto.splitPemChain(chainPem);
  t.ok(leafPem && intermediatePem, 'the chain has a leaf and an intermediate');
  const leaf = new X509Certificate(leafPem!);
  const intermediate = new X509Certificate(intermediatePem!);
  const root = new X509Certificate(await pebble.roots());

  t.ok(leaf.subjectAltName?.split(', ').includes('DNS:test.example.com'), 'the leaf names test.example.com');
  t.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey), 'the intermediate signed the leaf');
  t.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey), 'the root from roots() signed the intermediate');
  t.ok(root.verify(root.publicKey), 'the root is self-signed');
  t.notOk(leaf.verify(new X509Certificate(pebble.caBundle).publicKey), 'caBundle (the listener CA) is not the issuing CA');

  const lifetime = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
  t.ok(Math.abs(lifetime - 3600) <= 1, `certificateValidityPeriod sets the lifetime (got ${lifetime} s)`);
});

t.test('after restart() the directory answers again at the same URL with a new root', async (t) => {
  const before = await pebble.roots();
  await pebble.restart();
  const dir = await getJson(pebble.directory, pebble.caBundle);
  t.equal(dir.status, 200, 'the directory answers over HTTPS trusted by the same caBundle');
  t.type(dir.body.newNonce, 'string', 'the directory lists newNonce');
  t.not(await pebble.roots(), before, 'the issuing root changed');
});

t.test('startPebble fails loudly when pebble is not installed', async (t) => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    await t.rejects(startPebble({ httpPort: 1, tlsPort: 2 }), {
      message: 'pebble is not installed: apt-get install -y pebble',
    });
  } finally {
    process.env.PATH = path;
  }
});
