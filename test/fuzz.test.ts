import t from 'tap';
import { endpointJudge, fuzzConfigs, fuzzProxyHeaders, fuzzRequests } from './helpers/fuzz-checks.js';
import { fuzzSeed, Rng } from './helpers/fuzz-inputs.js';
import { routerStarter } from './helpers/test-router.js';
import { upstreamStarter } from './helpers/upstreams.js';

/** One seed for the file; each run below derives its own stream from it. `FUZZ_SEED=<n>` repeats a run. */
const seed = fuzzSeed();
t.comment(`FUZZ_SEED=${seed} (more iterations: npm run build && node --import @tapjs/typescript/import bench/fuzz.ts)`);
const rngFor = (salt: number) => new Rng(seed ^ Math.imul(salt, 0x9e3779b1));

t.test('2,000 random and mutated config files: each gives a config or FW_CONFIG_SYNTAX/FW_CONFIG_INVALID naming a location, in under 2 s', async (t) => {
  const run = fuzzConfigs(rngFor(1), 2000, 2000);
  t.same(run.failures, [], `seed ${seed}`);
  t.ok((run.outcomes.parsed ?? 0) > 0 && (run.outcomes.FW_CONFIG_INVALID ?? 0) > 0 && (run.outcomes.FW_CONFIG_SYNTAX ?? 0) > 0, `every outcome occurs: ${JSON.stringify(run.outcomes)}`);
});

t.test('5,000 mutated PROXY v1/v2 headers: each is parsed or rejected as incomplete, invalid or too_large, never thrown', async (t) => {
  const run = fuzzProxyHeaders(rngFor(2), 5000);
  t.same(run.failures, [], `seed ${seed}`);
  t.ok((run.outcomes.v1 ?? 0) > 0 && (run.outcomes.v2 ?? 0) > 0 && (run.outcomes.invalid ?? 0) > 0, `valid and invalid headers both occur: ${JSON.stringify(run.outcomes)}`);
});

t.test('300 mutated request heads over raw sockets: each is answered or closed in time, the endpoint only sees well-formed requests, the router keeps serving', async (t) => {
  const router = routerStarter(t);
  const upstream = upstreamStarter(t);
  const judge = endpointJudge();
  const origin = await upstream('origin', judge.handler);
  origin.server.on('clientError', judge.onClientError);
  const r = await router(`
log: { access: false }
timeouts: { clientHeaders: 1s, clientIdle: 1s, clientRequest: 2s, upstreamHeaders: 2s }
apps:
  app:
    domains: [app.test]
    versions: { v1: { weight: 1, endpoints: ["${origin.address}"] } }
`);
  const run = await fuzzRequests(rngFor(3), 300, Number(new URL(r.http).port), 'app.test', 10, 5000);
  t.same(run.failures, [], `seed ${seed}`);
  t.same(judge.malformed, [], 'the endpoint received only well-formed requests');
  t.ok(origin.hits > 0 && (run.outcomes['answered 4xx'] ?? 0) > 0, `some requests were proxied, some refused: ${JSON.stringify(run.outcomes)}, ${origin.hits} at the endpoint`);
  t.equal((await r.get('app.test')).status, 200, 'a good request is served afterwards');
});
