// AssemblyScript: compiled to WebAssembly with SIMD by `npm run build:wasm`.
// The hot loops of the task-vector merges, over float32 tensors placed in this module's memory
// by the JS side (src/engine/kernels/wasm.ts). Each kernel computes exactly what its typed-array
// twin in ../combine.ts, ../select.ts or ../sparsify.ts computes, bit for bit (the tests check):
// float64 accumulation, the same order of operations, round-to-nearest on the final store.

const HIGH_BINS: i32 = 1 << 15;
const LOW_BINS: i32 = 1 << 16;
const histogramHigh: usize = memory.data(HIGH_BINS * 4, 16);
const histogramLow: usize = memory.data(LOW_BINS * 4, 16);
const results: usize = memory.data(16, 16);

/** First free byte: the JS arena places tensors from here on. */
export function heapBase(): usize {
  return __heap_base;
}

/** Where topKCut leaves its two results (u32 threshold bits, i32 take-at-threshold). */
export function resultsPointer(): usize {
  return results;
}

/** Number of NaN or ±Inf values (exponent bits all ones) among n float32 values. */
export function countNonFinite(pointer: usize, n: i32): i32 {
  const exponent = i32x4.splat(0x7f800000);
  let counts = i32x4.splat(0);
  let i: i32 = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(pointer + (<usize>i << 2));
    counts = i32x4.sub(counts, i32x4.eq(v128.and(v, exponent), exponent));
  }
  let count = i32x4.extract_lane(counts, 0) + i32x4.extract_lane(counts, 1) + i32x4.extract_lane(counts, 2) + i32x4.extract_lane(counts, 3);
  for (; i < n; i++) {
    if ((load<u32>(pointer + (<usize>i << 2)) & 0x7f800000) == 0x7f800000) count++;
  }
  return count;
}

/** x[i] = x[i] − base[i]: a task vector from a fine-tune, in place. */
export function subtractInPlace(x: usize, base: usize, n: i32): void {
  let i: i32 = 0;
  for (; i + 4 <= n; i += 4) {
    const offset = <usize>i << 2;
    v128.store(x + offset, f32x4.sub(v128.load(x + offset), v128.load(base + offset)));
  }
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    store<f32>(x + offset, load<f32>(x + offset) - load<f32>(base + offset));
  }
}

/** Radix selection of the k-th largest magnitude; see ../select.ts. Results at resultsPointer(). */
export function topKCut(pointer: usize, n: i32, k: i32): void {
  memory.fill(histogramHigh, 0, HIGH_BINS * 4);
  for (let i: i32 = 0; i < n; i++) {
    const bucket = (load<u32>(pointer + (<usize>i << 2)) & 0x7fffffff) >>> 16;
    const slot = histogramHigh + (<usize>bucket << 2);
    store<u32>(slot, load<u32>(slot) + 1);
  }
  let above: i32 = 0;
  let bucket: i32 = HIGH_BINS - 1;
  while (above + <i32>load<u32>(histogramHigh + (<usize>bucket << 2)) < k) {
    above += <i32>load<u32>(histogramHigh + (<usize>bucket << 2));
    bucket--;
  }
  memory.fill(histogramLow, 0, LOW_BINS * 4);
  for (let i: i32 = 0; i < n; i++) {
    const magnitude = load<u32>(pointer + (<usize>i << 2)) & 0x7fffffff;
    if (<i32>(magnitude >>> 16) == bucket) {
      const slot = histogramLow + (<usize>(magnitude & 0xffff) << 2);
      store<u32>(slot, load<u32>(slot) + 1);
    }
  }
  let low: i32 = LOW_BINS - 1;
  while (above + <i32>load<u32>(histogramLow + (<usize>low << 2)) < k) {
    above += <i32>load<u32>(histogramLow + (<usize>low << 2));
    low--;
  }
  store<u32>(results, (<u32>bucket << 16) | <u32>low);
  store<i32>(results + 4, k - above);
  store<i32>(results + 8, <i32>load<u32>(histogramLow + (<usize>low << 2)));
}

