/**
 * @module
 * Weights set through the admin API (`PUT /v1/apps/{app}/weights`, `fairway weights`),
 * persisted to a JSON state file so they survive a restart.
 *
 * Contract: an override records the provider's weights it replaced (`base`). It applies
 * while the provider still says `base`; once the provider's own weights for that app
 * change (someone edited the file), the provider wins and the override is dropped.
 * `set()` resolves only after the state file is written (write to a temp file, then
 * rename), so an acknowledged change is never lost by a crash.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FairwayError } from '../errors.js';
import type { AppSpec } from '../model.js';

type Weights = Record<string, number>;

interface Override {
  readonly weights: Weights;
  readonly base: Weights;
  readonly at: string;
}

interface StateFile {
  readonly version: 1;
  readonly weights: Record<string, Override>;
}

export class WeightOverrides {
  readonly file: string | undefined;
  #overrides = new Map<string, Override>();
  #writing: Promise<void> = Promise.resolve();

  /** Without `file`, overrides live in memory only. */
  constructor(file?: string) {
    this.file = file;
  }

  /** Reads the state file. A missing file is empty; an unreadable one throws FW_STATE_READ (callers log and go on). */
  load(): void {
    if (!this.file) return;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new FairwayError('FW_STATE_READ', `cannot read state file ${this.file}: ${(err as Error).message}`);
    }
    try {
      const parsed = JSON.parse(text) as StateFile;
      if (parsed?.version !== 1 || typeof parsed.weights !== 'object') throw new Error('not a Fairway state file (version 1)');
      this.#overrides = new Map(Object.entries(parsed.weights));
    } catch (err) {
      throw new FairwayError('FW_STATE_READ', `cannot parse state file ${this.file}: ${(err as Error).message}`);
    }
  }

  /**
   * The app with its override applied, if one applies. Returns `stale: true` when the
   * provider changed the app's weights since the override: the caller then calls
   * {@link drop}.
   */
  apply(app: AppSpec): { app: AppSpec; stale: boolean } {
    const o = this.#overrides.get(app.name);
    if (!o) return { app, stale: false };
    if (!sameWeights(weightsOf(app), o.base)) return { app, stale: true };
    const versions = app.versions.map((v) => (v.name in o.weights ? { ...v, weight: o.weights[v.name]! } : v));
    return { app: { ...app, versions }, stale: false };
  }

  /** Records `weights` (a full map of version → weight) over the provider's `providerApp`, and persists. */
  async set(providerApp: AppSpec, weights: Weights): Promise<void> {
    const next = new Map(this.#overrides);
    next.set(providerApp.name, { weights, base: weightsOf(providerApp), at: new Date().toISOString() });
    await this.#persist(next);
    this.#overrides = next;
  }

  /** Forgets the overrides of these apps, and persists. */
  async drop(apps: readonly string[]): Promise<void> {
    const next = new Map(this.#overrides);
    for (const a of apps) next.delete(a);
    await this.#persist(next);
    this.#overrides = next;
  }

  has(app: string): boolean {
    return this.#overrides.has(app);
  }

  /** Writes are serialised so the file always holds the latest complete state. */
  #persist(state: Map<string, Override>): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    const body: StateFile = { version: 1, weights: Object.fromEntries(state) };
    const run = this.#writing.then(async () => {
      try {
        mkdirSync(path.dirname(file), { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        await writeFile(tmp, JSON.stringify(body, null, 2) + '\n');
        await rename(tmp, file);
      } catch (err) {
        throw new FairwayError('FW_STATE_WRITE', `cannot write state file ${file}: ${(err as Error).message}`);
      }
    });
    this.#writing = run.catch(() => {});
    return run;
  }
}

function weightsOf(app: AppSpec): Weights {
  return Object.fromEntries(app.versions.map((v) => [v.name, v.weight]));
}

function sameWeights(a: Weights, b: Weights): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
