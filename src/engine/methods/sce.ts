/**
 * SCE (select, calculate, erase), as mergekit's `sce`: keep the `select_topk` share of the
 * positions where the task vectors vary most across models (of those that vary at all), weight
 * each model by its task vector's mean square, keep at each position only the task vectors whose
 * sign agrees with their sum's, and add their weighted mean to the base.
 */
import { topKCut } from '../kernels/select';
import { MergeMethod } from './types';

/** Zeroes, in every task vector, the positions outside the top `share` of variance across models. */
function selectByVariance(deltas: Float32Array[], share: number): void {
  const n = deltas[0].length;
  const variance = new Float32Array(n);
  let varying = 0;
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (const d of deltas) mean += d[i];
    mean /= deltas.length;
    let sum = 0;
    for (const d of deltas) sum += (d[i] - mean) ** 2;
    variance[i] = sum / deltas.length;
    if (variance[i] !== 0) varying++;
  }
  const k = Math.floor(Math.abs(share) * varying);
  if (k === 0) {
    for (const d of deltas) d.fill(0);
    return;
  }
  const bits = new Uint32Array(variance.buffer);
  const cut = topKCut(bits, k);
  let takenAtThreshold = 0;
  for (let i = 0; i < n; i++) {
    const b = bits[i] & 0x7fffffff;
    const kept = b > cut.thresholdBits || (b === cut.thresholdBits && takenAtThreshold++ < cut.takeAtThreshold);
    if (!kept) for (const d of deltas) d[i] = 0;
  }
}

export const sce: MergeMethod = {
  name: 'sce',
  prettyName: 'SCE',
  reference: 'https://arxiv.org/abs/2408.07990',
  needsBase: true,
  stochastic: false,
  globalParameters: [
    { name: 'select_topk', type: 'number', default: 1, min: 0, max: 1, description: 'share of the positions, by variance across models, that are kept' },
    { name: 'int8_mask', type: 'boolean', default: false, description: 'accepted for mergekit configs; no effect' },
  ],
  modelParameters: [],
  mergeTensor(input) {
    const base = input.base!;
    const deltas = input.models;
    const n = base.length;
    for (const d of deltas) for (let i = 0; i < n; i++) d[i] -= base[i];
    const share = input.globalParameters.select_topk as number;
    if (share < 1) selectByVariance(deltas, share);
    // Each model's weight: its task vector's mean square, as a share of all of them.
    const squares = deltas.map((d) => d.reduce((s, v) => s + v * v, 0) / n);
    const total = squares.reduce((a, b) => a + b, 0);
    const weights = total === 0 ? squares.map(() => 1 / deltas.length) : squares.map((s) => s / total);
    const out = deltas[0];
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (const d of deltas) sum += d[i];
      const majority = sum >= 0 ? 1 : -1;
      let mixed = 0;
      let divisor = 0;
      deltas.forEach((d, t) => {
        if (Math.sign(d[i]) === majority) {
          mixed += weights[t] * d[i];
          divisor += weights[t];
        }
      });
      out[i] = base[i] + mixed / (divisor === 0 ? 1 : divisor);
    }
    return out;
  },
};
