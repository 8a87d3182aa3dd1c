/**
 * Fan-out of job events to subscriptions. One LISTEN connection per API process hears of every
 * committed event. For each job with subscribers there is one feed, which reads the new events
 * once per notification and hands them to every subscriber: the database sees one query per event,
 * not one per subscriber. A subscriber joins the feed before it reads the history it asked for, so
 * what it replays and what the feed brings overlap instead of leaving a gap; it skips what it has
 * already sent. Order is the table's order, whichever process wrote the events.
 */
import { JobEventRow, jobEventsAfter, listenForJobEvents } from '../store/events';
import { PrismaClient } from '../store/client';
import { FINAL_STATUSES } from '../store/jobs';

interface Subscriber {
  queue: JobEventRow[];
  wake?: () => void;
}

class JobFeed {
  readonly subscribers = new Set<Subscriber>();
  private last: bigint | undefined;
  private fetching = false;
  private again = false;
  readonly ready: Promise<void>;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly jobId: string,
  ) {
    // Start after the newest event now: older ones come from each subscriber's own replay.
    this.ready = prisma.jobEvent.findFirst({ where: { jobId }, orderBy: { id: 'desc' }, select: { id: true } }).then((row) => {
      this.last = row?.id ?? 0n;
    });
  }

  /** Reads what is new (once, however many subscribers) and queues it for each. */
  async poke(): Promise<void> {
    await this.ready;
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = true;
    try {
      do {
        this.again = false;
        const rows = await jobEventsAfter(this.prisma, this.jobId, this.last);
        if (rows.length === 0) continue;
        this.last = rows[rows.length - 1].id;
        for (const subscriber of this.subscribers) {
          subscriber.queue.push(...rows);
          subscriber.wake?.();
        }
      } while (this.again);
    } finally {
      this.fetching = false;
    }
  }
}

interface Waiter {
  pending: boolean;
  wake?: () => void;
}

const isFinal = (event: JobEventRow) => FINAL_STATUSES.includes(event.status);

export class JobEventHub {
  private readonly feeds = new Map<string, JobFeed>();
  /** Subscriptions that follow every job (a model's status changes). */
  private readonly everyJob = new Set<Waiter>();
  private listener: { close: () => Promise<void> } | undefined;
  private closed = false;

  constructor(private readonly onError: (err: Error) => void = (err) => console.error(`job events: ${err.message}`)) {}

  static async start(url: string): Promise<JobEventHub> {
    const hub = new JobEventHub();
    // After a lost connection every feed and waiter reads again from where it was: nothing notified meanwhile is missed.
    hub.listener = await listenForJobEvents(
      url,
      (jobId) => hub.notify(jobId),
      () => {
        for (const jobId of hub.feeds.keys()) hub.notify(jobId);
        if (hub.feeds.size === 0) hub.wakeEveryJob();
      },
    );
    return hub;
  }

  private notify(jobId: string): void {
    this.feeds.get(jobId)?.poke().catch(this.onError);
    this.wakeEveryJob();
  }

  private wakeEveryJob(): void {
    for (const waiter of this.everyJob) {
      waiter.pending = true;
      waiter.wake?.();
    }
  }

  /** Events of a job after `afterId` (all when undefined): first those stored, then live ones; ends after a final status. */
  async *stream(prisma: PrismaClient, jobId: string, afterId?: bigint): AsyncGenerator<JobEventRow> {
    let feed = this.feeds.get(jobId);
    if (!feed) {
      feed = new JobFeed(prisma, jobId);
      this.feeds.set(jobId, feed);
    }
    const subscriber: Subscriber = { queue: [] };
    feed.subscribers.add(subscriber);
    try {
      await feed.ready;
      let cursor = afterId;
      for (const event of await jobEventsAfter(prisma, jobId, cursor)) {
        cursor = event.id;
        yield event;
        if (isFinal(event)) return;
      }
      while (!this.closed) {
        const event = subscriber.queue.shift();
        if (!event) {
          await new Promise<void>((resolve) => (subscriber.wake = resolve));
          subscriber.wake = undefined;
          continue;
        }
        if (cursor !== undefined && event.id <= cursor) continue;
        cursor = event.id;
        yield event;
        if (isFinal(event)) return;
      }
    } finally {
      feed.subscribers.delete(subscriber);
      if (feed.subscribers.size === 0 && this.feeds.get(jobId) === feed) this.feeds.delete(jobId);
    }
  }

  /** Events chosen by `fetch` among every job's (e.g. the status changes of one model's jobs), never ending. */
  async *streamAll(after: bigint, fetch: (after: bigint) => Promise<JobEventRow[]>): AsyncGenerator<JobEventRow> {
    const waiter: Waiter = { pending: false };
    this.everyJob.add(waiter);
    let last = after;
    try {
      while (!this.closed) {
        waiter.pending = false;
        for (const event of await fetch(last)) {
          last = event.id;
          yield event;
        }
        if (!waiter.pending) await new Promise<void>((resolve) => (waiter.wake = resolve));
        waiter.wake = undefined;
      }
    } finally {
      this.everyJob.delete(waiter);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const feed of this.feeds.values()) for (const subscriber of feed.subscribers) subscriber.wake?.();
    for (const waiter of this.everyJob) waiter.wake?.();
    await this.listener?.close();
  }
}
