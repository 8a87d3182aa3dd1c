/**
 * GPU check (run on a machine with an NVIDIA GPU; see README "GPU"): APL importance on WebGPU
 * against the WASM path — same scores within 1e-4 relative — and its speed: exact-intervention
 * partitions/s and gradient passes/s on each backend, over every fine-tune of a zoo. WebGPU runs
 * twice: with our WGSL scoring kernels (the default there) and with tfjs ops only.
 *
 *   node dist/bench/gpu-check.js ZOO_DIR OUT.json
 * Prints a table; exits non-zero when WebGPU is unavailable or the scores disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { exactImportance, gradientImportance } from '../src/engine/apl/importance';
import { buildPartitions } from '../src/engine/apl/partitions';
import { trunkShapesOf } from '../src/engine/apl/prepare';
import { getSplit, loadTaskData } from '../src/engine/data/task-data';
import { loadModel } from '../src/engine/families/model';
import { BackendChoice, useBackend } from '../src/engine/tensors/backend';
import { ZooManifest } from '../src/engine/zoo/vision';

interface BackendRun {
  backend: string;
  exactSeconds: number;
  gradientSeconds: number;
  partitions: number;
  gradientPasses: number;
  scores: Record<string, { loss: number[]; gradient: number[] }>;
}

async function run(zoo: string, choice: BackendChoice, repeats: number, fusedKernel = true): Promise<BackendRun> {
  await useBackend(choice);
  const manifest = JSON.parse(readFileSync(join(zoo, 'zoo.json'), 'utf8')) as ZooManifest;
  const base = loadModel(join(zoo, manifest.base));
  const options = fusedKernel ? {} : { interventionKernels: false as const };
  const gradientOptions = fusedKernel ? {} : { gradientKernels: false as const };
  const label = tf.getBackend() === 'webgpu' ? (fusedKernel ? 'webgpu (our WGSL kernels)' : 'webgpu (tfjs ops only)') : tf.getBackend();
  const result: BackendRun = { backend: label, exactSeconds: 0, gradientSeconds: 0, partitions: 0, gradientPasses: 0, scores: {} };
  for (const entry of manifest.finetunes) {
    const finetune = loadModel(join(zoo, entry.model));
    const probe = getSplit(loadTaskData(join(zoo, entry.data)), 'probe');
    const scheme = buildPartitions('row', trunkShapesOf(finetune));
    const inputs = { base, finetune, task: entry.task, probe, scheme };
    await exactImportance(inputs, options); // warm-up: compile kernels for these shapes
    await gradientImportance(inputs, 'finetune', undefined, gradientOptions);
    let exact = await exactImportance(inputs, options);
    let gradient = await gradientImportance(inputs, 'finetune', undefined, gradientOptions);
    for (let r = 0; r < repeats; r++) {
      exact = await exactImportance(inputs, options);
      result.exactSeconds += exact.seconds;
      result.partitions += scheme.count;
      gradient = await gradientImportance(inputs, 'finetune', undefined, gradientOptions);
      result.gradientSeconds += gradient.seconds;
      result.gradientPasses += 1;
    }
    result.scores[entry.task] = { loss: Array.from(exact.lossIncrease), gradient: Array.from(gradient.signed) };
  }
  return result;
}

function relativeDifference(a: number[], b: number[]): number {
  const scale = Math.max(...b.map(Math.abs), 1e-12);
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / scale;
}

async function main(): Promise<void> {
  const [zoo, out] = process.argv.slice(2);
  const wasm = await run(zoo, 'wasm', 3);
  const gpuRuns: BackendRun[] = [];
  let error: string | undefined;
  try {
    gpuRuns.push(await run(zoo, 'webgpu', 3), await run(zoo, 'webgpu', 3, false));
  } catch (err) {
    error = (err as Error).message;
  }
  const rows = [wasm, ...gpuRuns].map((r) => ({
    backend: r.backend,
    exactPartitionsPerSecond: r.partitions / r.exactSeconds,
    gradientPassesPerSecond: r.gradientPasses / r.gradientSeconds,
  }));
  const parity = gpuRuns.flatMap((gpu) =>
    Object.keys(wasm.scores).map((task) => ({
      backend: gpu.backend,
      task,
      lossRelative: relativeDifference(gpu.scores[task].loss, wasm.scores[task].loss),
      gradientRelative: relativeDifference(gpu.scores[task].gradient, wasm.scores[task].gradient),
    })),
  );
  console.log('| backend | exact partitions/s | gradient passes/s |\n| --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.backend} | ${r.exactPartitionsPerSecond.toFixed(0)} | ${r.gradientPassesPerSecond.toFixed(1)} |`);
  for (const p of parity) console.log(`parity ${p.backend} ${p.task}: loss ${p.lossRelative.toExponential(2)}, gradient ${p.gradientRelative.toExponential(2)} (max |Δ| / max |score|)`);
  if (error) console.log(`webgpu: ${error}`);
  writeFileSync(out, JSON.stringify({ rows, parity, error, scores: { wasm: wasm.scores, webgpu: gpuRuns[0]?.scores } }, null, 2));
  process.exitCode = gpuRuns.length > 0 && parity.every((p) => p.lossRelative <= 1e-4 && p.gradientRelative <= 1e-4) ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
