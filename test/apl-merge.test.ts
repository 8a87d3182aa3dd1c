/** APL merges from YAML over models and task data on disk, importance artifacts, and the zoo. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadImportance, saveImportance } from '../src/engine/apl/artifact';
import { exactImportance, gradientImportance } from '../src/engine/apl/importance';
import { buildPartitions } from '../src/engine/apl/partitions';
import { trunkShapesOf } from '../src/engine/apl/prepare';
import { sha256File } from '../src/engine/checkpoint/files';
import { getSplit, loadTaskData, saveTaskData } from '../src/engine/data/task-data';
import { loadModel } from '../src/engine/families/model';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { useBackend } from '../src/engine/tensors/backend';
import { evaluate } from '../src/engine/train/evaluate';
import { buildVisionZoo, VISION_SCALES } from '../src/engine/zoo/vision';
import { removeTempDirs, tempDir } from './helpers/files';
import { gpuIt } from './helpers/gpu';
import { tinyFamily } from './helpers/tiny-models';

beforeAll(async () => {
  await useBackend('wasm');
});
afterAll(removeTempDirs);

function aplConfig(extra: string, models = ['a', 'b']) {
  return `merge_method: apl
base_model: base
models:
${models.map((m) => `  - model: ${m}\n    parameters: {probe: ${m}.safetensors}`).join('\n')}
parameters:
${extra}
`;
}

async function merge(dir: string, text: string, out: string) {
  return runMerge(planMerge(parseMergeConfig(text, 'apl.yml', dir)), join(dir, out), { threads: 0 });
}

describe('apl merge method', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    tinyFamily({ seed: 5, dir, tasks: [{ name: 'a', classes: 3 }, { name: 'b', classes: 2 }] });
  });

  it('merges the trunks, keeps every fine-tune’s head, and records what importance it used', async () => {
    const result = await merge(dir, aplConfig('  density: 0.5\n  lambda: 0.5'), 'merged');
    const merged = loadModel(join(dir, 'merged'));
    expect(merged.config.tasks).toEqual({ a: 3, b: 2 });
    const a = loadModel(join(dir, 'a'));
    expect(Array.from(merged.params.get('heads.a.weight')!)).toEqual(Array.from(a.params.get('heads.a.weight')!));
    expect(merged.params.has('heads.pretrain.weight')).toBe(false);
    expect(result.preparation).toMatchObject({ backend: 'wasm', level: 'row', partitions: 12, estimator: 'gradient' });
    expect((result.preparation!.sources as unknown[]).length).toBe(2);
  });

  it('with density 1 and one model is task arithmetic: the fine-tune’s trunk exactly', async () => {
    await merge(dir, aplConfig('  density: 1', ['a']), 'identity');
    const merged = loadModel(join(dir, 'identity'));
    const a = loadModel(join(dir, 'a'));
    for (const name of ['trunk.layers.0.weight', 'trunk.layers.1.bias']) {
      const got = merged.params.get(name)!;
      const want = a.params.get(name)!;
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
    }
  });

  it('keeps whole rows by importance at τ1 = 0 with deterministic drops, and is reproducible from its seed', async () => {
    const text = aplConfig('  density: 0.5\n  keep_temperature: 0\n  drop: deterministic', ['a']);
    await merge(dir, text, 'rank');
    const merged = loadModel(join(dir, 'rank'));
    const base = loadModel(join(dir, 'base'));
    const weight = merged.params.get('trunk.layers.0.weight')!;
    const baseWeight = base.params.get('trunk.layers.0.weight')!;
    const changedRows = Array.from({ length: 8 }, (_, r) => weight.subarray(r * 16, r * 16 + 16).some((v, j) => v !== baseWeight[r * 16 + j]));
    // Rows of layer 0 are kept whole or dropped whole (a boundary partition may be kept in part).
    expect(changedRows.filter(Boolean).length).toBeGreaterThan(0);
    expect(changedRows.filter(Boolean).length).toBeLessThan(8);
    const stochastic = aplConfig('  density: 0.5\n  estimator: exact\n  combine: ties', ['a', 'b']);
    const first = await merge(dir, `${stochastic}seed: 9\n`, 's1');
    const second = await merge(dir, `${stochastic}seed: 9\n`, 's2');
    const third = await merge(dir, `${stochastic}seed: 10\n`, 's3');
    expect(second.sha256).toBe(first.sha256);
    expect(third.sha256).not.toBe(first.sha256);
  });

  it('uses a saved importance analysis instead of probe data', async () => {
    const base = loadModel(join(dir, 'base'));
    const a = loadModel(join(dir, 'a'));
    const scheme = buildPartitions('row', trunkShapesOf(a));
    const probe = getSplit(loadTaskData(join(dir, 'a.safetensors')), 'probe');
    const exact = await exactImportance({ base, finetune: a, task: 'a', probe, scheme });
    const gradient = await gradientImportance({ base, finetune: a, task: 'a', probe, scheme });
    const paths = saveImportance(join(dir, 'a-importance'), scheme, {
      task: 'a',
      model: a.path,
      base: base.path,
      scores: { loss_increase: exact.lossIncrease, kl: exact.kl, gradient_signed: gradient.signed, gradient_absolute: gradient.absolute },
      metadata: { probe_examples: String(probe.count) },
    });
    const loaded = loadImportance(paths.safetensors);
    expect(loaded.level).toBe('row');
    expect(Array.from(loaded.scores.loss_increase!)).toEqual(Array.from(Float32Array.from(exact.lossIncrease)));
    const summary = JSON.parse(readFileSync(paths.summary, 'utf8'));
    expect(Object.keys(summary.layers)).toEqual(['trunk.layers.0', 'trunk.layers.1']);
    expect(summary.layers['trunk.layers.0'].loss_increase.top).toHaveLength(5);
    const text = `merge_method: apl\nbase_model: base\nmodels:\n  - model: a\n    parameters: {importance: a-importance.safetensors}\nparameters: {estimator: exact, density: 0.5}\n`;
    const result = await merge(dir, text, 'from-artifact');
    expect((result.preparation!.sources as Array<Record<string, unknown>>)[0]).toMatchObject({ score: 'loss_increase' });
    const wrongLevel = text.replace('density: 0.5', 'density: 0.5, level: layer');
    await expect(merge(dir, wrongLevel, 'never')).rejects.toThrow(/importance at row level, but the merge asks for level layer/);
  });

  gpuIt('merges on the GPU as on the CPU: row drops identical, competition weights to float32 rounding, coefficients fitted to the same loss', async () => {
    const base = loadModel(join(dir, 'base'));
    for (const name of ['a', 'b']) {
      const finetune = loadModel(join(dir, name));
      const scheme = buildPartitions('row', trunkShapesOf(finetune));
      const probe = getSplit(loadTaskData(join(dir, `${name}.safetensors`)), 'probe');
      const gradient = await gradientImportance({ base, finetune, task: name, probe, scheme });
      saveImportance(join(dir, `${name}-gpu-importance`), scheme, { task: name, model: finetune.path, base: base.path, scores: { gradient_absolute: gradient.absolute }, metadata: {} });
    }
    const config = (models: string[], extra: string) =>
      `merge_method: apl\nbase_model: base\nseed: 3\nmodels:\n${models.map((m) => `  - model: ${m}\n    parameters: {importance: ${m}-gpu-importance.safetensors, density: 0.4}`).join('\n')}\nparameters: {${extra}}\n`;
    const run = (text: string, out: string, backend: 'webgpu' | 'wasm') => runMerge(planMerge(parseMergeConfig(text, 'apl.yml', dir)), join(dir, out), { threads: 0, backend });
    const single = config(['a'], 'drop: stochastic');
    const [gpuSingle, cpuSingle] = [await run(single, 'apl-gpu-1', 'webgpu'), await run(single, 'apl-cpu-1', 'wasm')];
    expect(gpuSingle.device.gpuTensors).toBeGreaterThan(0);
    expect(gpuSingle.sha256).toBe(cpuSingle.sha256);
    const both = config(['a', 'b'], 'drop: stochastic, competition: true, combine: ties');
    const [gpu, cpu] = [await run(both, 'apl-gpu-2', 'webgpu'), await run(both, 'apl-cpu-2', 'wasm')];
    expect(gpu.device.cpuReasons).toEqual([]);
    const [g, c] = [loadModel(gpu.outDir), loadModel(cpu.outDir)];
    for (const [name, want] of c.params) {
      const got = g.params.get(name)!;
      want.forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThanOrEqual(1e-6 * (Math.abs(v) + 1e-3)));
    }
    // The deterministic drop (each row's largest entries) runs on the GPU too, with the same selection.
    const deterministic = config(['a'], 'drop: deterministic');
    const [gpuDeterministic, cpuDeterministic] = [await run(deterministic, 'apl-gpu-3', 'webgpu'), await run(deterministic, 'apl-cpu-3', 'wasm')];
    expect(gpuDeterministic.device.cpuReasons).toEqual([]);
    expect(gpuDeterministic.sha256).toBe(cpuDeterministic.sha256);
    // Scoring probe data on WebGPU: the preparation says the WGSL kernels computed the importance.
    const fromProbes = (estimator: string) =>
      `merge_method: apl\nbase_model: base\nseed: 3\nmodels:\n${['a', 'b'].map((m) => `  - model: ${m}\n    parameters: {probe: ${m}.safetensors}`).join('\n')}\nparameters: {estimator: ${estimator}}\n`;
    for (const [estimator, expected] of [['gradient', true], ['exact', expect.any(Number)]] as const) {
      const scored = await run(fromProbes(estimator), `apl-gpu-${estimator}`, 'webgpu');
      const sources = scored.preparation!.sources as Array<Record<string, unknown>>;
      expect(scored.preparation!.backend).toBe('webgpu');
      for (const source of sources) expect(source.wgslKernels).toEqual(expected);
    }
    // Coefficients fitted on WebGPU reach the loss they reach on WASM (float32 rounding apart), and the merge written has it.
    const fitted = `merge_method: apl\nbase_model: base\nseed: 3\nmodels:\n${['a', 'b'].map((m) => `  - model: ${m}\n    parameters: {probe: ${m}.safetensors}`).join('\n')}\nparameters: {lambda: 0.5, coefficients: fitted, fit_granularity: row, fit_steps: 30, fit_learning_rate: 0.05}\n`;
    const [gpuFit, cpuFit] = [await run(fitted, 'apl-gpu-fit', 'webgpu'), await run(fitted, 'apl-cpu-fit', 'wasm')];
    const [gpuLoss, cpuLoss] = [gpuFit, cpuFit].map((r) => (r.preparation!.fit as { probeLossFitted: number; used: boolean }).probeLossFitted);
    expect((gpuFit.preparation!.fit as { used: boolean }).used).toBe(true);
    expect(Math.abs(gpuLoss - cpuLoss)).toBeLessThan(1e-3 * cpuLoss);
    await useBackend('wasm');
    expect(await meanProbeLoss('apl-gpu-fit', ['a', 'b'])).toBeCloseTo(gpuLoss, 4);
  });

  /** The mean over the fine-tunes of the merged model's probe loss, each with its own head: what coefficients: fitted minimises. */
  async function meanProbeLoss(model: string, tasks: string[]): Promise<number> {
    const merged = loadModel(join(dir, model));
    let sum = 0;
    for (const task of tasks) sum += (await evaluate(merged, task, getSplit(loadTaskData(join(dir, `${task}.safetensors`)), 'probe'))).loss;
    return sum / tasks.length;
  }

  it.each(['tensor', 'row'])('fits one coefficient per fine-tune and %s on the probe data: the merge written has the probe loss the fit reached, below that at lambda', async (granularity) => {
    const plain = await merge(dir, aplConfig('  density: 0.5\n  lambda: 0.5\nseed: 4'), `lambda-${granularity}`);
    const result = await merge(dir, aplConfig(`  density: 0.5\n  lambda: 0.5\n  coefficients: fitted\n  fit_granularity: ${granularity}\n  fit_steps: 60\n  fit_learning_rate: 0.05\nseed: 4`), `fitted-${granularity}`);
    const fit = result.preparation!.fit as { probeLossAtLambda: number; probeLossFitted: number; used: boolean; granularity: string; coefficients: Record<string, unknown[]> };
    expect(fit).toMatchObject({ used: true, granularity, steps: 60, learningRate: 0.05 });
    expect(fit.probeLossFitted).toBeLessThan(fit.probeLossAtLambda - 0.01);
    // Both losses recomputed from the checkpoints written, by evaluation (another code path): the
    // fit saw the task vectors exactly as the merge takes them (same drops from the same seed).
    expect(await meanProbeLoss(`lambda-${granularity}`, ['a', 'b'])).toBeCloseTo(fit.probeLossAtLambda, 4);
    expect(await meanProbeLoss(`fitted-${granularity}`, ['a', 'b'])).toBeCloseTo(fit.probeLossFitted, 4);
    expect(plain.sha256).not.toBe(result.sha256);
    // A coefficient per fine-tune for every trunk tensor (a number, or a row summary).
    const trunk = [...trunkShapesOf(loadModel(join(dir, 'base'))).keys()];
    expect(Object.keys(fit.coefficients).sort()).toEqual(trunk.sort());
    for (const perModel of Object.values(fit.coefficients)) expect(perModel).toHaveLength(2);
    if (granularity === 'row') expect(Object.values(fit.coefficients)[0][0]).toEqual({ mean: expect.any(Number), min: expect.any(Number), max: expect.any(Number) });
    // Full-batch Adam from lambda: nothing random, so the same seed gives the same bytes.
    const again = await merge(dir, aplConfig(`  density: 0.5\n  lambda: 0.5\n  coefficients: fitted\n  fit_granularity: ${granularity}\n  fit_steps: 60\n  fit_learning_rate: 0.05\nseed: 4`), `fitted-${granularity}-again`);
    expect(again.sha256).toBe(result.sha256);
  });

  it('keeps lambda when the fit makes the probe loss worse', async () => {
    const plain = await merge(dir, aplConfig('  density: 0.5\n  lambda: 0.5\nseed: 2'), 'lambda-kept');
    const result = await merge(dir, aplConfig('  density: 0.5\n  lambda: 0.5\n  coefficients: fitted\n  fit_steps: 3\n  fit_learning_rate: 200\nseed: 2'), 'fit-refused');
    const fit = result.preparation!.fit as { probeLossAtLambda: number; probeLossFitted: number; used: boolean };
    expect(fit.used).toBe(false);
    expect(fit.probeLossFitted).toBeGreaterThan(fit.probeLossAtLambda);
    expect(result.sha256).toBe(plain.sha256);
  });

  it('refuses coefficients: fitted without probe data, with another combination, normalised, or from lambda 0', async () => {
    const withImportanceOnly = `merge_method: apl\nbase_model: base\nmodels:\n  - model: a\n    parameters: {importance: nowhere.safetensors}\nparameters: {coefficients: fitted}\n`;
    await expect(merge(dir, withImportanceOnly, 'never')).rejects.toThrow(/models\[0\]\.parameters: apl with coefficients: fitted needs per-model "probe"/);
    await expect(merge(dir, aplConfig('  coefficients: fitted\n  combine: ties'), 'never')).rejects.toThrow(/apl with coefficients: fitted combines by task arithmetic \(combine: ties/);
    await expect(merge(dir, aplConfig('  coefficients: fitted\n  normalize: true'), 'never')).rejects.toThrow(/normalize must be false/);
    await expect(merge(dir, aplConfig('  coefficients: fitted\n  fit_steps: 2.5'), 'never')).rejects.toThrow(/fit_steps: must be a whole number of steps, got 2\.5/);
    await expect(merge(dir, aplConfig('  coefficients: fitted\n  lambda: 0'), 'never')).rejects.toThrow(/lambda: coefficients: fitted starts every coefficient at lambda, which must be above 0/);
  });

  it('names the model that has neither probe data nor an importance analysis', async () => {
    const text = `merge_method: apl\nbase_model: base\nmodels:\n  - model: a\n`;
    await expect(merge(dir, text, 'never')).rejects.toThrow(/models\[0\]\.parameters: apl needs per-model "probe" \(task data\) or "importance"/);
  });

  it('rejects probe data whose images do not fit the model', async () => {
    const other = tempDir();
    tinyFamily({ seed: 6, dir: other, tasks: [{ name: 'a', classes: 3 }] });
    saveTaskData(join(other, 'a.safetensors'), { name: 'a', classes: 3, description: 'wrong size', seed: 1 }, {
      probe: { inputs: new Uint8Array(4 * 25), exampleShape: [5, 5], labels: new Int32Array(4), count: 4 },
    });
    await expect(merge(other, aplConfig('  density: 0.5', ['a']), 'never')).rejects.toThrow(/examples of shape \[5,5\] \(U8\) do not fit the MLP's input of 16 pixels/);
  });

  it('rejects a model family the engine does not know', async () => {
    const other = tempDir();
    tinyFamily({ seed: 7, dir: other, tasks: [{ name: 'a', classes: 3 }] });
    const configFile = join(other, 'base', 'config.json');
    writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), apl_family: 'rnn' }));
    expect(() => planMerge(parseMergeConfig(aplConfig('  density: 0.5', ['a']), 'apl.yml', other))).toThrow(/config.json: apl_family "rnn" is not a model family the engine knows \(known: mlp/);
  });
});

