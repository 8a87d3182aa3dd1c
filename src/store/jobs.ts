/**
 * The status and progress of merges and importance analyses. Every change of a job row is written
 * together with its event (and NOTIFY) in one transaction, and only from the states it may come
 * from: a job cancelled while a worker runs it stays cancelled, whatever the worker writes later.
 */
import { randomUUID } from 'node:crypto';
import { Prisma, PrismaClient } from './generated/client';
import { JobStatus } from './generated/enums';
import { EVENTS_CHANNEL, EVENTS_LOCK, insertJobEvent, JobEventInput, JobEventRow } from './events';
import { MAX_PAGE, pageOf, PageRequest } from './paging';
import { RegistryError } from './registry';

export type JobKind = JobEventInput['jobKind'];

/** A worker's event loop can be busy with the engine for a few seconds; give its transactions room. */
export const TRANSACTION_LIMITS = { maxWait: 15_000, timeout: 30_000 };

export const FINAL_STATUSES: readonly JobStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

/** The fields every job table has, as the functions below read and write them. */
interface JobWhere {
  id: string;
  status?: JobStatus | { in: JobStatus[] };
  lease?: string;
}
type JobPatch = {
  status?: JobStatus; done?: number; total?: number; error?: string | null; lease?: string | null; leaseWorker?: string | null; attempts?: { increment: number };
  startedAt?: Date | null; finishedAt?: Date | null; lastWorker?: string | null;
};
const JOB_STATE = { status: true, attempts: true, error: true, createdBy: true, leaseWorker: true, done: true, total: true } as const;
type JobRow = { status: JobStatus; attempts: number; error: string | null; createdBy: string | null; leaseWorker: string | null; done: number; total: number };

/** One kind's table, behind the operations every job kind shares. */
interface JobTable {
  updateMany(where: JobWhere, data: JobPatch): Promise<number>;
  find(id: string): Promise<JobRow | null>;
  count(where: JobWhere): Promise<number>;
}

function jobTable(db: PrismaClient | Prisma.TransactionClient, kind: JobKind): JobTable {
  switch (kind) {
    case 'merge':
      return { updateMany: async (where, data) => (await db.merge.updateMany({ where, data })).count, find: (id) => db.merge.findUnique({ where: { id }, select: JOB_STATE }), count: (where) => db.merge.count({ where }) };
    case 'analysis':
      return {
        updateMany: async (where, data) => (await db.importanceAnalysis.updateMany({ where, data })).count,
        find: (id) => db.importanceAnalysis.findUnique({ where: { id }, select: JOB_STATE }),
        count: (where) => db.importanceAnalysis.count({ where }),
      };
    case 'evaluation':
      return {
        updateMany: async (where, data) => (await db.evaluationRun.updateMany({ where, data })).count,
        find: (id) => db.evaluationRun.findUnique({ where: { id }, select: JOB_STATE }),
        count: (where) => db.evaluationRun.count({ where }),
      };
  }
}

async function updateJob(tx: Prisma.TransactionClient, kind: JobKind, id: string, from: readonly JobStatus[], data: JobPatch, lease?: string): Promise<{ done: number; total: number } | undefined> {
  const table = jobTable(tx, kind);
  if ((await table.updateMany({ id, status: { in: [...from] }, ...(lease ? { lease } : {}) }, data)) === 0) return undefined;
  return (await table.find(id)) ?? undefined;
}

/**
 * Moves a job from one of `from` to `to`, with a "status" event; false (and nothing written) when
 * the job is not in one of `from`, or (with `lease`) when another attempt holds the job now.
 * `andThen` runs in the same transaction, after the update.
 */
export async function transitionJob(
  prisma: PrismaClient | Prisma.TransactionClient,
  kind: JobKind,
  id: string,
  change: { from: readonly JobStatus[]; to: JobStatus; message: string; error?: string | null; lease?: string },
  andThen?: (tx: Prisma.TransactionClient) => Promise<void>,
): Promise<boolean> {
  const run = async (tx: Prisma.TransactionClient) => {
    // Leaving RUNNING ends the lease: nobody owns a job that is not running.
    const endsLease = change.to !== 'RUNNING' ? { lease: null, leaseWorker: null } : {};
    // An ended job has its finish time; one queued again starts its timing afresh.
    const timing = FINAL_STATUSES.includes(change.to) ? { finishedAt: new Date() } : change.to === 'QUEUED' ? { startedAt: null, finishedAt: null } : {};
    const row = await updateJob(tx, kind, id, change.from, { status: change.to, ...(change.error !== undefined ? { error: change.error } : {}), ...endsLease, ...timing }, change.lease);
    if (!row) return false;
    await andThen?.(tx);
    await insertJobEvent(tx, { jobKind: kind, jobId: id, phase: 'status', done: row.done, total: row.total, message: change.message, status: change.to });
    return true;
  };
  // A transaction client also answers to $transaction in Prisma 7 (a nested start that leaves the
  // connection unusable), and neither is an instance of PrismaClient: only the client can $connect.
  return '$connect' in prisma ? (prisma as PrismaClient).$transaction(run, TRANSACTION_LIMITS) : run(prisma);
}

