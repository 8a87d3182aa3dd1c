/**
 * An untrained zoo of wide MLPs, for timing APL scoring where the arithmetic outweighs per-call
 * latency (the trained quick zoo's 784→64→64 MLPs are too small to show what a GPU does). The base
 * is He-initialised and each fine-tune is the base plus small seeded deltas, with its own head;
 * probe images and labels are seeded noise. Same layout as `apl-merge zoo build` (zoo.json, base/,
 * finetunes/, tasks/), so bench/gpu-check.ts and scripts/gpu/torch-importance.py read it. The
 * scores mean nothing about any task; only their agreement across engines and their cost do.
 *
 *   node dist/bench/wide-zoo.js OUT_DIR [--width 1024] [--layers 2] [--examples 512] [--tasks 2] [--seed 1]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveTaskData } from '../src/engine/data/task-data';
import { Model, saveModel } from '../src/engine/families/model';
import { MlpConfig, mlpFamily } from '../src/engine/families/mlp';
import { Random } from '../src/engine/kernels/random';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

function model(config: MlpConfig, params: Map<string, Float32Array>): Omit<Model, 'path'> {
  const shapes = new Map([...mlpFamily.trunkShapes(config), ...Object.keys(config.tasks).flatMap((task) => mlpFamily.headShapes(config, task))].map((s) => [s.name, s.shape]));
  return { family: mlpFamily, config, params, shapes };
}

function main(): void {
  const out = process.argv[2];
  if (!out || out.startsWith('--')) throw new Error('usage: wide-zoo OUT_DIR [--width 1024] [--layers 2] [--examples 512] [--tasks 2] [--seed 1]');
  const [width, layers, examples, tasks, seed] = [flag('width', 1024), flag('layers', 2), flag('examples', 512), flag('tasks', 2), flag('seed', 1)];
  const classes = 10;
  const hiddenSizes = Array.from({ length: layers }, () => width);
  const baseConfig: MlpConfig = { family: 'mlp', inputSize: 784, hiddenSizes, tasks: { pretrain: classes } };
  const trunk = mlpFamily.initTrunk(baseConfig, seed);
  saveModel(join(out, 'base'), model(baseConfig, new Map([...trunk, ...mlpFamily.initHead(baseConfig, 'pretrain', seed)])));
  const finetunes = [];
  for (let t = 0; t < tasks; t++) {
    const task = `wide_${t}`;
    const config: MlpConfig = { ...baseConfig, tasks: { [task]: classes } };
    const random = new Random(seed, `deltas-${task}`);
    // Deltas about 5% of the weights' scale, as a fine-tune's are.
    const tuned = new Map([...trunk].map(([name, values]) => [name, values.map((v) => v + (random.nextFloat() - 0.5) * 0.1 * Math.abs(v) + (random.nextFloat() - 0.5) * 1e-3)]));
    saveModel(join(out, 'finetunes', task), model(config, new Map([...tuned, ...mlpFamily.initHead(config, task, seed + t + 1)])));
    const data = new Random(seed, `probe-${task}`);
    const inputs = Uint8Array.from({ length: examples * 784 }, () => Math.floor(data.nextFloat() * 256));
    const labels = Int32Array.from({ length: examples }, () => Math.floor(data.nextFloat() * classes));
    mkdirSync(join(out, 'tasks'), { recursive: true });
    saveTaskData(join(out, 'tasks', `${task}.safetensors`), { name: task, classes, description: 'seeded noise (timing only)', seed }, { probe: { inputs, exampleShape: [28, 28], labels, count: examples } });
    finetunes.push({ task, classes, description: 'seeded noise (timing only)', model: `finetunes/${task}`, data: `tasks/${task}.safetensors` });
  }
  const manifest = { suite: 'wide', seed, quick: true, family: 'mlp', backend: 'none (untrained)', base: 'base', finetunes, scale: { width, layers, examples }, seconds: 0 };
  writeFileSync(join(out, 'zoo.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(`wide zoo in ${out}: 784→${hiddenSizes.join('→')} MLPs, ${tasks} fine-tunes, ${examples} probe examples each`);
}

main();
