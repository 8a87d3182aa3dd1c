/** Linear: a weighted average of the models' tensors (Model Soups). The base, if given, is not an input. */
import { weightedSum } from '../kernels/combine';
import { MergeMethod, NORMALIZE, WEIGHT } from './types';

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
    return weightedSum(input.models, weights, input.globalParameters.normalize as boolean, input.models[0]);
  },
};
