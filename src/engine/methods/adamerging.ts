/**
 * AdaMerging (Yang et al., arXiv 2310.02575): task arithmetic with coefficients learned without
 * labels — per fine-tune and layer (layer-wise) or per fine-tune (task-wise) — by minimising the
 * entropy of the merged model's predictions on a few unlabelled inputs of each task (each model's
 * probe split; its labels are not read). The coefficients are fitted in the preparation
 * (../data-aware/adamerging.ts); here each task vector is added times its coefficient.
 */
import type * as PrepareModule from '../data-aware/adamerging';
import { runRecipe, TaskVectorRecipe } from '../kernels/recipe';
import { PROBE_PARAMETERS, probeRequired } from './fisher';
import { recipeInput } from './task-vector-merge';
import { MergeMethod, RecipeInput, TensorMergeInput, WEIGHT } from './types';

/** Σ weight · coefficient · task vector, the coefficients carried as per-row weights. */
function adaMergingRecipe(input: RecipeInput): TaskVectorRecipe {
  if (!input.rowParameters) throw new Error(`tensor "${input.name}": adamerging merges trunk tensors only, after its preparation step`);
  return {
    models: input.rowParameters.map((rows, t) => ({ weight: input.modelParameters[t].weight as number, drop: { kind: 'keep' }, rowWeights: rows.weight })),
    consensus: undefined,
    normalize: false,
    lambda: 1,
  };
}

export const adaMerging: MergeMethod = {
  name: 'adamerging',
  prettyName: 'AdaMerging (entropy)',
  reference: 'https://arxiv.org/abs/2310.02575',
  needsBase: true,
  stochastic: false,
  globalParameters: [
    { name: 'granularity', type: 'string', default: 'layer', choices: ['layer', 'task'], description: 'one coefficient per fine-tune and trunk tensor (layer-wise AdaMerging), or one per fine-tune (task-wise)' },
    { name: 'lambda', type: 'number', default: 0.3, min: 0, description: "every coefficient's starting value (the paper's 0.3)" },
    { name: 'steps', type: 'number', default: 100, min: 1, description: 'Adam steps, each over every probe split' },
    { name: 'learning_rate', type: 'number', default: 0.01, min: 0, description: "Adam's learning rate" },
  ],
  modelParameters: [{ ...WEIGHT, default: 1 }, ...PROBE_PARAMETERS],
  checkParameters(global, perModel) {
    if (!Number.isInteger(global.steps)) return `steps: must be a whole number of steps, got ${String(global.steps)}`;
    return probeRequired('adamerging')(global, perModel);
  },
  // Loaded on first use: merge worker threads import every method, and must not pay for TensorFlow.js.
  prepare: (context) => (require('../data-aware/adamerging') as typeof PrepareModule).prepareAdaMerging(context),
  recipe: adaMergingRecipe,
  mergeTensor(input: TensorMergeInput): Float32Array {
    return runRecipe(adaMergingRecipe(recipeInput(input)), input.base!, input.models, input.shape, input.halfOutput);
  },
};
