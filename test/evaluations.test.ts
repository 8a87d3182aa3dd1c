/**
 * Evaluations as jobs, against a real server, PostgreSQL and worker process: a fine-tune is queued
 * for evaluation when it is registered; `evaluateModel` scores any model on one task or all of its
 * tasks; what cannot work is refused at request time with nothing written; and the scores the
 * worker writes are those of an independent forward pass (written out here in plain arithmetic,
 * not the engine's) on the test and OOD splits, each of which has its own labels.
 */
import { join } from 'node:path';
import { saveTaskData, TaskSplit } from '../src/engine/data/task-data';
import { Random } from '../src/engine/kernels/random';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { graphqlClient, subscribe, waitFor } from './helpers/graphql';
import { expectJobInvariants } from './helpers/invariants';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { tinyFamily } from './helpers/tiny-models';
import { mlpPredictions } from './helpers/mlp-reference';
import { testToken } from './helpers/tokens';

jest.setTimeout(90000);
let platform: TestPlatform;
const ids = { base: '', ftA: '', ftB: '', taskA: '', taskB: '', taskWide: '', runA: '', runB: '' };
const expected = new Map<string, number>();
const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id evaluationRuns { id status } } } }';
const EVALUATE = 'mutation($m: ID!, $t: ID) { evaluateModel(modelId: $m, taskId: $t) { evaluationRun { id status task { name } model { name } } } }';

/**
 * Task data whose test labels agree with the model's predictions on `testRight` of 24 examples and
 * whose OOD labels on `oodRight`: accuracies known by construction, different per split.
 */
function taskDataFor(file: string, modelDir: string, task: string, classes: number, testRight: number, oodRight: number, seed: number): void {
  const random = new Random(seed, `eval-${task}`);
  const split = (right: number): TaskSplit => {
    const inputs = Uint8Array.from({ length: 24 * 16 }, () => random.nextUint32() % 256);
    const unlabelled: TaskSplit = { inputs, exampleShape: [4, 4], labels: new Int32Array(24), count: 24 };
    const predicted = mlpPredictions(modelDir, task, unlabelled);
    return { ...unlabelled, labels: Int32Array.from(predicted, (p, i) => (i < right ? p : (p + 1) % classes)) };
  };
  const test = split(testRight);
  saveTaskData(file, { name: task, classes, description: `evaluation data for ${task}`, seed }, { probe: test, validation: test, test, ood: split(oodRight) });
}

beforeAll(async () => {
  platform = await startTestPlatform();
  const dir = join(platform.root, 'models');
  tinyFamily({ seed: 21, tasks: [{ name: 'alpha', classes: 3 }, { name: 'beta', classes: 4 }], dir });
  taskDataFor(join(dir, 'alpha-eval.safetensors'), join(dir, 'alpha'), 'alpha', 3, 17, 5, 1);
  taskDataFor(join(dir, 'beta-eval.safetensors'), join(dir, 'beta'), 'beta', 4, 9, 20, 2);
  expected.set('alpha/test', 17 / 24).set('alpha/ood', 5 / 24).set('beta/test', 9 / 24).set('beta/ood', 20 / 24);
  const task = async (name: string) => (await platform.gql<{ registerTask: { task: { id: string } } }>('mutation($i: RegisterTaskInput!) { registerTask(input: $i) { task { id } } }', { i: { name, path: join(dir, `${name}-eval.safetensors`) } })).data!.registerTask.task.id;
  ids.taskA = await task('alpha');
  ids.taskB = await task('beta');
  // A fine-tune with a head for "wide", whose data has 25-pixel examples: the model takes 16.
  tinyFamily({ seed: 21, tasks: [{ name: 'wide', classes: 3 }], dir: join(platform.root, 'wide') });
  const wide: TaskSplit = { inputs: new Uint8Array(6 * 25), exampleShape: [5, 5], labels: new Int32Array(6), count: 6 };
  saveTaskData(join(platform.root, 'wide/wide-data.safetensors'), { name: 'wide', classes: 3, description: '', seed: 0 }, { probe: wide, test: wide });
  ids.taskWide = (await platform.gql<{ registerTask: { task: { id: string } } }>('mutation($i: RegisterTaskInput!) { registerTask(input: $i) { task { id } } }', { i: { name: 'wide', path: join(platform.root, 'wide/wide-data.safetensors') } })).data!.registerTask.task.id;
  writeSyntheticFamily(join(platform.root, 'synthetic'), { tensors: [{ name: 'layers.0.w', shape: [4, 4] }], fineTunes: 1, seed: 3 });
});

