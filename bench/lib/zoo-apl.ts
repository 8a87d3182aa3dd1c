/** Shared by the APL ablations over a zoo: an APL merge of its fine-tunes from YAML, and the merged model's mean accuracy over its tasks. */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getSplit, loadTaskData, TaskData } from '../../src/engine/data/task-data';
import { loadModel } from '../../src/engine/families/model';
import { parseMergeConfig } from '../../src/engine/merge/config';
import { planMerge } from '../../src/engine/merge/plan';
import { MergeResult, runMerge } from '../../src/engine/merge/run';
import { evaluate } from '../../src/engine/train/evaluate';
import { ZooEntry, ZooManifest } from '../../src/engine/zoo/vision';

export interface Zoo {
  dir: string;
  manifest: ZooManifest;
  tasks: string[];
  data: TaskData[];
}

export function openZoo(directory: string): Zoo {
  const dir = resolve(directory);
  const manifest = JSON.parse(readFileSync(join(dir, 'zoo.json'), 'utf8')) as ZooManifest;
  return { dir, manifest, tasks: manifest.finetunes.map((f) => f.task), data: manifest.finetunes.map((f) => loadTaskData(join(dir, f.data))) };
}

/** The row-level importance `apl-merge bench` saved for a fine-tune under ZOO/bench-work/importance. */
export const savedImportance = (zoo: Zoo, finetune: ZooEntry) => join(zoo.dir, 'bench-work', 'importance', `${finetune.task}.safetensors`);

/** Merges the zoo's fine-tunes with APL (seed 0 unless given) into ZOO/bench-work/OUT: `parameters` is the YAML flow mapping's inside, `perModel` each fine-tune's parameters. */
export async function mergeZoo(zoo: Zoo, parameters: string, perModel: (finetune: ZooEntry) => Record<string, string>, out: string, seed = 0): Promise<{ result: MergeResult; outDir: string }> {
  const models = zoo.manifest.finetunes
    .map((f) => `  - model: ${JSON.stringify(join(zoo.dir, f.model))}\n    parameters: {${Object.entries(perModel(f)).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ')}}`)
    .join('\n');
  const text = `merge_method: apl\nbase_model: ${JSON.stringify(join(zoo.dir, zoo.manifest.base))}\nmodels:\n${models}\nparameters: {${parameters}}\nseed: ${seed}\n`;
  const outDir = join(zoo.dir, 'bench-work', out);
  return { result: await runMerge(planMerge(parseMergeConfig(text, out, zoo.dir)), outDir, { threads: 0, overwrite: true }), outDir };
}

/** The merged model's mean accuracy over the zoo's tasks on `split`, in percent. */
export async function meanAccuracy(zoo: Zoo, modelDir: string, split: string): Promise<number> {
  const merged = loadModel(modelDir);
  let sum = 0;
  for (const [i, task] of zoo.tasks.entries()) sum += (await evaluate(merged, task, getSplit(zoo.data[i], split))).accuracy;
  return (sum / zoo.tasks.length) * 100;
}