/**
 * Keeps magnitudes above the threshold and the first `take` equal to it; zeroes the rest; kept × scale.
 * When every element at the threshold is kept (`take` == `countAtThreshold`, the usual case) the
 * test is a plain ≥ and runs four lanes at a time.
 */
export function applyTopK(pointer: usize, n: i32, thresholdBits: u32, take: i32, countAtThreshold: i32, scale: f32): void {
  if (take == countAtThreshold) {
    const threshold = i32x4.splat(thresholdBits);
    const magnitudeMask = i32x4.splat(0x7fffffff);
    const scales = f32x4.splat(scale);
    let i: i32 = 0;
    for (; i + 4 <= n; i += 4) {
      const address = pointer + (<usize>i << 2);
      const v = v128.load(address);
      const keep = i32x4.ge_u(v128.and(v, magnitudeMask), threshold);
      const kept = scale != 1 ? f32x4.mul(v, scales) : v;
      v128.store(address, v128.and(kept, keep));
    }
    for (; i < n; i++) {
      const address = pointer + (<usize>i << 2);
      const value = load<f32>(address);
      store<f32>(address, (load<u32>(address) & 0x7fffffff) >= thresholdBits ? (scale != 1 ? value * scale : value) : 0);
    }
    return;
  }
  let remaining = take;
  for (let i: i32 = 0; i < n; i++) {
    const address = pointer + (<usize>i << 2);
    const magnitude = load<u32>(address) & 0x7fffffff;
    let keep = magnitude > thresholdBits;
    if (magnitude == thresholdBits && remaining > 0) {
      remaining--;
      keep = true;
    }
    const value = load<f32>(address);
    store<f32>(address, keep ? (scale != 1 ? value * scale : value) : 0);
  }
}

// float64 → float32 rounded to odd (truncate toward zero, set the last bit if anything was cut),
// so that rounding to a 16-bit float afterwards is a single correct rounding; see combine.ts.
// An overflow stays infinite, for the non-finite check.
@inline
function storeRounded(at: usize, x: f64, odd: i32): void {
  let r = <f32>x;
  if (odd != 0 && <f64>r != x && Math.abs(<f64>r) < Infinity) {
    let bits = reinterpret<u32>(r);
    if (Math.abs(<f64>r) > Math.abs(x)) bits -= 1;
    r = reinterpret<f32>(bits | 1);
  }
  store<f32>(at, r);
}

@inline
function storePair(at: usize, merged: v128, odd: i32): void {
  if (odd == 0) {
    v128.store64_lane(at, f32x4.demote_f64x2_zero(merged), 0);
    return;
  }
  storeRounded(at, f64x2.extract_lane(merged, 0), odd);
  storeRounded(at + 4, f64x2.extract_lane(merged, 1), odd);
}

