import { decodeToFloat32, encodeFromFloat32, float32Bits, float32BitsToBf16, float32BitsToF16 } from '../src/engine/checkpoint/dtype';
import { halfValues, HalfType, roundToHalf } from './helpers/rounding';
import { roundToOddFloat32 } from '../src/engine/kernels/combine';

function halfToFloat(h: number): number {
  return decodeToFloat32(new Uint8Array(new Uint16Array([h]).buffer), 'F16')[0];
}

function bitsToFloat(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0];
}

describe('float16 conversion', () => {
  it('round-trips every finite half exactly', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const exponent = (h >> 10) & 0x1f;
      if (exponent === 0x1f) continue;
      if (float32BitsToF16(float32Bits(halfToFloat(h))) !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds to nearest, ties to even, between every pair of adjacent positive halves', () => {
    const wrong: string[] = [];
    for (let h = 0; h < 0x7bff; h++) {
      const low = halfToFloat(h);
      const high = halfToFloat(h + 1);
      const midBits = float32Bits((low + high) / 2); // exact: float32 has 13 more mantissa bits
      const even = h % 2 === 0 ? h : h + 1;
      if (float32BitsToF16(midBits) !== even) wrong.push(`midpoint after ${h}`);
      if (float32BitsToF16(midBits + 1) !== h + 1) wrong.push(`above midpoint after ${h}`);
      if (float32BitsToF16(midBits - 1) !== h) wrong.push(`below midpoint after ${h}`);
      // negative values mirror
      if (float32BitsToF16((midBits | 0x80000000) >>> 0) !== (even | 0x8000)) wrong.push(`negative midpoint after ${h}`);
    }
    expect(wrong).toEqual([]);
  });

  it('overflows to infinity past 65520, keeps NaN and infinities, flushes below half the smallest subnormal', () => {
    expect(float32BitsToF16(float32Bits(65504))).toBe(0x7bff);
    expect(float32BitsToF16(float32Bits(65519.99))).toBe(0x7bff);
    expect(float32BitsToF16(float32Bits(65520))).toBe(0x7c00);
    expect(float32BitsToF16(float32Bits(-1e6))).toBe(0xfc00);
    expect(float32BitsToF16(float32Bits(Infinity))).toBe(0x7c00);
    expect(float32BitsToF16(float32Bits(-Infinity))).toBe(0xfc00);
    expect(Number.isNaN(halfToFloat(float32BitsToF16(float32Bits(NaN))))).toBe(true);
    expect(float32BitsToF16(float32Bits(2 ** -25))).toBe(0); // exactly half the smallest subnormal: ties to even (0)
    expect(float32BitsToF16(float32Bits(2 ** -25 * 1.0001))).toBe(1);
    expect(float32BitsToF16(float32Bits(2 ** -26))).toBe(0);
    expect(float32BitsToF16(float32Bits(-0))).toBe(0x8000);
  });
});

