/**
 * NearSwap: per element, moves the base toward the other model by t / |base − other| (clamped to
 * [0, 1]): entries where the two are nearly the same take the other model's value, entries far
 * apart keep the base's. As mergekit's `nearswap` (a difference of 0 takes the other model's value).
 */
import { baseAndOneOther, MergeMethod } from './types';

export const nearswap: MergeMethod = {
  name: 'nearswap',
  prettyName: 'NearSwap',
  reference: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001',
  needsBase: true,
  stochastic: false,
  globalParameters: [{ name: 't', type: 'number', description: 'the sameness threshold (> 0): entries closer than t take the other model\'s value' }],
  modelParameters: [],
  checkModels: baseAndOneOther('nearswap'),
  checkGlobal: (global) => ((global.t as number) > 0 ? undefined : `t must be above 0, got ${global.t}`),
  mergeTensor(input) {
    const t = input.globalParameters.t as number;
    const base = input.base!;
    const other = input.models[0];
    for (let i = 0; i < base.length; i++) {
      const weight = Math.min(1, t / Math.abs(base[i] - other[i]));
      other[i] = weight * other[i] + (1 - weight) * base[i];
    }
    return other;
  },
};
