/**
 * The platform end to end, all real: PostgreSQL, the API server, a worker process taking jobs off
 * the pg-boss queue, and a graphql-ws client. Models come from the engine's quick vision zoo.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { getMergeMethod } from '../src/engine/methods/registry';
import { ApiServer } from '../src/api/server';
import { sha256File } from '../src/engine/checkpoint/files';
import { getSplit, loadTaskData } from '../src/engine/data/task-data';
import { loadImportance } from '../src/engine/apl/artifact';
import { loadModel } from '../src/engine/families/model';
import { buildVisionZoo, ZooManifest } from '../src/engine/zoo/vision';
import { QUEUE_NAMES } from '../src/jobs/queue';
import { PrismaClient } from '../src/store/client';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { subscribe, waitFor } from './helpers/graphql';
import { tinyFamily } from './helpers/tiny-models';
import { mlpAccuracy } from './helpers/mlp-reference';

jest.setTimeout(180000);

let platform: TestPlatform;
let prisma: PrismaClient;
let server: ApiServer;
let root: string;
let outputs: string;
let zoo: ZooManifest;
let gql: TestPlatform['gql'];
const ids: { base: string; finetunes: Record<string, string>; tasks: Record<string, string> } = { base: '', finetunes: {}, tasks: {} };

beforeAll(async () => {
  platform = await startTestPlatform();
  ({ prisma, server, root, outputs, gql } = platform);
  zoo = await buildVisionZoo({ out: join(root, 'zoo'), quick: true, seed: 3 });
  await platform.startWorker();

  const register = `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }`;
  const base = await gql<{ registerModel: { model: { id: string } } }>(register, { input: { name: 'zoo-base', kind: 'BASE', path: join(root, 'zoo', zoo.base) } });
  expect(base.errors).toBeUndefined();
  ids.base = base.data!.registerModel.model.id;
  for (const entry of zoo.finetunes) {
    const ft = await gql<{ registerModel: { model: { id: string } } }>(register, { input: { name: `zoo-${entry.task}`, kind: 'FINETUNE', path: join(root, 'zoo', entry.model), parentIds: [ids.base] } });
    expect(ft.errors).toBeUndefined();
    ids.finetunes[entry.task] = ft.data!.registerModel.model.id;
    const task = await gql<{ registerTask: { task: { id: string } } }>(`mutation($input: RegisterTaskInput!) { registerTask(input: $input) { task { id } } }`, { input: { name: entry.task, path: join(root, 'zoo', entry.data) } });
    expect(task.errors).toBeUndefined();
    ids.tasks[entry.task] = task.data!.registerTask.task.id;
  }
});

afterAll(() => platform?.stop());

type Progress = { id: string; phase: string; done: number; total: number; status: string; message: string };
const PROGRESS = `subscription($jobId: ID!) { jobProgress(jobId: $jobId) { id phase done total status message } }`;

/** Every event of a job, from the first (replayed) to the final one. */
async function followJob(jobId: string): Promise<Progress[]> {
  const events: Progress[] = [];
  const subscription = subscribe<{ jobProgress: Progress }>(server.url, PROGRESS, { jobId }, (data) => events.push(data.jobProgress), platform.token);
  await subscription.done;
  await subscription.close();
  return events;
}

function expectMonotone(events: Progress[]): void {
  const statuses = events.map((e) => e.status).filter((s, i, all) => i === 0 || all[i - 1] !== s);
  expect(statuses).toEqual(['QUEUED', 'RUNNING', 'COMPLETED']);
  const ids = events.map((e) => BigInt(e.id));
  for (let i = 1; i < ids.length; i++) expect(ids[i] > ids[i - 1]).toBe(true);
  const byPhase = new Map<string, number[]>();
  for (const e of events.filter((e) => e.phase !== 'status')) byPhase.set(e.phase, [...(byPhase.get(e.phase) ?? []), e.done]);
  for (const [, done] of byPhase) for (let i = 1; i < done.length; i++) expect(done[i]).toBeGreaterThanOrEqual(done[i - 1]);
  // Phases are not revisited once left.
  const phases = events.map((e) => e.phase).filter((p) => p !== 'status').filter((p, i, all) => i === 0 || all[i - 1] !== p);
  expect(new Set(phases).size).toBe(phases.length);
}

