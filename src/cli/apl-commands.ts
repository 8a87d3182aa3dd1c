/** CLI commands that run models: zoo build, importance, bench, logits. Thin wrappers over the engine. */
import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { analyseImportance, wgslKernelMetadata } from '../engine/apl/analysis';
import { saveImportance } from '../engine/apl/artifact';
import { PartitionLevel } from '../engine/apl/partitions';
import { BenchmarkReport, runMergingBenchmark } from '../engine/benchmark/merging';
import { loadModel } from '../engine/families/model';
import { modelLogits, nestedLogits } from '../engine/families/model-logits';
import { parseBackend, useBackend } from '../engine/tensors/backend';
import { buildLmZoo } from '../engine/zoo/lm';
import { buildTextZoo } from '../engine/zoo/text';
import { buildVisionZoo } from '../engine/zoo/vision';
import { formatSeconds, terminalProgress } from './progress-bar';

export function defaultZooDirectory(suite: string, quick: boolean, seed: number): string {
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(cache, 'apl-merge', 'zoo', `${suite}-${quick ? 'quick' : 'full'}-seed${seed}`);
}

export async function zooBuildCommand(flags: { suite: string; out?: string; quick?: boolean; seed: string; backend: string }): Promise<void> {
  const seed = Number(flags.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got "${flags.seed}"`);
  const out = resolve(flags.out ?? defaultZooDirectory(flags.suite, flags.quick ?? false, seed));
  const backend = await useBackend(parseBackend(flags.backend));
  console.log(`building the ${flags.quick ? 'quick ' : ''}${flags.suite} zoo in ${out} (seed ${seed}, backend ${backend})`);
  const bar = terminalProgress();
  const build = flags.suite === 'text' ? buildTextZoo : flags.suite === 'lm' ? buildLmZoo : buildVisionZoo;
  const manifest = await build({ out, quick: flags.quick ?? false, seed, onProgress: bar.onProgress, log: (line) => console.log(line) });
  bar.done();
  console.log(`done in ${formatSeconds(manifest.seconds)}: base and ${manifest.finetunes.length} fine-tunes; manifest ${join(out, 'zoo.json')}`);
}

export async function importanceCommand(flags: { base: string; model: string; probe: string; task?: string; level: string; estimator: string; out: string; backend: string }): Promise<void> {
  const backend = await useBackend(parseBackend(flags.backend));
  const bar = terminalProgress();
  const estimator = flags.estimator === 'exact' || flags.estimator === 'gradient' ? flags.estimator : 'both';
  const analysis = await analyseImportance({ basePath: flags.base, modelPath: flags.model, probePath: flags.probe, task: flags.task, level: flags.level as PartitionLevel, estimator, onProgress: bar.onProgress });
  bar.done();
  const { scheme, scores, task } = analysis;
  const timings: Record<string, string> = {};
  if (analysis.exactSeconds !== undefined) {
    timings.exact_seconds = String(analysis.exactSeconds);
    console.log(`exact intervention: ${scheme.count} partitions in ${formatSeconds(analysis.exactSeconds)} (${(scheme.count / analysis.exactSeconds).toFixed(0)} partitions/s${analysis.unreadPartitions ? `, ${analysis.unreadPartitions} never read by the probe set` : ''}${analysis.unchangedPartitions ? `, ${analysis.unchangedPartitions} unchanged by the fine-tune` : ''}), clean loss ${analysis.cleanLoss!.toFixed(4)}`);
  }
  if (analysis.gradientSeconds !== undefined) {
    timings.gradient_seconds = String(analysis.gradientSeconds);
    console.log(`gradient approximation: ${scheme.count} partitions in ${formatSeconds(analysis.gradientSeconds)}`);
  }
  const kernels = wgslKernelMetadata(analysis);
  if (Object.keys(kernels).length > 0) console.log(`WGSL kernels: ${analysis.wgslKernels.exactPartitions} partitions of exact intervention${analysis.wgslKernels.gradient ? ', the gradient pass' : ''}`);
  const paths = saveImportance(flags.out, scheme, { task, model: resolve(flags.model), base: resolve(flags.base), scores, metadata: { backend, probe: resolve(flags.probe), probe_examples: String(analysis.probeExamples), ...timings, ...kernels } });
  const main = scores.loss_increase ?? scores.gradient_signed!;
  const top = Array.from(main.keys()).sort((a, b) => main[b] - main[a]).slice(0, 5);
  console.log(`most important partitions for ${task} (${scores.loss_increase ? 'loss increase' : '−g·δ'}):`);
  for (const k of top) console.log(`  ${scheme.names[k].padEnd(24)} ${main[k].toFixed(5)}`);
  console.log(`wrote ${paths.safetensors} and ${paths.summary} (backend ${backend})`);
}

export function formatReport(report: BenchmarkReport): string {
  const pct = (v: number) => (v * 100).toFixed(1);
  const tasks = Object.keys(report.rows[0].perTask);
  const lines = [
    `| method | avg test | avg normalized | avg OOD | ${tasks.map((t) => `${t} test / OOD`).join(' | ')} |`,
    `| --- | --- | --- | --- | ${tasks.map(() => '---').join(' | ')} |`,
    ...report.rows.map(
      (r) =>
        `| ${r.method} | ${pct(r.avgTest)} ± ${pct(r.avgTestSpread)} | ${pct(r.avgNormalized)} | ${pct(r.avgOod)} ± ${pct(r.avgOodSpread)} | ${tasks.map((t) => `${pct(r.perTask[t].test)} / ${pct(r.perTask[t].ood)}`).join(' | ')} |`,
    ),
  ];
  // A run of chosen rows that read no saved importance measures no fidelity.
  if (report.fidelity.length === 0) return lines.join('\n');
  lines.push(
    '',
    '| level | partitions | not run: never read / unchanged | Spearman ρ (pooled) | ρ per task (mean) | exact s | gradient s | exact / gradient | exact partitions/s | forward passes per partition | gradient, forward passes per task | gradient vs one forward pass per partition |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...report.fidelity.map(
      (f) =>
        `| ${f.level} | ${f.partitions} | ${f.unreadPartitions} / ${f.unchangedPartitions} | ${f.spearman.toFixed(3)} | ${typeof f.spearmanPerTask === 'number' && !Number.isNaN(f.spearmanPerTask) ? f.spearmanPerTask.toFixed(3) : '—'} | ${f.exactSeconds.toFixed(3)} | ${f.gradientSeconds.toFixed(3)} | ${f.timeRatio.toFixed(1)}× | ${f.exactPartitionsPerSecond.toFixed(0)} | ${f.forwardsPerPartition.toFixed(2)} | ${f.gradientForwardPasses.toFixed(1)} | ${f.gradientSpeedupAtOnePass.toFixed(0)}× |`,
    ),
  );
  return lines.join('\n');
}

export async function benchCommand(flags: { suite: string; zoo: string; out: string; seeds: string; backend: string; methods?: string; work?: string; levels?: string }): Promise<void> {
  const manifest = JSON.parse(readFileSync(join(flags.zoo, 'zoo.json'), 'utf8')) as { suite?: string };
  if (manifest.suite !== flags.suite) throw new Error(`${join(flags.zoo, 'zoo.json')}: a ${manifest.suite} zoo, but --suite is ${flags.suite}`);
  await useBackend(parseBackend(flags.backend));
  const seeds = flags.seeds.split(',').map((s) => Number(s.trim()));
  if (seeds.some((s) => !Number.isSafeInteger(s) || s < 0)) throw new Error(`--seeds must be non-negative integers, got "${flags.seeds}"`);
  const bar = terminalProgress();
  // Rows by name, separated by ';' (row names contain commas).
  const methods = flags.methods?.split(';').map((m) => m.trim()).filter((m) => m.length > 0);
  const levels = flags.levels?.split(',').map((l) => l.trim()).filter((l) => l.length > 0) as PartitionLevel[] | undefined;
  const report = await runMergingBenchmark({ zoo: flags.zoo, seeds, onProgress: bar.onProgress, log: (line) => console.log(line), methods, work: flags.work, levels });
  bar.done();
  writeFileSync(flags.out, JSON.stringify(report, null, 2) + '\n');
  console.log('');
  console.log(formatReport(report));
  console.log(`\nwrote ${flags.out} (${formatSeconds(report.seconds)})`);
}

export async function logitsCommand(model: string, flags: { tokens?: string; data?: string; split: string; count?: string; task?: string; json?: boolean; backend: string }): Promise<void> {
  if ((flags.tokens === undefined) === (flags.data === undefined)) throw new Error('give either --tokens FILE (token id sequences) or --data FILE (task data: the MLP takes images from it)');
  const count = flags.count === undefined ? undefined : Number(flags.count);
  if (count !== undefined && (!Number.isInteger(count) || count <= 0)) throw new Error(`--count must be a positive integer, got "${flags.count}"`);
  const backend = await useBackend(parseBackend(flags.backend));
  const loaded = loadModel(model);
  const input = flags.tokens !== undefined ? { tokensFile: flags.tokens } : { taskDataFile: flags.data!, split: flags.split, count };
  const result = await modelLogits(loaded, input, flags.task);
  if (flags.json) {
    console.log(JSON.stringify({ logits: nestedLogits(result) }));
    return;
  }
  const { shape, values } = result;
  const classes = shape[shape.length - 1];
  console.log(`${loaded.family.name} model ${model} (backend ${backend}): logits ${shape.join(' × ')}${loaded.config.languageModel ? ' (sequence × position × vocabulary)' : ` (example × class, head "${result.task}")`}`);
  const rows = values.length / classes;
  const perSequence = rows / shape[0];
  for (let b = 0; b < Math.min(shape[0], 8); b++) {
    // The prediction at the last position (a language model's next token) or the example's class.
    const at = (b * perSequence + perSequence - 1) * classes;
    let top = 0;
    for (let c = 1; c < classes; c++) if (values[at + c] > values[at + top]) top = c;
    console.log(`  ${loaded.config.languageModel ? `sequence ${b}: next token` : `example ${b}: class`} ${top} (logit ${values[at + top].toFixed(4)})`);
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) [min, max] = [Math.min(min, v), Math.max(max, v)];
  console.log(`  range ${min.toFixed(4)} … ${max.toFixed(4)}; --json prints them all`);
}
