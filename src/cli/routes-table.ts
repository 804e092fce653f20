/**
 * @module
 * Plain-text table for `fairway routes`: one row per host in matching order.
 */
import type { RouteRow } from '../admin/admin-server.js';

export function formatRoutes(rows: readonly RouteRow[]): string {
  const table = [['HOST', 'MATCH', 'APP', 'VERSIONS (weight, endpoints)']];
  for (const r of rows) {
    const versions = r.versions.map((v) => `${v.name}=${v.weight} (${v.endpoints} endpoint${v.endpoints === 1 ? '' : 's'})`).join(', ');
    table.push([r.host, r.match, r.app, versions || '(no versions)']);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
