/**
 * Combining task vectors into one merged tensor: weighted sum, optional TIES sign election
 * (by weighted sum or by count), optional normalisation by the weights that took part, and a
 * global scale λ. Mirrors mergekit's generalized task arithmetic so results agree to float32
 * rounding (we accumulate in float64, which is at least as accurate).
 */

export type ConsensusMethod = 'sum' | 'count';

export interface CombineOptions {
  weights: readonly number[];
  consensus: ConsensusMethod | undefined;
  normalize: boolean;
  lambda: number;
}

/** Writes base + λ·mix(deltas) into `out` (which may be `base` itself). */
export function combineTaskVectors(base: Float32Array, deltas: Float32Array[], options: CombineOptions, out: Float32Array): Float32Array {
  const { weights, consensus, normalize, lambda } = options;
  const count = deltas.length;
  const n = base.length;
  if (!consensus) {
    let weightSum = 0;
    for (const w of weights) weightSum += w;
    const divisor = normalize && Math.abs(weightSum) >= 1e-8 ? weightSum : 1;
    const scale = lambda / divisor;
    for (let i = 0; i < n; i++) {
      let mixed = 0;
      for (let t = 0; t < count; t++) mixed += weights[t] * deltas[t][i];
      out[i] = base[i] + mixed * scale;
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    // Elect the sign from the weighted deltas; a zero total elects +.
    let election = 0;
    for (let t = 0; t < count; t++) {
      const v = weights[t] * deltas[t][i];
      election += consensus === 'sum' ? v : Math.sign(v);
    }
    const positive = election >= 0;
    let mixed = 0;
    let divisor = 0;
    for (let t = 0; t < count; t++) {
      const v = weights[t] * deltas[t][i];
      if (positive ? v > 0 : v < 0) {
        mixed += v;
        divisor += weights[t];
      }
    }
    if (normalize) mixed /= divisor === 0 ? 1 : divisor;
    out[i] = base[i] + lambda * mixed;
  }
  return out;
}

/** Weighted sum of whole tensors (no base), optionally divided by the sum of the weights. */
export function weightedSum(tensors: Float32Array[], weights: readonly number[], normalize: boolean, out: Float32Array): Float32Array {
  let weightSum = 0;
  for (const w of weights) weightSum += w;
  const scale = normalize ? 1 / weightSum : 1;
  const count = tensors.length;
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (let t = 0; t < count; t++) sum += weights[t] * tensors[t][i];
    out[i] = sum * scale;
  }
  return out;
}
