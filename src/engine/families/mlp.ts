/**
 * The MLP classifier: trunk.layers.i (Linear + ReLU) on flattened 28×28 images scaled to [0, 1],
 * then heads.<task> (Linear) per task. Weights are stored [out, in] like PyTorch's nn.Linear.
 */
import * as tf from '@tensorflow/tfjs';
import { TaskSplit } from '../data/task-data';
import { productTransposed } from './products';
import { Random } from '../kernels/random';
import { FamilyConfig, ModelFamily, ParamLookup, Stage, TensorShape } from './types';

export interface MlpConfig extends FamilyConfig {
  family: 'mlp';
  inputSize: number;
  hiddenSizes: number[];
}

function fail(file: string, field: string, reason: string): never {
  throw new Error(`${file}: ${field}: ${reason}`);
}

function positiveInteger(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0;
}

export function parseTasks(json: Record<string, unknown>, file: string): Record<string, number> {
  const tasks = json.tasks;
  if (typeof tasks !== 'object' || tasks === null || Array.isArray(tasks)) return fail(file, 'tasks', 'must map task names to class counts');
  for (const [task, classes] of Object.entries(tasks)) {
    if (!/^[A-Za-z0-9_-]+$/.test(task)) fail(file, `tasks.${task}`, 'task names use letters, digits, _ and - only');
    if (!positiveInteger(classes) || classes < 2) fail(file, `tasks.${task}`, `class count ${JSON.stringify(classes)} is not an integer ≥ 2`);
  }
  return tasks as Record<string, number>;
}

/** He-uniform initialisation, seeded per tensor. */
export function heUniform(values: Float32Array, fanIn: number, random: Random): Float32Array {
  const limit = Math.sqrt(6 / fanIn);
  for (let i = 0; i < values.length; i++) values[i] = (random.nextFloat() * 2 - 1) * limit;
  return values;
}

export const mlpFamily: ModelFamily<MlpConfig> = {
  name: 'mlp',
  parseConfig(json, file) {
    if (!positiveInteger(json.input_size)) fail(file, 'input_size', 'must be a positive integer');
    const hidden = json.hidden_sizes;
    if (!Array.isArray(hidden) || hidden.length === 0 || !hidden.every(positiveInteger)) fail(file, 'hidden_sizes', 'must be a non-empty list of positive integers');
    return { family: 'mlp', inputSize: json.input_size as number, hiddenSizes: hidden as number[], tasks: parseTasks(json, file) };
  },
  configJson(config) {
    return {
      model_type: 'apl-mlp',
      architectures: ['AplMlpForMultiTaskClassification'],
      apl_family: 'mlp',
      input_size: config.inputSize,
      hidden_sizes: config.hiddenSizes,
      tasks: config.tasks,
    };
  },
  trunkShapes(config) {
    const shapes: TensorShape[] = [];
    let fanIn = config.inputSize;
    config.hiddenSizes.forEach((width, i) => {
      shapes.push({ name: `trunk.layers.${i}.weight`, shape: [width, fanIn] }, { name: `trunk.layers.${i}.bias`, shape: [width] });
      fanIn = width;
    });
    return shapes;
  },
  headShapes(config, task) {
    const classes = config.tasks[task];
    const width = config.hiddenSizes[config.hiddenSizes.length - 1];
    return [
      { name: `heads.${task}.weight`, shape: [classes, width] },
      { name: `heads.${task}.bias`, shape: [classes] },
    ];
  },
  isHeadTensor(name) {
    return name.startsWith('heads.');
  },
  initTrunk(config, seed) {
    const values = new Map<string, Float32Array>();
    for (const { name, shape } of this.trunkShapes(config)) {
      const size = shape.reduce((a, b) => a * b, 1);
      values.set(name, name.endsWith('.bias') ? new Float32Array(size) : heUniform(new Float32Array(size), shape[1], new Random(seed, name)));
    }
    return values;
  },
  initHead(config, task, seed) {
    const values = new Map<string, Float32Array>();
    for (const { name, shape } of this.headShapes(config, task)) {
      const size = shape.reduce((a, b) => a * b, 1);
      values.set(name, name.endsWith('.bias') ? new Float32Array(size) : heUniform(new Float32Array(size), shape[1], new Random(seed, name)).map((v) => v * 0.5));
    }
    return values;
  },
  hiddenUnits(config) {
    // Each hidden layer's outputs are read by the next; the last one's by the task heads, which are not merged.
    const last = config.hiddenSizes.length - 1;
    return config.hiddenSizes.map((_, i) => ({ producers: [`trunk.layers.${i}.weight`], ...(i < last ? { consumer: `trunk.layers.${i + 1}.weight` } : {}) }));
  },
  stages(config): Stage[] {
    return config.hiddenSizes.map((_, i) => ({
      tensors: [`trunk.layers.${i}.weight`, `trunk.layers.${i}.bias`],
      apply: (params: ParamLookup, x: tf.Tensor) =>
        tf.relu(tf.add(productTransposed(x, params(`trunk.layers.${i}.weight`)), params(`trunk.layers.${i}.bias`))),
      linear: { weight: `trunk.layers.${i}.weight`, bias: `trunk.layers.${i}.bias`, activation: (pre: tf.Tensor) => tf.relu(pre), activationName: 'relu' },
    }));
  },
  head(config, task, params, features) {
    if (!(task in config.tasks)) throw new Error(`the model has no head for task "${task}" (heads: ${Object.keys(config.tasks).join(', ')})`);
    return tf.add(productTransposed(features, params(`heads.${task}.weight`)), params(`heads.${task}.bias`));
  },
  linearHead(_config, task) {
    return { weight: `heads.${task}.weight`, bias: `heads.${task}.bias`, activation: (pre: tf.Tensor) => pre, activationName: 'identity' };
  },
  inputsProblem(config, split: TaskSplit, source) {
    const size = split.exampleShape.reduce((a, b) => a * b, 1);
    if (!(split.inputs instanceof Uint8Array) || size !== config.inputSize) {
      return `${source}: examples of shape ${JSON.stringify(split.exampleShape)} (${split.inputs instanceof Uint8Array ? 'U8' : 'I32'}) do not fit the MLP's input of ${config.inputSize} pixels`;
    }
    return undefined;
  },
  inputs(config, split: TaskSplit, indices, source) {
    const problem = this.inputsProblem(config, split, source);
    if (problem) throw new Error(problem);
    const size = config.inputSize;
    const images = split.inputs;
    const pixels = new Float32Array(indices.length * size);
    for (let i = 0; i < indices.length; i++) {
      const offset = indices[i] * size;
      for (let j = 0; j < size; j++) pixels[i * size + j] = images[offset + j] / 255;
    }
    return tf.tensor2d(pixels, [indices.length, size]);
  },
};
