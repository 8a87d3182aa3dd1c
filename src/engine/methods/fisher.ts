/**
 * Fisher merging (Matena & Raffel, arXiv 2111.09832): each parameter is the average of the models'
 * values weighted by how much each model's predictions depend on it — the diagonal of its Fisher
 * information, measured on the model's own probe data:
 *   θ_j = Σ_t w_t F_t,j θ_t,j / Σ_t w_t F_t,j   (F floored at `fisher_floor`).
 * A data-aware baseline beside APL: it reads the same per-model probe data. The Fisher diagonals
 * are computed in the preparation (../data-aware/prepare.ts); here is the per-element average.
 */
import type * as PrepareModule from '../data-aware/prepare';
import { roundToOddFloat32, weightedSum } from '../kernels/combine';
import { MergeMethod, ParameterDef, TensorMergeInput, WEIGHT } from './types';

/** The per-model parameters of the data-aware baselines: where the probe data is, and which head scores it. */
export const PROBE_PARAMETERS: readonly ParameterDef[] = [
  { name: 'probe', type: 'string', default: '', path: true, description: 'task data (safetensors) whose probe split is read' },
  { name: 'task', type: 'string', default: '', description: "the model's head to score (default: its only one)" },
];

export const probeRequired = (method: string) => (_global: unknown, perModel: Readonly<Record<string, unknown>>): string | undefined =>
  perModel.probe ? undefined : `${method} needs per-model "probe" (task data whose probe split it reads)`;

function fisherAverage(input: TensorMergeInput): Float32Array {
  const weights = input.modelParameters.map((p) => p.weight as number);
  const out = input.models[0];
  // Tensors without Fisher values (none for our families, whose heads are carried over): averaged by weight.
  const fishers = input.rowParameters?.map((p) => p.fisher);
  if (!fishers || fishers.some((f) => !f)) return weightedSum(input.models, weights, true, out, input.halfOutput);
  const floor = input.globalParameters.fisher_floor as number;
  const round = input.halfOutput ? roundToOddFloat32 : (x: number) => x;
  for (let j = 0; j < out.length; j++) {
    let numerator = 0;
    let denominator = 0;
    for (let t = 0; t < input.models.length; t++) {
      const f = weights[t] * Math.max(fishers[t][j], floor);
      numerator += f * input.models[t][j];
      denominator += f;
    }
    out[j] = round(denominator > 0 ? numerator / denominator : 0);
  }
  return out;
}

export const fisher: MergeMethod = {
  name: 'fisher',
  prettyName: 'Fisher merging',
  reference: 'https://arxiv.org/abs/2111.09832',
  needsBase: false,
  stochastic: false,
  globalParameters: [
    { name: 'fisher', type: 'string', default: 'expected', choices: ['expected', 'empirical'], description: "expected: over the model's own predicted classes; empirical: at the probe labels (one backward pass per example)" },
    { name: 'fisher_floor', type: 'number', default: 1e-6, min: 0, description: 'lower bound of every Fisher value: parameters no probe example moves are averaged by weight' },
    { name: 'normalize_fisher', type: 'boolean', default: true, description: "divide each model's Fisher diagonal by its L2 norm, so models count by where their information lies, not by their loss scale" },
  ],
  modelParameters: [{ ...WEIGHT, default: 1 }, ...PROBE_PARAMETERS],
  checkParameters: probeRequired('fisher'),
  // Loaded on first use: merge worker threads import every method, and must not pay for TensorFlow.js.
  prepare: (context) => (require('../data-aware/prepare') as typeof PrepareModule).prepareFisher(context),
  mergeTensor: fisherAverage,
};
