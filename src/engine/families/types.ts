/**
 * Model families: pure functions from named tensors to logits, one trunk shared by every task and
 * one head per task. The trunk is what merging merges; heads travel with their fine-tune.
 * A family also splits its trunk into stages (layers, blocks) so that APL's exact intervention
 * can reuse the activations before the stage a partition lives in.
 */
import * as tf from '@tensorflow/tfjs';
import { IGNORED_LABEL, TaskSplit } from '../data/task-data';
import { gatherRows } from './gather-rows';

export type ParamLookup = (name: string) => tf.Tensor;

/** Per-example tensors derived from the input that every stage may read (e.g. an attention mask). First axis: examples. */
export type StageContext = Readonly<Record<string, tf.Tensor>>;

export interface Stage {
  /** Trunk tensors this stage reads. */
  tensors: readonly string[];
  apply(params: ParamLookup, activation: tf.Tensor, context: StageContext): tf.Tensor;
  /**
   * Set when the stage is activation(x·Wᵀ + b): then setting row i of W (and b[i]) back to the
   * base changes only output unit i, and exact intervention computes that one column instead of
   * the whole layer per partition.
   */
  linear?: LinearMap;
}

/** activation(x·Wᵀ + b) with W stored [out, in], named by its tensors; the activation is elementwise. */
export interface LinearMap {
  weight: string;
  bias?: string;
  activation: (pre: tf.Tensor) => tf.Tensor;
  /** The activation by name, for kernels outside tfjs (the GPU's fused intervention); absent, they do not apply. */
  activationName?: 'relu' | 'identity';
}

/**
 * A layer of hidden units: unit i is row i of each producer weight (with its bias), whose outputs
 * make hidden feature i, and column i of the consumer weight, which reads it. APL's unit partitions
 * take a unit's incoming rows and outgoing column together.
 */
export interface HiddenUnits {
  producers: readonly string[];
  /** Absent where the units are read outside the trunk (by the task heads, which are not merged). */
  consumer?: string;
}

export interface TensorShape {
  name: string;
  shape: number[];
}

export interface FamilyConfig {
  family: string;
  /** Task name → number of classes of its head. */
  tasks: Record<string, number>;
  /**
   * Set for language models: one head (the LM head over `vocabulary` token ids) scores every task,
   * whatever its name, at the positions its labels mark (token labels, TaskSplit.labelsPerExample > 1).
   */
  languageModel?: { vocabulary: number };
}

export interface ModelFamily<C extends FamilyConfig = FamilyConfig> {
  name: string;
  /** Validates config.json contents; `file` names it in errors. */
  parseConfig(json: Record<string, unknown>, file: string): C;
  /** config.json contents for a config. */
  configJson(config: C): Record<string, unknown>;
  trunkShapes(config: C): TensorShape[];
  headShapes(config: C, task: string): TensorShape[];
  isHeadTensor(name: string): boolean;
  /** Seeded initial values of the trunk, or of one task's head. */
  initTrunk(config: C, seed: number): Map<string, Float32Array>;
  initHead(config: C, task: string, seed: number): Map<string, Float32Array>;
  stages(config: C): Stage[];
  /** The trunk's layers of hidden units (MLP layers, feed-forward blocks), for APL's unit partitions. */
  hiddenUnits?(config: C): HiddenUnits[];
  /** Per-example tensors the stages need besides the activation (default: none). */
  context?(config: C, input: tf.Tensor): StageContext;
  head(config: C, task: string, params: ParamLookup, features: tf.Tensor): tf.Tensor;
  /**
   * Set when the head is a linear map of the trunk's output (logits = features·Wᵀ + b): a change in
   * one feature then moves the logits by a rank-one term, which exact intervention uses.
   */
  linearHead?(config: C, task: string): LinearMap;
  /**
   * For lookup tables (embeddings): which rows the examples at `indices` read. Tensors not in the
   * map are read whole. Setting rows nobody reads back to the base cannot change the logits, so
   * exact intervention scores such partitions zero without running them.
   */
  rowsRead?(config: C, split: TaskSplit, indices: ArrayLike<number>): Map<string, Set<number>>;
  /** Why the split's examples cannot be fed to the model (shape, type, length, token ids), or undefined; no tensor is made. */
  inputsProblem(config: C, split: TaskSplit, source: string): string | undefined;
  /** Turns the stored examples at `indices` into the trunk's input tensor; throws when their shape does not fit. */
  inputs(config: C, split: TaskSplit, indices: ArrayLike<number>, source: string): tf.Tensor;
}

