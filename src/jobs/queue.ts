/**
 * The job queue: pg-boss on the platform's own PostgreSQL. A queued job carries only the id of its
 * merge, analysis or evaluation row (the row holds the request) and uses that id as its pg-boss id, so a job
 * can never be queued twice. Jobs send heartbeats while they run: a worker that dies mid-job stops
 * them, and pg-boss retries the job on another worker; a job that fails every attempt goes to the
 * dead-letter queue, whose handler marks its row FAILED.
 */
import { PgBoss } from 'pg-boss';
import type { IDatabase } from 'pg-boss/dist/types';
import { Prisma } from '../store/generated/client';
import { JobKind } from '../store/jobs';

export const QUEUE_NAMES: Record<JobKind, string> = { merge: 'apl-merge-merge', analysis: 'apl-merge-analysis', evaluation: 'apl-merge-evaluation' };
export const DEAD_LETTER_QUEUE = 'apl-merge-dead';

export interface JobData {
  kind: JobKind;
  id: string;
}

export interface QueueSettings {
  /** Seconds without a heartbeat after which a running job counts as lost and is retried (≥ 10). */
  heartbeatSeconds: number;
  /** How many times a failed or lost job is tried again. */
  retryLimit: number;
  /** Seconds between pg-boss's checks for lost jobs. */
  superviseSeconds: number;
}

function positiveNumber(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got "${text}"`);
  return value;
}

/** Settings from APL_MERGE_HEARTBEAT_SECONDS, APL_MERGE_RETRY_LIMIT and APL_MERGE_SUPERVISE_SECONDS. */
export function queueSettingsFromEnv(): QueueSettings {
  return {
    heartbeatSeconds: Math.max(10, Math.round(positiveNumber('APL_MERGE_HEARTBEAT_SECONDS', 30))),
    retryLimit: Math.floor(positiveNumber('APL_MERGE_RETRY_LIMIT', 2)),
    superviseSeconds: Math.max(1, positiveNumber('APL_MERGE_SUPERVISE_SECONDS', 10)),
  };
}

/** Starts pg-boss on `url` (installing its schema on first use) and makes sure the queues exist. */
export async function openQueue(url: string, settings: QueueSettings = queueSettingsFromEnv()): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: url, superviseIntervalSeconds: settings.superviseSeconds, monitorIntervalSeconds: settings.superviseSeconds, max: 4 });
  boss.on('error', (err: Error) => console.error(`queue: ${err.message}`));
  await boss.start();
  if (!(await boss.getQueue(DEAD_LETTER_QUEUE))) await boss.createQueue(DEAD_LETTER_QUEUE);
  for (const name of Object.values(QUEUE_NAMES)) {
    const options = { retryLimit: settings.retryLimit, retryDelay: 1, heartbeatSeconds: settings.heartbeatSeconds, expireInSeconds: 24 * 3600, deadLetter: DEAD_LETTER_QUEUE };
    if (await boss.getQueue(name)) {
      const { heartbeatSeconds: _heartbeat, ...updatable } = options;
      void _heartbeat;
      await boss.updateQueue(name, updatable);
    } else {
      await boss.createQueue(name, options);
    }
  }
  return boss;
}

/** pg-boss statements run on a Prisma transaction, so a job is queued if and only if its row commits. */
export function transactionDatabase(tx: Prisma.TransactionClient): IDatabase {
  return { executeSql: async (text, values = []) => ({ rows: await tx.$queryRawUnsafe<unknown[]>(text, ...values) }) };
}

export async function enqueueJob(boss: PgBoss, data: JobData, tx?: Prisma.TransactionClient): Promise<void> {
  await boss.send(QUEUE_NAMES[data.kind], { ...data }, { id: data.id, ...(tx ? { db: transactionDatabase(tx) } : {}) });
}

/** Queues a job again under its id (a retry of one that ended): what the queue kept of it is replaced, in the caller's transaction. */
export async function requeueJob(boss: PgBoss, data: JobData, tx: Prisma.TransactionClient): Promise<void> {
  await boss.deleteJob(QUEUE_NAMES[data.kind], data.id, { db: transactionDatabase(tx) });
  await enqueueJob(boss, data, tx);
}

/** Takes a job that has not started off the queue (a running one is stopped through its row). */
export async function dequeueJob(boss: PgBoss, data: JobData): Promise<void> {
  await boss.cancel(QUEUE_NAMES[data.kind], data.id).catch(() => undefined);
}
