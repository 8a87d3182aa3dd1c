/**
 * Correct rounding to float16 and bfloat16 by value, independent of the engine's bit tricks: the
 * nearest of the format's values (binary search over all of them), ties to the one with an even
 * last bit, and past the largest finite value the next binade's first value standing for infinity
 * (IEEE's "as if the exponent were unbounded"). Works from any float64, so it is the single
 * rounding a float64 result should get. All differences are exact in float64.
 */
import { decodeToFloat32 } from '../../src/engine/checkpoint/dtype';

export type HalfType = 'F16' | 'BF16';

const INFINITY_BITS: Record<HalfType, number> = { F16: 0x7c00, BF16: 0x7f80 };
const tables = new Map<HalfType, Float64Array>();

/** Every finite non-negative value of the type in order of its bits, then the value standing for infinity. */
export function halfValues(type: HalfType): Float64Array {
  let values = tables.get(type);
  if (!values) {
    const count = INFINITY_BITS[type];
    const finite = decodeToFloat32(new Uint8Array(Uint16Array.from({ length: count }, (_, i) => i).buffer), type);
    values = new Float64Array(count + 1);
    values.set(finite);
    values[count] = 2 * finite[count - 1] - finite[count - 2];
    tables.set(type, values);
  }
  return values;
}

/** The bits of `value` rounded once, to nearest even, to the half type. */
export function roundToHalf(value: number, type: HalfType): number {
  const values = halfValues(type);
  const magnitude = Math.abs(value);
  let lo = 0;
  let hi = values.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (values[mid] <= magnitude) lo = mid;
    else hi = mid;
  }
  const below = magnitude - values[lo];
  const above = values[hi] - magnitude;
  const bits = below === 0 ? lo : below < above ? lo : above < below ? hi : lo % 2 === 0 ? lo : hi;
  const rounded = bits === values.length - 1 ? INFINITY_BITS[type] : bits;
  return value < 0 || Object.is(value, -0) ? rounded | 0x8000 : rounded;
}