/** The number of classes of the head that scores `task`, or undefined when the model has none. */
export function headClasses(config: FamilyConfig, task: string): number | undefined {
  return Object.hasOwn(config.tasks, task) ? config.tasks[task] : config.languageModel?.vocabulary;
}

/**
 * Why a model's head cannot score a task of `classes` classes (a classifier: no head of that name
 * or another size; a language model: token ids beyond its vocabulary), or undefined.
 */
export function headMismatch(config: FamilyConfig, task: { name: string; classes: number }): string | undefined {
  if (!Object.hasOwn(config.tasks, task.name) && config.languageModel) {
    const { vocabulary } = config.languageModel;
    return task.classes > vocabulary ? `its vocabulary has ${vocabulary} tokens, task "${task.name}"'s tokenizer ${task.classes}` : undefined;
  }
  const heads = Object.keys(config.tasks);
  if (!heads.includes(task.name)) return `it has no head for task "${task.name}" (heads: ${heads.join(', ') || 'none'})`;
  if (config.tasks[task.name] !== task.classes) return `its head for "${task.name}" has ${config.tasks[task.name]} classes, the task's data ${task.classes}`;
  return undefined;
}

/** headClasses, or an error naming the model and its heads. */
export function requireHead(config: FamilyConfig, task: string, model: string): number {
  const classes = headClasses(config, task);
  if (classes === undefined) throw new Error(`${model}: has no head for task "${task}" (heads: ${Object.keys(config.tasks).join(', ') || 'none'})`);
  return classes;
}

/**
 * What a loss scores in the head's output for a batch of examples. A classifier's head gives one
 * row of logits per example, each scored with its label. A language model's gives one row per
 * position ([examples·length, vocabulary]); with token labels in the Hugging Face convention
 * (labels[t] is the token at t, −100 where it is not scored), label t is predicted by row t − 1,
 * so only the completion's positions are scored, and padding after it (right padding under a
 * causal mask) reaches none of them.
 */
export interface ScoredTargets {
  /** Row of the head's output of each scored label; undefined: row i is example i. */
  rows?: Int32Array;
  labels: Int32Array;
  /** The batch example (0..examples−1) each label belongs to. */
  example: Int32Array;
  examples: number;
  /** Rows of the head's output per example (to find them in variants stacked example-major). */
  rowsPerExample: number;
}


export function scoredTargets(split: TaskSplit, indices: ArrayLike<number>): ScoredTargets {
  const per = split.labelsPerExample ?? 1;
  if (per === 1) {
    return { labels: Int32Array.from(indices, (i) => split.labels[i]), example: Int32Array.from({ length: indices.length }, (_, i) => i), examples: indices.length, rowsPerExample: 1 };
  }
  const rows: number[] = [];
  const labels: number[] = [];
  const example: number[] = [];
  for (let b = 0; b < indices.length; b++) {
    const at = indices[b] * per;
    for (let t = 1; t < per; t++) {
      const label = split.labels[at + t];
      if (label === IGNORED_LABEL) continue;
      rows.push(b * per + t - 1);
      labels.push(label);
      example.push(b);
    }
  }
  return { rows: Int32Array.from(rows), labels: Int32Array.from(labels), example: Int32Array.from(example), examples: indices.length, rowsPerExample: per };
}

/**
 * The scored rows of a head output holding `variants` variants of the batch stacked one after
 * another ([variants·examples·rowsPerExample, C]): [variants·labels, C], variant by variant.
 * Differentiable (gatherRows) on every backend.
 */
