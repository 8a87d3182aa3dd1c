/**
 * Decoder LMs through the platform, all real (PostgreSQL, the API server, a worker process): a
 * small LM zoo's Llama checkpoints and JSONL tasks registered; a TIES merge scored on the
 * registered LM tasks (exact match of the greedy completion, re-computed here by an independent
 * forward pass); an APL merge with probe tasks; an importance analysis and its per-layer view.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadImportance } from '../src/engine/apl/artifact';
import { getSplit, loadTaskData } from '../src/engine/data/task-data';
import { buildLmZoo, LM_SCALES } from '../src/engine/zoo/lm';
import { ZooManifest } from '../src/engine/zoo/vision';
import { readAllTensors } from './helpers/files';
import { referenceLogits } from './helpers/decoder-models';
import { subscribe } from './helpers/graphql';
import { startTestPlatform, TestPlatform } from './helpers/platform';

jest.setTimeout(240000);

let platform: TestPlatform;
let zoo: ZooManifest;
const ids: { base: string; finetunes: Record<string, string>; tasks: Record<string, string> } = { base: '', finetunes: {}, tasks: {} };

beforeAll(async () => {
  platform = await startTestPlatform();
  const scale = { ...LM_SCALES.quick, tasks: ['arithmetic', 'reverse'], pretrainSentences: 600, pretrainSteps: 40, finetuneSteps: 120, sizes: { train: 400, probe: 12, validation: 20, test: 40, ood: 40 } };
  zoo = await buildLmZoo({ out: join(platform.root, 'zoo'), quick: true, seed: 4, scale });
  await platform.startWorker();
  const { gql } = platform;
  const register = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }';
  const base = await gql<{ registerModel: { model: { id: string } } }>(register, { input: { name: 'llama-base', kind: 'BASE', path: join(platform.root, 'zoo', zoo.base) } });
  expect(base.errors).toBeUndefined();
  ids.base = base.data!.registerModel.model.id;
  for (const entry of zoo.finetunes) {
    const ft = await gql<{ registerModel: { model: { id: string } } }>(register, { input: { name: `llama-${entry.task}`, kind: 'FINETUNE', path: join(platform.root, 'zoo', entry.model), parentIds: [ids.base] } });
    expect(ft.errors).toBeUndefined();
    ids.finetunes[entry.task] = ft.data!.registerModel.model.id;
    const task = await gql<{ registerTask: { task: { id: string; classes: number } } }>('mutation($input: RegisterTaskInput!) { registerTask(input: $input) { task { id classes } } }', { input: { name: entry.task, path: join(platform.root, 'zoo', entry.data) } });
    expect(task.errors).toBeUndefined();
    expect(task.data!.registerTask.task.classes).toBe(entry.classes);
    ids.tasks[entry.task] = task.data!.registerTask.task.id;
  }
});

afterAll(() => platform?.stop());

async function followToEnd(jobId: string): Promise<string[]> {
  const statuses: string[] = [];
  const subscription = subscribe<{ jobProgress: { status: string; message: string } }>(platform.server.url, 'subscription($jobId: ID!) { jobProgress(jobId: $jobId) { status message } }', { jobId }, (d) => statuses.push(`${d.jobProgress.status} ${d.jobProgress.message}`), platform.token);
  await subscription.done;
  await subscription.close();
  return statuses;
}

/** Exact match of the greedy completion, by the float64 reference forward pass over the checkpoint's tensors. */
function referenceExactMatch(modelDir: string, dataFile: string, split: string): number {
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const params = readAllTensors(join(modelDir, 'model.safetensors'));
  const data = getSplit(loadTaskData(dataFile), split);
  const L = data.exampleShape[0];
  let answered = 0;
  for (let i = 0; i < data.count; i++) {
    const ids = Array.from(data.inputs.subarray(i * L, (i + 1) * L));
    const labels = data.labels.subarray(i * L, (i + 1) * L);
    const logits = referenceLogits(config, params, [ids])[0];
    let right = true;
    for (let t = 1; t < L; t++) if (labels[t] !== -100 && logits[t - 1].indexOf(Math.max(...logits[t - 1])) !== labels[t]) right = false;
    if (right) answered++;
  }
  return answered / data.count;
}

