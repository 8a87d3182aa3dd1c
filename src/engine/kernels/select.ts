/**
 * Linear-time top-k selection by magnitude, for the sparsifiers.
 *
 * For non-negative floats the IEEE bit pattern orders like the value, so |x|'s bits
 * (bits & 0x7fffffff) can be radix-selected: one pass histograms the high 15 bits, a second
 * histograms the low 16 bits inside the bucket holding the k-th largest. Two passes over the data
 * and no copy, where sorting would be O(n log n) and allocate.
 */

import { wasmKernels, wasmAddress } from './wasm';

function inWasmMemory(bits: Uint32Array): boolean {
  return wasmAddress(new Float32Array(bits.buffer, bits.byteOffset, bits.length)) !== undefined;
}

export interface TopKCut {
  /** Magnitude bits of the k-th largest element. */
  thresholdBits: number;
  /** How many elements equal to the threshold belong to the top k (the first ones in index order). */
  takeAtThreshold: number;
  /** How many elements equal the threshold in all. */
  countAtThreshold: number;
}

const HIGH_BINS = 1 << 15;
const LOW_BINS = 1 << 16;
const highHistogram = new Uint32Array(HIGH_BINS);
const lowHistogram = new Uint32Array(LOW_BINS);

/**
 * Finds where the k largest magnitudes of `bits` (float32 bit patterns, any sign) end.
 * Requires 0 < k <= bits.length and no NaN among the values.
 */
export function topKCut(bits: Uint32Array, k: number): TopKCut {
  const n = bits.length;
  if (!(k > 0 && k <= n)) throw new RangeError(`topKCut: k=${k} outside 1..${n}`);
  if (inWasmMemory(bits)) {
    const kernels = wasmKernels();
    kernels.topKCut(bits.byteOffset, n, k);
    const results = new Uint32Array(kernels.memory.buffer, kernels.resultsPointer(), 3);
    return { thresholdBits: results[0], takeAtThreshold: results[1], countAtThreshold: results[2] };
  }
  highHistogram.fill(0);
  for (let i = 0; i < n; i++) highHistogram[(bits[i] & 0x7fffffff) >>> 16]++;
  let above = 0;
  let bucket = HIGH_BINS - 1;
  while (above + highHistogram[bucket] < k) above += highHistogram[bucket--];

  lowHistogram.fill(0);
  for (let i = 0; i < n; i++) {
    const magnitude = bits[i] & 0x7fffffff;
    if (magnitude >>> 16 === bucket) lowHistogram[magnitude & 0xffff]++;
  }
  let low = LOW_BINS - 1;
  while (above + lowHistogram[low] < k) above += lowHistogram[low--];
  return { thresholdBits: ((bucket << 16) | low) >>> 0, takeAtThreshold: k - above, countAtThreshold: lowHistogram[low] };
}

/**
 * A membership test for "among the k largest magnitudes", evaluated in one forward pass:
 * call `next(i)` with increasing i, once per index.
 */
export function topKMembership(bits: Uint32Array, k: number): (index: number) => boolean {
  if (k <= 0) return () => false;
  if (k >= bits.length) return () => true;
  const { thresholdBits, takeAtThreshold } = topKCut(bits, k);
  let remainingAtThreshold = takeAtThreshold;
  return (i: number) => {
    const magnitude = bits[i] & 0x7fffffff;
    if (magnitude > thresholdBits) return true;
    if (magnitude === thresholdBits && remainingAtThreshold > 0) {
      remainingAtThreshold--;
      return true;
    }
    return false;
  };
}
