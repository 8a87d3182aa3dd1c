/**
 * APL's drop of one fine-tune's task vector in one tensor: per row at its keep-rate, by the seeded
 * stream (stochastic, rescaled) or by magnitude (deterministic); for a weight that reads hidden
 * units (unit level), per entry at the rates of its row and column. One rule for the merge's recipe
 * and for the preparation steps that must see the task vectors exactly as the merge will.
 */
import { DropRule, UnitOverlap } from '../kernels/recipe';
import { dropKey } from '../kernels/random';

/**
 * `rates`: the tensor's keep_rate per row (NaN where its rows are not partitions) and, for a weight
 * that reads hidden units, column_keep_rate per column.
 */
export function aplDropRule(drop: string, seed: number, modelIndex: number, tensorName: string, rates: Readonly<Record<string, Float32Array>>, overlap: UnitOverlap = 'mean'): DropRule {
  const { keep_rate: rowRates, column_keep_rate: columnRates } = rates;
  if (columnRates) {
    if (drop !== 'stochastic') throw new Error(`tensor "${tensorName}": drop: deterministic keeps the largest |δ| per partition, which overlapping unit partitions do not define`);
    return { kind: 'unitBernoulli', key: dropKey(seed, modelIndex, tensorName), columnRates, overlap, ...(rowRates.some((r) => !Number.isNaN(r)) ? { rowRates } : {}) };
  }
  return drop === 'stochastic' ? { kind: 'rowBernoulli', key: dropKey(seed, modelIndex, tensorName), rates: rowRates } : { kind: 'rowTopK', rates: rowRates };
}
