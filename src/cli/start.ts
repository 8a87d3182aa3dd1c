/**
 * `apl-merge start` (what `npm start` runs): the whole platform on one machine. Uses DATABASE_URL
 * when set, else an embedded PostgreSQL under the data directory; migrates; serves the GraphQL API;
 * runs one worker as a child process (so the engine's computing never stalls the API), started
 * again if it dies, as is the embedded PostgreSQL; and on the
 * first start with an empty database registers the demo (--no-demo turns it off). The first start
 * also creates an admin token, kept in DATA_DIR/admin-token (readable by its owner only) and
 * reused by later starts, and prints the address that signs a browser in with it.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startApiServer } from '../api/server';
import { PrismaClient, redactedUrl } from '../store/client';
import { namedRoots } from '../store/data-roots';
import { checkReachableByPostgresUser, EmbeddedDatabase, embeddedDatabaseDirectory, startEmbeddedDatabase } from '../store/embedded';
import { createToken, verifyToken } from '../store/tokens';
import { stopSignal } from '../jobs/stop-signal';
import { registerDemo } from './demo-registry';
import { dataRoots, openServices, SecurityFlags, securitySettings } from './serve';

export interface StartFlags extends SecurityFlags {
  port: string;
  host: string;
  dataDir: string;
  dataRoots?: string;
  demo: boolean;
}

function startWorkerProcess(env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [resolve(__dirname, '../jobs/worker-cli.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = (chunk: Buffer) => chunk.toString().split('\n').filter(Boolean).map((line) => `worker: ${line}`).join('\n');
  child.stdout!.on('data', (chunk: Buffer) => console.log(prefix(chunk)));
  child.stderr!.on('data', (chunk: Buffer) => console.error(prefix(chunk)));
  return child;
}

/** A worker that ran this long before it exited is taken to have been healthy: the backoff starts over. */
const HEALTHY_RUN_MS = 60_000;

/**
 * Keeps one worker process running: one that exits or is killed is started again after a backoff
 * (1 s, doubling to 30 s while it keeps dying young), and said so. Its jobs are retried by the
 * queue once their heartbeat lapses. `stop` sends SIGTERM and waits for it to drain.
 */
export function superviseWorker(env: NodeJS.ProcessEnv, log: (line: string) => void): { stop: () => Promise<void> } {
  let child: ChildProcess;
  let stopping = false;
  let backoffMs = 1000;
  let timer: NodeJS.Timeout | undefined;
  const launch = () => {
    const startedAt = Date.now();
    child = startWorkerProcess(env);
    child.once('exit', (code, signal) => {
      if (stopping) return;
      const ran = Date.now() - startedAt;
      if (ran > HEALTHY_RUN_MS) backoffMs = 1000;
      log(`supervisor: the worker exited (${signal ?? `code ${code}`}) after ${(ran / 1000).toFixed(1)} s; starting another in ${backoffMs / 1000} s`);
      timer = setTimeout(launch, backoffMs);
      backoffMs = Math.min(30_000, backoffMs * 2);
    });
  };
  launch();
  return {
    stop: async () => {
      stopping = true;
      if (timer) clearTimeout(timer);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((done) => child.once('exit', done));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export const adminTokenFile = (dataDirectory: string) => join(dataDirectory, 'admin-token');

/** The admin token of this data directory: the one in DATA_DIR/admin-token while it is valid, else a new one written there. */
export async function ensureAdminToken(prisma: PrismaClient, dataDirectory: string): Promise<{ token: string; created: boolean }> {
  const file = adminTokenFile(dataDirectory);
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    const check = await verifyToken(prisma, token);
    if (check.ok && check.token.role === 'ADMIN') return { token, created: false };
  }
  const taken = new Set((await prisma.apiToken.findMany({ select: { name: true } })).map((t) => t.name));
  let name = 'admin';
  for (let n = 2; taken.has(name); n++) name = `admin-${n}`;
  const { token } = await createToken(prisma, { name, role: 'ADMIN', createdBy: 'apl-merge start' });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, created: true };
}

export async function startCommand(flags: StartFlags): Promise<void> {
  const stopRequested = stopSignal();
  const security = securitySettings(flags);
  const dataDirectory = resolve(flags.dataDir);
  // Refused before anything is written when the embedded server could not reach its data.
  if (!process.env.DATABASE_URL) checkReachableByPostgresUser(embeddedDatabaseDirectory(dataDirectory));
  mkdirSync(dataDirectory, { recursive: true });
  // The embedded server may run as another user (never as root): it must be able to reach its data.
  chmodSync(dataDirectory, 0o755);
  let embedded: EmbeddedDatabase | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedDatabase(
      dataDirectory,
      (line) => {
        if (line.startsWith('the embedded')) console.log(`database: ${line}`);
      },
      { supervise: true },
    );
    url = embedded.url;
    console.log(`database: embedded PostgreSQL at ${redactedUrl(url)} (${embedded.created ? 'created' : 'data'} in ${join(dataDirectory, 'postgres')})`);
  } else {
    console.log(`database: ${redactedUrl(url)}`);
  }
  const { migration, prisma, queue, close } = await openServices(url);
  if (migration.applied.length > 0) console.log(`applied ${migration.applied.length} migration(s): ${migration.applied.join(', ')}`);
  // The data directory itself (database, password, admin token) is not a data root; these folders in it are.
  const ownRoots = ['models', 'demo', 'outputs'].map((name) => join(dataDirectory, name));
  for (const dir of ownRoots) mkdirSync(dir, { recursive: true });
  const roots = [...namedRoots(ownRoots), ...(flags.dataRoots || process.env.APL_MERGE_DATA_ROOTS ? dataRoots(flags.dataRoots) : [])];
  const outputRoot = join(dataDirectory, 'outputs');
  const admin = await ensureAdminToken(prisma, dataDirectory);
  const worker = superviseWorker({ ...process.env, DATABASE_URL: url, APL_MERGE_OUTPUT_DIR: outputRoot }, (line) => console.log(line));
  // The demo's zoo trains on this thread: do it before serving, so no request waits behind it.
  const demo = flags.demo && (await prisma.model.count()) === 0 ? await registerDemo(prisma, queue, join(dataDirectory, 'demo'), (line) => console.log(line)) : undefined;
  const server = await startApiServer({ prisma, dataRoots: roots, hiddenPaths: [dataDirectory], databaseUrl: url, queue, port: Number(flags.port), host: flags.host, security });
  console.log(`data roots: ${roots.map((r) => `${r.name}=${r.path}`).join(', ')}; outputs in ${outputRoot}`);
  console.log(`GraphQL API at ${server.url} (queries and mutations over HTTP, subscriptions over WebSocket)`);
  console.log(`admin token ${admin.created ? 'created' : 'reused'}: ${adminTokenFile(dataDirectory)} (send it as "Authorization: Bearer <token>")`);
  console.log(`open http://${flags.host}:${server.port}/#token=${admin.token}`);
  if (demo) console.log(`try: { lineage(baseId: "${demo.baseId}") { nodes { name kind depth } edges { relation weight } } }`);
  await stopRequested;
  await worker.stop();
  await server.stop();
  await close();
  await embedded?.stop();
}
