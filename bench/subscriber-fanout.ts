/**
 * Live progress fan-out (README: "Platform"). A real `apl-merge serve` process; 1,000 graphql-ws
 * clients (one WebSocket each) subscribe to one job's progress; another connection writes the
 * job's events as a worker does (insert + NOTIFY in one transaction), one every 100 ms. Reports
 * the delay from each write's commit to each subscriber receiving the event: p50, p99, max.
 *
 *   npm run build && node dist/bench/subscriber-fanout.js [--subscribers 1000 --events 50 --interval 100]
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { createPrisma } from '../src/store/client';
import { appendJobEvent } from '../src/store/events';
import { flag, freshDatabase, percentile, startServer } from './lib/platform';

const now = () => performance.timeOrigin + performance.now();

async function main(): Promise<void> {
  const subscribers = flag('subscribers', 1000);
  const events = flag('events', 50);
  const interval = flag('interval', 100);
  const database = await freshDatabase('apl_merge_bench');
  const server = await startServer(database.url);
  const prisma = createPrisma(database.url);
  const jobId = randomUUID();
  const delays: number[] = [];
  const received = new Map<number, number>();
  const clients: Array<ReturnType<typeof createClient>> = [];
  try {
    const write = async (done: number, status: 'RUNNING' | 'COMPLETED') => {
      const committedAt = now();
      await appendJobEvent(prisma, { jobKind: 'merge', jobId, phase: 'bench', done, total: events, message: '', status });
      return { committedAt, finishedAt: now() };
    };
    const sentAt = new Map<number, number>();
    const finished: Array<Promise<void>> = [];
    for (let s = 0; s < subscribers; s++) {
      const client = createClient({ url: server.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, connectionParams: { authorization: `Bearer ${server.token}` } });
      clients.push(client);
      finished.push(
        new Promise<void>((resolve, reject) => {
          client.subscribe<{ jobProgress: { done: number } }>(
            { query: 'subscription($id: ID!) { jobProgress(jobId: $id) { done } }', variables: { id: jobId } },
            {
              next: (message) => {
                const at = now();
                const done = message.data!.jobProgress.done;
                received.set(done, (received.get(done) ?? 0) + 1);
                const sent = sentAt.get(done);
                if (sent !== undefined && done > 0) delays.push(at - sent);
              },
              error: (err) => reject(err instanceof Error ? err : new Error(JSON.stringify(err))),
              complete: resolve,
            },
          );
        }),
      );
    }
    // Event 0 tells us every subscription is live (it is replayed to those that subscribe late).
    await write(0, 'RUNNING');
    for (let i = 0; i < 600 && (received.get(0) ?? 0) < subscribers; i++) await new Promise((r) => setTimeout(r, 100));
    if ((received.get(0) ?? 0) < subscribers) throw new Error(`only ${received.get(0) ?? 0} of ${subscribers} subscriptions became live`);
    console.log(`${subscribers} subscribers live; writing ${events} events, one every ${interval} ms`);
    for (let done = 1; done <= events; done++) {
      // The delay is measured from the moment the write commits (when NOTIFY is sent).
      const { finishedAt } = await write(done, done === events ? 'COMPLETED' : 'RUNNING');
      sentAt.set(done, finishedAt);
      await new Promise((r) => setTimeout(r, interval));
    }
    await Promise.all(finished);
    const missing = Array.from({ length: events }, (_, i) => i + 1).filter((d) => (received.get(d) ?? 0) !== subscribers);
    if (missing.length > 0) throw new Error(`events ${missing.join(', ')} did not reach every subscriber`);
    delays.sort((a, b) => a - b);
    console.log('| subscribers | events | deliveries | p50 ms | p99 ms | max ms |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    console.log(`| ${subscribers} | ${events} | ${delays.length} | ${percentile(delays, 50).toFixed(1)} | ${percentile(delays, 99).toFixed(1)} | ${delays[delays.length - 1].toFixed(1)} |`);
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
    await prisma.$disconnect();
    await server.stop();
    await database.drop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
