/**
 * @module
 * Plain-text table for `fairway certs`: one row per host.
 */
import type { CertificateRow } from '../tls/certificate-manager.js';
import { formatTable } from './routes-table.js';

export function formatCertificates(rows: readonly CertificateRow[]): string {
  const day = (iso: string | undefined) => (iso ? iso.slice(0, 16).replace('T', ' ') : '-');
  return formatTable(
    ['HOST', 'SOURCE', 'ISSUER', 'EXPIRES (UTC)', 'NEXT RENEWAL', 'STATUS'],
    rows.map((r) => [
      r.host,
      r.source,
      r.issuer?.replace(/^.*CN=/, '') ?? '-',
      day(r.notAfter),
      day(r.nextRenewal),
      r.lastError ? `${r.expiring ? 'EXPIRING, ' : ''}${r.lastError.code}: ${r.lastError.message}` : r.source === 'none' ? 'no certificate (the default is served)' : 'ok',
    ]),
  );
}