it('runs an APL merge started by mutation: live progress to COMPLETED, then the merged model in the lineage with evaluations', async () => {
  const tasks = zoo.finetunes.map((f) => f.task);
  const started = await gql<{ startMerge: { merge: { id: string; status: string; seed: number } } }>(
    `mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id status seed } } }`,
    {
      input: {
        name: 'zoo-apl',
        method: 'apl',
        baseModelId: ids.base,
        models: tasks.map((task) => ({ modelId: ids.finetunes[task], probeTaskId: ids.tasks[task], parameters: { weight: 1, density: 0.5 } })),
        parameters: { level: 'row', estimator: 'exact', lambda: 1 },
        seed: 7,
      },
    },
  );
  expect(started.errors).toBeUndefined();
  expect(started.data!.startMerge.merge).toMatchObject({ status: 'QUEUED', seed: 7 });
  const mergeId = started.data!.startMerge.merge.id;

  const events = await followJob(mergeId);
  expect(events.at(-1)).toMatchObject({ status: 'COMPLETED' });
  expectMonotone(events);
  const phases = new Set(events.map((e) => e.phase));
  for (const phase of ['importance', 'merge', 'evaluate']) expect([...phases].some((p) => p.startsWith(phase))).toBe(true);

  const merge = await gql<{ merge: { status: string; attempts: number; result: { backend: string; sha256: string }; outputModel: { id: string; name: string; kind: string } } }>(
    `query($id: ID!) { merge(id: $id) { status attempts result outputModel { id name kind } } }`,
    { id: mergeId },
  );
  expect(merge.data!.merge).toMatchObject({ status: 'COMPLETED', attempts: 1, result: { backend: 'wasm' }, outputModel: { name: 'zoo-apl', kind: 'MERGE' } });
  const mergedId = merge.data!.merge.outputModel.id;

  // Timing: queued, started by the worker that said so, finished when the COMPLETED event was written.
  const timed = await gql<{ merge: { createdAt: string; timing: { queuedAt: string; startedAt: string; finishedAt: string; durationSeconds: number; waitSeconds: number; attempts: number; worker: string } } }>(
    `query($id: ID!) { merge(id: $id) { createdAt timing { queuedAt startedAt finishedAt durationSeconds waitSeconds attempts worker } } }`,
    { id: mergeId },
  );
  const timing = timed.data!.merge.timing;
  const [queuedAt, startedAt, finishedAt] = [timing.queuedAt, timing.startedAt, timing.finishedAt].map((t) => new Date(t).getTime());
  expect(timing.queuedAt).toBe(timed.data!.merge.createdAt);
  expect(queuedAt <= startedAt && startedAt <= finishedAt).toBe(true);
  expect(timing.durationSeconds).toBeCloseTo((finishedAt - startedAt) / 1000, 3);
  expect(timing.waitSeconds).toBeCloseTo((startedAt - queuedAt) / 1000, 3);
  expect(timing).toMatchObject({ attempts: 1 });

  // The job's history, a page at a time, in order: every event once.
  type Events = { jobEvents: { totalCount: number; nodes: Array<{ id: string; status: string; phase: string }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } };
  const history: Array<{ id: string; status: string; phase: string }> = [];
  let cursor: string | null = null;
  for (;;) {
    const page: Events = (await gql<Events>('query($id: ID!, $after: String) { jobEvents(jobId: $id, first: 3, after: $after) { totalCount nodes { id status phase } pageInfo { hasNextPage endCursor } } }', { id: mergeId, after: cursor })).data!;
    history.push(...page.jobEvents.nodes);
    expect(page.jobEvents.totalCount).toBe(await prisma.jobEvent.count({ where: { jobId: mergeId } }));
    if (!page.jobEvents.pageInfo.hasNextPage) break;
    cursor = page.jobEvents.pageInfo.endCursor;
  }
  const stored = await prisma.jobEvent.findMany({ where: { jobId: mergeId }, orderBy: { id: 'asc' } });
  expect(history).toEqual(stored.map((e) => ({ id: e.id.toString(), status: e.status, phase: e.phase })));
  expect((await gql('{ jobEvents(jobId: "00000000-0000-0000-0000-000000000000") { totalCount } }')).errors![0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });

  // The parameters in force: those requested, the method's defaults for the rest.
  const resolved = await gql<{ merge: { parameters: Record<string, unknown>; resolvedParameters: Record<string, unknown>; inputs: Array<{ isBase: boolean; parameters: Record<string, unknown>; resolvedParameters: Record<string, unknown> }> } }>(
    'query($id: ID!) { merge(id: $id) { parameters resolvedParameters inputs { isBase parameters resolvedParameters } } }',
    { id: mergeId },
  );
  const aplMethod = getMergeMethod('apl');
  const defaults = (defs: typeof aplMethod.globalParameters) => Object.fromEntries(defs.filter((d) => d.default !== undefined).map((d) => [d.name, d.default]));
  expect(resolved.data!.merge.resolvedParameters).toEqual({ ...defaults(aplMethod.globalParameters), ...resolved.data!.merge.parameters });
  expect(Object.keys(resolved.data!.merge.resolvedParameters).length).toBeGreaterThan(Object.keys(resolved.data!.merge.parameters).length);
  for (const input of resolved.data!.merge.inputs.filter((i) => !i.isBase)) expect(input.resolvedParameters).toEqual({ ...defaults(aplMethod.modelParameters), ...input.parameters });
  const statusEvents = await prisma.jobEvent.findMany({ where: { jobId: mergeId, phase: 'status' }, orderBy: { id: 'asc' } });
  expect(statusEvents.find((e) => e.status === 'RUNNING')!.message).toBe(`running on ${timing.worker}`);
  expect(Math.abs(statusEvents.find((e) => e.status === 'COMPLETED')!.createdAt.getTime() - finishedAt)).toBeLessThan(1000);

  const lineage = await gql<{ lineage: { nodes: Array<{ id: string; kind: string; depth: number }>; edges: Array<{ parentId: string; childId: string; relation: string; weight: number | null }> } }>(
    `query($id: ID!) { lineage(baseId: $id) { nodes { id kind depth } edges { parentId childId relation weight } } }`,
    { id: ids.base },
  );
  expect(lineage.data!.lineage.nodes).toContainEqual({ id: mergedId, kind: 'MERGE', depth: 1 });
  const intoMerged = lineage.data!.lineage.edges.filter((e) => e.childId === mergedId);
  expect(intoMerged).toHaveLength(tasks.length + 1);
  expect(intoMerged.find((e) => e.parentId === ids.base)).toMatchObject({ relation: 'MERGE_BASE', weight: null });
  for (const task of tasks) expect(intoMerged.find((e) => e.parentId === ids.finetunes[task])).toMatchObject({ relation: 'MERGE', weight: 1 });

  const model = await gql<{ model: { checkpoint: { uri: string; sha256: string }; evaluations: { nodes: Array<{ split: string; metric: string; value: number; task: { name: string } }> }; ancestors: Array<{ id: string }>; merges: { nodes: Array<{ id: string }> } } }>(
    `query($id: ID!) { model(id: $id) { checkpoint { uri sha256 } evaluations { nodes { split metric value task { name } } } ancestors { id } merges { nodes { id } } } }`,
    { id: mergedId },
  );
  const view = model.data!.model;
  const file = join(view.checkpoint.uri.replace('file://', ''), 'model.safetensors');
  expect(view.checkpoint.uri).toBe(`file://${join(outputs, 'merges', mergeId)}`);
  expect(view.checkpoint.sha256).toBe(sha256File(file));
  expect(view.checkpoint.sha256).toBe(merge.data!.merge.result.sha256);
  expect(view.evaluations.nodes.map((e) => `${e.task.name}/${e.split}`).sort()).toEqual(tasks.flatMap((t) => [`${t}/ood`, `${t}/test`]).sort());
  // The recorded scores are those of the checkpoint on disk, re-scored here by a forward pass
  // written out in plain arithmetic (not the engine's evaluate()).
  for (const e of view.evaluations.nodes) {
    expect(e.metric).toBe('accuracy');
    const entry = zoo.finetunes.find((f) => f.task === e.task.name)!;
    const split = getSplit(loadTaskData(join(root, 'zoo', entry.data)), e.split);
    expect(e.value).toBeCloseTo(mlpAccuracy(view.checkpoint.uri.replace('file://', ''), e.task.name, split), 10);
  }
  // The quick zoo's tasks conflict by design (rotated, inverted digits), so the merge loses skill,
  // but it keeps far more than chance (10% on the 10-class tasks, 50% on parity: 20% on average).
  const testMean = view.evaluations.nodes.filter((e) => e.split === 'test').reduce((a, e) => a + e.value, 0) / tasks.length;
  expect(testMean).toBeGreaterThan(0.3);
  expect(new Set(view.ancestors.map((a) => a.id))).toEqual(new Set([ids.base, ...Object.values(ids.finetunes)]));
  expect(view.merges.nodes).toEqual([{ id: mergeId }]);
  // Nothing left beside the published output.
  expect(readdirSync(join(outputs, 'merges'))).toEqual([mergeId]);
});