export interface ProgressInput {
  phase: string;
  done: number;
  total: number;
  etaSeconds?: number | null;
  message: string;
}

const JOB_TABLES: Record<JobKind, string> = { merge: 'merges', analysis: 'importance_analyses', evaluation: 'evaluation_runs' };

/**
 * Records progress of a RUNNING job: row, event and NOTIFY in one statement, under the events lock
 * (a batch transaction of two statements, not an interactive one, which a worker busy computing
 * could let time out). False when the job is no longer running.
 */
export async function recordProgress(prisma: PrismaClient, kind: JobKind, id: string, progress: ProgressInput, lease?: string): Promise<boolean> {
  const [, rows] = await prisma.$transaction([
    prisma.$executeRaw`SELECT pg_advisory_xact_lock(${EVENTS_LOCK})`,
    prisma.$queryRawUnsafe<Array<{ id: bigint }>>(
    `WITH updated AS (
       UPDATE "${JOB_TABLES[kind]}" SET done = $3, total = $4, updated_at = now() WHERE id = $2::uuid AND status = 'RUNNING' AND ($9::uuid IS NULL OR lease = $9::uuid) RETURNING id
     ), inserted AS (
       INSERT INTO job_events (job_kind, job_id, phase, done, total, eta_seconds, message, status)
       SELECT $1, id, $5, $3, $4, $6, $7, 'RUNNING' FROM updated RETURNING id, job_id
     )
     SELECT id, pg_notify($8, json_build_object('id', id::text, 'jobId', job_id::text)::text)::text AS notified FROM inserted`,
    kind,
    id,
    progress.done,
    progress.total,
    progress.phase,
    progress.etaSeconds ?? null,
    progress.message,
    EVENTS_CHANNEL,
    lease ?? null,
    ),
  ]);
  return rows.length > 0;
}

export interface JobState {
  status: JobStatus;
  attempts: number;
  error: string | null;
  /** The token that requested it. */
  createdBy: string | null;
}

/** A job's status, attempts and last error; undefined when there is no such row. */
export async function jobState(prisma: PrismaClient, kind: JobKind, id: string): Promise<JobState | undefined> {
  const row = await jobTable(prisma, kind).find(id);
  return row ? { status: row.status, attempts: row.attempts, error: row.error, createdBy: row.createdBy } : undefined;
}

/** Counts an attempt started, or records the error an attempt ended with (the status is left alone). */
export async function recordAttempt(prisma: PrismaClient, kind: JobKind, id: string, data: { attempts?: { increment: number }; error?: string }): Promise<void> {
  await jobTable(prisma, kind).updateMany({ id }, data);
}

export const JOB_KINDS: readonly JobKind[] = ['merge', 'analysis', 'evaluation'];

/** The kind of a job id, or undefined when no job has it. */
export async function jobKindOf(prisma: PrismaClient, id: string): Promise<{ kind: JobKind; status: JobStatus; createdBy: string | null } | undefined> {
  for (const kind of JOB_KINDS) {
    const state = await jobState(prisma, kind, id);
    if (state) return { kind, status: state.status, createdBy: state.createdBy };
  }
  return undefined;
}

export interface JobFilter {
  status?: JobStatus;
  /** Jobs the model takes part in (an input or the output of a merge; the model analysed or evaluated). */
  modelId?: string;
  /** Requested by this token's name. */
  createdBy?: string;
}

export type JobOrderField = 'createdAt' | 'updatedAt';

const NEWEST_FIRST = { field: 'createdAt', direction: 'desc' } as const;

/** Merges a page at a time, newest first unless asked otherwise. */
export async function listMerges(prisma: PrismaClient, filter: JobFilter, request: PageRequest<JobOrderField>) {
  const where: Prisma.MergeWhereInput = {
    status: filter.status,
    createdBy: filter.createdBy,
    ...(filter.modelId ? { OR: [{ inputs: { some: { modelId: filter.modelId } } }, { outputModelId: filter.modelId }] } : {}),
  };
  return pageOf({ find: (args) => prisma.merge.findMany({ where, ...args }), count: () => prisma.merge.count({ where }), exists: async (id) => (await prisma.merge.count({ where: { id } })) > 0 }, request, NEWEST_FIRST, 'merge');
}

/** Analyses a page at a time, newest first unless asked otherwise. */
export async function listAnalyses(prisma: PrismaClient, filter: JobFilter, request: PageRequest<JobOrderField>) {
  const where: Prisma.ImportanceAnalysisWhereInput = { status: filter.status, modelId: filter.modelId, createdBy: filter.createdBy };
  return pageOf(
    { find: (args) => prisma.importanceAnalysis.findMany({ where, ...args }), count: () => prisma.importanceAnalysis.count({ where }), exists: async (id) => (await prisma.importanceAnalysis.count({ where: { id } })) > 0 },
    request,
    NEWEST_FIRST,
    'analysis',
  );
}

