/**
 * The database goes away and comes back, under a real `apl-merge serve` and a real worker process:
 * every connection to the platform's database is cut (`57P01 terminating connection due to
 * administrator command`, what a fast shutdown sends) and new ones are refused for a while, then
 * allowed again. Both processes stay up; the API answers SERVICE_UNAVAILABLE meanwhile; afterwards
 * it answers again, a subscription opened before the outage still receives events (its LISTEN
 * connection came back and re-read what it missed), and the worker takes and completes a new merge.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { createPrisma, DEFAULT_DATABASE_URL, PrismaClient } from '../src/store/client';
import { appendJobEvent } from '../src/store/events';
import { migrate } from '../src/store/migrate';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { createTestDatabase } from './helpers/database';
import { removeTempDirs, tempDir } from './helpers/files';
import { graphqlClient, subscribe, waitFor } from './helpers/graphql';
import { expectJobInvariants } from './helpers/invariants';
import { testToken } from './helpers/tokens';
import { startWorkerProcess, WorkerProcess } from './helpers/worker-process';

jest.setTimeout(120000);

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let prisma: PrismaClient;
let api: { child: ChildProcess; url: string; output: () => string };
let worker: WorkerProcess;
let token: string;
let root: string;
const name = () => new URL(database.url).pathname.slice(1);

/** Runs SQL on the server's maintenance database (never the platform's own). */
async function admin(sql: string): Promise<void> {
  const client = new Client({ connectionString: process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  prisma = createPrisma(database.url);
  token = await testToken(prisma, 'ADMIN');
  root = tempDir();
  writeSyntheticFamily(join(root, 'models'), { tensors: [{ name: 'layers.0.w', shape: [4, 4] }], fineTunes: 2, seed: 9 });
  const child = spawn(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), 'serve', '--port', '0', '--data-roots', root], { env: { ...process.env, NODE_ENV: 'production', DATABASE_URL: database.url } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(() => /GraphQL API at (\S+)/.test(output), 'the API to start', 30000);
  api = { child, url: /GraphQL API at (\S+)/.exec(output)![1], output: () => output };
  worker = startWorkerProcess({ DATABASE_URL: database.url, APL_MERGE_OUTPUT_DIR: join(root, 'outputs') });
  await worker.waitForOutput(/waiting for merges and analyses/);
});

afterAll(async () => {
  await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`).catch(() => undefined);
  await worker?.stop();
  if (api && api.child.exitCode === null) {
    const exited = new Promise((done) => api.child.once('exit', done));
    api.child.kill('SIGTERM');
    await exited;
  }
  await prisma?.$disconnect();
  await database?.drop();
  removeTempDirs();
});

it('keeps the API and the worker up through a database outage, answers SERVICE_UNAVAILABLE meanwhile, and carries on', async () => {
  const gql = graphqlClient(api.url, token);
  const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { id } }';
  const base = await gql<{ registerModel: { id: string } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(root, 'models/base') } });
  const ft = await gql<{ registerModel: { id: string } }>(REGISTER, { input: { name: 'ft', kind: 'FINETUNE', path: join(root, 'models/finetune-1'), parentIds: [base.data!.registerModel.id] } });
  // A subscription opened before the outage, to a job whose events we write ourselves.
  const job = await prisma.merge.create({ data: { method: 'linear', parameters: {} } });
  await appendJobEvent(prisma, { jobKind: 'merge', jobId: job.id, phase: 'status', done: 0, total: 2, message: 'queued', status: 'QUEUED' });
  const seen: string[] = [];
  const stream = subscribe<{ jobProgress: { message: string } }>(api.url, 'subscription($id: ID!) { jobProgress(jobId: $id) { message } }', { id: job.id }, (d) => seen.push(d.jobProgress.message), token);
  await waitFor(() => seen.length === 1, 'the replayed event');

  await prisma.$disconnect();
  await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS false`);
  await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name()}'`);
  const during = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ models { models { name } } }' }) });
  expect(during.status).toBe(503);
  expect(await during.json()).toEqual({ errors: [{ message: expect.stringMatching(/the database is unavailable/), extensions: { code: 'SERVICE_UNAVAILABLE' } }] });
  await new Promise((r) => setTimeout(r, 2000));
  expect(api.child.exitCode).toBeNull();
  expect(worker.child.exitCode).toBeNull();

  await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`);
  await waitFor(async () => (await gql<{ models: { models: unknown[] } }>('{ models { models { name } } }')).data?.models.models.length === 2, 'the API to answer again', 30000);
  // An event written after the outage reaches the subscriber opened before it.
  prisma = createPrisma(database.url);
  await appendJobEvent(prisma, { jobKind: 'merge', jobId: job.id, phase: 'status', done: 2, total: 2, message: 'after the outage', status: 'COMPLETED' });
  await stream.done;
  expect(seen).toEqual(['queued', 'after the outage']);
  // The worker still takes jobs.
  const merge = await gql<{ startMerge: { id: string } }>('mutation($m: ID!) { startMerge(input: { name: "after", method: "linear", models: [{ modelId: $m, parameters: { weight: 1 } }] }) { id } }', { m: ft.data!.registerModel.id });
  expect(merge.errors).toBeUndefined();
  await waitFor(async () => (await prisma.merge.findUniqueOrThrow({ where: { id: merge.data!.startMerge.id } })).status === 'COMPLETED', 'the merge after the outage', 60000).catch(async (err) => {
    const state = await prisma.$queryRawUnsafe(`SELECT name, state::text, retry_count FROM pgboss.job WHERE id = $1::uuid`, merge.data!.startMerge.id);
    const row = await prisma.merge.findUniqueOrThrow({ where: { id: merge.data!.startMerge.id } });
    throw new Error(`${(err as Error).message}: queue ${JSON.stringify(state)}, row ${row.status} ${row.error}; worker:\n${worker.output()}`);
  });
  expect(await prisma.model.count({ where: { name: 'after' } })).toBe(1);
  // Synthetic checkpoints have no config.json: merged, registered, and said why they were not evaluated.
  expect((await prisma.merge.findUniqueOrThrow({ where: { id: merge.data!.startMerge.id } })).result).toMatchObject({ evaluation: 'not evaluated: no config.json, so the model family is unknown' });
  expect(api.child.exitCode).toBeNull();
  expect(worker.child.exitCode).toBeNull();
  expect(api.output()).toMatch(/listener lost its connection; reconnecting/);
  // The job whose events we wrote by hand is no real job: end it, then check what every fault must leave.
  await prisma.merge.update({ where: { id: job.id }, data: { status: 'COMPLETED' } });
  await prisma.merge.delete({ where: { id: job.id } });
  await expectJobInvariants(prisma, [join(root, 'outputs')]);
});
