/**
 * APL's drop of one fine-tune's task vector in one tensor: per row at its keep-rate, by the seeded
 * stream (stochastic, rescaled) or by magnitude (deterministic). One rule for the merge's recipe
 * and for the preparation steps that must see the task vectors exactly as the merge will.
 */
import { DropRule } from '../kernels/recipe';
import { dropKey } from '../kernels/random';

export function aplDropRule(drop: string, seed: number, modelIndex: number, tensorName: string, rates: Float32Array): DropRule {
  return drop === 'stochastic' ? { kind: 'rowBernoulli', key: dropKey(seed, modelIndex, tensorName), rates } : { kind: 'rowTopK', rates };
}
