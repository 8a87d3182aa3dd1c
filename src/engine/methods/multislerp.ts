/**
 * Multi-SLERP, as mergekit's `multislerp`: a weighted barycentre of any number of models on the
 * hypersphere — each (task vector, with a base) projected to the unit sphere, interpolated in the
 * tangent space at the weighted mean direction, mapped back with the exponential map, and scaled by
 * the weighted mean of their norms.
 */
import { MergeInputError } from '../errors';
import { MergeMethod } from './types';

export const multislerp: MergeMethod = {
  name: 'multislerp',
  prettyName: 'Multi-SLERP',
  reference: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea',
  needsBase: false,
  separateBase: true,
  stochastic: false,
  globalParameters: [
    { name: 'normalize_weights', type: 'boolean', default: true, description: 'divide the weights by their sum' },
    { name: 'eps', type: 'number', default: 1e-8, min: 0, description: 'added to norms before dividing by them' },
  ],
  modelParameters: [{ name: 'weight', type: 'number', description: "the model's weight in the barycentre" }],
  mergeTensor(input) {
    const { models, base } = input;
    if (models.length === 1) return models[0];
    const eps = input.globalParameters.eps as number;
    let weights = input.modelParameters.map((p) => p.weight as number);
    if (input.globalParameters.normalize_weights) {
      const sum = weights.reduce((a, b) => a + b, 0);
      weights = weights.map((w) => w / sum);
    }
    const n = models[0].length;
    if (base) for (const m of models) for (let i = 0; i < n; i++) m[i] -= base[i];
    const norms = models.map((m) => Math.sqrt(m.reduce((s, v) => s + v * v, 0)));
    // unit_i = x_i / (|x_i| + ε); mean direction = Σ w_i unit_i, normalised.
    const mean = new Float64Array(n);
    models.forEach((m, t) => {
      for (let i = 0; i < n; i++) mean[i] += weights[t] * (m[i] / (norms[t] + eps));
    });
    const meanNorm = Math.sqrt(mean.reduce((s, v) => s + v * v, 0));
    const out = models[0];
    if (meanNorm < eps) {
      if (models.length !== 2) throw new MergeInputError(`tensor "${input.name}": multislerp's weighted sum of directions is zero (antipodal models whose weights balance out); use other weights`);
      for (let i = 0; i < n; i++) out[i] = models[0][i] * weights[0] + models[1][i] * weights[1] + (base ? base[i] : 0);
      return out;
    }
    for (let i = 0; i < n; i++) mean[i] /= meanNorm;
    // Tangent vectors at the mean: unit_i − (unit_i · mean) mean; their weighted sum.
    const tangent = new Float64Array(n);
    models.forEach((m, t) => {
      let dotMean = 0;
      for (let i = 0; i < n; i++) dotMean += (m[i] / (norms[t] + eps)) * mean[i];
      for (let i = 0; i < n; i++) tangent[i] += weights[t] * (m[i] / (norms[t] + eps) - dotMean * mean[i]);
    });
    const tangentNorm = Math.sqrt(tangent.reduce((s, v) => s + v * v, 0)) + eps;
    const averageNorm = norms.reduce((s, norm, t) => s + norm * weights[t], 0);
    const along = Math.cos(tangentNorm);
    const across = Math.sin(tangentNorm) / tangentNorm;
    for (let i = 0; i < n; i++) out[i] = (mean[i] * along + tangent[i] * across) * averageNorm + (base ? base[i] : 0);
    return out;
  },
};
