/** Vector arithmetic the spherical methods share, in float64 over float32 arrays. */

/** Σ a[i]·b[i] over the elements `at(k)` for k < length. */
export function dot(a: Float32Array | Float64Array, b: Float32Array | Float64Array, length: number, at: (k: number) => number): number {
  let sum = 0;
  for (let k = 0; k < length; k++) sum += a[at(k)] * b[at(k)];
  return sum;
}

/** The flat indices of one vector of a tensor: the whole tensor, a row (last axis) or a column (first axis). */
export function vectorsOf(shape: readonly number[], elements: number, along: 'all' | 'last' | 'first'): { count: number; length: number; index: (vector: number, k: number) => number } {
  if (along === 'all' || shape.length < 2) return { count: 1, length: elements, index: (_v, k) => k };
  if (along === 'last') {
    const length = shape[shape.length - 1];
    return { count: length === 0 ? 0 : elements / length, length, index: (v, k) => v * length + k };
  }
  const length = shape[0];
  const stride = length === 0 ? 0 : elements / length;
  return { count: stride, length, index: (v, k) => v + k * stride };
}
