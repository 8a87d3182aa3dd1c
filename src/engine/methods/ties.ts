/** TIES: trim each task vector to its top-`density` magnitudes, elect signs, disjoint mean. */
import { taskVectorMethod } from './task-vector-merge';

export const ties = taskVectorMethod({
  name: 'ties',
  prettyName: 'TIES',
  reference: 'https://arxiv.org/abs/2306.01708',
  sparsification: 'magnitude',
  consensus: true,
  defaultNormalize: true,
  defaultRescale: false,
});
