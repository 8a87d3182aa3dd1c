/**
 * Where the GPU's merge kernels and the CPU's recipes disagree, entry by entry: for each case, the
 * number of entries whose difference exceeds float32 rounding and, for the first few, the inputs,
 * both outputs and which entries each model's selection kept on the CPU. The cases separate the
 * parts of a merge: selection alone (one model, compared bit for bit), sign election alone (no
 * drops), and the whole of TIES and Breadcrumbs, at sizes below and above one dispatch dimension.
 *
 *   node dist/bench/gpu-merge-diff.js [OUT.json] [--elements 16777216]
 * Exits non-zero when any case disagrees.
 */
import { writeFileSync } from 'node:fs';
import { float32Bits } from '../src/engine/checkpoint/dtype';
import { GpuTaskVectorKernels } from '../src/engine/gpu/task-vector-kernels';
import { tensorRandom } from '../src/engine/kernels/random';
import { magnitudeRule, runRecipe, TaskVectorRecipe } from '../src/engine/kernels/recipe';
import { breadcrumbsCounts } from '../src/engine/kernels/sparsify';
import { topKCut } from '../src/engine/kernels/select';
import { fillNormal } from '../src/engine/zoo/synthetic';

interface Mismatch {
  index: number;
  base: number;
  models: number[];
  deltas: number[];
  cpu: number;
  gpu: number;
  keptOnCpu?: boolean[];
}

interface CaseResult {
  name: string;
  elements: number;
  mismatches: number;
  maxRelativeDifference: number;
  first: Mismatch[];
  seconds: number;
}

/** Approximately normal values (as the synthetic checkpoints): base scale 0.02, deltas 0.002. */
function family(n: number, models: number, seed: number): { base: Float32Array; models: Float32Array[] } {
  const normal = (scale: number, label: string) => {
    const out = new Float32Array(n);
    fillNormal(out, tensorRandom(seed, 0, label), scale);
    return out;
  };
  const base = normal(0.02, 'base');
  return { base, models: Array.from({ length: models }, (_, t) => normal(0.002, `model-${t}`).map((d, i) => base[i] + d)) };
}

const magnitude = (v: number) => float32Bits(v) & 0x7fffffff;

async function compare(gpu: GpuTaskVectorKernels, name: string, recipe: TaskVectorRecipe, base: Float32Array, models: Float32Array[], bitwise: boolean): Promise<CaseResult> {
  const n = base.length;
  const started = performance.now();
  const { merged: onGpu } = await gpu.merge(recipe, n, n, (input, start, target) => target.set((input === 'base' ? base : models[input]).subarray(start, start + target.length)), new Float32Array(n));
  const seconds = (performance.now() - started) / 1000;
  const onCpu = runRecipe(recipe, base.slice(), models.map((m) => m.slice()), [1, n]);
  // Each model's CPU threshold, to say which entries its selection kept.
  const deltas = models.map((m) => m.map((v, i) => v - base[i]));
  const cuts = recipe.models.map((m, t) => {
    if (m.drop.kind === 'magnitude') return topKCut(new Uint32Array(deltas[t].buffer), m.drop.keepCount).thresholdBits;
    if (m.drop.kind === 'breadcrumbs') return topKCut(new Uint32Array(deltas[t].buffer), breadcrumbsCounts(n, m.drop.density, m.drop.gamma).upper).thresholdBits;
    return undefined;
  });
  let scale = 1e-30;
  for (const v of onCpu) scale = Math.max(scale, Math.abs(v));
  let mismatches = 0;
  let worst = 0;
  const first: Mismatch[] = [];
  for (let i = 0; i < n; i++) {
    const diff = Math.abs(onGpu[i] - onCpu[i]);
    worst = Math.max(worst, diff / scale);
    const differs = bitwise ? !Object.is(onGpu[i], onCpu[i]) : diff > 1e-6 * scale;
    if (!differs) continue;
    mismatches++;
    if (first.length < 4) {
      first.push({
        index: i,
        base: base[i],
        models: models.map((m) => m[i]),
        deltas: deltas.map((d) => d[i]),
        cpu: onCpu[i],
        gpu: onGpu[i],
        keptOnCpu: cuts.some((c) => c !== undefined) ? cuts.map((c, t) => c === undefined || magnitude(deltas[t][i]) >= c) : undefined,
      });
    }
  }
  return { name, elements: n, mismatches, maxRelativeDifference: worst, first, seconds };
}

async function main(): Promise<void> {
  const out = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : undefined;
  const at = process.argv.indexOf('--elements');
  const large = at > 0 ? Number(process.argv[at + 1]) : 1 << 24;
  const gpu = await GpuTaskVectorKernels.open();
  console.log(`adapter: ${gpu.adapter.description}`);
  const results: CaseResult[] = [];
  try {
    for (const n of [1 << 20, large]) {
      const { base, models } = family(n, 3, n);
      const density = 0.3;
      const ties = (drop: (elements: number) => TaskVectorRecipe['models'][number]['drop']): TaskVectorRecipe => ({
        models: models.map(() => ({ weight: 0.5, drop: drop(n) })),
        consensus: 'sum',
        normalize: true,
        lambda: 1,
      });
      const cases: Array<[string, TaskVectorRecipe, Float32Array[], boolean]> = [
        ['selection, one model', { models: [{ weight: 1, drop: magnitudeRule(density, n) }], consensus: undefined, normalize: false, lambda: 1 }, [models[0]], true],
        ['sign election, no drops', ties(() => ({ kind: 'keep' })), models, false],
        ['ties', ties((e) => magnitudeRule(density, e)), models, false],
        ['breadcrumbs_ties', ties(() => ({ kind: 'breadcrumbs', density, gamma: 0.01 })), models, false],
      ];
      for (const [name, recipe, inputs, bitwise] of cases) {
        const result = await compare(gpu, name, recipe, base, inputs, bitwise);
        results.push(result);
        console.log(`${name}, ${n} entries: ${result.mismatches} differ (max rel. ${result.maxRelativeDifference.toExponential(1)}), ${result.seconds.toFixed(2)} s on the GPU`);
        for (const m of result.first) console.log(`  ${JSON.stringify(m)}`);
      }
    }
  } finally {
    gpu.destroy();
  }
  if (out) writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), adapter: gpu.adapter, results }, null, 2));
  process.exitCode = results.every((r) => r.mismatches === 0) ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
