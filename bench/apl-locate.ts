/**
 * Where APL measures importance — on each fine-tune alone (locate: finetune, APL's definition) or
 * on the merged model (locate: merged) — and how it keeps what it found: mean validation, test
 * and out-of-domain accuracy over the zoo's tasks (seed 0). Each variant gets the benchmark's λ
 * grid for task-vector sums (0.6, 1.0, 1.4 over the number of tasks) and keeps the λ that is best on
 * validation, as `apl-merge bench` does. Importance is measured from each task's probe split at
 * row level; the merge's preparation (importance, locating) is timed.
 *
 *   node dist/bench/apl-locate.js ZOO_DIR [--no-exact] [VARIANT ...]
 */
import { join } from 'node:path';
import { useBackend } from '../src/engine/tensors/backend';
import { meanAccuracy, mergeZoo, openZoo } from './lib/zoo-apl';

const VARIANTS = [
  'density: 0.5',
  'density: 0.5, keep_temperature: 0',
  'density: 1',
  'density: 0.5, locate: merged, gradient_form: signed, keep_temperature: 0',
  'density: 0.8, locate: merged, gradient_form: signed, keep_temperature: 0',
  'density: 0.8, locate: merged, gradient_form: signed, keep_temperature: 1',
  'density: 0.8, locate: merged, keep_temperature: 0',
  'density: 0.8, locate: merged, estimator: exact, keep_temperature: 0',
  'density: 0.8, locate: merged, gradient_form: signed, keep_temperature: 0, locate_iterations: 2',
  'locate: merged, gradient_form: signed, keep_rule: helpful',
  'locate: merged, gradient_form: signed, keep_rule: owner',
];

interface Located {
  located?: { iterations: Array<{ harmfulPartitions: number[]; seconds: number }> };
}

async function main(): Promise<void> {
  const args = process.argv.slice(3);
  const noExact = args.includes('--no-exact');
  const given = args.filter((a) => a !== '--no-exact');
  const zoo = openZoo(process.argv[2]);
  const variants = (given.length > 0 ? given : VARIANTS).filter((v) => !(noExact && v.includes('estimator: exact')));
  await useBackend();
  const lambdas = [0.6, 1.0, 1.4].map((x) => +(x / zoo.tasks.length).toFixed(3));
  console.log(`| APL setting (estimator: gradient, level: row, plus) | λ chosen | validation | test | OOD | harmful contributions found (of ${zoo.tasks.length} × partitions) | locating s |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const variant of variants) {
    let best: { lambda: number; validation: number; outDir: string; harmful?: number; seconds?: number } | undefined;
    for (const lambda of lambdas) {
      // A variant may name its own estimator; the defaults fill in the rest.
      const defaults = variant.includes('estimator:') ? '' : 'estimator: gradient, ';
      const { result, outDir } = await mergeZoo(zoo, `${defaults}level: row, lambda: ${lambda}, ${variant}`, (f) => ({ probe: join(zoo.dir, f.data) }), `locate-${lambda}`);
      const validation = await meanAccuracy(zoo, outDir, 'validation');
      const iterations = (result.preparation as Located | undefined)?.located?.iterations;
      if (!best || validation > best.validation) {
        best = { lambda, validation, outDir, harmful: iterations?.at(-1)!.harmfulPartitions.reduce((a, b) => a + b, 0), seconds: iterations?.reduce((sum, i) => sum + i.seconds, 0) };
      }
    }
    const [test, ood] = [await meanAccuracy(zoo, best!.outDir, 'test'), await meanAccuracy(zoo, best!.outDir, 'ood')];
    console.log(`| ${variant} | ${best!.lambda} | ${best!.validation.toFixed(1)} | ${test.toFixed(1)} | ${ood.toFixed(1)} | ${best!.harmful ?? '—'} | ${best!.seconds?.toFixed(1) ?? '—'} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
