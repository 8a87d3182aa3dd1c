/**
 * `npm run worker` (or `apl-merge worker`): migrates the database if needed, then runs jobs until
 * SIGINT/SIGTERM. Configured by DATABASE_URL, APL_MERGE_OUTPUT_DIR (default ./data/outputs),
 * APL_MERGE_WORKER_CONCURRENCY, APL_MERGE_BACKEND and the queue settings of queue.ts.
 */
import { resolve } from 'node:path';
import { databaseUrl } from '../store/client';
import { migrate } from '../store/migrate';
import { stopSignal } from './stop-signal';
import { startWorker } from './worker';

export function outputRootFromEnv(flag?: string): string {
  return resolve(flag ?? process.env.APL_MERGE_OUTPUT_DIR ?? 'data/outputs');
}

export async function workerCommand(flags: { outputDir?: string; concurrency?: string } = {}): Promise<void> {
  const stopRequested = stopSignal();
  const url = databaseUrl();
  await migrate(url);
  const concurrency = Number(flags.concurrency ?? process.env.APL_MERGE_WORKER_CONCURRENCY ?? 1);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`concurrency must be a positive integer, got "${flags.concurrency ?? process.env.APL_MERGE_WORKER_CONCURRENCY}"`);
  const worker = await startWorker({ databaseUrl: url, outputRoot: outputRootFromEnv(flags.outputDir), concurrency });
  await stopRequested;
  await worker.stop();
}

if (require.main === module) {
  workerCommand().then(
    () => process.exit(0),
    (err: Error) => {
      console.error(`worker: ${err.message}`);
      process.exit(1);
    },
  );
}
