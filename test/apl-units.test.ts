/**
 * APL's unit partitions: a hidden unit is its incoming row and bias and the column of the next
 * weight that reads it. Checked against the definition written out by hand: which entries a unit
 * holds, exact intervention (the unit set back to the base, the loss measured again), the gradient
 * (−g·δ over the unit's entries), the drop (each entry at the rates of its row and column), and
 * merges from YAML.
 */
import { join } from 'node:path';
import { exactImportance, gradientAlong, gradientImportance } from '../src/engine/apl/importance';
import { buildPartitions, PartitionScheme } from '../src/engine/apl/partitions';
import { partitionsOf, trunkShapesOf } from '../src/engine/apl/prepare';
import { loadModel, Model, modelOf } from '../src/engine/families/model';
import { applyDrop, DropRule } from '../src/engine/kernels/recipe';
import { dropKey } from '../src/engine/kernels/random';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { useBackend } from '../src/engine/tensors/backend';
import { evaluate } from '../src/engine/train/evaluate';
import { removeTempDirs, tempDir } from './helpers/files';
import { tinyFamily } from './helpers/tiny-models';

beforeAll(async () => {
  await useBackend('wasm');
});
afterAll(removeTempDirs);

// Hidden sizes 8 → 6 → 4 over 16 inputs: units of layer 0 (8) are read by layer 1, those of layer 1 (6) by layer 2.
const HIDDEN = [8, 6, 4];
const WIDTHS = [16, ...HIDDEN];
const W = (l: number) => `trunk.layers.${l}.weight`;
const B = (l: number) => `trunk.layers.${l}.bias`;

/** Unit u of layer l's entries, written out: tensor → flat indices. */
function unitEntries(l: number, u: number): Map<string, number[]> {
  const entries = new Map<string, number[]>();
  entries.set(W(l), Array.from({ length: WIDTHS[l] }, (_, c) => u * WIDTHS[l] + c));
  entries.set(B(l), [u]);
  if (l + 1 < HIDDEN.length) entries.set(W(l + 1), Array.from({ length: HIDDEN[l + 1] }, (_, r) => r * HIDDEN[l] + u));
  return entries;
}

/** The model with `entries` set back to the base's values. */
function reset(finetune: Model, base: Model, entries: Map<string, number[]>): Model {
  const params = new Map([...finetune.params].map(([n, v]) => [n, Float32Array.from(v)]));
  for (const [name, indices] of entries) for (const j of indices) params.get(name)![j] = base.params.get(name)![j];
  return modelOf(finetune.family, finetune.config, params, 'reset');
}

