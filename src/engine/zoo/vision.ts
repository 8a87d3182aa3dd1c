/**
 * The vision zoo: homologous MLPs we train ourselves (no pretrained weights are reachable).
 * A base trunk is pretrained on a broad mixture (digits, plus Fashion-MNIST in the full zoo);
 * each fine-tune starts from it, gets a fresh head, and trains trunk and head on one task.
 * Everything is seeded: the same seed builds the same bytes.
 *
 * Layout of OUT: base/, finetunes/<task>/, tasks/<task>.safetensors, zoo.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveTaskData, TaskSplit } from '../data/task-data';
import { buildTaskSplits, IMAGE_SIDE, loadFashionMnist, loadMnist, SplitSizes, VISION_TASKS, VisionSource, VisionTaskDef } from '../data/vision';
import { throwIfAborted } from '../errors';
import { MlpConfig, mlpFamily } from '../families/mlp';
import { Model, modelOf, saveModel } from '../families/model';
import { ModelFamily } from '../families/types';
import { useBackend } from '../tensors/backend';
import { evaluate } from '../train/evaluate';
import { train } from '../train/train';
import { ProgressCallback } from '../progress';

export interface ZooScale {
  tasks: string[];
  pretrainTasks: string[];
  hiddenSizes: number[];
  sizes: SplitSizes;
  pretrainSteps: number;
  finetuneSteps: number;
  batchSize: number;
  learningRate: number;
}

export const VISION_SCALES: Record<'quick' | 'full', ZooScale> = {
  quick: {
    tasks: ['digits', 'digits_rotated', 'digits_inverted', 'digit_parity'],
    pretrainTasks: ['digits'],
    hiddenSizes: [64, 64],
    sizes: { train: 6000, probe: 64, validation: 500, test: 1000, ood: 1000 },
    pretrainSteps: 300,
    finetuneSteps: 200,
    batchSize: 64,
    learningRate: 2e-3,
  },
  full: {
    tasks: ['digits', 'digits_rotated', 'digits_inverted', 'digit_parity', 'digit_high', 'fashion', 'fashion_groups'],
    pretrainTasks: ['digits', 'fashion'],
    hiddenSizes: [256, 128],
    sizes: { train: 20000, probe: 128, validation: 2000, test: 4000, ood: 4000 },
    pretrainSteps: 1500,
    finetuneSteps: 1000,
    batchSize: 128,
    learningRate: 1e-3,
  },
};

export interface ZooEntry {
  task: string;
  classes: number;
  description: string;
  model: string;
  data: string;
  /** The fine-tune's own accuracy on its task: the oracle row of the benchmark. */
  accuracy: { validation: number; test: number; ood: number };
}

export interface ZooManifest {
  suite: string;
  seed: number;
  quick: boolean;
  family: string;
  backend: string;
  base: string;
  finetunes: ZooEntry[];
  scale: ZooScale | Record<string, unknown>;
  seconds: number;
}

export interface BuildZooOptions<S = ZooScale> {
  out: string;
  quick: boolean;
  seed: number;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Overrides the quick/full scale (tests use a tiny one). */
  scale?: S;
}

/** A fine-tune's accuracy on its own task's validation, test and OOD splits: the benchmark's oracle row. */
export async function ownAccuracy(model: Model, task: string, splits: Record<string, TaskSplit>): Promise<ZooEntry['accuracy']> {
  return {
    validation: (await evaluate(model, task, splits.validation)).accuracy,
    test: (await evaluate(model, task, splits.test)).accuracy,
    ood: (await evaluate(model, task, splits.ood)).accuracy,
  };
}

function taskDef(name: string): VisionTaskDef {
  const def = VISION_TASKS.find((t) => t.name === name);
  if (!def) throw new Error(`unknown vision task "${name}"`);
  return def;
}

