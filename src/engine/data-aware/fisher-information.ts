/**
 * The diagonal of a model's Fisher information over its trunk, on probe data (Matena & Raffel,
 * "Merging Models with Fisher-Weighted Averaging", arXiv 2111.09832): for each parameter,
 * the mean over examples of E_y[(∂ log p(y|x) / ∂θ)²].
 * - `expected`: y runs over every class, weighted by the model's own p(y|x) (the true Fisher, summed
 *   exactly rather than sampled: heads here have a handful of classes);
 * - `empirical`: y is the example's label (one backward pass per example, the cheaper proxy).
 * Per-example gradients need one backward pass per (example, class); the squares are summed on the
 * backend, and read back once per tensor at the end.
 */
import * as tf from '@tensorflow/tfjs';
import { MergeInputError } from '../errors';
import { throwIfAborted } from '../errors';
import { toTensors } from '../families/model';
import { logits, ParamLookup } from '../families/types';
import { ProgressCallback, ProgressTracker } from '../progress';
import type { ProbedModel } from './probe-inputs';

export type FisherVariant = 'expected' | 'empirical';

export interface DiagonalFisher {
  /** Trunk tensor name → the Fisher diagonal, in the tensor's layout. */
  byTensor: Map<string, Float32Array>;
  examples: number;
  /** Backward passes run (examples × classes for `expected`). */
  backwardPasses: number;
  seconds: number;
}

export async function diagonalFisher({ model, task, probe, probePath }: ProbedModel, variant: FisherVariant, options: { signal?: AbortSignal; onProgress?: ProgressCallback; phase?: string } = {}): Promise<DiagonalFisher> {
  if (model.config.languageModel) {
    // Expected over the head's classes, that is one backward pass per vocabulary entry and token.
    throw new MergeInputError(`${model.path}: the Fisher information of a language model (one backward pass per token and vocabulary entry) is not implemented; use APL's gradient or exact estimator, or RegMean`);
  }
  const started = Date.now();
  const progress = new ProgressTracker(options.phase ?? 'fisher', probe.count, options.onProgress);
  // About twenty reports per model: progress events are stored with the job.
  const reportEvery = Math.max(1, Math.ceil(probe.count / 20));
  const { family, config } = model;
  const trunkNames = family.trunkShapes(config).map((s) => s.name);
  const { tensors, lookup } = toTensors(model);
  const classes = config.tasks[task];
  let sums: tf.Tensor[] = trunkNames.map((name) => tf.zerosLike(lookup(name)));
  let backwardPasses = 0;
  try {
    for (let i = 0; i < probe.count; i++) {
      throwIfAborted(options.signal);
      const x = family.inputs(config, probe, [i], `${probePath} (probe split)`);
      try {
        // The classes to differentiate, each with its weight in the expectation.
        const targets: Array<[number, number]> =
          variant === 'empirical'
            ? [[probe.labels[i], 1]]
            : Array.from(tf.tidy(() => tf.softmax(logits(family, config, lookup, x, task))).dataSync(), (p, y) => [y, p] as [number, number]);
        for (const [y, weight] of targets) {
          const logProbability = (...trunk: tf.Tensor[]) => {
            const at: ParamLookup = (name) => {
              const k = trunkNames.indexOf(name);
              return k >= 0 ? trunk[k] : lookup(name);
            };
            // A one-hot product rather than gather: gather's gradient needs a kernel WASM lacks.
            return tf.sum(tf.mul(tf.reshape(tf.logSoftmax(logits(family, config, at, x, task)), [classes]), tf.oneHot(y, classes))) as tf.Scalar;
          };
          const next = tf.tidy(() => {
            const gradients = tf.grads(logProbability)(trunkNames.map(lookup));
            return sums.map((sum, k) => tf.add(sum, tf.mul(tf.square(gradients[k]), weight)));
          });
          sums.forEach((s) => s.dispose());
          sums = next;
          backwardPasses++;
        }
      } finally {
        x.dispose();
      }
      if ((i + 1) % reportEvery === 0 || i + 1 === probe.count) progress.report(i + 1, `Fisher information of ${model.path} on ${i + 1}/${probe.count} probe examples`);
    }
    const byTensor = new Map<string, Float32Array>();
    for (let k = 0; k < trunkNames.length; k++) {
      const mean = tf.div(sums[k], probe.count);
      byTensor.set(trunkNames[k], Float32Array.from(await mean.data()));
      mean.dispose();
    }
    return { byTensor, examples: probe.count, backwardPasses, seconds: (Date.now() - started) / 1000 };
  } finally {
    sums.forEach((s) => s.dispose());
    tensors.forEach((t) => t.dispose());
  }
}

/** The L2 norm of a Fisher diagonal over all its tensors (normalising by it lets models of different loss scales count alike). */
export function fisherNorm(fisher: DiagonalFisher): number {
  let sum = 0;
  for (const values of fisher.byTensor.values()) for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum);
}