describe('vision zoo', () => {
  const tiny = {
    ...VISION_SCALES.quick,
    tasks: ['digits', 'digit_parity'],
    hiddenSizes: [16],
    sizes: { train: 300, probe: 16, validation: 50, test: 50, ood: 50 },
    pretrainSteps: 20,
    finetuneSteps: 20,
    batchSize: 16,
  };

  it('builds deterministically from its seed: same seed, same bytes; data in four splits', async () => {
    const first = tempDir();
    const second = tempDir();
    const manifest = await buildVisionZoo({ out: first, quick: true, seed: 4, scale: tiny });
    await buildVisionZoo({ out: second, quick: true, seed: 4, scale: tiny });
    expect(manifest.finetunes.map((f) => f.task)).toEqual(['digits', 'digit_parity']);
    for (const path of ['base/model.safetensors', 'finetunes/digit_parity/model.safetensors', 'tasks/digits.safetensors']) {
      expect(sha256File(join(second, path))).toBe(sha256File(join(first, path)));
    }
    const data = loadTaskData(join(first, 'tasks', 'digit_parity.safetensors'));
    expect([...data.splits.keys()].sort()).toEqual(['ood', 'probe', 'test', 'validation']);
    expect(data.classes).toBe(2);
    expect(getSplit(data, 'probe').count).toBe(16);
    const finetune = loadModel(join(first, 'finetunes', 'digit_parity'));
    expect(Object.keys(finetune.config.tasks)).toEqual(['digit_parity']);
    expect(manifest.finetunes[1].accuracy.test).toBeGreaterThan(0.5);
  });
});