describe('unit partitions of an MLP', () => {
  const family = tinyFamily({ seed: 11, tasks: [{ name: 'a', classes: 3 }], hidden: HIDDEN, deltaScale: 0.4 });
  const finetune = family.finetunes[0];
  let scheme: PartitionScheme;
  beforeAll(() => {
    scheme = partitionsOf('unit', finetune);
  });

  it('has one partition per hidden unit: its row, its bias and the next layer’s column; the last layer’s units have no column in the trunk', () => {
    expect(scheme.count).toBe(8 + 6 + 4);
    expect(scheme.names[0]).toBe('trunk.layers.0[0]');
    expect(scheme.names[8]).toBe('trunk.layers.1[0]');
    // Layer 1's rows are its own units (8…13), its columns layer 0's (0…7).
    expect(Array.from(scheme.rows.get(W(1))!)).toEqual([8, 9, 10, 11, 12, 13]);
    expect(Array.from(scheme.columns.get(W(1))!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Array.from(scheme.columns.get(W(2))!)).toEqual([8, 9, 10, 11, 12, 13]);
    expect(scheme.columns.has(W(0))).toBe(false);
    for (let l = 0; l < HIDDEN.length; l++) {
      for (let u = 0; u < HIDDEN[l]; u++) {
        const k = HIDDEN.slice(0, l).reduce((a, b) => a + b, 0) + u;
        const size = [...unitEntries(l, u).values()].reduce((a, e) => a + e.length, 0);
        expect({ k, size: scheme.sizes[k] }).toEqual({ k, size });
      }
    }
    // A unit's intervention reaches the tensors of its layer and the next.
    expect(scheme.spans.find((s) => s.first === 0)!.tensors).toEqual([W(0), B(0), W(1)]);
  });

  it('exact intervention sets the unit’s row, bias and column back to the base, across the two layers it spans (every unit: the rank-one shortcut and the last layer’s rows)', async () => {
    const probe = family.probes[0];
    const exact = await exactImportance({ base: family.base, finetune, task: 'a', probe, scheme });
    const clean = (await evaluate(finetune, 'a', probe)).loss;
    // Every unit the fine-tune changed takes the shortcut: a row's work, not a pass through both layers it spans.
    expect(exact.shortcutPartitions).toBe(scheme.count - exact.unchangedPartitions);
    for (const [l, u] of HIDDEN.flatMap((width, l) => Array.from({ length: width }, (_, u) => [l, u]))) {
      const k = HIDDEN.slice(0, l).reduce((a, b) => a + b, 0) + u;
      const want = (await evaluate(reset(finetune, family.base, unitEntries(l, u)), 'a', probe)).loss - clean;
      expect({ k, got: exact.lossIncrease[k] }).toEqual({ k, got: expect.closeTo(want, 5) });
    }
  });

  it('the gradient estimate is −g·δ over the unit’s entries', async () => {
    const probe = family.probes[0];
    const gradient = await gradientImportance({ base: family.base, finetune, task: 'a', probe, scheme });
    // −g·δ of the task vector masked to one unit, summed over the whole model: the same quantity by another path.
    const whole = buildPartitions('model', trunkShapesOf(finetune));
    for (const [l, u] of [[0, 2], [1, 5], [2, 0]]) {
      const k = HIDDEN.slice(0, l).reduce((a, b) => a + b, 0) + u;
      const entries = unitEntries(l, u);
      const masked = (name: string) => {
        const delta = new Float64Array(finetune.params.get(name)!.length);
        for (const j of entries.get(name) ?? []) delta[j] = finetune.params.get(name)![j] - family.base.params.get(name)![j];
        return delta;
      };
      const [want] = await gradientAlong(finetune, 'a', probe, whole, [masked]);
      expect({ k, got: gradient.signed[k] }).toEqual({ k, got: expect.closeTo(want[0], 6) });
    }
  });

  it('needs the family’s hidden units, and checks them against the trunk', () => {
    const shapes = trunkShapesOf(finetune);
    expect(() => buildPartitions('unit', shapes)).toThrow(/level: unit needs the model family to declare its hidden units/);
    expect(() => buildPartitions('unit', shapes, [{ producers: [W(0)], consumer: W(2) }])).toThrow(/"trunk.layers.2.weight" has shape \[4,6\], but it must read the 8 units of "trunk.layers.0.weight"/);
    expect(() => buildPartitions('unit', shapes, [{ producers: ['nope.weight'], consumer: W(1) }])).toThrow(/"nope.weight" is not a trunk tensor/);
  });
});

describe('the unit drop', () => {
  const key = dropKey(7, 0, 'w');
  const delta = () => Float32Array.from({ length: 40 * 50 }, (_, j) => 1 + (j % 7));
  const run = (rule: DropRule) => {
    const values = delta();
    applyDrop(values, rule, [40, 50]);
    return values;
  };

  it('at equal row and column rates is the row drop at that rate, entry for entry', () => {
    const rates = new Float32Array(40).fill(0.5);
    for (const overlap of ['geometric', 'mean'] as const) {
      const unit = run({ kind: 'unitBernoulli', key, rowRates: rates, columnRates: new Float32Array(50).fill(0.5), overlap });
      expect(Array.from(unit)).toEqual(Array.from(run({ kind: 'rowBernoulli', key, rates })));
    }
  });

  it('drops a column of rate 0 whole, keeps the rest at √(row·column), and rescales so the expectation is the task vector', () => {
    const rowRates = Float32Array.from({ length: 40 }, (_, r) => (r < 20 ? 0.9 : 0.4));
    const columnRates = Float32Array.from({ length: 50 }, (_, c) => (c === 3 ? 0 : c < 25 ? 0.9 : 0.4));
    const dropped = run({ kind: 'unitBernoulli', key, rowRates, columnRates, overlap: 'geometric' });
    const original = delta();
    for (let r = 0; r < 40; r++) expect(dropped[r * 50 + 3]).toBe(0);
    // Rows and columns at 0.9 and 0.4: rate √0.36 = 0.6 where they cross, 0.9 and 0.4 where they agree.
    checkRates(dropped, original, [[[0, 20], [4, 25], 0.9], [[20, 40], [25, 50], 0.4], [[0, 20], [25, 50], 0.6]]);
  });

  it('with overlap: mean keeps an entry at the mean of its row’s and column’s rates', () => {
    const rowRates = Float32Array.from({ length: 40 }, (_, r) => (r < 20 ? 1 : 0));
    const columnRates = Float32Array.from({ length: 50 }, (_, c) => (c < 25 ? 1 : 0.4));
    const dropped = run({ kind: 'unitBernoulli', key, rowRates, columnRates, overlap: 'mean' });
    checkRates(dropped, delta(), [[[0, 20], [0, 25], 1], [[20, 40], [0, 25], 0.5], [[0, 20], [25, 50], 0.7], [[20, 40], [25, 50], 0.2]]);
  });

  /** Over each block of rows × columns: the share of entries kept is near `rate`, each survivor is scaled by 1/rate, and the mean ratio is near 1. */
  function checkRates(dropped: Float32Array, original: Float32Array, blocks: ReadonlyArray<readonly [readonly [number, number], readonly [number, number], number]>) {
    for (const [rows, columns, rate] of blocks) {
      let kept = 0;
      let total = 0;
      let ratio = 0;
      for (let r = rows[0]; r < rows[1]; r++) {
        for (let c = columns[0]; c < columns[1]; c++) {
          const j = r * 50 + c;
          total++;
          if (dropped[j] !== 0) {
            kept++;
            expect(dropped[j] / original[j]).toBeCloseTo(1 / rate, 5);
          }
          ratio += dropped[j] / original[j];
        }
      }
      expect(Math.abs(kept / total - rate)).toBeLessThan(0.06);
      expect(Math.abs(ratio / total - 1)).toBeLessThan(0.15);
    }
  }

  it('without row rates (a weight whose rows are not partitions) uses the column’s rate alone', () => {
    const columnRates = Float32Array.from({ length: 50 }, (_, c) => (c % 2 ? 1 : 0));
    const dropped = run({ kind: 'unitBernoulli', key, columnRates, overlap: 'geometric' });
    const original = delta();
    dropped.forEach((v, j) => expect(v).toBe(j % 2 ? original[j] : 0));
  });
});

describe('APL merges at unit level', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir();
    tinyFamily({ seed: 5, dir, hidden: HIDDEN, tasks: [{ name: 'a', classes: 3 }, { name: 'b', classes: 2 }] });
  });
  const config = (extra: string) => `merge_method: apl
base_model: base
models:
  - model: a
    parameters: {probe: a.safetensors}
  - model: b
    parameters: {probe: b.safetensors}
parameters:
  level: unit
  lambda: 0.5
${extra}
`;
  const merge = (text: string, out: string, seed = 1) => runMerge(planMerge(parseMergeConfig(`${text}seed: ${seed}\n`, 'apl.yml', dir)), join(dir, out), { threads: 0 });

  /**
   * Merges at τ1 = 0 (whole units kept by rank, seed 3) with the given extra parameters; says which
   * entries differ from the base and which units of layer 0 both fine-tunes dropped whole (their
   * row and bias left at the base).
   */
  const mergeByRank = async (out: string, extra = '') => {
    const result = await merge(config(`  density: 0.5\n  keep_temperature: 0\n${extra}`), out, 3);
    expect(result.preparation).toMatchObject({ level: 'unit', partitions: 18 });
    const merged = loadModel(join(dir, out));
    const base = loadModel(join(dir, 'base'));
    const changed = (name: string, j: number) => merged.params.get(name)![j] !== base.params.get(name)![j];
    const untouched = Array.from({ length: 8 }, (_, u) => u).filter((u) => !changed(B(0), u) && Array.from({ length: 16 }, (_, c) => u * 16 + c).every((j) => !changed(W(0), j)));
    expect(untouched.length).toBeGreaterThan(0);
    expect(untouched.length).toBeLessThan(8);
    return { merged, changed, untouched };
  };

  it('drops whole units at τ1 = 0: a dropped unit’s row and (geometric) its column in the next layer are left at the base', async () => {
    const { merged, changed, untouched } = await mergeByRank('units', '  unit_overlap: geometric\n');
    for (const u of untouched) for (let r = 0; r < 6; r++) expect(changed(W(1), r * 8 + u)).toBe(false);
    // Reproducible from its seed.
    await merge(config('  density: 0.5\n  keep_temperature: 0\n  unit_overlap: geometric'), 'units-again', 3);
    expect(Array.from(loadModel(join(dir, 'units-again')).params.get(W(1))!)).toEqual(Array.from(merged.params.get(W(1))!));
  });

  it('by default (unit_overlap: mean) a dropped unit’s column is kept where the unit reading it is kept, at rate ½', async () => {
    // The same importance and seed as above: the same units of layer 0 are dropped by both fine-tunes.
    const { changed, untouched } = await mergeByRank('units-mean');
    // Where the reading unit of layer 1 is dropped by both too (its bias is the base's), the entry is
    // the base's; where it is kept, (1 + 0) / 2: some of the dropped unit's column survives.
    let survived = 0;
    for (const u of untouched) {
      for (let r = 0; r < 6; r++) {
        if (!changed(B(1), r)) expect(changed(W(1), r * 8 + u)).toBe(false);
        else if (changed(W(1), r * 8 + u)) survived++;
      }
    }
    expect(survived).toBeGreaterThan(0);
  });

  it('at density 1 is task arithmetic, and with fitted coefficients it lowers the probe loss', async () => {
    await merge(config('  density: 1'), 'dense');
    await runMerge(planMerge(parseMergeConfig('merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: a\n  - model: b\nparameters:\n  weight: 1\n  lambda: 0.5\n', 'ta.yml', dir)), join(dir, 'ta'), { threads: 0 });
    const dense = loadModel(join(dir, 'dense'));
    const ta = loadModel(join(dir, 'ta'));
    for (const name of [W(0), W(1), B(2)]) dense.params.get(name)!.forEach((v, j) => expect(v).toBeCloseTo(ta.params.get(name)![j], 6));
    const fitted = await merge(config('  density: 0.5\n  coefficients: fitted\n  fit_steps: 20'), 'fitted');
    const fit = fitted.preparation!.fit as { probeLossAtLambda: number; probeLossFitted: number };
    expect(fit.probeLossFitted).toBeLessThanOrEqual(fit.probeLossAtLambda);
  });

  it('refuses what units do not define, naming the parameter', () => {
    expect(() => planMerge(parseMergeConfig(config('  drop: deterministic'), 'apl.yml', dir))).toThrow(/level: unit needs drop: stochastic/);
    expect(() => planMerge(parseMergeConfig(config('  competition: true'), 'apl.yml', dir))).toThrow(/level: unit has no competition/);
  });
});
