/**
 * What every job attempt does around its own work: skip a job that has already ended, mark it
 * RUNNING (saying which attempt), clear what a killed attempt left, record progress, and on
 * failure tell apart a cancel (clean up, nothing more), an error no retry can fix (FAILED now) and
 * one worth retrying (recorded on the row, then thrown for pg-boss to retry).
 */
import { FINAL_STATUSES, JobKind, jobState, recordAttempt, transitionJob } from '../store/jobs';
import { RegistryError } from '../store/registry';
import { JobAttempt, JobContext, WorkerStopping } from './context';
import { isPermanent, jobOutputDirectory, removeJobOutput, removeStaleStaging } from './outputs';
import { progressRecorder, ProgressRecorder } from './progress';

export interface JobRun {
  /** The job's own output directory (absent until published). */
  outDir: string;
  recorder: ProgressRecorder;
  /** Aborted by a cancel or by pg-boss giving up on the attempt. */
  signal: AbortSignal;
}

/**
 * Runs `work` as one attempt of a job. `work` ends by completing the job with transitionJob (from
 * RUNNING), and returns whether it did; when it did not (the job was cancelled meanwhile), the
 * output is removed.
 */
export async function runAttempt(context: JobContext, kind: JobKind, attempt: JobAttempt, stop: AbortController, work: (run: JobRun) => Promise<boolean>): Promise<void> {
  const { prisma } = context;
  const id = attempt.id;
  const row = await jobState(prisma, kind, id);
  if (!row || FINAL_STATUSES.includes(row.status)) return;
  const started = await transitionJob(prisma, kind, id, {
    from: ['QUEUED', 'RUNNING'],
    to: 'RUNNING',
    message: attempt.retryCount > 0 ? `running again on ${context.workerName} (attempt ${attempt.retryCount + 1})` : `running on ${context.workerName}`,
  });
  if (!started) return;
  await recordAttempt(prisma, kind, id, { attempts: { increment: 1 } });
  const outDir = jobOutputDirectory(context.outputRoot, kind === 'merge' ? 'merges' : 'analyses', id);
  removeStaleStaging(outDir);
  const recorder = progressRecorder(prisma, kind, id, () => stop.abort(), (err) => context.log(`${kind} ${id}: progress not recorded: ${err.message}`));
  try {
    const completed = await work({ outDir, recorder, signal: AbortSignal.any([attempt.signal, stop.signal]) });
    if (!completed) removeJobOutput(outDir);
    context.log(`${kind} ${id}: ${completed ? 'COMPLETED' : 'cancelled while running; output discarded'}`);
  } catch (err) {
    await recorder.flush();
    if (stop.signal.reason instanceof WorkerStopping) {
      // Back to QUEUED, owned by the queue again; thrown so that the queue retries it on another worker.
      removeJobOutput(outDir);
      await transitionJob(prisma, kind, id, { from: ['RUNNING'], to: 'QUEUED', message: stop.signal.reason.message });
      context.log(`${kind} ${id}: handed back to the queue`);
      throw stop.signal.reason;
    }
    if (stop.signal.aborted) {
      // Cancelled: the row already says so; nothing may be left behind.
      removeJobOutput(outDir);
      context.log(`${kind} ${id}: cancelled`);
      return;
    }
    const message = (err as Error).message;
    // Whatever the attempt wrote is incomplete: a failed job leaves no output, and a retry starts clean.
    removeJobOutput(outDir);
    if (isPermanent(err) || err instanceof RegistryError) {
      await transitionJob(prisma, kind, id, { from: ['RUNNING'], to: 'FAILED', message: `failed: ${message}`, error: message });
      context.log(`${kind} ${id}: FAILED: ${message}`);
      return;
    }
    await recordAttempt(prisma, kind, id, { error: message });
    throw err;
  }
}
