/**
 * @module
 * Plain-text tables for the CLI: `fairway routes` (one row per host in matching order)
 * and the column layout other commands share.
 */
import type { RouteRow, UnroutedRow } from '../admin/admin-server.js';

/** The routes table, then the claimed hosts that are not routed (host conflicts, domain policy), if any. */
export function formatRoutes(rows: readonly RouteRow[], unrouted: readonly UnroutedRow[] = []): string {
  const routes = formatTable(
    ['HOST', 'MATCH', 'APP', 'VERSIONS (weight, endpoints)'],
    rows.map((r) => [
      r.host,
      r.match,
      r.app,
      r.versions.map((v) => `${v.name}=${v.weight} (${v.endpoints} endpoint${v.endpoints === 1 ? '' : 's'})`).join(', ') || '(no versions)',
    ]),
  );
  if (unrouted.length === 0) return routes;
  return `${routes}\nNot routed:\n${formatTable(['HOST', 'CLAIMED BY', 'REASON'], unrouted.map((u) => [u.host, u.object, `${u.reason}: ${u.message}`]))}`;
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
