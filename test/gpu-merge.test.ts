/**
 * The WGSL merge kernels against the CPU's recipes. Runs wherever a WebGPU adapter exists (a GPU,
 * or Mesa's lavapipe on a CPU machine); skips with a message where none does.
 * Seeded drops and selections must be identical (single-model merges compare bit for bit); sums
 * of several models may differ by float32 rounding (the CPU accumulates in float64).
 */
import { dropKey, tensorRandom } from '../src/engine/kernels/random';
import { DropRule, runRecipe, TaskVectorRecipe } from '../src/engine/kernels/recipe';
import { keepThreshold } from '../src/engine/kernels/sparsify';
import { GpuMergeResult, gpuRecipeProblem, GpuTaskVectorKernels } from '../src/engine/gpu/task-vector-kernels';
import { GPU_ADAPTER, gpuIt } from './helpers/gpu';

let kernels: GpuTaskVectorKernels | undefined;
let chunked: GpuTaskVectorKernels | undefined;
let narrow: GpuTaskVectorKernels | undefined;

beforeAll(async () => {
  if (!GPU_ADAPTER) return;
  kernels = await GpuTaskVectorKernels.open();
  // Chunks of 3 × 512 elements: multi-chunk tensors at test sizes.
  chunked = await GpuTaskVectorKernels.open({ maxChunkElements: 1536 });
  narrow = await GpuTaskVectorKernels.open({ maxWorkgroupsPerDimension: 5 });
}, 60_000);

afterAll(() => {
  kernels?.destroy();
  chunked?.destroy();
  narrow?.destroy();
});

function values(n: number, seed: number, scale = 1): Float32Array {
  const random = tensorRandom(seed, 0, 'gpu-values');
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = random.nextUint32();
    // repeated magnitudes (ties at selection thresholds), zeros, and continuous values
    out[i] = scale * (r % 13 === 0 ? 0 : r % 5 === 0 ? ((r % 3) - 1) * 0.25 : random.nextFloat() - 0.5);
  }
  return out;
}

/** Multiples of 1/8 in [−1, 1]: task vectors between such tensors are exact and full of equal magnitudes. */
function quantised(n: number, seed: number): Float32Array {
  const random = tensorRandom(seed, 0, 'gpu-quantised');
  return Float32Array.from({ length: n }, () => ((random.nextUint32() % 17) - 8) / 8);
}

function mergeOnGpu(gpu: GpuTaskVectorKernels, recipe: TaskVectorRecipe, base: Float32Array, models: Float32Array[], rowLength: number): Promise<GpuMergeResult> {
  return gpu.merge(recipe, base.length, rowLength, (input, start, target) => target.set((input === 'base' ? base : models[input]).subarray(start, start + target.length)), new Float32Array(base.length));
}

async function onGpu(gpu: GpuTaskVectorKernels, recipe: TaskVectorRecipe, base: Float32Array, models: Float32Array[], rowLength: number): Promise<Float32Array> {
  return (await mergeOnGpu(gpu, recipe, base, models, rowLength)).merged;
}