// combine(): consensus 0 = none, 1 = by weighted sum, 2 = by sign count; roundToOdd 1 rounds the
// float64 results to float32 to odd (for outputs written as float16 or bfloat16).
// `deltas` points at `count` u32 addresses; `weights` at `count` f64 values.
export function combine(base: usize, deltas: usize, weights: usize, count: i32, n: i32, out: usize, consensus: i32, normalize: i32, lambda: f64, roundToOdd: i32): void {
  const zero = f64x2.splat(0);
  const one = f64x2.splat(1);
  const minusOne = f64x2.splat(-1);
  let i: i32 = 0;
  if (consensus == 0) {
    let weightSum: f64 = 0;
    for (let t: i32 = 0; t < count; t++) weightSum += load<f64>(weights + (<usize>t << 3));
    const divisor: f64 = normalize != 0 && Math.abs(weightSum) >= 1e-8 ? weightSum : 1;
    const scale = f64x2.splat(lambda / divisor);
    for (; i + 2 <= n; i += 2) {
      const offset = <usize>i << 2;
      let mixed = zero;
      for (let t: i32 = 0; t < count; t++) {
        const delta = f64x2.promote_low_f32x4(v128.load64_zero(<usize>load<u32>(deltas + (<usize>t << 2)) + offset));
        mixed = f64x2.add(mixed, f64x2.mul(f64x2.splat(load<f64>(weights + (<usize>t << 3))), delta));
      }
      const merged = f64x2.add(f64x2.promote_low_f32x4(v128.load64_zero(base + offset)), f64x2.mul(mixed, scale));
      storePair(out + offset, merged, roundToOdd);
    }
    for (; i < n; i++) {
      const offset = <usize>i << 2;
      let mixed: f64 = 0;
      for (let t: i32 = 0; t < count; t++) {
        mixed += load<f64>(weights + (<usize>t << 3)) * <f64>load<f32>(<usize>load<u32>(deltas + (<usize>t << 2)) + offset);
      }
      storeRounded(out + offset, <f64>load<f32>(base + offset) + mixed * (lambda / divisor), roundToOdd);
    }
    return;
  }
  const lambdas = f64x2.splat(lambda);
  for (; i + 2 <= n; i += 2) {
    const offset = <usize>i << 2;
    let election = zero;
    for (let t: i32 = 0; t < count; t++) {
      const delta = f64x2.promote_low_f32x4(v128.load64_zero(<usize>load<u32>(deltas + (<usize>t << 2)) + offset));
      const v = f64x2.mul(f64x2.splat(load<f64>(weights + (<usize>t << 3))), delta);
      if (consensus == 1) election = f64x2.add(election, v);
      else election = f64x2.add(election, f64x2.add(v128.bitselect(one, zero, f64x2.gt(v, zero)), v128.bitselect(minusOne, zero, f64x2.lt(v, zero))));
    }
    const sign = v128.bitselect(one, minusOne, f64x2.ge(election, zero));
    let mixed = zero;
    let divisor = zero;
    for (let t: i32 = 0; t < count; t++) {
      const w = f64x2.splat(load<f64>(weights + (<usize>t << 3)));
      const v = f64x2.mul(w, f64x2.promote_low_f32x4(v128.load64_zero(<usize>load<u32>(deltas + (<usize>t << 2)) + offset)));
      const agree = f64x2.gt(f64x2.mul(v, sign), zero);
      mixed = f64x2.add(mixed, v128.and(v, agree));
      divisor = f64x2.add(divisor, v128.and(w, agree));
    }
    if (normalize != 0) {
      const safe = v128.bitselect(one, divisor, f64x2.eq(divisor, zero));
      mixed = f64x2.div(mixed, safe);
    }
    const merged = f64x2.add(f64x2.promote_low_f32x4(v128.load64_zero(base + offset)), f64x2.mul(lambdas, mixed));
    storePair(out + offset, merged, roundToOdd);
  }
  for (; i < n; i++) {
    const offset = <usize>i << 2;
    let election: f64 = 0;
    for (let t: i32 = 0; t < count; t++) {
      const v = load<f64>(weights + (<usize>t << 3)) * <f64>load<f32>(<usize>load<u32>(deltas + (<usize>t << 2)) + offset);
      election += consensus == 1 ? v : (v > 0 ? 1 : v < 0 ? -1 : 0);
    }
    const sign: f64 = election >= 0 ? 1 : -1;
    let mixed: f64 = 0;
    let divisor: f64 = 0;
    for (let t: i32 = 0; t < count; t++) {
      const w = load<f64>(weights + (<usize>t << 3));
      const v = w * <f64>load<f32>(<usize>load<u32>(deltas + (<usize>t << 2)) + offset);
      if (v * sign > 0) {
        mixed += v;
        divisor += w;
      }
    }
    const m: f64 = normalize != 0 && divisor != 0 ? mixed / divisor : mixed;
    storeRounded(out + offset, <f64>load<f32>(base + offset) + lambda * m, roundToOdd);
  }
}

// Threefry-2x32-20, the counter-based generator of merge drops; see ../random.ts, which this
// matches word for word (the tests check). Word g of a stream is word (g & 1) of the block with
// counter (g >> 1): low 32 bits in c0, high bits in c1.
let threefryWord0: u32 = 0;
let threefryWord1: u32 = 0;

const ROTATIONS: StaticArray<u32> = [13, 15, 26, 6, 17, 29, 16, 24];