it('runs an importance analysis and lists it on the model; its artifact is published whole', async () => {
  const task = zoo.finetunes[0].task;
  // Status changes of every job the fine-tune takes part in, from the first event on (the merge
  // above, where it was an input, then this analysis).
  type StatusEvent = { jobId: string; jobKind: string; status: string; phase: string };
  const statuses: StatusEvent[] = [];
  const modelJobs = subscribe<{ modelJobs: StatusEvent }>(server.url, `subscription($id: ID!) { modelJobs(modelId: $id, afterEventId: "0") { jobId jobKind status phase } }`, { id: ids.finetunes[task] }, (data) => statuses.push(data.modelJobs), platform.token);
  // Status changes of every job, from the first event on, then live: what a dashboard's job list follows.
  const everyJob: Array<StatusEvent & { id: string }> = [];
  const jobStatuses = subscribe<{ jobStatuses: StatusEvent & { id: string } }>(server.url, 'subscription { jobStatuses(afterEventId: "0") { id jobId jobKind status phase } }', {}, (data) => everyJob.push(data.jobStatuses), platform.token);
  const started = await gql<{ startAnalysis: { analysis: { id: string; status: string } } }>(
    `mutation($input: StartAnalysisInput!) { startAnalysis(input: $input) { analysis { id status } } }`,
    { input: { modelId: ids.finetunes[task], taskId: ids.tasks[task], level: 'LAYER', estimator: 'EXACT' } },
  );
  expect(started.errors).toBeUndefined();
  expect(started.data!.startAnalysis.analysis.status).toBe('QUEUED');
  const events = await followJob(started.data!.startAnalysis.analysis.id);
  expectMonotone(events);
  const view = await gql<{ model: { analyses: { nodes: Array<{ id: string; status: string; level: string; artifactUri: string; summary: { layers?: unknown }; result: { partitions: number; backend: string }; baseModel: { id: string }; task: { name: string } }> } } }>(
    `query($id: ID!) { model(id: $id) { analyses { nodes { id status level artifactUri summary result baseModel { id } task { name } } } } }`,
    { id: ids.finetunes[task] },
  );
  const [analysis] = view.data!.model.analyses.nodes;
  expect(analysis).toMatchObject({ id: started.data!.startAnalysis.analysis.id, status: 'COMPLETED', level: 'LAYER', baseModel: { id: ids.base }, task: { name: task }, result: { backend: 'wasm' } });
  expect(analysis.result.partitions).toBeGreaterThan(1);
  expect(existsSync(analysis.artifactUri.replace('file://', ''))).toBe(true);
  expect(existsSync(analysis.artifactUri.replace('file://', '').replace(/\.safetensors$/, '.json'))).toBe(true);
  expect(analysis.summary).toBeTruthy();
  // Typed, for a dashboard: per layer and as a histogram, from the artifact, checked here against the artifact read directly.
  const typed = await gql<{ analysis: { layers: Array<{ layer: string; partitions: number; mean: number; min: number; max: number; top: Array<{ partition: string; value: number }> }>; histogram: Array<{ lower: number; upper: number; count: number }> } }>(
    'query($id: ID!) { analysis(id: $id) { layers(score: LOSS_INCREASE, top: 2) { layer partitions mean min max top { partition value } } histogram(bins: 4) { lower upper count } } }',
    { id: analysis.id },
  );
  expect(typed.errors).toBeUndefined();
  const artifact = loadImportance(analysis.artifactUri.replace('file://', ''));
  const scores = Array.from(artifact.scores.loss_increase!);
  const names = JSON.parse(artifact.metadata.partition_names) as string[];
  const { layers, histogram } = typed.data!.analysis;
  expect(layers.map((l) => l.layer)).toEqual(names);
  layers.forEach((l, i) => expect(l).toMatchObject({ partitions: 1, mean: scores[i], min: scores[i], max: scores[i], top: [{ partition: names[i], value: scores[i] }] }));
  expect(histogram).toHaveLength(4);
  expect(histogram.reduce((n, b) => n + b.count, 0)).toBe(scores.length);
  expect(histogram[0].lower).toBe(Math.min(...scores));
  expect(histogram[3].upper).toBe(Math.max(...scores));
  for (const b of histogram) expect(b.count).toBe(scores.filter((v) => v >= b.lower && (b === histogram[3] ? v <= b.upper : v < b.upper)).length);
  const missing = await gql('query($id: ID!) { analysis(id: $id) { histogram(score: GRADIENT_SIGNED) { count } } }', { id: analysis.id });
  if (!artifact.scores.gradient_signed) expect(missing.errors![0].extensions.code).toBe('BAD_USER_INPUT');
  expect((await gql('query($id: ID!) { analysis(id: $id) { histogram(bins: 0) { count } } }', { id: analysis.id })).errors![0].extensions.code).toBe('BAD_USER_INPUT');
  await waitFor(() => statuses.some((e) => e.jobId === analysis.id && e.status === 'COMPLETED'), 'the analysis to complete on modelJobs');
  await modelJobs.close();
  await waitFor(() => everyJob.some((e) => e.jobId === analysis.id && e.status === 'COMPLETED'), 'the analysis to complete on jobStatuses');
  await jobStatuses.close();
  expect(everyJob.filter((e) => e.jobId === analysis.id).map((e) => e.status)).toEqual(['QUEUED', 'RUNNING', 'COMPLETED']);
  const stored = await prisma.jobEvent.findMany({ where: { id: { gte: BigInt(everyJob[0].id) }, phase: 'status' }, orderBy: { id: 'asc' } });
  expect(everyJob.map((e) => e.id)).toEqual(stored.slice(0, everyJob.length).map((e) => e.id.toString()));
  expect(statuses.every((e) => e.phase === 'status')).toBe(true);
  expect(statuses.filter((e) => e.jobId === analysis.id).map((e) => `${e.jobKind} ${e.status}`)).toEqual(['ANALYSIS QUEUED', 'ANALYSIS RUNNING', 'ANALYSIS COMPLETED']);
  expect(statuses.filter((e) => e.jobKind === 'MERGE').map((e) => e.status)).toEqual(['QUEUED', 'RUNNING', 'COMPLETED']);

  // The analysis then feeds an APL merge in place of probe data.
  const merge = await gql<{ startMerge: { merge: { id: string } } }>(`mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }`, {
    input: { method: 'apl', baseModelId: ids.base, models: [{ modelId: ids.finetunes[task], analysisId: analysis.id }], parameters: { level: 'layer', estimator: 'exact' } },
  });
  expect(merge.errors).toBeUndefined();
  const mergeEvents = await followJob(merge.data!.startMerge.merge.id);
  expect(mergeEvents.at(-1)).toMatchObject({ status: 'COMPLETED' });
});

