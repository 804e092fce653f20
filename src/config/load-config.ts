/**
 * @module
 * Reads, parses and validates a config file into the model. All-or-nothing: any problem
 * throws a {@link ConfigError} listing every problem with its file, line, column and key
 * path, so `fairway validate`, `fairway serve` at start, and the file provider at run
 * time report the same messages.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node as YamlNode } from 'yaml';
import type { ZodError } from 'zod';
import { FairwayError } from '../errors.js';
import type { AppEndpointHealth, AppHandling, AppSpec, EndpointSpec, ErrorPage, ErrorPages, RouterSettings, VersionSpec } from '../model.js';
import { configSchema, ERROR_PAGE_TYPES, type ConfigFile } from './config-schema.js';
import { parseHostPort } from './host-port.js';

export interface ConfigProblem {
  /** Dotted key path, e.g. `apps.web.versions.v2.weight`; empty for the whole file. */
  readonly path: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly message: string;
}

/** A config file that cannot be used. `message` is one line per problem, ready to print. */
export class ConfigError extends FairwayError {
  readonly file: string;
  readonly problems: readonly ConfigProblem[];

  constructor(code: 'FW_CONFIG_READ' | 'FW_CONFIG_SYNTAX' | 'FW_CONFIG_INVALID', file: string, problems: ConfigProblem[]) {
    super(code, problems.map((p) => formatProblem(file, p)).join('\n'), { file, problems });
    this.name = 'ConfigError';
    this.file = file;
    this.problems = problems;
  }
}

export function formatProblem(file: string, p: ConfigProblem): string {
  const where = p.line === undefined ? file : `${file}:${p.line}:${p.column ?? 1}`;
  // A key path is the file's own text: control characters in it are shown escaped, so a problem stays one readable line.
  const keyPath = p.path.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return keyPath ? `${where}: ${keyPath}: ${p.message}` : `${where}: ${p.message}`;
}

export interface LoadedConfig {
  readonly file: string;
  readonly settings: RouterSettings;
  readonly apps: readonly AppSpec[];
  readonly stateFile: string;
  readonly logLevel: ConfigFile['log']['level'];
}

/** Reads and validates `file`. Throws {@link ConfigError}. */
export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new ConfigError('FW_CONFIG_READ', file, [{ path: '', line: undefined, column: undefined, message: reason }]);
  }
  return parseConfig(text, file);
}

