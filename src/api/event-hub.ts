/**
 * Fan-out of job events to subscriptions. One LISTEN connection per API process wakes the
 * subscriptions that may care (those of the job, and those that follow every job); each
 * subscription then reads the events after the last one it sent, so order is the table's order
 * and nothing is skipped, whichever process wrote the events.
 */
import { JobEventRow, jobEventsAfter, listenForJobEvents } from '../store/events';
import { PrismaClient } from '../store/client';
import { FINAL_STATUSES } from '../store/jobs';

interface Waiter {
  pending: boolean;
  wake?: () => void;
}

/** Subscriptions keyed by this follow every job. */
const EVERY_JOB = '*';

export class JobEventHub {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private listener: { close: () => Promise<void> } | undefined;
  private closed = false;

  static async start(url: string): Promise<JobEventHub> {
    const hub = new JobEventHub();
    hub.listener = await listenForJobEvents(url, (jobId) => hub.notify(jobId));
    return hub;
  }

  private notify(jobId: string): void {
    for (const key of [jobId, EVERY_JOB]) {
      for (const waiter of this.waiters.get(key) ?? []) {
        waiter.pending = true;
        waiter.wake?.();
      }
    }
  }

  /** Yields what `fetch(last)` returns each time the key is notified, until `isLast` says so or the hub closes. */
  private async *follow(key: string, after: bigint | undefined, fetch: (after: bigint | undefined) => Promise<JobEventRow[]>, isLast: (event: JobEventRow) => boolean): AsyncGenerator<JobEventRow> {
    const waiter: Waiter = { pending: false };
    const set = this.waiters.get(key) ?? new Set<Waiter>();
    set.add(waiter);
    this.waiters.set(key, set);
    let last = after;
    try {
      while (!this.closed) {
        waiter.pending = false;
        for (const event of await fetch(last)) {
          last = event.id;
          yield event;
          if (isLast(event)) return;
        }
        if (!waiter.pending) await new Promise<void>((resolve) => (waiter.wake = resolve));
        waiter.wake = undefined;
      }
    } finally {
      set.delete(waiter);
      if (set.size === 0) this.waiters.delete(key);
    }
  }

  /** Events of a job after `afterId`: first those already stored, then live ones; ends after a final status. */
  stream(prisma: PrismaClient, jobId: string, afterId?: bigint): AsyncGenerator<JobEventRow> {
    return this.follow(jobId, afterId, (last) => jobEventsAfter(prisma, jobId, last), (event) => FINAL_STATUSES.includes(event.status));
  }

  /** Events chosen by `fetch` among every job's (e.g. the status changes of one model's jobs), never ending. */
  streamAll(after: bigint, fetch: (after: bigint) => Promise<JobEventRow[]>): AsyncGenerator<JobEventRow> {
    return this.follow(EVERY_JOB, after, (last) => fetch(last ?? after), () => false);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const set of this.waiters.values()) for (const waiter of set) waiter.wake?.();
    await this.listener?.close();
  }
}
