/**
 * Model Stock: the fine-tunes' average pulled toward the base by the angle between their task
 * vectors, as mergekit's `model_stock`: with cos θ the mean of the pairwise cosines of the task
 * vectors, t = N·cos θ / (1 + (N − 1)·cos θ) and the result is t·average + (1 − t)·base. With
 * `filter_wise` the angle (and t) is taken per row (the last dimension), else over the whole tensor.
 */
import { MergeMethod } from './types';

export const modelStock: MergeMethod = {
  name: 'model_stock',
  prettyName: 'Model Stock',
  reference: 'https://arxiv.org/abs/2403.19522',
  needsBase: true,
  stochastic: false,
  globalParameters: [{ name: 'filter_wise', type: 'boolean', default: false, description: 'one angle per row (last dimension) instead of per tensor' }],
  modelParameters: [],
  checkModels: (count) => (count >= 2 ? undefined : `model_stock needs a base_model and at least two other models; got ${count} besides the base`),
  mergeTensor(input) {
    const base = input.base!;
    const models = input.models;
    const count = models.length;
    const rowLength = input.globalParameters.filter_wise ? input.shape[input.shape.length - 1] ?? base.length : base.length;
    const rows = rowLength === 0 ? 0 : base.length / rowLength;
    const out = models[0];
    for (let r = 0; r < rows; r++) {
      const from = r * rowLength;
      const to = from + rowLength;
      let cosines = 0;
      for (let i = 0; i < count; i++) {
        for (let j = i + 1; j < count; j++) {
          let dot = 0;
          let ni = 0;
          let nj = 0;
          for (let k = from; k < to; k++) {
            const di = models[i][k] - base[k];
            const dj = models[j][k] - base[k];
            dot += di * dj;
            ni += di * di;
            nj += dj * dj;
          }
          cosines += Math.min(1, Math.max(-1, dot / Math.max(Math.sqrt(ni) * Math.sqrt(nj), 1e-6)));
        }
      }
      const cosine = cosines / ((count * (count - 1)) / 2);
      const t = (count * cosine) / (1 + (count - 1) * cosine);
      for (let k = from; k < to; k++) {
        let sum = 0;
        for (let i = 0; i < count; i++) sum += models[i][k];
        out[k] = t * (sum / count) + (1 - t) * base[k];
      }
    }
    return out;
  },
};
