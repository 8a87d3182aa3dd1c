/**
 * Cancel during every phase, with a real worker process: a merge (APL, so probe scoring, merging
 * and evaluation all run), an importance analysis and an evaluation are each cancelled while
 * queued, while the engine computes, and at every point between their steps (the worker holds
 * them there through APL_MERGE_PAUSE_AT, so the cancel lands in that step every time, not by luck
 * of timing). Each ends CANCELLED with the reason, leaves no output and registers nothing; the
 * worker then runs a job to completion, and the fault invariants hold.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pausesFromEnv } from '../src/jobs/pause-points';
import { JobKind, jobState } from '../src/store/jobs';
import { waitFor } from './helpers/graphql';
import { expectJobInvariants } from './helpers/invariants';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { tinyFamily } from './helpers/tiny-models';
import { WorkerProcess } from './helpers/worker-process';

jest.setTimeout(180000);
let platform: TestPlatform;
let worker: WorkerProcess;
const ids = { base: '', ftA: '', ftB: '', taskA: '', taskB: '' };
const HOLD_MS = 1500;
const POINTS: Record<JobKind, string[]> = { merge: ['started', 'computed', 'scored'], analysis: ['started', 'computed', 'published'], evaluation: ['started', 'computed'] };
const PAUSES = Object.entries(POINTS).flatMap(([kind, points]) => points.map((p) => `${kind}:${p}=${HOLD_MS}`)).join(',');

const START: Record<JobKind, (tag: string) => Promise<string>> = {
  merge: async (tag) => {
    const models = [{ modelId: ids.ftA, probeTaskId: ids.taskA, parameters: { weight: 1, density: 0.5 } }, { modelId: ids.ftB, probeTaskId: ids.taskB, parameters: { weight: 1, density: 0.5 } }];
    const result = await platform.gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', { input: { name: `apl-${tag}`, method: 'apl', baseModelId: ids.base, models, parameters: { level: 'row', estimator: 'exact' } } });
    expect(result.errors).toBeUndefined();
    return result.data!.startMerge.merge.id;
  },
  analysis: async () => {
    const result = await platform.gql<{ startAnalysis: { analysis: { id: string } } }>('mutation($m: ID!, $t: ID!) { startAnalysis(input: { modelId: $m, taskId: $t, level: ROW, estimator: EXACT }) { analysis { id } } }', { m: ids.ftA, t: ids.taskA });
    expect(result.errors).toBeUndefined();
    return result.data!.startAnalysis.analysis.id;
  },
  evaluation: async () => {
    const result = await platform.gql<{ evaluateModel: { evaluationRun: { id: string } } }>('mutation($m: ID!, $t: ID!) { evaluateModel(modelId: $m, taskId: $t) { evaluationRun { id } } }', { m: ids.ftA, t: ids.taskA });
    expect(result.errors).toBeUndefined();
    return result.data!.evaluateModel.evaluationRun.id;
  },
};

async function cancel(id: string): Promise<void> {
  const result = await platform.gql<{ cancelJob: { status: string } }>('mutation($id: ID!) { cancelJob(id: $id) { status } }', { id });
  expect(result.errors).toBeUndefined();
}

/** The job ended CANCELLED on request, its attempt stopped (the worker says so), and nothing of it is left. */
async function expectCancelled(kind: JobKind, id: string, outputName?: string): Promise<void> {
  await waitFor(async () => (await jobState(platform.prisma, kind, id))?.status === 'CANCELLED', `${kind} ${id} cancelled`);
  const last = await platform.prisma.jobEvent.findFirstOrThrow({ where: { jobId: id, phase: 'status' }, orderBy: { id: 'desc' } });
  expect(last).toMatchObject({ status: 'CANCELLED', message: 'cancelled on request' });
  expect(existsSync(join(platform.outputs, kind === 'merge' ? 'merges' : 'analyses', id))).toBe(false);
  if (outputName) expect(await platform.prisma.model.count({ where: { name: outputName } })).toBe(0);
}

