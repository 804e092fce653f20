/**
 * @module
 * Tiny HTTP backends for the demo (`fairway demo`, `npm start`): one per loopback
 * endpoint in the config, each answering with its app, version and address so a user
 * can watch the weighted split with curl. Not used when serving real apps.
 */
import { createServer, type Server } from 'node:http';
import { endpointKey, type AppSpec } from '../model.js';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export interface DemoBackends {
  readonly addresses: string[];
  close(): Promise<void>;
}

export async function startDemoBackends(apps: readonly AppSpec[]): Promise<DemoBackends> {
  const servers: Server[] = [];
  const addresses: string[] = [];
  for (const app of apps) {
    for (const version of app.versions) {
      for (const e of version.endpoints) {
        if (!LOOPBACK.has(e.host)) continue;
        const key = endpointKey(e);
        const server = createServer((req, res) => {
          const body = `Hello from ${app.name} ${version.name} (${key})\nrequest: ${req.method} ${req.url}  host: ${req.headers.host}  id: ${req.headers['x-request-id']}\n`;
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-demo-version': version.name });
          res.end(body);
        });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(e.port, e.host, () => resolve());
        });
        servers.push(server);
        addresses.push(key);
      }
    }
  }
  return {
    addresses,
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
    },
  };
}
