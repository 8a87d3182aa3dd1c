/**
 * The data-aware baselines beside APL: Fisher merging and RegMean. Their statistics are checked
 * against independent computations (the Fisher diagonal against finite differences of the
 * log-likelihood, the Gram matrices against the layer inputs computed by hand), their per-tensor
 * math against the equations it solves, and whole merges run from YAML on real files.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fisherImportance } from '../src/engine/apl/importance';
import { buildPartitions } from '../src/engine/apl/partitions';
import { trunkShapesOf } from '../src/engine/apl/prepare';
import { diagonalFisher } from '../src/engine/data-aware/fisher-information';
import { linearInputGrams } from '../src/engine/data-aware/input-grams';
import { ProbedModel } from '../src/engine/data-aware/probe-inputs';
import { getSplit, loadTaskData } from '../src/engine/data/task-data';
import { loadModel, Model, toTensors } from '../src/engine/families/model';
import { logits, range } from '../src/engine/families/types';
import { cholesky, choleskySolveRows } from '../src/engine/kernels/cholesky';
import { Random } from '../src/engine/kernels/random';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { fisher } from '../src/engine/methods/fisher';
import { regmean } from '../src/engine/methods/regmean';
import { TensorMergeInput } from '../src/engine/methods/types';
import { useBackend } from '../src/engine/tensors/backend';
import { removeTempDirs, tempDir } from './helpers/files';
import { tinyFamily } from './helpers/tiny-models';

let dir: string;
beforeAll(async () => {
  await useBackend('wasm');
  dir = tempDir();
  tinyFamily({ seed: 11, dir, tasks: [{ name: 'a', classes: 3 }, { name: 'b', classes: 2 }], hidden: [6, 5], probeSize: 12 });
});
afterAll(removeTempDirs);

const probed = (name: string): ProbedModel => ({ model: loadModel(join(dir, name)), task: name, probePath: join(dir, `${name}.safetensors`), probe: getSplit(loadTaskData(join(dir, `${name}.safetensors`)), 'probe') });

/** log p(y | example i) with one parameter element moved by h (float64 arithmetic on the host is not needed: tfjs float32, central differences). */
function logProbability(model: Model, task: string, probe: ProbedModel['probe'], i: number, y: number, tensor?: string, index?: number, h = 0): number {
  const params = new Map(model.params);
  if (tensor !== undefined) {
    const moved = Float32Array.from(model.params.get(tensor)!);
    moved[index!] += h;
    params.set(tensor, moved);
  }
  const { tensors, lookup } = toTensors({ params, shapes: model.shapes });
  const value = tf.tidy(() => tf.logSoftmax(logits(model.family, model.config, lookup, model.family.inputs(model.config, probe, [i], 'probe'), task)).dataSync()[y]);
  tensors.forEach((t) => t.dispose());
  return value;
}

describe('Fisher information', () => {
  it.each(['expected', 'empirical'] as const)('%s: each element is the mean squared derivative of the log-likelihood (finite differences)', async (variant) => {
    const input = probed('a');
    const { model, probe } = input;
    const computed = await diagonalFisher(input, variant);
    expect(computed.examples).toBe(12);
    expect(computed.backwardPasses).toBe(variant === 'expected' ? 12 * 3 : 12);
    const random = new Random(3, 'fisher-check');
    const h = 1e-2;
    for (const tensor of ['trunk.layers.0.weight', 'trunk.layers.0.bias', 'trunk.layers.1.weight']) {
      const length = model.params.get(tensor)!.length;
      for (let check = 0; check < 3; check++) {
        const index = random.nextUint32() % length;
        let sum = 0;
        for (let i = 0; i < probe.count; i++) {
          const p = Array.from({ length: 3 }, (_, y) => Math.exp(logProbability(model, 'a', probe, i, y)));
          const classes = variant === 'expected' ? [0, 1, 2] : [probe.labels[i]];
          for (const y of classes) {
            const derivative = (logProbability(model, 'a', probe, i, y, tensor, index, h) - logProbability(model, 'a', probe, i, y, tensor, index, -h)) / (2 * h);
            sum += (variant === 'expected' ? p[y] : 1) * derivative * derivative;
          }
        }
        const expected = sum / probe.count;
        const got = computed.byTensor.get(tensor)![index];
        expect({ tensor, index, close: Math.abs(got - expected) <= 0.03 * Math.abs(expected) + 1e-6 }).toEqual({ tensor, index, close: true });
      }
    }
  });
});

