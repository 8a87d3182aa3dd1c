/**
 * APL importance on TensorFlow.js's WebGPU backend against WASM: exact intervention (batched
 * partitions) and the gradient approximation must agree within 1e-4 of the largest score. Runs on
 * any WebGPU adapter (a GPU, or Mesa's lavapipe); skips with a message where none exists.
 */
import { exactImportance, gradientImportance } from '../src/engine/apl/importance';
import { buildPartitions } from '../src/engine/apl/partitions';
import { useBackend } from '../src/engine/tensors/backend';
import { gpuIt } from './helpers/gpu';
import { tinyFamily } from './helpers/tiny-models';

afterAll(async () => {
  await useBackend('wasm');
});

function relative(actual: Float64Array, expected: Float64Array): number {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
  return actual.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i])), 0) / scale;
}

gpuIt('exact and gradient importance on WebGPU match WASM within 1e-4 relative', async () => {
  const family = tinyFamily({ seed: 4, tasks: [{ name: 'a', classes: 3 }], hidden: [12, 6], probeSize: 40 });
  const finetune = family.finetunes[0];
  const inputs = { base: family.base, finetune, task: 'a', probe: family.probes[0], scheme: buildPartitions('row', new Map(finetune.family.trunkShapes(finetune.config).map((s) => [s.name, s.shape]))) };
  const run = async (backend: 'wasm' | 'webgpu') => {
    expect(await useBackend(backend)).toBe(backend);
    return { exact: await exactImportance(inputs), gradient: await gradientImportance(inputs) };
  };
  const wasm = await run('wasm');
  const gpu = await run('webgpu');
  expect(relative(gpu.exact.lossIncrease, wasm.exact.lossIncrease)).toBeLessThan(1e-4);
  expect(relative(gpu.exact.kl, wasm.exact.kl)).toBeLessThan(1e-4);
  expect(relative(gpu.gradient.signed, wasm.gradient.signed)).toBeLessThan(1e-4);
  expect(relative(gpu.gradient.absolute, wasm.gradient.absolute)).toBeLessThan(1e-4);
  // not trivially equal: the scores vary across partitions
  expect(new Set(Array.from(wasm.exact.lossIncrease, (v) => v.toFixed(6))).size).toBeGreaterThan(5);
});
