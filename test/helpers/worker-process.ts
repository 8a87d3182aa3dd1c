/** A real worker process (`node dist/src/jobs/worker-cli.js`, what `npm run worker` runs), with its output captured. */
import { ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  /** Resolves when the output matches. */
  waitForOutput: (pattern: RegExp, timeoutMs?: number) => Promise<void>;
  stop: () => Promise<number | null>;
}

export function startWorkerProcess(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, [resolve(__dirname, '../../dist/src/jobs/worker-cli.js')], {
    env: { ...process.env, NODE_ENV: 'production', APL_MERGE_BACKEND: 'wasm', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const listeners = new Set<() => void>();
  const append = (chunk: Buffer) => {
    text += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const waitForOutput = (pattern: RegExp, timeoutMs = 60000) =>
    new Promise<void>((done, fail) => {
      const check = () => {
        if (!pattern.test(text)) return;
        listeners.delete(check);
        clearTimeout(timer);
        done();
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        fail(new Error(`worker output never matched ${pattern}:\n${text}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  return {
    child,
    output: () => text,
    exited,
    waitForOutput,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