afterAll(() => platform?.stop());

it('queues a fine-tune for evaluation when it is registered (in the same transaction), and not a base or a fine-tune registered with evaluate: false', async () => {
  const base = await platform.gql<{ registerModel: { model: { id: string; evaluationRuns: unknown[] } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(platform.root, 'models/base') } });
  ids.base = base.data!.registerModel.model.id;
  expect(base.data!.registerModel.model.evaluationRuns).toEqual([]);
  const ftA = await platform.gql<{ registerModel: { model: { id: string; evaluationRuns: Array<{ id: string; status: string }> } } }>(REGISTER, { input: { name: 'ft-alpha', kind: 'FINETUNE', path: join(platform.root, 'models/alpha'), parentIds: [ids.base] } });
  ids.ftA = ftA.data!.registerModel.model.id;
  expect(ftA.data!.registerModel.model.evaluationRuns).toEqual([{ id: expect.any(String), status: 'QUEUED' }]);
  ids.runA = ftA.data!.registerModel.model.evaluationRuns[0].id;
  const events = await platform.prisma.jobEvent.findMany({ where: { jobId: ids.runA } });
  expect(events).toEqual([expect.objectContaining({ jobKind: 'evaluation', status: 'QUEUED', message: 'queued: evaluation of ft-alpha on alpha' })]);
  const ftB = await platform.gql<{ registerModel: { model: { id: string; evaluationRuns: unknown[] } } }>(REGISTER, { input: { name: 'ft-beta', kind: 'FINETUNE', path: join(platform.root, 'models/beta'), parentIds: [ids.base], evaluate: false } });
  ids.ftB = ftB.data!.registerModel.model.id;
  expect(ftB.data!.registerModel.model.evaluationRuns).toEqual([]);
  // A fine-tune of a family the engine cannot run is registered without an evaluation…
  const synthetic = await platform.gql<{ registerModel: { model: { id: string; evaluationRuns: unknown[] } } }>(REGISTER, { input: { name: 'syn-base', kind: 'BASE', path: join(platform.root, 'synthetic/base') } });
  const synFt = await platform.gql<{ registerModel: { model: { evaluationRuns: unknown[] } } }>(REGISTER, { input: { name: 'syn-ft', kind: 'FINETUNE', path: join(platform.root, 'synthetic/finetune-1'), parentIds: [synthetic.data!.registerModel.model.id] } });
  expect(synFt.errors).toBeUndefined();
  expect(synFt.data!.registerModel.model.evaluationRuns).toEqual([]);
  // …unless evaluate: true asked for one: then nothing is registered, and the error says why.
  const models = await platform.prisma.model.count();
  const refused = await platform.gql(REGISTER, { input: { name: 'syn-ft-2', kind: 'FINETUNE', path: join(platform.root, 'synthetic/finetune-1'), parentIds: [synthetic.data!.registerModel.model.id], evaluate: true } });
  expect(refused.errors![0]).toMatchObject({ message: '"syn-ft-2" cannot be evaluated: model_type "synthetic" is not a family the engine runs (bert, roberta, llama, mistral, qwen2)', extensions: { code: 'BAD_USER_INPUT' } });
  expect(await platform.prisma.model.count()).toBe(models);
  expect(await platform.prisma.checkpoint.count()).toBe(models);
});

