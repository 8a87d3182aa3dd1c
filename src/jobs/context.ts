/** What a job handler needs from the worker that runs it. */
import { PrismaClient } from '../store/generated/client';

export interface JobContext {
  prisma: PrismaClient;
  /** Where merged models and importance artifacts are written (one directory per job id). */
  outputRoot: string;
  /** Worker threads for merging (0 = inline). */
  threads?: number;
  /** The engine backend in use, recorded with each result. */
  backend: string;
  /** Identifies this worker in status messages (host and pid). */
  workerName: string;
  log: (line: string) => void;
  /** Where attempts are held, by "kind:point" (fault injection: see pause-points.ts). */
  pauses?: ReadonlyMap<string, number>;
}

export interface JobAttempt {
  id: string;
  /** 0 for the first attempt, 1 for the first retry, … */
  retryCount: number;
  signal: AbortSignal;
}

/** The reason a job's AbortSignal carries when its worker stops before the job is done: the job goes back to the queue. */
export class WorkerStopping extends Error {
  constructor(
    readonly worker: string,
    readonly drainSeconds: number,
  ) {
    super(`worker ${worker} stopped before the job finished (drain time ${drainSeconds} s); handed back to the queue`);
    this.name = 'WorkerStopping';
  }
}

/** The reason an attempt stops when another attempt has taken its job over (after a heartbeat lapse). */
export class AttemptSuperseded extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId} is owned by another attempt now`);
    this.name = 'AttemptSuperseded';
  }
}
