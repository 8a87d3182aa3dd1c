/**
 * A worker: takes merges, analyses and evaluations off the queue and runs them with the engine. Any number of
 * workers, on any number of machines, can share one database. Each job runs with an AbortController
 * that a cancel (NOTIFY on the cancel channel) trips; jobs that fail every attempt arrive on the
 * dead-letter queue, whose handler marks their row FAILED with the last error.
 */
import { hostname } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Job } from 'pg-boss';
import { useBackend } from '../engine/tensors/backend';
import { createPrisma } from '../store/client';
import { jobState, transitionJob } from '../store/jobs';
import { beat, markStopped, registerWorker } from '../store/workers';
import { runAnalysisJob } from './analysis-job';
import { JobAttempt, JobContext, WorkerStopping } from './context';
import { runMergeJob } from './merge-job';
import { runEvaluationJob } from './evaluation-job';
import { DEAD_LETTER_QUEUE, JobData, openQueue, QUEUE_NAMES, QueueSettings, queueSettingsFromEnv } from './queue';
import { listenForCancels } from './requests';
import { pausesFromEnv } from './pause-points';
import { jobOutputDirectory, removeJobOutput, sweepOutputs } from './outputs';

export interface WorkerOptions {
  databaseUrl: string;
  outputRoot: string;
  /** Jobs run at once by this worker. Default 1: a merge already uses every core. */
  concurrency?: number;
  threads?: number;
  settings?: QueueSettings;
  /** Seconds a stopping worker lets running jobs finish before handing them back (default $APL_MERGE_DRAIN_SECONDS or 30). */
  drainSeconds?: number;
  /** Seconds between liveness beats (default $APL_MERGE_WORKER_HEARTBEAT_SECONDS or 5). */
  heartbeatSeconds?: number;
  log?: (line: string) => void;
}

export interface Worker {
  name: string;
  backend: string;
  stop(): Promise<void>;
}

type Handler = (context: JobContext, attempt: JobAttempt, stop: AbortController) => Promise<void>;

