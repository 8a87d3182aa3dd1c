/**
 * Model families: pure functions from named tensors to logits, one trunk shared by every task and
 * one head per task. The trunk is what merging merges; heads travel with their fine-tune.
 * A family also splits its trunk into stages (layers, blocks) so that APL's exact intervention
 * can reuse the activations before the stage a partition lives in.
 */
import * as tf from '@tensorflow/tfjs';
import { TaskSplit } from '../data/task-data';

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

export interface TensorShape {
  name: string;
  shape: number[];
}

export interface FamilyConfig {
  family: string;
  /** Task name → number of classes of its head. */
  tasks: Record<string, number>;
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
