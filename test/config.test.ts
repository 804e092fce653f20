import t from 'tap';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, parseConfig, ConfigError } from '../src/config/load-config.js';
import { parseDuration, parseSize } from '../src/config/units.js';
import { parseHostPort } from '../src/config/host-port.js';

const defaultConfig = fileURLToPath(new URL('../config/fairway.yaml', import.meta.url));

t.test('the embedded default config loads with the demo app and expanded bare domains', async (t) => {
  const c = loadConfigFile(defaultConfig);
  t.equal(c.settings.listen.http, '127.0.0.1:8080');
  t.equal(c.settings.listen.admin, '127.0.0.1:9090');
  t.same(c.apps.map((a) => a.name), ['web']);
  t.same(c.apps[0]!.domains, ['web.localtest.me', 'www.example.test', '*.preview.example.test']);
  t.same(c.apps[0]!.versions.map((v) => [v.name, v.weight, v.endpoints.length]), [['v1', 90, 2], ['v2', 10, 1]]);
  t.match(c.stateFile, /config\/fairway\.state\.json$/);
});

t.test('defaults apply to every optional key', async (t) => {
  const c = parseConfig('apps: {}\n', '/x/f.yaml');
  t.same(c.settings.timeouts, { connect: 5000, upstreamHeaders: 60000, upstreamIdle: 60000, clientKeepAlive: 75000, clientHeaders: 60000, clientRequest: 300000, clientIdle: 60000, upgradeIdle: 3600000 });
  t.same(c.settings.requestLogs, { perApp: { entries: 1000, maxBytes: 8 * 1024 * 1024 }, ship: undefined });
  t.same(c.settings.limits, { maxBodySize: 100 * 1024 * 1024, maxHeaderSize: 16384, maxHeadersCount: 100, maxUrlLength: 8192, maxConnectionsPerClient: 0 });
  t.equal(c.settings.accessLog, true);
  t.equal(c.settings.tls.http2, true, 'HTTP/2 is offered on listen.https unless tls.http2 is false');
  t.equal(c.stateFile, '/x/f.state.json');
});

// Each case: the file text, then every message `fairway validate` must print for it.
const badFiles: [string, string, string[]][] = [
  ['a negative weight names the key path and the rule',
    'apps:\n  web:\n    versions:\n      v2: { weight: -1 }\n',
    ['f.yaml:4:21: apps.web.versions.v2.weight: must be a number >= 0']],
  ['a weight that is not a number',
    'apps:\n  web:\n    versions:\n      v1:\n        weight: lots\n',
    ['f.yaml:5:17: apps.web.versions.v1.weight: must be a number >= 0']],
  ['a missing weight is reported as required',
    'apps:\n  web:\n    versions:\n      v1: { endpoints: [] }\n',
    ['f.yaml:4:11: apps.web.versions.v1.weight: is required (must be a number >= 0)']],
  ['an endpoint without a valid port',
    'apps:\n  web:\n    versions:\n      v1: { weight: 1, endpoints: ["127.0.0.1:99999"] }\n',
    ['f.yaml:4:36: apps.web.versions.v1.endpoints.0: must be host:port with a port 1-65535, like 127.0.0.1:3001']],
  ['an unknown key is named with its line',
    'apps:\n  web:\n    domain: [x]\n',
    ['f.yaml:3:5: apps.web.domain: unknown key']],
  ['a bad app name is reported on the name',
    'apps:\n  Web_App: {}\n',
    ['f.yaml:2:3: apps.Web_App: app names are lower-case letters, digits and - (max 63)']],
  ['a bare domain without platformDomain',
    'apps:\n  web:\n    domains: [web]\n',
    ['f.yaml:3:15: apps.web.domains.0: bare name "web" needs platformDomain to be set']],
  ['a domain claimed by two apps',
    'apps:\n  a: { domains: [x.test] }\n  b: { domains: [X.test] }\n',
    ['f.yaml:3:18: apps.b.domains.0: domain "x.test" is already claimed by app "a"']],
  ['bad units and addresses, all reported at once',
    'listen: { http: nowhere }\ntimeouts: { connect: 5 parsecs }\nlimits: { maxBodySize: lots }\n',
    ['f.yaml:1:17: listen.http: must be an address like 127.0.0.1:8080 or [::]:8080',
      'f.yaml:2:22: timeouts.connect: must be a duration like 500ms, 5s or 2m',
      'f.yaml:3:24: limits.maxBodySize: must be a size like 512, 16kb or 10mb']],
  ['YAML syntax errors carry line and column',
    'apps: {\n web: [\n',
    ['f.yaml:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]',
      'f.yaml:3:1: Flow map in block collection must be sufficiently indented and end with a }']],
  ['tls.http2 is a boolean',
    'tls:\n  http2: yes please\n',
    ['f.yaml:2:10: tls.http2: must be true or false']],
  ['duplicate keys are a syntax error',
    'apps: {}\napps: {}\n',
    ['f.yaml:2:1: Map keys must be unique']],
];

for (const [name, text, messages] of badFiles) {
  t.test(`rejects: ${name}`, async (t) => {
    const err = t.throws(() => parseConfig(text, 'f.yaml')) as unknown as ConfigError;
    t.type(err, ConfigError);
    t.same(err.message.split('\n'), messages);
  });
}

t.test('a missing file is FW_CONFIG_READ naming the file', async (t) => {
  const err = t.throws(() => loadConfigFile('/nonexistent/fairway.yaml')) as unknown as ConfigError;
  t.equal(err.code, 'FW_CONFIG_READ');
  t.equal(err.message, '/nonexistent/fairway.yaml: file not found');
});

t.test('durations and sizes accept the documented units only', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('5s'), 5000);
  t.equal(parseDuration('1.5m'), 90000);
  t.equal(parseDuration(250), 250);
  t.equal(parseDuration('5 parsecs'), undefined);
  t.equal(parseDuration(-1), undefined);
  t.equal(parseSize('16kb'), 16384);
  t.equal(parseSize('10mb'), 10 * 1024 * 1024);
  t.equal(parseSize(512), 512);
  t.equal(parseSize('1.5k'), 1536);
  t.equal(parseSize('big'), undefined);
});

t.test('host:port parsing covers IPv4, IPv6 and names, and refuses the rest', async (t) => {
  t.same(parseHostPort('127.0.0.1:3001'), { host: '127.0.0.1', port: 3001 });
  t.same(parseHostPort('[::1]:80'), { host: '::1', port: 80 });
  t.same(parseHostPort('Backend.internal:8080'), { host: 'backend.internal', port: 8080 });
  t.equal(parseHostPort('127.0.0.1:0'), undefined);
  t.same(parseHostPort('127.0.0.1:0', true), { host: '127.0.0.1', port: 0 });
  t.equal(parseHostPort('::1:80'), undefined);
  t.equal(parseHostPort('host'), undefined);
  t.equal(parseHostPort('bad host:80'), undefined);
});
