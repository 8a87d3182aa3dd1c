/**
 * APL `locate: merged`: importance measured on the merged model — each fine-tune's contribution at
 * a partition taken out, the tasks' mean probe loss measured — checked against its definition by
 * evaluation of models built by hand, and through merges written to disk.
 */
import { join } from 'node:path';
import { saveImportance } from '../src/engine/apl/artifact';
import { aplDropRule } from '../src/engine/apl/drop-rule';
import { mergedImportance } from '../src/engine/apl/merged-importance';
import { buildPartitions, PartitionScheme } from '../src/engine/apl/partitions';
import { keepRates } from '../src/engine/apl/calibrate';
import { trunkShapesOf } from '../src/engine/apl/prepare';
import { getSplit, loadTaskData } from '../src/engine/data/task-data';
import { loadModel, Model, modelOf } from '../src/engine/families/model';
import { applyDrop } from '../src/engine/kernels/recipe';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { useBackend } from '../src/engine/tensors/backend';
import { evaluate } from '../src/engine/train/evaluate';
import { removeTempDirs, tempDir } from './helpers/files';
import { gpuIt } from './helpers/gpu';
import { tinyFamily } from './helpers/tiny-models';

beforeAll(async () => {
  await useBackend('wasm');
});
afterAll(removeTempDirs);

const TASKS = ['a', 'b', 'c'];
const LAMBDA = 0.4;

function aplConfig(extra: string): string {
  return `merge_method: apl\nbase_model: base\nmodels:\n${TASKS.map((m) => `  - model: ${m}\n    parameters: {probe: ${m}.safetensors}`).join('\n')}\nparameters:\n  lambda: ${LAMBDA}\n${extra}\n`;
}

