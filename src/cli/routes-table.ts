/**
 * @module
 * Plain-text tables for the CLI: `fairway routes` (one row per host in matching order)
 * and the column layout other commands share.
 */
import type { RouteRow } from '../admin/admin-server.js';

export function formatRoutes(rows: readonly RouteRow[]): string {
  return formatTable(
    ['HOST', 'MATCH', 'APP', 'VERSIONS (weight, endpoints)'],
    rows.map((r) => [
      r.host,
      r.match,
      r.app,
      r.versions.map((v) => `${v.name}=${v.weight} (${v.endpoints} endpoint${v.endpoints === 1 ? '' : 's'})`).join(', ') || '(no versions)',
    ]),
  );
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
