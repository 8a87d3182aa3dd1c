/**
 * Fan-out of job events to subscriptions. One LISTEN connection per API process wakes the
 * subscriptions of a job; each subscription then reads the events after the last one it sent,
 * so order is the table's order and nothing is skipped, whichever process wrote the events.
 */
import { JobEventRow, jobEventsAfter, listenForJobEvents } from '../store/events';
import { PrismaClient } from '../store/client';

interface Waiter {
  pending: boolean;
  wake?: () => void;
}

export class JobEventHub {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private listener: { close: () => Promise<void> } | undefined;

  static async start(url: string): Promise<JobEventHub> {
    const hub = new JobEventHub();
    hub.listener = await listenForJobEvents(url, (jobId) => hub.notify(jobId));
    return hub;
  }

  private notify(jobId: string): void {
    for (const waiter of this.waiters.get(jobId) ?? []) {
      waiter.pending = true;
      waiter.wake?.();
    }
  }

  /** Events of a job after `afterId`: first those already stored, then live ones; ends after a final status. */
  async *stream(prisma: PrismaClient, jobId: string, afterId?: bigint): AsyncGenerator<JobEventRow> {
    const waiter: Waiter = { pending: false };
    const set = this.waiters.get(jobId) ?? new Set<Waiter>();
    set.add(waiter);
    this.waiters.set(jobId, set);
    let last = afterId;
    try {
      for (;;) {
        waiter.pending = false;
        for (const event of await jobEventsAfter(prisma, jobId, last)) {
          last = event.id;
          yield event;
          if (event.status === 'COMPLETED' || event.status === 'FAILED' || event.status === 'CANCELLED') return;
        }
        if (!waiter.pending) await new Promise<void>((resolve) => (waiter.wake = resolve));
        waiter.wake = undefined;
      }
    } finally {
      set.delete(waiter);
      if (set.size === 0) this.waiters.delete(jobId);
    }
  }

  async close(): Promise<void> {
    for (const set of this.waiters.values()) for (const waiter of set) waiter.wake?.();
    await this.listener?.close();
  }
}
