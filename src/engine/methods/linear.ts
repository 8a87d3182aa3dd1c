/** Linear: a weighted average of the models' tensors (Model Soups). The base, if given, is not an input. */
import { weightedSum } from '../kernels/combine';
import { TaskVectorRecipe } from '../kernels/recipe';
import { MergeMethod, NORMALIZE, RecipeInput, WEIGHT } from './types';

export const linear: MergeMethod = {
  name: 'linear',
  prettyName: 'Linear',
  reference: 'https://arxiv.org/abs/2203.05482',
  needsBase: false,
  stochastic: false,
  globalParameters: [NORMALIZE(true)],
  modelParameters: [WEIGHT],
  mergeTensor(input) {
    const weights = input.modelParameters.map((p) => p.weight as number);
    return weightedSum(input.models, weights, input.globalParameters.normalize as boolean, input.models[0], input.halfOutput);
  },
  // For the GPU: the same weighted sum as a task-vector sum over a zero base.
  recipe(input: RecipeInput): TaskVectorRecipe {
    return {
      models: input.modelParameters.map((p) => ({ weight: p.weight as number, drop: { kind: 'keep' } })),
      consensus: undefined,
      normalize: input.globalParameters.normalize as boolean,
      lambda: 1,
      withoutBase: true,
    };
  },
};
