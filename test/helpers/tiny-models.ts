/** Tiny MLP models and task data written to disk, for APL tests (16-pixel inputs, seconds to run). */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { saveTaskData, TaskSplit } from '../../src/engine/data/task-data';
import { MlpConfig, mlpFamily } from '../../src/engine/families/mlp';
import { Model, modelOf, saveModel } from '../../src/engine/families/model';
import { Random } from '../../src/engine/kernels/random';

export function tinyModel(config: MlpConfig, params: Map<string, Float32Array>, path = ''): Model {
  return modelOf(mlpFamily, config, params, path);
}

export interface TinyFamily {
  base: Model;
  finetunes: Model[];
  tasks: string[];
  probes: TaskSplit[];
  dataFiles: string[];
}

/** A base and fine-tunes (base + seeded deltas, own heads), written under `dir` when given. */
export function tinyFamily(options: { seed: number; tasks: Array<{ name: string; classes: number }>; hidden?: number[]; deltaScale?: number; dir?: string; probeSize?: number }): TinyFamily {
  if (options.dir) mkdirSync(options.dir, { recursive: true });
  const hidden = options.hidden ?? [8, 4];
  const baseConfig: MlpConfig = { family: 'mlp', inputSize: 16, hiddenSizes: hidden, tasks: { pretrain: 3 } };
  const baseParams = mlpFamily.initTrunk(baseConfig, options.seed);
  for (const [n, v] of mlpFamily.initHead(baseConfig, 'pretrain', options.seed)) baseParams.set(n, v);
  const base = tinyModel(baseConfig, baseParams, options.dir ? join(options.dir, 'base') : '');
  const finetunes: Model[] = [];
  const probes: TaskSplit[] = [];
  const dataFiles: string[] = [];
  options.tasks.forEach(({ name, classes }, t) => {
    const config: MlpConfig = { ...baseConfig, tasks: { [name]: classes } };
    const params = new Map<string, Float32Array>();
    const random = new Random(options.seed, `delta-${name}`);
    for (const { name: tensor } of mlpFamily.trunkShapes(config)) {
      params.set(tensor, baseParams.get(tensor)!.map((v) => v + (random.nextFloat() - 0.5) * (options.deltaScale ?? 0.2)));
    }
    for (const [n, v] of mlpFamily.initHead(config, name, options.seed + t + 1)) params.set(n, v.map((x) => x * 4));
    finetunes.push(tinyModel(config, params, options.dir ? join(options.dir, name) : ''));
    const count = options.probeSize ?? 24;
    const data = new Random(options.seed, `data-${name}`);
    const split: TaskSplit = {
      inputs: Uint8Array.from({ length: count * 16 }, () => data.nextUint32() % 256),
      exampleShape: [4, 4],
      labels: Int32Array.from({ length: count }, () => data.nextUint32() % classes),
      count,
    };
    probes.push(split);
    if (options.dir) {
      const file = join(options.dir, `${name}.safetensors`);
      saveTaskData(file, { name, classes, description: `tiny task ${name}`, seed: options.seed }, { probe: split, validation: split, test: split, ood: split });
      dataFiles.push(file);
    }
  });
  if (options.dir) {
    saveModel(base.path, base);
    finetunes.forEach((f) => saveModel(f.path, f));
  }
  return { base, finetunes, tasks: options.tasks.map((t) => t.name), probes, dataFiles };
}
