/**
 * Cancels that race a job's end, against a real PostgreSQL, on the code paths the worker and the
 * API run: a cancel that arrives as the job completes says the job finished first; a job whose
 * completion finds it cancelled meanwhile discards its output.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { cancelJob } from '../src/jobs/requests';
import { runAttempt } from '../src/jobs/job-runner';
import { JobContext } from '../src/jobs/context';
import { transitionJob } from '../src/store/jobs';
import { startTestPlatform, TestPlatform } from './helpers/platform';

let platform: TestPlatform;
beforeAll(async () => {
  platform = await startTestPlatform();
});
afterAll(() => platform?.stop());

const newMerge = (status: 'QUEUED' | 'RUNNING') => platform.prisma.merge.create({ data: { method: 'linear', parameters: {}, status } });

it('a cancel that loses the race to completion says the job finished before it could be cancelled', async () => {
  const merge = await newMerge('RUNNING');
  // Another connection holds the row, completes the job, and commits once the cancel is waiting on it.
  const other = new Client({ connectionString: platform.databaseUrl });
  await other.connect();
  await other.query('BEGIN');
  await other.query('SELECT id FROM merges WHERE id = $1 FOR UPDATE', [merge.id]);
  const cancel = cancelJob(platform.prisma, platform.queue, merge.id).then(
    () => 'cancelled',
    (err: Error) => err.message,
  );
  await new Promise((r) => setTimeout(r, 300));
  await other.query(`UPDATE merges SET status = 'COMPLETED' WHERE id = $1`, [merge.id]);
  await other.query('COMMIT');
  await other.end();
  expect(await cancel).toBe(`job ${merge.id} finished before it could be cancelled`);
  expect((await platform.prisma.merge.findUniqueOrThrow({ where: { id: merge.id } })).status).toBe('COMPLETED');
});

it('a job cancelled while it completes discards its output and is not registered', async () => {
  const merge = await newMerge('QUEUED');
  const log: string[] = [];
  const context: JobContext = { prisma: platform.prisma, outputRoot: platform.outputs, backend: 'wasm', workerName: 'test:1', log: (line) => log.push(line) };
  let written = '';
  await runAttempt(context, 'merge', { id: merge.id, retryCount: 0, signal: new AbortController().signal }, new AbortController(), async ({ outDir, lease }) => {
    // The work is done and published…
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'model.safetensors'), 'done');
    written = outDir;
    // …when a cancel lands, just before the completing transaction.
    await cancelJob(platform.prisma, platform.queue, merge.id);
    return transitionJob(platform.prisma, 'merge', merge.id, { from: ['RUNNING'], to: 'COMPLETED', message: 'merged', lease });
  });
  expect(log).toContain(`merge ${merge.id}: cancelled while running; output discarded`);
  expect(existsSync(written)).toBe(false);
  expect((await platform.prisma.merge.findUniqueOrThrow({ where: { id: merge.id } })).status).toBe('CANCELLED');
});
