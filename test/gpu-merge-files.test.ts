/**
 * Whole merges from checkpoint files with `backend: 'webgpu'`, against the same merges on the CPU:
 * the GPU's output equals the CPU's to float32 rounding (bit for bit for single-model drops),
 * methods without GPU kernels run on the CPU and say so, and bad input fails as on the CPU,
 * leaving nothing behind. Skips with a message where no WebGPU adapter exists.
 */
import { mkdirSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openCheckpoint, TensorReader } from '../src/engine/checkpoint/checkpoint';
import { decodeToFloat32, encodeFromFloat32, FloatDtype } from '../src/engine/checkpoint/dtype';
import { writeSafetensorsFile } from '../src/engine/checkpoint/writer';
import { CheckpointError } from '../src/engine/errors';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { GpuTensorRunner } from '../src/engine/merge/gpu-runner';
import { mergeKernelsFor } from '../src/engine/gpu/merge-device';
import { TensorPool } from '../src/engine/merge/pool';
import { MergeResult, runMerge } from '../src/engine/merge/run';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';
import { removeTempDirs, tempDir } from './helpers/files';
import { gpuIt } from './helpers/gpu';

afterAll(removeTempDirs);

const SPEC = [
  { name: 'embed.weight', shape: [300, 16] },
  { name: 'layers.0.w', shape: [64, 48] },
  { name: 'layers.0.b', shape: [64] },
  { name: 'head.weight', shape: [4, 16] },
];

let root: string;

beforeAll(() => {
  root = tempDir();
  writeSyntheticFamily(join(root, 'f32'), { tensors: SPEC, fineTunes: 3, seed: 5 });
  writeSyntheticFamily(join(root, 'bf16'), { tensors: SPEC, fineTunes: 2, seed: 6, dtype: 'BF16' });
});

function readAll(path: string): Map<string, Float32Array> {
  const checkpoint = openCheckpoint(path);
  const reader = new TensorReader();
  try {
    return new Map([...checkpoint.tensors].map(([name, location]) => [name, decodeToFloat32(reader.read(location), location.dtype as FloatDtype)]));
  } finally {
    reader.close();
  }
}

async function merge(text: string, backend: 'webgpu' | 'wasm', out: string): Promise<MergeResult> {
  return runMerge(planMerge(parseMergeConfig(text, 'merge.yml', root)), join(root, out), { backend, threads: 0, overwrite: true });
}

function expectWithin(gpu: Map<string, Float32Array>, cpu: Map<string, Float32Array>, relative: number): void {
  expect([...gpu.keys()].sort()).toEqual([...cpu.keys()].sort());
  for (const [name, expected] of cpu) {
    const actual = gpu.get(name)!;
    const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let i = 0; i < expected.length; i++) {
      if (Math.abs(actual[i] - expected[i]) > relative * scale) throw new Error(`${name}[${i}]: GPU ${actual[i]} vs CPU ${expected[i]}`);
    }
  }
}