export async function buildVisionZoo(options: BuildZooOptions): Promise<ZooManifest> {
  const started = Date.now();
  const backend = await useBackend();
  const scale = options.scale ?? VISION_SCALES[options.quick ? 'quick' : 'full'];
  const log = options.log ?? (() => undefined);
  const sources = new Map<string, VisionSource>();
  const source = (name: 'mnist' | 'fashion') => {
    if (!sources.has(name)) sources.set(name, name === 'mnist' ? loadMnist() : loadFashionMnist());
    return sources.get(name)!;
  };
  const allTasks = [...new Set([...scale.pretrainTasks, ...scale.tasks])];
  const splits = new Map<string, Record<string, TaskSplit>>();
  mkdirSync(join(options.out, 'tasks'), { recursive: true });
  for (const name of allTasks) {
    const def = taskDef(name);
    const built = buildTaskSplits(def, source(def.source), scale.sizes, options.seed);
    const asTaskSplits: Record<string, TaskSplit> = {};
    for (const [split, s] of Object.entries(built)) asTaskSplits[split] = { inputs: s.images, exampleShape: [IMAGE_SIDE, IMAGE_SIDE], labels: s.labels, count: s.count };
    splits.set(name, asTaskSplits);
    const { train: _train, ...evaluationSplits } = asTaskSplits;
    void _train;
    saveTaskData(join(options.out, 'tasks', `${name}.safetensors`), { name, classes: def.classes, description: def.description, seed: options.seed }, evaluationSplits);
  }

  const family = mlpFamily as ModelFamily<MlpConfig>;
  const baseConfig: MlpConfig = {
    family: 'mlp',
    inputSize: IMAGE_SIDE * IMAGE_SIDE,
    hiddenSizes: scale.hiddenSizes,
    tasks: Object.fromEntries(scale.pretrainTasks.map((t) => [`pretrain_${t}`, taskDef(t).classes])),
  };
  const baseParams = family.initTrunk(baseConfig, options.seed);
  for (const task of Object.keys(baseConfig.tasks)) for (const [n, v] of family.initHead(baseConfig, task, options.seed)) baseParams.set(n, v);
  const base = modelOf(family, baseConfig, baseParams);
  log(`pretraining the base on ${scale.pretrainTasks.join(' + ')} (${scale.pretrainSteps} steps)`);
  await train(
    base,
    scale.pretrainTasks.map((t) => ({ task: `pretrain_${t}`, split: splits.get(t)!.train })),
    { steps: scale.pretrainSteps, batchSize: scale.batchSize, learningRate: scale.learningRate, seed: options.seed, trainable: [...base.params.keys()], onProgress: options.onProgress, signal: options.signal },
  );
  saveModel(join(options.out, 'base'), base, { zoo_seed: String(options.seed) });

  const finetunes: ZooEntry[] = [];
  for (const task of scale.tasks) {
    throwIfAborted(options.signal);
    const def = taskDef(task);
    const config: MlpConfig = { ...baseConfig, tasks: { [task]: def.classes } };
    const params = new Map<string, Float32Array>();
    for (const { name } of family.trunkShapes(config)) params.set(name, base.params.get(name)!.slice());
    for (const [n, v] of family.initHead(config, task, options.seed)) params.set(n, v);
    const model = modelOf(family, config, params);
    log(`fine-tuning on ${task} (${scale.finetuneSteps} steps)`);
    await train(model, [{ task, split: splits.get(task)!.train }], {
      steps: scale.finetuneSteps,
      batchSize: scale.batchSize,
      learningRate: scale.learningRate,
      seed: options.seed + 1 + scale.tasks.indexOf(task),
      trainable: [...params.keys()],
      onProgress: options.onProgress,
      signal: options.signal,
    });
    const modelDir = join('finetunes', task);
    saveModel(join(options.out, modelDir), model, { zoo_seed: String(options.seed), task });
    const accuracy = await ownAccuracy(model, task, splits.get(task)!);
    log(`  ${task}: test ${(accuracy.test * 100).toFixed(1)}%, ood ${(accuracy.ood * 100).toFixed(1)}%`);
    finetunes.push({ task, classes: def.classes, description: def.description, model: modelDir, data: join('tasks', `${task}.safetensors`), accuracy });
  }
  const manifest: ZooManifest = {
    suite: 'vision',
    seed: options.seed,
    quick: options.quick,
    family: family.name,
    backend,
    base: 'base',
    finetunes,
    scale,
    seconds: (Date.now() - started) / 1000,
  };
  writeFileSync(join(options.out, 'zoo.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
