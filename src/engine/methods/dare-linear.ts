/** DARE + task arithmetic: seeded Bernoulli drop at rate 1 − density, survivors ×1/density. */
import { taskVectorMethod } from './task-vector-merge';

export const dareLinear = taskVectorMethod({
  name: 'dare_linear',
  prettyName: 'Linear DARE',
  reference: 'https://arxiv.org/abs/2311.03099',
  sparsification: 'random',
  consensus: false,
  defaultNormalize: false,
  defaultRescale: true,
});
