/**
 * Where APL measures importance (locate: finetune, APL's definition, against locate: merged, on the
 * merged model), with one λ and with fitted coefficients: mean validation, test and out-of-domain
 * accuracy over the zoo's tasks (seed 0), with the partitions found harmful and the seconds the
 * preparation took. Importance is measured from each task's probe split (row level).
 *
 *   node dist/bench/apl-locate.js ZOO_DIR [VARIANT ...]
 */
import { join } from 'node:path';
import { useBackend } from '../src/engine/tensors/backend';
import { meanAccuracy, mergeZoo, openZoo } from './lib/zoo-apl';

const VARIANTS = [
  'density: 0.5',
  'density: 0.5, locate: merged',
  'density: 0.5, locate: merged, gradient_form: signed',
  'density: 0.5, locate: merged, gradient_form: signed, locate_iterations: 3',
  'density: 0.5, locate: merged, gradient_form: signed, keep_temperature: 0',
  'density: 0.8, locate: merged, gradient_form: signed',
  'density: 0.5, coefficients: fitted, fit_granularity: row',
  'density: 0.5, locate: merged, gradient_form: signed, coefficients: fitted, fit_granularity: row',
  'density: 0.8, locate: merged, gradient_form: signed, coefficients: fitted, fit_granularity: row',
];

interface Located {
  located?: { iterations: Array<{ harmfulPartitions: number[]; seconds: number }> };
}

async function main(): Promise<void> {
  const zoo = openZoo(process.argv[2]);
  const variants = process.argv.length > 3 ? process.argv.slice(3) : VARIANTS;
  await useBackend();
  const lambda = +(1.0 / zoo.tasks.length).toFixed(3);
  console.log(`| APL setting (estimator: gradient, level: row, lambda: ${lambda}, plus) | validation | test | OOD | harmful partitions (last pass, all tasks) | preparation s |`);
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const variant of variants) {
    const started = Date.now();
    // A variant may set its own lambda (or estimator); the defaults above fill in the rest.
    const defaults = [['estimator', 'gradient'], ['level', 'row'], ['lambda', String(lambda)]].filter(([key]) => !variant.includes(`${key}:`)).map(([key, value]) => `${key}: ${value}`);
    const { result, outDir } = await mergeZoo(zoo, [...defaults, variant].join(', '), (f) => ({ probe: join(zoo.dir, f.data) }), 'locate-merge');
    const seconds = (Date.now() - started) / 1000;
    const located = (result.preparation as Located | undefined)?.located;
    const harmful = located ? located.iterations[located.iterations.length - 1].harmfulPartitions.reduce((a, b) => a + b, 0) : undefined;
    const [validation, test, ood] = [await meanAccuracy(zoo, outDir, 'validation'), await meanAccuracy(zoo, outDir, 'test'), await meanAccuracy(zoo, outDir, 'ood')];
    console.log(`| ${variant} | ${validation.toFixed(1)} | ${test.toFixed(1)} | ${ood.toFixed(1)} | ${harmful ?? '—'} | ${seconds.toFixed(1)} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
