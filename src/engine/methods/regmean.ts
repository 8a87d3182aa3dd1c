/**
 * RegMean (Jin et al., arXiv 2212.09849): every linear map W of the trunk merged as the single W
 * that best reproduces each model's outputs on that model's own inputs — the least-squares
 * solution of Σ_t ‖X_t Wᵀ − X_t W_tᵀ‖², W = (Σ_t w_t W_t G_t)(Σ_t w_t G_t)⁻¹ with G_t = X_tᵀX_t
 * (the Gram matrix of the inputs, from probe data) — with the off-diagonal of each G_t scaled by
 * `alpha` (the paper's regularisation towards plain averaging); the solve is kernels/regmean.ts.
 * Everything that is not a linear map (biases, embeddings, norms) is averaged by weight. The Gram
 * matrices are collected in the preparation (../data-aware/prepare.ts).
 */
import type * as PrepareModule from '../data-aware/prepare';
import { regmeanCombine } from '../kernels/regmean';
import { PROBE_PARAMETERS, probeRequired } from './fisher';
import { MergeMethod, TensorMergeInput, WEIGHT } from './types';

function regmeanTensor(input: TensorMergeInput): Float32Array {
  const weights = input.modelParameters.map((p) => p.weight as number);
  const grams = input.rowParameters?.map((p) => p.gram) ?? input.models.map(() => undefined);
  return regmeanCombine(input.name, input.shape, input.models, weights, grams, input.globalParameters.alpha as number, input.models[0], input.halfOutput);
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