/** Parses and validates config text; `file` is used in messages and to resolve relative paths. */
export function parseConfig(text: string, file: string): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      'FW_CONFIG_SYNTAX',
      file,
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { path: '', line: pos.line, column: pos.col, message: e.message.split('\n')[0]! };
      }),
    );
  }
  const locate = (keyPath: readonly PropertyKey[], key = false) => {
    const node = findNode(doc, keyPath, key);
    if (!node?.range) return { line: undefined, column: undefined };
    const pos = lineCounter.linePos(node.range[0]);
    return { line: pos.line, column: pos.col };
  };

  // A key that is a list or a map (`? [a, b]: c`) has no place in this file; as a JS key it would become its YAML text.
  const complexKeys: ConfigProblem[] = [];
  visit(doc, {
    Pair(_, pair) {
      const key = pair.key as YamlNode | null;
      if (key !== null && !isScalar(key)) {
        const pos = key.range ? lineCounter.linePos(key.range[0]) : undefined;
        complexKeys.push({ path: '', line: pos?.line, column: pos?.col, message: 'a key must be a plain name, not a list or a map' });
      }
    },
  });
  if (complexKeys.length > 0) throw new ConfigError('FW_CONFIG_SYNTAX', file, complexKeys);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    // What the parser lets through but building values refuses: an alias to an anchor not defined before it, alias bombs.
    throw new ConfigError('FW_CONFIG_SYNTAX', file, [{ path: '', line: undefined, column: undefined, message: (err as Error).message.split('\n')[0]! }]);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError('FW_CONFIG_INVALID', file, zodProblems(parsed.error, raw, locate));

  const problems: ConfigProblem[] = [];
  const cfg = parsed.data;
  const dir = path.dirname(path.resolve(file));
  const files = (c: { cert: string; key: string }) => ({ cert: path.resolve(dir, c.cert), key: path.resolve(dir, c.key) });
  // Error pages are read here, once per load, so the data plane only ever reads memory.
  const readPages = (pages: Readonly<Record<string, string>> | undefined, keyPath: string[]): ErrorPages | undefined => {
    if (pages === undefined) return undefined;
    const read: Record<string, ErrorPage> = {};
    for (const [key, ref] of Object.entries(pages)) {
      const file = path.resolve(dir, ref);
      const where = { path: [...keyPath, key].join('.'), ...locate([...keyPath, key]) };
      try {
        if (statSync(file).size > MAX_PAGE_SIZE) {
          problems.push({ ...where, message: `${file} is larger than ${MAX_PAGE_SIZE / 1024} kb` });
          continue;
        }
        const ext = path.extname(file).toLowerCase();
        read[key] = { file, contentType: ERROR_PAGE_TYPES[ext]!, body: readFileSync(file, 'utf8') };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        problems.push({ ...where, message: code === 'ENOENT' ? `file not found: ${file}` : `cannot read ${file}: ${(err as Error).message}` });
      }
    }
    return read;
  };
  const claimed = new Map<string, string>();
  // Apps that configure a part the same way share one object for it (10,000 apps on the
  // defaults hold one `tls`, `policy` and `versionPick`, not 10,000 each): the snapshot,
  // and the copy each data-plane worker gets (structured clone keeps the sharing), stay small.
  const parts = new Map<string, object>();
  const share = <T extends object>(part: T): T => {
    const key = JSON.stringify(part);
    const known = parts.get(key) as T | undefined;
    if (known !== undefined) return known;
    parts.set(key, part);
    return part;
  };
  const apps: AppSpec[] = [];
  for (const [name, a] of Object.entries(cfg.apps)) {
    const domains: string[] = [];
    a.domains.forEach((d, i) => {
      let fqdn = d.toLowerCase().replace(/\.$/, '');
      if (!fqdn.includes('.')) {
        if (!cfg.platformDomain) {
          problems.push({ path: `apps.${name}.domains.${i}`, ...locate(['apps', name, 'domains', i]), message: `bare name "${d}" needs platformDomain to be set` });
          return;
        }
        fqdn = `${fqdn}.${cfg.platformDomain.toLowerCase()}`;
      }
      const owner = claimed.get(fqdn);
      if (owner !== undefined && owner !== name) {
        problems.push({ path: `apps.${name}.domains.${i}`, ...locate(['apps', name, 'domains', i]), message: `domain "${fqdn}" is already claimed by app "${owner}"` });
        return;
      }
      if (owner === undefined) domains.push(fqdn);
      claimed.set(fqdn, name);
    });
    const versions: VersionSpec[] = Object.entries(a.versions).map(([vname, v]) => ({
      name: vname,
      weight: v.weight,
      endpoints: v.endpoints.map((e) => parseHostPort(e) as EndpointSpec),
    }));
    const sslEnforce = a.tls.sslEnforce ?? cfg.tls.sslEnforce;
    if (sslEnforce && !cfg.listen.https) {
      problems.push({ path: `apps.${name}.tls.sslEnforce`, ...locate(a.tls.sslEnforce === undefined ? ['tls', 'sslEnforce'] : ['apps', name, 'tls', 'sslEnforce']), message: 'needs listen.https (nowhere to redirect to)' });
    }
    const hsts = a.tls.hsts ?? cfg.tls.hsts;
    const handling: { -readonly [K in keyof AppHandling]: AppHandling[K] } = {};
    if (a.bodySize !== undefined) handling.bodySize = a.bodySize;
    if (a.compression !== undefined) handling.compression = a.compression;
    const pages = readPages(a.errorPages, ['apps', name, 'errorPages']);
    if (pages !== undefined) handling.errorPages = pages;
    const endpointHealth = appEndpointHealth(a);
    apps.push({
      name,
      domains,
      versions,
      loadBalancing: a.loadBalancing,
      tls: share({
        sslEnforce,
        hsts: hsts === false ? undefined : hsts,
        acme: a.tls.acme,
        certificates: a.tls.certificates.map((c) => ({ ...files(c), app: name })),
      }),
      policy: share({
        allow: [...new Set(a.allow)],
        maintenance: a.maintenance,
        connectTimeout: a.timeouts.connect,
        readTimeout: a.timeouts.read,
      }),
      versionPick: share({
        sticky: a.sticky,
        header: a.versionHeader === false ? undefined : { allowFrom: a.versionHeader === true ? [] : [...new Set(a.versionHeader.allowFrom)] },
      }),
      ...(Object.keys(handling).length > 0 ? { handling } : {}),
      ...(endpointHealth !== undefined ? { endpointHealth } : {}),
      source: 'file',
    });
  }
  if (cfg.tls.acme?.caBundle && !existsSync(path.resolve(dir, cfg.tls.acme.caBundle))) {
    problems.push({ path: 'tls.acme.caBundle', ...locate(['tls', 'acme', 'caBundle']), message: `file not found: ${path.resolve(dir, cfg.tls.acme.caBundle)}` });
  }
  if (cfg.admin.tokenFile && !existsSync(path.resolve(dir, cfg.admin.tokenFile))) {
    problems.push({ path: 'admin.tokenFile', ...locate(['admin', 'tokenFile']), message: `file not found: ${path.resolve(dir, cfg.admin.tokenFile)}` });
  }
  if (cfg.sticky.secretFile && !existsSync(path.resolve(dir, cfg.sticky.secretFile))) {
    problems.push({ path: 'sticky.secretFile', ...locate(['sticky', 'secretFile']), message: `file not found: ${path.resolve(dir, cfg.sticky.secretFile)}` });
  }
  const errorPages = readPages(cfg.errorPages, ['errorPages']);
  if (cfg.tls.acme && !cfg.listen.https) {
    problems.push({ path: 'tls.acme', ...locate(['tls', 'acme']), message: 'needs listen.https (certificates are served there)' });
  }
  if (problems.length > 0) throw new ConfigError('FW_CONFIG_INVALID', file, problems);

  apps.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  const stateFile = cfg.stateFile
    ? path.resolve(dir, cfg.stateFile)
    : path.join(dir, `${path.basename(file).replace(/\.ya?ml$/i, '')}.state.json`);
  return {
    file,
    stateFile,
    logLevel: cfg.log.level,
    apps,
    settings: {
      listen: { http: cfg.listen.http, admin: cfg.listen.admin, https: cfg.listen.https, builder: cfg.listen.builder },
      platformDomain: cfg.platformDomain?.toLowerCase(),
      timeouts: cfg.timeouts,
      limits: cfg.limits,
      shutdown: cfg.shutdown,
      accessLog: cfg.log.access,
      requestLogs: { perApp: cfg.log.perApp, ship: cfg.log.ship },
      ...(errorPages !== undefined ? { errorPages } : {}),
      ...(cfg.defaultService !== undefined ? { defaultApp: cfg.defaultService.app } : {}),
      disableServerTokens: cfg.disableServerTokens,
      requestIDs: cfg.requestIDs,
      compression: cfg.compression,
      outlierDetection: cfg.outlierDetection,
      retries: cfg.retries,
      sticky: { secret: cfg.sticky.secret, secretFile: cfg.sticky.secretFile ? path.resolve(dir, cfg.sticky.secretFile) : undefined },
      admin: { tokenFile: cfg.admin.tokenFile ? path.resolve(dir, cfg.admin.tokenFile) : undefined, tokenSecret: cfg.admin.tokenSecret },
      kubernetes: {
        domainPolicy: cfg.kubernetes.domainPolicy?.map((rule) => ({
          namespaces: rule.namespaces,
          domains: rule.domains.map((d) => d.toLowerCase().replace(/\.$/, '')),
        })),
      },
      tcp: Object.entries(cfg.tcp).map(([name, r]) => ({
        name,
        listen: r.listen,
        endpoints: r.endpoints.map((e) => parseHostPort(e) as EndpointSpec),
        connectTimeout: r.connectTimeout,
        idleTimeout: r.idleTimeout,
        service: r.service,
        servicePort: r.servicePort === undefined ? undefined : String(r.servicePort),
        ...(r.sendProxyProtocol !== undefined ? { sendProxyProtocol: r.sendProxyProtocol } : {}),
      })),
      trustedProxies: [...new Set(cfg.trustedProxies)],
      proxyProtocol: cfg.proxyProtocol,
      whitelist: { defaultWhitelist: [...new Set(cfg.defaultWhitelist)], mode: cfg.whitelistMode, enforce: cfg.enforceWhitelists },
      tls: {
        storage: path.resolve(dir, cfg.tls.storage),
        keyType: cfg.tls.keyType,
        certificates: cfg.tls.certificates.map(files),
        platformCertificate: cfg.tls.platformCertificate ? files(cfg.tls.platformCertificate) : undefined,
        http2: cfg.tls.http2,
        acme: cfg.tls.acme && {
          ...cfg.tls.acme,
          email: cfg.tls.acme.email,
          caBundle: cfg.tls.acme.caBundle ? path.resolve(dir, cfg.tls.acme.caBundle) : undefined,
        },
      },
    },
  };
}

