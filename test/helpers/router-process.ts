/**
 * The built CLI (`dist/cli.js`, made by `npm test`'s pretest build) run as a child
 * process, for tests that need a separate process: exit codes, memory, restarts. Its
 * output is also kept for the log scan after the run (see log-capture.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { captureLog } from './log-capture.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `fairway ARGS` to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      captureLog(stdout);
      captureLog(stderr);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface RouterProcess {
  readonly child: ChildProcess;
  readonly http: string;
  readonly admin: string;
  /** Peak and current resident memory of the process, in bytes (from /proc). */
  memory(): { rss: number; peak: number };
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `fairway serve --config FILE --workers 1` (or `demo`) and resolves once it logs
 * that it is serving. `env` is added to this process's environment (e.g. NODE_OPTIONS).
 * One process unless `workers` asks for data-plane workers (the CLI's default is `auto`).
 * `onLine` sees every stdout line, parsed.
 */
export function startRouterProcess(
  configFile: string, command: 'serve' | 'demo' = 'serve', env: Record<string, string> = {},
  { workers = 1, onLine }: { workers?: number; onLine?: (entry: Record<string, unknown>) => void } = {},
): Promise<RouterProcess & { stderr(): string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, command, '--config', configFile, '--workers', String(workers)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      captureLog(d);
    });
    child.on('exit', (code) => reject(new Error(`router exited with ${code}: ${stderr}`)));
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      captureLog(`${line}\n`);
      const entry = JSON.parse(line) as { msg?: string; http?: string; admin?: string };
      onLine?.(entry);
      if (entry.msg !== 'fairway is serving') return;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      resolve({
        child,
        http: `http://${entry.http}`,
        admin: `http://${entry.admin}`,
        memory() {
          const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
          const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
          return { rss: kb('VmRSS'), peak: kb('VmHWM') };
        },
        stop() {
          child.kill('SIGTERM');
          return exited;
        },
        stderr: () => stderr,
      });
    });
  });
}
