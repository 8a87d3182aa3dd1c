/**
 * Sparsifiers: each zeroes part of one task vector in place, as mergekit's `sparsify.py` does,
 * and optionally rescales the survivors so the expected delta is unchanged.
 * Inputs are float32 task vectors (fine-tune minus base) without NaN.
 */
import { topKCut, topKMembership } from './select';
import { StreamKey, streamWords } from './random';
import { allInWasm, wasmKernels } from './wasm';

export type SparsificationMethod = 'magnitude' | 'random' | 'magnitude_outliers' | 'della_magprune';

function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/**
 * Keeps the `keepCount` largest magnitudes (at the threshold magnitude, the first by position),
 * multiplied by the float32 `scale`; zeroes the rest.
 */
export function keepLargest(delta: Float32Array, keepCount: number, scale: number): void {
  if (keepCount <= 0) {
    delta.fill(0);
    return;
  }
  const bits = bitsOf(delta);
  const { thresholdBits, takeAtThreshold, countAtThreshold } = topKCut(bits, Math.min(keepCount, delta.length));
  if (allInWasm(delta)) {
    wasmKernels().applyTopK(delta.byteOffset, delta.length, thresholdBits, takeAtThreshold, countAtThreshold, scale);
    return;
  }
  let remainingAtThreshold = takeAtThreshold;
  for (let i = 0; i < delta.length; i++) {
    const magnitude = bits[i] & 0x7fffffff;
    if (magnitude > thresholdBits) {
      if (scale !== 1) delta[i] *= scale;
    } else if (magnitude === thresholdBits && remainingAtThreshold > 0) {
      remainingAtThreshold--;
      if (scale !== 1) delta[i] *= scale;
    } else {
      delta[i] = 0;
    }
  }
}

/**
 * Keeps element i of `values` when word (offset + i) of the key's stream is below `threshold`
 * (keep probability threshold / 2^32), multiplied by the float32 `scale`; zeroes it otherwise.
 * The product of two float32 values rounds the same in JS, WASM and WGSL, so the CPU and the GPU
 * drop and rescale identically.
 */
export function dropByStream(values: Float32Array, key: StreamKey, offset: number, threshold: number, scale: number): void {
  if (allInWasm(values)) {
    wasmKernels().dropBernoulli(values.byteOffset, values.length, key.k0, key.k1, offset, threshold, scale);
    return;
  }
  const words = new Uint32Array(Math.min(values.length, 4096));
  for (let start = 0; start < values.length; start += words.length) {
    const length = Math.min(words.length, values.length - start);
    streamWords(key, offset + start, words.subarray(0, length));
    for (let j = 0; j < length; j++) values[start + j] = words[j] < threshold ? values[start + j] * scale : 0;
  }
}

/** The integer threshold of keep probability p (< 1): a word w is kept when w < threshold. */
export function keepThreshold(probability: number): number {
  // 2^32 − 1 is never a threshold: the GPU kernels use it to mean "keep every entry".
  return Math.min(0xfffffffe, Math.max(0, Math.floor(probability * 4294967296)));
}

/**
 * Model Breadcrumbs' counts for n entries: the entries kept are those among the `upper` largest
 * magnitudes but not among the `outliers` largest (ties broken by position). It removes the
 * `gamma` fraction of largest magnitudes, then the smallest, so that floor(density·n) remain;
 * when density + gamma > 1, fewer outliers are removed.
 */
export function breadcrumbsCounts(n: number, density: number, gamma: number): { upper: number; outliers: number } {
  const target = Math.floor(density * n);
  let outliers = Math.floor(gamma * n);
  let bottom = n - target - outliers;
  if (bottom < 0) {
    outliers += bottom;
    bottom = 0;
  }
  return { upper: n - bottom, outliers };
}

/** Model Breadcrumbs (see breadcrumbsCounts), in place; density ≥ 1 keeps everything. */
export function breadcrumbsPrune(delta: Float32Array, density: number, gamma: number): void {
  if (density >= 1) return;
  const { upper, outliers } = breadcrumbsCounts(delta.length, density, gamma);
  const bits = bitsOf(delta);
  const inUpper = topKMembership(bits, upper);
  const inOutliers = topKMembership(bits, outliers);
  for (let i = 0; i < delta.length; i++) {
    if (!inUpper(i) || inOutliers(i)) delta[i] = 0;
  }
}

/** Ranks (1 = smallest magnitude) of one row, ties broken by position. */
function rowRanks(row: Float32Array, ranks: Float64Array): void {
  const n = row.length;
  const bits = bitsOf(row);
  const POSITIONS = 4194304; // 2^22: magnitude bits (< 2^31) × 2^22 + position stays below 2^53
  if (n <= POSITIONS) {
    const keys = new Float64Array(n);
    for (let j = 0; j < n; j++) keys[j] = (bits[j] & 0x7fffffff) * POSITIONS + j;
    keys.sort();
    for (let r = 0; r < n; r++) ranks[keys[r] % POSITIONS] = r + 1;
    return;
  }
  const order = Array.from({ length: n }, (_, j) => j);
  order.sort((p, q) => (bits[p] & 0x7fffffff) - (bits[q] & 0x7fffffff) || p - q);
  for (let r = 0; r < n; r++) ranks[order[r]] = r + 1;
}

/**
 * DELLA's MagPrune: within each row, keep probability rises linearly with magnitude rank from
 * density − ε (smallest) to density + ε (largest); survivors ×1/p when rescaling (unbiased).
 * A tensor of rank < 2 is one row; higher ranks are rows of shape[0] × the rest.
 */
export function dellaPrune(
  delta: Float32Array,
  shape: readonly number[],
  density: number,
  epsilon: number,
  key: StreamKey,
  rescale: boolean,
): void {
  if (density >= 1) return;
  if (density <= 0) {
    delta.fill(0);
    return;
  }
  const rows = shape.length < 2 ? 1 : shape[0];
  const width = rows === 0 ? 0 : delta.length / rows;
  const ranks = new Float64Array(width);
  const words = new Uint32Array(width);
  for (let r = 0; r < rows; r++) {
    const row = delta.subarray(r * width, (r + 1) * width);
    rowRanks(row, ranks);
    streamWords(key, r * width, words);
    const span = width > 1 ? width - 1 : 1;
    for (let j = 0; j < width; j++) {
      const probability = density - epsilon + ((ranks[j] - 1) / span) * 2 * epsilon;
      row[j] = words[j] / 4294967296 < probability ? (rescale ? row[j] / probability : row[j]) : 0;
    }
  }
}