describe('APL importance by the Fisher estimate', () => {
  it('is ½ Σ F·δ² over each partition: a weight row with its bias entry', async () => {
    const input = probed('a');
    const base = loadModel(join(dir, 'base'));
    const scheme = buildPartitions('row', trunkShapesOf(input.model));
    const { score, backwardPasses } = await fisherImportance({ base, finetune: input.model, task: 'a', probe: input.probe, scheme });
    const fisher = await diagonalFisher(input, 'expected');
    expect(backwardPasses).toBe(12 * 3);
    // Partition 2: row 2 of the first layer (16 weights) and its bias.
    const half = (name: string, from: number, to: number) => {
      let sum = 0;
      for (let j = from; j < to; j++) sum += 0.5 * fisher.byTensor.get(name)![j] * (input.model.params.get(name)![j] - base.params.get(name)![j]) ** 2;
      return sum;
    };
    expect(score[2]).toBeCloseTo(half('trunk.layers.0.weight', 32, 48) + half('trunk.layers.0.bias', 2, 3), 10);
    expect(score.length).toBe(6 + 5);
    expect(Math.min(...score)).toBeGreaterThanOrEqual(0);
  });
});

describe('input Gram matrices', () => {
  it('are XᵀX / rows of every linear map’s inputs: the images for the first layer, the ReLU outputs for the second', async () => {
    const input = probed('b');
    const { model, probe } = input;
    const grams = await linearInputGrams(input);
    expect([...grams.byWeight.keys()]).toEqual(['trunk.layers.0.weight', 'trunk.layers.1.weight']);
    // By hand: the inputs, then relu(x·W0ᵀ + b0), on the host.
    const x = tf.tidy(() => model.family.inputs(model.config, probe, range(0, probe.count), 'probe').dataSync());
    const w0 = model.params.get('trunk.layers.0.weight')!;
    const b0 = model.params.get('trunk.layers.0.bias')!;
    const hidden = new Float64Array(probe.count * 6);
    for (let i = 0; i < probe.count; i++) {
      for (let o = 0; o < 6; o++) {
        let s = b0[o];
        for (let k = 0; k < 16; k++) s += x[i * 16 + k] * w0[o * 16 + k];
        hidden[i * 6 + o] = Math.max(0, s);
      }
    }
    const gramOf = (rows: ArrayLike<number>, width: number) => {
      const g = new Float64Array(width * width);
      for (let i = 0; i < probe.count; i++) for (let a = 0; a < width; a++) for (let b = 0; b < width; b++) g[a * width + b] += (rows[i * width + a] * rows[i * width + b]) / probe.count;
      return g;
    };
    for (const [name, want] of [['trunk.layers.0.weight', gramOf(x, 16)], ['trunk.layers.1.weight', gramOf(hidden, 6)]] as const) {
      const got = grams.byWeight.get(name)!;
      expect(grams.rows.get(name)).toBe(probe.count);
      want.forEach((v, k) => expect(Math.abs(got[k] - v)).toBeLessThanOrEqual(1e-4 * (Math.abs(v) + 1)));
    }
  });
});

/** A tensor job for a method's mergeTensor, with per-model values. */
function job(shape: number[], models: number[][], perModel: Array<Record<string, Float32Array>>, global: Record<string, number | boolean | string>, weights = models.map(() => 1)): TensorMergeInput {
  return { name: 't', shape, base: undefined, models: models.map((m) => Float32Array.from(m)), modelParameters: weights.map((weight) => ({ weight })), globalParameters: global, seed: 0, rowParameters: perModel };
}

describe('Fisher merging, per element', () => {
  it('weights each model by its Fisher value, floored, and by its weight', () => {
    const merged = fisher.mergeTensor(
      job(
        [4],
        [
          [1, 1, 1, 1],
          [3, 3, 3, 3],
        ],
        [{ fisher: Float32Array.from([1, 1, 100, 0]) }, { fisher: Float32Array.from([1, 3, 0, 0]) }],
        { fisher_floor: 1e-6 },
      ),
    );
    // Equal: the mean; 1:3 → 2.5; only the first knows → its value (to the floor); nobody knows → the mean.
    expect(Array.from(merged)).toEqual([2, 2.5, expect.closeTo((100 + 3e-6) / (100 + 1e-6), 6), 2].map((v) => (typeof v === 'number' ? Math.fround(v) : v)));
    const weighted = fisher.mergeTensor(job([1], [[1], [3]], [{ fisher: Float32Array.from([1]) }, { fisher: Float32Array.from([1]) }], { fisher_floor: 1e-6 }, [3, 1]));
    expect(weighted[0]).toBeCloseTo(1.5, 6);
  });
});

