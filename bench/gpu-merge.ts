/**
 * Merge throughput on the GPU (WGSL kernels) beside the CPU (WASM, one thread per core) and, when
 * python3 with torch is installed, PyTorch doing the same math on the same card in the same call.
 * Checkpoints are synthetic (F32, `--size-mb` per model, `--models` fine-tunes), written once to a
 * temporary directory. For each method it reports:
 *   - end to end: files in, merged checkpoint out (read, decode, upload, merge, read back, write);
 *   - kernel alone: GPU time of the merge kernels (timestamp queries), data already on the card;
 * as GB/s of input (base + fine-tunes), and the largest difference from the CPU's output.
 *
 *   node dist/bench/gpu-merge.js OUT.json [--size-mb 512] [--models 3]
 * Exits non-zero when the GPU's output differs from the CPU's beyond float32 rounding.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint, TensorReader } from '../src/engine/checkpoint/checkpoint';
import { mergeKernelsFor } from '../src/engine/gpu/merge-device';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';

interface Row {
  method: string;
  engine: string;
  endToEndGBps: number;
  kernelGBps?: number;
  maxRelativeDifference?: number;
  /** GPU rows: most tensors and input bytes in flight, and large buffers reused instead of allocated. */
  inFlight?: { tensors?: number; bytes?: number; buffersReused: number };
}

const METHODS: Array<[string, string]> = [
  ['linear', '{ weight: 0.5 }'],
  ['task_arithmetic', '{ weight: 0.5 }'],
  ['ties', '{ weight: 0.5, density: 0.3 }'],
  ['dare_ties', '{ weight: 0.5, density: 0.3 }'],
  ['breadcrumbs_ties', '{ weight: 0.5, density: 0.3, gamma: 0.01 }'],
];

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

/** max |a − b| / max |b| over every tensor of two checkpoints. */
function maxRelativeDifference(a: string, b: string): number {
  const [left, right] = [openCheckpoint(a), openCheckpoint(b)];
  const reader = new TensorReader();
  let worst = 0;
  for (const [name, location] of right.tensors) {
    const x = new Float32Array(reader.read(left.tensors.get(name)!).slice().buffer);
    const y = new Float32Array(reader.read(location).slice().buffer);
    let scale = 1e-30;
    let diff = 0;
    for (let i = 0; i < y.length; i++) {
      scale = Math.max(scale, Math.abs(y[i]));
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
    }
    worst = Math.max(worst, diff / scale);
  }
  reader.close();
  return worst;
}

async function main(): Promise<void> {
  const out = process.argv[2];
  const sizeMb = flag('size-mb', 512);
  const fineTunes = flag('models', 3);
  const kernels = await mergeKernelsFor('webgpu');
  const root = mkdtempSync(join(tmpdir(), 'apl-merge-gpu-bench-'));
  try {
    // Tensors of 16M floats (64 MiB) and one odd-sized one, like a model's layers.
    const tensorElements = 1 << 24;
    const count = Math.max(1, Math.floor((sizeMb * 2 ** 20) / 4 / tensorElements));
    const tensors = [...Array.from({ length: count }, (_, i) => ({ name: `layers.${i}.weight`, shape: [4096, tensorElements / 4096] })), { name: 'norm.weight', shape: [4099] }];
    writeSyntheticFamily(join(root, 'models'), { tensors, fineTunes, seed: 1 });
    const inputBytes = (fineTunes + 1) * tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * 4, 0);
    const rows: Row[] = [];
    for (const [method, parameters] of METHODS) {
      const text = `merge_method: ${method}\nbase_model: models/base\nseed: 1\nmodels:\n${Array.from({ length: fineTunes }, (_, i) => `  - model: models/finetune-${i + 1}\n    parameters: ${parameters}`).join('\n')}\n`;
      const plan = () => planMerge(parseMergeConfig(text, `${method}.yml`, root));
      const onCpu = () => runMerge(plan(), join(root, `${method}-cpu`), { backend: 'wasm', threads: availableParallelism(), overwrite: true });
      await onCpu(); // warm-up: threads, WASM compilation
      const cpu = await onCpu();
      await runMerge(plan(), join(root, `${method}-gpu`), { backend: 'webgpu', overwrite: true }); // warm-up: pipelines, allocations
      const [kernelBefore, reusedBefore] = [kernels!.kernelSeconds(), kernels!.buffersReused()];
      const gpu = await runMerge(plan(), join(root, `${method}-gpu`), { backend: 'webgpu', overwrite: true });
      const kernelAfter = kernels!.kernelSeconds();
      rows.push({ method, engine: `CPU (WASM, ${availableParallelism()} threads)`, endToEndGBps: inputBytes / cpu.seconds / 1e9 });
      rows.push({
        method,
        engine: `GPU (${gpu.device.gpu})`,
        endToEndGBps: inputBytes / gpu.seconds / 1e9,
        kernelGBps: kernelBefore !== undefined && kernelAfter !== undefined ? inputBytes / (kernelAfter - kernelBefore) / 1e9 : undefined,
        maxRelativeDifference: maxRelativeDifference(gpu.outDir, cpu.outDir),
        inFlight: { tensors: gpu.device.peakInFlightTensors, bytes: gpu.device.peakInFlightBytes, buffersReused: kernels!.buffersReused() - reusedBefore },
      });
    }
    const torch = spawnSync('python3', [join(__dirname, '../../scripts/gpu/torch-merge.py'), join(root, 'models'), String(fineTunes)], { encoding: 'utf8' });
    let torchRows: Row[] = [];
    if (torch.status === 0) torchRows = JSON.parse(torch.stdout) as Row[];
    else console.log(`PyTorch not measured: ${(torch.stderr || torch.error?.message || '').trim().split('\n').pop()}`);
    rows.push(...torchRows);
    console.log(`${fineTunes} fine-tunes + base, ${(inputBytes / 1e9).toFixed(2)} GB of F32 input\n`);
    console.log('| method | engine | end to end GB/s | kernel alone GB/s | max rel. diff vs CPU |\n| --- | --- | --- | --- | --- |');
    for (const r of rows) {
      console.log(`| ${r.method} | ${r.engine} | ${r.endToEndGBps.toFixed(2)} | ${r.kernelGBps?.toFixed(1) ?? '–'} | ${r.maxRelativeDifference?.toExponential(1) ?? '–'} |`);
    }
    writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), adapter: kernels!.adapter, fineTunes, inputBytes, rows }, null, 2));
    process.exitCode = rows.every((r) => (r.maxRelativeDifference ?? 0) <= 1e-5) ? 0 : 1;
  } finally {
    rmSync(root, { recursive: true, force: true });
    kernels?.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
