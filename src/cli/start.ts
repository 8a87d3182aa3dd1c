/**
 * `apl-merge start` (what `npm start` runs): the whole platform on one machine. Uses DATABASE_URL
 * when set, else an embedded PostgreSQL under the data directory; migrates; serves the GraphQL API;
 * runs one worker as a child process (so the engine's computing never stalls the API); and on the
 * first start with an empty database registers the demo (--no-demo turns it off).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startApiServer } from '../api/server';
import { redactedUrl } from '../store/client';
import { EmbeddedDatabase, startEmbeddedDatabase } from '../store/embedded';
import { stopSignal } from '../jobs/stop-signal';
import { registerDemo } from './demo-registry';
import { dataRoots, openServices } from './serve';

export interface StartFlags {
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

export async function startCommand(flags: StartFlags): Promise<void> {
  const stopRequested = stopSignal();
  const dataDirectory = resolve(flags.dataDir);
  mkdirSync(dataDirectory, { recursive: true });
  // The embedded server may run as another user (never as root): it must be able to reach its data.
  chmodSync(dataDirectory, 0o755);
  let embedded: EmbeddedDatabase | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedDatabase(dataDirectory);
    url = embedded.url;
    console.log(`database: embedded PostgreSQL at ${redactedUrl(url)} (${embedded.created ? 'created' : 'data'} in ${join(dataDirectory, 'postgres')})`);
  } else {
    console.log(`database: ${redactedUrl(url)}`);
  }
  const { migration, prisma, queue, close } = await openServices(url);
  if (migration.applied.length > 0) console.log(`applied ${migration.applied.length} migration(s): ${migration.applied.join(', ')}`);
  const roots = [dataDirectory, ...(flags.dataRoots || process.env.APL_MERGE_DATA_ROOTS ? dataRoots(flags.dataRoots) : [])];
  const outputRoot = join(dataDirectory, 'outputs');
  const worker = startWorkerProcess({ ...process.env, DATABASE_URL: url, APL_MERGE_OUTPUT_DIR: outputRoot });
  // The demo's zoo trains on this thread: do it before serving, so no request waits behind it.
  const demo = flags.demo && (await prisma.model.count()) === 0 ? await registerDemo(prisma, queue, dataDirectory, (line) => console.log(line)) : undefined;
  const server = await startApiServer({ prisma, dataRoots: roots, databaseUrl: url, queue, port: Number(flags.port), host: flags.host });
  console.log(`data roots: ${roots.join(', ')}; outputs in ${outputRoot}`);
  console.log(`GraphQL API at ${server.url} (queries and mutations over HTTP, subscriptions over WebSocket)`);
  if (demo) console.log(`try: { lineage(baseId: "${demo.baseId}") { nodes { name kind depth } edges { relation weight } } }`);
  await stopRequested;
  const workerExit = new Promise((done) => worker.once('exit', done));
  worker.kill('SIGTERM');
  await workerExit;
  await server.stop();
  await close();
  await embedded?.stop();
}
