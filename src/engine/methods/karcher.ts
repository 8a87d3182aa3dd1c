/**
 * Karcher mean, as mergekit's `karcher`: the equal-weight Riemannian mean of the models' directions
 * on the unit hypersphere (fixed-point iterations, at most `max_iter`, until the tangent step is
 * below `tol`), scaled by the mean of their norms. Models with a norm at most `tol` take no part in
 * the direction. A base_model, if given, is not an input.
 */
import { MergeMethod } from './types';

export const karcher: MergeMethod = {
  name: 'karcher',
  prettyName: 'Karcher Mean',
  reference: 'https://en.wikipedia.org/wiki/Karcher_mean',
  needsBase: false,
  stochastic: false,
  globalParameters: [
    { name: 'max_iter', type: 'number', default: 10, min: 0, description: 'most fixed-point iterations' },
    { name: 'tol', type: 'number', default: 1e-5, min: 0, description: 'a tangent step (or norm) below this counts as zero' },
  ],
  modelParameters: [],
  mergeTensor(input) {
    const { models } = input;
    if (models.length === 1) return models[0];
    const maxIter = input.globalParameters.max_iter as number;
    const tol = input.globalParameters.tol as number;
    const n = models[0].length;
    const alpha = 1 / models.length;
    const norms = models.map((m) => Math.sqrt(m.reduce((s, v) => s + v * v, 0)));
    const valid = models.map((_, t) => t).filter((t) => norms[t] > tol);
    const out = models[0];
    if (valid.length === 0) return out.fill(0);
    const share = 1 / valid.length;
    const unit = (t: number, i: number) => models[t][i] / norms[t];
    let mean = new Float64Array(n);
    for (const t of valid) for (let i = 0; i < n; i++) mean[i] += share * unit(t, i);
    const norm = (v: Float64Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const meanNorm = norm(mean);
    if (meanNorm < tol) mean = Float64Array.from({ length: n }, (_, i) => unit(valid[0], i));
    else for (let i = 0; i < n; i++) mean[i] /= meanNorm;
    for (let iteration = 0; iteration < maxIter; iteration++) {
      const tangent = new Float64Array(n);
      for (const t of valid) {
        let d = 0;
        for (let i = 0; i < n; i++) d += mean[i] * unit(t, i);
        d = Math.min(1, Math.max(-1, d));
        const theta = Math.acos(d);
        if (theta < tol) continue;
        const factor = (share * theta) / Math.sin(theta);
        for (let i = 0; i < n; i++) tangent[i] += factor * (unit(t, i) - d * mean[i]);
      }
      const step = norm(tangent);
      if (step < tol) break;
      for (let i = 0; i < n; i++) mean[i] = Math.cos(step) * mean[i] + Math.sin(step) * (tangent[i] / step);
      const length = norm(mean);
      if (length > tol) for (let i = 0; i < n; i++) mean[i] /= length;
    }
    const scale = norms.reduce((s, v) => s + alpha * v, 0);
    for (let i = 0; i < n; i++) out[i] = scale * mean[i];
    return out;
  },
};
