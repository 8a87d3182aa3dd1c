/**
 * Arcee Fusion, as mergekit's `arcee_fusion`: an entry of the other model replaces the base's
 * where its importance — |other − base| times the KL divergence of the rows' softmaxes — is an
 * outlier: at least median + 1.5·(Q3 − Q1) of all importances. The quartiles are exact (mergekit
 * estimates them from an unseeded sample of a million entries on larger tensors, so it is not
 * reproducible there).
 */
import { vectorsOf } from './vectors';
import { baseAndOneOther, MergeMethod } from './types';

/** log-softmax of one row, in float64. */
function logSoftmax(values: Float32Array, at: (k: number) => number, length: number): Float64Array {
  let max = -Infinity;
  for (let k = 0; k < length; k++) max = Math.max(max, values[at(k)]);
  let sum = 0;
  for (let k = 0; k < length; k++) sum += Math.exp(values[at(k)] - max);
  const log = Math.log(sum) + max;
  return Float64Array.from({ length }, (_, k) => values[at(k)] - log);
}

/** The value at floor(q·(n − 1)) of the sorted values. */
const quantile = (sorted: Float64Array, q: number) => sorted[Math.floor(q * (sorted.length - 1))];

export const arceeFusion: MergeMethod = {
  name: 'arcee_fusion',
  prettyName: 'Arcee Fusion',
  reference: 'https://arcee.ai',
  needsBase: true,
  stochastic: false,
  globalParameters: [],
  modelParameters: [],
  checkModels: baseAndOneOther('arcee_fusion'),
  mergeTensor(input) {
    const base = input.base!;
    const other = input.models[0];
    const n = base.length;
    const importance = new Float64Array(n);
    const { count, length, index } = vectorsOf(input.shape, n, 'last');
    for (let v = 0; v < count; v++) {
      const at = (k: number) => index(v, k);
      const p = logSoftmax(other, at, length);
      const q = logSoftmax(base, at, length);
      // KL(p ‖ q) with ε = 1e-8 added to both probabilities, as mergekit.
      let kl = 0;
      for (let k = 0; k < length; k++) {
        const pk = Math.exp(p[k]) + 1e-8;
        const qk = Math.exp(q[k]) + 1e-8;
        kl += pk * Math.log(pk / qk);
      }
      for (let k = 0; k < length; k++) importance[at(k)] = Math.abs(other[at(k)] - base[at(k)]) * kl;
    }
    const sorted = importance.slice().sort();
    const threshold = quantile(sorted, 0.5) + 1.5 * (quantile(sorted, 0.75) - quantile(sorted, 0.25));
    for (let i = 0; i < n; i++) if (!(importance[i] >= threshold)) other[i] = base[i];
    return other;
  },
};
