/**
 * The safetensors dtypes, their sizes, and exact conversions between the float formats.
 * F16 and BF16 are decoded through 65,536-entry tables (exact) and encoded with
 * round-to-nearest-even, the rounding PyTorch and NumPy use, so a tensor that round-trips
 * through apl-merge is bit-identical to one written by them.
 */

export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_SIZES;

/** The float dtypes a merge computes on; every other dtype is carried over from the base. */
export const FLOAT_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type FloatDtype = (typeof FLOAT_DTYPES)[number];

export function isDtype(value: string): value is Dtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZES, value);
}

export function isFloatDtype(dtype: Dtype): dtype is FloatDtype {
  return (FLOAT_DTYPES as readonly string[]).includes(dtype);
}

export function dtypeSize(dtype: Dtype): number {
  return DTYPE_SIZES[dtype];
}

/** mergekit's `dtype:` spellings. */
const CONFIG_DTYPE_NAMES: Record<string, FloatDtype> = {
  float32: 'F32',
  fp32: 'F32',
  float16: 'F16',
  fp16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  bf16: 'BF16',
};

export function parseConfigDtype(name: string): FloatDtype | undefined {
  return CONFIG_DTYPE_NAMES[name.toLowerCase()];
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function halfBitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

let f16Table: Float32Array | undefined;
let bf16Table: Float32Array | undefined;

function f16DecodeTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = halfBitsToFloat(h);
  }
  return f16Table;
}

function bf16DecodeTable(): Float32Array {
  if (!bf16Table) {
    bf16Table = new Float32Array(65536);
    const asU32 = new Uint32Array(bf16Table.buffer);
    for (let h = 0; h < 65536; h++) asU32[h] = h << 16;
  }
  return bf16Table;
}

/** Float32 bits → bfloat16 bits, round-to-nearest-even; NaN stays a (quiet) NaN. */
export function float32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Float32 bits → IEEE half bits, round-to-nearest-even, with subnormals, overflow to ±Inf. */
export function float32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const absBits = bits & 0x7fffffff;
  if (absBits >= 0x7f800000) {
    // Inf stays Inf; NaN keeps a quiet-NaN payload bit.
    return sign | 0x7c00 | (absBits > 0x7f800000 ? 0x200 : 0);
  }
  if (absBits >= 0x477ff000) return sign | 0x7c00; // rounds to beyond 65504
  if (absBits < 0x33000000) return sign; // below half of the smallest subnormal: ±0
  const exponent = absBits >>> 23;
  if (exponent < 113) {
    // Subnormal half: shift the full mantissa (with its implicit 1) into place, rounding to even.
    const mantissa = (absBits & 0x7fffff) | 0x800000;
    const shift = 126 - exponent; // 14..24
    const halfway = 1 << (shift - 1);
    const remainder = mantissa & ((1 << shift) - 1);
    let result = mantissa >>> shift;
    if (remainder > halfway || (remainder === halfway && (result & 1))) result += 1;
    return sign | result;
  }
  // Normal half: rebias the exponent and round 13 dropped mantissa bits; a carry may bump the exponent.
  const rebased = absBits - ((127 - 15) << 23);
  const rounded = rebased + 0xfff + ((rebased >>> 13) & 1);
  return sign | (rounded >>> 13);
}

/**
 * Decodes raw little-endian bytes of a float dtype to float32, into `out` when given. Without
 * `out`, F32 input is returned as a view of the same memory (no copy) when aligned, and F16/BF16
 * are decoded into a new array.
 */
export function decodeToFloat32(bytes: Uint8Array, dtype: FloatDtype, out?: Float32Array): Float32Array {
  const count = bytes.byteLength / dtypeSize(dtype);
  if (out && out.length !== count) throw new RangeError(`decodeToFloat32: output holds ${out.length} values, input has ${count}`);
  if (dtype === 'F32') {
    if (out) {
      out.set(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
      return out;
    }
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
    return new Float32Array(bytes.slice().buffer);
  }
  const result = out ?? new Float32Array(count);
  const halves = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, count) : new Uint16Array(bytes.slice().buffer);
  const table = dtype === 'F16' ? f16DecodeTable() : bf16DecodeTable();
  for (let i = 0; i < count; i++) result[i] = table[halves[i]];
  return result;
}

/**
 * Encodes float32 values as raw little-endian bytes of a float dtype. For F32 the result is a
 * view of the same memory (no copy): callers own `values` and hand it over.
 */
export function encodeFromFloat32(values: Float32Array, dtype: FloatDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const halves = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const encode = dtype === 'F16' ? float32BitsToF16 : float32BitsToBf16;
  for (let i = 0; i < values.length; i++) halves[i] = encode(bits[i]);
  return new Uint8Array(halves.buffer);
}

/** Rounds a JS number to float32 and returns its bits (for tests and scalar code). */
export function float32Bits(value: number): number {
  scratchF32[0] = value;
  return scratchU32[0];
}
