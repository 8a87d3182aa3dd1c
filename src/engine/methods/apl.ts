/**
 * APL: Activated Parameter Locating via causal intervention (arXiv 2408.09485), as defined in
 * APL.md. Each fine-tune's task vector is dropped partition by partition at keep-rates that rise
 * with the partition's importance for its task (measured on probe data, exactly or by the
 * gradient approximation), weighted per partition, and combined by task arithmetic or TIES.
 * The preparation (importance → rates and weights) is in ../apl/prepare.ts; here is the tensor math.
 */
import type * as PrepareModule from '../apl/prepare';
import { combineTaskVectors, ConsensusMethod, subtractInPlace } from '../kernels/combine';
import { dropKey } from '../kernels/random';
import { dropByStream, keepThreshold } from '../kernels/sparsify';
import { CONSENSUS, DENSITY, LAMBDA, MergeMethod, ParameterDef, TensorMergeInput, WEIGHT } from './types';

const str = (name: string, fallback: string, choices: string[], description: string): ParameterDef => ({ name, type: 'string', default: fallback, choices, description });
const num = (name: string, fallback: number, min: number, description: string): ParameterDef => ({ name, type: 'number', default: fallback, min, description });

/**
 * Keeps each element of row r with probability rate[r], scaled 1/rate (unbiased, as DARE). Element
 * i of the tensor uses word i of the (seed, model, tensor) stream, as DARE does.
 */
function dropStochastic(delta: Float32Array, rates: Float32Array, seed: number, model: number, name: string): void {
  const key = dropKey(seed, model, name);
  const rowLength = delta.length / rates.length;
  for (let r = 0; r < rates.length; r++) {
    const rate = rates[r];
    if (rate >= 1) continue;
    const row = delta.subarray(r * rowLength, (r + 1) * rowLength);
    dropByStream(row, key, r * rowLength, keepThreshold(rate), rate > 0 ? Math.fround(1 / rate) : 0);
  }
}

/** Keeps, in each row, the round(rate·length) largest magnitudes (as TIES), without rescaling. */
function dropDeterministic(delta: Float32Array, rates: Float32Array): void {
  const rowLength = delta.length / rates.length;
  for (let r = 0; r < rates.length; r++) {
    const row = delta.subarray(r * rowLength, (r + 1) * rowLength);
    const keep = Math.round(rates[r] * rowLength);
    if (keep >= rowLength) continue;
    const order = Array.from(row.keys()).sort((a, b) => Math.abs(row[b]) - Math.abs(row[a]) || a - b);
    for (let i = keep; i < order.length; i++) row[order[i]] = 0;
  }
}

export const apl: MergeMethod = {
  name: 'apl',
  prettyName: 'APL (Activated Parameter Locating)',
  reference: 'https://arxiv.org/abs/2408.09485',
  needsBase: true,
  stochastic: true,
  globalParameters: [
    str('level', 'row', ['model', 'layer', 'row'], 'partition level: whole task vector, tensor, or output unit'),
    str('estimator', 'gradient', ['gradient', 'exact'], 'importance by gradient approximation or exact causal intervention'),
    str('metric', 'loss', ['loss', 'kl'], 'exact intervention: loss increase or KL divergence'),
    str('gradient_form', 'absolute', ['absolute', 'signed'], 'gradient approximation: |g·δ| or −g·δ'),
    str('gradient_at', 'finetune', ['finetune', 'base'], 'where the gradient is taken'),
    num('keep_temperature', 1, 0, 'τ1: 0 keeps whole partitions by rank; large values approach a uniform rate (DARE)'),
    { name: 'competition', type: 'boolean', default: false, description: 'weight tasks per partition by softmax of importance (τ2)' },
    num('weight_temperature', 1, 1e-6, 'τ2 of the task competition'),
    str('drop', 'stochastic', ['stochastic', 'deterministic'], 'Bernoulli drop with rescale, or keep the largest |δ| in each partition'),
    str('combine', 'task_arithmetic', ['task_arithmetic', 'ties'], 'how dropped, weighted task vectors are combined'),
    { ...CONSENSUS },
    { name: 'normalize', type: 'boolean', default: false, description: 'divide by the weights that took part' },
    LAMBDA,
  ],
  modelParameters: [
    { ...WEIGHT, default: 1 },
    { ...DENSITY, default: 0.5 },
    { name: 'probe', type: 'string', default: '', path: true, description: 'task data (safetensors) whose probe split measures importance' },
    { name: 'importance', type: 'string', default: '', path: true, description: 'a saved importance analysis to use instead of probe data' },
    { name: 'task', type: 'string', default: '', description: "the model's head to score (default: its only one)" },
  ],
  checkParameters(_global, perModel) {
    if (!perModel.probe && !perModel.importance) return 'apl needs per-model "probe" (task data) or "importance" (a saved analysis)';
    return undefined;
  },
  // Loaded on first use: merge worker threads import every method, and must not pay for
  // loading TensorFlow.js, which only the preparation needs.
  prepare: (context) => (require('../apl/prepare') as typeof PrepareModule).prepareApl(context),
  mergeTensor(input: TensorMergeInput): Float32Array {
    const base = input.base!;
    const global = input.globalParameters;
    if (!input.rowParameters) throw new Error(`tensor "${input.name}": apl merges trunk tensors only, after its preparation step`);
    input.models.forEach((delta, t) => {
      subtractInPlace(delta, base);
      const { keep_rate: rates, weight } = input.rowParameters![t];
      if (global.drop === 'stochastic') dropStochastic(delta, rates, input.seed, t, input.name);
      else dropDeterministic(delta, rates);
      const rowLength = delta.length / weight.length;
      for (let r = 0; r < weight.length; r++) {
        if (weight[r] === 1) continue;
        for (let j = r * rowLength; j < (r + 1) * rowLength; j++) delta[j] *= weight[r];
      }
    });
    return combineTaskVectors(
      base,
      input.models,
      {
        weights: input.modelParameters.map((p) => p.weight as number),
        consensus: global.combine === 'ties' ? (global.consensus_method as ConsensusMethod) : undefined,
        normalize: global.normalize as boolean,
        lambda: global.lambda as number,
      },
      base,
    );
  },
};