/** Status events (phase "status") of the merges, analyses and evaluations a model takes part in, after `afterId`. */
export async function modelStatusEventsAfter(prisma: PrismaClient, modelId: string, afterId: bigint): Promise<JobEventRow[]> {
  const [analyses, inputs, outputs, evaluations] = await Promise.all([
    prisma.importanceAnalysis.findMany({ where: { OR: [{ modelId }, { baseModelId: modelId }] }, select: { id: true } }),
    prisma.mergeInput.findMany({ where: { modelId }, select: { mergeId: true } }),
    prisma.merge.findMany({ where: { outputModelId: modelId }, select: { id: true } }),
    prisma.evaluationRun.findMany({ where: { modelId }, select: { id: true } }),
  ]);
  const jobIds = [...analyses.map((a) => a.id), ...inputs.map((i) => i.mergeId), ...outputs.map((o) => o.id), ...evaluations.map((e) => e.id)];
  if (jobIds.length === 0) return [];
  return (await prisma.jobEvent.findMany({ where: { id: { gt: afterId }, phase: 'status', jobId: { in: jobIds } }, orderBy: { id: 'asc' } })) as JobEventRow[];
}

/** Status events (phase "status") of every job after `afterId`, oldest first: what a live list of jobs follows. */
export async function statusEventsAfter(prisma: PrismaClient, afterId: bigint): Promise<JobEventRow[]> {
  return (await prisma.jobEvent.findMany({ where: { id: { gt: afterId }, phase: 'status' }, orderBy: { id: 'asc' }, take: 500 })) as JobEventRow[];
}

/** Evaluation runs a page at a time, newest first unless asked otherwise. */
export async function listEvaluationRuns(prisma: PrismaClient, filter: JobFilter, request: PageRequest<JobOrderField>) {
  const where: Prisma.EvaluationRunWhereInput = { status: filter.status, modelId: filter.modelId, createdBy: filter.createdBy };
  return pageOf(
    { find: (args) => prisma.evaluationRun.findMany({ where, ...args }), count: () => prisma.evaluationRun.count({ where }), exists: async (id) => (await prisma.evaluationRun.count({ where: { id } })) > 0 },
    request,
    NEWEST_FIRST,
    'evaluation run',
  );
}

/** A job's events in order, a page at a time: `after` is the id of the last event of the previous page. */
export async function listJobEvents(prisma: PrismaClient, jobId: string, first: number, after?: bigint) {
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw new RegistryError('BAD_USER_INPUT', `first must be an integer from 1 to ${MAX_PAGE}, got ${first}`);
  const where: Prisma.JobEventWhereInput = { jobId };
  const [rows, totalCount] = await Promise.all([
    prisma.jobEvent.findMany({ where: { ...where, ...(after !== undefined ? { id: { gt: after } } : {}) }, orderBy: { id: 'asc' }, take: first + 1 }),
    prisma.jobEvent.count({ where }),
  ]);
  return { rows: rows.slice(0, first) as JobEventRow[], hasNextPage: rows.length > first, hasPreviousPage: after !== undefined, totalCount };
}

/** The id of the newest event (0 when there is none): where a live-only stream starts. */
export async function lastEventId(prisma: PrismaClient): Promise<bigint> {
  const row = await prisma.jobEvent.findFirst({ orderBy: { id: 'desc' }, select: { id: true } });
  return row?.id ?? 0n;
}

/** The attempt that now owns a running job: its lease and the worker that took it. */
export interface JobLease {
  lease: string;
  /** The worker that held the job before, when it was RUNNING (a lost or stalled attempt). */
  previousWorker: string | null;
}

/**
 * Starts an attempt: the job becomes RUNNING under a new lease (taking it over from a previous
 * attempt, which the queue gave up on), with its "status" event. Undefined when the job has ended.
 */
export async function takeLease(prisma: PrismaClient, kind: JobKind, id: string, worker: string, message: string): Promise<JobLease | undefined> {
  return prisma.$transaction(async (tx) => {
    const before = await jobTable(tx, kind).find(id);
    if (!before || FINAL_STATUSES.includes(before.status)) return undefined;
    const lease = randomUUID();
    const row = await updateJob(tx, kind, id, ['QUEUED', 'RUNNING'], { status: 'RUNNING', lease, leaseWorker: worker, startedAt: new Date(), finishedAt: null, lastWorker: worker });
    if (!row) return undefined;
    await insertJobEvent(tx, { jobKind: kind, jobId: id, phase: 'status', done: row.done, total: row.total, message, status: 'RUNNING' });
    return { lease, previousWorker: before.status === 'RUNNING' ? before.leaseWorker : null };
  }, TRANSACTION_LIMITS);
}

/** Whether `lease` still owns the job (RUNNING under it). */
export async function holdsLease(prisma: PrismaClient, kind: JobKind, id: string, lease: string): Promise<boolean> {
  return (await jobTable(prisma, kind).count({ id, status: 'RUNNING', lease })) > 0;
}
