/** Model Breadcrumbs with TIES sign election. */
import { taskVectorMethod } from './task-vector-merge';

export const breadcrumbsTies = taskVectorMethod({
  name: 'breadcrumbs_ties',
  prettyName: 'Model Breadcrumbs with TIES',
  reference: 'https://arxiv.org/abs/2312.06795',
  sparsification: 'magnitude_outliers',
  consensus: true,
  defaultNormalize: false,
  defaultRescale: false,
});