it('runs a hidden-unit analysis through the worker, and an APL merge at unit level reads it', async () => {
  const task = zoo.finetunes[1].task;
  const started = await gql<{ startAnalysis: { analysis: { id: string } } }>('mutation($input: StartAnalysisInput!) { startAnalysis(input: $input) { analysis { id } } }', {
    input: { modelId: ids.finetunes[task], taskId: ids.tasks[task], level: 'UNIT', estimator: 'GRADIENT' },
  });
  expect(started.errors).toBeUndefined();
  const events = await followJob(started.data!.startAnalysis.analysis.id);
  expect(events.at(-1)).toMatchObject({ status: 'COMPLETED' });
  const view = await gql<{ analysis: { level: string; artifactUri: string; result: { partitions: number } } }>('query($id: ID!) { analysis(id: $id) { level artifactUri result } }', { id: started.data!.startAnalysis.analysis.id });
  const { level, artifactUri, result } = view.data!.analysis;
  const artifact = loadImportance(artifactUri.replace('file://', ''));
  // One partition per hidden unit of the MLP (its layers' widths), and the artifact says so.
  const finetune = loadModel(join(root, 'zoo', zoo.finetunes[1].model));
  const widths = (finetune.config as unknown as { hiddenSizes: number[] }).hiddenSizes;
  expect({ level, artifactLevel: artifact.level, partitions: result.partitions }).toEqual({ level: 'UNIT', artifactLevel: 'unit', partitions: widths.reduce((a, b) => a + b, 0) });
  const merge = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
    input: { method: 'apl', baseModelId: ids.base, models: [{ modelId: ids.finetunes[task], analysisId: started.data!.startAnalysis.analysis.id }], parameters: { level: 'unit', density: 0.5 } },
  });
  expect(merge.errors).toBeUndefined();
  const mergeEvents = await followJob(merge.data!.startMerge.merge.id);
  expect(mergeEvents.at(-1)).toMatchObject({ status: 'COMPLETED' });
  // A merge at row level cannot read the unit analysis: refused before it is queued, naming both levels.
  const mismatch = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
    input: { method: 'apl', baseModelId: ids.base, models: [{ modelId: ids.finetunes[task], analysisId: started.data!.startAnalysis.analysis.id }], parameters: { level: 'row' } },
  });
  expect(mismatch.errors?.[0]?.message ?? (await followJob(mismatch.data!.startMerge.merge.id)).at(-1)!.message).toMatch(/unit/);
});

