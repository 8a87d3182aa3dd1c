/**
 * LoRA adapters of our model families, run as the models they make: `apl-merge extract-lora` of a
 * fine-tune writes the low-rank updates, its task head whole (modules_to_save) and its config.json;
 * registered in the platform as a FINETUNE of its base, the adapter is evaluated (queued at
 * registration) and analysed by a real worker process. The scores are those of a forward pass
 * written out by hand over a checkpoint this test materialises itself (base + B·A, the saved head),
 * on data whose labels give known accuracies; the analysis equals that of the materialised model.
 * APL merges an adapter (scored on its probe data as the adapted model) as it merges that model.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../src/engine/checkpoint/checkpoint';
import { loadImportance } from '../src/engine/apl/artifact';
import { saveTaskData, TaskSplit } from '../src/engine/data/task-data';
import { Random } from '../src/engine/kernels/random';
import { extractLora } from '../src/engine/lora/extract';
import { readTensorValues, writeTinyModel } from './helpers/files';
import { waitFor } from './helpers/graphql';
import { mlpPredictions } from './helpers/mlp-reference';
import { startTestPlatform, TestPlatform } from './helpers/platform';
import { tinyFamily } from './helpers/tiny-models';
import { useBackend } from '../src/engine/tensors/backend';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { tempDir } from './helpers/files';

jest.setTimeout(120000);
let platform: TestPlatform;
const REGISTER = 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id evaluationRuns { id status } } } }';

/** base + scale·B·A for each adapted matrix, the adapter's saved tensors, the rest the base's: by hand. */
function materialise(baseDir: string, adapterDir: string, out: string): void {
  const base = openCheckpoint(baseDir);
  const adapter = openCheckpoint(join(adapterDir, 'adapter_model.safetensors'));
  const config = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number };
  const scale = config.lora_alpha / config.r;
  const tensors: Record<string, { shape: number[]; values: number[] }> = {};
  const familyConfig = JSON.parse(readFileSync(join(adapterDir, 'config.json'), 'utf8')) as { tasks: Record<string, number> };
  for (const name of base.names) {
    if (name.startsWith('heads.')) continue;
    const shape = [...base.tensors.get(name)!.shape];
    const values = readTensorValues(baseDir, name);
    const module = name.replace(/\.weight$/, '');
    const a = adapter.tensors.get(`base_model.model.${module}.lora_A.weight`);
    if (a && name.endsWith('.weight')) {
      const [rank, columns] = a.shape;
      const av = readTensorValues(join(adapterDir, 'adapter_model.safetensors'), a.name);
      const bv = readTensorValues(join(adapterDir, 'adapter_model.safetensors'), `base_model.model.${module}.lora_B.weight`);
      for (let o = 0; o < shape[0]; o++) for (let i = 0; i < columns; i++) {
        let sum = 0;
        for (let k = 0; k < rank; k++) sum += bv[o * rank + k] * av[k * columns + i];
        values[o * columns + i] += scale * sum;
      }
    }
    tensors[name] = { shape, values };
  }
  for (const name of adapter.names.filter((n) => !n.includes('.lora_'))) {
    tensors[name.replace('base_model.model.', '')] = { shape: [...adapter.tensors.get(name)!.shape], values: readTensorValues(join(adapterDir, 'adapter_model.safetensors'), name) };
  }
  writeTinyModel(out, tensors, familyConfig);
}

beforeAll(async () => {
  platform = await startTestPlatform();
});
afterAll(() => platform?.stop());

