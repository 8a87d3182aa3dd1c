/**
 * The database goes away and comes back, under a real `apl-merge serve` and a real worker process:
 * every connection to the platform's database is cut (`57P01 terminating connection due to
 * administrator command`, what a fast shutdown sends) and new ones are refused for a while, then
 * allowed again. Both processes stay up; the API answers SERVICE_UNAVAILABLE meanwhile; afterwards
 * it answers again, a subscription opened before the outage still receives events (its LISTEN
 * connection came back and re-read what it missed), and the worker takes and completes a new merge.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
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
import { tinyFamily } from './helpers/tiny-models';
import { startWorkerProcess, WorkerProcess } from './helpers/worker-process';

jest.setTimeout(180000);

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
  // Lost jobs are noticed after 10 s without a heartbeat (pg-boss's least), checked every second; both processes open the queue so.
  const queueEnv = { APL_MERGE_HEARTBEAT_SECONDS: '10', APL_MERGE_SUPERVISE_SECONDS: '1' };
  const child = spawn(process.execPath, [resolve(__dirname, '../bin/apl-merge.js'), 'serve', '--port', '0', '--data-roots', root], { env: { ...process.env, ...queueEnv, NODE_ENV: 'production', DATABASE_URL: database.url } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(() => /GraphQL API at (\S+)/.test(output), 'the API to start', 30000);
  api = { child, url: /GraphQL API at (\S+)/.exec(output)![1], output: () => output };
  worker = startWorkerProcess({ ...queueEnv, DATABASE_URL: database.url, APL_MERGE_OUTPUT_DIR: join(root, 'outputs') });
  await worker.waitForOutput(/waiting for merges, analyses and evaluations/);
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
  const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }';
  const base = await gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(root, 'models/base') } });
  const ft = await gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'ft', kind: 'FINETUNE', path: join(root, 'models/finetune-1'), parentIds: [base.data!.registerModel.model.id] } });
  // A subscription opened before the outage, to a job whose events we write ourselves.
  const job = await prisma.merge.create({ data: { method: 'linear', parameters: {} } });
  await appendJobEvent(prisma, { jobKind: 'merge', jobId: job.id, phase: 'status', done: 0, total: 2, message: 'queued', status: 'QUEUED' });
  const seen: string[] = [];
  const stream = subscribe<{ jobProgress: { message: string } }>(api.url, 'subscription($id: ID!) { jobProgress(jobId: $id) { message } }', { id: job.id }, (d) => seen.push(d.jobProgress.message), token);
  await waitFor(() => seen.length === 1, 'the replayed event');

  await prisma.$disconnect();
  await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS false`);
  // With a timeout, pg_terminate_backend returns once each backend has exited, not when it has
  // been signalled: a request sent at once can no longer reach a backend still alive.
  await admin(`SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = '${name()}'`);
  const during = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ models { nodes { name } } }' }) });
  expect(during.status).toBe(503);
  expect(await during.json()).toEqual({ errors: [{ message: expect.stringMatching(/the database is unavailable/), extensions: { code: 'SERVICE_UNAVAILABLE' } }] });
  await new Promise((r) => setTimeout(r, 2000));
  expect(api.child.exitCode).toBeNull();
  expect(worker.child.exitCode).toBeNull();

  await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`);
  await waitFor(async () => (await gql<{ models: { nodes: unknown[] } }>('{ models { nodes { name } } }')).data?.models.nodes.length === 2, 'the API to answer again', 30000);
  // An event written after the outage reaches the subscriber opened before it.
  prisma = createPrisma(database.url);
  await appendJobEvent(prisma, { jobKind: 'merge', jobId: job.id, phase: 'status', done: 2, total: 2, message: 'after the outage', status: 'COMPLETED' });
  await stream.done;
  expect(seen).toEqual(['queued', 'after the outage']);
  // The worker still takes jobs.
  const merge = await gql<{ startMerge: { merge: { id: string } } }>('mutation($m: ID!) { startMerge(input: { name: "after", method: "linear", models: [{ modelId: $m, parameters: { weight: 1 } }] }) { merge { id } } }', { m: ft.data!.registerModel.model.id });
  expect(merge.errors).toBeUndefined();
  await waitFor(async () => (await prisma.merge.findUniqueOrThrow({ where: { id: merge.data!.startMerge.merge.id } })).status === 'COMPLETED', 'the merge after the outage', 60000).catch(async (err) => {
    const state = await prisma.$queryRawUnsafe(`SELECT name, state::text, retry_count FROM pgboss.job WHERE id = $1::uuid`, merge.data!.startMerge.merge.id);
    const row = await prisma.merge.findUniqueOrThrow({ where: { id: merge.data!.startMerge.merge.id } });
    throw new Error(`${(err as Error).message}: queue ${JSON.stringify(state)}, row ${row.status} ${row.error}; worker:\n${worker.output()}`);
  });
  expect(await prisma.model.count({ where: { name: 'after' } })).toBe(1);
  // Synthetic checkpoints are no model family: merged, registered, and said why they were not evaluated.
  expect((await prisma.merge.findUniqueOrThrow({ where: { id: merge.data!.startMerge.merge.id } })).result).toMatchObject({ evaluation: expect.stringMatching(/^not evaluated: model_type "synthetic" is not a family the engine runs/) });
  expect(api.child.exitCode).toBeNull();
  expect(worker.child.exitCode).toBeNull();
  expect(api.output()).toMatch(/listener lost its connection; reconnecting/);
  // The job whose events we wrote by hand is no real job: end it, then check what every fault must leave.
  await prisma.merge.update({ where: { id: job.id }, data: { status: 'COMPLETED' } });
  await prisma.merge.delete({ where: { id: job.id } });
  await expectJobInvariants(prisma, [join(root, 'outputs')]);
});

it('a job running while the database goes away is retried once it is back, and completes once', async () => {
  // Slow enough (seconds of exact row-level importance) for the outage to land mid-job.
  mkdirSync(join(root, 'slow'), { recursive: true });
  tinyFamily({ seed: 5, tasks: [{ name: 'slow', classes: 4 }], hidden: [256, 256, 256, 256], probeSize: 1024, dir: join(root, 'slow') });
  const gql = graphqlClient(api.url, token);
  const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }';
  const base = (await gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'slow-base', kind: 'BASE', path: join(root, 'slow/base') } })).data!.registerModel.model.id;
  const ft = (await gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'slow-ft', kind: 'FINETUNE', path: join(root, 'slow/slow'), parentIds: [base] } })).data!.registerModel.model.id;
  const task = (await gql<{ registerTask: { task: { id: string } } }>('mutation($p: String!) { registerTask(input: { name: "slow", path: $p }) { task { id } } }', { p: join(root, 'slow/slow.safetensors') })).data!.registerTask.task.id;
  const started = await gql<{ startAnalysis: { analysis: { id: string } } }>('mutation($m: ID!, $t: ID!) { startAnalysis(input: { modelId: $m, taskId: $t, level: ROW, estimator: EXACT }) { analysis { id } } }', { m: ft, t: task });
  const id = started.data!.startAnalysis.analysis.id;
  await waitFor(async () => (await prisma.jobEvent.count({ where: { jobId: id, phase: { not: 'status' } } })) > 0, 'the first progress event', 30000);
  await prisma.$disconnect();
  await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS false`);
  await admin(`SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = '${name()}'`);
  // Longer than the rest of the job: its progress and its completion cannot be written.
  await new Promise((r) => setTimeout(r, 6000));
  await admin(`ALTER DATABASE ${name()} ALLOW_CONNECTIONS true`);
  prisma = createPrisma(database.url);
  await waitFor(async () => (await prisma.importanceAnalysis.findUniqueOrThrow({ where: { id } })).status === 'COMPLETED', `the analysis to complete after the outage (worker:\n${worker.output()})`, 90000);
  const row = await prisma.importanceAnalysis.findUniqueOrThrow({ where: { id } });
  expect(row.attempts).toBeGreaterThanOrEqual(1);
  expect(row.artifactUri).toMatch(/importance\.safetensors$/);
  const completions = await prisma.jobEvent.count({ where: { jobId: id, phase: 'status', status: 'COMPLETED' } });
  expect(completions).toBe(1);
  expect(worker.child.exitCode).toBeNull();
  await expectJobInvariants(prisma, [join(root, 'outputs')]);
});
