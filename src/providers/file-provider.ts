/**
 * @module
 * The file provider: the YAML config file as a source of desired state, watched for
 * changes. Editors save in place or by renaming a new file over the old one, so the
 * directory is watched and events are filtered by name; changes are debounced, and a
 * content hash drops saves that changed nothing. A bad file is reported through
 * `sink.error()` and nothing else is sent, so the last good state keeps serving.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseConfigOffHeap } from '../config/load-config-off-heap.js';
import { ConfigError, type LoadedConfig } from '../config/load-config.js';
import type { Logger } from '../observability/logger.js';
import type { Provider, ProviderSink } from './provider.js';

export interface FileProviderOptions {
  /** The config already loaded at start (so the file is not parsed twice). */
  readonly initial?: LoadedConfig;
  /** Quiet time after the last change event before reloading, ms. */
  readonly debounceMs?: number;
  readonly logger: Logger;
}

export class FileProvider implements Provider {
  readonly name = 'file';
  readonly file: string;
  readonly #options: FileProviderOptions;
  #sink: ProviderSink | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #hash = '';
  #loading: Promise<void> = Promise.resolve();

  constructor(file: string, options: FileProviderOptions) {
    this.file = path.resolve(file);
    this.#options = options;
  }

  async start(sink: ProviderSink): Promise<void> {
    this.#sink = sink;
    const dir = path.dirname(this.file);
    const base = path.basename(this.file);
    // `..data` and `..<timestamp>` entries: a Kubernetes ConfigMap volume swaps them (a
    // symlink rename) when the ConfigMap changes; the file's own name sees no event then.
    this.#watcher = watch(dir, { persistent: false }, (_event, name) => {
      if (name === null || name === base || name.startsWith('..')) this.#changed();
    });
    this.#watcher.on('error', (err) => this.#options.logger.error({ err: err.message, file: this.file }, 'config file watch failed'));
    if (this.#options.initial) {
      this.#hash = hashOf(await readFile(this.file, 'utf8').catch(() => ''));
      sink.update(stateOf(this.#options.initial));
    } else {
      await this.reload();
    }
  }

  /** Reads and applies the file now (also what a change event triggers). */
  reload(): Promise<void> {
    this.#loading = this.#loading.then(() => this.#load());
    return this.#loading;
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#sink = undefined;
    await this.#loading;
  }

  #changed(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.reload(), this.#options.debounceMs ?? 50);
  }

  async #load(): Promise<void> {
    const sink = this.#sink;
    if (!sink) return;
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      // Mid-rename the file can be briefly missing; the rename's own event reloads again.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      sink.error(new ConfigError('FW_CONFIG_READ', this.file, [{ path: '', line: undefined, column: undefined, message: (err as Error).message }]));
      return;
    }
    const hash = hashOf(text);
    if (hash === this.#hash) return;
    this.#hash = hash;
    let loaded: LoadedConfig;
    try {
      // A large file in a thread, as at start (see load-config-off-heap.ts): a reload of 10,000 apps would otherwise grow this heap by 100+ MB.
      loaded = await parseConfigOffHeap(text, this.file);
    } catch (err) {
      // Not a problem of the file (the thread could not run): reported the same way, the last good state keeps serving.
      sink.error(err instanceof ConfigError ? err : new ConfigError('FW_CONFIG_READ', this.file, [{ path: '', line: undefined, column: undefined, message: (err as Error).message }]));
      return;
    }
    this.#options.logger.info({ file: this.file }, 'config file loaded');
    sink.update(stateOf(loaded));
  }
}

function stateOf(config: LoadedConfig) {
  return { apps: config.apps, settings: config.settings };
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
