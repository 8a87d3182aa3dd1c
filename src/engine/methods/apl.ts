/**
 * APL: Activated Parameter Locating via causal intervention (arXiv 2408.09485), as defined in
 * APL.md. Each fine-tune's task vector is dropped partition by partition at keep-rates that rise
 * with the partition's importance for its task (measured on probe data, exactly or by the
 * gradient approximation), weighted per partition, and combined by task arithmetic or TIES.
 * The preparation (importance → rates and weights) is in ../apl/prepare.ts; here is the tensor math.
 */
import type * as PrepareModule from '../apl/prepare';
import { ConsensusMethod } from '../kernels/combine';
import { dropKey } from '../kernels/random';
import { runRecipe, TaskVectorRecipe } from '../kernels/recipe';
import { recipeInput } from './task-vector-merge';
import { CONSENSUS, DENSITY, LAMBDA, MergeMethod, ParameterDef, RecipeInput, TensorMergeInput, WEIGHT } from './types';

const str = (name: string, fallback: string, choices: string[], description: string): ParameterDef => ({ name, type: 'string', default: fallback, choices, description });
const num = (name: string, fallback: number, min: number, description: string): ParameterDef => ({ name, type: 'number', default: fallback, min, description });

/** APL's tensor math as a recipe: per-row drops at the calibrated keep-rates, per-row weights, combination. */
function aplRecipe(input: RecipeInput): TaskVectorRecipe {
  const global = input.globalParameters;
  if (!input.rowParameters) throw new Error(`tensor "${input.name}": apl merges trunk tensors only, after its preparation step`);
  return {
    models: input.rowParameters.map(({ keep_rate: rates, weight: rowWeights }, t) => ({
      weight: input.modelParameters[t].weight as number,
      drop: global.drop === 'stochastic' ? { kind: 'rowBernoulli', key: dropKey(input.seed, t, input.name), rates } : { kind: 'rowTopK', rates },
      rowWeights: rowWeights.every((w) => w === 1) ? undefined : rowWeights,
    })),
    consensus: global.combine === 'ties' ? (global.consensus_method as ConsensusMethod) : undefined,
    normalize: global.normalize as boolean,
    lambda: global.lambda as number,
  };
}

export const apl: MergeMethod = {
  name: 'apl',
  prettyName: 'APL (Activated Parameter Locating)',
  reference: 'https://arxiv.org/abs/2408.09485',
  needsBase: true,
  stochastic: true,
  globalParameters: [
    str('level', 'row', ['model', 'layer', 'row'], 'partition level: whole task vector, tensor, or output unit'),
    str('estimator', 'gradient', ['gradient', 'exact'], 'importance by gradient approximation or exact causal intervention'),
    str('metric', 'loss', ['loss', 'kl'], 'exact intervention: loss increase or KL divergence'),
    str('gradient_form', 'absolute', ['absolute', 'signed'], 'gradient approximation: |g·δ| or −g·δ'),
    str('gradient_at', 'finetune', ['finetune', 'base'], 'where the gradient is taken'),
    num('keep_temperature', 1, 0, 'τ1: 0 keeps whole partitions by rank; large values approach a uniform rate (DARE)'),
    { name: 'competition', type: 'boolean', default: false, description: 'weight tasks per partition by softmax of importance (τ2)' },
    num('weight_temperature', 1, 1e-6, 'τ2 of the task competition'),
    str('drop', 'stochastic', ['stochastic', 'deterministic'], 'Bernoulli drop with rescale, or keep the largest |δ| in each partition'),
    str('combine', 'task_arithmetic', ['task_arithmetic', 'ties'], 'how dropped, weighted task vectors are combined'),
    { ...CONSENSUS },
    { name: 'normalize', type: 'boolean', default: false, description: 'divide by the weights that took part' },
    LAMBDA,
  ],
  modelParameters: [
    { ...WEIGHT, default: 1 },
    { ...DENSITY, default: 0.5 },
    { name: 'probe', type: 'string', default: '', path: true, description: 'task data (safetensors) whose probe split measures importance' },
    { name: 'importance', type: 'string', default: '', path: true, description: 'a saved importance analysis to use instead of probe data' },
    { name: 'task', type: 'string', default: '', description: "the model's head to score (default: its only one)" },
  ],
  checkParameters(_global, perModel) {
    if (!perModel.probe && !perModel.importance) return 'apl needs per-model "probe" (task data) or "importance" (a saved analysis)';
    return undefined;
  },
  // Loaded on first use: merge worker threads import every method, and must not pay for
  // loading TensorFlow.js, which only the preparation needs.
  prepare: (context) => (require('../apl/prepare') as typeof PrepareModule).prepareApl(context),
  recipe: aplRecipe,
  mergeTensor(input: TensorMergeInput): Float32Array {
    return runRecipe(aplRecipe(recipeInput(input)), input.base!, input.models, input.shape, input.halfOutput);
  },
};