beforeAll(async () => {
  platform = await startTestPlatform();
  const dir = join(platform.root, 'models');
  const family = tinyFamily({ seed: 5, tasks: [{ name: 'alpha', classes: 3 }, { name: 'beta', classes: 4 }], dir });
  const gql = async <T>(query: string, variables: Record<string, unknown>) => {
    const result = await platform.gql<T>(query, variables);
    expect(result.errors).toBeUndefined();
    return result.data!;
  };
  const task = (name: string, file: string) => gql<{ registerTask: { task: { id: string } } }>('mutation($i: RegisterTaskInput!) { registerTask(input: $i) { task { id } } }', { i: { name, path: file } }).then((d) => d.registerTask.task.id);
  ids.taskA = await task('alpha', family.dataFiles[0]);
  ids.taskB = await task('beta', family.dataFiles[1]);
  const register = (input: Record<string, unknown>) => gql<{ registerModel: { model: { id: string } } }>('mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }', { input }).then((d) => d.registerModel.model.id);
  ids.base = await register({ name: 'base', kind: 'BASE', path: join(dir, 'base') });
  // Not evaluated on registration: the evaluations below are the ones this test asks for.
  ids.ftA = await register({ name: 'ft-alpha', kind: 'FINETUNE', path: join(dir, 'alpha'), parentIds: [ids.base], evaluate: false });
  ids.ftB = await register({ name: 'ft-beta', kind: 'FINETUNE', path: join(dir, 'beta'), parentIds: [ids.base], evaluate: false });
});

afterAll(() => platform?.stop());

it('parses the pause points, and names an entry that does not parse', () => {
  expect([...pausesFromEnv(PAUSES).keys()]).toHaveLength(8);
  expect(pausesFromEnv(' merge:scored=20 , ')).toEqual(new Map([['merge:scored', 20]]));
  expect(() => pausesFromEnv('merge:scored=20,merge:halfway=5')).toThrow('APL_MERGE_PAUSE_AT: "merge:halfway=5" is not kind:point=milliseconds (kinds merge, analysis, evaluation; points started, computed, scored, published)');
});

it('cancels each kind of job while it is queued: no worker ever runs it', async () => {
  for (const kind of ['merge', 'analysis', 'evaluation'] as const) {
    const id = await START[kind]('queued');
    await cancel(id);
    await expectCancelled(kind, id, kind === 'merge' ? 'apl-queued' : undefined);
    expect((await jobState(platform.prisma, kind, id))!.attempts).toBe(0);
  }
});

describe.each((Object.entries(POINTS) as Array<[JobKind, string[]]>).flatMap(([kind, points]) => points.map((point): [JobKind, string] => [kind, point])))('%s job cancelled while held at %s', (kind, point) => {
  it('ends CANCELLED, stops its attempt and leaves no output or model', async () => {
    worker ??= await platform.startWorker({ APL_MERGE_PAUSE_AT: PAUSES });
    const id = await START[kind](point);
    await worker.waitForOutput(new RegExp(`${kind} ${id}: holding at ${point} for`), 60000);
    // The step before was done: a merge held at "computed" has published its output, which the cancel must remove.
    if (kind === 'merge' && point !== 'started') expect(existsSync(join(platform.outputs, 'merges', id))).toBe(true);
    if (kind === 'analysis' && point === 'published') expect(existsSync(join(platform.outputs, 'analyses', id))).toBe(true);
    await cancel(id);
    await worker.waitForOutput(new RegExp(`${kind} ${id}: cancelled`), 30000);
    await expectCancelled(kind, id, kind === 'merge' ? `apl-${point}` : undefined);
    expect(worker.output()).not.toMatch(new RegExp(`${kind} ${id}: (COMPLETED|FAILED)`));
  });
});

it('cancels a merge while the engine computes (between its held points), and then completes one it leaves alone', async () => {
  const id = await START.merge('engine');
  await worker.waitForOutput(new RegExp(`merge ${id}: holding at started`), 60000);
  // Released from "started", the engine scores and merges: the cancel lands in that work.
  await waitFor(async () => (await platform.prisma.jobEvent.count({ where: { jobId: id, phase: { not: 'status' } } })) > 0, 'the engine to report progress', 30000);
  await cancel(id);
  // The row is CANCELLED at once; the worker's attempt then stops and removes what it wrote.
  await worker.waitForOutput(new RegExp(`merge ${id}: cancelled`), 30000);
  await expectCancelled('merge', id, 'apl-engine');
  const kept = await START.merge('kept');
  await waitFor(async () => (await jobState(platform.prisma, 'merge', kept))?.status === 'COMPLETED', `merge ${kept} to complete (worker:\n${worker.output()})`, 90000);
  expect(await platform.prisma.model.count({ where: { name: 'apl-kept' } })).toBe(1);
  await expectJobInvariants(platform.prisma, [platform.outputs]);
});
