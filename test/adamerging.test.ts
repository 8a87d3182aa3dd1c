/**
 * AdaMerging: task arithmetic with coefficients learned by minimising the entropy of the merged
 * model's predictions on unlabelled probe inputs. Checked: the entropy it minimises (against one
 * computed by hand from the logits), that the labels are never read, that the merge is the base plus
 * each task vector times the coefficient it reports, and that a fit that cannot lower the entropy
 * leaves every coefficient at its start (task arithmetic).
 */
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { sha256File } from '../src/engine/checkpoint/files';
import { getSplit, loadTaskData, saveTaskData } from '../src/engine/data/task-data';
import { loadModel } from '../src/engine/families/model';
import { logits, range } from '../src/engine/families/types';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { useBackend } from '../src/engine/tensors/backend';
import { predictionEntropy } from '../src/engine/train/train';
import { removeTempDirs, tempDir } from './helpers/files';
import { tinyFamily } from './helpers/tiny-models';

beforeAll(async () => {
  await useBackend('wasm');
});
afterAll(removeTempDirs);

const config = (extra: string, probes = ['a.safetensors', 'b.safetensors']) => `merge_method: adamerging
base_model: base
models:
  - model: a
    parameters: {probe: ${probes[0]}}
  - model: b
    parameters: {probe: ${probes[1]}}
parameters:
${extra}
`;

describe('adamerging', () => {
  let dir: string;
  const merge = (text: string, out: string) => runMerge(planMerge(parseMergeConfig(text, 'ada.yml', dir)), join(dir, out), { threads: 0 });
  beforeAll(() => {
    dir = tempDir();
    tinyFamily({ seed: 9, dir, tasks: [{ name: 'a', classes: 3 }, { name: 'b', classes: 4 }], deltaScale: 0.6 });
  });

  it('minimises the mean entropy of the predictions, computed here from the logits by hand', async () => {
    const model = loadModel(join(dir, 'a'));
    const probe = getSplit(loadTaskData(join(dir, 'a.safetensors')), 'probe');
    const lookup = (name: string) => tf.tensor(model.params.get(name)!, model.shapes.get(name)!);
    const got = tf.tidy(() => predictionEntropy(model, lookup, probe, range(0, probe.count), 'a').dataSync()[0]);
    const rows = tf.tidy(() => logits(model.family, model.config, lookup, model.family.inputs(model.config, probe, range(0, probe.count), 'a'), 'a').arraySync() as number[][]);
    const want =
      rows
        .map((row) => {
          const top = Math.max(...row);
          const z = row.reduce((s, v) => s + Math.exp(v - top), 0);
          return -row.reduce((s, v) => s + (Math.exp(v - top) / z) * (v - top - Math.log(z)), 0);
        })
        .reduce((a, b) => a + b, 0) / rows.length;
    expect(got).toBeCloseTo(want, 5);
  });

  it('lowers the entropy, and merges the base plus each task vector times the coefficient it reports', async () => {
    const result = await merge(config('  steps: 40\n  learning_rate: 0.05'), 'layer');
    const report = result.preparation as { entropyAtLambda: number; entropyFitted: number; used: boolean; coefficients: Record<string, Record<string, number>> };
    expect(report.used).toBe(true);
    expect(report.entropyFitted).toBeLessThan(report.entropyAtLambda);
    const [base, a, b, merged] = ['base', 'a', 'b', 'layer'].map((m) => loadModel(join(dir, m)));
    const coefficient = (model: string, tensor: string) => report.coefficients[join(dir, model)][tensor];
    // Layer-wise: the coefficients differ between tensors.
    expect(new Set(Object.values(report.coefficients[join(dir, 'a')])).size).toBeGreaterThan(1);
    for (const name of ['trunk.layers.0.weight', 'trunk.layers.1.bias']) {
      const theta0 = base.params.get(name)!;
      merged.params.get(name)!.forEach((v, j) => {
        const want = theta0[j] + coefficient('a', name) * (a.params.get(name)![j] - theta0[j]) + coefficient('b', name) * (b.params.get(name)![j] - theta0[j]);
        expect(v).toBeCloseTo(want, 4);
      });
    }
    // Every fine-tune's head is carried over.
    expect(merged.config.tasks).toEqual({ a: 3, b: 4 });
  });

  it('never reads the labels: probe files with other labels give the same merge', async () => {
    for (const task of ['a', 'b']) {
      const data = loadTaskData(join(dir, `${task}.safetensors`));
      const probe = getSplit(data, 'probe');
      const shuffled = { ...probe, labels: probe.labels.map((l) => (l + 1) % data.classes) };
      saveTaskData(join(dir, `${task}-relabelled.safetensors`), { name: data.task, classes: data.classes, description: 'relabelled', seed: 1 }, { probe: shuffled, validation: shuffled, test: shuffled, ood: shuffled });
    }
    await merge(config('  steps: 10\n  granularity: task'), 'task-wise');
    await merge(config('  steps: 10\n  granularity: task', ['a-relabelled.safetensors', 'b-relabelled.safetensors']), 'task-wise-relabelled');
    expect(sha256File(join(dir, 'task-wise-relabelled', 'model.safetensors'))).toBe(sha256File(join(dir, 'task-wise', 'model.safetensors')));
  });

  it('task-wise, one coefficient per fine-tune; a fit that cannot lower the entropy keeps λ: task arithmetic', async () => {
    const taskWise = await merge(config('  steps: 10\n  granularity: task'), 'task-wise-2');
    expect(typeof (taskWise.preparation!.coefficients as Record<string, unknown>)[join(dir, 'a')]).toBe('number');
    const still = await merge(config('  steps: 3\n  learning_rate: 0'), 'still');
    expect(still.preparation).toMatchObject({ used: false });
    await runMerge(planMerge(parseMergeConfig('merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: a\n  - model: b\nparameters:\n  weight: 1\n  lambda: 0.3\n', 'ta.yml', dir)), join(dir, 'ta'), { threads: 0 });
    const [ta, merged] = ['ta', 'still'].map((m) => loadModel(join(dir, m)));
    for (const [name, values] of ta.params) if (name.startsWith('trunk.')) merged.params.get(name)!.forEach((v, j) => expect(v).toBeCloseTo(values[j], 6));
  });

  it('refuses a model without probe data, naming it, before any pass', () => {
    expect(() => planMerge(parseMergeConfig(config('  steps: 10').replace('    parameters: {probe: b.safetensors}\n', ''), 'ada.yml', dir))).toThrow(/adamerging needs per-model "probe"/);
  });
});
