/**
 * Jobs that do not end normally, with real worker processes: a cancel stops a running job through
 * the engine's AbortSignal and leaves nothing behind, a queued job cancelled never runs, and a
 * worker killed mid-job has its job retried by another worker, which registers it exactly once.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiServer } from '../src/api/server';
import { QueueSettings } from '../src/jobs/queue';
import { PrismaClient } from '../src/store/client';
import { takeLease, transitionJob } from '../src/store/jobs';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { subscribe, waitFor } from './helpers/graphql';
import { expectJobInvariants } from './helpers/invariants';
import { tinyFamily } from './helpers/tiny-models';
import { WorkerProcess } from './helpers/worker-process';

jest.setTimeout(180000);

// Lost jobs are noticed after 10 s without a heartbeat (the least pg-boss allows), checked every second.
const SETTINGS: QueueSettings = { heartbeatSeconds: 10, retryLimit: 2, superviseSeconds: 1 };

let platform: TestPlatform;
let prisma: PrismaClient;
let server: ApiServer;
let root: string;
let outputs: string;
let gql: TestPlatform['gql'];
const workers: WorkerProcess[] = [];
const ids = { base: '', finetune: '', task: '' };

const workerEnv = () => ({
  APL_MERGE_HEARTBEAT_SECONDS: String(SETTINGS.heartbeatSeconds),
  APL_MERGE_SUPERVISE_SECONDS: String(SETTINGS.superviseSeconds),
  APL_MERGE_RETRY_LIMIT: String(SETTINGS.retryLimit),
  APL_MERGE_WORKER_HEARTBEAT_SECONDS: '1',
});

type WorkerRow = { name: string; pid: number; alive: boolean; currentJob: string | null; stoppedAt: string | null };
const workersNow = async (all = false) => (await gql<{ workers: WorkerRow[] }>('query($all: Boolean!) { workers(all: $all) { name pid alive currentJob stoppedAt } }', { all })).data!.workers;

async function startWorker(): Promise<WorkerProcess> {
  const worker = await platform.startWorker(workerEnv());
  workers.push(worker);
  return worker;
}

beforeAll(async () => {
  platform = await startTestPlatform(SETTINGS);
  ({ prisma, server, root, outputs, gql } = platform);
  // Big enough that exact row-level importance takes seconds: time to cancel or kill mid-job. (Rows
  // of the last two layers are cheap rank-one updates; the first two layers' rows pay for the
  // layers after them.)
  mkdirSync(join(root, 'family'), { recursive: true });
  tinyFamily({ seed: 5, tasks: [{ name: 'slow', classes: 4 }], hidden: [256, 256, 256, 256], probeSize: 1024, dir: join(root, 'family') });
  const register = `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }`;
  ids.base = (await gql<{ registerModel: { model: { id: string } } }>(register, { input: { name: 'base', kind: 'BASE', path: join(root, 'family/base') } })).data!.registerModel.model.id;
  ids.finetune = (await gql<{ registerModel: { model: { id: string } } }>(register, { input: { name: 'slow-ft', kind: 'FINETUNE', path: join(root, 'family/slow'), parentIds: [ids.base] } })).data!.registerModel.model.id;
  ids.task = (await gql<{ registerTask: { task: { id: string } } }>(`mutation($input: RegisterTaskInput!) { registerTask(input: $input) { task { id } } }`, { input: { name: 'slow', path: join(root, 'family/slow.safetensors') } })).data!.registerTask.task.id;
});

afterAll(() => platform?.stop());

type Progress = { id: string; phase: string; done: number; status: string; message: string };

/** Follows a job; resolves `firstProgress` at its first engine progress event and `done` at its final event. */
function follow(jobId: string) {
  const events: Progress[] = [];
  let started!: () => void;
  const firstProgress = new Promise<void>((resolve) => (started = resolve));
  const subscription = subscribe<{ jobProgress: Progress }>(server.url, `subscription($id: ID!) { jobProgress(jobId: $id) { id phase done status message } }`, { id: jobId }, (data) => {
    events.push(data.jobProgress);
    if (data.jobProgress.phase !== 'status') started();
  }, platform.token);
  return { events, firstProgress, done: subscription.done.then(() => subscription.close()) };
}

const startAnalysis = async () => {
  const result = await gql<{ startAnalysis: { analysis: { id: string } } }>(`mutation($input: StartAnalysisInput!) { startAnalysis(input: $input) { analysis { id } } }`, {
    input: { modelId: ids.finetune, taskId: ids.task, level: 'ROW', estimator: 'EXACT' },
  });
  expect(result.errors).toBeUndefined();
  return result.data!.startAnalysis.analysis.id;
};

const cancel = (id: string) => gql<{ cancelJob: { kind: string; status: string } }>(`mutation($id: ID!) { cancelJob(id: $id) { kind status } }`, { id });
const leftovers = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);

