/**
 * What every job attempt does around its own work: skip a job that has already ended, mark it
 * RUNNING (saying which attempt), clear what a killed attempt left, record progress, and on
 * failure tell apart a cancel (clean up, nothing more), an error no retry can fix (FAILED now) and
 * one worth retrying (recorded on the row, then thrown for pg-boss to retry).
 */
import { AbortError } from '../engine/errors';
import { FINAL_STATUSES, holdsLease, JobKind, jobState, recordAttempt, takeLease, transitionJob } from '../store/jobs';
import { workerAlive } from '../store/workers';
import { RegistryError } from '../store/registry';
import { AttemptSuperseded, JobAttempt, JobContext, WorkerStopping } from './context';
import { isPermanent, jobOutputDirectory, removeJobOutput, removeStaleStaging } from './outputs';
import { progressRecorder, ProgressRecorder } from './progress';
import { passPoint, PausePoint } from './pause-points';

export interface JobRun {
  /** The job's own output directory (absent until published). */
  outDir: string;
  recorder: ProgressRecorder;
  /** Aborted by a cancel, by pg-boss giving up on the attempt, or by another attempt taking the job over. */
  signal: AbortSignal;
  /** This attempt's lease: pass it to every transitionJob. */
  lease: string;
  /** Throws AttemptSuperseded (and stops the attempt) when another attempt owns the job now: call it before publishing. */
  checkLease: () => Promise<void>;
  /** Passes a named point between steps: held there when fault injection asks, stopped if cancelled meanwhile. */
  pass: (point: PausePoint) => Promise<void>;
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
  const taken = await takeLease(prisma, kind, id, context.workerName, attempt.retryCount > 0 ? `running again on ${context.workerName} (attempt ${attempt.retryCount + 1})` : `running on ${context.workerName}`);
  if (!taken) return;
  const { lease } = taken;
  await recordAttempt(prisma, kind, id, { attempts: { increment: 1 } });
  const outDir = jobOutputDirectory(context.outputRoot, kind, id);
  // A previous attempt's staging is removed only when its worker is gone: a live one (stalled past
  // its heartbeat) is still writing there, and cleans up after itself once it sees it lost the job.
  if (!taken.previousWorker || !(await workerAlive(prisma, taken.previousWorker).catch(() => true))) removeStaleStaging(outDir);
  else if (taken.previousWorker !== context.workerName) context.log(`${kind} ${id}: taken over from ${taken.previousWorker}, which is still alive; its staging is left to it`);
  // A write that finds the job no longer ours: cancelled (stop), or taken over by another attempt (stop, touching nothing of its).
  const whyStopped = async () => ((await jobState(prisma, kind, id))?.status === 'RUNNING' ? new AttemptSuperseded(id) : undefined);
  const onStopped = () => void whyStopped().then((reason) => stop.abort(reason), () => stop.abort());
  const recorder = progressRecorder(prisma, kind, id, onStopped, (err) => context.log(`${kind} ${id}: progress not recorded: ${err.message}`), lease);
  const checkLease = async () => {
    if (await holdsLease(prisma, kind, id, lease)) return;
    const reason = (await whyStopped()) ?? new AbortError('the job is no longer running');
    stop.abort(reason);
    throw reason;
  };
  try {
    const signal = AbortSignal.any([attempt.signal, stop.signal]);
    const pass = (point: PausePoint) => passPoint(context.pauses ?? new Map(), kind, id, point, signal, context.log);
    await pass('started');
    const completed = await work({ outDir, recorder, signal, lease, checkLease, pass });
    if (!completed && (await whyStopped()) instanceof AttemptSuperseded) {
      context.log(`${kind} ${id}: superseded by another attempt; its output is left alone`);
      return;
    }
    if (!completed) removeJobOutput(outDir);
    context.log(`${kind} ${id}: ${completed ? 'COMPLETED' : 'cancelled while running; output discarded'}`);
  } catch (err) {
    await recorder.flush();
    if (stop.signal.reason instanceof AttemptSuperseded || err instanceof AttemptSuperseded) {
      // The job belongs to another attempt: this one stops, and its staging went with the engine's abort.
      context.log(`${kind} ${id}: superseded by another attempt; stopped, its files left alone`);
      return;
    }
    if (stop.signal.reason instanceof WorkerStopping) {
      // Back to QUEUED, owned by the queue again; thrown so that the queue retries it on another worker.
      removeJobOutput(outDir);
      await transitionJob(prisma, kind, id, { from: ['RUNNING'], to: 'QUEUED', message: stop.signal.reason.message, lease });
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
      await transitionJob(prisma, kind, id, { from: ['RUNNING'], to: 'FAILED', message: `failed: ${message}`, error: message, lease });
      context.log(`${kind} ${id}: FAILED: ${message}`);
      return;
    }
    await recordAttempt(prisma, kind, id, { error: message });
    throw err;
  }
}
