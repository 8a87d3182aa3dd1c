/**
 * Merge throughput benchmark (README: "Speed and memory").
 * Workload: a base and 3 fine-tunes of 24 float32 tensors of 4M elements (~400 MB each), TIES at
 * density 0.2 — or, with --method, SLERP (t 0.5, the base and one fine-tune) or Model Stock (the
 * base and 3 fine-tunes). Reports wall time, peak RSS of the merging process, throughput as bytes
 * of minimum traffic (the checkpoints read + 1 written) per second, and this machine's memory
 * copy rate measured in the same run.
 *
 *   npm run bench:merge [-- --method ties|slerp|model_stock --threads N --tensors 24 --elements 4194304 --runs 3]
 *
 * Inputs are generated once under .cache/bench (or $APL_MERGE_BENCH_DIR) and reused.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { peakResidentBytes } from '../src/engine/diagnostics';
import { readMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { writeSyntheticFamily } from '../src/engine/zoo/synthetic';

const METHOD_CONFIGS: Record<string, { models: number; text: string }> = {
  ties: { models: 3, text: ['merge_method: ties', 'base_model: models/base', 'models:', ...[1, 2, 3].map((f) => `  - model: models/finetune-${f}\n    parameters: { weight: 1.0, density: 0.2 }`), 'dtype: float32', ''].join('\n') },
  slerp: { models: 1, text: ['merge_method: slerp', 'base_model: models/base', 'models:', '  - model: models/finetune-1', 'parameters: { t: 0.5 }', 'dtype: float32', ''].join('\n') },
  model_stock: { models: 3, text: ['merge_method: model_stock', 'base_model: models/base', 'models:', ...[1, 2, 3].map((f) => `  - model: models/finetune-${f}`), 'dtype: float32', ''].join('\n') },
};

function method(): string {
  const i = process.argv.indexOf('--method');
  const name = i >= 0 ? process.argv[i + 1] : 'ties';
  if (!(name in METHOD_CONFIGS)) throw new Error(`--method must be one of ${Object.keys(METHOD_CONFIGS).join(', ')}, got "${name}"`);
  return name;
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Memory copy rate: median of 5 copies of a 256 MiB buffer, bytes read + written per second. */
function memoryCopyRate(): number {
  const size = 256 * 1024 * 1024;
  const source = new Uint8Array(size).fill(1);
  const target = new Uint8Array(size);
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = process.hrtime.bigint();
    target.set(source);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.shift();
  times.sort((a, b) => a - b);
  return (2 * size) / times[Math.floor(times.length / 2)];
}

async function runOnce(configPath: string, outDir: string, threads: number | undefined): Promise<void> {
  const plan = planMerge(readMergeConfig(configPath));
  const result = await runMerge(plan, outDir, { threads, overwrite: true });
  const maxRssBytes = peakResidentBytes();
  process.stdout.write(JSON.stringify({ seconds: result.seconds, maxRssBytes, inputBytes: result.inputBytes, outputBytes: result.outputBytes }) + '\n');
}

async function main(): Promise<void> {
  const tensors = flag('tensors', 24);
  const elements = flag('elements', 4 * 1024 * 1024);
  const threadsFlag = process.argv.indexOf('--threads') >= 0 ? flag('threads', 0) : undefined;
  const methodName = method();
  const root = resolve(process.env.APL_MERGE_BENCH_DIR ?? '.cache/bench', `ties-${tensors}x${elements}`);
  const configPath = join(root, `${methodName}.yml`);
  const outDir = join(root, 'merged');
  if (process.argv.includes('--child')) {
    await runOnce(configPath, outDir, threadsFlag);
    return;
  }
  if (!existsSync(join(root, 'ready'))) {
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    console.error(`generating inputs under ${root} ...`);
    const side = Math.sqrt(elements);
    const shape = Number.isInteger(side) ? [side, side] : [elements];
    writeSyntheticFamily(join(root, 'models'), {
      tensors: Array.from({ length: tensors }, (_, i) => ({ name: `layers.${i}.weight`, shape })),
      fineTunes: 3,
      seed: 7,
    });
    writeFileSync(join(root, 'ready'), '');
  }
  writeFileSync(configPath, METHOD_CONFIGS[methodName].text);
  const runs = flag('runs', 3);
  const copyRate = memoryCopyRate();
  const results: Array<{ seconds: number; maxRssBytes: number; inputBytes: number; outputBytes: number }> = [];
  for (let r = 0; r < runs; r++) {
    const args = [__filename, '--child', '--method', methodName, '--tensors', String(tensors), '--elements', String(elements)];
    if (threadsFlag !== undefined) args.push('--threads', String(threadsFlag));
    const child = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`merge run failed: ${child.stderr}`);
    results.push(JSON.parse(child.stdout.trim().split('\n').pop()!));
  }
  results.sort((a, b) => a.seconds - b.seconds);
  const median = results[Math.floor(results.length / 2)];
  const traffic = median.inputBytes + median.outputBytes;
  const peakRss = Math.max(...results.map((r) => r.maxRssBytes));
  const report = {
    workload: `${methodName === 'ties' ? 'TIES density 0.2' : methodName === 'slerp' ? 'SLERP t 0.5' : 'Model Stock'}, base + ${METHOD_CONFIGS[methodName].models} fine-tune(s), ${tensors} x ${elements} float32`,
    runs,
    wallSeconds: median.seconds,
    allSeconds: results.map((r) => r.seconds),
    peakRssMiB: peakRss / 1024 ** 2,
    trafficGB: traffic / 1e9,
    throughputGBs: traffic / median.seconds / 1e9,
    memoryCopyGBs: copyRate / 1e9,
    threads: threadsFlag ?? 'one per core',
  };
  console.log(JSON.stringify(report, null, 2));
  const reportPath = process.env.APL_MERGE_BENCH_REPORT;
  if (reportPath) writeFileSync(reportPath, JSON.stringify(report, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
