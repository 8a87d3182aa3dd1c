/**
 * Row partitions (a weight's row and its bias: APL's hidden-state level) against unit partitions (a
 * hidden unit's incoming rows and bias together with the column of the weight that reads it, with
 * either rule for an entry two units share: `unit_overlap`), for the same APL settings: mean validation, test and out-of-domain accuracy over the zoo's tasks,
 * over merge seeds (default 0, 1, 2). Each setting gets the benchmark's λ grid for task-vector sums
 * (0.6, 1.0, 1.4 over the number of tasks; settings that fit coefficients start at the middle one)
 * and keeps, per seed, the λ that is best on validation, as `apl-merge bench` does. Importance is
 * measured once per fine-tune and level from its probe split (both estimators) and saved under
 * ZOO/bench-work/units-importance; the table before the results says how well the gradient ranks
 * partitions against exact intervention at each level.
 *
 *   node dist/bench/apl-units.js ZOO_DIR [--seeds 0,1,2] [--no-exact] [SETTING ...]
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { analyseImportance } from '../src/engine/apl/analysis';
import { saveImportance } from '../src/engine/apl/artifact';
import { PartitionLevel } from '../src/engine/apl/partitions';
import { spearman } from '../src/engine/benchmark/merging';
import { useBackend } from '../src/engine/tensors/backend';
import { meanAccuracy, mergeZoo, openZoo, Zoo } from './lib/zoo-apl';

/** Settings beside `level:`; `importance` reads the saved analysis, `probe` the fine-tune's probe split. */
const SETTINGS = [
  'estimator: gradient, density: 0.5',
  'estimator: gradient, density: 0.2',
  'estimator: gradient, density: 0.5, keep_temperature: 0',
  'estimator: exact, density: 0.5',
  'estimator: gradient, density: 0.8, locate: merged, gradient_form: signed, keep_temperature: 0',
  'estimator: gradient, density: 0.5, coefficients: fitted',
  'estimator: gradient, density: 0.8, combine: regmean',
];
const LEVELS: PartitionLevel[] = ['row', 'unit'];
/** The partitions compared: rows, and units with each rule for the entries two units share. */
const PARTITIONINGS = [
  { label: 'row', level: 'row' as const, parameters: 'level: row' },
  { label: 'unit, √(r·c)', level: 'unit' as const, parameters: 'level: unit, unit_overlap: geometric' },
  { label: 'unit, (r + c) / 2', level: 'unit' as const, parameters: 'level: unit, unit_overlap: mean' },
];

const importancePath = (zoo: Zoo, level: PartitionLevel, task: string) => join(zoo.dir, 'bench-work', 'units-importance', level, `${task}.safetensors`);

/** Both estimators at each level for every fine-tune, saved; prints the gradient's fidelity. */
async function measureImportance(zoo: Zoo, exact: boolean): Promise<void> {
  console.log('| level | partitions per fine-tune | exact s (all fine-tunes) | gradient s | Spearman ρ, gradient vs exact (mean over fine-tunes) |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const level of LEVELS) {
    let exactSeconds = 0;
    let gradientSeconds = 0;
    const rhos: number[] = [];
    let partitions = 0;
    for (const finetune of zoo.manifest.finetunes) {
      const analysis = await analyseImportance({ basePath: join(zoo.dir, zoo.manifest.base), modelPath: join(zoo.dir, finetune.model), probePath: join(zoo.dir, finetune.data), level, estimator: exact ? 'both' : 'gradient' });
      mkdirSync(dirname(importancePath(zoo, level, finetune.task)), { recursive: true });
      saveImportance(importancePath(zoo, level, finetune.task), analysis.scheme, { task: analysis.task, model: finetune.model, base: zoo.manifest.base, scores: analysis.scores, metadata: { probe_examples: String(analysis.probeExamples) } });
      exactSeconds += analysis.exactSeconds ?? 0;
      gradientSeconds += analysis.gradientSeconds ?? 0;
      partitions = analysis.scheme.count;
      if (analysis.scores.loss_increase) rhos.push(spearman(analysis.scores.loss_increase, analysis.scores.gradient_signed!));
    }
    const rho = rhos.length > 0 ? (rhos.reduce((a, b) => a + b, 0) / rhos.length).toFixed(3) : '—';
    console.log(`| ${level} | ${partitions} | ${exact ? exactSeconds.toFixed(1) : '—'} | ${gradientSeconds.toFixed(2)} | ${rho} |`);
  }
  console.log('');
}

const meanAndSpread = (values: number[]) => {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const spread = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
  return `${mean.toFixed(1)} ± ${spread.toFixed(1)}`;
};

async function main(): Promise<void> {
  const args = process.argv.slice(3);
  const noExact = args.includes('--no-exact');
  const seedsAt = args.indexOf('--seeds');
  const seeds = seedsAt >= 0 ? args[seedsAt + 1].split(',').map(Number) : [0, 1, 2];
  const given = args.filter((a, i) => a !== '--no-exact' && a !== '--seeds' && i !== seedsAt + 1);
  const zoo = openZoo(process.argv[2]);
  const settings = (given.length > 0 ? given : SETTINGS).filter((s) => !(noExact && s.includes('estimator: exact')));
  await useBackend();
  await measureImportance(zoo, !noExact);
  const lambdas = [0.6, 1.0, 1.4].map((x) => +(x / zoo.tasks.length).toFixed(3));
  console.log(`| APL setting | partitions | λ chosen (per seed) | validation | test | OOD | s per merge (preparation included) |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const setting of settings) {
    const fitted = setting.includes('coefficients: fitted');
    const needsProbe = fitted || setting.includes('locate: merged') || setting.includes('combine: regmean');
    const located = setting.includes('locate: merged');
    for (const { label, level, parameters } of PARTITIONINGS) {
      const chosen: number[] = [];
      const scores = { validation: [] as number[], test: [] as number[], ood: [] as number[] };
      let seconds = 0;
      for (const seed of seeds) {
        let best: { lambda: number; validation: number; outDir: string } | undefined;
        for (const lambda of fitted ? [lambdas[1]] : lambdas) {
          const started = Date.now();
          const { outDir } = await mergeZoo(
            zoo,
            `${parameters}, lambda: ${lambda}, ${setting}`,
            (f) => ({ ...(located ? {} : { importance: importancePath(zoo, level, f.task) }), ...(needsProbe ? { probe: join(zoo.dir, f.data) } : {}) }),
            `units-${level}-${lambda}`,
            seed,
          );
          seconds += (Date.now() - started) / 1000;
          const validation = await meanAccuracy(zoo, outDir, 'validation');
          if (!best || validation > best.validation) best = { lambda, validation, outDir };
        }
        chosen.push(best!.lambda);
        scores.validation.push(best!.validation);
        scores.test.push(await meanAccuracy(zoo, best!.outDir, 'test'));
        scores.ood.push(await meanAccuracy(zoo, best!.outDir, 'ood'));
      }
      const merges = seeds.length * (fitted ? 1 : lambdas.length);
      console.log(`| ${setting} | ${label} | ${chosen.join(', ')} | ${meanAndSpread(scores.validation)} | ${meanAndSpread(scores.test)} | ${meanAndSpread(scores.ood)} | ${(seconds / merges).toFixed(1)} |`);
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