it('merges decoder fine-tunes with TIES and scores the merge on the registered LM tasks', async () => {
  const { gql } = platform;
  const tasks = zoo.finetunes.map((f) => f.task);
  const started = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
    input: { name: 'llama-ties', method: 'ties', baseModelId: ids.base, models: tasks.map((t) => ({ modelId: ids.finetunes[t], parameters: { weight: 1, density: 0.5 } })), parameters: { lambda: 1 } },
  });
  expect(started.errors).toBeUndefined();
  const mergeId = started.data!.startMerge.merge.id;
  expect((await followToEnd(mergeId)).at(-1)).toMatch(/^COMPLETED/);
  const merged = await gql<{ merge: { outputModel: { id: string; checkpoint: { uri: string }; evaluations: { nodes: Array<{ split: string; metric: string; value: number; task: { name: string } }> } } } }>(
    'query($id: ID!) { merge(id: $id) { outputModel { id checkpoint { uri } evaluations { nodes { split metric value task { name } } } } } }',
    { id: mergeId },
  );
  const model = merged.data!.merge.outputModel;
  expect(model.evaluations.nodes.map((e) => `${e.task.name}/${e.split}`).sort()).toEqual(tasks.flatMap((t) => [`${t}/ood`, `${t}/test`]).sort());
  const dir = model.checkpoint.uri.replace('file://', '');
  for (const e of model.evaluations.nodes) {
    const entry = zoo.finetunes.find((f) => f.task === e.task.name)!;
    expect(e.metric).toBe('accuracy');
    expect(e.value).toBeCloseTo(referenceExactMatch(dir, join(platform.root, 'zoo', entry.data), e.split), 10);
  }
  // The merged checkpoint is still a Hugging Face LlamaForCausalLM.
  expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))).toMatchObject({ model_type: 'llama', architectures: ['LlamaForCausalLM'] });
  const lineage = await gql<{ lineage: { nodes: Array<{ id: string; kind: string }> } }>('query($id: ID!) { lineage(baseId: $id) { nodes { id kind } } }', { id: ids.base });
  expect(lineage.data!.lineage.nodes).toContainEqual({ id: model.id, kind: 'MERGE' });
});

it('runs APL on decoders with each fine-tune\'s LM probe task, and an importance analysis with its per-layer view', async () => {
  const { gql } = platform;
  const tasks = zoo.finetunes.map((f) => f.task);
  const apl = await gql<{ startMerge: { merge: { id: string } } }>('mutation($input: StartMergeInput!) { startMerge(input: $input) { merge { id } } }', {
    input: { name: 'llama-apl', method: 'apl', baseModelId: ids.base, models: tasks.map((t) => ({ modelId: ids.finetunes[t], probeTaskId: ids.tasks[t], parameters: { weight: 1, density: 0.5 } })), parameters: { level: 'row', estimator: 'gradient', lambda: 0.5 }, seed: 3 },
  });
  expect(apl.errors).toBeUndefined();
  expect((await followToEnd(apl.data!.startMerge.merge.id)).at(-1)).toMatch(/^COMPLETED/);

  const task = tasks[0];
  const started = await gql<{ startAnalysis: { analysis: { id: string } } }>('mutation($input: StartAnalysisInput!) { startAnalysis(input: $input) { analysis { id } } }', {
    input: { modelId: ids.finetunes[task], taskId: ids.tasks[task], level: 'LAYER', estimator: 'EXACT' },
  });
  expect(started.errors).toBeUndefined();
  const analysisId = started.data!.startAnalysis.analysis.id;
  expect((await followToEnd(analysisId)).at(-1)).toMatch(/^COMPLETED/);
  const view = await gql<{ analysis: { status: string; artifactUri: string; layers: Array<{ layer: string; partitions: number; mean: number }> } }>('query($id: ID!) { analysis(id: $id) { status artifactUri layers(score: LOSS_INCREASE) { layer partitions mean } } }', { id: analysisId });
  expect(view.errors).toBeUndefined();
  const layers = view.data!.analysis.layers.map((l) => l.layer);
  expect(layers).toContain('model.layers.0.self_attn.q_proj');
  expect(layers).toContain('model.layers.1.mlp.down_proj');
  expect(layers).toContain('lm_head');
  const artifact = loadImportance(view.data!.analysis.artifactUri.replace('file://', ''));
  expect(view.data!.analysis.layers.map((l) => l.mean)).toEqual(Array.from(artifact.scores.loss_increase!));
});
