/**
 * Live progress over graphql-ws with a real WebSocket client: events written by another process's
 * connection (as a worker would) reach subscribers of an API server that did not start the job,
 * in order, and a client reconnecting with the last event id it saw gets what it missed.
 */
import { randomUUID } from 'node:crypto';
import { ApiServer, startApiServer } from '../src/api/server';
import { createPrisma, PrismaClient } from '../src/store/client';
import { appendJobEvent, insertJobEvent } from '../src/store/events';
import { migrate } from '../src/store/migrate';
import { createTestDatabase } from './helpers/database';
import { subscribe, waitFor } from './helpers/graphql';
import { testToken } from './helpers/tokens';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let apiPrisma: PrismaClient;
let workerPrisma: PrismaClient;
let server: ApiServer;
let token: string;

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  apiPrisma = createPrisma(database.url);
  workerPrisma = createPrisma(database.url);
  server = await startApiServer({ prisma: apiPrisma, dataRoots: [], databaseUrl: database.url });
  token = await testToken(apiPrisma, 'VIEWER');
});

afterAll(async () => {
  await server?.stop();
  await apiPrisma?.$disconnect();
  await workerPrisma?.$disconnect();
  await database?.drop();
});

const SUBSCRIPTION = `subscription($jobId: ID!, $after: ID) { jobProgress(jobId: $jobId, afterEventId: $after) { id done total status message } }`;
type Event = { id: string; done: number; total: number; status: string; message: string };

const subscribeJob = (jobId: string, after: string | undefined, onEvent: (e: Event) => void) =>
  subscribe<{ jobProgress: Event }>(server.url, SUBSCRIPTION, { jobId, after }, (data) => onEvent(data.jobProgress), token);

/** A merge row for events to belong to: subscribing to a job that does not exist is an error. */
const newJob = async () => (await workerPrisma.merge.create({ data: { method: 'linear', parameters: {} } })).id;

const step = (jobId: string, done: number, status: 'RUNNING' | 'COMPLETED' = 'RUNNING') =>
  appendJobEvent(workerPrisma, { jobKind: 'merge', jobId, phase: 'merge', done, total: 4, message: `tensor ${done}`, status });


it('streams a job written elsewhere, in order, through to COMPLETED', async () => {
  const jobId = await newJob();
  await step(jobId, 0);
  const seen: Event[] = [];
  const subscription = subscribeJob(jobId, undefined, (e) => seen.push(e));
  await waitFor(() => seen.length === 1, 'the first event', 2000);
  for (const done of [1, 2, 3]) await step(jobId, done);
  await step(jobId, 4, 'COMPLETED');
  await subscription.done;
  await subscription.close();
  expect(seen.map((e) => e.done)).toEqual([0, 1, 2, 3, 4]);
  expect(seen[seen.length - 1].status).toBe('COMPLETED');
  expect(seen.map((e) => BigInt(e.id))).toEqual([...seen.map((e) => BigInt(e.id))].sort((a, b) => (a < b ? -1 : 1)));
});

it('replays what a reconnecting client missed, from the last event id it saw', async () => {
  const jobId = await newJob();
  const first: Event[] = [];
  const before = subscribeJob(jobId, undefined, (e) => first.push(e));
  await step(jobId, 0);
  await step(jobId, 1);
  await waitFor(() => first.length === 2, 'two events', 2000);
  await before.close(); // the client drops
  await step(jobId, 2);
  await step(jobId, 3);
  const second: Event[] = [];
  const after = subscribeJob(jobId, first[first.length - 1].id, (e) => second.push(e));
  await step(jobId, 4, 'COMPLETED');
  await after.done;
  await after.close();
  expect(second.map((e) => e.done)).toEqual([2, 3, 4]);
});

it('rejects an afterEventId that is not an event id', async () => {
  await expect(subscribeJob(await newJob(), 'yesterday', () => undefined).done).rejects.toThrow(/afterEventId .*yesterday.* is not an event id.*BAD_USER_INPUT/);
});

it('delivers events in id order with none missed when two connections write them at once', async () => {
  const jobId = await newJob();
  const seen: Event[] = [];
  const subscription = subscribeJob(jobId, undefined, (e) => seen.push(e));
  await step(jobId, 0);
  await waitFor(() => seen.length === 1, 'the first event', 2000);
  // The first writer takes an id, then holds its transaction open; the second writes and commits meanwhile.
  // Were the second visible first, a reader would move past the first's id and never see it.
  const slow = workerPrisma.$transaction(async (tx) => {
    await insertJobEvent(tx, { jobKind: 'merge', jobId, phase: 'merge', done: 1, total: 4, message: 'slow writer', status: 'RUNNING' });
    await new Promise((r) => setTimeout(r, 700));
  });
  await new Promise((r) => setTimeout(r, 200));
  const fast = appendJobEvent(apiPrisma, { jobKind: 'merge', jobId, phase: 'merge', done: 2, total: 4, message: 'fast writer', status: 'RUNNING' });
  await Promise.all([slow, fast]);
  await step(jobId, 4, 'COMPLETED');
  await subscription.done;
  await subscription.close();
  expect(seen.map((e) => e.message)).toEqual(['tensor 0', 'slow writer', 'fast writer', 'tensor 4']);
});

it('refuses to follow a job that does not exist, instead of a stream that never ends', async () => {
  const missing = randomUUID();
  await expect(subscribeJob(missing, undefined, () => undefined).done).rejects.toThrow(new RegExp(`no merge, analysis or evaluation has id ${missing}.*NOT_FOUND`));
  const model = randomUUID();
  await expect(subscribe(server.url, 'subscription($id: ID!) { modelJobs(modelId: $id) { id } }', { id: model }, () => undefined, token).done).rejects.toThrow(new RegExp(`model ${model} does not exist.*NOT_FOUND`));
});
