/**
 * Worker liveness. A worker registers itself when it starts, beats (last seen, jobs in hand) every
 * few seconds, and marks itself stopped when it stops cleanly. One that was killed simply stops
 * beating: it counts as alive until three beats have been missed.
 */
import { PrismaClient } from './generated/client';

export interface WorkerInfo {
  id: string;
  name: string;
  host: string;
  pid: number;
  backend: string;
  concurrency: number;
  heartbeatSeconds: number;
  currentJobs: string[];
  startedAt: Date;
  lastSeenAt: Date;
  stoppedAt: Date | null;
}

/** Missed beats after which a worker counts as gone. */
export const MISSED_BEATS = 3;

export const isAlive = (worker: Pick<WorkerInfo, 'lastSeenAt' | 'stoppedAt' | 'heartbeatSeconds'>, now = Date.now()): boolean =>
  worker.stoppedAt === null && now - worker.lastSeenAt.getTime() <= MISSED_BEATS * worker.heartbeatSeconds * 1000;

export async function registerWorker(prisma: PrismaClient, worker: Pick<WorkerInfo, 'name' | 'host' | 'pid' | 'backend' | 'concurrency' | 'heartbeatSeconds'>): Promise<string> {
  return (await prisma.workerProcess.create({ data: worker, select: { id: true } })).id;
}

export async function beat(prisma: PrismaClient, id: string, currentJobs: readonly string[]): Promise<void> {
  await prisma.workerProcess.update({ where: { id }, data: { lastSeenAt: new Date(), currentJobs: [...currentJobs] } });
}

export async function markStopped(prisma: PrismaClient, id: string): Promise<void> {
  await prisma.workerProcess.update({ where: { id }, data: { stoppedAt: new Date(), currentJobs: [] } });
}

/** Workers alive now, newest first; with `all`, the stopped and lost ones of the last day too. */
export async function listWorkers(prisma: PrismaClient, all = false): Promise<Array<WorkerInfo & { alive: boolean }>> {
  const since = new Date(Date.now() - 24 * 3600 * 1000);
  const rows = await prisma.workerProcess.findMany({ where: { lastSeenAt: { gte: since } }, orderBy: [{ startedAt: 'desc' }, { id: 'asc' }] });
  const now = Date.now();
  return rows.map((row) => ({ ...row, alive: isAlive(row, now) })).filter((w) => all || w.alive);
}

/** Whether a worker of that name (host:pid) is alive now. */
export async function workerAlive(prisma: PrismaClient, name: string): Promise<boolean> {
  const rows = await prisma.workerProcess.findMany({ where: { name }, orderBy: { startedAt: 'desc' }, take: 1 });
  return rows.length > 0 && isAlive(rows[0]);
}
