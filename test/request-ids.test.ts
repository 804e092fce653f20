import t from 'tap';
import { parseConfig } from '../src/config/load-config.js';
import { upstreamStarter } from './helpers/upstreams.js';
import { waitForLog, routerStarter } from './helpers/test-router.js';

const upstream = upstreamStarter(t);

const router = routerStarter(t);

/** nginx's `$request_id`: 32 lower-case hex digits. */
const NGINX_ID = /^[0-9a-f]{32}$/;

const config = (requestIDs: boolean, address: string, extra = '') => `
requestIDs: ${requestIDs}
apps:
  web:
    domains: [web.test]
    versions: { v1: { weight: 1, endpoints: ["${address}"] } }
  down:
    domains: [down.test]
    maintenance: true
    versions: { v1: { weight: 1, endpoints: ["${address}"] } }
${extra}`;

t.test('requestIDs is off by default', async (t) => {
  t.equal(parseConfig('apps: {}', 'f.yaml').settings.requestIDs, false);
});

t.test('off: the client\'s X-Request-Id and X-Correlation-Id reach the app untouched and nothing is added to the response', async (t) => {
  const web = await upstream('web');
  const r = await router(config(false, web.address));
  const res = await r.get('web.test', '/', { headers: { 'x-request-id': 'client-id-1', 'x-correlation-id': 'corr-7' } });
  t.match(res.json().headers, { 'x-request-id': 'client-id-1', 'x-correlation-id': 'corr-7' });
  t.same([res.headers['x-request-id'], res.headers['x-correlation-id']], [undefined, undefined]);
  const bare = await r.get('web.test', '/');
  t.notOk('x-correlation-id' in bare.json().headers, 'no X-Correlation-Id is invented');
  t.match(bare.json().headers['x-request-id'], /^[0-9a-f-]{36}$/, 'an X-Request-Id is still made when the client sent none (as before requestIDs existed)');
});

t.test('on: the app gets a new X-Request-Id and X-Correlation-Id ending with it; the client gets both back; the log has the ID', async (t) => {
  const web = await upstream('web');
  const r = await router(config(true, web.address));

  const first = await r.get('web.test', '/a');
  const seen = first.json().headers as Record<string, string>;
  t.match(seen['x-request-id'], NGINX_ID, 'an ID in the form of nginx\'s $request_id');
  t.equal(seen['x-correlation-id'], seen['x-request-id'], 'no incoming X-Correlation-Id: it is the request ID');
  t.same([first.headers['x-request-id'], first.headers['x-correlation-id']], [seen['x-request-id'], seen['x-correlation-id']], 'returned to the client');
  t.match(await waitForLog(r, (l) => l.reqId === seen['x-request-id']), { log: 'access', app: 'web', path: '/a', status: 200 });

  const chained = await r.get('web.test', '/b', { headers: { 'x-request-id': 'client-id', 'x-correlation-id': 'edge-123' } });
  const h = chained.json().headers as Record<string, string>;
  t.match(h['x-request-id'], NGINX_ID);
  t.not(h['x-request-id'], 'client-id', 'the client\'s X-Request-Id is replaced, as nginx\'s $request_id did');
  t.equal(h['x-correlation-id'], `edge-123,${h['x-request-id']}`, 'the incoming X-Correlation-Id is extended with the new ID');
  t.same([chained.headers['x-request-id'], chained.headers['x-correlation-id']], [h['x-request-id'], h['x-correlation-id']]);
  t.equal(web.lastRawHeaders.filter((n, i) => i % 2 === 0 && n.toLowerCase() === 'x-correlation-id').length, 1, 'sent upstream once');

  const other = await r.get('web.test', '/b', { headers: { 'x-correlation-id': 'edge-123' } });
  t.not(other.headers['x-request-id'], chained.headers['x-request-id'], 'every request gets its own ID');
});

t.test('on: the upstream\'s own X-Request-Id / X-Correlation-Id response headers give way to the router\'s', async (t) => {
  const web = await upstream('web', (_req, res) => {
    res.writeHead(200, { 'x-request-id': 'upstream-made', 'x-correlation-id': 'upstream-corr', 'content-type': 'text/plain' });
    res.end('ok');
  });
  const r = await router(config(true, web.address));
  const res = await r.get('web.test', '/');
  t.match(res.headers['x-request-id'], NGINX_ID);
  t.equal(res.headers['x-correlation-id'], res.headers['x-request-id']);
});

t.test('on: the router\'s own answers carry both headers too (unknown host, maintenance)', async (t) => {
  const web = await upstream('web');
  const r = await router(config(true, web.address));
  const unknown = await r.get('nobody.test', '/', { headers: { 'x-correlation-id': 'lb-9' } });
  t.equal(unknown.status, 404);
  t.match(unknown.headers['x-request-id'], NGINX_ID);
  t.equal(unknown.headers['x-correlation-id'], `lb-9,${unknown.headers['x-request-id']}`);
  const down = await r.get('down.test', '/');
  t.same([down.status, down.headers['x-fairway-error']], [503, 'FW_APP_MAINTENANCE']);
  t.match(down.headers['x-request-id'], NGINX_ID);
  t.equal(down.headers['x-correlation-id'], down.headers['x-request-id']);
  t.match(await waitForLog(r, (l) => l.reqId === down.headers['x-request-id']), { status: 503, error: 'FW_APP_MAINTENANCE' });
});

t.test('two routers in a row chain the correlation ID hop by hop, as two Deis routers did', async (t) => {
  const web = await upstream('web');
  const inner = await router(config(true, web.address));
  const outer = await router(config(true, inner.http.replace('http://', '')));
  const res = await outer.get('web.test', '/', { headers: { 'x-correlation-id': 'client-1' } });
  const seen = res.json().headers as Record<string, string>;
  const [client, outerId, innerId] = seen['x-correlation-id']!.split(',');
  t.equal(client, 'client-1');
  t.match(outerId, NGINX_ID);
  t.equal(innerId, seen['x-request-id'], 'the app sees the inner router\'s ID last');
  t.equal(res.headers['x-request-id'], outerId, 'the client gets the outer router\'s ID');
  t.equal(res.headers['x-correlation-id'], `client-1,${outerId}`);
});
