/**
 * APL ablation: one knob at a time around a baseline APL setting, scored by mean validation
 * accuracy over the zoo's tasks (seed 0). Uses the row-level importance analyses that
 * `apl-merge bench` saved under ZOO/bench-work/importance.
 *
 *   node dist/bench/apl-ablation.js ZOO_DIR
 */
import { useBackend } from '../src/engine/tensors/backend';
import { meanAccuracy, mergeZoo, openZoo, savedImportance } from './lib/zoo-apl';

const BASELINE = 'density: 0.5';
const VARIANTS = [
  '',
  'keep_temperature: 0.3',
  'keep_temperature: 3',
  'gradient_form: signed',
  'drop: deterministic',
  'competition: true',
  'competition: true, weight_temperature: 0.5',
  'combine: ties, normalize: true',
  'estimator: exact',
  'estimator: exact, metric: kl',
];

async function main(): Promise<void> {
  const zoo = openZoo(process.argv[2]);
  await useBackend();
  const lambda = +(1.0 / zoo.tasks.length).toFixed(3);
  console.log(`| APL setting (${BASELINE}, estimator: gradient, lambda: ${lambda}, plus) | mean validation accuracy |`);
  console.log('| --- | --- |');
  for (const variant of VARIANTS) {
    const estimator = variant.includes('estimator:') ? '' : 'estimator: gradient';
    const parameters = [BASELINE, estimator, `lambda: ${variant.includes('combine: ties') ? 0.8 : lambda}`, variant].filter(Boolean).join(', ');
    const { outDir } = await mergeZoo(zoo, parameters, (f) => ({ importance: savedImportance(zoo, f) }), 'ablation-merge');
    console.log(`| ${variant || '(baseline)'} | ${(await meanAccuracy(zoo, outDir, 'validation')).toFixed(1)} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
