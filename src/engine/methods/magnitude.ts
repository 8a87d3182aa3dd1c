/** Magnitude pruning: keep each task vector's top-`density` magnitudes, then task arithmetic (no sign election). */
import { taskVectorMethod } from './task-vector-merge';

export const magnitude = taskVectorMethod({
  name: 'magnitude',
  prettyName: 'Magnitude pruning',
  reference: 'https://arxiv.org/abs/2306.01708',
  sparsification: 'magnitude',
  consensus: false,
  defaultNormalize: false,
  defaultRescale: false,
});
