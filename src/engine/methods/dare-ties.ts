/** DARE + TIES: seeded Bernoulli drop and rescale, then TIES sign election. */
import { taskVectorMethod } from './task-vector-merge';

export const dareTies = taskVectorMethod({
  name: 'dare_ties',
  prettyName: 'DARE TIES',
  reference: 'https://arxiv.org/abs/2311.03099',
  sparsification: 'random',
  consensus: true,
  defaultNormalize: false,
  defaultRescale: true,
});
