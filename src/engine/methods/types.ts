/**
 * The contract every merge method fulfils, after mergekit's `merge_methods/base.py`: a name, a
 * reference, declared parameters with defaults, and the tensor math apart from the wiring
 * (reading files, threads, writing) that `engine/merge` does for every method alike.
 */

import type { BackendChoice } from '../backend-choice';
import type { TaskVectorRecipe } from '../kernels/recipe';
import { ProgressCallback } from '../progress';

export type ParameterValue = number | boolean | string;

export interface ParameterDef {
  name: string;
  type: 'number' | 'boolean' | 'string';
  /** Absent: the parameter is required. */
  default?: ParameterValue;
  description: string;
  /** For numbers: the closed range allowed. */
  min?: number;
  max?: number;
  /** For strings: the values allowed. */
  choices?: readonly string[];
  /** For strings: a file path, resolved against the config file's directory. */
  path?: boolean;
}

/** One tensor's inputs, already decoded to float32. Arrays in `models` may be overwritten. */
export interface TensorMergeInput {
  name: string;
  shape: readonly number[];
  /** The base model's tensor; undefined only for methods with needsBase = false and no base given. */
  base: Float32Array | undefined;
  models: Float32Array[];
  /** Per input model: its resolved per-model parameters. */
  modelParameters: ReadonlyArray<Readonly<Record<string, ParameterValue>>>;
  globalParameters: Readonly<Record<string, ParameterValue>>;
  /** Seed for stochastic methods; each (model, tensor) derives its own stream from it. */
  seed: number;
  /** Per input model: values per row of this tensor, from the method's `prepare` step. */
  rowParameters?: ReadonlyArray<Readonly<Record<string, Float32Array>>>;
  /**
   * The result is written as float16 or bfloat16: float64 results are rounded to float32 to odd,
   * so that the conversion to the half type rounds once, correctly (see kernels/combine.ts).
   */
  halfOutput?: boolean;
}

/** What a recipe is built from: a tensor's description and parameters, without its values. */
export type RecipeInput = Omit<TensorMergeInput, 'base' | 'models'> & { elements: number };

/** What a data-aware method sees before the tensor-by-tensor merge starts. */
export interface PrepareContext {
  baseModel: string | undefined;
  models: string[];
  global: Readonly<Record<string, ParameterValue>>;
  perModel: ReadonlyArray<Readonly<Record<string, ParameterValue>>>;
  seed: number;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** The backend the preparation's forward/backward passes run on (default: auto). */
  backend?: BackendChoice;
}

export interface Prepared {
  /** Tensor name → per model, named values per row. */
  rowParameters: Map<string, Array<Record<string, Float32Array>>>;
  /** What the preparation found and used, recorded with the merge result. */
  report: Record<string, unknown>;
}

export interface MergeMethod {
  name: string;
  prettyName: string;
  reference: string;
  /** Whether a base model is required (task-vector methods) or merely allowed (linear). */
  needsBase: boolean;
  /** An optional base that is not one of the models merged: listed among them too, it is taken out (nuslerp, multislerp). */
  separateBase?: boolean;
  /** Whether the result depends on the seed. */
  stochastic: boolean;
  globalParameters: readonly ParameterDef[];
  modelParameters: readonly ParameterDef[];
  /** How many models (besides the base) the method can merge; returns a reason when it cannot merge `count`. */
  checkModels?(count: number): string | undefined;
  /** Checks of the resolved global parameters (per tensor); returns a reason when they cannot work. */
  checkGlobal?(global: Readonly<Record<string, ParameterValue>>): string | undefined;
  /** Extra checks across resolved parameters; returns a reason when they cannot work together. */
  checkParameters?(global: Readonly<Record<string, ParameterValue>>, perModel: Readonly<Record<string, ParameterValue>>): string | undefined;
  /** Data-aware methods compute per-row parameters from the whole models first (APL). */
  prepare?(context: PrepareContext): Promise<Prepared>;
  mergeTensor(input: TensorMergeInput): Float32Array;
  /**
   * The tensor's merge as data (kernels/recipe.ts). Task-vector methods' mergeTensor runs it on
   * the CPU (linear computes its weighted sum directly); the GPU runs the same recipe with its own
   * kernels. Undefined where a configuration of the method is not a task-vector recipe (it then runs on the CPU).
   */
  recipe?(input: RecipeInput): TaskVectorRecipe | undefined;
}

export const WEIGHT: ParameterDef = {
  name: 'weight',
  type: 'number',
  description: "the model's weight in the sum",
};

export const DENSITY: ParameterDef = {
  name: 'density',
  type: 'number',
  default: 1,
  min: 0,
  max: 1,
  description: 'fraction of the task vector kept',
};

export const NORMALIZE = (defaultValue: boolean): ParameterDef => ({
  name: 'normalize',
  type: 'boolean',
  default: defaultValue,
  description: 'divide by the sum of the weights that took part',
});

export const RESCALE = (defaultValue: boolean): ParameterDef => ({
  name: 'rescale',
  type: 'boolean',
  default: defaultValue,
  description: 'scale kept entries by 1/keep-probability so the expected delta is unchanged',
});

export const LAMBDA: ParameterDef = {
  name: 'lambda',
  type: 'number',
  default: 1,
  description: 'scale of the combined task vector',
};

export const INT8_MASK: ParameterDef = {
  name: 'int8_mask',
  type: 'boolean',
  default: false,
  description: 'accepted for mergekit compatibility; has no effect here',
};

export const CONSENSUS: ParameterDef = {
  name: 'consensus_method',
  type: 'string',
  default: 'sum',
  choices: ['sum', 'count'],
  description: 'TIES sign election: by the sum of weighted deltas, or by counting signs',
};

/** checkModels of the methods that merge the base_model with exactly one other model. */
export const baseAndOneOther = (method: string) => (count: number): string | undefined =>
  count === 1 ? undefined : `${method} merges exactly two models, the base_model and one other; got ${count} besides the base`;
