/** Model Breadcrumbs: drop the largest `gamma` outliers and the smallest entries, then task arithmetic. */
import { taskVectorMethod } from './task-vector-merge';

export const breadcrumbs = taskVectorMethod({
  name: 'breadcrumbs',
  prettyName: 'Model Breadcrumbs',
  reference: 'https://arxiv.org/abs/2312.06795',
  sparsification: 'magnitude_outliers',
  consensus: false,
  defaultNormalize: false,
  defaultRescale: false,
});
