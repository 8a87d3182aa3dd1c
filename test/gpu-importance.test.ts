/**
 * APL importance on TensorFlow.js's WebGPU backend against WASM: exact intervention (batched
 * partitions) and the gradient approximation must agree within 1e-4 of the largest score. Runs on
 * any WebGPU adapter (a GPU, or Mesa's lavapipe); skips with a message where none exists.
 */
import { exactImportance, gradientImportance } from '../src/engine/apl/importance';
import { GpuGradientKernels } from '../src/engine/gpu/gradient-kernels';
import { GpuInterventionKernels } from '../src/engine/gpu/intervention-kernels';
import { Model } from '../src/engine/families/model';
import { buildPartitions, PartitionLevel } from '../src/engine/apl/partitions';
import { trunkShapesOf } from '../src/engine/apl/prepare';
import { useBackend } from '../src/engine/tensors/backend';
import { Random } from '../src/engine/kernels/random';
import { gpuIt } from './helpers/gpu';
import { tinyFamily } from './helpers/tiny-models';
import { loadModel } from '../src/engine/families/model';
import { DECODER_CASES, writeDecoder } from './helpers/decoder-models';
import { removeTempDirs, tempDir } from './helpers/files';

afterAll(async () => {
  await useBackend('wasm');
  removeTempDirs();
});

/** Task 'a' of a tiny family's first fine-tune, partitioned at `level`. */
function taskInputs(family: ReturnType<typeof tinyFamily>, level: PartitionLevel = 'row') {
  const finetune = family.finetunes[0];
  return { base: family.base, finetune, task: 'a', probe: family.probes[0], scheme: buildPartitions(level, trunkShapesOf(finetune)) };
}

function relative(actual: Float64Array, expected: Float64Array): number {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
  return actual.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i])), 0) / scale;
}

gpuIt('exact and gradient importance with tfjs-webgpu ops match WASM within 1e-4 relative', async () => {
  const family = tinyFamily({ seed: 4, tasks: [{ name: 'a', classes: 3 }], hidden: [12, 6], probeSize: 40 });
  const inputs = taskInputs(family);
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
      const inputs = taskInputs(family);
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
    expect((await exactImportance(taskInputs(wide), { interventionKernels: kernels })).fusedPartitions).toBe(0);
    // Layer and model partitions are not row partitions: the kernel is not used.
    const family = tinyFamily({ seed: 7, tasks: [{ name: 'a', classes: 5 }], hidden: [12, 6] });
    const layer = await exactImportance(taskInputs(family, 'layer'), { interventionKernels: kernels });
    expect(layer.fusedPartitions).toBe(0);
  } finally {
    kernels.destroy();
  }
});

/**
 * A layer's row partitions scored in float64 from float32 inputs: the truth the fused kernel is held
 * to where loss increases are thousands of times smaller than the loss (small head weights), so
 * that differences of whole losses in float32 would be mostly rounding.
 */
function float64RowScores(a: { x: Float32Array; n: number; inDim: number; units: number; baseW: Float32Array; baseB: Float32Array; h: Float32Array; readerW: Float32Array; readerB: Float32Array; width: number; head?: { w: Float32Array; b: Float32Array }; classes: number; labels: Int32Array }) {
  const relu = (v: number) => Math.max(v, 0);
  const logits = (pre: Float64Array): Float64Array => {
    if (!a.head) return pre;
    const z = new Float64Array(a.classes);
    for (let c = 0; c < a.classes; c++) {
      let sum = a.head.b[c];
      for (let o = 0; o < a.width; o++) sum += relu(pre[o]) * a.head.w[c * a.width + o];
      z[c] = sum;
    }
    return z;
  };
  const logSoftmax = (z: Float64Array) => {
    const top = Math.max(...z);
    const lse = top + Math.log(z.reduce((t, v) => t + Math.exp(v - top), 0));
    return z.map((v) => v - lse);
  };
  const readerPre = (h: ArrayLike<number>, b: number) => {
    const pre = new Float64Array(a.width);
    for (let o = 0; o < a.width; o++) {
      let sum = a.readerB[o];
      for (let u = 0; u < a.units; u++) sum += h[b * a.units + u] * a.readerW[o * a.units + u];
      pre[o] = sum;
    }
    return pre;
  };
  const cleanPre = Array.from({ length: a.n }, (_, b) => readerPre(a.h, b));
  const cleanLogProbs = cleanPre.map((pre) => logSoftmax(logits(pre)));
  const increase = new Float64Array(a.units);
  const kl = new Float64Array(a.units);
  for (let r = 0; r < a.units; r++) {
    for (let b = 0; b < a.n; b++) {
      let pre = a.baseB[r];
      for (let i = 0; i < a.inDim; i++) pre += a.baseW[r * a.inDim + i] * a.x[b * a.inDim + i];
      const h = Float64Array.from(a.h.subarray(b * a.units, (b + 1) * a.units));
      h[r] = relu(pre);
      const corrupted = logSoftmax(logits(readerPre(h, 0)));
      const clean = cleanLogProbs[b];
      increase[r] += (clean[a.labels[b]] - corrupted[a.labels[b]]) / a.n;
      kl[r] += clean.reduce((t, l, c) => t + Math.exp(l) * (l - corrupted[c]), 0) / a.n;
    }
  }
  const flat = (rows: Float64Array[]) => Float32Array.from(rows.flatMap((row) => Array.from(row)));
  return { increase, kl, cleanPre: flat(cleanPre), cleanProbabilities: flat(cleanLogProbs.map((l) => l.map(Math.exp))) };
}

