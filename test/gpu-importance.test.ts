/**
 * APL importance on TensorFlow.js's WebGPU backend against WASM: exact intervention (batched
 * partitions) and the gradient approximation must agree within 1e-4 of the largest score. Runs on
 * any WebGPU adapter (a GPU, or Mesa's lavapipe); skips with a message where none exists.
 */
import { exactImportance, gradientImportance } from '../src/engine/apl/importance';
import { GpuGradientKernels } from '../src/engine/gpu/gradient-kernels';
import { GpuInterventionKernels } from '../src/engine/gpu/intervention-kernels';
import { Model } from '../src/engine/families/model';
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

gpuIt('exact and gradient importance with tfjs-webgpu ops match WASM within 1e-4 relative', async () => {
  const family = tinyFamily({ seed: 4, tasks: [{ name: 'a', classes: 3 }], hidden: [12, 6], probeSize: 40 });
  const finetune = family.finetunes[0];
  const inputs = { base: family.base, finetune, task: 'a', probe: family.probes[0], scheme: buildPartitions('row', new Map(finetune.family.trunkShapes(finetune.config).map((s) => [s.name, s.shape]))) };
  const run = async (backend: 'wasm' | 'webgpu') => {
    expect(await useBackend(backend)).toBe(backend);
    return { exact: await exactImportance(inputs, { interventionKernels: false }), gradient: await gradientImportance(inputs, 'finetune', undefined, { gradientKernels: false }) };
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

gpuIt('the fused intervention kernel scores MLP row partitions as the tfjs path does, where it applies', async () => {
  expect(await useBackend('wasm')).toBe('wasm');
  const kernels = await GpuInterventionKernels.open();
  try {
    // Two hidden layers: the first reaches the head through one more layer, the second directly.
    // Three: the first layer's partitions are beyond the kernel and stay on tfjs.
    for (const [hidden, fusedCount] of [[[12, 6], 18], [[10, 8, 6], 14]] as const) {
      const family = tinyFamily({ seed: 7, tasks: [{ name: 'a', classes: 5 }], hidden: [...hidden], probeSize: 70 });
      const finetune = family.finetunes[0];
      const inputs = { base: family.base, finetune, task: 'a', probe: family.probes[0], scheme: buildPartitions('row', new Map(finetune.family.trunkShapes(finetune.config).map((s) => [s.name, s.shape]))) };
      const reference = await exactImportance(inputs, { interventionKernels: false });
      const fused = await exactImportance(inputs, { interventionKernels: kernels });
      expect(reference.fusedPartitions).toBe(0);
      expect(fused.fusedPartitions).toBe(fusedCount);
      expect(relative(fused.lossIncrease, reference.lossIncrease)).toBeLessThan(1e-4);
      expect(relative(fused.kl, reference.kl)).toBeLessThan(1e-4);
      expect(new Set(Array.from(reference.lossIncrease, (v) => v.toFixed(6))).size).toBeGreaterThan(5);
    }
    // Heads wider than the kernel's logits array, and inputs larger than a binding, are left to tfjs.
    expect(kernels.problem({ examples: 8, inDim: 4, units: 4, width: 70, classes: 70, hidden: false, partitions: 4 })).toMatch(/70 classes: the fused kernel holds at most 64 logits per example/);
    expect(kernels.problem({ examples: 2 ** 16, inDim: 2 ** 16, units: 4, width: 3, classes: 3, hidden: false, partitions: 4 })).toMatch(/words of GPU memory in one binding; the device allows/);
    const wide = tinyFamily({ seed: 7, tasks: [{ name: 'a', classes: 70 }], hidden: [6, 5], probeSize: 20 });
    const wideScheme = buildPartitions('row', new Map(wide.finetunes[0].family.trunkShapes(wide.finetunes[0].config).map((s) => [s.name, s.shape])));
    expect((await exactImportance({ base: wide.base, finetune: wide.finetunes[0], task: 'a', probe: wide.probes[0], scheme: wideScheme }, { interventionKernels: kernels })).fusedPartitions).toBe(0);
    // Layer and model partitions are not row partitions: the kernel is not used.
    const family = tinyFamily({ seed: 7, tasks: [{ name: 'a', classes: 5 }], hidden: [12, 6] });
    const finetune = family.finetunes[0];
    const layer = await exactImportance({ base: family.base, finetune, task: 'a', probe: family.probes[0], scheme: buildPartitions('layer', new Map(finetune.family.trunkShapes(finetune.config).map((s) => [s.name, s.shape]))) }, { interventionKernels: kernels });
    expect(layer.fusedPartitions).toBe(0);
  } finally {
    kernels.destroy();
  }
});

gpuIt('the gradient kernels give the tfjs autodiff scores for MLPs at every partition level, at the fine-tune and at the base', async () => {
  expect(await useBackend('wasm')).toBe('wasm');
  const kernels = await GpuGradientKernels.open();
  try {
    for (const hidden of [[7], [12, 6], [10, 8, 6]]) {
      const family = tinyFamily({ seed: 9, tasks: [{ name: 'a', classes: 4 }], hidden, probeSize: 90 });
      const finetune = family.finetunes[0];
      for (const level of ['row', 'layer', 'model'] as const) {
        const inputs = { base: family.base, finetune, task: 'a', probe: family.probes[0], scheme: buildPartitions(level, new Map(finetune.family.trunkShapes(finetune.config).map((s) => [s.name, s.shape]))) };
        for (const at of ['finetune', 'base'] as const) {
          const reference = await gradientImportance(inputs, at, undefined, { gradientKernels: false });
          const fused = await gradientImportance(inputs, at, undefined, { gradientKernels: kernels });
          expect([reference.fused, fused.fused]).toEqual([false, true]);
          expect(relative(fused.signed, reference.signed)).toBeLessThan(1e-4);
          expect(relative(fused.absolute, reference.absolute)).toBeLessThan(1e-4);
          if (level === 'row') expect(new Set(Array.from(reference.signed, (v) => v.toFixed(7))).size).toBeGreaterThan(5);
        }
      }
    }
    // A model whose stages are not known to be linear layers is left to tfjs.
    const family = tinyFamily({ seed: 9, tasks: [{ name: 'a', classes: 4 }], hidden: [6, 5] });
    const opaque: Model = { ...family.finetunes[0], family: { ...family.finetunes[0].family, stages: (config) => family.finetunes[0].family.stages(config).map((stage) => ({ ...stage, linear: undefined })) } };
    const scheme = buildPartitions('row', new Map(opaque.family.trunkShapes(opaque.config).map((s) => [s.name, s.shape])));
    expect((await gradientImportance({ base: family.base, finetune: opaque, task: 'a', probe: family.probes[0], scheme }, 'finetune', undefined, { gradientKernels: kernels })).fused).toBe(false);
  } finally {
    kernels.destroy();
  }
});

gpuIt('on the WebGPU backend, both estimators use the WGSL kernels by default', async () => {
  const family = tinyFamily({ seed: 10, tasks: [{ name: 'a', classes: 3 }], hidden: [9, 4], probeSize: 30 });
  const finetune = family.finetunes[0];
  const inputs = { base: family.base, finetune, task: 'a', probe: family.probes[0], scheme: buildPartitions('row', new Map(finetune.family.trunkShapes(finetune.config).map((s) => [s.name, s.shape]))) };
  const run = async (backend: 'wasm' | 'webgpu') => {
    expect(await useBackend(backend)).toBe(backend);
    return { exact: await exactImportance(inputs), gradient: await gradientImportance(inputs) };
  };
  const wasm = await run('wasm');
  const gpu = await run('webgpu');
  expect([wasm.exact.fusedPartitions, gpu.exact.fusedPartitions]).toEqual([0, 13]);
  expect([wasm.gradient.fused, gpu.gradient.fused]).toEqual([false, true]);
  expect(relative(gpu.exact.lossIncrease, wasm.exact.lossIncrease)).toBeLessThan(1e-4);
  expect(relative(gpu.gradient.signed, wasm.gradient.signed)).toBeLessThan(1e-4);
  await useBackend('wasm');
});

gpuIt('the gradient kernels dispatch over two dimensions when a layer has more outputs than one dimension holds', async () => {
  // 2,100 examples × 2,000 units = 4.2M invocations > 65,535 workgroups × 64 along x.
  expect(await useBackend('wasm')).toBe('wasm');
  const kernels = await GpuGradientKernels.open();
  try {
    const family = tinyFamily({ seed: 11, tasks: [{ name: 'a', classes: 2 }], hidden: [2000], probeSize: 2100 });
    const finetune = family.finetunes[0];
    const inputs = { base: family.base, finetune, task: 'a', probe: family.probes[0], scheme: buildPartitions('row', new Map(finetune.family.trunkShapes(finetune.config).map((s) => [s.name, s.shape]))) };
    const reference = await gradientImportance(inputs, 'finetune', undefined, { gradientKernels: false });
    const fused = await gradientImportance(inputs, 'finetune', undefined, { gradientKernels: kernels });
    expect(fused.fused).toBe(true);
    expect(relative(fused.signed, reference.signed)).toBeLessThan(1e-4);
  } finally {
    kernels.destroy();
  }
}, 300_000);