@inline
function keyWord(k0: u32, k1: u32, k2: u32, index: u32): u32 {
  return index == 0 ? k0 : index == 1 ? k1 : k2;
}

function threefry(k0: u32, k1: u32, c0: u32, c1: u32): void {
  const k2: u32 = 0x1bd11bda ^ k0 ^ k1;
  let x0: u32 = c0 + k0;
  let x1: u32 = c1 + k1;
  for (let round: u32 = 0; round < 20; round++) {
    x0 += x1;
    x1 = rotl<u32>(x1, unchecked(ROTATIONS[round & 7])) ^ x0;
    if ((round & 3) == 3) {
      const injection = (round + 1) >> 2;
      x0 += keyWord(k0, k1, k2, injection % 3);
      x1 += keyWord(k0, k1, k2, (injection + 1) % 3) + injection;
    }
  }
  threefryWord0 = x0;
  threefryWord1 = x1;
}

@inline
function streamWord(k0: u32, k1: u32, g: u64): u32 {
  const block = g >> 1;
  threefry(k0, k1, <u32>block, <u32>(block >> 32));
  return (g & 1) == 0 ? threefryWord0 : threefryWord1;
}

/** Four blocks at once: counters (c0 + 0..3, c1); returns words 2c0..2c0+7 in order, in two vectors. */
let simdLow: v128 = i32x4.splat(0);
let simdHigh: v128 = i32x4.splat(0);

function threefry4(k0: u32, k1: u32, c0: u32, c1: u32): void {
  const k2: u32 = 0x1bd11bda ^ k0 ^ k1;
  let x0 = i32x4.add(i32x4(0, 1, 2, 3), i32x4.splat(c0 + k0));
  let x1 = i32x4.splat(c1 + k1);
  for (let round: u32 = 0; round < 20; round++) {
    const r = unchecked(ROTATIONS[round & 7]);
    x0 = i32x4.add(x0, x1);
    x1 = v128.xor(v128.or(i32x4.shl(x1, r), i32x4.shr_u(x1, 32 - r)), x0);
    if ((round & 3) == 3) {
      const injection = (round + 1) >> 2;
      x0 = i32x4.add(x0, i32x4.splat(keyWord(k0, k1, k2, injection % 3)));
      x1 = i32x4.add(x1, i32x4.splat(keyWord(k0, k1, k2, (injection + 1) % 3) + injection));
    }
  }
  simdLow = v128.shuffle<i32>(x0, x1, 0, 4, 1, 5);
  simdHigh = v128.shuffle<i32>(x0, x1, 2, 6, 3, 7);
}

/**
 * DARE's drop over n floats whose first is word `offset` of the stream (k0, k1): keeps x when the
 * word is below `threshold`, times `scale`; zeroes it otherwise.
 */
export function dropBernoulli(pointer: usize, n: i32, k0: u32, k1: u32, offset: f64, threshold: u32, scale: f32): void {
  const start = <u64>offset;
  let i: i32 = 0;
  while (i < n && ((start + <u64>i) & 7) != 0) {
    const address = pointer + (<usize>i << 2);
    store<f32>(address, streamWord(k0, k1, start + <u64>i) < threshold ? load<f32>(address) * scale : 0);
    i++;
  }
  const thresholds = i32x4.splat(threshold);
  const scales = f32x4.splat(scale);
  for (; i + 8 <= n; i += 8) {
    const block = (start + <u64>i) >> 1;
    threefry4(k0, k1, <u32>block, <u32>(block >> 32));
    const address = pointer + (<usize>i << 2);
    const low = v128.load(address);
    v128.store(address, v128.and(f32x4.mul(low, scales), i32x4.lt_u(simdLow, thresholds)));
    const high = v128.load(address + 16);
    v128.store(address + 16, v128.and(f32x4.mul(high, scales), i32x4.lt_u(simdHigh, thresholds)));
  }
  for (; i < n; i++) {
    const address = pointer + (<usize>i << 2);
    store<f32>(address, streamWord(k0, k1, start + <u64>i) < threshold ? load<f32>(address) * scale : 0);
  }
}
