/** `apl-merge serve`: migrates the database, then serves the GraphQL API until interrupted. */
import { resolve } from 'node:path';
import { SecuritySettings, startApiServer } from '../api/server';
import { createPrisma, databaseUrl, redactedUrl } from '../store/client';
import { DataRoot, namedRoots } from '../store/data-roots';
import { migrate } from '../store/migrate';
import { openQueue } from '../jobs/queue';
import { stopSignal } from '../jobs/stop-signal';
import { outputRootFromEnv } from '../jobs/worker-cli';

export function dataRoots(flag: string | undefined): DataRoot[] {
  const text = flag ?? process.env.APL_MERGE_DATA_ROOTS ?? resolve('data');
  return namedRoots(text.split(':').filter(Boolean).map((r) => resolve(r)));
}

/** The security flags every server command takes. */
export interface SecurityFlags {
  allowAnonymousRead?: boolean;
  allowedOrigins?: string;
}

export function securitySettings(flags: SecurityFlags): Partial<SecuritySettings> {
  const origins = (flags.allowedOrigins ?? process.env.APL_MERGE_ALLOWED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  for (const origin of origins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) throw new Error(`--allowed-origins: "${origin}" is not an origin such as https://dashboard.example.com`);
  }
  return { allowAnonymousRead: flags.allowAnonymousRead ?? false, allowedOrigins: origins };
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

export async function serveCommand(flags: { port: string; host: string; dataRoots?: string } & SecurityFlags): Promise<void> {
  const stopRequested = stopSignal();
  const url = databaseUrl();
  const security = securitySettings(flags);
  const { migration, prisma, queue, close } = await openServices(url);
  const roots = dataRoots(flags.dataRoots);
  // Where workers write (their results name files there), unless it is a data root and shown as one.
  const hiddenPaths = [outputRootFromEnv()];
  const server = await startApiServer({ prisma, dataRoots: roots, hiddenPaths, databaseUrl: url, queue, port: Number(flags.port), host: flags.host, security });
  console.log(`database: ${redactedUrl(url)} (${migration.applied.length} migration(s) applied)`);
  console.log(`data roots: ${roots.map((r) => `${r.name}=${r.path}`).join(', ')}`);
  console.log(`GraphQL API at ${server.url} (queries and mutations over HTTP, subscriptions over WebSocket; every request needs a token${security.allowAnonymousRead ? ', except reads' : ''}: apl-merge token create)`);
  await stopRequested;
  await server.stop();
  await close();
}