it('refuses at request time what cannot be evaluated, a second pending evaluation, and callers without the role; nothing is written', async () => {
  const runs = await platform.prisma.evaluationRun.count();
  const error = async (variables: Record<string, unknown>, client = platform.gql) => (await client(EVALUATE, variables)).errors![0];
  expect(await error({ m: ids.ftB, t: ids.taskA })).toMatchObject({ message: '"ft-beta" cannot be evaluated: it has no head for task "alpha" (heads: beta)', extensions: { code: 'BAD_USER_INPUT' } });
  expect(await error({ m: ids.base })).toMatchObject({ message: '"base" cannot be evaluated: no registered task matches its heads (pretrain)', extensions: { code: 'BAD_USER_INPUT' } });
  const synBase = (await platform.prisma.model.findUniqueOrThrow({ where: { name: 'syn-base' } })).id;
  expect(await error({ m: synBase })).toMatchObject({ message: '"syn-base" cannot be evaluated: model_type "synthetic" is not a family the engine runs (bert, roberta, llama, mistral, qwen2)', extensions: { code: 'BAD_USER_INPUT' } });
  const missing = '00000000-0000-4000-8000-000000000000';
  expect(await error({ m: missing })).toMatchObject({ message: `modelId: model ${missing} does not exist`, extensions: { code: 'NOT_FOUND' } });
  expect(await error({ m: ids.ftA, t: missing })).toMatchObject({ message: `"ft-alpha" cannot be evaluated: task ${missing} does not exist`, extensions: { code: 'NOT_FOUND' } });
  expect((await error({ m: 'not-a-uuid' })).extensions.code).toBe('BAD_USER_INPUT');
  // ft-alpha's registration queued one on all its tasks: a second is refused, naming the first.
  expect(await error({ m: ids.ftA })).toMatchObject({ message: `an evaluation of "ft-alpha" on its tasks is already QUEUED (${ids.runA})`, extensions: { code: 'CONFLICT' } });
  expect((await error({ m: ids.ftA }, graphqlClient(platform.server.url, await testToken(platform.prisma, 'VIEWER')))).extensions.code).toBe('FORBIDDEN');
  expect((await error({ m: ids.ftA }, graphqlClient(platform.server.url))).extensions.code).toMatch(/UNAUTHENTICATED|FORBIDDEN/);
  // Data whose examples do not fit the model's inputs: refused for an evaluation, an analysis and an APL merge alike.
  const ftWide = (await platform.gql<{ registerModel: { model: { id: string; evaluationRuns: unknown[] } } }>(REGISTER, { input: { name: 'ft-wide', kind: 'FINETUNE', path: join(platform.root, 'wide/wide'), parentIds: [ids.base] } })).data!.registerModel.model;
  expect(ftWide.evaluationRuns).toEqual([]);
  const misfit = 'task "wide" (test split): examples of shape [5,5] (U8) do not fit the MLP\'s input of 16 pixels';
  expect(await error({ m: ftWide.id })).toMatchObject({ message: `"ft-wide" cannot be evaluated: no registered task matches its heads (wide): ${misfit}`, extensions: { code: 'BAD_USER_INPUT' } });
  expect(await error({ m: ftWide.id, t: ids.taskWide })).toMatchObject({ message: `"ft-wide" cannot be evaluated: ${misfit}`, extensions: { code: 'BAD_USER_INPUT' } });
  const analysis = await platform.gql('mutation($m: ID!, $t: ID!) { startAnalysis(input: { modelId: $m, taskId: $t }) { analysis { id } } }', { m: ftWide.id, t: ids.taskWide });
  expect(analysis.errors![0]).toMatchObject({ message: misfit.replace('test split', 'probe split').replace(/^/, 'taskId: '), extensions: { code: 'BAD_USER_INPUT' } });
  const merge = await platform.gql('mutation($i: StartMergeInput!) { startMerge(input: $i) { merge { id } } }', { i: { method: 'apl', baseModelId: ids.base, models: [{ modelId: ftWide.id, probeTaskId: ids.taskWide }] } });
  expect(merge.errors![0]).toMatchObject({ message: `models[0].probeTaskId: ${misfit.replace('test split', 'probe split')}`, extensions: { code: 'BAD_USER_INPUT' } });
  expect(await platform.prisma.evaluationRun.count()).toBe(runs);
  expect(await platform.prisma.importanceAnalysis.count()).toBe(0);
  expect(await platform.prisma.merge.count()).toBe(0);
  // A model with an evaluation pending cannot be deleted (the worker would find it gone).
  const deleted = await platform.gql('mutation($id: ID!) { deleteModel(id: $id) { id } }', { id: ids.ftA });
  expect(deleted.errors![0].message).toContain(`evaluation ${ids.runA} is QUEUED (cancel it first)`);
});

