/**
 * @module
 * Reads the admin token from `admin.tokenFile` (a plain file, or a mounted Secret). The
 * token is the file's content without surrounding whitespace (a trailing newline, as
 * `kubectl` and editors leave, is not part of it). Errors name the file and what is
 * wrong, never the content.
 */
import { readFileSync } from 'node:fs';
import { FairwayError } from '../errors.js';
import { tokenProblem } from './admin-auth.js';

/** The token in `file`; throws FW_CONFIG_INVALID (`admin.tokenFile: …`) when it cannot be used. */
export function readAdminTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FairwayError('FW_CONFIG_INVALID', `admin.tokenFile: ${code === 'ENOENT' ? `file not found: ${file}` : `cannot read ${file} (${code ?? 'error'})`}`, { file });
  }
  const token = text.trim();
  const problem = tokenProblem(token);
  if (problem !== undefined) throw new FairwayError('FW_CONFIG_INVALID', `admin.tokenFile: ${file} ${problem}`, { file });
  return token;
}
