/** DELLA's MagPrune followed by plain task arithmetic. */
import { taskVectorMethod } from './task-vector-merge';

export const dellaLinear = taskVectorMethod({
  name: 'della_linear',
  prettyName: 'Linear DELLA',
  reference: 'https://arxiv.org/abs/2406.11617',
  sparsification: 'della_magprune',
  consensus: false,
  defaultNormalize: false,
  defaultRescale: true,
});
