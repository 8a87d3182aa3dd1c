/** `apl-merge serve`: migrates the database, then serves the GraphQL API until interrupted. */
import cluster from 'node:cluster';
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
export async function openServices(url: string, options: { migrate?: boolean } = {}) {
  const migration = options.migrate === false ? { applied: [] as string[] } : await migrate(url);
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

export async function serveCommand(flags: { port: string; host: string; dataRoots?: string; workers?: string } & SecurityFlags): Promise<void> {
  const workers = flags.workers === undefined ? 1 : Number(flags.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new Error(`--workers must be a whole number from 1 to 64, got "${flags.workers}"`);
  if (cluster.isPrimary && workers > 1) return servePrimary(workers);
  const stopRequested = stopSignal();
  const url = databaseUrl();
  const security = securitySettings(flags);
  // In a cluster the primary migrated the database before forking; its processes only serve.
  const { migration, prisma, queue, close } = await openServices(url, { migrate: cluster.isPrimary });
  const roots = dataRoots(flags.dataRoots);
  // Where workers write (their results name files there), unless it is a data root and shown as one.
  const hiddenPaths = [outputRootFromEnv()];
  const server = await startApiServer({ prisma, dataRoots: roots, hiddenPaths, databaseUrl: url, queue, port: Number(flags.port), host: flags.host, security });
  if (cluster.isPrimary) {
    console.log(`database: ${redactedUrl(url)} (${migration.applied.length} migration(s) applied)`);
    console.log(`data roots: ${roots.map((r) => `${r.name}=${r.path}`).join(', ')}`);
    console.log(`GraphQL API at ${server.url} (queries and mutations over HTTP, subscriptions over WebSocket; every request needs a token${security.allowAnonymousRead ? ', except reads' : ''}: apl-merge token create)`);
  } else {
    process.send?.({ listening: server.url });
  }
  await stopRequested;
  await server.stop();
  await close();
  // An API process of a cluster is kept alive by its channel to the primary: let go of it to exit.
  if (!cluster.isPrimary) process.disconnect?.();
}

/**
 * `serve --workers N`: migrates once, then forks N API processes that share the port (Node's
 * cluster hands connections out in turn), restarts one that dies (after 1 s, logged), and stops
 * them all on SIGTERM/SIGINT.
 */
async function servePrimary(workers: number): Promise<void> {
  const stopRequested = stopSignal();
  const url = databaseUrl();
  const migration = await migrate(url);
  console.log(`database: ${redactedUrl(url)} (${migration.applied.length} migration(s) applied)`);
  let stopping = false;
  let announced = false;
  const fork = () => {
    const worker = cluster.fork();
    worker.on('message', (message: { listening?: string }) => {
      if (!message.listening) return;
      console.log(`api process ${worker.process.pid} listening`);
      if (!announced) {
        announced = true;
        console.log(`GraphQL API at ${message.listening} (${workers} processes; every request needs a token unless reads are open: apl-merge token create)`);
      }
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    console.log(`api process ${worker.process.pid} exited (${signal ?? code}); starting another in 1 s`);
    setTimeout(() => !stopping && fork(), 1000).unref();
  });
  for (let i = 0; i < workers; i++) fork();
  await stopRequested;
  stopping = true;
  const all = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
  await Promise.all(all.map((worker) => new Promise<void>((done) => {
    // One that has not stopped within 30 s (its database gone, a request stuck) is killed, not waited for.
    const overdue = setTimeout(() => {
      console.log(`api process ${worker.process.pid} did not stop within 30 s of SIGTERM; killing it`);
      worker.process.kill('SIGKILL');
    }, 30_000);
    worker.once('exit', () => {
      clearTimeout(overdue);
      done();
    });
    worker.kill('SIGTERM');
  })));
}