describe('bfloat16 conversion', () => {
  it('rounds to nearest even on the 16 dropped bits', () => {
    expect(float32BitsToBf16(0x3f800000)).toBe(0x3f80); // 1.0 exact
    expect(float32BitsToBf16(0x3f808000)).toBe(0x3f80); // halfway, 0x3f80 is even: stays
    expect(float32BitsToBf16(0x3f818000)).toBe(0x3f82); // halfway, 0x3f81 is odd: up
    expect(float32BitsToBf16(0x3f808001)).toBe(0x3f81); // just above halfway: up
    expect(float32BitsToBf16(0x3f807fff)).toBe(0x3f80); // just below: down
    expect(float32BitsToBf16(0x7f7fffff)).toBe(0x7f80); // max float rounds up to +Inf, as PyTorch does
    expect(float32BitsToBf16(0xff800000)).toBe(0xff80); // -Inf
    const nan = float32BitsToBf16(0x7f800001); // signalling NaN with a low payload must stay NaN
    expect(nan & 0x7f80).toBe(0x7f80);
    expect(nan & 0x7f).not.toBe(0);
  });

  it('round-trips every bfloat16 value through float32', () => {
    const all = new Uint16Array(0x10000).map((_, i) => i);
    const decoded = decodeToFloat32(new Uint8Array(all.buffer), 'BF16');
    const encoded = new Uint16Array(encodeFromFloat32(decoded, 'BF16').buffer);
    const wrong: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) continue; // NaNs: payload may be quietened
      if (encoded[h] !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  it('matches the value of the rounded float', () => {
    const values = Float32Array.from([3.14159, -2.71828, 1e-20, 123456.789]);
    const bf = decodeToFloat32(encodeFromFloat32(values, 'BF16'), 'BF16');
    for (let i = 0; i < values.length; i++) {
      expect(Math.abs(bf[i] - values[i]) / Math.abs(values[i])).toBeLessThanOrEqual(2 ** -9);
      expect(bitsToFloat(float32Bits(bf[i]) & 0xffff0000)).toBe(bf[i]);
    }
  });
});

describe('rounding float32 to float16 and bfloat16, against a rule by value', () => {
  // Finite non-negative values in order of their bits (halves 0..0x7bff, bfloat16s 0..0x7f7f), then
  // the first value past the largest (65536, 2^128), which rounding up from it reaches.
  const halves = halfValues('F16');
  const brains = halfValues('BF16');
  const rule = (type: HalfType) => (bits: number) => roundToHalf(bitsToFloat(bits), type);

  it.each([
    ['bfloat16', brains, 'BF16', float32BitsToBf16],
    ['float16', halves, 'F16', float32BitsToF16],
  ] as const)('%s: every bucket edge, halfway point and their neighbours, both signs, round as the rule says', (_name, values, type, convert) => {
    const expected = rule(type);
    const wrong: string[] = [];
    const check = (bits: number) => {
      const b = bits >>> 0;
      if (convert(b) !== expected(b)) wrong.push(`0x${b.toString(16)}: got 0x${convert(b).toString(16)}, rule 0x${expected(b).toString(16)}`);
      const negative = (b | 0x80000000) >>> 0;
      if (convert(negative) !== expected(negative)) wrong.push(`0x${negative.toString(16)}: got 0x${convert(negative).toString(16)}, rule 0x${expected(negative).toString(16)}`);
    };
    for (let h = 0; h + 1 < values.length; h++) {
      const low = float32Bits(values[h]);
      const high = float32Bits(values[h + 1]);
      // The halfway point between adjacent values is a float32 (it needs one bit more than the format).
      const mid = float32Bits((values[h] + values[h + 1]) / 2);
      for (const bits of [low, low + 1, mid - 1, mid, mid + 1, high - 1]) check(bits);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });

  it.each([
    ['bfloat16', 'BF16', float32BitsToBf16],
    ['float16', 'F16', float32BitsToF16],
  ] as const)('%s: a million random finite float32 bit patterns (seeded) round as the rule says', (_name, type, convert) => {
    const expected = rule(type);
    let state = 0x9e3779b9;
    const wrong: string[] = [];
    for (let i = 0; i < 1_000_000; i++) {
      state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      const bits = state;
      if ((bits & 0x7f800000) === 0x7f800000) continue; // Inf and NaN have their own test
      if (convert(bits) !== expected(bits)) wrong.push(`0x${bits.toString(16)}`);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });
});

describe('float64 → float32 rounded to odd', () => {
  it('is exact where float32 is, truncates and sets the last bit elsewhere, and keeps overflow infinite', () => {
    const bits = (x: number) => float32Bits(roundToOddFloat32(x));
    expect(bits(1.5)).toBe(float32Bits(1.5));
    expect(bits(1 + 2 ** -24)).toBe(0x3f800001); // between 1 and its successor: the odd one
    expect(bits(1 + 2 ** -23 - 2 ** -30)).toBe(0x3f800001); // nearest rounds up to 1 + 2^-23; to odd truncates to 1, then sets the last bit
    expect(bits(1 + 2 * 2 ** -23 + 2 ** -30)).toBe(0x3f800003);
    expect(bits(-(1 + 2 ** -24))).toBe(0xbf800001);
    expect(roundToOddFloat32(1e39)).toBe(Infinity);
    expect(roundToOddFloat32(-1e39)).toBe(-Infinity);
    expect(Number.isNaN(roundToOddFloat32(NaN))).toBe(true);
    expect(bits(2 ** -160)).toBe(0x00000001); // below the smallest subnormal: not zero, the odd bit
  });

  it.each([['BF16', float32BitsToBf16], ['F16', float32BitsToF16]] as const)('then rounded to %s, gives the single correct rounding of the float64, where rounding twice to nearest does not', (type, convert) => {
    // Just above a halfway point of the half type, by less than half a float32 ulp: rounding to
    // nearest float32 lands on the halfway point, and then ties go to even — down, wrongly.
    const ulp = type === 'BF16' ? 2 ** -7 : 2 ** -10;
    let wrongTwice = 0;
    let state = 12345;
    for (let i = 0; i < 200_000; i++) {
      state = (Math.imul(state ^ (state >>> 13), 0x5bd1e995) + 0x27d4eb2d) >>> 0;
      // The first 240: a quarter of a float32 ulp (2^-26) either side of the halfway points above 1;
      // then random values in [1, 1.01).
      const x = i < 240 ? 1 + (i >> 1) * ulp + ulp / 2 + (i % 2 ? 1 : -1) * 2 ** -26 : 1 + (state / 4294967296) * 0.01;
      const correct = roundToHalf(x, type);
      expect(convert(float32Bits(roundToOddFloat32(x)))).toBe(correct);
      if (convert(float32Bits(x)) !== correct) wrongTwice++;
    }
    expect(wrongTwice).toBeGreaterThan(0);
  });
});
