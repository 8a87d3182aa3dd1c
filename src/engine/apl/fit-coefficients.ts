/**
 * Fitted merge coefficients (APL `coefficients: fitted`, and the `adamerging` method): instead of
 * one λ for every task vector, one coefficient per fine-tune and trunk tensor (or row, or one per
 * fine-tune), started at λ and fitted by Adam to the mean over the fine-tunes' probe splits of an
 * objective of the merged model: its loss (APL, which reads the probe labels anyway), or the
 * entropy of its predictions (AdaMerging, Yang et al., arXiv 2310.02575: unlabelled inputs only).
 * The task vectors enter exactly as the merge will take them
 * (dropped, rescaled and weighted per row), so the coefficients fitted are the merge's own; every
 * step sees whole probe splits, so nothing is random.
 */
import * as tf from '@tensorflow/tfjs';
import { totalmem } from 'node:os';
import { TaskSplit } from '../data/task-data';
import { MergeInputError, yieldThenCheckAbort } from '../errors';
import { Model } from '../families/model';
import { ParamLookup, range } from '../families/types';
import { ProgressCallback, ProgressTracker } from '../progress';
import { predictionEntropy, supervisedLoss } from '../train/train';

export interface FitMember {
  model: Model;
  task: string;
  probe: TaskSplit;
}

export interface FitOptions {
  /** Trunk tensors, in a fixed order: the coefficients' columns. */
  trunk: ReadonlyArray<{ name: string; shape: number[] }>;
  /** Member t's task vector in `name`, as the merge takes it (θt − θ0, dropped, rescaled, weighted per row, times its weight). */
  taskVector: (t: number, name: string, shape: readonly number[]) => Float32Array;
  lambda: number;
  /** One coefficient per tensor, per row of it (its first axis: a matrix's output units), or one per member for every tensor. */
  granularity: 'tensor' | 'row' | 'model';
  /** What is minimised: the probe loss (labels), or the entropy of the predictions (default: loss). */
  objective?: 'loss' | 'entropy';
  steps: number;
  learningRate: number;
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
}

export interface FittedCoefficients {
  /** Per member, per trunk tensor (FitOptions.trunk's order), one coefficient, or one per row. */
  coefficients: Float32Array[][];
  /** The objective (mean probe loss, or entropy) of the merged model with every coefficient λ, and with the fitted ones. */
  lossAtLambda: number;
  lossFitted: number;
  /** Whether the fitted coefficients are used: only when they lower the objective. */
  kept: boolean;
  seconds: number;
}

/** Fits the coefficients; the base's trunk and each member's heads are held fixed. */
export async function fitCoefficients(base: Model, members: readonly FitMember[], options: FitOptions): Promise<FittedCoefficients> {
  const started = Date.now();
  const { trunk } = options;
  // The base, every member's task vectors and TensorFlow.js's copies of them are held at once.
  const bytes = 4 * (members.length + 1) * trunk.reduce((sum, { shape }) => sum + shape.reduce((a, b) => a * b, 1), 0);
  if (2 * bytes > totalmem() / 2) {
    throw new MergeInputError(`coefficients: fitted holds the base and ${members.length} task vectors (${(bytes / 1024 ** 3).toFixed(1)} GiB of float32, twice over), more than half of this machine's memory; use coefficients: lambda`);
  }
  const held: tf.Tensor[] = [];
  const hold = <T extends tf.Tensor>(t: T): T => (held.push(t), t);
  const trunkNames = new Set(trunk.map((s) => s.name));
  const baseTrunk = trunk.map(({ name, shape }) => hold(tf.tensor(base.params.get(name)!, shape)));
  const vectors = members.map((_, t) => trunk.map(({ name, shape }) => hold(tf.tensor(options.taskVector(t, name, shape), shape))));
  // Each member's own tensors beyond the trunk (its task's head), read as they are.
  const heads = members.map(({ model }) => {
    const own = new Map<string, tf.Tensor>();
    for (const [name, values] of model.params) if (!trunkNames.has(name)) own.set(name, hold(tf.tensor(values, model.shapes.get(name)!)));
    return own;
  });
  // A row coefficient broadcasts over its row: shape [rows, 1, …]; a tensor's is a scalar.
  const coefficientShape = (shape: number[]) => (options.granularity === 'row' ? shape.map((n, axis) => (axis === 0 ? n : 1)) : []);
  // One variable per member and tensor; at model granularity one per member, shared by its tensors.
  const coefficients = members.map(() => (options.granularity === 'model' ? [tf.variable(tf.scalar(options.lambda))] : trunk.map(({ shape }) => tf.variable(tf.fill(coefficientShape(shape), options.lambda)))));
  const coefficientOf = (t: number, i: number) => coefficients[t][options.granularity === 'model' ? 0 : i];
  const objective = options.objective === 'entropy' ? predictionEntropy : supervisedLoss;
  const optimizer = tf.train.adam(options.learningRate);
  const everyExample = members.map((m) => range(0, m.probe.count));
  const meanLoss = (): tf.Scalar => {
    const merged = new Map(trunk.map(({ name }, i) => [name, members.reduce((sum, _, t) => tf.add(sum, tf.mul(coefficientOf(t, i), vectors[t][i])), baseTrunk[i])]));
    const losses = members.map((member, t) => {
      const lookup: ParamLookup = (name) => {
        const tensor = merged.get(name) ?? heads[t].get(name);
        if (!tensor) throw new Error(`parameter "${name}" is not loaded`);
        return tensor;
      };
      return objective(member.model, lookup, member.probe, everyExample[t], member.task);
    });
    return tf.div(tf.addN(losses), members.length) as tf.Scalar;
  };
  const progress = new ProgressTracker('fit coefficients', options.steps, options.onProgress);
  try {
    const atLambda = tf.tidy(meanLoss);
    const lossAtLambda = (await atLambda.data())[0];
    atLambda.dispose();
    for (let step = 0; step < options.steps; step++) {
      await yieldThenCheckAbort(options.signal);
      optimizer.minimize(meanLoss, false, coefficients.flat());
      if (step % 10 === 9 || step === options.steps - 1) progress.report(step + 1, `step ${step + 1}/${options.steps}`);
    }
    const fitted = tf.tidy(meanLoss);
    const lossFitted = (await fitted.data())[0];
    fitted.dispose();
    // A fit that made the probe loss worse (a learning rate too large) is not used: λ stays.
    const kept = lossFitted < lossAtLambda;
    const read = await Promise.all(coefficients.map((perTensor) => Promise.all(perTensor.map(async (c) => (kept ? Float32Array.from(await c.data()) : new Float32Array(c.size).fill(options.lambda))))));
    // A member's one coefficient stands for each of its tensors.
    const values = read.map((perTensor) => (options.granularity === 'model' ? trunk.map(() => perTensor[0]) : perTensor));
    return { coefficients: values, lossAtLambda, lossFitted, kept, seconds: (Date.now() - started) / 1000 };
  } finally {
    optimizer.dispose();
    coefficients.flat().forEach((c) => c.dispose());
    held.forEach((t) => t.dispose());
  }
}
