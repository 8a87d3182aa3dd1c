/**
 * RegMean (Jin et al., arXiv 2212.09849): every linear map W of the trunk merged as the single W
 * that best reproduces each model's outputs on that model's own inputs — the least-squares
 * solution of Σ_t ‖X_t Wᵀ − X_t W_tᵀ‖², W = (Σ_t w_t W_t G_t)(Σ_t w_t G_t)⁻¹ with G_t = X_tᵀX_t
 * (the Gram matrix of the inputs, from probe data) — with the off-diagonal of each G_t scaled by
 * `alpha` (the paper's regularisation towards plain averaging). Everything that is not a linear
 * map (biases, embeddings, norms) is averaged by weight. Directions of the input the probe data
 * does not reach (a pixel that is always blank) say nothing about W: there it is averaged by weight too.
 * The Gram matrices are collected in the preparation (../data-aware/prepare.ts).
 */
import type * as PrepareModule from '../data-aware/prepare';
import { roundToOddFloat32, weightedSum } from '../kernels/combine';
import { cholesky, choleskySolveRows } from '../kernels/cholesky';
import { PROBE_PARAMETERS, probeRequired } from './fisher';
import { MergeMethod, TensorMergeInput, WEIGHT } from './types';

/** The ridge towards the average, relative to the mean input variance: small enough to leave every direction the probe data determines as it is. */
const RIDGE = 1e-6;

function regmeanTensor(input: TensorMergeInput): Float32Array {
  const weights = input.modelParameters.map((p) => p.weight as number);
  const grams = input.rowParameters?.map((p) => p.gram);
  if (!grams || grams.some((g) => !g) || input.shape.length !== 2) return weightedSum(input.models, weights, true, input.models[0], input.halfOutput);
  const [rows, n] = input.shape;
  const alpha = input.globalParameters.alpha as number;
  // A = Σ w_t G̃_t and B = Σ w_t W_t G̃_t, with G̃ = α·G + (1 − α)·diag(G).
  const a = new Float64Array(n * n);
  const b = new Float64Array(rows * n);
  const scaled = new Float64Array(n * n);
  for (let t = 0; t < input.models.length; t++) {
    const g = grams[t];
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) scaled[i * n + j] = weights[t] * (i === j ? g[i * n + j] : alpha * g[i * n + j]);
    for (let k = 0; k < a.length; k++) a[k] += scaled[k];
    const w = input.models[t];
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < n; i++) {
        const value = w[r * n + i];
        if (value === 0) continue;
        const row = scaled.subarray(i * n, (i + 1) * n);
        const out = b.subarray(r * n, (r + 1) * n);
        for (let j = 0; j < n; j++) out[j] += value * row[j];
      }
    }
  }
  // Where the inputs do not determine W (fewer probe rows than inputs; an input no model ever saw),
  // the solution falls back to the weighted average W̄: a ridge towards it, (A + εI)·Wᵀ = Bᵀ + ε·W̄ᵀ,
  // grown until the factorisation succeeds (float32 Gram matrices of rank below n are only nearly
  // positive semi-definite).
  let trace = 0;
  for (let i = 0; i < n; i++) trace += a[i * n + i];
  const weightSum = weights.reduce((s, w) => s + w, 0);
  const average = new Float64Array(rows * n);
  for (let t = 0; t < input.models.length; t++) for (let k = 0; k < average.length; k++) average[k] += (weights[t] * input.models[t][k]) / weightSum;
  const scale = trace > 0 ? trace / n : 1;
  let factor: ReturnType<typeof cholesky> = { failedAt: -1 };
  let ridge = 0;
  for (let attempt = 0; attempt < 6 && 'failedAt' in factor; attempt++) {
    ridge = scale * RIDGE * 100 ** attempt;
    const regularised = Float64Array.from(a);
    for (let i = 0; i < n; i++) regularised[i * n + i] += ridge;
    factor = cholesky(regularised, n);
  }
  if ('failedAt' in factor) throw new Error(`tensor "${input.name}": the inputs' Gram matrix is not positive semi-definite at column ${factor.failedAt} (weights must be positive)`);
  for (let k = 0; k < b.length; k++) b[k] += ridge * average[k];
  // W·A = B ⇔ A·Wᵀ = Bᵀ, and A is symmetric: each row of W solves A·w = (row of B).
  const solution = choleskySolveRows(factor.lower, n, b, rows);
  const out = input.models[0];
  const round = input.halfOutput ? roundToOddFloat32 : (x: number) => x;
  for (let k = 0; k < out.length; k++) out[k] = round(solution[k]);
  return out;
}

export const regmean: MergeMethod = {
  name: 'regmean',
  prettyName: 'RegMean',
  reference: 'https://arxiv.org/abs/2212.09849',
  needsBase: false,
  stochastic: false,
  globalParameters: [{ name: 'alpha', type: 'number', default: 0.9, min: 0, max: 1, description: "scale of the Gram matrices' off-diagonal: 1 is plain RegMean, 0 reduces to a per-input weighted average" }],
  modelParameters: [{ ...WEIGHT, default: 1, min: 1e-12 }, ...PROBE_PARAMETERS],
  checkParameters: probeRequired('regmean'),
  // Loaded on first use: merge worker threads import every method, and must not pay for TensorFlow.js.
  prepare: (context) => (require('../data-aware/prepare') as typeof PrepareModule).prepareRegmean(context),
  mergeTensor: regmeanTensor,
};
