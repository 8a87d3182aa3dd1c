/**
 * Supervised training of a family's trunk and heads with Adam, seeded: the batches drawn and the
 * initial heads depend only on the seed. Used to build the zoo (pretraining and fine-tuning).
 */
import * as tf from '@tensorflow/tfjs';
import { TaskSplit } from '../data/task-data';
import { throwIfAborted } from '../errors';
import { Model } from '../families/model';
import { logits, ParamLookup, requireHead, scoredLogits, scoredTargets } from '../families/types';
import { Random } from '../kernels/random';
import { ProgressCallback, ProgressTracker } from '../progress';

export interface TrainingTask {
  task: string;
  split: TaskSplit;
}

export interface TrainOptions {
  steps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** Parameter names to update; the rest stay fixed. */
  trainable: string[];
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

/**
 * Mean cross-entropy of `task`'s head on the examples `indices` of `split` (at the positions its
 * labels score, for token labels), differentiable in whatever tensors `lookup` returns.
 */
export function supervisedLoss(model: Pick<Model, 'family' | 'config' | 'path'>, lookup: ParamLookup, split: TaskSplit, indices: Int32Array, task: string): tf.Scalar {
  const { family, config } = model;
  const input = family.inputs(config, split, indices, task);
  const targets = scoredTargets(split, indices);
  const labels = tf.oneHot(tf.tensor1d(targets.labels, 'int32'), requireHead(config, task, model.path));
  return tf.losses.softmaxCrossEntropy(labels, scoredLogits(logits(family, config, lookup, input, task), targets)) as tf.Scalar;
}

/**
 * The mean Shannon entropy of the model's predictions on the split's examples (at the positions a
 * language model's task scores): AdaMerging's unsupervised objective. The label values are not read.
 */
export function predictionEntropy(model: Pick<Model, 'family' | 'config' | 'path'>, lookup: ParamLookup, split: TaskSplit, indices: Int32Array, task: string): tf.Scalar {
  const { family, config } = model;
  const input = family.inputs(config, split, indices, task);
  const scored = scoredLogits(logits(family, config, lookup, input, task), scoredTargets(split, indices));
  const logProbabilities = tf.logSoftmax(scored);
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.exp(logProbabilities), logProbabilities), -1))) as tf.Scalar;
}

/** Trains in place: `model.params` holds the trained values afterwards. Tasks take turns per step. */
export async function train(model: Model, tasks: TrainingTask[], options: TrainOptions): Promise<{ finalLoss: number }> {
  const variables = new Map<string, tf.Variable>();
  const constants = new Map<string, tf.Tensor>();
  for (const [name, values] of model.params) {
    const tensor = tf.tensor(values, model.shapes.get(name)!);
    if (options.trainable.includes(name)) {
      variables.set(name, tf.variable(tensor, true, `${name}`));
      tensor.dispose();
    } else constants.set(name, tensor);
  }
  const lookup = (name: string): tf.Tensor => variables.get(name) ?? constants.get(name)!;
  const optimizer = tf.train.adam(options.learningRate);
  const random = new Random(options.seed, 'batches');
  const progress = new ProgressTracker('train', options.steps, options.onProgress);
  let finalLoss = NaN;
  try {
    for (let step = 0; step < options.steps; step++) {
      throwIfAborted(options.signal);
      const { task, split } = tasks[step % tasks.length];
      const indices = new Int32Array(options.batchSize);
      for (let i = 0; i < indices.length; i++) indices[i] = random.nextUint32() % split.count;
      const loss = optimizer.minimize(() => supervisedLoss(model, lookup, split, indices, task), true, [...variables.values()]);
      if (step === options.steps - 1 || step % 25 === 0) {
        finalLoss = (await (loss as tf.Scalar).data())[0];
        progress.report(step + 1, `${task} loss ${finalLoss.toFixed(4)}`);
      }
      loss?.dispose();
    }
    for (const [name, variable] of variables) model.params.set(name, Float32Array.from(await variable.data()));
  } finally {
    optimizer.dispose();
    for (const t of [...variables.values(), ...constants.values()]) t.dispose();
  }
  return { finalLoss };
}
