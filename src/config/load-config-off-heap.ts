/**
 * @module
 * Config loading that keeps a large file's parse off the router's heap:
 * {@link loadConfigOffHeap} and {@link parseConfigOffHeap} run {@link loadConfigFile} /
 * {@link parseConfig} in a worker thread when the file has at least
 * {@link THREAD_MIN_BYTES}, and hand back what they return or throw (the result is
 * structured-cloned, which keeps the parts apps share shared); smaller files are parsed in
 * the process.
 *
 * Why: parsing and validating a file of 10,000 apps (1.2 MB) makes over 100 MB of objects
 * that die at the end of the parse (the YAML document with every node's position, the
 * parser's tokens, zod's copy). They live through that one synchronous call, so V8
 * promotes them into the old generation, and once the heap has grown to hold them the
 * process keeps that memory (no full collection comes for a long time in an idle router):
 * 220 MB of RSS after loading such a file in the process, 75 MB when it is loaded in a
 * thread, whose heap goes away with the thread. A thread costs ~0.2 s (it loads the
 * parser afresh), which small files, parsed in milliseconds, are spared.
 */
import { Worker } from 'node:worker_threads';
import { statSync } from 'node:fs';
import { ConfigError, loadConfigFile, parseConfig, type ConfigProblem, type LoadedConfig } from './load-config.js';

/** Files of at least this many bytes (~2,000 apps, whose parse makes ~25 MB of garbage) are parsed in a thread. */
export const THREAD_MIN_BYTES = 256 * 1024;

/** What the thread posts back: the config, the ConfigError's parts, or another failure's message. */
type Outcome =
  | { readonly ok: LoadedConfig }
  | { readonly config: { readonly code: ConfigError['code']; readonly file: string; readonly problems: ConfigProblem[] } }
  | { readonly failed: string };

/** The thread's code: loads `load-config` from beside this module (a TypeScript loader of the parent applies in the thread too). */
const THREAD = `
import { parentPort, workerData } from 'node:worker_threads';
const { ConfigError, loadConfigFile, parseConfig } = await import(workerData.module);
let outcome;
try {
  outcome = { ok: workerData.text === undefined ? loadConfigFile(workerData.file) : parseConfig(workerData.text, workerData.file) };
} catch (err) {
  outcome = err instanceof ConfigError ? { config: { code: err.code, file: err.file, problems: err.problems } } : { failed: String(err?.stack ?? err) };
}
parentPort.postMessage(outcome);
`;

/** {@link loadConfigFile}, in a worker thread when the file has at least `threadMinBytes`; rejects with the same {@link ConfigError}. */
export async function loadConfigOffHeap(file: string, threadMinBytes = THREAD_MIN_BYTES): Promise<LoadedConfig> {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return loadConfigFile(file); // throws the ConfigError for a file that cannot be read
  }
  return size >= threadMinBytes ? inThread(file, undefined) : loadConfigFile(file);
}

/** {@link parseConfig}, in a worker thread when `text` has at least `threadMinBytes`; rejects with the same {@link ConfigError}. */
export async function parseConfigOffHeap(text: string, file: string, threadMinBytes = THREAD_MIN_BYTES): Promise<LoadedConfig> {
  return Buffer.byteLength(text) >= threadMinBytes ? inThread(file, text) : parseConfig(text, file);
}

function inThread(file: string, text: string | undefined): Promise<LoadedConfig> {
  const module = new URL('./load-config.js', import.meta.url).href;
  return new Promise((resolve, reject) => {
    const thread = new Worker(THREAD, { eval: true, workerData: { module, file, text } });
    let answered = false;
    thread.once('message', (outcome: Outcome) => {
      answered = true;
      if ('ok' in outcome) resolve(outcome.ok);
      else if ('config' in outcome) reject(new ConfigError(outcome.config.code as ConstructorParameters<typeof ConfigError>[0], outcome.config.file, outcome.config.problems));
      else reject(new Error(outcome.failed));
    });
    thread.once('error', (err) => {
      answered = true;
      reject(err);
    });
    thread.once('exit', (code) => {
      if (!answered) reject(new Error(`the config loading thread exited with code ${code} and no answer`));
    });
  });
}