it.each(['fisher', 'regmean', 'adamerging'])('runs the data-aware baseline %s with each model\'s probe task, started by mutation, to COMPLETED with what it read', async (method) => {
  const tasks = zoo.finetunes.map((f) => f.task);
  // AdaMerging adds task vectors: it needs the base; Fisher merging and RegMean average the models themselves.
  const base = method === 'adamerging' ? { baseModelId: ids.base } : {};
  const started = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
    input: { name: `zoo-${method}`, method, ...base, models: tasks.map((task) => ({ modelId: ids.finetunes[task], probeTaskId: ids.tasks[task] })) },
  });
  expect(started.errors).toBeUndefined();
  const events = await followJob(started.data!.startMerge.merge.id);
  expect({ status: events.at(-1)!.status, message: events.at(-1)!.status === 'COMPLETED' ? '' : events.at(-1)!.message }).toEqual({ status: 'COMPLETED', message: '' });
  expectMonotone(events);
  const merge = await gql<{ merge: { result: { preparation: { sources: Array<{ task: string; examples: number }> } }; outputModel: { kind: string } } }>('query($id: ID!) { merge(id: $id) { result outputModel { kind } } }', { id: started.data!.startMerge.merge.id });
  expect(merge.data!.merge.outputModel.kind).toBe('MERGE');
  const probeSizes = tasks.map((task) => getSplit(loadTaskData(join(root, 'zoo', zoo.finetunes.find((f) => f.task === task)!.data)), 'probe').count);
  expect(merge.data!.merge.result.preparation.sources.map((s) => [s.task, s.examples])).toEqual(tasks.map((task, i) => [task, probeSizes[i]]));
  // Without probe data the request is refused before anything is queued, naming the model.
  const refused = await gql('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', { input: { method, ...base, models: tasks.map((task) => ({ modelId: ids.finetunes[task] })) } });
  expect(refused.errors![0]).toMatchObject({ message: expect.stringContaining(`${method} needs per-model "probe"`), extensions: { code: 'BAD_USER_INPUT' } });
});