describe('apl locate: merged', () => {
  let dir: string;
  let base: Model;
  let finetunes: Model[];
  let scheme: PartitionScheme;
  const members = () => finetunes.map((model, t) => ({ model, task: TASKS[t], probe: getSplit(loadTaskData(join(dir, `${TASKS[t]}.safetensors`)), 'probe') }));
  const merge = async (text: string, out: string) => runMerge(planMerge(parseMergeConfig(text, 'apl.yml', dir)), join(dir, out), { threads: 0 });
  const taskVector = (t: number, name: string) => finetunes[t].params.get(name)!.map((v, j) => v - base.params.get(name)![j]);

  beforeAll(() => {
    dir = tempDir();
    tinyFamily({ seed: 11, dir, deltaScale: 0.6, tasks: [{ name: 'a', classes: 3 }, { name: 'b', classes: 2 }, { name: 'c', classes: 4 }] });
    base = loadModel(join(dir, 'base'));
    finetunes = TASKS.map((t) => loadModel(join(dir, t)));
    scheme = buildPartitions('row', trunkShapesOf(base));
  });

  /** The tasks' mean probe loss of `trunk`, each task through its own fine-tune's head: evaluation, another code path than the estimators'. */
  async function meanLoss(trunk: Map<string, Float32Array>): Promise<number> {
    let sum = 0;
    for (const [t, member] of members().entries()) {
      const params = new Map(finetunes[t].params);
      for (const [name, values] of trunk) params.set(name, values);
      sum += (await evaluate(modelOf(finetunes[t].family, finetunes[t].config, params), member.task, member.probe)).loss;
    }
    return sum / TASKS.length;
  }

  /** θ0 + λ Σ δt: the merge without drops, which the first pass measures. */
  const mergedTrunk = () => new Map([...scheme.shapes.keys()].map((name) => [name, base.params.get(name)!.map((v, j) => v + LAMBDA * TASKS.reduce((s, _, t) => s + taskVector(t, name)[j], 0))]));
  /** The merged trunk with `scale` × task t's contribution at partition k taken away. */
  const without = (trunk: Map<string, Float32Array>, t: number, k: number, scale = 1) =>
    new Map([...trunk].map(([name, values]) => {
      const rows = scheme.rows.get(name)!;
      const rowLength = values.length / rows.length;
      const delta = taskVector(t, name);
      return [name, values.map((v, j) => (rows[Math.floor(j / rowLength)] === k ? v - scale * LAMBDA * delta[j] : v))];
    }));

  it('exact: each score is the tasks’ mean probe-loss increase when that contribution is taken out of the merged model', async () => {
    const located = await mergedImportance(base, members(), { scheme, contribution: (t, name) => taskVector(t, name).map((v) => v * LAMBDA), estimator: 'exact', metric: 'loss', gradientForm: 'signed' });
    const trunk = mergedTrunk();
    const clean = await meanLoss(trunk);
    expect(located.mergedProbeLoss).toBeCloseTo(clean, 5);
    for (const t of [0, 2]) {
      for (const k of [0, 5, 9, scheme.count - 1]) {
        expect(located.scores[t][k]).toBeCloseTo((await meanLoss(without(trunk, t, k))) - clean, 5);
      }
    }
    // Some contributions make the merged model worse: the count of negative scores is reported.
    expect(located.harmful).toEqual(located.scores.map((s) => s.filter((v) => v < 0).length));
    expect(located.harmful.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('gradient: each signed score is the directional derivative −ḡ·c of the tasks’ mean probe loss (central differences)', async () => {
    const located = await mergedImportance(base, members(), { scheme, contribution: (t, name) => taskVector(t, name).map((v) => v * LAMBDA), estimator: 'gradient', metric: 'loss', gradientForm: 'signed' });
    const magnitude = await mergedImportance(base, members(), { scheme, contribution: (t, name) => taskVector(t, name).map((v) => v * LAMBDA), estimator: 'gradient', metric: 'loss', gradientForm: 'absolute' });
    const trunk = mergedTrunk();
    const largest = Math.max(...located.scores.flatMap((s) => Array.from(s, Math.abs)));
    const eps = 0.01;
    for (const t of [1, 2]) {
      for (const k of [1, 4, 10]) {
        const slope = ((await meanLoss(without(trunk, t, k, eps))) - (await meanLoss(without(trunk, t, k, -eps)))) / (2 * eps);
        expect(Math.abs(located.scores[t][k] - slope)).toBeLessThan(0.01 * largest);
        expect(magnitude.scores[t][k]).toBeCloseTo(Math.abs(located.scores[t][k]), 10);
      }
    }
    expect(magnitude.harmful).toEqual([0, 0, 0]);
  });

  it('a merge with locate: merged drops by the merged model’s importance: the same bytes as a merge given those scores, one pass and two', async () => {
    const settings = '  density: 0.5\n  keep_temperature: 0\n  drop: deterministic\n  gradient_form: signed\nseed: 3';
    const located = await merge(aplConfig(`  locate: merged\n${settings}`), 'located');
    const once = await mergedImportance(base, members(), { scheme, contribution: (t, name) => taskVector(t, name).map((v) => v * LAMBDA), estimator: 'gradient', metric: 'loss', gradientForm: 'signed' });
    const withScores = (scores: Float64Array[], tag: string) => {
      TASKS.forEach((task, t) => saveImportance(join(dir, `${tag}-${task}`), scheme, { task, model: finetunes[t].path, base: base.path, scores: { gradient_signed: scores[t] }, metadata: {} }));
      return `merge_method: apl\nbase_model: base\nmodels:\n${TASKS.map((m) => `  - model: ${m}\n    parameters: {importance: ${tag}-${m}.safetensors}`).join('\n')}\nparameters:\n  lambda: ${LAMBDA}\n${settings}\n`;
    };
    const given = await merge(withScores(once.scores, 'pass1'), 'given-pass1');
    expect(located.sha256).toBe(given.sha256);
    const report = located.preparation!.located as { on: string; iterations: Array<{ harmfulPartitions: number[] }> };
    expect(report.on).toBe('merged');
    expect(report.iterations).toHaveLength(1);
    expect(report.iterations[0].harmfulPartitions).toEqual(once.harmful);
    // The second pass measures the merge with the first pass's drops (the same deterministic rule).
    const rates = once.scores.map((score) => keepRates(score, scheme.sizes, 0.5, 0));
    const dropped = (t: number, name: string, shape: readonly number[]) => {
      const delta = taskVector(t, name);
      applyDrop(delta, aplDropRule('deterministic', 3, t, name, { keep_rate: Float32Array.from(scheme.rows.get(name)!, (k) => rates[t][k]) }), shape);
      return delta.map((v) => v * LAMBDA);
    };
    const twice = await mergedImportance(base, members(), { scheme, contribution: dropped, estimator: 'gradient', metric: 'loss', gradientForm: 'signed' });
    const locatedTwice = await merge(aplConfig(`  locate: merged\n  locate_iterations: 2\n${settings}`), 'located-twice');
    expect(locatedTwice.sha256).toBe((await merge(withScores(twice.scores, 'pass2'), 'given-pass2')).sha256);
    expect(locatedTwice.sha256).not.toBe(located.sha256);
    expect((locatedTwice.preparation!.located as { iterations: unknown[] }).iterations).toHaveLength(2);
  });

  it('with fitted coefficients: the fit starts from the drops located on the merged model', async () => {
    const result = await merge(aplConfig('  density: 0.5\n  locate: merged\n  gradient_form: signed\n  drop: deterministic\n  coefficients: fitted\n  fit_steps: 20\n  fit_learning_rate: 0.05\nseed: 1'), 'located-fitted');
    const fit = result.preparation!.fit as { probeLossAtLambda: number; probeLossFitted: number; used: boolean };
    expect(fit.used).toBe(true);
    expect(fit.probeLossFitted).toBeLessThan(fit.probeLossAtLambda);
    // The loss the fit reports is that of the checkpoint written.
    expect(await meanLoss(new Map([...scheme.shapes.keys()].map((name) => [name, loadModel(join(dir, 'located-fitted')).params.get(name)!])))).toBeCloseTo(fit.probeLossFitted, 4);
  });

  it.each(['helpful', 'owner'] as const)('keep_rule: %s keeps whole the contributions the merged model needs, and nothing else', async (rule) => {
    const result = await merge(aplConfig(`  locate: merged\n  gradient_form: signed\n  keep_rule: ${rule}\nseed: 5`), `rule-${rule}`);
    const { scores } = await mergedImportance(base, members(), { scheme, contribution: (t, name) => taskVector(t, name).map((v) => v * LAMBDA), estimator: 'gradient', metric: 'loss', gradientForm: 'signed' });
    // helpful: every contribution with a positive score; owner: only the highest-scoring task's, if positive.
    const kept = (t: number, k: number) => scores[t][k] > 0 && (rule === 'helpful' || scores.every((other) => other[k] <= scores[t][k]));
    const written = loadModel(join(dir, `rule-${rule}`));
    let dropped = 0;
    for (const [name, rows] of scheme.rows) {
      const rowLength = base.params.get(name)!.length / rows.length;
      const want = base.params.get(name)!.map((v, j) => v + LAMBDA * TASKS.reduce((sum, _, t) => sum + (kept(t, rows[Math.floor(j / rowLength)]) ? taskVector(t, name)[j] : 0), 0));
      written.params.get(name)!.forEach((v, j) => expect(v).toBeCloseTo(want[j], 5));
      for (const k of rows) dropped += TASKS.filter((_, t) => !kept(t, k)).length;
    }
    expect(dropped).toBeGreaterThan(0);
    expect((result.preparation!.located as { iterations: Array<{ harmfulPartitions: number[] }> }).iterations[0].harmfulPartitions).toEqual(scores.map((s) => s.filter((v) => v < 0).length));
  });

  gpuIt('locates on WebGPU as on WASM: scores to float32 rounding, and the same rows kept at τ1 = 0', async () => {
    const located = async (estimator: 'exact' | 'gradient') =>
      (await mergedImportance(base, members(), { scheme, contribution: (t, name) => taskVector(t, name).map((v) => v * LAMBDA), estimator, metric: 'loss', gradientForm: 'signed' })).scores;
    const text = (estimator: string) => aplConfig(`  density: 0.5\n  locate: merged\n  estimator: ${estimator}\n  gradient_form: signed\n  keep_temperature: 0\nseed: 2`);
    const run = (estimator: string, backend: 'webgpu' | 'wasm') => runMerge(planMerge(parseMergeConfig(text(estimator), 'apl.yml', dir)), join(dir, `gpu-${estimator}-${backend}`), { threads: 0, backend });
    try {
      for (const estimator of ['exact', 'gradient'] as const) {
        await useBackend('wasm');
        const cpu = await located(estimator);
        await useBackend('webgpu');
        const gpu = await located(estimator);
        const largest = Math.max(...cpu.flatMap((s) => Array.from(s, Math.abs)));
        cpu.forEach((score, t) => score.forEach((v, k) => expect(Math.abs(gpu[t][k] - v)).toBeLessThan(1e-4 * largest)));
        const [onGpu, onCpu] = [await run(estimator, 'webgpu'), await run(estimator, 'wasm')];
        expect(onGpu.preparation!.backend).toBe('webgpu');
        // The same rows kept: the checkpoints agree to the GPU's float32 summation order.
        const [g, c] = [loadModel(onGpu.outDir), loadModel(onCpu.outDir)];
        for (const [name, want] of c.params) g.params.get(name)!.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(1e-6 * (Math.abs(want[i]) + 1e-3)));
      }
    } finally {
      await useBackend('wasm');
    }
  });

  it('refuses what it cannot measure, saying why', async () => {
    const importanceOnly = `merge_method: apl\nbase_model: base\nmodels:\n  - model: a\n    parameters: {importance: nowhere.safetensors}\nparameters: {locate: merged}\n`;
    await expect(merge(importanceOnly, 'never')).rejects.toThrow(/apl with locate: merged needs per-model "probe"/);
    await expect(merge(aplConfig('  locate: merged\n  estimator: fisher'), 'never')).rejects.toThrow(/locate: merged measures importance by estimator exact or gradient/);
    await expect(merge(aplConfig('  locate: merged\n  combine: ties'), 'never')).rejects.toThrow(/locate: merged combines by task arithmetic \(.*combine: ties/);
    await expect(merge(aplConfig('  locate: merged\n  normalize: true'), 'never')).rejects.toThrow(/locate: merged: normalize must be false/);
    await expect(merge(aplConfig('  locate: merged\n  locate_iterations: 1.5'), 'never')).rejects.toThrow(/locate_iterations: must be a whole number of passes, got 1\.5/);
    await expect(merge(aplConfig('  locate: merged\n  locate_iterations: 0'), 'never')).rejects.toThrow(/locate_iterations/);
    await expect(merge(aplConfig('  keep_rule: helpful'), 'never')).rejects.toThrow(/keep_rule: helpful reads importance measured on the merged model: set locate: merged/);
    await expect(merge(aplConfig('  locate: merged\n  keep_rule: owner'), 'never')).rejects.toThrow(/keep_rule: owner keeps the contributions that help the merged model, which needs a signed score/);
    await expect(merge(aplConfig('  locate: merged\n  keep_rule: owner\n  estimator: exact\n  metric: kl'), 'never')).rejects.toThrow(/needs a signed score/);
  });
});