function expectIdentical(gpu: Map<string, Float32Array>, cpu: Map<string, Float32Array>): void {
  for (const [name, expected] of cpu) expect(Buffer.from(gpu.get(name)!.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
}

const models = (family: string, count: number, parameters: string) =>
  Array.from({ length: count }, (_, i) => `  - model: ${family}/finetune-${i + 1}\n    parameters: ${parameters}`).join('\n');

describe('merging checkpoint files on the GPU', () => {
  gpuIt('single-model DARE with a seed writes the same bytes as the CPU', async () => {
    const text = `merge_method: dare_linear\nbase_model: f32/base\nseed: 42\nmodels:\n${models('f32', 1, '{ weight: 1.0, density: 0.3 }')}\n`;
    const gpu = await merge(text, 'webgpu', 'dare-gpu');
    const cpu = await merge(text, 'wasm', 'dare-cpu');
    expect(gpu.device.gpuTensors).toBe(SPEC.length);
    expect(gpu.device.gpu).toBeTruthy();
    expect(cpu.device.gpuTensors).toBe(0);
    expectIdentical(readAll(gpu.outDir), readAll(cpu.outDir));
    expect(gpu.sha256).toBe(cpu.sha256);
  });

  for (const [method, parameters, extra] of [
    ['ties', '{ weight: 0.7, density: 0.4 }', ''],
    ['dare_ties', '{ weight: 0.5, density: 0.5 }', 'seed: 7\n'],
    ['task_arithmetic', '{ weight: 0.4 }', 'parameters: { lambda: 0.9 }\n'],
    ['magnitude', '{ weight: 0.6, density: 0.2 }', ''],
    // linear's base is not an input: the GPU must not add it back
    ['linear', '{ weight: 0.4 }', ''],
    ['breadcrumbs_ties', '{ weight: 0.5, density: 0.6, gamma: 0.05 }', ''],
  ]) {
    gpuIt(`${method} over three fine-tunes agrees with the CPU to float32 rounding`, async () => {
      const text = `merge_method: ${method}\nbase_model: f32/base\n${extra}models:\n${models('f32', 3, parameters)}\n`;
      const gpu = await merge(text, 'webgpu', `${method}-gpu`);
      const cpu = await merge(text, 'wasm', `${method}-cpu`);
      expect(gpu.device).toMatchObject({ gpuTensors: SPEC.length, cpuTensors: 0 });
      expectWithin(readAll(gpu.outDir), readAll(cpu.outDir), 1e-6);
    });
  }

  gpuIt('linear without a base model, unnormalised, agrees with the CPU to float32 rounding', async () => {
    const text = `merge_method: linear\nparameters: { normalize: false }\nmodels:\n${models('f32', 3, '{ weight: 0.3 }')}\n`;
    const gpu = await merge(text, 'webgpu', 'linear-nobase-gpu');
    const cpu = await merge(text, 'wasm', 'linear-nobase-cpu');
    expect(gpu.device).toMatchObject({ gpuTensors: SPEC.length, cpuTensors: 0 });
    expectWithin(readAll(gpu.outDir), readAll(cpu.outDir), 1e-6);
  });

  gpuIt('decodes bfloat16 inputs and writes the configured dtype', async () => {
    const text = `merge_method: ties\nbase_model: bf16/base\ndtype: bfloat16\nmodels:\n${models('bf16', 2, '{ weight: 1.0, density: 0.5 }')}\n`;
    const gpu = await merge(text, 'webgpu', 'bf16-gpu');
    const cpu = await merge(text, 'wasm', 'bf16-cpu');
    expect(openCheckpoint(gpu.outDir).tensors.get('layers.0.w')!.dtype).toBe('BF16');
    // bfloat16 output: equal unless a float32 rounding difference crosses a bfloat16 rounding boundary
    expectWithin(readAll(gpu.outDir), readAll(cpu.outDir), 2 ** -7);
  });

  gpuIt('passthrough (times its scale) runs on the GPU and writes the same bytes as the CPU', async () => {
    const text = `merge_method: passthrough\nmodels:\n${models('f32', 1, '{ scale: 0.5 }')}\n`;
    const gpu = await merge(text, 'webgpu', 'passthrough-gpu');
    const cpu = await merge(text, 'wasm', 'passthrough-cpu');
    expect(gpu.device).toMatchObject({ gpuTensors: SPEC.length, cpuTensors: 0 });
    expectIdentical(readAll(gpu.outDir), readAll(cpu.outDir));
  });

  gpuIt('methods of no recipe (slerp, model_stock) and LoRA inputs run on the CPU and the result says why', async () => {
    const slerp = await merge(`merge_method: slerp\nbase_model: f32/base\nmodels:\n${models('f32', 1, '{}')}\nparameters: { t: 0.3 }\n`, 'webgpu', 'slerp-gpu');
    expect(slerp.device).toMatchObject({ gpuTensors: 0, cpuTensors: SPEC.length });
    expect(slerp.device.cpuReasons.join(' ')).toMatch(/slerp: no GPU kernel/);
    const stock = await merge(`merge_method: model_stock\nbase_model: f32/base\nmodels:\n${models('f32', 2, '{}')}\n`, 'webgpu', 'stock-gpu');
    expect(stock.device.cpuReasons.join(' ')).toMatch(/model_stock: no GPU kernel/);
  });

  gpuIt('methods without GPU kernels run on the CPU and the result says why', async () => {
    const text = `merge_method: della\nbase_model: f32/base\nseed: 1\nmodels:\n${models('f32', 2, '{ weight: 0.5, density: 0.5, epsilon: 0.1 }')}\n`;
    const gpu = await merge(text, 'webgpu', 'della-gpu');
    const cpu = await merge(text, 'wasm', 'della-cpu');
    expect(gpu.device).toMatchObject({ gpuTensors: 0, cpuTensors: SPEC.length });
    expect(gpu.device.cpuReasons.join(' ')).toMatch(/della: drop rule "della" has no GPU kernel/);
    expectIdentical(readAll(gpu.outDir), readAll(cpu.outDir));
  });

  gpuIt('keeps the tensors in flight and their input bytes within its limits, and merges the same', async () => {
    const text = `merge_method: ties\nbase_model: f32/base\nmodels:\n${models('f32', 3, '{ weight: 0.7, density: 0.4 }')}\n`;
    const plan = planMerge(parseMergeConfig(text, 'merge.yml', root));
    const kernels = (await mergeKernelsFor('webgpu'))!;
    const largest = Math.max(...SPEC.map((s) => 4 * 4 * s.shape.reduce((a, b) => a * b, 1)));
    const run = async (bytes: number, tensors = SPEC.length) => {
      const runner = new GpuTensorRunner(kernels, new TensorPool(0), { bytes, tensors });
      try {
        const results = await Promise.all(plan.jobs.map((job) => runner.run(job)));
        const report = runner.deviceReport();
        return { results: results.map((r) => Buffer.from(r.bytes)), peak: report.peakInFlightBytes!, tensors: report.peakInFlightTensors! };
      } finally {
        await runner.close();
      }
    };
    const tight = await run(1);
    expect(tight.peak).toBe(largest); // one tensor at a time
    expect(tight.tensors).toBe(1);
    const loose = await run(2 ** 30);
    expect(loose.peak).toBeGreaterThan(largest); // all at once
    expect(loose.tensors).toBe(SPEC.length);
    const counted = await run(2 ** 30, 2); // bytes to spare, but two tensors at a time
    expect(counted.tensors).toBe(2);
    for (const other of [loose, counted]) tight.results.forEach((bytes, i) => expect(bytes.equals(other.results[i])).toBe(true));
  });

  gpuIt('a file cut short after planning fails naming it, with every read settled, and leaves nothing behind', async () => {
    const family = join(root, 'short');
    writeSyntheticFamily(family, { tensors: SPEC, fineTunes: 2, seed: 9 });
    const text = `merge_method: ties\nbase_model: short/base\nmodels:\n  - model: short/finetune-1\n    parameters: { weight: 0.5, density: 0.5 }\n  - model: short/finetune-2\n    parameters: { weight: 0.5, density: 0.5 }\n`;
    const plan = planMerge(parseMergeConfig(text, 'merge.yml', root));
    const file = join(family, 'finetune-2', 'model.safetensors');
    truncateSync(file, statSync(file).size - 100); // the last tensor loses its end
    const out = join(root, 'short-gpu');
    const error = await runMerge(plan, out, { backend: 'webgpu', threads: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect(String((error as Error).message)).toMatch(/finetune-2.*unexpected end of file/s);
    expect(readdirSync(root).filter((f) => f.startsWith('.') || f === 'short-gpu')).toEqual([]);
    // The kernels are shared by the process: the next merge runs normally.
    const after = await merge(`merge_method: ties\nbase_model: f32/base\nmodels:\n${models('f32', 2, '{ weight: 0.5, density: 0.5 }')}\n`, 'webgpu', 'after-short');
    expect(after.device.gpuTensors).toBe(SPEC.length);
  });

  gpuIt('a NaN in an input fails naming the file and tensor, and leaves nothing behind', async () => {
    const broken = join(root, 'broken');
    const base = readAll(join(root, 'f32/base'));
    const values = base.get('layers.0.w')!.slice();
    values[70] = Number.NaN;
    const dir = join(broken, 'finetune');
    const tensors = [...base].map(([name, v]) => ({ name, dtype: 'F32' as const, shape: SPEC.find((s) => s.name === name)!.shape, data: encodeFromFloat32(name === 'layers.0.w' ? values : v, 'F32') }));
    mkdirSync(dir, { recursive: true });
    writeSafetensorsFile(join(dir, 'model.safetensors'), tensors);
    writeFileSync(join(dir, 'config.json'), '{}');
    const text = `merge_method: ties\nbase_model: f32/base\nmodels:\n  - model: broken/finetune\n    parameters: { weight: 1, density: 0.5 }\n`;
    const out = join(root, 'nan-gpu');
    const error = await merge(text, 'webgpu', 'nan-gpu').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect(String((error as Error).message)).toMatch(/broken\/finetune.*layers\.0\.w|layers\.0\.w.*broken\/finetune/s);
    expect(String((error as Error).message)).toMatch(/first at flat index 70/);
    expect(readdirSync(dirname(out)).filter((f) => f.startsWith('.') || f === 'nan-gpu')).toEqual([]);
    // Under the warn policy both devices merge and report the same count for the same input.
    const warned = async (backend: 'webgpu' | 'wasm') =>
      (await runMerge(planMerge(parseMergeConfig(text, 'merge.yml', root), { nonFinite: 'warn' }), join(root, `nan-warn-${backend}`), { backend, threads: 0, overwrite: true })).warnings;
    const [onGpu, onCpu] = [await warned('webgpu'), await warned('wasm')];
    expect(onGpu).toEqual(onCpu);
    expect(onGpu).toEqual([expect.objectContaining({ tensor: 'layers.0.w', count: 1 })]);
  });
});