function onCpu(recipe: TaskVectorRecipe, base: Float32Array, models: Float32Array[], rows: number): Float32Array {
  return runRecipe(recipe, base.slice(), models.map((m) => m.slice()), [rows, base.length / rows]);
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function expectBitwise(gpu: Float32Array, cpu: Float32Array): void {
  if (gpu.length !== cpu.length) throw new Error(`GPU result has ${gpu.length} elements, the CPU's ${cpu.length}`);
  const g = bits(gpu);
  const c = bits(cpu);
  const first = g.findIndex((v, i) => v !== c[i]);
  if (first >= 0) throw new Error(`element ${first}: GPU ${gpu[first]} vs CPU ${cpu[first]}`);
}

/** |gpu − cpu| within float32 rounding of the terms summed. */
function expectClose(gpu: Float32Array, cpu: Float32Array, base: Float32Array, models: Float32Array[], recipe: TaskVectorRecipe): void {
  if (gpu.length !== cpu.length) throw new Error(`GPU result has ${gpu.length} elements, the CPU's ${cpu.length}`);
  for (let i = 0; i < cpu.length; i++) {
    let terms = Math.abs(base[i]);
    for (let t = 0; t < models.length; t++) terms += Math.abs(recipe.lambda * recipe.models[t].weight) * 4 * (Math.abs(models[t][i]) + Math.abs(base[i]));
    const tolerance = 4e-7 * terms + 1e-30;
    if (Math.abs(gpu[i] - cpu[i]) > tolerance) throw new Error(`element ${i}: GPU ${gpu[i]} vs CPU ${cpu[i]} (tolerance ${tolerance})`);
  }
}

const SIZES = [1, 255, 256, 257, 4099];

describe('GPU task-vector kernels', () => {
  // CPU-only logic: runs everywhere.
  it('reports which recipes they cannot run', async () => {
    const recipe: TaskVectorRecipe = { models: [{ weight: 1, drop: { kind: 'della', density: 0.5, epsilon: 0.1, key: dropKey(1, 0, 'x'), rescale: true } }], consensus: undefined, normalize: false, lambda: 1 };
    expect(gpuRecipeProblem({ ...recipe, models: [{ weight: 1, drop: { kind: 'breadcrumbs', density: 0.5, gamma: 0.1 } }] }, 10)).toBeUndefined();
    expect(gpuRecipeProblem(recipe, 10)).toMatch(/drop rule "della" has no GPU kernel/);
    expect(gpuRecipeProblem({ ...recipe, models: [{ weight: 1, drop: { kind: 'keep' } }] }, 10)).toBeUndefined();
    // APL's hidden-unit drops (a rate per row and per column) run on the CPU threads, saying so.
    const unitDrop: DropRule = { kind: 'unitBernoulli', key: dropKey(1, 0, 'x'), columnRates: Float32Array.from([0.5, 1]), overlap: 'mean' };
    expect(gpuRecipeProblem({ ...recipe, models: [{ weight: 1, drop: unitDrop }] }, 10)).toMatch(/drop rule "unitBernoulli" has no GPU kernel/);
  });

  // One model, weight 1, λ 1: base + dropped delta, one float32 rounding on both sides.
  const singleRules = (n: number): Array<[string, DropRule]> => [
    ['keep', { kind: 'keep' }],
    ['zero', { kind: 'zero' }],
    ['magnitude 30%', { kind: 'magnitude', keepCount: Math.floor(0.3 * n), scale: 1 }],
    ['magnitude 30% rescaled', { kind: 'magnitude', keepCount: Math.floor(0.3 * n), scale: Math.fround(1 / 0.3) }],
    ['magnitude all', { kind: 'magnitude', keepCount: n, scale: 1 }],
    ['bernoulli 40%', { kind: 'bernoulli', key: dropKey(5, 0, 'w'), threshold: keepThreshold(0.4), scale: Math.fround(1 / 0.4) }],
    ['breadcrumbs 30%, 10% outliers', { kind: 'breadcrumbs', density: 0.3, gamma: 0.1 }],
    ['breadcrumbs 90%, 20% outliers (fewer removed)', { kind: 'breadcrumbs', density: 0.9, gamma: 0.2 }],
    ['breadcrumbs, no outliers', { kind: 'breadcrumbs', density: 0.5, gamma: 0 }],
    ['breadcrumbs at density 1', { kind: 'breadcrumbs', density: 1, gamma: 0.1 }],
  ];
  for (const n of SIZES) {
    gpuIt(`single-model drops match the CPU bit for bit (n = ${n})`, async () => {
      for (const [base, model] of [[values(n, 1), values(n, 2)], [quantised(n, 1), quantised(n, 2)]]) {
        for (const gpu of [kernels!, chunked!]) {
          for (const [, drop] of singleRules(n)) {
            const recipe: TaskVectorRecipe = { models: [{ weight: 1, drop }], consensus: undefined, normalize: false, lambda: 1 };
            expectBitwise(await onGpu(gpu, recipe, base, [model], 1), onCpu(recipe, base, [model], 1));
            const ties: TaskVectorRecipe = { ...recipe, consensus: 'sum', normalize: true };
            expectBitwise(await onGpu(gpu, ties, base, [model], 1), onCpu(ties, base, [model], 1));
          }
        }
      }
    });
  }

  for (const [rows, rowLength] of [[37, 113], [5, 700], [40, 64]]) {
    gpuIt(`APL row drops (stochastic and deterministic) and row weights match the CPU bit for bit, across chunks (${rows} rows of ${rowLength})`, async () => {
      const n = rows * rowLength;
      const rates = Float32Array.from({ length: rows }, (_, r) => (r % 7 === 0 ? 1 : r % 11 === 0 ? 0 : 0.1 + (r % 9) / 10));
      const rowWeights = Float32Array.from({ length: rows }, (_, r) => 0.5 + (r % 4) / 3);
      const drops: DropRule[] = [{ kind: 'rowBernoulli', key: dropKey(9, 0, 'layer'), rates }, { kind: 'rowTopK', rates }];
      for (const [base, model] of [[values(n, 3), values(n, 4)], [quantised(n, 3), quantised(n, 4)]]) {
        for (const gpu of [kernels!, chunked!]) {
          for (const drop of drops) {
            for (const weights of [undefined, rowWeights]) {
              const recipe: TaskVectorRecipe = { models: [{ weight: 1, drop, rowWeights: weights }], consensus: undefined, normalize: false, lambda: 1 };
              expectBitwise(await onGpu(gpu, recipe, base, [model], rowLength), onCpu(recipe, base, [model], rows));
            }
          }
        }
      }
    });
  }

  const combinations: Array<[string, Pick<TaskVectorRecipe, 'consensus' | 'normalize'>]> = [
    ['task arithmetic', { consensus: undefined, normalize: false }],
    ['normalised sum', { consensus: undefined, normalize: true }],
    ['TIES by sum', { consensus: 'sum', normalize: true }],
    ['TIES by sum, unnormalised', { consensus: 'sum', normalize: false }],
    ['TIES by count', { consensus: 'count', normalize: true }],
  ];
  for (const [label, combination] of combinations) {
    gpuIt(`three models, mixed drops: ${label} agrees with the CPU to float32 rounding`, async () => {
      for (const n of [257, 4099]) {
        const base = values(n, 10 + n);
        const models = [values(n, 11 + n), values(n, 12 + n, 0.5), values(n, 13 + n, 2), values(n, 15 + n)];
        const tied = quantised(n, 14 + n);
        models[0] = base.map((b, i) => b + tied[i]); // ties at the magnitude threshold
        const recipe: TaskVectorRecipe = {
          models: [
            { weight: 1, drop: { kind: 'magnitude', keepCount: Math.floor(0.2 * n), scale: 1 } },
            { weight: 0.6, drop: { kind: 'bernoulli', key: dropKey(3, 1, 'x'), threshold: keepThreshold(0.5), scale: 2 } },
            { weight: -0.3, drop: { kind: 'keep' } },
            { weight: 0.5, drop: { kind: 'breadcrumbs', density: 0.4, gamma: 0.05 } },
          ],
          lambda: 0.8,
          ...combination,
        };
        for (const gpu of [kernels!, chunked!]) {
          expectClose(await onGpu(gpu, recipe, base, models, 1), onCpu(recipe, base, models, 1), base, models, recipe);
        }
      }
    });
  }

  gpuIt('a recipe without a base (linear) combines the models themselves, as the CPU does', async () => {
    for (const n of [1, 257, 4099]) {
      const base = values(n, 40 + n);
      const models = [values(n, 41 + n), values(n, 42 + n, 3)];
      for (const normalize of [true, false]) {
        const recipe: TaskVectorRecipe = { models: [{ weight: 0.7, drop: { kind: 'keep' } }, { weight: 0.2, drop: { kind: 'keep' } }], consensus: undefined, normalize, lambda: 1, withoutBase: true };
        const cpu = onCpu(recipe, base, models, 1);
        const expected = models[0].map((v, i) => (0.7 * v + 0.2 * models[1][i]) / (normalize ? 0.9 : 1));
        expected.forEach((v, i) => expect(Math.abs(cpu[i] - v)).toBeLessThanOrEqual(1e-6 * (Math.abs(v) + 1)));
        for (const gpu of [kernels!, chunked!]) expectClose(await onGpu(gpu, recipe, base, models, 1), cpu, new Float32Array(n), models, recipe);
      }
    }
  });

  gpuIt('dispatches over two dimensions when a chunk has more workgroups than one dimension holds', async () => {
    // Five workgroups per dimension: the grid's second row ends with whole workgroups past the
    // tensor, which must not write anywhere (the limit stands in for the device's 65,535).
    for (const n of [5 * 256 + 1, 7 * 256 + 7, 23 * 256 + 3, 31 * 256]) {
      const base = values(n, 60 + n);
      const model = values(n, 61 + n);
      const recipe: TaskVectorRecipe = { models: [{ weight: 1, drop: { kind: 'bernoulli', key: dropKey(8, 0, 'wide'), threshold: keepThreshold(0.5), scale: 2 } }], consensus: undefined, normalize: false, lambda: 1 };
      expectBitwise(await onGpu(narrow!, recipe, base, [model], 1), onCpu(recipe, base, [model], 1));
      // Selections of several models, full of ties at their thresholds: which tied entries are
      // kept (in index order) depends on every block's count of them, per selection.
      const tied = [quantised(n, 64), quantised(n, 65), quantised(n, 66)].map((q) => q.map((v, i) => base[i] + v));
      const selections: TaskVectorRecipe = {
        models: [
          { weight: 0.5, drop: { kind: 'magnitude', keepCount: Math.floor(0.3 * n), scale: 1 } },
          { weight: 0.5, drop: { kind: 'breadcrumbs', density: 0.3, gamma: 0.05 } },
          { weight: 0.5, drop: { kind: 'magnitude', keepCount: Math.floor(0.6 * n), scale: 1 } },
        ],
        consensus: 'sum',
        normalize: true,
        lambda: 1,
      };
      expectClose(await onGpu(narrow!, selections, base, tied, 1), onCpu(selections, base, tied, 1), base, tied, selections);
      for (const [t, model] of tied.entries()) {
        const single: TaskVectorRecipe = { ...selections, models: [selections.models[t]] };
        expectBitwise(await onGpu(narrow!, single, base, [model], 1), onCpu(single, base, [model], 1));
      }
    }
    // One workgroup per row: 23 rows need five rows of workgroups, the last one partly past the end.
    const rows = 23;
    const rowLength = 300;
    const rates = Float32Array.from({ length: rows }, (_, r) => (r % 3) / 2);
    const perRow: TaskVectorRecipe = { models: [{ weight: 1, drop: { kind: 'rowTopK', rates } }], consensus: undefined, normalize: false, lambda: 1 };
    const [rowBase, rowModel] = [quantised(rows * rowLength, 62), quantised(rows * rowLength, 63)];
    expectBitwise(await onGpu(narrow!, perRow, rowBase, [rowModel], rowLength), onCpu(perRow, rowBase, [rowModel], rows));
  });

  gpuIt('counts NaN and ±Inf per input over the whole tensor, across chunks, with the first flat index', async () => {
    const n = 4099;
    const base = values(n, 70);
    const models = [values(n, 71), values(n, 72)];
    base[4000] = Number.NEGATIVE_INFINITY;
    models[1][3000] = Number.NaN; // a later chunk first: the first index is the smallest, not the first found
    models[1][17] = Number.POSITIVE_INFINITY;
    models[1][1600] = Number.NaN;
    const recipe: TaskVectorRecipe = { models: models.map(() => ({ weight: 0.5, drop: { kind: 'magnitude', keepCount: 1000, scale: 1 } as DropRule })), consensus: 'sum', normalize: true, lambda: 1 };
    for (const gpu of [kernels!, chunked!]) {
      const { nonFinite } = await mergeOnGpu(gpu, recipe, base, models, 1);
      expect(nonFinite).toEqual({ base: { count: 1, first: 4000 }, models: [{ count: 0, first: -1 }, { count: 3, first: 17 }] });
    }
    const clean = await mergeOnGpu(kernels!, { ...recipe, models: [recipe.models[0]] }, values(n, 73), [values(n, 74)], 1);
    expect(clean.nonFinite.models).toEqual([{ count: 0, first: -1 }]);
  });

  gpuIt('reuses large buffers from tensor to tensor without carrying values over', async () => {
    // 2^19 floats (2 MiB per input): above the size the pool keeps. Each merge overwrites what
    // the previous one left in reused staging, device and read-back buffers; a recipe without a
    // base after one with a base must still merge over zeros.
    const n = 1 << 19;
    const gpu = await GpuTaskVectorKernels.open();
    try {
      const withBase: TaskVectorRecipe = { models: [{ weight: 0.5, drop: { kind: 'magnitude', keepCount: n / 4, scale: 1 } }, { weight: 0.5, drop: { kind: 'keep' } }], consensus: 'sum', normalize: true, lambda: 1 };
      // Weights that do not sum to 1: a stale base would not cancel out of the sum.
      const linear: TaskVectorRecipe = { models: [{ weight: 0.7, drop: { kind: 'keep' } }, { weight: 0.2, drop: { kind: 'keep' } }], consensus: undefined, normalize: false, lambda: 1, withoutBase: true };
      for (const [round, recipe] of [withBase, withBase, linear, withBase, linear].entries()) {
        const base = values(n, 80 + round, 5);
        const models = [values(n, 90 + round), values(n, 100 + round)];
        const cpu = onCpu(recipe, recipe.withoutBase ? new Float32Array(n) : base, models, 1);
        expectClose(await onGpu(gpu, recipe, base, models, 1), cpu, recipe.withoutBase ? new Float32Array(n) : base, models, recipe);
      }
      expect(gpu.buffersReused()).toBeGreaterThan(0);
      gpu.releaseBuffers();
      const before = gpu.buffersReused();
      await onGpu(gpu, withBase, values(n, 110), [values(n, 111), values(n, 112)], 1);
      expect(gpu.buffersReused()).toBe(before); // nothing kept after a release
    } finally {
      gpu.destroy();
    }
  }, 60_000);

  gpuIt('merges several tensors in flight at once', async () => {
    const jobs = Array.from({ length: 6 }, (_, i) => {
      const n = 500 + 97 * i;
      const base = values(n, 100 + i);
      const models = [values(n, 200 + i), values(n, 300 + i)];
      const recipe: TaskVectorRecipe = {
        models: models.map((_m, t) => ({ weight: 1, drop: { kind: 'bernoulli', key: dropKey(i, t, `t${i}`), threshold: keepThreshold(0.3), scale: Math.fround(1 / 0.3) } as DropRule })),
        consensus: 'sum',
        normalize: false,
        lambda: 1,
      };
      return { base, models, recipe };
    });
    const results = await Promise.all(jobs.map((j) => onGpu(kernels!, j.recipe, j.base, j.models, 1)));
    results.forEach((r, i) => expectClose(r, onCpu(jobs[i].recipe, jobs[i].base, jobs[i].models, 1), jobs[i].base, jobs[i].models, jobs[i].recipe));
  });
});
