/** `apl-merge serve`: migrates the database, then serves the GraphQL API until interrupted. */
import { resolve } from 'node:path';
import { startApiServer } from '../api/server';
import { createPrisma, databaseUrl, redactedUrl } from '../store/client';
import { migrate } from '../store/migrate';
import { openQueue } from '../jobs/queue';
import { stopSignal } from '../jobs/stop-signal';

export function dataRoots(flag: string | undefined): string[] {
  const text = flag ?? process.env.APL_MERGE_DATA_ROOTS ?? resolve('data');
  return text.split(':').filter(Boolean).map((r) => resolve(r));
}

/** What a server process holds: the migrated database, its client and the job queue; `close` in reverse order. */
export async function openServices(url: string) {
  const migration = await migrate(url);
  const prisma = createPrisma(url);
  const queue = await openQueue(url);
  return {
    migration,
    prisma,
    queue,
    close: async () => {
      await queue.stop({ graceful: false });
      await prisma.$disconnect();
    },
  };
}

export async function serveCommand(flags: { port: string; host: string; dataRoots?: string }): Promise<void> {
  const stopRequested = stopSignal();
  const url = databaseUrl();
  const { migration, prisma, queue, close } = await openServices(url);
  const roots = dataRoots(flags.dataRoots);
  const server = await startApiServer({ prisma, dataRoots: roots, databaseUrl: url, queue, port: Number(flags.port), host: flags.host });
  console.log(`database: ${redactedUrl(url)} (${migration.applied.length} migration(s) applied)`);
  console.log(`data roots: ${roots.join(', ')}`);
  console.log(`GraphQL API at ${server.url} (queries and mutations over HTTP, subscriptions over WebSocket)`);
  await stopRequested;
  await server.stop();
  await close();
}
