/**
 * @module
 * `host:port` strings as written in the config: `127.0.0.1:3001`, `[::1]:3001`,
 * `backend.internal:80`. Returns `undefined` for anything else so callers can report
 * the exact key.
 */
import { isIP } from 'node:net';

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?(\.[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?)*$/i;

export interface HostPort {
  host: string;
  port: number;
}

/** Parses `host:port`. `allowZero` accepts port 0 (an ephemeral port, for listeners). */
export function parseHostPort(value: string, allowZero = false): HostPort | undefined {
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0 || value[close + 1] !== ':') return undefined;
    host = value.slice(1, close);
    portText = value.slice(close + 2);
    if (isIP(host) !== 6) return undefined;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon <= 0) return undefined;
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (isIP(host) !== 4 && !HOSTNAME.test(host)) return undefined;
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !allowZero)) return undefined;
  return { host: host.toLowerCase(), port };
}
