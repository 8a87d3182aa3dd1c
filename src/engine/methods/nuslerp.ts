/**
 * NuSLERP, as mergekit's `nuslerp`: spherical interpolation of two models by their weights
 * (t = w₂ / (w₁ + w₂), 0.5 when the weights sum to about 0), of the whole tensor
 * (`nuslerp_flatten`, the default), or row by row, or column by column (`nuslerp_row_wise`); with a
 * base, of the two task vectors, added back to the base. Unlike `slerp` the vectors are not
 * normalised in the result, and only (anti)parallel vectors (|sin θ| < 1e-8) fall back to lerp.
 */
import { dot, vectorsOf } from './vectors';
import { MergeMethod } from './types';

export const nuslerp: MergeMethod = {
  name: 'nuslerp',
  prettyName: 'NuSLERP',
  reference: 'https://github.com/arcee-ai/mergekit',
  needsBase: false,
  separateBase: true,
  stochastic: false,
  globalParameters: [
    { name: 'nuslerp_flatten', type: 'boolean', default: true, description: 'interpolate the whole tensor as one vector' },
    { name: 'nuslerp_row_wise', type: 'boolean', default: false, description: 'without flatten: interpolate columns (vectors along the first axis) instead of rows' },
  ],
  modelParameters: [{ name: 'weight', type: 'number', description: "the model's weight: t is the second model's share" }],
  checkModels: (count) => (count === 2 ? undefined : `nuslerp merges exactly two models (and an optional base_model, not one of them); got ${count}`),
  mergeTensor(input) {
    const [w0, w1] = input.modelParameters.map((p) => p.weight as number);
    const t = Math.abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
    const [v0, v1] = input.models;
    const base = input.base;
    if (base) {
      for (let i = 0; i < v0.length; i++) {
        v0[i] -= base[i];
        v1[i] -= base[i];
      }
    }
    const along = input.globalParameters.nuslerp_flatten ? 'all' : input.globalParameters.nuslerp_row_wise ? 'first' : 'last';
    const { count, length, index } = vectorsOf(input.shape, v0.length, along);
    for (let v = 0; v < count; v++) {
      const at = (k: number) => index(v, k);
      const n0 = Math.max(Math.sqrt(dot(v0, v0, length, at)), 1e-7);
      const n1 = Math.max(Math.sqrt(dot(v1, v1, length, at)), 1e-7);
      const theta = Math.acos(Math.min(1, Math.max(-1, dot(v0, v1, length, at) / (n0 * n1))));
      const sinTheta = Math.sin(theta);
      const colinear = Math.abs(sinTheta) < 1e-8;
      const a = colinear ? 1 - t : Math.sin((1 - t) * theta) / sinTheta;
      const b = colinear ? t : Math.sin(t * theta) / sinTheta;
      for (let k = 0; k < length; k++) {
        const i = at(k);
        v0[i] = a * v0[i] + b * v1[i] + (base ? base[i] : 0);
      }
    }
    return v0;
  },
};