describe('RegMean, per linear map', () => {
  const random = new Random(7, 'regmean');
  const matrix = (rows: number, cols: number) => Array.from({ length: rows * cols }, () => random.nextFloat() * 2 - 1);
  const gramFrom = (x: number[], count: number, width: number) => {
    const g = new Float32Array(width * width);
    for (let i = 0; i < count; i++) for (let a = 0; a < width; a++) for (let b = 0; b < width; b++) g[a * width + b] += (x[i * width + a] * x[i * width + b]) / count;
    return g;
  };
  it('at alpha 1 solves the least-squares normal equations Σ (W − W_t) G_t = 0', () => {
    const [out, n] = [3, 4];
    const weights = [matrix(out, n), matrix(out, n)];
    const grams = [gramFrom(matrix(10, n), 10, n), gramFrom(matrix(10, n), 10, n)];
    const merged = regmean.mergeTensor(job([out, n], weights, grams.map((gram) => ({ gram })), { alpha: 1 }));
    for (let r = 0; r < out; r++) {
      for (let j = 0; j < n; j++) {
        let residual = 0;
        for (let t = 0; t < 2; t++) for (let i = 0; i < n; i++) residual += (merged[r * n + i] - weights[t][r * n + i]) * grams[t][i * n + j];
        expect(Math.abs(residual)).toBeLessThan(1e-4);
      }
    }
    // Not a plain average (the inputs differ between the models).
    expect(Math.abs(merged[0] - (weights[0][0] + weights[1][0]) / 2)).toBeGreaterThan(1e-3);
  });
  it('at alpha 0 averages each input column by its variance; a column no model saw is the plain average; the same model twice is itself', () => {
    const weights = [
      [1, 2, 3],
      [5, 6, 7],
    ];
    // Column 0 seen 3:1, column 1 seen only by the first model, column 2 by nobody.
    const grams = [Float32Array.from([3, 0.5, 0, 0.5, 2, 0, 0, 0, 0]), Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0, 0])];
    const merged = regmean.mergeTensor(job([1, 3], weights, grams.map((gram) => ({ gram })), { alpha: 0 }));
    expect(Array.from(merged).map((v) => +v.toFixed(5))).toEqual([(3 * 1 + 5) / 4, 2, 5]);
    const same = matrix(2, 3);
    const gram = gramFrom(matrix(6, 3), 6, 3);
    const itself = regmean.mergeTensor(job([2, 3], [same, same], [{ gram }, { gram }], { alpha: 0.9 }));
    same.forEach((v, k) => expect(itself[k]).toBeCloseTo(v, 5));
  });
  it('with fewer probe rows than inputs (a singular Gram matrix) fits what the rows determine and averages the rest', () => {
    const [out, n] = [2, 4];
    const weights = [matrix(out, n), matrix(out, n)];
    // One input row per model: rank 1 each, 2 together, of 4.
    const rowsOf = [
      [1, 2, 0, 0],
      [0, 1, 3, 0],
    ];
    const merged = regmean.mergeTensor(job([out, n], weights, rowsOf.map((x) => ({ gram: gramFrom(x, 1, n) })), { alpha: 1 }));
    const apply = (w: ArrayLike<number>, x: number[], r: number) => x.reduce((s, v, i) => s + v * w[r * n + i], 0);
    // The normal equations where the rows reach: Σ_t (W·x_t − W_t·x_t) x_t = 0.
    for (let r = 0; r < out; r++) {
      for (let j = 0; j < n; j++) {
        const residual = [0, 1].reduce((s, t) => s + (apply(merged, rowsOf[t], r) - apply(weights[t], rowsOf[t], r)) * rowsOf[t][j], 0);
        expect(Math.abs(residual)).toBeLessThan(1e-3);
      }
    }
    // Directions neither row reaches ([6, −3, 1, 0] is orthogonal to both; so is the last axis): mapped as the average maps them.
    for (const direction of [
      [6, -3, 1, 0],
      [0, 0, 0, 1],
    ]) {
      for (let r = 0; r < out; r++) expect(apply(merged, direction, r)).toBeCloseTo((apply(weights[0], direction, r) + apply(weights[1], direction, r)) / 2, 3);
    }
  });
  it('Cholesky solves A·x = b and refuses a matrix that is not positive definite', () => {
    const a = Float64Array.from([4, 2, 2, 3]);
    const factor = cholesky(a, 2);
    if (!('lower' in factor)) throw new Error('expected a factor');
    expect(Array.from(choleskySolveRows(factor.lower, 2, Float64Array.from([2, 1]), 1)).map((v) => +v.toFixed(12))).toEqual([0.5, 0]);
    expect(cholesky(Float64Array.from([1, 2, 2, 1]), 2)).toEqual({ failedAt: 1 });
  });
});

