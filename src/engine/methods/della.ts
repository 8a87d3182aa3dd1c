/** DELLA: magnitude-ranked drop probabilities (MagPrune, ±epsilon around density), TIES election. */
import { taskVectorMethod } from './task-vector-merge';

export const della = taskVectorMethod({
  name: 'della',
  prettyName: 'DELLA',
  reference: 'https://arxiv.org/abs/2406.11617',
  sparsification: 'della_magprune',
  consensus: true,
  defaultNormalize: true,
  defaultRescale: true,
});