it('cancels a running analysis: the engine stops, the job ends CANCELLED, nothing is written', async () => {
  const worker = await startWorker();
  const id = await startAnalysis();
  const job = follow(id);
  await job.firstProgress;
  const cancelled = await cancel(id);
  expect(cancelled.data!.cancelJob).toEqual({ kind: 'ANALYSIS', status: 'CANCELLED' });
  await job.done;
  expect(job.events.at(-1)).toMatchObject({ status: 'CANCELLED', message: 'cancelled on request' });
  // The worker stopped the engine (not merely discarded a finished result).
  await worker.waitForOutput(new RegExp(`analysis ${id}: cancelled\\n`));
  const row = await prisma.importanceAnalysis.findUniqueOrThrow({ where: { id } });
  expect(row).toMatchObject({ status: 'CANCELLED', artifactUri: null });
  expect(leftovers(join(outputs, 'analyses'))).toEqual([]);
  // Nothing is recorded after the final event.
  const last = BigInt(job.events.at(-1)!.id);
  await new Promise((r) => setTimeout(r, 500));
  expect(await prisma.jobEvent.count({ where: { jobId: id, id: { gt: last } } })).toBe(0);
  const again = await cancel(id);
  expect(again.errors![0]).toMatchObject({ message: `job ${id} is already CANCELLED`, extensions: { code: 'CONFLICT' } });
  const unknown = await cancel('00000000-0000-0000-0000-000000000000');
  expect(unknown.errors![0].extensions.code).toBe('NOT_FOUND');
});

it('cancels a queued analysis before any worker runs it', async () => {
  // The one worker (concurrency 1) is busy with the first job, so the second waits in the queue.
  const busy = await startAnalysis();
  const busyJob = follow(busy);
  await busyJob.firstProgress;
  const queued = await startAnalysis();
  expect((await cancel(queued)).data!.cancelJob.status).toBe('CANCELLED');
  const state = await prisma.$queryRawUnsafe<Array<{ state: string }>>(`SELECT state::text FROM pgboss.job WHERE id = $1::uuid`, queued);
  expect(state).toEqual([{ state: 'cancelled' }]);
  await cancel(busy);
  await busyJob.done;
  const events = await prisma.jobEvent.findMany({ where: { jobId: queued }, orderBy: { id: 'asc' } });
  expect(events.map((e) => e.status)).toEqual(['QUEUED', 'CANCELLED']);
});

it('retries the job of a worker killed mid-merge on another worker, and registers the merge exactly once', async () => {
  for (const worker of workers) await worker.stop();
  const doomed = await startWorker();
  const started = await gql<{ startMerge: { merge: { id: string } } }>(`mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }`, {
    input: { name: 'survivor', method: 'apl', baseModelId: ids.base, models: [{ modelId: ids.finetune, probeTaskId: ids.task }], parameters: { level: 'row', estimator: 'exact' }, seed: 3 },
  });
  expect(started.errors).toBeUndefined();
  const id = started.data!.startMerge.merge.id;
  const job = follow(id);
  await job.firstProgress;
  // The API says who runs it.
  await waitFor(async () => (await workersNow()).some((w) => w.pid === doomed.child.pid && w.alive && w.currentJob === id), 'the worker to report its job', 10000);
  doomed.child.kill('SIGKILL');
  await doomed.exited;
  // Three missed beats (1 s each) later it is no longer alive; workers(all: true) still lists it, lost (not stopped).
  await waitFor(async () => !(await workersNow()).some((w) => w.pid === doomed.child.pid), 'the killed worker to count as gone', 10000);
  expect((await workersNow(true)).find((w) => w.pid === doomed.child.pid)).toMatchObject({ alive: false, stoppedAt: null });
  const replacement = await startWorker();
  await job.done;
  expect(job.events.at(-1)).toMatchObject({ status: 'COMPLETED' });
  const running = job.events.filter((e) => e.phase === 'status' && e.status === 'RUNNING');
  expect(running).toHaveLength(2);
  expect(running[1].message).toMatch(/running again on .* \(attempt 2\)/);
  const merge = await prisma.merge.findUniqueOrThrow({ where: { id } });
  expect(merge).toMatchObject({ status: 'COMPLETED', attempts: 2 });
  expect(await prisma.model.count({ where: { name: 'survivor' } })).toBe(1);
  expect(await prisma.model.count({ where: { kind: 'MERGE' } })).toBe(1);
  // The killed attempt's staging directory was cleared; only the published output remains.
  expect(leftovers(join(outputs, 'merges'))).toEqual([id]);
  await waitFor(async () => (await prisma.$queryRawUnsafe<Array<{ state: string }>>(`SELECT state::text FROM pgboss.job WHERE id = $1::uuid`, id))[0]?.state === 'completed', 'the queue to mark the job completed', 10000);
  // A worker that stops cleanly says so at once.
  await replacement.stop();
  expect((await workersNow(true)).find((w) => w.pid === replacement.child.pid)).toMatchObject({ alive: false, stoppedAt: expect.any(String), currentJob: null });
});

