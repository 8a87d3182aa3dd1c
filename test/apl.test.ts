/** APL: partitions, exact intervention against brute force, the gradient approximation, calibration. */
import * as tf from '@tensorflow/tfjs';
import { spearman } from '../src/engine/benchmark/merging';
import { keepRates, mergeWeights, standardize } from '../src/engine/apl/calibrate';
import { exactImportance, gradientImportance } from '../src/engine/apl/importance';
import { buildPartitions } from '../src/engine/apl/partitions';
import { trunkShapesOf } from '../src/engine/apl/prepare';
import { Model, toTensors } from '../src/engine/families/model';
import { logits, range } from '../src/engine/families/types';
import { useBackend } from '../src/engine/tensors/backend';
import { tinyFamily } from './helpers/tiny-models';

beforeAll(async () => {
  await useBackend('wasm');
});

function meanLoss(model: Model, task: string, probe: ReturnType<typeof tinyFamily>['probes'][number]): number {
  const { tensors, lookup } = toTensors(model);
  const value = tf.tidy(() => {
    const out = logits(model.family, model.config, lookup, model.family.inputs(model.config, probe, range(0, probe.count), 'probe'), task);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(probe.labels, 'int32'), model.config.tasks[task]), out).dataSync()[0];
  });
  tensors.forEach((t) => t.dispose());
  return value;
}


describe('partition schemes', () => {
  const family = tinyFamily({ seed: 1, tasks: [{ name: 'a', classes: 3 }] });
  const shapes = trunkShapesOf(family.base); // 16 → 8 → 4
  it.each([
    ['model', 1, [8 * 16 + 8 + 4 * 8 + 4]],
    ['layer', 2, [8 * 16 + 8, 4 * 8 + 4]],
    ['row', 12, [...new Array(8).fill(17), ...new Array(4).fill(9)]],
  ] as const)('%s level: %i partitions with their parameter counts', (level, count, sizes) => {
    const scheme = buildPartitions(level, shapes);
    expect(scheme.count).toBe(count);
    expect(Array.from(scheme.sizes)).toEqual(sizes);
  });
  it('pairs each weight row with its bias entry and sums per partition', async () => {
    const scheme = buildPartitions('row', shapes);
    expect(scheme.names.slice(0, 2)).toEqual(['trunk.layers.0[0]', 'trunk.layers.0[1]']);
    expect(Array.from(scheme.rows.get('trunk.layers.0.bias')!)).toEqual(Array.from(scheme.rows.get('trunk.layers.0.weight')!));
    // Counting each tensor's elements into the partition of their row gives the partition sizes.
    const counted = new Array(scheme.count).fill(0);
    for (const [name, rows] of scheme.rows) {
      const rowLength = shapes.get(name)!.reduce((a, b) => a * b, 1) / rows.length;
      rows.forEach((k) => (counted[k] += rowLength));
    }
    expect(counted).toEqual(Array.from(scheme.sizes));
  });
});