export function scoredLogits(output: tf.Tensor, targets: ScoredTargets, variants = 1): tf.Tensor {
  if (!targets.rows) return output;
  const { rows } = targets;
  const stride = targets.examples * targets.rowsPerExample;
  const all = new Int32Array(rows.length * variants);
  for (let v = 0; v < variants; v++) for (let i = 0; i < rows.length; i++) all[v * rows.length + i] = rows[i] + v * stride;
  return gatherRows(output, tf.tensor1d(all, 'int32'));
}

/** Why the split's labels cannot be scored by a head of `classes` classes, or undefined. */
export function labelsProblem(split: TaskSplit, classes: number, source: string, head = `the head's ${classes} classes`): string | undefined {
  const per = split.labelsPerExample ?? 1;
  const bad = split.labels.findIndex((y) => (y < 0 || y >= classes) && !(per > 1 && y === IGNORED_LABEL));
  if (bad >= 0) {
    return per > 1
      ? `${source}: example ${Math.floor(bad / per)} has label ${split.labels[bad]} at position ${bad % per}, outside the vocabulary of ${classes} (use ${IGNORED_LABEL} for tokens that are not scored)`
      : `${source}: label ${split.labels[bad]} at index ${bad} does not fit ${head}`;
  }
  if (per > 1 && split.count > 0 && scoredTargets(split, range(0, split.count)).labels.length === 0) return `${source}: no example has a scored token (every label is ${IGNORED_LABEL})`;
  return undefined;
}

/**
 * Sum of the cross-entropy over the scored labels, and which labels the argmax misses, from
 * scored logits [labels, C]. Per-example exactness is counted on the host (answeredExamples):
 * tfjs-wasm has no segment sum.
 */
export function lossAndMisses(scored: tf.Tensor, targets: ScoredTargets, classes: number): { lossSum: tf.Scalar; misses: tf.Tensor1D } {
  return tf.tidy(() => {
    const labels = tf.tensor1d(targets.labels, 'int32');
    const lossSum = tf.sum(tf.neg(tf.sum(tf.mul(tf.oneHot(labels, classes), tf.logSoftmax(scored)), 1))) as tf.Scalar;
    return { lossSum, misses: tf.cast(tf.notEqual(tf.argMax(scored, 1), labels), 'int32') as tf.Tensor1D };
  });
}

/**
 * Examples answered exactly: every scored label the argmax. For a language model that is the
 * greedy completion under teacher forcing, which is the greedy decode whenever it is right.
 */
export function answeredExamples(misses: ArrayLike<number>, targets: ScoredTargets): number {
  const missed = new Uint8Array(targets.examples);
  for (let i = 0; i < misses.length; i++) if (misses[i]) missed[targets.example[i]] = 1;
  return missed.reduce((count, m) => count + (m ? 0 : 1), 0);
}
/** Runs the whole network: trunk stages, then the task's head. */
export function logits<C extends FamilyConfig>(family: ModelFamily<C>, config: C, params: ParamLookup, input: tf.Tensor, task: string): tf.Tensor {
  const context = family.context?.(config, input) ?? {};
  let activation = input;
  for (const stage of family.stages(config)) activation = stage.apply(params, activation, context);
  return family.head(config, task, params, activation);
}

/** The context repeated `times` along the example axis (for batched corrupted variants). */
export function tileContext(context: StageContext, times: number): StageContext {
  const tiled: Record<string, tf.Tensor> = {};
  // Copies joined, not tf.tile: tfjs-wasm's tile costs ~30× a copy.
  for (const [key, value] of Object.entries(context)) tiled[key] = tf.concat(Array.from({ length: times }, () => value), 0);
  return tiled;
}

/** Indices start..end−1, for taking a contiguous range of a split. */
export function range(start: number, end: number): Int32Array {
  const indices = new Int32Array(Math.max(0, end - start));
  for (let i = 0; i < indices.length; i++) indices[i] = start + i;
  return indices;
}
