/**
 * @module
 * The file-mode {@link CutoverStore}: one JSON file next to the weights state file,
 * `<state file name without .state.json or .json>.cutovers.json` (for the default
 * `fairway.state.json`: `fairway.cutovers.json`), holding the latest cutover of every app:
 *
 * ```json
 * { "version": 1, "cutovers": { "web": { "id": "…", "plan": {…}, "state": "running", … } } }
 * ```
 *
 * A separate file keeps the weights state file's format (version 1) unchanged. The two
 * are written one after the other, never together: while a cutover runs, its record is
 * the authority for the weights of its two versions (a restarted router sets them again
 * from the record), so a crash between the two writes loses nothing.
 *
 * Writes are serialised and atomic (a temp file renamed over the old one), so the file
 * always holds a complete state and an acknowledged save survives a crash.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FairwayError } from '../errors.js';
import type { CutoverRecord, CutoverStore } from './cutover-store.js';

interface CutoverFile {
  readonly version: 1;
  readonly cutovers: Record<string, CutoverRecord>;
}

/** The cutover file that goes with a weights state file. */
export function cutoverFileFor(stateFile: string): string {
  const base = path.basename(stateFile).replace(/(\.state)?\.json$/i, '');
  return path.join(path.dirname(stateFile), `${base}.cutovers.json`);
}

export class FileCutoverStore implements CutoverStore {
  readonly file: string;
  #records = new Map<string, CutoverRecord>();
  #writing: Promise<void> = Promise.resolve();

  constructor(file: string) {
    this.file = file;
  }

  async load(): Promise<CutoverRecord[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new FairwayError('FW_STATE_READ', `cannot read cutover state file ${this.file}: ${(err as Error).message}`);
    }
    try {
      const parsed = JSON.parse(text) as CutoverFile;
      if (parsed?.version !== 1 || typeof parsed.cutovers !== 'object' || parsed.cutovers === null) throw new Error('not a Fairway cutover file (version 1)');
      this.#records = new Map(Object.entries(parsed.cutovers));
    } catch (err) {
      throw new FairwayError('FW_STATE_READ', `cannot parse cutover state file ${this.file}: ${(err as Error).message}`);
    }
    return [...this.#records.values()];
  }

  save(record: CutoverRecord): Promise<void> {
    const file = this.file;
    const run = this.#writing.then(async () => {
      const next = new Map(this.#records);
      next.set(record.plan.app, record);
      const body: CutoverFile = { version: 1, cutovers: Object.fromEntries(next) };
      try {
        await mkdir(path.dirname(file), { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        await writeFile(tmp, JSON.stringify(body, null, 2) + '\n');
        await rename(tmp, file);
      } catch (err) {
        throw new FairwayError('FW_STATE_WRITE', `cannot write cutover state file ${file}: ${(err as Error).message}`);
      }
      this.#records = next;
    });
    this.#writing = run.catch(() => {});
    return run;
  }
}