describe('merges from YAML', () => {
  const config = (method: string, extra = '', models = ['a', 'b']) => `merge_method: ${method}
models:
${models.map((m) => `  - model: ${m}\n    parameters: {probe: ${m}.safetensors}`).join('\n')}
${extra}`;
  const merge = async (text: string, out: string) => runMerge(planMerge(parseMergeConfig(text, 'merge.yml', dir)), join(dir, out), { threads: 0 });

  it.each(['fisher', 'regmean'])('%s: merges the trunks, keeps each fine-tune’s head, and records what it read', async (method) => {
    const result = await merge(config(method), `${method}-merged`);
    const merged = loadModel(join(dir, `${method}-merged`));
    expect(merged.config.tasks).toEqual({ a: 3, b: 2 });
    const [a, b] = [loadModel(join(dir, 'a')), loadModel(join(dir, 'b'))];
    expect(Array.from(merged.params.get('heads.b.weight')!)).toEqual(Array.from(b.params.get('heads.b.weight')!));
    // Trunk values lie between the models' where the method averages (Fisher: elementwise; RegMean: biases).
    const name = method === 'fisher' ? 'trunk.layers.0.weight' : 'trunk.layers.0.bias';
    merged.params.get(name)!.forEach((v, k) => {
      const [lo, hi] = [Math.min(a.params.get(name)![k], b.params.get(name)![k]), Math.max(a.params.get(name)![k], b.params.get(name)![k])];
      expect(v).toBeGreaterThanOrEqual(lo - 1e-6);
      expect(v).toBeLessThanOrEqual(hi + 1e-6);
    });
    const sources = result.preparation!.sources as Array<Record<string, unknown>>;
    expect(sources.map((s) => [s.task, s.examples])).toEqual([
      ['a', 12],
      ['b', 12],
    ]);
  });

  it('APL with combine: regmean is RegMean of the dropped fine-tunes: with nothing dropped, RegMean itself', async () => {
    const aplText = (density: number) => `merge_method: apl
base_model: base
models:
  - model: a
    parameters: {probe: a.safetensors, density: ${density}}
  - model: b
    parameters: {probe: b.safetensors, density: ${density}}
parameters: {combine: regmean, regmean_alpha: 0.7}
seed: 1
`;
    await merge(aplText(1), 'apl-regmean-keep-all');
    await merge(config('regmean', 'parameters: {alpha: 0.7}'), 'regmean-0.7');
    const [hybrid, plain] = [loadModel(join(dir, 'apl-regmean-keep-all')), loadModel(join(dir, 'regmean-0.7'))];
    for (const [name, want] of plain.params) hybrid.params.get(name)!.forEach((v, k) => expect(Math.abs(v - want[k])).toBeLessThanOrEqual(1e-5 * (Math.abs(want[k]) + 1)));
    // Half of each task vector dropped: a different merge, still of the trunk only.
    await merge(aplText(0.5), 'apl-regmean-half');
    const half = loadModel(join(dir, 'apl-regmean-half'));
    expect(Array.from(half.params.get('trunk.layers.0.weight')!)).not.toEqual(Array.from(plain.params.get('trunk.layers.0.weight')!));
    expect(Array.from(half.params.get('heads.a.weight')!)).toEqual(Array.from(plain.params.get('heads.a.weight')!));
    // It needs the probe inputs themselves, not only a saved importance.
    await expect(merge(aplText(0.5).replace('{probe: b.safetensors, density: 0.5}', '{importance: none.safetensors, density: 0.5}'), 'apl-regmean-no-probe')).rejects.toThrow(/combine: regmean needs per-model "probe"/);
  });

  it('names the model and the missing probe data, and writes nothing', async () => {
    await expect(merge(config('fisher').replace(/\{probe: b\.safetensors\}/, '{}'), 'no-probe')).rejects.toThrow(/fisher needs per-model "probe"/);
    await expect(merge(config('regmean').replace('b.safetensors', 'missing.safetensors'), 'bad-probe')).rejects.toThrow(/missing\.safetensors/);
    expect(existsSync(join(dir, 'no-probe'))).toBe(false);
    expect(existsSync(join(dir, 'bad-probe'))).toBe(false);
    // The probe split of the other task: labels beyond the 2-class head.
    await expect(merge(config('regmean').replace('{probe: b.safetensors}', '{probe: a.safetensors}'), 'wrong-task')).rejects.toThrow(/does not fit .*2-class head "b"/);
  });
});