it('a worker scores each model on the test and OOD splits of its tasks; the scores are the independent forward pass\'s, and a new evaluation replaces them', async () => {
  const operator = graphqlClient(platform.server.url, await testToken(platform.prisma, 'OPERATOR', 'evaluator'));
  const queued = await operator<{ evaluateModel: { evaluationRun: { id: string; status: string; task: { name: string }; model: { name: string } } } }>(EVALUATE, { m: ids.ftB, t: ids.taskB });
  expect(queued.data!.evaluateModel.evaluationRun).toMatchObject({ status: 'QUEUED', task: { name: 'beta' }, model: { name: 'ft-beta' } });
  ids.runB = queued.data!.evaluateModel.evaluationRun.id;
  // Cancelled while queued, then retried: it runs as it was asked for.
  expect((await operator('mutation($id: ID!) { cancelJob(id: $id) { kind status } }', { id: ids.runB })).data).toEqual({ cancelJob: { kind: 'EVALUATION', status: 'CANCELLED' } });
  expect((await operator('mutation($id: ID!) { retryJob(id: $id) { kind status } }', { id: ids.runB })).data).toEqual({ retryJob: { kind: 'EVALUATION', status: 'QUEUED' } });
  const seen: Array<{ phase: string; status: string }> = [];
  const stream = subscribe<{ jobProgress: { phase: string; status: string } }>(platform.server.url, 'subscription($id: ID!) { jobProgress(jobId: $id) { phase status } }', { id: ids.runA }, (d) => seen.push(d.jobProgress), platform.token);
  const worker = await platform.startWorker();
  const SCORES = 'query($id: ID!) { model(id: $id) { evaluations { nodes { split metric value task { name } } } evaluationRuns { status result } } }';
  type Scores = { model: { evaluations: { nodes: Array<{ split: string; metric: string; value: number; task: { name: string } }> }; evaluationRuns: Array<{ status: string; result: { scores: unknown[]; backend: string } | null }> } };
  const scoresOf = async (id: string) => (await platform.gql<Scores>(SCORES, { id })).data!.model;
  try {
    for (const [id, run] of [[ids.ftA, ids.runA], [ids.ftB, ids.runB]]) {
      await waitFor(async () => (await platform.prisma.evaluationRun.findUniqueOrThrow({ where: { id: run } })).status === 'COMPLETED', `evaluation ${run} (worker:\n${worker.output()})`, 60000);
      void id;
    }
    await stream.done;
  } finally {
    await stream.close();
  }
  expect(seen.map((e) => e.status)).toEqual(['QUEUED', 'RUNNING', ...seen.slice(2, -1).map(() => 'RUNNING'), 'COMPLETED']);
  expect(seen.some((e) => e.phase === 'evaluate')).toBe(true);
  const alpha = await scoresOf(ids.ftA);
  expect(alpha.evaluations.nodes.map((e) => [e.task.name, e.split, e.metric, e.value])).toEqual([['alpha', 'ood', 'accuracy', expected.get('alpha/ood')], ['alpha', 'test', 'accuracy', expected.get('alpha/test')]]);
  expect(alpha.evaluationRuns[0]).toMatchObject({ status: 'COMPLETED', result: { backend: 'wasm', scores: [{ task: 'alpha', split: 'test', value: 17 / 24 }, { task: 'alpha', split: 'ood', value: 5 / 24 }] } });
  const beta = await scoresOf(ids.ftB);
  expect(beta.evaluations.nodes.map((e) => [e.task.name, e.split, e.value])).toEqual([['beta', 'ood', expected.get('beta/ood')], ['beta', 'test', expected.get('beta/test')]]);
  // Evaluated again (on request, one task): the scores are replaced, not added.
  const again = await operator<{ evaluateModel: { evaluationRun: { id: string } } }>(EVALUATE, { m: ids.ftA, t: ids.taskA });
  await waitFor(async () => (await platform.prisma.evaluationRun.findUniqueOrThrow({ where: { id: again.data!.evaluateModel.evaluationRun.id } })).status === 'COMPLETED', 'the second evaluation', 60000);
  expect(await platform.prisma.evaluation.count({ where: { modelId: ids.ftA } })).toBe(2);
  expect((await platform.prisma.evaluationRun.findUniqueOrThrow({ where: { id: again.data!.evaluateModel.evaluationRun.id } })).createdBy).toBe('evaluator');
  // Ended evaluations no longer hold the model: it can be deleted, and its runs and scores go with it.
  const deleted = await platform.gql('mutation($id: ID!) { deleteModel(id: $id) { name } }', { id: ids.ftB });
  expect(deleted.errors).toBeUndefined();
  expect(await platform.prisma.evaluationRun.count({ where: { modelId: ids.ftB } })).toBe(0);
  await expectJobInvariants(platform.prisma, [platform.outputs]);
});
