/**
 * RegMean's solve for one linear map W [out, in] (Jin et al., arXiv 2212.09849): the W that best
 * reproduces every model's outputs on its own inputs, W = (Σ_t w_t W_t G̃_t)(Σ_t w_t G̃_t)⁻¹, with
 * G̃ = α·G + (1 − α)·diag(G) from each model's input Gram matrix G. Directions of the input the
 * Gram matrices do not reach (fewer probe rows than inputs; a pixel that is always blank) say
 * nothing about W: there the solution is the weighted average (a ridge towards it).
 */
import { roundToOddFloat32, weightedSum } from './combine';
import { cholesky, choleskySolveRows } from './cholesky';

/** The ridge towards the average, relative to the mean input variance: small enough to leave every direction the probe data determines as it is. */
const RIDGE = 1e-6;

/** RegMean of a linear map with a Gram matrix from every model; any other tensor (a bias, a norm, an embedding), the weighted average. */
export function regmeanCombine(name: string, shape: readonly number[], models: Float32Array[], weights: readonly number[], grams: ReadonlyArray<Float32Array | undefined>, alpha: number, out: Float32Array, roundToOdd = false): Float32Array {
  if (shape.length !== 2 || grams.some((g) => !g)) return weightedSum(models, weights, true, out, roundToOdd);
  const [rows, n] = shape;
  // A = Σ w_t G̃_t and B = Σ w_t W_t G̃_t, with G̃ = α·G + (1 − α)·diag(G).
  const a = new Float64Array(n * n);
  const b = new Float64Array(rows * n);
  const scaled = new Float64Array(n * n);
  for (let t = 0; t < models.length; t++) {
    const g = grams[t]!;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) scaled[i * n + j] = weights[t] * (i === j ? g[i * n + j] : alpha * g[i * n + j]);
    for (let k = 0; k < a.length; k++) a[k] += scaled[k];
    const w = models[t];
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < n; i++) {
        const value = w[r * n + i];
        if (value === 0) continue;
        const row = scaled.subarray(i * n, (i + 1) * n);
        const target = b.subarray(r * n, (r + 1) * n);
        for (let j = 0; j < n; j++) target[j] += value * row[j];
      }
    }
  }
  // The ridge towards W̄, (A + εI)·Wᵀ = Bᵀ + ε·W̄ᵀ, grown until the factorisation succeeds
  // (float32 Gram matrices of rank below n are only nearly positive semi-definite).
  let trace = 0;
  for (let i = 0; i < n; i++) trace += a[i * n + i];
  const weightSum = weights.reduce((s, w) => s + w, 0);
  const average = new Float64Array(rows * n);
  for (let t = 0; t < models.length; t++) for (let k = 0; k < average.length; k++) average[k] += (weights[t] * models[t][k]) / weightSum;
  const scale = trace > 0 ? trace / n : 1;
  let factor: ReturnType<typeof cholesky> = { failedAt: -1 };
  let ridge = 0;
  for (let attempt = 0; attempt < 6 && 'failedAt' in factor; attempt++) {
    ridge = scale * RIDGE * 100 ** attempt;
    const regularised = Float64Array.from(a);
    for (let i = 0; i < n; i++) regularised[i * n + i] += ridge;
    factor = cholesky(regularised, n);
  }
  if ('failedAt' in factor) throw new Error(`tensor "${name}": the inputs' Gram matrix is not positive semi-definite at column ${factor.failedAt} (weights must be positive)`);
  for (let k = 0; k < b.length; k++) b[k] += ridge * average[k];
  // W·A = B ⇔ A·Wᵀ = Bᵀ, and A is symmetric: each row of W solves A·w = (row of B).
  const solution = choleskySolveRows(factor.lower, n, b, rows);
  const round = roundToOdd ? roundToOddFloat32 : (x: number) => x;
  for (let k = 0; k < out.length; k++) out[k] = round(solution[k]);
  return out;
}
