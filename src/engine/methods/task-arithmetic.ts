/** Task arithmetic: base + λ · Σ weight·(fine-tune − base). */
import { taskVectorMethod } from './task-vector-merge';

export const taskArithmetic = taskVectorMethod({
  name: 'task_arithmetic',
  prettyName: 'Task Arithmetic',
  reference: 'https://arxiv.org/abs/2212.04089',
  sparsification: undefined,
  consensus: false,
  defaultNormalize: false,
  defaultRescale: false,
});