it('rejects bad requests with a code and a precise message, and queues nothing', async () => {
  const mergesBefore = await prisma.merge.count();
  const analysesBefore = await prisma.importanceAnalysis.count();
  const queued = async () => (await prisma.$queryRawUnsafe<Array<{ n: bigint }>>(`SELECT count(*) AS n FROM pgboss.job WHERE name = $1`, QUEUE_NAMES.merge))[0].n;
  const jobsBefore = await queued();
  const start = (input: Record<string, unknown>) => gql(`mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }`, { input });
  const [first, second] = zoo.finetunes.map((f) => ids.finetunes[f.task]);
  const unknownMethod = await start({ method: 'avg', baseModelId: ids.base, models: [{ modelId: first }] });
  expect(unknownMethod.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(unknownMethod.errors![0].message).toMatch(/avg/);
  const missing = await start({ method: 'ties', baseModelId: ids.base, models: [{ modelId: '00000000-0000-0000-0000-000000000000' }] });
  expect(missing.errors![0].extensions.code).toBe('NOT_FOUND');
  const badParameter = await start({ method: 'ties', baseModelId: ids.base, models: [{ modelId: first, parameters: { density: 'half' } }, { modelId: second }] });
  expect(badParameter.errors![0].extensions.code).toBe('BAD_USER_INPUT');
  expect(badParameter.errors![0].message).toMatch(/density/);
  const noProbe = await start({ method: 'apl', baseModelId: ids.base, models: [{ modelId: first }] });
  expect(noProbe.errors![0].extensions.code).toBe('BAD_USER_INPUT');
  const name = await start({ name: 'zoo-base', method: 'linear', models: [{ modelId: first }, { modelId: second }] });
  expect(name.errors![0]).toMatchObject({ message: 'a model named "zoo-base" already exists', extensions: { code: 'CONFLICT' } });
  // A model that is not homologous with the zoo: the error names the tensor whose shape differs.
  mkdirSync(join(root, 'tiny'), { recursive: true });
  const other = tinyFamily({ seed: 1, tasks: [{ name: 'odd', classes: 3 }], dir: join(root, 'tiny') });
  const REGISTER_MODEL = `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }`;
  // Registered as a fine-tune of the zoo's base, it is refused: the tensors they share differ in shape.
  const notAFinetune = await gql(REGISTER_MODEL, { input: { name: 'stranger', kind: 'FINETUNE', path: other.finetunes[0].path, parentIds: [ids.base] } });
  expect(notAFinetune.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(notAFinetune.errors![0].message).toMatch(/not a fine-tune of "zoo-base": tensor "\S+" has shape \[/);
  const stranger = await gql<{ registerModel: { model: { id: string } } }>(REGISTER_MODEL, { input: { name: 'stranger', kind: 'BASE', path: other.finetunes[0].path } });
  // Its base is not the zoo's: refused unless the request allows it, and then refused for its shapes.
  const unrelated = await start({ method: 'ties', baseModelId: ids.base, models: [{ modelId: first }, { modelId: stranger.data!.registerModel.model.id }] });
  expect(unrelated.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
  expect(unrelated.errors![0].message).toMatch(/models\[1\]: the base \S+ is not an ancestor of "stranger"; merge against its base, or pass allowUnrelatedBase: true/);
  const heterologous = await start({ method: 'ties', baseModelId: ids.base, allowUnrelatedBase: true, models: [{ modelId: first }, { modelId: stranger.data!.registerModel.model.id }] });
  expect(heterologous.errors![0].extensions.code).toBe('BAD_USER_INPUT');
  expect(heterologous.errors![0].message).toMatch(/trunk\.\d+\.weight|shape/);
  const noHead = await gql(`mutation($input: StartAnalysisInput!) { startAnalysis(input: $input) { analysis { id } } }`, {
    input: { modelId: first, taskId: ids.tasks[zoo.finetunes[1].task], level: 'ROW', estimator: 'EXACT' },
  });
  expect(noHead.errors![0].extensions.code).toBe('BAD_USER_INPUT');
  expect(noHead.errors![0].message).toMatch(/has no head for task/);
  expect(await prisma.merge.count()).toBe(mergesBefore);
  expect(await prisma.mergeInput.count({ where: { model: { name: 'stranger' } } })).toBe(0);
  expect(await queued()).toBe(jobsBefore);
  expect(await prisma.importanceAnalysis.count()).toBe(analysesBefore);
});
