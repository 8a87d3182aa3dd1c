/**
 * Job progress as an append-only table plus a NOTIFY per event, so that any API process — not only
 * the one that started a job — can stream it, and a client that reconnects with the last event id
 * it saw can be sent what it missed. The NOTIFY is sent in the same transaction as the insert:
 * listeners hear of an event only once it is committed and readable.
 */
import { Prisma, PrismaClient } from './generated/client';
import { JobStatus } from './generated/enums';
import { Listener, listenOn } from './notifications';

export const EVENTS_CHANNEL = 'apl_merge_job_events';

export interface JobEventInput {
  jobKind: 'merge' | 'analysis' | 'evaluation';
  jobId: string;
  phase: string;
  done: number;
  total: number;
  etaSeconds?: number | null;
  message: string;
  status: JobStatus;
}

export interface JobEventRow extends JobEventInput {
  id: bigint;
  createdAt: Date;
}

export async function appendJobEvent(prisma: PrismaClient, event: JobEventInput): Promise<JobEventRow> {
  return prisma.$transaction((tx) => insertJobEvent(tx, event));
}

/**
 * Event ids come from a sequence, and two transactions can commit their ids out of order: a reader
 * that saw the later one first and moved its cursor past it would miss the earlier one for good.
 * So every event is inserted under one transaction-scoped lock, taken just before the insert and
 * held until commit: events become visible in the order of their ids.
 */
export const EVENTS_LOCK = 72707370;

/** Inserts an event and queues its NOTIFY inside the caller's transaction (sent at commit). */
export async function insertJobEvent(tx: Prisma.TransactionClient, event: JobEventInput): Promise<JobEventRow> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(${EVENTS_LOCK})`;
  const row = await tx.jobEvent.create({ data: { ...event, etaSeconds: event.etaSeconds ?? null } });
  await tx.$executeRaw`SELECT pg_notify(${EVENTS_CHANNEL}, ${JSON.stringify({ id: row.id.toString(), jobId: row.jobId })})`;
  return row as JobEventRow;
}

/** Events of a job after the given id (all when undefined), oldest first. */
export async function jobEventsAfter(prisma: PrismaClient, jobId: string, afterId?: bigint): Promise<JobEventRow[]> {
  const rows = await prisma.jobEvent.findMany({
    where: { jobId, ...(afterId !== undefined ? { id: { gt: afterId } } : {}) },
    orderBy: { id: 'asc' },
  });
  return rows as JobEventRow[];
}

/**
 * Listens on the events channel with a connection of its own; calls `onEvent(jobId, id)` per
 * notification, and `onReconnect` when a lost connection is back (events may have been missed).
 */
export async function listenForJobEvents(url: string, onEvent: (jobId: string, id: bigint) => void, onReconnect?: () => void): Promise<Listener> {
  return listenOn(
    url,
    EVENTS_CHANNEL,
    (payload) => {
      const { id, jobId } = JSON.parse(payload) as { id: string; jobId: string };
      onEvent(jobId, BigInt(id));
    },
    { onReconnect },
  );
}
