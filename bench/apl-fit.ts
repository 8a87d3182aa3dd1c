/**
 * APL with fitted coefficients (coefficients: fitted) against the same APL with one λ, and the
 * fit without APL's drops (density 1: task arithmetic with fitted coefficients): mean validation
 * and test accuracy over the zoo's tasks (seed 0), with the probe loss before and after the fit.
 * Uses the row-level importance analyses that `apl-merge bench` saved under ZOO/bench-work/importance.
 *
 *   node dist/bench/apl-fit.js ZOO_DIR [VARIANT ...]
 */
import { join } from 'node:path';
import { useBackend } from '../src/engine/tensors/backend';
import { meanAccuracy, mergeZoo, openZoo, savedImportance } from './lib/zoo-apl';

const VARIANTS = [
  'density: 0.5',
  'density: 0.5, coefficients: fitted',
  'density: 0.5, coefficients: fitted, fit_learning_rate: 0.03',
  'density: 0.5, coefficients: fitted, fit_steps: 300',
  'density: 0.2, coefficients: fitted',
  'density: 0.8, coefficients: fitted',
  'density: 1, coefficients: fitted',
];

async function main(): Promise<void> {
  const zoo = openZoo(process.argv[2]);
  const variants = process.argv.length > 3 ? process.argv.slice(3) : VARIANTS;
  await useBackend();
  const lambda = +(1.0 / zoo.tasks.length).toFixed(3);
  console.log(`| APL setting (estimator: gradient, level: row, lambda: ${lambda}, plus) | mean validation accuracy | mean test accuracy | probe loss at λ → fitted | fit s |`);
  console.log('| --- | --- | --- | --- | --- |');
  for (const variant of variants) {
    const { result, outDir } = await mergeZoo(zoo, `estimator: gradient, level: row, lambda: ${lambda}, ${variant}`, (f) => ({ importance: savedImportance(zoo, f), probe: join(zoo.dir, f.data) }), 'fit-merge');
    const fit = (result.preparation as { fit?: { probeLossAtLambda: number; probeLossFitted: number; used: boolean; seconds: number } } | undefined)?.fit;
    const [validation, test] = [await meanAccuracy(zoo, outDir, 'validation'), await meanAccuracy(zoo, outDir, 'test')];
    console.log(`| ${variant} | ${validation.toFixed(1)} | ${test.toFixed(1)} | ${fit ? `${fit.probeLossAtLambda.toFixed(3)} → ${fit.probeLossFitted.toFixed(3)}${fit.used ? '' : ' (not used)'}` : '—'} | ${fit ? fit.seconds.toFixed(1) : '—'} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
