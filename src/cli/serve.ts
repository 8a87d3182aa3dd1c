/** `apl-merge serve`: migrates the database, then serves the GraphQL API until interrupted. */
import { resolve } from 'node:path';
import { startApiServer } from '../api/server';
import { createPrisma, databaseUrl } from '../store/client';
import { migrate } from '../store/migrate';
import { openQueue } from '../jobs/queue';
import { stopSignal } from '../jobs/stop-signal';

export function dataRoots(flag: string | undefined): string[] {
  const text = flag ?? process.env.APL_MERGE_DATA_ROOTS ?? resolve('data');
  return text.split(':').filter(Boolean).map((r) => resolve(r));
}

export async function serveCommand(flags: { port: string; host: string; dataRoots?: string }): Promise<void> {
  const stopRequested = stopSignal();
  const url = databaseUrl();
  const migration = await migrate(url);
  const prisma = createPrisma(url);
  const roots = dataRoots(flags.dataRoots);
  const queue = await openQueue(url);
  const server = await startApiServer({ prisma, dataRoots: roots, databaseUrl: url, queue, port: Number(flags.port), host: flags.host });
  console.log(`database: ${url.replace(/\/\/[^@/]*@/, '//')} (${migration.applied.length} migration(s) applied)`);
  console.log(`data roots: ${roots.join(', ')}`);
  console.log(`GraphQL API at ${server.url} (queries and mutations over HTTP, subscriptions over WebSocket)`);
  await stopRequested;
  await server.stop();
  await queue.stop({ graceful: false });
  await prisma.$disconnect();
}