/** An app's `outlierDetection`, `healthCheck` and `retries`, with the keys it does not set left out (they mean the router-wide ones). */
function appEndpointHealth(a: ConfigFile['apps'][string]): AppEndpointHealth | undefined {
  const health: { -readonly [K in keyof AppEndpointHealth]: AppEndpointHealth[K] } = {};
  if (a.outlierDetection !== undefined) health.outlierDetection = definedOnly(a.outlierDetection);
  if (a.healthCheck !== undefined) health.healthCheck = a.healthCheck;
  if (a.retries !== undefined) {
    const { attempts, budget } = a.retries;
    health.retries = definedOnly({ attempts, budget: budget === false || budget === undefined ? budget : definedOnly(budget) });
  }
  return Object.keys(health).length > 0 ? health : undefined;
}

function definedOnly<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Largest error page file, in bytes (each is held in memory, per app that names it). */
const MAX_PAGE_SIZE = 256 * 1024;

type Locate = (keyPath: readonly PropertyKey[], key?: boolean) => { line: number | undefined; column: number | undefined };

function zodProblems(error: ZodError, raw: unknown, locate: Locate): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const keyPath = [...issue.path, key];
        problems.push({ path: keyPath.join('.'), ...locate(keyPath, true), message: 'unknown key' });
      }
      continue;
    }
    let message = issue.message;
    if (issue.code === 'invalid_type' && valueAt(raw, issue.path) === undefined) message = `is required (${message})`;
    else if (issue.code === 'invalid_type' && message.startsWith('Invalid input')) message = `must be a ${issue.expected}`;
    // A bad record key (app or version name) is reported on the key itself.
    const onKey = issue.code === 'invalid_key';
    if (onKey) message = issue.issues[0]?.message ?? message;
    problems.push({ path: issue.path.join('.') || '(top level)', ...locate(issue.path, onKey), message });
  }
  return problems;
}

function valueAt(root: unknown, keyPath: readonly PropertyKey[]): unknown {
  let v = root;
  for (const seg of keyPath) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/** The YAML node at `keyPath` (the key node when `key`), or the deepest existing ancestor. */
function findNode(doc: Document, keyPath: readonly PropertyKey[], key: boolean): YamlNode | undefined {
  let node: unknown = doc.contents;
  let found: YamlNode | undefined = doc.contents ?? undefined;
  for (let i = 0; i < keyPath.length; i++) {
    const seg = keyPath[i];
    const last = i === keyPath.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(seg));
      if (!pair) return found;
      if (last && key && isScalar(pair.key)) return pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
    } else {
      return found;
    }
    if (node && typeof node === 'object' && 'range' in node) found = node as YamlNode;
  }
  return found;
}