it('evaluates and analyses an extracted adapter of a family fine-tune as the model base + B·A with its head', async () => {
  const dir = join(platform.root, 'models');
  tinyFamily({ seed: 5, tasks: [{ name: 'alpha', classes: 3 }], dir });
  const adapterDir = join(dir, 'alpha-lora');
  const extracted = extractLora({ base: join(dir, 'base'), finetune: join(dir, 'alpha'), out: adapterDir, rank: 2, seed: 1 });
  expect(extracted.saved).toEqual(['heads.alpha']);
  expect(JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8')).modules_to_save).toEqual(['heads.alpha']);
  const materialised = join(dir, 'materialised');
  materialise(join(dir, 'base'), adapterDir, materialised);

  // Labels agree with the materialised model's predictions on 19 of 24 test examples and 7 of 24 OOD ones.
  const random = new Random(9, 'lora-eval');
  const split = (right: number): TaskSplit => {
    const unlabelled: TaskSplit = { inputs: Uint8Array.from({ length: 24 * 16 }, () => random.nextUint32() % 256), exampleShape: [4, 4], labels: new Int32Array(24), count: 24 };
    const predicted = mlpPredictions(materialised, 'alpha', unlabelled);
    return { ...unlabelled, labels: Int32Array.from(predicted, (p, i) => (i < right ? p : (p + 1) % 3)) };
  };
  const test = split(19);
  saveTaskData(join(dir, 'alpha-eval.safetensors'), { name: 'alpha', classes: 3, description: 'adapter evaluation', seed: 9 }, { probe: test, validation: test, test, ood: split(7) });
  const taskId = (await platform.gql<{ registerTask: { task: { id: string } } }>('mutation($i: RegisterTaskInput!) { registerTask(input: $i) { task { id } } }', { i: { name: 'alpha', path: join(dir, 'alpha-eval.safetensors') } })).data!.registerTask.task.id;

  const base = (await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'base', kind: 'BASE', path: join(dir, 'base') } })).data!.registerModel.model.id;
  const adapter = await platform.gql<{ registerModel: { model: { id: string; evaluationRuns: Array<{ id: string; status: string }> } } }>(REGISTER, { input: { name: 'alpha-lora', kind: 'FINETUNE', path: adapterDir, parentIds: [base] } });
  expect(adapter.errors).toBeUndefined();
  // Queued at registration, like any fine-tune's.
  expect(adapter.data!.registerModel.model.evaluationRuns).toEqual([{ id: expect.any(String), status: 'QUEUED' }]);
  const adapterId = adapter.data!.registerModel.model.id;
  const reference = await platform.gql<{ registerModel: { model: { id: string } } }>(REGISTER, { input: { name: 'materialised', kind: 'FINETUNE', path: materialised, parentIds: [base], evaluate: false } });
  const referenceId = reference.data!.registerModel.model.id;

  const worker = await platform.startWorker();
  const run = adapter.data!.registerModel.model.evaluationRuns[0].id;
  await waitFor(async () => (await platform.prisma.evaluationRun.findUniqueOrThrow({ where: { id: run } })).status === 'COMPLETED', `the adapter's evaluation (worker:\n${worker.output()})`, 60000);
  const scores = await platform.prisma.evaluation.findMany({ where: { modelId: adapterId }, orderBy: { split: 'asc' } });
  expect(scores.map((s) => [s.split, s.value])).toEqual([['ood', 7 / 24], ['test', 19 / 24]]);

  const analyse = async (modelId: string) => {
    const started = await platform.gql<{ startAnalysis: { analysis: { id: string } } }>('mutation($m: ID!, $t: ID!) { startAnalysis(input: { modelId: $m, taskId: $t, level: LAYER, estimator: EXACT }) { analysis { id } } }', { m: modelId, t: taskId });
    expect(started.errors).toBeUndefined();
    const id = started.data!.startAnalysis.analysis.id;
    await waitFor(async () => (await platform.prisma.importanceAnalysis.findUniqueOrThrow({ where: { id } })).status === 'COMPLETED', `the analysis (worker:\n${worker.output()})`, 60000);
    const row = await platform.prisma.importanceAnalysis.findUniqueOrThrow({ where: { id } });
    return loadImportance(row.artifactUri!.replace('file://', ''));
  };
  const ofAdapter = await analyse(adapterId);
  const ofMaterialised = await analyse(referenceId);
  const [a, b] = [ofAdapter.scores.loss_increase!, ofMaterialised.scores.loss_increase!];
  expect(a.some((v) => v !== 0)).toBe(true);
  expect(a.length).toBe(b.length);
  a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(b[i]))));
  expect(ofAdapter.model).toBe(`${join(dir, 'base')}+${adapterDir}`);
});

it('APL merges an adapter, scored on its probe data as the adapted model, as it merges the materialised model', async () => {
  await useBackend('wasm');
  const dir = tempDir();
  tinyFamily({ seed: 7, dir, tasks: [{ name: 'a', classes: 3 }, { name: 'b', classes: 2 }] });
  extractLora({ base: join(dir, 'base'), finetune: join(dir, 'a'), out: join(dir, 'a-lora'), rank: 3, seed: 2 });
  materialise(join(dir, 'base'), join(dir, 'a-lora'), join(dir, 'a-materialised'));
  const config = (a: string) => `merge_method: apl\nbase_model: base\nmodels:\n  - model: ${a}\n    parameters: {probe: a.safetensors}\n  - model: b\n    parameters: {probe: b.safetensors}\nparameters: {density: 0.5}\n`;
  const merged = async (a: string) => {
    const out = join(dir, `merged-${a}`);
    const result = await runMerge(planMerge(parseMergeConfig(config(a), 'apl.yml', dir)), out, { threads: 0, backend: 'wasm' });
    return { result, out };
  };
  const viaAdapter = await merged('a-lora');
  const viaMaterialised = await merged('a-materialised');
  expect((viaAdapter.result.preparation!.sources as Array<{ model: string }>)[0].model).toBe(`${join(dir, 'base')}+${join(dir, 'a-lora')}`);
  for (const name of openCheckpoint(viaMaterialised.out).names) {
    const [x, y] = [readTensorValues(viaAdapter.out, name), readTensorValues(viaMaterialised.out, name)];
    x.forEach((v, i) => expect({ name, i, close: Math.abs(v - y[i]) < 1e-5 }).toEqual({ name, i, close: true }));
  }
});
