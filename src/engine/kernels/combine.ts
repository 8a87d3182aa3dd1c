/**
 * Combining task vectors into one merged tensor: weighted sum, optional TIES sign election
 * (by weighted sum or by count), optional normalisation by the weights that took part, and a
 * global scale λ. Mirrors mergekit's generalized task arithmetic so results agree to float32
 * rounding (we accumulate in float64, which is at least as accurate).
 *
 * The loops run block by block with the model index outermost inside a block: each inner loop
 * then walks one contiguous array, which V8 compiles to tight code, where an element-major loop
 * over an array of arrays ran several times slower.
 */

import { allInWasm, scratchAddress, wasmKernels } from './wasm';

export type ConsensusMethod = 'sum' | 'count';

export interface CombineOptions {
  weights: readonly number[];
  consensus: ConsensusMethod | undefined;
  normalize: boolean;
  lambda: number;
  /** The result will be written as float16 or bfloat16: round the float64 results to float32 to odd (see roundToOddFloat32). */
  roundToOdd?: boolean;
}

const BLOCK = 4096;

const oddValue = new Float32Array(1);
const oddBits = new Uint32Array(oddValue.buffer);

/**
 * float64 → float32, rounded to odd: truncated toward zero, with the last bit set when anything was
 * cut off. Rounding that float32 once more to nearest-even at 16 bits or fewer (float16, bfloat16)
 * gives the correctly rounded result of the float64 value — which rounding to nearest twice does not
 * (a float64 just off a half-type halfway point can land on it as a float32, then go the wrong way).
 * The WASM kernel applies the same rule.
 */
export function roundToOddFloat32(x: number): number {
  oddValue[0] = x;
  const nearest = oddValue[0];
  // Exact, NaN, or beyond float32's range (an overflow stays one, for the non-finite check).
  if (nearest === x || !Number.isFinite(nearest)) return nearest;
  if (Math.abs(nearest) > Math.abs(x)) oddBits[0] -= 1;
  oddBits[0] |= 1;
  return oddValue[0];
}

/**
 * What a plain weighted sum is divided by: the sum of the weights when normalising (unless it is
 * about zero), else 1. The WASM kernel and the GPU kernels apply the same rule.
 */
export function sumDivisor(weights: readonly number[], normalize: boolean): number {
  let weightSum = 0;
  for (const w of weights) weightSum += w;
  return normalize && Math.abs(weightSum) >= 1e-8 ? weightSum : 1;
}

/** Writes base + λ·mix(deltas) into `out` (which may be `base` itself). */
export function combineTaskVectors(base: Float32Array, deltas: Float32Array[], options: CombineOptions, out: Float32Array): Float32Array {
  const { weights, consensus, normalize, lambda } = options;
  const round = options.roundToOdd ? roundToOddFloat32 : (x: number) => x;
  const n = base.length;
  if (deltas.length <= 256 && allInWasm(base, out, ...deltas)) {
    const kernels = wasmKernels();
    const scratch = scratchAddress();
    new Uint32Array(kernels.memory.buffer, scratch, deltas.length).set(deltas.map((d) => d.byteOffset));
    new Float64Array(kernels.memory.buffer, scratch + 1024, deltas.length).set(weights);
    const mode = consensus === undefined ? 0 : consensus === 'sum' ? 1 : 2;
    kernels.combine(base.byteOffset, scratch, scratch + 1024, deltas.length, n, out.byteOffset, mode, normalize ? 1 : 0, lambda, options.roundToOdd ? 1 : 0);
    return out;
  }
  if (!consensus) {
    const scale = lambda / sumDivisor(weights, normalize);
    const mixed = new Float64Array(BLOCK);
    for (let start = 0; start < n; start += BLOCK) {
      const length = Math.min(BLOCK, n - start);
      mixed.fill(0, 0, length);
      for (let t = 0; t < deltas.length; t++) {
        const w = weights[t];
        const delta = deltas[t];
        for (let j = 0; j < length; j++) mixed[j] += w * delta[start + j];
      }
      for (let j = 0; j < length; j++) out[start + j] = round(base[start + j] + mixed[j] * scale);
    }
    return out;
  }
  const election = new Float64Array(BLOCK);
  const mixed = new Float64Array(BLOCK);
  const divisor = new Float64Array(BLOCK);
  for (let start = 0; start < n; start += BLOCK) {
    const length = Math.min(BLOCK, n - start);
    election.fill(0, 0, length);
    for (let t = 0; t < deltas.length; t++) {
      const w = weights[t];
      const delta = deltas[t];
      if (consensus === 'sum') for (let j = 0; j < length; j++) election[j] += w * delta[start + j];
      else for (let j = 0; j < length; j++) election[j] += Math.sign(w * delta[start + j]);
    }
    // The elected sign: + when the election is ≥ 0 (a tie or all-zero elects +), as mergekit.
    for (let j = 0; j < length; j++) election[j] = election[j] >= 0 ? 1 : -1;
    mixed.fill(0, 0, length);
    divisor.fill(0, 0, length);
    for (let t = 0; t < deltas.length; t++) {
      const w = weights[t];
      const delta = deltas[t];
      for (let j = 0; j < length; j++) {
        const v = w * delta[start + j];
        if (v * election[j] > 0) {
          mixed[j] += v;
          divisor[j] += w;
        }
      }
    }
    for (let j = 0; j < length; j++) {
      const d = divisor[j];
      const m = normalize && d !== 0 ? mixed[j] / d : mixed[j];
      out[start + j] = round(base[start + j] + lambda * m);
    }
  }
  return out;
}

/** Weighted sum of whole tensors (no base), optionally divided by the sum of the weights. */
export function weightedSum(tensors: Float32Array[], weights: readonly number[], normalize: boolean, out: Float32Array, roundToOdd = false): Float32Array {
  const round = roundToOdd ? roundToOddFloat32 : (x: number) => x;
  let weightSum = 0;
  for (const w of weights) weightSum += w;
  const scale = normalize ? 1 / weightSum : 1;
  const sum = new Float64Array(BLOCK);
  for (let start = 0; start < out.length; start += BLOCK) {
    const length = Math.min(BLOCK, out.length - start);
    sum.fill(0, 0, length);
    for (let t = 0; t < tensors.length; t++) {
      const w = weights[t];
      const tensor = tensors[t];
      for (let j = 0; j < length; j++) sum[j] += w * tensor[start + j];
    }
    for (let j = 0; j < length; j++) out[start + j] = round(sum[j] * scale);
  }
  return out;
}

/** x[i] −= base[i]: turns a fine-tune's tensor into its task vector, in place. */
export function subtractInPlace(x: Float32Array, base: Float32Array): void {
  if (allInWasm(x, base)) {
    wasmKernels().subtractInPlace(x.byteOffset, base.byteOffset, x.length);
    return;
  }
  for (let i = 0; i < x.length; i++) x[i] -= base[i];
}
