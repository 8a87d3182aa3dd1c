/**
 * APL with fitted coefficients (coefficients: fitted) against the same APL with one λ, and the
 * fit without APL's drops (density 1: task arithmetic with fitted coefficients): mean validation
 * and test accuracy over the zoo's tasks (seed 0), with the probe loss before and after the fit.
 * Uses the row-level importance analyses that `apl-merge bench` saved under ZOO/bench-work/importance.
 *
 *   node dist/bench/apl-fit.js ZOO_DIR [VARIANT ...]
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
  const zoo = resolve(process.argv[2]);
  const variants = process.argv.length > 3 ? process.argv.slice(3) : VARIANTS;
  await useBackend();
  const manifest = JSON.parse(readFileSync(join(zoo, 'zoo.json'), 'utf8')) as ZooManifest;
  const tasks = manifest.finetunes.map((f) => f.task);
  const lambda = +(1.0 / tasks.length).toFixed(3);
  const data = manifest.finetunes.map((f) => loadTaskData(join(zoo, f.data)));
  console.log(`| APL setting (estimator: gradient, level: row, lambda: ${lambda}, plus) | mean validation accuracy | mean test accuracy | probe loss at λ → fitted | fit s |`);
  console.log('| --- | --- | --- | --- | --- |');
  for (const variant of variants) {
    const models = manifest.finetunes
      .map((f) => `  - model: ${JSON.stringify(join(zoo, f.model))}\n    parameters: {importance: ${JSON.stringify(join(zoo, 'bench-work', 'importance', `${f.task}.safetensors`))}, probe: ${JSON.stringify(join(zoo, f.data))}}`)
      .join('\n');
    const text = `merge_method: apl\nbase_model: ${JSON.stringify(join(zoo, manifest.base))}\nmodels:\n${models}\nparameters: {estimator: gradient, level: row, lambda: ${lambda}, ${variant}}\nseed: 0\n`;
    const out = join(zoo, 'bench-work', 'fit-merge');
    const result = await runMerge(planMerge(parseMergeConfig(text, 'apl-fit', zoo)), out, { threads: 0, overwrite: true });
    const merged = loadModel(out);
    const mean = async (split: string) => {
      let sum = 0;
      for (const [i, t] of tasks.entries()) sum += (await evaluate(merged, t, getSplit(data[i], split))).accuracy;
      return ((sum / tasks.length) * 100).toFixed(1);
    };
    const fit = (result.preparation as { fit?: { probeLossAtLambda: number; probeLossFitted: number; used: boolean; seconds: number } } | undefined)?.fit;
    console.log(`| ${variant} | ${await mean('validation')} | ${await mean('test')} | ${fit ? `${fit.probeLossAtLambda.toFixed(3)} → ${fit.probeLossFitted.toFixed(3)}${fit.used ? '' : ' (not used)'}` : '—'} | ${fit ? fit.seconds.toFixed(1) : '—'} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