describe('exact importance (causal intervention)', () => {
  const family = tinyFamily({ seed: 2, tasks: [{ name: 'a', classes: 3 }] });
  const [finetune] = family.finetunes;
  const probe = family.probes[0];

  // The row level has three paths: a rank-one update of the next linear map (a layer, or a linear
  // head), a splice of the changed unit when the head is not known to be linear, and a full
  // recomputation of the stage when the stage is not known to be linear.
  const withoutLinearHead = (model: Model): Model => ({ ...model, family: { ...model.family, linearHead: undefined } });
  const withoutLinearStages = (model: Model): Model => ({
    ...model,
    family: { ...model.family, linearHead: undefined, stages: (config) => model.family.stages(config).map((stage) => ({ ...stage, linear: undefined })) },
  });
  const asIs = (model: Model): Model => model;
  it.each([
    ['model', 'MLP', asIs],
    ['layer', 'MLP', asIs],
    ['row', 'MLP', asIs],
    ['row', 'MLP seen without its linear head', withoutLinearHead],
    ['row', 'MLP seen without linear stages', withoutLinearStages],
  ] as const)('equals the loss increase of each corrupted model computed one by one (%s level, %s)', async (level, _view, view) => {
    const scheme = buildPartitions(level, trunkShapesOf(finetune));
    const batched = await exactImportance({ base: family.base, finetune: view(finetune), task: 'a', probe, scheme });
    const oneAtATime = await exactImportance({ base: family.base, finetune: view(finetune), task: 'a', probe, scheme }, { maxBatchRows: 1 });
    const clean = meanLoss(finetune, 'a', probe);
    expect(batched.cleanLoss).toBeCloseTo(clean, 5);
    for (let k = 0; k < scheme.count; k++) {
      // Brute force: copy the fine-tune and set partition k back to the base.
      const params = new Map([...finetune.params].map(([n, v]) => [n, v.slice()]));
      for (const [name, rows] of scheme.rows) {
        const rowLength = params.get(name)!.length / rows.length;
        rows.forEach((p, r) => {
          if (p === k) for (let j = r * rowLength; j < (r + 1) * rowLength; j++) params.get(name)![j] = family.base.params.get(name)![j];
        });
      }
      const corrupted = meanLoss({ ...finetune, params }, 'a', probe);
      expect(batched.lossIncrease[k]).toBeCloseTo(corrupted - clean, 4);
      expect(oneAtATime.lossIncrease[k]).toBeCloseTo(batched.lossIncrease[k], 5);
      expect(batched.kl[k]).toBeGreaterThanOrEqual(0);
    }
  });

  it('gives zero importance and zero KL to a partition the fine-tune did not change', async () => {
    const params = new Map([...finetune.params].map(([n, v]) => [n, v.slice()]));
    params.get('trunk.layers.0.weight')!.set(family.base.params.get('trunk.layers.0.weight')!.subarray(16 * 3, 16 * 4), 16 * 3);
    params.get('trunk.layers.0.bias')![3] = family.base.params.get('trunk.layers.0.bias')![3];
    const scheme = buildPartitions('row', trunkShapesOf(finetune));
    const result = await exactImportance({ base: family.base, finetune: { ...finetune, params }, task: 'a', probe, scheme });
    expect(Math.abs(result.lossIncrease[3])).toBeLessThan(1e-6);
    expect(result.kl[3]).toBeLessThan(1e-6);
    // It is known to be zero without running it, and the others are still scored.
    expect(result.unchangedPartitions).toBe(1);
    expect([result.lossIncrease[3], result.kl[3]]).toEqual([0, 0]);
    expect(result.lossIncrease.filter((v) => v !== 0).length).toBe(scheme.count - 1);
  });

  it('leaves no tensors behind (workers run many analyses)', async () => {
    for (const level of ['model', 'layer', 'row'] as const) {
      const scheme = buildPartitions(level, trunkShapesOf(finetune));
      const before = tf.memory().numTensors;
      await exactImportance({ base: family.base, finetune, task: 'a', probe, scheme });
      await gradientImportance({ base: family.base, finetune, task: 'a', probe, scheme });
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('reports progress per partition and stops on abort', async () => {
    const scheme = buildPartitions('row', trunkShapesOf(finetune));
    const done: number[] = [];
    await exactImportance({ base: family.base, finetune, task: 'a', probe, scheme }, { maxBatchRows: probe.count * 4, onProgress: (e) => done.push(e.done) });
    expect(done[done.length - 1]).toBe(scheme.count);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    const controller = new AbortController();
    controller.abort();
    await expect(exactImportance({ base: family.base, finetune, task: 'a', probe, scheme }, { signal: controller.signal })).rejects.toThrow(/aborted/);
  });
});

describe('gradient approximation', () => {
  it('ranks partitions like exact intervention when deltas are small (first-order regime)', async () => {
    const family = tinyFamily({ seed: 3, tasks: [{ name: 'a', classes: 3 }], deltaScale: 0.002, hidden: [16, 8] });
    const [finetune] = family.finetunes;
    const scheme = buildPartitions('row', trunkShapesOf(finetune));
    const inputs = { base: family.base, finetune, task: 'a', probe: family.probes[0], scheme };
    const exact = await exactImportance(inputs);
    const gradient = await gradientImportance(inputs);
    expect(spearman(exact.lossIncrease, gradient.signed)).toBeGreaterThan(0.95);
    for (let k = 0; k < scheme.count; k++) {
      expect(gradient.absolute[k]).toBeCloseTo(Math.abs(gradient.signed[k]), 12);
      expect(Math.abs(gradient.signed[k] - exact.lossIncrease[k])).toBeLessThan(Math.abs(exact.lossIncrease[k]) * 0.2 + 1e-6);
    }
    const atBase = await gradientImportance(inputs, 'base');
    expect(atBase.at).toBe('base');
    expect(Array.from(atBase.signed)).not.toEqual(Array.from(gradient.signed));
  });

  it('rejects probe labels that do not fit the head, an empty probe split, and a task the model has no head for', async () => {
    const family = tinyFamily({ seed: 4, tasks: [{ name: 'a', classes: 3 }] });
    const [finetune] = family.finetunes;
    const scheme = buildPartitions('layer', trunkShapesOf(finetune));
    const probe = { ...family.probes[0], labels: family.probes[0].labels.map((y, i) => (i === 5 ? 7 : y)) };
    await expect(gradientImportance({ base: family.base, finetune, task: 'a', probe, scheme })).rejects.toThrow(/label 7 at index 5 does not fit the head's 3 classes/);
    const empty = { ...family.probes[0], inputs: family.probes[0].inputs.subarray(0, 0), labels: new Int32Array(0), count: 0 };
    await expect(exactImportance({ base: family.base, finetune, task: 'a', probe: empty, scheme })).rejects.toThrow(/probe data for "a": the probe split has no examples/);
    await expect(gradientImportance({ base: family.base, finetune, task: 'a', probe: empty, scheme })).rejects.toThrow(/the probe split has no examples/);
    await expect(exactImportance({ base: family.base, finetune, task: 'b', probe: family.probes[0], scheme })).rejects.toThrow(/has no head for task "b"/);
    const wide = tinyFamily({ seed: 4, tasks: [{ name: 'a', classes: 3 }], hidden: [9, 4] });
    await expect(gradientImportance({ base: wide.base, finetune, task: 'a', probe: family.probes[0], scheme })).rejects.toThrow(/trunk tensor "trunk.layers.0.weight" has shape \[8,16\] in .* but \[9,16\] .*not homologous/);
  });
});

describe('calibration', () => {
  const importance = [0.5, -0.2, 3, 0.1, 0.9, 2];
  const sizes = [10, 20, 5, 40, 15, 10];
  const weightedMean = (rates: ArrayLike<number>) => Array.from(rates).reduce((acc, r, k) => acc + r * sizes[k], 0) / sizes.reduce((a, b) => a + b, 0);

  it.each([0, 0.3, 1, 5, Infinity])('keeps the size-weighted mean keep-rate at the target density (τ1 = %s)', (tau) => {
    for (const density of [0.1, 0.5, 0.9]) {
      const rates = keepRates(importance, sizes, density, tau);
      expect(weightedMean(rates)).toBeCloseTo(density, 9);
      rates.forEach((r) => expect(r).toBeGreaterThanOrEqual(0));
      rates.forEach((r) => expect(r).toBeLessThanOrEqual(1));
      // Rates never fall as importance rises.
      const order = importance.map((_, k) => k).sort((a, b) => importance[a] - importance[b]);
      for (let i = 1; i < order.length; i++) expect(rates[order[i]]).toBeGreaterThanOrEqual(rates[order[i - 1]] - 1e-12);
    }
  });
  it('is uniform (DARE) at τ1 = ∞ and keeps whole partitions by rank at τ1 = 0', async () => {
    expect(Array.from(keepRates(importance, sizes, 0.3, Infinity))).toEqual(new Array(6).fill(0.3));
    // Budget 0.3 × 100 = 30: the top partitions (5 + 10) whole, then 15 of the next (15 elements).
    expect(Array.from(keepRates(importance, sizes, 0.3, 0))).toEqual([0, 0, 1, 0, 1, 1]);
  });
  it('splits each partition among tasks by softmax of standardized importance (τ2), weights summing to T', async () => {
    const other = [0.1, 0.4, -1, 2, 0.2, 0.3];
    const weights = mergeWeights([importance, other], sizes, 0.5);
    for (let k = 0; k < sizes.length; k++) expect(weights[0][k] + weights[1][k]).toBeCloseTo(2, 12);
    const z = [standardize(importance, sizes), standardize(other, sizes)];
    for (let k = 0; k < sizes.length; k++) expect(weights[0][k] > 1).toBe(z[0][k] > z[1][k]);
    expect(mergeWeights([importance, other], sizes, Infinity).map((w) => Array.from(w))).toEqual([new Array(6).fill(1), new Array(6).fill(1)]);
  });
});