it('a stopping worker lets a running job finish within its drain time, and hands back one that does not', async () => {
  for (const worker of workers) await worker.stop();
  // Half a second of drain: the analysis takes longer, so it goes back to the queue, QUEUED and owned by it.
  const hasty = await platform.startWorker({ ...workerEnv(), APL_MERGE_DRAIN_SECONDS: '0.5' });
  workers.push(hasty);
  const first = await startAnalysis();
  const handedBack = follow(first);
  await handedBack.firstProgress;
  hasty.child.kill('SIGTERM');
  expect(await hasty.exited).toBe(0);
  expect(hasty.output()).toMatch(/1 job\(s\) did not finish within the 0\.5 s drain; handing them back to the queue/);
  expect(await prisma.importanceAnalysis.findUniqueOrThrow({ where: { id: first } })).toMatchObject({ status: 'QUEUED', attempts: 1 });
  expect(leftovers(join(outputs, 'analyses')).filter((e) => e.includes(first))).toEqual([]);
  // The next worker takes it up and completes it.
  const patient = await startWorker();
  await handedBack.done;
  expect(handedBack.events.map((e) => e.message)).toContainEqual(expect.stringMatching(/stopped before the job finished \(drain time 0\.5 s\); handed back to the queue/));
  expect(await prisma.importanceAnalysis.findUniqueOrThrow({ where: { id: first } })).toMatchObject({ status: 'COMPLETED', attempts: 2 });
  // With the default drain (30 s) a running job finishes before the worker exits.
  const second = await startAnalysis();
  const finishes = follow(second);
  await finishes.firstProgress;
  patient.child.kill('SIGTERM');
  expect(await patient.exited).toBe(0);
  await finishes.done;
  expect(await prisma.importanceAnalysis.findUniqueOrThrow({ where: { id: second } })).toMatchObject({ status: 'COMPLETED', attempts: 1 });
});

it('an attempt whose job another attempt has taken over stops, and leaves the new attempt its job and files', async () => {
  for (const worker of workers) await worker.stop();
  const first = await startWorker();
  const id = await startAnalysis();
  const job = follow(id);
  await job.firstProgress;
  // Another attempt takes the job, as a second worker does once the queue gave up on the first (its
  // heartbeat lapsed during a long stall), and starts writing its staging directory.
  const takeover = await takeLease(prisma, 'analysis', id, 'other-host:4242', 'running again on other-host:4242 (attempt 2)');
  expect(takeover).toBeDefined();
  const theirs = join(outputs, 'analyses', `.${id}.tmp-second-attempt`);
  mkdirSync(theirs, { recursive: true });
  writeFileSync(join(theirs, 'partial'), 'being written');
  await first.waitForOutput(new RegExp(`analysis ${id}: superseded by another attempt`), 30000);
  const row = await prisma.importanceAnalysis.findUniqueOrThrow({ where: { id } });
  expect(row).toMatchObject({ status: 'RUNNING', lease: takeover!.lease, leaseWorker: 'other-host:4242', artifactUri: null });
  expect(readFileSync(join(theirs, 'partial'), 'utf8')).toBe('being written');
  expect(existsSync(join(outputs, 'analyses', id))).toBe(false);
  // Only the lease holder may end it.
  expect(await transitionJob(prisma, 'analysis', id, { from: ['RUNNING'], to: 'COMPLETED', message: 'stale', lease: randomUUID() })).toBe(false);
  expect(await transitionJob(prisma, 'analysis', id, { from: ['RUNNING'], to: 'CANCELLED', message: 'test over', lease: takeover!.lease })).toBe(true);
  await job.done;
});

it('a worker with --concurrency 2 runs two jobs at once and completes both', async () => {
  for (const worker of workers) await worker.stop();
  const wide = await platform.startWorker({ ...workerEnv(), APL_MERGE_WORKER_CONCURRENCY: '2' });
  workers.push(wide);
  const [a, b] = [await startAnalysis(), await startAnalysis()];
  const jobs = [follow(a), follow(b)];
  await Promise.all(jobs.map((j) => j.firstProgress));
  // Both are RUNNING on the one worker, which says so.
  expect((await prisma.importanceAnalysis.findMany({ where: { id: { in: [a, b] } } })).map((r) => r.status)).toEqual(['RUNNING', 'RUNNING']);
  await waitFor(async () => (await workersNow()).some((w) => w.pid === wide.child.pid && new Set([a, b]).has(w.currentJob ?? '')), 'the worker to report its jobs', 5000);
  const listed = (await gql<{ workers: Array<{ pid: number; currentJobs: string[]; concurrency: number }> }>('{ workers { pid currentJobs concurrency } }')).data!.workers.find((w) => w.pid === wide.child.pid)!;
  expect(listed.concurrency).toBe(2);
  expect([...listed.currentJobs].sort()).toEqual([a, b].sort());
  await Promise.all(jobs.map((j) => j.done));
  expect((await prisma.importanceAnalysis.findMany({ where: { id: { in: [a, b] } } })).map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED']);
});

it('leaves, after every fault above, every job ended and nothing orphaned', async () => {
  for (const worker of workers) await worker.stop();
  await expectJobInvariants(prisma, [outputs]);
});
