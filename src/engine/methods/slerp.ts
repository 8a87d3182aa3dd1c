/**
 * SLERP: spherical interpolation between the base and one other model, tensor by tensor, as
 * mergekit's `slerp` does it: both tensors are normalised (unless their norm is at most 1e-8), and
 * when the cosine of their angle exceeds 0.9995 in magnitude they are taken as colinear and
 * interpolated linearly instead. t = 0 gives the base, t = 1 the other model.
 */
import { baseAndOneOther, MergeMethod } from './types';

const COLINEAR = 0.9995;
const EPSILON = 1e-8;

/** Spherical interpolation of two whole tensors, in float64. */
export function slerp(t: number, v0: Float32Array, v1: Float32Array, out: Float32Array): Float32Array {
  let n0 = 0;
  let n1 = 0;
  let dot = 0;
  for (let i = 0; i < v0.length; i++) {
    n0 += v0[i] * v0[i];
    n1 += v1[i] * v1[i];
    dot += v0[i] * v1[i];
  }
  // Each vector is normalised only when its norm exceeds ε (a zero tensor stays as it is).
  const s0 = Math.sqrt(n0) > EPSILON ? Math.sqrt(n0) : 1;
  const s1 = Math.sqrt(n1) > EPSILON ? Math.sqrt(n1) : 1;
  const cosine = dot / (s0 * s1);
  let a: number;
  let b: number;
  if (Math.abs(cosine) > COLINEAR) {
    a = 1 - t;
    b = t;
  } else {
    const theta = Math.acos(cosine);
    const sinTheta = Math.sin(theta);
    a = Math.sin(theta - theta * t) / sinTheta;
    b = Math.sin(theta * t) / sinTheta;
  }
  for (let i = 0; i < v0.length; i++) out[i] = a * v0[i] + b * v1[i];
  return out;
}

export const slerpMethod: MergeMethod = {
  name: 'slerp',
  prettyName: 'SLERP',
  reference: 'https://en.wikipedia.org/wiki/Slerp',
  needsBase: true,
  stochastic: false,
  globalParameters: [{ name: 't', type: 'number', description: 'interpolation factor: 0 is the base, 1 the other model' }],
  modelParameters: [],
  checkModels: baseAndOneOther('slerp'),
  mergeTensor(input) {
    return slerp(input.globalParameters.t as number, input.base!, input.models[0], input.models[0]);
  },
};
