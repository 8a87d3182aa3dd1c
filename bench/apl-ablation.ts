/**
 * APL ablation: one knob at a time around a baseline APL setting, scored by mean validation
 * accuracy over the zoo's tasks (seed 0). Uses the row-level importance analyses that
 * `apl-merge bench` saved under ZOO/bench-work/importance.
 *
 *   node dist/bench/apl-ablation.js ZOO_DIR
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getSplit, loadTaskData } from '../src/engine/data/task-data';
import { loadModel } from '../src/engine/families/model';
import { parseMergeConfig } from '../src/engine/merge/config';
import { planMerge } from '../src/engine/merge/plan';
import { runMerge } from '../src/engine/merge/run';
import { useBackend } from '../src/engine/tensors/backend';
import { evaluate } from '../src/engine/train/evaluate';
import { ZooManifest } from '../src/engine/zoo/vision';

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
  const zoo = resolve(process.argv[2]);
  await useBackend();
  const manifest = JSON.parse(readFileSync(join(zoo, 'zoo.json'), 'utf8')) as ZooManifest;
  const tasks = manifest.finetunes.map((f) => f.task);
  const lambda = +(1.0 / tasks.length).toFixed(3);
  const validation = manifest.finetunes.map((f) => getSplit(loadTaskData(join(zoo, f.data)), 'validation'));
  console.log(`| APL setting (${BASELINE}, estimator: gradient, lambda: ${lambda}, plus) | mean validation accuracy |`);
  console.log('| --- | --- |');
  for (const variant of VARIANTS) {
    const estimator = variant.includes('estimator:') ? '' : 'estimator: gradient';
    const parameters = [BASELINE, estimator, `lambda: ${variant.includes('combine: ties') ? 0.8 : lambda}`, variant].filter(Boolean).join(', ');
    const models = manifest.finetunes
      .map((f) => `  - model: ${JSON.stringify(join(zoo, f.model))}\n    parameters: {importance: ${JSON.stringify(join(zoo, 'bench-work', 'importance', `${f.task}.safetensors`))}}`)
      .join('\n');
    const text = `merge_method: apl\nbase_model: ${JSON.stringify(join(zoo, manifest.base))}\nmodels:\n${models}\nparameters: {${parameters}}\nseed: 0\n`;
    const out = join(zoo, 'bench-work', 'ablation-merge');
    await runMerge(planMerge(parseMergeConfig(text, 'ablation', zoo)), out, { threads: 0, overwrite: true });
    const merged = loadModel(out);
    const accuracy: number[] = [];
    for (const [i, t] of tasks.entries()) accuracy.push((await evaluate(merged, t, validation[i])).accuracy);
    console.log(`| ${variant || '(baseline)'} | ${((accuracy.reduce((a, b) => a + b, 0) / tasks.length) * 100).toFixed(1)} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
