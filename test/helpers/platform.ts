/**
 * The platform for a test: a fresh database, migrated; an API server with a job queue and live
 * events; a GraphQL client; a data root with an outputs directory for workers; and a `stop` that
 * takes all of it down (worker processes started through `startWorker` included).
 */
import { join } from 'node:path';
import { PgBoss } from 'pg-boss';
import { ApiServer, startApiServer } from '../../src/api/server';
import { openQueue, QueueSettings } from '../../src/jobs/queue';
import { createPrisma, PrismaClient } from '../../src/store/client';
import { migrate } from '../../src/store/migrate';
import { namedRoots } from '../../src/store/data-roots';
import { createTestDatabase } from './database';
import { testToken } from './tokens';
import { removeTempDirs, tempDir } from './files';
import { graphqlClient } from './graphql';
import { startWorkerProcess, WorkerProcess } from './worker-process';

export interface TestPlatform {
  databaseUrl: string;
  prisma: PrismaClient;
  queue: PgBoss;
  server: ApiServer;
  /** An admin token; `gql` sends it. */
  token: string;
  gql: ReturnType<typeof graphqlClient>;
  /** The data root: models and task data registered in tests live below it. */
  root: string;
  /** Where workers write job outputs. */
  outputs: string;
  /** Starts a real worker process on this platform and waits until it takes jobs. */
  startWorker: (env?: Record<string, string>) => Promise<WorkerProcess>;
  stop: () => Promise<void>;
}

export async function startTestPlatform(settings?: QueueSettings): Promise<TestPlatform> {
  const database = await createTestDatabase();
  await migrate(database.url);
  const prisma = createPrisma(database.url);
  const root = tempDir();
  const outputs = join(root, 'outputs');
  const queue = await openQueue(database.url, settings);
  const server = await startApiServer({ prisma, dataRoots: namedRoots([root]), databaseUrl: database.url, queue });
  const token = await testToken(prisma, 'ADMIN');
  const workers: WorkerProcess[] = [];
  return {
    databaseUrl: database.url,
    prisma,
    queue,
    server,
    token,
    gql: graphqlClient(server.url, token),
    root,
    outputs,
    startWorker: async (env = {}) => {
      const worker = startWorkerProcess({ DATABASE_URL: database.url, APL_MERGE_OUTPUT_DIR: outputs, ...env });
      workers.push(worker);
      await worker.waitForOutput(/waiting for merges, analyses and evaluations/);
      return worker;
    },
    stop: async () => {
      for (const worker of workers) await worker.stop();
      await server.stop();
      await queue.stop({ graceful: false });
      await prisma.$disconnect();
      await database.drop();
      removeTempDirs();
    },
  };
}