gpuIt('the fused intervention kernel keeps loss increases far smaller than the loss exact (float64 reference)', async () => {
  const kernels = await GpuInterventionKernels.open();
  try {
    const random = new Random(11, 'small-increases');
    const values = (n: number, scale: number) => Float32Array.from({ length: n }, () => (random.nextFloat() * 2 - 1) * scale);
    const [n, inDim, units, width, classes] = [64, 24, 32, 40, 10];
    const x = values(n * inDim, 1);
    const baseW = values(units * inDim, 0.3);
    const baseB = values(units, 0.1);
    // The fine-tune's clean output of the layer: its own weights, so units change by O(0.1).
    const ftW = baseW.map((v) => v + (random.nextFloat() - 0.5) * 0.2);
    const h = new Float32Array(n * units);
    for (let b = 0; b < n; b++) for (let u = 0; u < units; u++) {
      let pre = baseB[u];
      for (let i = 0; i < inDim; i++) pre += ftW[u * inDim + i] * x[b * inDim + i];
      h[b * units + u] = Math.max(pre, 0);
    }
    const labels = Int32Array.from({ length: n }, () => Math.floor(random.nextFloat() * classes));
    for (const hidden of [true, false]) {
      // Head weights of 1e-3: logits move by ~1e-4, the loss (≈ ln 10) by far less.
      const out = hidden ? width : classes;
      const readerW = values(out * units, hidden ? 0.3 : 1e-3);
      const readerB = values(out, hidden ? 0.1 : 1e-3);
      const head = hidden ? { w: values(classes * width, 1e-3), b: values(classes, 1e-3) } : undefined;
      const truth = float64RowScores({ x, n, inDim, units, baseW, baseB, h, readerW, readerB, width: out, head, classes, labels });
      const scored = await kernels.rowIntervention({
        x, examples: n, inDim, baseWeight: baseW, baseBias: baseB, stageRelu: true, cleanOutput: h, units,
        consumerWeight: readerW, width: out,
        hidden: head && { relu: true, pre: truth.cleanPre, headWeight: head.w },
        cleanProbabilities: truth.cleanProbabilities, classes, labels,
        rows: Int32Array.from({ length: units }, (_, r) => r),
      });
      expect(Math.max(...truth.increase.map(Math.abs))).toBeLessThan(1e-4); // ≥ 10^4 times below the loss
      expect(relative(Float64Array.from(scored.meanLossIncrease), truth.increase)).toBeLessThan(1e-4);
      expect(relative(Float64Array.from(scored.meanKl), truth.kl)).toBeLessThan(1e-4);
    }
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
      for (const level of ['row', 'layer', 'model'] as const) {
        const inputs = taskInputs(family, level);
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
    const scheme = buildPartitions('row', trunkShapesOf(opaque));
    expect((await gradientImportance({ base: family.base, finetune: opaque, task: 'a', probe: family.probes[0], scheme }, 'finetune', undefined, { gradientKernels: kernels })).fused).toBe(false);
  } finally {
    kernels.destroy();
  }
});

gpuIt('on the WebGPU backend, both estimators use the WGSL kernels by default', async () => {
  const family = tinyFamily({ seed: 10, tasks: [{ name: 'a', classes: 3 }], hidden: [9, 4], probeSize: 30 });
  const inputs = taskInputs(family);
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
    const inputs = taskInputs(family);
    const reference = await gradientImportance(inputs, 'finetune', undefined, { gradientKernels: false });
    const fused = await gradientImportance(inputs, 'finetune', undefined, { gradientKernels: kernels });
    expect(fused.fused).toBe(true);
    expect(relative(fused.signed, reference.signed)).toBeLessThan(1e-4);
  } finally {
    kernels.destroy();
  }
}, 300_000);

gpuIt('exact and gradient importance of a decoder LM (GQA, sliding window) on tfjs-webgpu match WASM within 1e-4 relative', async () => {
  const { config } = DECODER_CASES.mistral;
  const base = writeDecoder(tempDir(), config, { seed: 21 });
  const change = writeDecoder(tempDir(), config, { seed: 22 });
  const ftDir = tempDir();
  writeDecoder(ftDir, config, { values: new Map([...base].map(([n, v]) => [n, v.map((x, i) => x + 0.2 * (change.get(n)![i] - (n.endsWith('norm.weight') ? 1 : 0)))])) });
  const baseDir = tempDir();
  writeDecoder(baseDir, config, { values: base });
  const [baseModel, finetune] = [loadModel(baseDir), loadModel(ftDir)];
  const length = 7;
  const ids = Int32Array.from({ length: 4 * length }, (_, i) => (i * 37 + 11) % 96);
  const labels = ids.map((t, i) => (i % length >= 4 ? t : -100));
  const probe = { inputs: ids, exampleShape: [length], labels, count: 4, labelsPerExample: length };
  for (const level of ['layer', 'row'] as const) {
    const inputs = { base: baseModel, finetune, task: 'lm', probe, scheme: buildPartitions(level, trunkShapesOf(finetune)) };
    const run = async (backend: 'wasm' | 'webgpu') => {
      expect(await useBackend(backend)).toBe(backend);
      return { exact: await exactImportance(inputs), gradient: await gradientImportance(inputs) };
    };
    const wasm = await run('wasm');
    const gpu = await run('webgpu');
    expect(relative(gpu.exact.lossIncrease, wasm.exact.lossIncrease)).toBeLessThan(1e-4);
    expect(relative(gpu.gradient.signed, wasm.gradient.signed)).toBeLessThan(1e-4);
    expect(new Set(Array.from(wasm.exact.lossIncrease, (v) => v.toFixed(6))).size).toBeGreaterThan(5);
  }
  await useBackend('wasm');
});