export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const backend = await useBackend();
  const prisma = createPrisma(options.databaseUrl);
  const boss = await openQueue(options.databaseUrl, options.settings ?? queueSettingsFromEnv());
  const name = `${hostname()}:${process.pid}`;
  const log = options.log ?? ((line: string) => console.log(line));
  const context: JobContext = { prisma, outputRoot: options.outputRoot, threads: options.threads, backend, workerName: name, log, pauses: pausesFromEnv() };
  // Leftovers of crashed attempts and failed jobs, from before this worker started.
  const swept = await sweepOutputs(options.outputRoot, async (kind, id) => (await jobState(prisma, kind, id))?.status);
  if (swept.length > 0) log(`removed ${swept.length} stale output(s): ${swept.join(', ')}`);
  const running = new Map<string, { kind: JobData['kind']; stop: AbortController }>();
  // Set once the worker has its liveness row: every job taken or finished is beaten at once.
  let onJobsChanged = () => undefined as void;
  // A cancel sent while the listener was disconnected is found on the job's row instead.
  const recheckCancels = async () => {
    for (const [id, job] of running) {
      const state = await jobState(prisma, job.kind, id).catch(() => undefined);
      if (state?.status === 'CANCELLED') job.stop.abort();
    }
  };
  const cancels = await listenForCancels(options.databaseUrl, (id) => running.get(id)?.stop.abort(), () => void recheckCancels());

  const handle = (run: Handler) => async (jobs: Array<Job<JobData>>) => {
    for (const job of jobs) {
      const stop = new AbortController();
      running.set(job.data.id, { kind: job.data.kind, stop });
      onJobsChanged();
      // The engine computes on this thread; long stalls would delay pg-boss's heartbeats.
      const stalls = monitorEventLoopDelay({ resolution: 50 });
      stalls.enable();
      try {
        await run(context, { id: job.data.id, retryCount: job.retryCount, signal: job.signal }, stop);
      } finally {
        stalls.disable();
        running.delete(job.data.id);
        onJobsChanged();
        log(`${job.data.kind} ${job.data.id}: longest event-loop stall ${(stalls.max / 1e9).toFixed(2)} s (heartbeat every ${job.heartbeatSeconds ?? '-'} s)`);
      }
    }
  };
  const work = { localConcurrency: options.concurrency ?? 1, pollingIntervalSeconds: 1 };
  await boss.work<JobData>(QUEUE_NAMES.merge, work, handle(runMergeJob));
  await boss.work<JobData>(QUEUE_NAMES.analysis, work, handle(runAnalysisJob));
  await boss.work<JobData>(QUEUE_NAMES.evaluation, work, handle(runEvaluationJob));
  await boss.work<JobData>(DEAD_LETTER_QUEUE, { pollingIntervalSeconds: 1 }, async (jobs) => {
    for (const { data } of jobs) {
      const row = await jobState(prisma, data.kind, data.id);
      const error = row?.error ?? 'the worker running it stopped';
      const failed = await transitionJob(prisma, data.kind, data.id, { from: ['QUEUED', 'RUNNING'], to: 'FAILED', message: `failed after ${row?.attempts ?? '?'} attempt(s): ${error}`, error });
      removeJobOutput(jobOutputDirectory(options.outputRoot, data.kind, data.id));
      if (failed) log(`${data.kind} ${data.id}: FAILED after every attempt: ${error}`);
    }
  });
  const drainSeconds = options.drainSeconds ?? Number(process.env.APL_MERGE_DRAIN_SECONDS ?? 30);
  if (!Number.isFinite(drainSeconds) || drainSeconds < 0) throw new Error(`APL_MERGE_DRAIN_SECONDS must be a number of seconds ≥ 0, got ${drainSeconds}`);
  // Liveness for the API's `workers` query; a beat that fails (database away) is tried again at the next one.
  const heartbeatSeconds = options.heartbeatSeconds ?? Number(process.env.APL_MERGE_WORKER_HEARTBEAT_SECONDS ?? 5);
  if (!Number.isInteger(heartbeatSeconds) || heartbeatSeconds < 1) throw new Error(`APL_MERGE_WORKER_HEARTBEAT_SECONDS must be a whole number of seconds ≥ 1, got ${heartbeatSeconds}`);
  const workerId = await registerWorker(prisma, { name, host: hostname(), pid: process.pid, backend, concurrency: options.concurrency ?? 1, heartbeatSeconds });
  const beatNow = () => beat(prisma, workerId, [...running.keys()]);
  const beating = setInterval(() => beatNow().catch((err: Error) => log(`heartbeat not recorded: ${err.message.split('\n').pop()}`)), heartbeatSeconds * 1000);
  beating.unref();
  onJobsChanged = () => void beatNow().catch(() => undefined);
  log(`worker ${name} (backend ${backend}) waiting for merges, analyses and evaluations`);
  return {
    name,
    backend,
    stop: async () => {
      clearInterval(beating);
      // No new jobs; those running have the drain time to finish, then are handed back to the queue.
      await Promise.all(Object.values(QUEUE_NAMES).map((queue) => boss.offWork(queue, { wait: false })));
      const deadline = Date.now() + drainSeconds * 1000;
      while (running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (running.size > 0) {
        log(`stopping: ${running.size} job(s) did not finish within the ${drainSeconds} s drain; handing them back to the queue`);
        for (const job of running.values()) job.stop.abort(new WorkerStopping(name, drainSeconds));
        // The engine checks its signal between steps; give it the time of a few.
        const handBack = Date.now() + 30_000;
        while (running.size > 0 && Date.now() < handBack) await new Promise((r) => setTimeout(r, 50));
      }
      await boss.stop({ graceful: true, timeout: 10_000 });
      await cancels.close();
      await markStopped(prisma, workerId).catch(() => undefined);
      await prisma.$disconnect();
    },
  };
}
